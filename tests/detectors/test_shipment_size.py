"""The shipment-size line of the surge test and the sustained rule's look-back (issue 15: moderate
surges declared as bigger shipments, the same number of declarations)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transitwatch.detectors.errors import InvalidParameterError
from transitwatch.detectors.seasonal import SeasonalSurgeDetector, SurgeParams
from transitwatch.detectors.table import window_for

# counts swing 5-20 a month, each declaration about 10,000: the month's total swings x4, the size does not
COUNTS = [5.0, 20, 8, 15, 6, 18, 10, 12, 7, 16, 9, 14] * 2
SIZE = 10_000.0


def _history(rng: np.random.Generator) -> list[float]:
    return [c * SIZE * float(rng.lognormal(0.0, 0.05)) for c in COUNTS]


def _window(value: float, count: float, max_item: float | None = None, *, counted: bool = True):
    rng = np.random.default_rng(7)
    values = _history(rng)
    return window_for(
        [values], value=[value], count=[count if counted else float("nan")],
        counts=[COUNTS if counted else [float("nan")] * len(COUNTS)],
        max_item=[max_item if max_item is not None else (value / count * 1.1 if counted else float("nan"))],
    )


def _surge(window, **params):
    return SeasonalSurgeDetector(SurgeParams(**params)).score_many(window)


def test_the_same_count_of_three_times_bigger_declarations_is_a_candidate():
    s = _surge(_window(10 * 3 * SIZE, 10.0))
    assert s.z_size[0] >= 5.0
    assert s.z_robust[0] < 3.0  # the month's total alone is within the lane's swings
    assert s.candidate[0] and s.soft[0]
    off = _surge(_window(10 * 3 * SIZE, 10.0), size_test=False)
    assert off.z_size[0] == 0.0
    assert not off.candidate[0]


def test_the_same_total_from_more_declarations_of_the_usual_size_is_no_size_evidence():
    s = _surge(_window(30 * SIZE, 30.0))
    assert abs(s.z_size[0]) < 2.0


def test_one_giant_declaration_is_not_a_size():
    giant = 300_000.0 - 9 * SIZE
    s = _surge(_window(300_000.0, 10.0, max_item=giant))
    assert s.z_size[0] < 2.0
    assert not s.candidate[0]


def test_monthly_statistics_have_no_size_test():
    s = _surge(_window(10 * 3 * SIZE, 10.0, counted=False))
    assert s.z_size[0] == 0.0


def test_a_lane_with_few_months_of_declarations_has_no_size_test():
    w = _window(10 * 3 * SIZE, 10.0)
    counts = w.counts.copy()
    counts[:, :-4] = np.nan
    s = _surge(replace(w, counts=counts), size_min_months=6)
    assert s.z_size[0] == 0.0


def test_a_suspicious_month_two_back_pools_with_this_one_across_a_lull():
    rng = np.random.default_rng(3)
    base = [float(100_000 * rng.lognormal(0.0, 0.25)) for _ in range(30)]
    history = base + [300_000.0, 150_000.0]  # two back: x3, kept out of the baseline; last month: a lull
    w = window_for([history], value=[300_000.0], count=[float("nan")])
    protected = np.zeros_like(w.protected)
    protected[:, -2] = True
    w = replace(w, protected=protected)
    s = _surge(w, min_excess=1_000, z_soft=2.0)
    assert s.soft[0] and not s.immediate[0]
    assert (s.z_robust[0] + s.z_prev2[0]) / np.sqrt(2) >= 3.0
    assert s.sustained[0]
    assert not _surge(w, min_excess=1_000, z_soft=2.0, sustained_lookback=1).sustained[0]
    # the same months, nothing suspicious two back: no pair to pool
    assert not _surge(replace(w, protected=np.zeros_like(w.protected)), min_excess=1_000, z_soft=2.0).sustained[0]


def _three_months(f_two_back: float, f_last: float, f_now: float = 2.4):
    """A lane whose declarations vary widely in size (lognormal 0.3 a month), then months of the
    same number of declarations, each ``f`` times the usual size; none kept out of the baseline."""
    rng = np.random.default_rng(11)
    history = [c * SIZE * float(rng.lognormal(0.0, 0.3)) for c in COUNTS]
    history += [10 * SIZE * f_two_back, 12 * SIZE * f_last]
    return window_for([history], value=[10 * SIZE * f_now], count=[10.0], counts=[COUNTS + [10.0, 12.0]],
                      max_item=[SIZE * f_now * 1.1])


def test_three_months_of_bigger_declarations_pool_their_sizes():
    s = _surge(_three_months(2.4, 2.4))
    assert 1.0 <= s.z_size[0] < 3.0 and s.z_robust[0] < 2.2  # each month alone falls short
    assert not s.candidate[0] and not s.immediate[0]
    assert s.sustained[0]
    # two of the three months only: no pool
    assert not _surge(_three_months(1.0, 2.4)).sustained[0]
    assert not _surge(_three_months(2.4, 1.0)).sustained[0]
    assert not _surge(_three_months(2.4, 2.4), size_test=False).sustained[0]


@pytest.mark.parametrize("name, value", [
    ("size_test", 1), ("size_min_months", 1), ("size_min_months", 25), ("size_min_ratio", 0.5),
    ("size_min_ratio", 3.0), ("sustained_lookback", 0), ("sustained_lookback", 3),
])
def test_parameters_are_checked(name, value):
    with pytest.raises(InvalidParameterError):
        SurgeParams(**{name: value})


@given(factor=st.floats(0.2, 6.0), count=st.integers(1, 40), scale=st.floats(1e-3, 1e3))
@settings(max_examples=60, deadline=None)
def test_the_size_test_is_finite_and_ignores_the_currency(factor, count, scale):
    value = count * SIZE * factor
    w = _window(value, float(count))
    s = _surge(w)
    scaled = replace(w, values=w.values * scale, value=w.value * scale, max_item=w.max_item * scale)
    t = _surge(scaled)
    assert np.isfinite(s.z_size).all()
    np.testing.assert_allclose(t.z_size, s.z_size, atol=1e-6)


@given(count=st.integers(2, 40), low=st.floats(0.5, 3.0), step=st.floats(0.1, 3.0))
@settings(max_examples=60, deadline=None)
def test_bigger_declarations_are_never_less_unusual(count, low, step):
    a = _surge(_window(count * SIZE * low, float(count), max_item=SIZE * low))
    b = _surge(_window(count * SIZE * (low + step), float(count), max_item=SIZE * (low + step)))
    assert b.z_size[0] >= a.z_size[0] - 1e-9
