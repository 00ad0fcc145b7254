# %% [markdown]
# # transitwatch in a notebook
#
# A script in cells (`# %%`): open it in Jupyter (jupytext), VS Code or Spyder and run it cell by
# cell, or run it whole: `python examples/notebook.py [--out DIR]`. It loads a real sample (the
# shipped Eurostat Comext extract: monthly exports of CHPL goods from the 27 EU member states to
# Russia, Belarus and five hubs, 2020-01 to 2022-11; `examples/README.md` says where it comes
# from), runs `transitwatch.detect` on it as a pandas DataFrame, lists the cases, and plots one:
# the lane's monthly values with the months of its case marked. `tests/examples/test_notebook.py`
# runs it.

# %%
from __future__ import annotations

import argparse
import gzip
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a file, not a window: works headless; drop this line in Jupyter
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

import transitwatch  # noqa: E402
from transitwatch.data import SAMPLE, SAMPLE_CONFIG  # noqa: E402  (package data: any install has it)

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--out", type=Path, default=Path("."), help="where the chart is written (default: here)")
args, _ = parser.parse_known_args()

# %% [markdown]
# ## Load the records
# One row per lane and month: `period`, `reporter` and `partner` (ISO codes), `hs_code`, `value` in
# euros. Any frame works if its columns are named as the input contract's, or mapped with
# `columns={...}`; `hs_code` is read as text so no leading zero is lost.

# %%
with gzip.open(SAMPLE, "rt", encoding="utf-8") as f:
    records = pd.read_json(f, lines=True, dtype={"hs_code": str, "period": str})
print(f"{len(records):,} records, {records.period.min()} to {records.period.max()}, "
      f"{records.reporter.nunique()} reporters, {records.partner.nunique()} partners")

# %% [markdown]
# ## Run the detectors
# The sample's configuration (`transitwatch/data/eurostat.toml`) watches these hubs in euros. Every alert
# record is one month of one lane's *case*; `attrs["summary"]` is what `transitwatch replay` prints.

# %%
alerts = transitwatch.detect(records, config=SAMPLE_CONFIG)
summary = alerts.attrs["summary"]
print(f"{len(alerts):,} alert records in {alerts.case_id.nunique()} cases; rejected rows: {summary['rejected']}")

# %% [markdown]
# ## The cases, one row each
# The latest record of each case carries its status, peak and cumulative excess.

# %%
cases = (alerts.sort_values("period").groupby("case_id").tail(1)
         [["case_id", "reporter", "partner", "hs6", "case_onset", "case_months", "case_status",
           "case_severity", "case_peak_ratio", "case_excess"]]
         .sort_values("case_excess", ascending=False))
print(cases.head(10).to_string(index=False))

# %% [markdown]
# ## One case: Armenia's first in 2022
# The lane's whole series comes from the input; the months of the case are shaded and the
# level the case is judged against (`case_level`, frozen at its onset) is drawn.

# %%
armenia = cases[(cases.partner == "AM") & (cases.case_onset >= "2022-01")].sort_values(["case_onset", "case_excess"],
                                                                                   ascending=[True, False])
case = armenia.iloc[0]
lane = records[(records.reporter == case.reporter) & (records.partner == case.partner)
               & (records.hs_code.str[:6] == case.hs6)]
# A month without a record had no trade on the lane: zero, not a gap to draw across.
everything = pd.period_range(records.period.min(), records.period.max(), freq="M").astype(str)
series = lane.groupby("period")["value"].sum().reindex(everything, fill_value=0.0)
months = alerts[alerts.case_id == case.case_id].sort_values("period")

fig, ax = plt.subplots(figsize=(9, 3.5))
x = pd.PeriodIndex(series.index, freq="M").to_timestamp()
ax.plot(x, series.values / 1e3, marker="o", ms=3, label=f"{case.reporter} → {case.partner}, HS {case.hs6}")
for period in months.period:
    start = pd.Period(period, freq="M").to_timestamp()
    ax.axvspan(start, start + pd.offsets.MonthEnd(1), color="tab:red", alpha=0.15, lw=0)
ax.axhline(months.case_level.iloc[0] / 1e3, color="grey", ls="--", lw=1, label="level before the case")
ax.set_ylabel("thousand EUR a month")
ax.set_title(f"case {case.case_id}: opened {case.case_onset}, {case.case_severity}, peak x{case.case_peak_ratio:.1f}")
ax.legend(loc="upper left", fontsize=8)
fig.tight_layout()
args.out.mkdir(parents=True, exist_ok=True)
chart = args.out / f"case-{case.case_id}.png"
fig.savefig(chart, dpi=110)
print(f"chart: {chart}")
print(months[["period", "case_event", "severity", "observed_value", "ratio"]].to_string(index=False))
print(textwrap.fill(months.explanation.iloc[0], 100))
