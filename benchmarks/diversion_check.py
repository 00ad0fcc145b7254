"""Does diversion find diversion? The CN8 lanes where Russia halved and a hub rose.

Definition (the "diverted lanes"): a hub lane (reporter, hub, hs6) of the Comext CN8 CHPL
file, ``hub`` not a destination, such that, with *before* the mean month of 2021 and *after*
the mean month of 2022-03 to the file's last month:

- the same reporter's exports of the same HS6 to Russia were material before
  (``before >= MIN_RUSSIA``, EUR 10k a month) and halved (``after <= 0.5 * before``), and
- the hub lane rose 1.5x (``after >= 1.5 * before``), by a material amount
  (``after - before >= MIN_RISE``, EUR 10k a month; a lane with no 2021 trade counts
  when it meets that amount).

For those lanes it reports how many had any alert in 2022, how many had an alert in 2022
whose detectors name diversion, and the 2022 alert records of LT>KZ 847150.

Run: ``python -m benchmarks.diversion_check [--real DIR] [--work DIR]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.cases import CN8, CN8_CONFIG, _write, check_main, cn8_records, lane_of, lane_values, replay_alerts
from benchmarks.scoring import Key, month_index
from transitwatch.detectors.watch import WatchConfig

MIN_RUSSIA = 10_000.0
MIN_RISE = 10_000.0
HALVED = 0.5
ROSE = 1.5
WATCHED = ("LT", "KZ", "export", "847150")


def _mean(values: Mapping[int, float], first: int, last: int) -> float:
    return sum(values.get(m, 0.0) for m in range(first, last + 1)) / (last - first + 1)


def diverted_lanes(values: Mapping[Key, Mapping[int, float]], destinations: set[str], *,
                   russia: str = "RU") -> dict[Key, dict[str, float]]:
    """The hub lanes where the reporter's Russia lane of the HS6 halved and the hub lane rose
    1.5x (module docstring), with the before and after of both."""
    last = max(m for v in values.values() for m in v)
    b0, b1, a0 = month_index("2021-01"), month_index("2021-12"), month_index("2022-03")
    out = {}
    for key, v in values.items():
        reporter, partner, flow, hs6 = key
        ru = values.get((reporter, russia, flow, hs6))
        if partner in destinations or ru is None:
            continue
        ru_before, ru_after = _mean(ru, b0, b1), _mean(ru, a0, last)
        before, after = _mean(v, b0, b1), _mean(v, a0, last)
        if (ru_before >= MIN_RUSSIA and ru_after <= HALVED * ru_before
                and after >= ROSE * before and after - before >= MIN_RISE):
            out[key] = {"russia before": ru_before, "russia after": ru_after, "before": before, "after": after}
    return out


def check(alerts: list[dict], values: Mapping[Key, Mapping[int, float]], destinations: set[str]) -> dict[str, Any]:
    lanes = diverted_lanes(values, destinations)
    in_2022 = [a for a in alerts if str(a["period"]).startswith("2022")]
    any_alert = {lane_of(a) for a in in_2022}
    named = {lane_of(a) for a in in_2022 if "diversion" in (a.get("detectors") or ())}
    watched = [{k: a.get(k) for k in ("period", "detectors", "severity", "observed_value", "case_event")}
               | {"evidence": {k: v for k, v in (a.get("evidence") or {}).items() if "destination" in k}}
               for a in in_2022 if lane_of(a) == WATCHED]
    n = len(lanes)
    return {
        "diverted lanes": n,
        "with any alert in 2022": len(lanes.keys() & any_alert),
        "naming diversion in 2022": len(lanes.keys() & named),
        "share naming diversion": round(len(lanes.keys() & named) / n, 3) if n else None,
        "diversion-named hub lanes in 2022 (all)": len(named),
        f"{'>'.join(WATCHED[:2])} {WATCHED[3]} diverted": WATCHED in lanes,
        f"{'>'.join(WATCHED[:2])} {WATCHED[3]} alerts 2022": watched,
    }


def run(real: Path, work: Path) -> dict[str, Any]:
    records = cn8_records(real / CN8)
    config_text = CN8_CONFIG.read_text("utf-8")
    alerts = replay_alerts([_write(records, work / "eurostat_cn8.jsonl.gz")], config_text, work / "alerts-cn8.jsonl")
    cfg = WatchConfig.from_toml(config_text)
    return check(alerts, lane_values(records, cfg), set(cfg.destinations))


def main(argv: list[str] | None = None) -> None:
    check_main(__doc__, run, "diversion-check-", argv)


if __name__ == "__main__":
    main()
