"""The diversion detector: a deep collapse of the Russia lane lowers the hub's bar, a hub rise may
follow the collapse by up to ``lag`` months, and the scores carry the collapsed lane's before/after."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transitwatch.detectors.diversion import DiversionDetector, DiversionParams
from transitwatch.detectors.errors import InvalidParameterError

# two lanes of one (reporter, flow, hs6): a hub lane (row 0) and the Russia lane (row 1)
GROUP = np.array([0, 0])
HUB = np.array([True, False])
DEST = np.array([False, True])
LEVEL = np.array([10_000.0, 100_000.0])  # a month


def _score(russia_recent, hub_z, *, lagged=None, params=None, hub_recent=60_000.0, before=None):
    d = DiversionDetector(params or DiversionParams())
    return d.score_many(group=GROUP, is_hub=HUB, is_destination=DEST, level=LEVEL,
                        recent=np.array([hub_recent, russia_recent]), z_robust=np.array([hub_z, -3.0]),
                        steady=np.array([True, True]), recent_lagged=lagged,
                        recent_before=None if before is None else np.array([30_000.0, before]))


def test_a_deep_collapse_lets_a_weak_hub_rise_fire():
    assert _score(0.0, 1.2).fired.tolist() == [True, False], "Russia at 0: z 1.2 is enough"
    assert not _score(120_000.0, 1.2).fired.any(), "Russia at 40%: the plain bar (z >= 3) holds"
    assert _score(120_000.0, 3.5).fired[0], "Russia at 40% and an unusual hub month"
    assert not _score(0.0, 0.5).fired.any(), "the weaker bar is still a bar"


def test_the_hub_rise_may_follow_the_deep_collapse_by_up_to_lag_months():
    # now Russia is at 40% of its level (still down); three months ago its three months were at 0
    lagged = np.array([[0.0, 0.0, 0.0], [150_000.0, 60_000.0, 0.0]])
    assert _score(120_000.0, 1.2, lagged=lagged).fired[0]
    assert not _score(120_000.0, 1.2, lagged=lagged, params=DiversionParams(lag=2)).fired[0], "beyond lag"
    recovered = _score(300_000.0, 1.2, lagged=lagged)
    assert not recovered.fired[0], "a lane back at its level no longer marks the group"


def test_only_a_fresh_deep_collapse_lowers_the_bar():
    # Russia's three months ending lag + months ago: still at its level (fresh) or already at 0 (old)
    assert _score(0.0, 1.2, before=300_000.0).fired[0], "Russia fell within the rise's reach"
    old = _score(0.0, 1.2, before=0.0)
    assert not old.fired[0] and not old.deep[0], "a collapse long ago does not lower every later hub rise"
    assert _score(0.0, 3.5, before=0.0).fired[0], "the plain bar still names diversion after an old collapse"


def test_the_scores_carry_the_collapsed_lanes_before_and_after():
    s = _score(9_000.0, 1.2)
    assert s.fired[0] and s.deep[0]
    assert s.destination_before[0] == pytest.approx(100_000.0)
    assert s.destination_after[0] == pytest.approx(3_000.0)
    quiet = _score(300_000.0, 1.2)
    assert np.isnan(quiet.destination_before[0]), "no collapsed lane, no before/after"


def test_deep_ratio_cannot_exceed_collapse_ratio():
    with pytest.raises(InvalidParameterError):
        DiversionParams(collapse_ratio=0.3, deep_ratio=0.4)
    with pytest.raises(InvalidParameterError):
        DiversionParams(lag=13)


@st.composite
def _months(draw):
    n_groups = draw(st.integers(1, 4))
    n = draw(st.integers(1, 12))
    group = np.array(draw(st.lists(st.integers(0, n_groups - 1), min_size=n, max_size=n)))
    is_hub = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    is_dest = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    money = st.floats(0, 1e7, allow_nan=False)
    level = np.array(draw(st.lists(st.one_of(money, st.just(float("nan"))), min_size=n, max_size=n)))
    recent = np.array(draw(st.lists(money, min_size=n, max_size=n)))
    lagged = np.array(draw(st.lists(st.lists(money, min_size=3, max_size=3), min_size=n, max_size=n)))
    z = np.array(draw(st.lists(st.floats(-10, 10, allow_nan=False), min_size=n, max_size=n)))
    steady = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    return group, is_hub, is_dest, level, recent, lagged, z, steady


def _run(m, scale=1.0, order=None):
    group, is_hub, is_dest, level, recent, lagged, z, steady = m
    order = np.arange(group.size) if order is None else order
    d = DiversionDetector(DiversionParams(min_excess=10_000.0 * scale))
    return d.score_many(group=group[order], is_hub=is_hub[order], is_destination=is_dest[order],
                        level=level[order] * scale, recent=recent[order] * scale,
                        recent_lagged=lagged[order] * scale, z_robust=z[order], steady=steady[order])


@settings(max_examples=200, deadline=None)
@given(_months(), st.sampled_from([0.5, 4.0, 1024.0]))
def test_only_hub_lanes_fire_and_money_scale_with_min_excess_changes_nothing(m, scale):
    s = _run(m)
    assert not (s.fired & ~m[1]).any()
    assert s.deep.dtype == bool and s.deep.shape == s.fired.shape
    t = _run(m, scale)
    assert np.array_equal(s.fired, t.fired)
    np.testing.assert_allclose(t.destination_before, s.destination_before * scale, rtol=1e-9)
    after = s.destination_after[s.fired]
    assert np.all(np.isfinite(after)) and np.all(after >= 0), "a fired lane names a collapsed lane"


@settings(max_examples=200, deadline=None)
@given(_months(), st.randoms(use_true_random=False))
def test_the_order_of_the_rows_does_not_matter(m, rnd):
    order = np.arange(m[0].size)
    rnd.shuffle(order)
    s, t = _run(m), _run(m, order=order)
    assert np.array_equal(s.fired[order], t.fired)
    assert np.array_equal(s.deep[order], t.deep)
