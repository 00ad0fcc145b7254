"""The mirror test's false-alarm price and recall on generated pairs (no real file has enough).

Each pair is an exporter's monthly exports of one HS6 to a hub and the hub's imports of it from
the exporter, 2020-01 to 2023-12. Exports: a level (lognormal, median 200k), monthly lognormal noise
(spread 0.2 to 0.8), months without trade (0 to 40% of them). Imports: the pair's usual ratio (0.5 to
1.5) times CIF/FOB 1.05 times the exports, a share of each month's exports (0 to 60%) arriving the
next month, recording noise (spread 0.05 to 0.3), and one-month recording slips (2% of months at
30%). Half the pairs are *null* (nothing else); the other half get a *gap*: from a month of
2022-2023 on, the imports are 10% to 50% of what they would be, to the end.

Reported: on null pairs, mirror alert records and cases (runs of consecutive alerted months) per
1,000 judged lane-months (months from the second year); on gap pairs, the share found within three
months of the onset and the median delay. The run uses every detector, as a replay would (their
protection of the export lane's months shapes the mirror test's history), and counts the mirror
test's records only.

Run: ``PYTHONPATH=. python -m benchmarks.mirror_synthetic [--pairs 400] [--seed 11] [--seed 12]``
(seeds are the caller's; the roundabout and labelled seeds play no part here).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from transitwatch.detectors.contract import parse_mapping
from transitwatch.detectors.engine import Engine
from transitwatch.detectors.reference import chpl
from transitwatch.detectors.watch import WatchConfig

MONTHS = 48
FIRST_YEAR = 2020
HUBS = ("KG", "KZ", "AM", "GE", "UZ", "AE", "TR")
REPORTERS = ("DE", "PL", "LT", "IT", "FR", "NL", "CZ", "AT", "BE", "ES", "SE", "FI")


def period(i: int) -> str:
    return f"{FIRST_YEAR + i // 12}-{i % 12 + 1:02d}"


def generate(pairs: int, seed: int) -> tuple[list[dict[str, Any]], dict[tuple[str, str, str], int | None]]:
    """Input lines of both flows, and each pair's gap onset (month offset, None: a null pair)."""
    rng = np.random.default_rng(seed)
    codes = sorted(chpl())
    lines: list[dict[str, Any]] = []
    truth: dict[tuple[str, str, str], int | None] = {}
    keys = [(r, h, c) for r in REPORTERS for h in HUBS for c in codes]
    for j in rng.choice(len(keys), size=pairs, replace=False):
        reporter, hub, hs6 = keys[j]
        level = 200_000 * np.exp(rng.normal(0, 1.0))
        spread = rng.uniform(0.2, 0.8)
        empty = rng.uniform(0, 0.4)
        x = level * np.exp(rng.normal(0, spread, MONTHS)) * (rng.random(MONTHS) >= empty)
        usual = rng.uniform(0.5, 1.5)
        late = rng.uniform(0, 0.6)
        arriving = x * (1 - late) + np.concatenate([[x[0] * late], x[:-1] * late])
        m = arriving * 1.05 * usual * np.exp(rng.normal(0, rng.uniform(0.05, 0.3), MONTHS))
        m *= np.where(rng.random(MONTHS) < 0.02, 0.3, 1.0)
        onset = None
        if rng.random() < 0.5:
            onset = int(rng.integers(24, MONTHS - 3))
            m[onset:] *= rng.uniform(0.1, 0.5)
        truth[(reporter, hub, hs6)] = onset
        for i in range(MONTHS):
            if x[i] > 0:
                lines.append({"period": period(i), "reporter": reporter, "partner": hub, "flow": "export",
                              "hs_code": hs6, "value": round(float(x[i]), 2), "currency": "USD"})
            if m[i] > 0:
                lines.append({"period": period(i), "reporter": hub, "partner": reporter, "flow": "import",
                              "hs_code": hs6, "value": round(float(m[i]), 2), "currency": "USD"})
    lines.sort(key=lambda d: d["period"])
    return lines, truth


def run(pairs: int, seed: int, config: WatchConfig | None = None) -> dict[str, Any]:
    lines, truth = generate(pairs, seed)
    config = config or WatchConfig.from_toml(f'[watch]\nhistory_start = "{FIRST_YEAR}-01"')
    engine = Engine(config)
    for line in lines:
        engine.add(parse_mapping(line))
    engine.finish(close_last=True)
    flagged: dict[tuple[str, str, str], list[int]] = {}
    for a in engine.drain():
        if "mirror" in a.detectors:
            i = (int(a.period[:4]) - FIRST_YEAR) * 12 + int(a.period[5:]) - 1
            flagged.setdefault((a.reporter, a.partner, a.hs6), []).append(i)
    null = [k for k, onset in truth.items() if onset is None]
    gap = [k for k, onset in truth.items() if onset is not None]
    judged = len(null) * (MONTHS - 12)
    null_records = sum(len(flagged.get(k, [])) for k in null)
    null_cases = sum(sum(1 for j, i in enumerate(months) if j == 0 or months[j - 1] != i - 1)
                     for months in (sorted(flagged.get(k, [])) for k in null))
    delays = []
    for k in gap:
        after = [i - truth[k] for i in flagged.get(k, []) if i >= truth[k]]
        if after and min(after) <= 3:
            delays.append(min(after))
    early = sum(1 for k in gap for i in flagged.get(k, []) if i < truth[k])
    return {
        "seed": seed, "null pairs": len(null), "gap pairs": len(gap),
        "null records / 1000 lane-months": round(1000 * null_records / judged, 2),
        "null cases / 1000 lane-months": round(1000 * null_cases / judged, 2),
        "gap pairs found within 3 months": round(len(delays) / max(len(gap), 1), 3),
        "median delay (months)": float(np.median(delays)) if delays else None,
        "gap pairs flagged before their onset": early,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--seed", type=int, action="append")
    parser.add_argument("--config", type=str, default=None, help="extra TOML appended to the run's configuration")
    args = parser.parse_args(argv)
    extra = args.config or ""
    config = WatchConfig.from_toml(f'[watch]\nhistory_start = "{FIRST_YEAR}-01"\n' + extra)
    for seed in args.seed or [11, 12]:
        print(run(args.pairs, seed, config))


if __name__ == "__main__":
    main()
