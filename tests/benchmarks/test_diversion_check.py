"""The diverted-lanes definition of benchmarks.diversion_check on hand-made lanes."""

from benchmarks.diversion_check import check, diverted_lanes
from benchmarks.scoring import month_index

Y21 = range(month_index("2021-01"), month_index("2021-12") + 1)
Y22 = range(month_index("2022-03"), month_index("2022-12") + 1)


def _lane(before, after):
    return {m: before for m in Y21} | {m: after for m in Y22}


def test_russia_halved_and_the_hub_rose_one_and_a_half_times():
    values = {
        ("LT", "RU", "export", "847150"): _lane(100_000.0, 40_000.0),
        ("LT", "KZ", "export", "847150"): _lane(20_000.0, 31_000.0),   # 1.55x, EUR 11k more
        ("LT", "AM", "export", "847150"): _lane(20_000.0, 29_000.0),   # 1.45x: not diverted
        ("LT", "RU", "export", "851762"): _lane(100_000.0, 60_000.0),  # Russia at 60%: not halved
        ("LT", "KZ", "export", "851762"): _lane(0.0, 50_000.0),
        ("LT", "BY", "export", "847150"): _lane(0.0, 50_000.0),        # a destination, not a hub lane
    }
    lanes = diverted_lanes(values, {"RU", "BY"})
    assert list(lanes) == [("LT", "KZ", "export", "847150")]
    assert lanes[("LT", "KZ", "export", "847150")]["russia after"] == 40_000.0
    alerts = [{"reporter": "LT", "partner": "KZ", "flow": "export", "hs6": "847150", "period": "2022-05",
               "detectors": ["diversion"], "evidence": {"destination_before": 1.0}}]
    r = check(alerts, values, {"RU", "BY"})
    assert (r["diverted lanes"], r["with any alert in 2022"], r["naming diversion in 2022"]) == (1, 1, 1)
    assert r["LT>KZ 847150 alerts 2022"][0]["evidence"] == {"destination_before": 1.0}
