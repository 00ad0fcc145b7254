"""The level-shift rank test (ramp) and corroboration by peers in the same hub and HS6."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transitwatch.detectors.corroboration import CorroborationDetector, CorroborationParams
from transitwatch.detectors.errors import InvalidParameterError
from transitwatch.detectors.ramp import RampDetector, RampParams, _rank_tail
from transitwatch.detectors.table import window_for

NAN = float("nan")
# Eurostat LT>KG 851762, 2020-06 to 2022-05 (EUR k): mostly nothing, two spikes
LUMPY = [0, 3, 0, 13, 0, 214, 0, 0, 4, 1, 0, 0, 0, 138, 0, 0, 0, 0, 0, 0, 0, 3, 11, 2]


def _shift(history_k, value_k, **params) -> bool:
    w = window_for([[1000.0 * x for x in history_k]], value=[1000.0 * value_k], count=[NAN])
    return bool(RampDetector(RampParams(**params)).level_shift(w)[0])


@given(k=st.integers(1, 6), j=st.integers(1, 4), m=st.integers(0, 8))
@settings(max_examples=60, deadline=None)
def test_rank_tail_is_the_exact_chance_for_exchangeable_months(k, j, m):
    """Enumerate every placement of the k recent months among all m + k ranks (no ties)."""
    n = m + k
    hits = [0] * (k + 1)
    for recent in itertools.combinations(range(n), k):  # rank 0 is the largest
        earlier = [r for r in range(n) if r not in recent]
        threshold = earlier[j - 1] if len(earlier) >= j else n  # the j-th largest earlier month
        above = sum(r < threshold for r in recent)
        for x in range(above + 1):
            hits[x] += 1
    table = _rank_tail(k, j)
    for x in range(k + 1):
        assert table[m, x] == pytest.approx(hits[x] / math.comb(n, k))


def test_level_shift_catches_a_lumpy_lane_trading_above_its_highs_for_six_months():
    """Eurostat LT>KG 851762: after two years of spikes, 2022-06 to 2022-11 never below 50k.
    No month stands out against the 214k spike; six in a row above the fourth-largest do."""
    assert _shift(LUMPY + [100, 156, 50, 82, 272], 142)
    assert not _shift(LUMPY + [100, 156, 0, 82, 272], 142), "a month back at nothing breaks the run"
    assert not _shift(LUMPY + [100, 156, 50, 82, 272], 1), "the month itself must be above the earlier highs"
    assert not _shift(LUMPY + [100, 156, 50, 82, 272], 142, shift_alpha=0.0), "shift_alpha 0 turns it off"


def test_level_shift_needs_a_large_and_material_rise():
    steady = [100.0, 120, 90, 110, 95, 105] * 4
    assert not _shift(steady + [125, 126, 127, 128, 129], 130), "above the highs but not 3x the level"
    assert _shift(steady + [400, 420, 380, 410, 390], 400)
    assert not _shift(steady + [400, 420, 380, 410, 390], 400, min_excess=1e6), "excess under the floor"
    assert not _shift(steady[-12:] + [400, 420, 380, 410, 390], 400), "fewer than 18 known months before"


@given(st.lists(st.floats(0.0, 1e6), min_size=30, max_size=30), st.permutations(range(30)))
@settings(max_examples=100, deadline=None)
def test_level_shift_never_fires_unless_all_six_months_beat_the_fourth_largest(values, order):
    values = [values[i] for i in order]
    history, value = values[:-1], values[-1]
    if _shift(history, value):
        earlier = sorted(history[-29:-5], reverse=True)
        assert all(x > earlier[3] for x in history[-5:] + [value])


def test_ramp_params_are_checked():
    with pytest.raises(InvalidParameterError):
        RampParams(shift_months=(1,))
    with pytest.raises(InvalidParameterError):
        RampParams(shift_rank=0)
    assert RampParams(shift_months=[4, 6]).shift_months == (4, 6)


def _corroborate(alert, z, ratio, excess, group=None, **params):
    n = len(alert)
    return CorroborationDetector(CorroborationParams(**params)).score_many(
        group=np.zeros(n, dtype=int) if group is None else np.asarray(group),
        alert=np.asarray(alert), z=np.asarray(z, float), ratio=np.asarray(ratio, float),
        excess=np.asarray(excess, float),
    ).tolist()


def test_a_rising_peer_of_an_alerting_lane_is_corroborated():
    assert _corroborate([True, False], [5.0, 2.5], [4.0, 3.0], [1e6, 2e5], min_reporters=2) == [True, True]
    assert _corroborate([True, False], [5.0, 2.5], [4.0, 3.0], [1e6, 2e5]) == [False, False], "a pair: not by default"


def test_corroboration_needs_an_alert_in_the_same_group():
    assert _corroborate([False, False], [2.9, 2.9], [3.0, 3.0], [2e5, 2e5]) == [False, False]
    assert _corroborate([True, False], [5.0, 2.5], [4.0, 3.0], [1e6, 2e5], group=[0, 1]) == [False, False]


@pytest.mark.parametrize("z, ratio, excess", [(1.9, 3.0, 2e5), (2.5, 1.9, 2e5), (2.5, 3.0, 9e4), (2.5, NAN, NAN)])
def test_a_peer_must_be_unusual_large_and_material(z, ratio, excess):
    assert _corroborate([True, False], [5.0, z], [4.0, ratio], [1e6, excess]) == [False, False]


def test_min_reporters_counts_the_alerting_lanes_too():
    rising = ([True, False, False], [5.0, 2.5, 0.0], [4.0, 3.0, 1.0], [1e6, 2e5, 0.0])
    assert _corroborate(*rising, min_reporters=2) == [True, True, False]
    assert _corroborate(*rising, min_reporters=3) == [False, False, False]
    assert _corroborate(*rising, min_reporters=2, min_alerts=2) == [False, False, False]


def test_an_alert_says_which_ramp_test_passed():
    """The Eurostat LT>KG 851762 shape through the engine: a ramp alert by its level shift alone,
    and the explanation says so instead of "a rise building"."""
    from transitwatch.detectors.contract import parse_mapping
    from transitwatch.detectors.engine import Engine
    from transitwatch.detectors.watch import WatchConfig

    months = [f"{y}-{m:02d}" for y in (2020, 2021, 2022) for m in range(1, 13)][5:35]  # 2020-06 .. 2022-11
    values = LUMPY + [100, 156, 50, 82, 272, 142]
    engine = Engine(WatchConfig.from_toml('[watch]\nhistory_start = "2020-06"\n'))
    for period, value in zip(months, values):
        if value:
            engine.add(parse_mapping({"period": period, "reporter": "LT", "partner": "KG", "flow": "export",
                                      "hs_code": "85176200", "value": 1000.0 * value, "currency": "USD"}))
    engine.finish(close_last=True)
    (last,) = [a for a in engine.drain() if a.period == "2022-11"]
    assert "ramp" in last.detectors and last.evidence["ramp_tests"] == ["level_shift"]
    assert "a level shift: month after month above the lane's earlier highs" in last.explanation
    assert "a rise building" not in last.explanation
