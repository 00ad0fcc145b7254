"""An intermittent real lane: Armenia's estimated re-exports of HS 850440, alternate months.

Source: ``armstat_armenia_reexports_estimated_hs6_monthly_2011_2024.csv`` (Armstat data, the
re-export estimate of the TVYAL newsletter; ``data/real/README.md`` section C1): per month and
HS6, Armenia's estimated re-exports in USD, one row per month with a non-zero estimate. The file
names no partner; the newsletter's subject is re-export to Russia, so the check watches every
watched (CHPL) HS6 of the file as the lane AM > RU, flow ``re-export``, as monthly statistics in
USD, with ``history_start`` at the file's first month (a month without a row had no re-export).

HS 850440 (static converters) goes from nothing to USD 1.5m in 2022-08, nothing in 2022-09,
USD 1.0m in 2022-10, nothing in 2022-11, USD 1.0m and 1.7m in 2022-12 and 2023-01. Issue 15's
target: the lane alerts in 2022-08 to 2022-10. The check reports the lane's first alert, its
months from 2022-06, and the alerts on the file's other CHPL lanes (their false-alarm side).

Run: ``python -m benchmarks.intermittent_check [--real DIR] [--work DIR]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.cases import _write, check_main, lane_of, replay_alerts
from benchmarks.scoring import month_index
from transitwatch.detectors.watch import WatchConfig

ARMSTAT_HS6 = "armstat_armenia_reexports_estimated_hs6_monthly_2011_2024.csv"
HS6 = "850440"
LANE = ("AM", "RU", "re-export", HS6)
TARGET = ("2022-08", "2022-10")
CONFIG = '[watch]\nreporters = ["AM"]\nlanes = ["AM>RU"]\nhistory_start = "2011-01"\n'


def armstat_records(src: Path, hs6: frozenset[str]) -> list[dict]:
    """The file's rows of the given HS6 codes as monthly statistics (module docstring)."""
    raw = pd.read_csv(src, dtype={"commodity_code": str})
    rows = raw[raw["commodity_code"].isin(hs6) & (raw["reexports"] > 0)].sort_values(
        ["period", "commodity_code"], kind="stable")
    return [{"period": str(r.period)[:7], "reporter": "AM", "partner": "RU", "flow": "re-export",
             "hs_code": r.commodity_code, "value": round(float(r.reexports), 2), "currency": "USD"}
            for r in rows.itertuples(index=False)]


def first_alert(alerts: list[dict], lane: tuple[str, str, str, str]) -> str | None:
    """The period of the lane's first alert, ``None`` without one.

    Examples
    --------
    >>> a = [{"reporter": "AM", "partner": "RU", "flow": "re-export", "hs6": "850440", "period": p}
    ...      for p in ("2022-12", "2022-10")]
    >>> first_alert(a, LANE), first_alert(a, ("AM", "RU", "re-export", "854239"))
    ('2022-10', None)
    """
    periods = sorted(str(a["period"]) for a in alerts if lane_of(a) == lane)
    return periods[0] if periods else None


def check(alerts: list[dict], records: list[dict]) -> dict[str, Any]:
    """The report of the module docstring from a replay's alerts and its input."""
    first = first_alert(alerts, LANE)
    values = {r["period"]: r["value"] for r in records if r["hs_code"] == HS6}
    start, stop = month_index("2022-06"), month_index("2023-03")
    by_period = {}
    for a in alerts:
        if lane_of(a) == LANE:
            by_period.setdefault(str(a["period"]), a)
    months = []
    for m in range(start, stop + 1):
        period = f"{m // 12}-{m % 12 + 1:02d}"
        a = by_period.get(period)
        months.append((period, values.get(period, 0.0), a["severity"] if a else "",
                       list(a.get("detectors") or ()) if a else []))
    others = {lane_of(a) for a in alerts if lane_of(a) != LANE}
    return {
        "lane": ">".join(LANE[:2]) + f" {LANE[2]} {HS6}",
        "first alert": first,
        "in target": first is not None and TARGET[0] <= first <= TARGET[1],
        "months": months,
        "other lanes": len({r["hs_code"] for r in records} - {HS6}),
        "other lanes alerted": len(others),
        "other alerts": sum(1 for a in alerts if lane_of(a) != LANE),
    }


def run(real: Path, work: Path) -> dict[str, Any]:
    cfg = WatchConfig.from_toml(CONFIG)
    records = armstat_records(real / ARMSTAT_HS6, frozenset(cfg.hs6))
    alerts = replay_alerts([_write(records, work / "armstat_hs6.jsonl.gz")], CONFIG, work / "alerts-armstat.jsonl")
    return check(alerts, records)


def main(argv: list[str] | None = None) -> None:
    check_main(__doc__, run, "intermittent-check-", argv)


if __name__ == "__main__":
    main()
