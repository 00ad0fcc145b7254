"""The real 2022 surge: Eurostat Comext CHPL exports of EU member states, replayed.

Headline numbers come from :func:`benchmarks.real_eurostat.run` (the incremental
engine); the per-hub timing, the detectors alone and the spreadsheet rule use
the batch path on the same records (the same month-end alerts, checked here).
Published timing to compare with (field notes, section 1): Armenia's jump from
March 2022, Kazakhstan's and Kyrgyzstan's from May 2022, EU exports to Russia
halving from March 2022.
"""

from __future__ import annotations

import collections
from typing import Any

import pandas as pd

from benchmarks import baselines, real_eurostat, scoring
from transitwatch.detectors.batch import detect, monthly_cells, records_frame
from transitwatch.detectors.contract import parse_mapping
from transitwatch.detectors.watch import WatchConfig

DETECTORS_ALONE = ("seasonal_surge", "ramp", "novelty", "diversion")  # new_consignees: Comext names no consignees


def _cells(raw: pd.DataFrame, cfg: WatchConfig) -> pd.DataFrame:
    recs = [parse_mapping({"period": r.period, "reporter": r.reporter_iso2, "partner": r.partner_iso2,
                           "flow": "export", "hs_code": r.cn8, "value": r.value_eur, "currency": "EUR"})
            for r in raw.itertuples(index=False)]
    return monthly_cells(records_frame(recs), cfg)


def surged_lanes(raw: pd.DataFrame) -> set[tuple[str, str, str]]:
    """Hub lanes whose Jan-Nov 2022 exports reached 3x Jan-Nov 2021 and EUR 200k (as in real_eurostat)."""
    hubs = raw[~raw.partner_iso2.isin(["RU", "BY"]) & (raw.period.str[5:7] <= "11")]
    totals = hubs.assign(year=hubs.period.str[:4]).pivot_table(
        index=["reporter_iso2", "partner_iso2", "hs6"], columns="year", values="value_eur", aggfunc="sum").fillna(0.0)
    return set(totals[(totals["2022"] >= 200_000) & (totals["2022"] >= 3 * totals["2021"])].index)


def _summary(lanes_alerted_2022: set, n_2021: int, n_hub: int, surged: set) -> dict[str, Any]:
    found = len(surged & lanes_alerted_2022)
    return {"alerts per 1,000 hub series-months 2021": round(1000 * n_2021 / (12 * n_hub), 2),
            "surged lanes alerted in 2022": found, "recall": round(found / max(len(surged), 1), 3)}


def evaluate(path: str) -> dict[str, Any]:
    """Headline, per-hub timing, detectors alone and the spreadsheet rule on the real file."""
    headline = real_eurostat.run(path)
    raw = pd.read_csv(path, dtype={"cn8": str, "hs6": str}).sort_values("period", kind="stable")
    cfg = real_eurostat.config(raw)  # the headline's configuration: history from the file's first month
    cells = _cells(raw, cfg)
    alerts = [a for a in detect(cells, cfg) if a.detectors]  # alert months, as the headline counts them
    if len(alerts) != headline["alerts"]:
        raise RuntimeError(f"batch path gave {len(alerts)} alerts, the engine {headline['alerts']}")
    surged = surged_lanes(raw)
    n_hub = headline["hub series"]

    by_hub: dict[str, dict[str, Any]] = {}
    first_by_lane: dict[tuple[str, str, str], str] = {}
    for a in sorted(alerts, key=lambda a: a.period):
        if a.period.startswith("2022"):
            first_by_lane.setdefault((a.reporter, a.partner, a.hs6), a.period)
    for hub in sorted({a.partner for a in alerts}):
        months = collections.Counter(a.period for a in alerts if a.partner == hub and a.period.startswith("2022"))
        by_hub[hub] = {
            "first 2022 alert": min(months) if months else None,
            "lanes alerted 2022": sum(1 for lane in first_by_lane if lane[1] == hub),
            "surged lanes": sum(1 for lane in surged if lane[1] == hub),
            "surged lanes alerted": sum(1 for lane in surged if lane[1] == hub and lane in first_by_lane),
            "alerts 2021": sum(1 for a in alerts if a.partner == hub and a.period.startswith("2021")),
            "alerts by month 2022": [months.get(f"2022-{m:02d}", 0) for m in range(1, 12)],
        }

    # year-on-year ratio of CHPL exports by partner, to place the published timing in this file
    monthly = raw.groupby(["partner_iso2", "period"])["value_eur"].sum().unstack("period").fillna(0.0)
    yoy = {p: [round(monthly.loc[p, f"2022-{m:02d}"] / monthly.loc[p, f"2021-{m:02d}"], 2)
               if monthly.loc[p, f"2021-{m:02d}"] > 0 else None for m in range(1, 12)]
           for p in ("AM", "KG", "KZ", "GE", "UZ", "RU") if p in monthly.index}

    variants = {}
    for name in DETECTORS_ALONE:
        r = real_eurostat.run(path, f'[policy]\ndetectors = ["{name}"]\n')
        variants[f"{name} alone"] = {k: r[k] for k in ("alerts per 1,000 hub series-months 2021",
                                                        "surged lanes alerted in 2022", "recall")}
    rule = baselines.spreadsheet_rule(cells, hubs=cfg.hubs, floor=cfg.params["surge"].min_excess)
    rule_2022 = {(k[0], k[1], k[3]) for k, m in rule if scoring.period_of(m).startswith("2022")}
    rule_2021 = sum(1 for _, m in rule if scoring.period_of(m).startswith("2021"))
    variants["spreadsheet rule (x3 y/y)"] = _summary(rule_2022, rule_2021, n_hub, surged)
    return {
        "path": path,
        "headline": headline,
        "by hub": by_hub,
        "year on year": yoy,
        "variants": variants,
        "first alert by lane 2022": dict(sorted(first_by_lane.items(), key=lambda kv: (kv[0][1], kv[1], kv[0]))),
        "surged": sorted(surged),
    }
