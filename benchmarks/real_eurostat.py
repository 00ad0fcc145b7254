"""Replay the Eurostat Comext CHPL exports of EU member states (2020-01 to
2022-11) and compare the alerts with what was published about 2022.

Usage::

    python -m benchmarks.real_eurostat PATH/TO/eurostat_comext_cn8_chpl_exports_eu_members_to_ru_and_neighbours_2020_2022.csv

Targets (issue "Detection quality"): at least 90% of hub lanes whose
Jan-Nov 2022 exports reached 3x their Jan-Nov 2021 level and at least EUR 200k
alert during 2022; at most 3 alerts per 1,000 hub series-months in 2021; the
first alerts for Armenia fall in March or April 2022.

The replay runs the shipped defaults in EUR, with ``watch.history_start`` at the
file's first month (see :func:`config`).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import sys

import pandas as pd

from benchmarks.scoring import month_index
from transitwatch.detectors.contract import parse_mapping
from transitwatch.detectors.engine import Engine
from transitwatch.detectors.watch import WatchConfig

EUR_CONFIG = '[currency]\nbase = "EUR"\n[currency.rates]\nEUR = 1.0\nUSD = 1.081\n'


def config(raw: pd.DataFrame, config_text: str = "") -> WatchConfig:
    """The defaults in EUR, overlaid with ``config_text``, with ``watch.history_start``
    at the file's first month unless ``config_text`` sets it.

    Comext's monthly statistics cover every declared lane from the file's first
    month: a lane without a record before some month truly had no trade then. So
    its history is zero back to the first month, also for goods groups first seen
    later (HS 2022 codes such as 880730, 854151 and 854159 appear in 2022-01 and
    their lanes' 2020-2021 zeros are real). Without the setting those lanes would
    have no history before 2022 and would alert later or not at all.
    """
    cfg = WatchConfig.from_toml(EUR_CONFIG + config_text)
    if cfg.history_start is None:
        cfg = dataclasses.replace(cfg, history_start=month_index(str(raw["period"].min())))
    return cfg


def run(path: str, config_text: str = "") -> dict:
    raw = pd.read_csv(path, dtype={"cn8": str, "hs6": str})
    raw = raw.sort_values("period", kind="stable")
    cfg = config(raw, config_text)
    engine = Engine(cfg)
    for r in raw.itertuples(index=False):
        engine.add(parse_mapping({
            "period": r.period, "reporter": r.reporter_iso2, "partner": r.partner_iso2,
            "flow": "export", "hs_code": r.cn8, "value": r.value_eur, "currency": "EUR",
        }))
    engine.finish(close_last=True)
    alerts = [a for a in engine.drain() if a.detectors]  # alert months; a case's quiet updates are not alerts

    raw["year"] = raw.period.str[:4]
    raw["mm"] = raw.period.str[5:7]
    hubs = raw[~raw.partner_iso2.isin(["RU", "BY"])]
    lanes = hubs.groupby(["reporter_iso2", "partner_iso2", "hs6"])
    n_hub_series = lanes.ngroups
    jan_nov = hubs[hubs.mm <= "11"]
    totals = jan_nov.pivot_table(index=["reporter_iso2", "partner_iso2", "hs6"], columns="year",
                                 values="value_eur", aggfunc="sum", fill_value=0.0)
    surged = totals[(totals["2022"] >= 200_000) & (totals["2022"] >= 3 * totals["2021"])]
    alerted_2022 = {(a.reporter, a.partner, a.hs6) for a in alerts if a.period.startswith("2022")}
    found = sum(1 for lane in surged.index if lane in alerted_2022)
    hub_alerts_2021 = [a for a in alerts if a.period.startswith("2021")]
    first = {}
    for a in sorted(alerts, key=lambda a: a.period):
        if a.period >= "2022-01":
            first.setdefault(a.partner, a.period)
    return {
        "history start": cfg.describe()["history start"],
        "hub series": n_hub_series,
        "alerts": len(alerts),
        "alerts 2021": len(hub_alerts_2021),
        "alerts per 1,000 hub series-months 2021": round(1000 * len(hub_alerts_2021) / (12 * n_hub_series), 2),
        "surged lanes (x3, >= EUR 200k)": len(surged),
        "surged lanes alerted in 2022": found,
        "recall": round(found / max(len(surged), 1), 3),
        "first 2022 alert by hub": dict(sorted(first.items())),
        "alerts by month 2022": dict(sorted(collections.Counter(a.period for a in alerts if a.period >= "2022").items())),
        "2021 alerts by detector": dict(collections.Counter(a.detectors for a in hub_alerts_2021).most_common()),
        "missed lanes": [" ".join(l) for l in surged.index if l not in alerted_2022],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path")
    args = parser.parse_args(argv)
    for k, v in run(args.path).items():
        print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
