"""Event scoring and the baselines on hand-built cases whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmarks import baselines, scoring
from benchmarks.scoring import Truth, month_index

FIRST = month_index("2019-01")
LAST = FIRST + 59  # 60 months; evaluation from 2021-01, 36 months
A = ("DE", "KG", "export", "854231")  # dense, step x5 from 2022-03, back at base 2022-07
B = ("IT", "AM", "export", "851762")  # sparse, never surged, a decoy in 2021-06
C = ("FR", "KZ", "export", "880730")  # low, ramp x3 from 2023-01 to the end
D = ("PL", "GE", "export", "854239")  # not in the truth's universe


def _series(key, density):
    r, p, f, h = key
    return {"kind": "series", "reporter": r, "partner": p, "flow": f, "hs6": h, "density": density, "base_rate": 1.0}


def _surge(key, onset, end, shape, factor, density):
    r, p, f, h = key
    return {"kind": "surge", "reporter": r, "partner": p, "flow": f, "hs6": h, "onset": onset, "shape": shape,
            "factor": factor, "ramp_months": 1 if shape == "step" else 3, "end": end, "event_id": key[0],
            "density": density}


TRUTH_ROWS = [
    {"kind": "sanctions", "month": "2022-03", "destinations": ["RU", "BY"]},
    _series(A, "dense"), _series(B, "sparse"), _series(C, "low"),
    _surge(A, "2022-03", "2022-07", "step", 5.0, "dense"),
    _surge(C, "2023-01", None, "ramp", 3.0, "low"),
    {"kind": "decoy", "reporter": "IT", "partner": "AM", "flow": "export", "hs6": "851762", "month": "2021-06",
     "factor": 40.0, "declaration_id": "x1", "density": "sparse"},
]


def m(period: str) -> int:
    return month_index(period)


@pytest.fixture()
def truth() -> Truth:
    return Truth.from_rows(TRUTH_ROWS)


def test_truth_reads_universe_surges_and_decoys(truth):
    assert truth.series == {A: "dense", B: "sparse", C: "low"}
    assert [(s.key, s.onset, s.end) for s in truth.surges] == [(A, m("2022-03"), m("2022-07")), (C, m("2023-01"), None)]
    assert [(d.key, d.month) for d in truth.decoys] == [(B, m("2021-06"))]


def test_found_with_delay_one(truth):
    s = scoring.score(truth, [(A, m("2022-04"))], first=FIRST, last=LAST)
    assert (s.events, s.found, s.median_delay) == (2, 1, 1.0)
    assert s.recall_x4 == 1.0 and s.false_alarms == 0


def test_missed_at_delay_three_and_not_a_false_alarm(truth):
    s = scoring.score(truth, [(C, m("2023-04"))], first=FIRST, last=LAST)
    assert s.found == 0 and s.recall == 0.0 and s.ramp_recall == 0.0 and s.sparse_recall == 0.0
    assert s.false_alarms == 0  # inside the surge window
    assert math.isnan(s.median_delay)
    assert scoring.missed(truth, [(C, m("2023-04"))], first=FIRST, last=LAST) == list(truth.surges)


def test_first_alert_in_range_gives_the_delay(truth):
    s = scoring.score(truth, [(A, m("2022-05")), (A, m("2022-03")), (C, m("2023-03"))], first=FIRST, last=LAST)
    assert s.delays == (0, 2) and s.recall == 1.0


def test_false_alarm_counted_once_per_series_month(truth):
    twice = [(B, m("2021-09")), (B, m("2021-09"))]  # two detectors, one series-month
    s = scoring.score(truth, twice, first=FIRST, last=LAST)
    assert s.false_alarms == 1
    # 36 evaluation months each; A loses 4 window + 2 grace months, C loses 12 window months
    assert s.fa_per_1000 == pytest.approx(1000 / (30 + 36 + 24))
    assert s.sparse_fa_per_1000 == pytest.approx(1000 / (36 + 24))


def test_inside_window_and_grace_months_are_not_false_alarms(truth):
    inside = [(A, m(p)) for p in ("2022-03", "2022-04", "2022-05", "2022-06")]
    grace = [(A, m("2022-07")), (A, m("2022-08"))]
    assert scoring.score(truth, inside + grace, first=FIRST, last=LAST).false_alarms == 0
    after = scoring.score(truth, [(A, m("2022-09")), (A, m("2022-02"))], first=FIRST, last=LAST)
    assert after.false_alarm_cells == {(A, m("2022-09")), (A, m("2022-02"))}


def test_warmup_months_and_unscored_series_are_ignored(truth):
    s = scoring.score(truth, [(A, m("2020-06")), (D, m("2022-01"))], first=FIRST, last=LAST)
    assert s.false_alarms == 0 and s.unscored_alerts == 1


def test_full_case_precision_f1_decoy_and_sparse_rows(truth):
    alerts = [
        (A, m("2022-04")), (A, m("2022-04")),  # found, delay 1
        (A, m("2022-08")),  # grace: neither true nor false
        (A, m("2022-09")),  # false alarm (dense)
        (B, m("2021-06")), (B, m("2021-06")),  # decoy month, one false alarm (sparse)
        (C, m("2023-04")),  # in the window, too late to find the ramp
    ]
    s = scoring.score(truth, alerts, first=FIRST, last=LAST)
    assert (s.recall, s.recall_x4, s.ramp_recall, s.sparse_recall) == (0.5, 1.0, 0.0, 0.0)
    assert s.false_alarms == 2
    assert s.fa_per_1000 == pytest.approx(2000 / 90)
    assert s.sparse_fa_per_1000 == pytest.approx(1000 / 60)
    assert s.precision == 0.5 and s.f1 == pytest.approx(0.5)
    assert s.decoy_share == 1.0
    assert scoring.score(truth, alerts[:4], first=FIRST, last=LAST).decoy_share == 0.0


def test_events_need_an_evaluation_onset_and_three_months_of_data():
    rows = [_series(A, "dense"), _surge(A, "2020-05", None, "step", 5.0, "dense"),
            _series(B, "dense"), _surge(B, "2023-11", None, "step", 5.0, "dense"),
            _series(C, "dense"), _surge(C, "2023-10", None, "step", 5.0, "dense")]
    s = scoring.score(Truth.from_rows(rows), [], first=FIRST, last=LAST)
    assert s.events == 1  # only C: A starts in the warm-up, B has 2 months left


def test_recall_by_groups(truth):
    groups = scoring.recall_by(truth, [(A, m("2022-03"))], lambda s: s.shape, first=FIRST, last=LAST)
    assert groups == {"ramp": (0, 1), "step": (1, 1)}


def test_operating_point_stays_within_the_false_alarm_budget(truth):
    scored = [(A, m("2022-03"), 0.9), (B, m("2021-02"), 0.8), (B, m("2021-03"), 0.7), (C, m("2023-01"), 0.6)]
    cut, s = scoring.operating_point(truth, scored, fa_per_1000=1000 / 90, first=FIRST, last=LAST)
    assert cut == 0.8 and s.false_alarms == 1 and s.found == 1
    cut, s = scoring.operating_point(truth, scored, fa_per_1000=0.0, first=FIRST, last=LAST)
    assert cut == 0.9 and s.false_alarms == 0


def _cells(rows):
    return pd.DataFrame(rows, columns=["reporter", "partner", "flow", "hs6", "month", "value"])


def test_spreadsheet_rule_on_a_tiny_frame():
    kg = ("DE", "KG", "export", "854231")
    ru = ("DE", "RU", "export", "854231")
    cells = _cells([
        (*kg, 0, 10_000.0), (*kg, 12, 30_000.0),  # exactly x3, excess 20k: alert
        (*kg, 1, 2_000.0), (*kg, 13, 9_000.0),  # x4.5 but excess 7k under the floor
        (*kg, 14, 10_000.0),  # nothing a year before, at the floor: alert
        (*kg, 3, 20_000.0), (*kg, 15, 50_000.0),  # x2.5
        (*kg, 6, 90_000.0),  # no year before in the data
        (*ru, 0, 1_000.0), (*ru, 12, 100_000.0),  # not a hub
    ])
    assert baselines.spreadsheet_rule(cells, hubs={"KG"}, floor=10_000.0) == {(kg, 12), (kg, 14)}
    assert baselines.spreadsheet_rule(cells, hubs={"KG"}, ratio=2.0, floor=10_000.0) == {(kg, 12), (kg, 14), (kg, 15)}


def test_half_space_features_and_scores():
    v = np.array([[0.0] * 12 + [100.0, 0.0]])
    x = baselines.half_space_features(v)
    assert x.shape == (1, 14, 3)
    assert x[0, 12].tolist() == pytest.approx([np.log1p(100.0), np.log1p(100.0), np.log1p(100.0)])
    k = ("DE", "KG", "export", "854231")
    cells = _cells([(*k, t, 1000.0 + 10 * (t % 3)) for t in range(30)] + [(*k, 30, 90_000.0)])
    frame = baselines.half_space_scores(cells, hubs={"KG"}, seed=0, n_trees=10, window_size=10)
    assert len(frame) == 31
    assert frame.loc[frame["month"] == 30, "score"].item() >= frame["score"].iloc[12:30].max()


def test_the_verdict_capture_passes_every_argument_of_decide_through():
    """The benchmark's hook on AlertPolicy.decide must take what the engine passes (the case
    onsets of the sanctions evidence, for one) and record the month-end verdicts."""
    from transitwatch.detectors.contract import parse_mapping
    from transitwatch.detectors.engine import Engine

    sink: list = []
    with baselines._capture_verdicts(sink):
        e = Engine()
        for i in range(14):
            e.add(parse_mapping({"period": f"{2020 + i // 12}-{i % 12 + 1:02d}", "reporter": "DE", "partner": "KG",
                                 "flow": "export", "hs_code": "85423190", "value": 50_000.0 * (1 + i % 3),
                                 "currency": "USD"}))
        e.finish(close_last=True)
    assert len(sink) >= 13, "one verdict per closed month"
