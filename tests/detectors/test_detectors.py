"""The detector contract suite and the behaviours the issue names."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transitwatch.detectors.base import HISTORY_MONTHS
from transitwatch.detectors.novelty import NoveltyDetector
from transitwatch.detectors.policy import AlertPolicy
from transitwatch.detectors.ramp import RampParams
from transitwatch.detectors.seasonal import SeasonalSurgeDetector, SurgeParams
from transitwatch.detectors.table import window_for

NAN = float("nan")
history_values = st.lists(
    st.one_of(st.just(0.0), st.floats(min_value=1.0, max_value=1e9, allow_nan=False)),
    min_size=1,
    max_size=HISTORY_MONTHS,
)


def _copy(w):
    return {k: getattr(w, k).copy() for k in w.__dataclass_fields__}


@given(history=history_values, value=st.floats(min_value=0, max_value=1e10), count=st.integers(0, 500))
@settings(max_examples=150, deadline=None)
def test_scores_are_finite_and_scoring_is_pure(history, value, count):
    w = window_for([history], value=[value], count=[float(count)], counts=[[1.0] * len(history)], max_item=[value])
    before = _copy(w)
    a = SeasonalSurgeDetector().score_many(w)
    b = SeasonalSurgeDetector().score_many(w)
    assert np.isfinite(a.score).all() and np.isfinite(a.z_robust).all() and np.isfinite(a.p_value).all()
    assert 0.0 <= a.p_value[0] <= 1.0
    assert a.score.tolist() == b.score.tolist()
    for k, v in before.items():
        assert np.array_equal(getattr(w, k), v, equal_nan=True), k


@given(
    history=history_values,
    value=st.one_of(st.just(0.0), st.floats(min_value=1.0, max_value=1e9)),
    scale=st.sampled_from([0.01, 7.0, 1000.0]),
)
@settings(max_examples=150, deadline=None)
def test_currency_scale_invariance(history, value, scale):
    """Multiplying every value and every money threshold by a constant changes no decision."""

    def decide(k):
        w = window_for([[x * k for x in history]], value=[value * k], count=[NAN])
        policy = AlertPolicy(
            surge=SurgeParams(min_excess=10_000 * k, strong_excess=50_000 * k),
            ramp=RampParams(min_excess=10_000 * k),
        )
        from transitwatch.detectors.novelty import NoveltyParams
        from transitwatch.detectors.policy import PolicyParams

        policy.novelty = NoveltyDetector(NoveltyParams(baseline_max=2_000 * k, min_value=25_000 * k))
        policy.params = PolicyParams(minor_excess=50_000 * k, large_excess=250_000 * k, very_large_excess=2_500_000 * k)
        v = policy.decide(w)
        return (v.alert.tolist(), v.protect.tolist(), v.severity.tolist(), v.confidence.tolist(), v.materiality.tolist(),
                np.round(v.surge.z_robust, 6).tolist())

    assert decide(1.0) == decide(scale)


def test_detectors_pickle():
    for obj in (SeasonalSurgeDetector(), AlertPolicy()):
        assert type(pickle.loads(pickle.dumps(obj))) is type(obj)


def test_warm_up_is_quiet():
    """With no history at all nothing alerts, whatever the month holds."""
    w = window_for([[]], value=[5e8], count=[400.0])
    assert not AlertPolicy().decide(w).alert.any()


def _dense(months=36, level=200_000.0, seed=0):
    rng = np.random.default_rng(seed)
    return list(level * rng.lognormal(0, 0.15, months))


def test_surge_on_a_dense_lane_alerts_at_once():
    hist = _dense()
    counts = [40.0] * 36
    w = window_for([hist], value=[3 * 200_000.0], count=[120.0], counts=[counts], max_item=[20_000.0])
    v = AlertPolicy().decide(w)
    assert v.alert[0] and "seasonal_surge" in v.detectors(0)


def test_one_giant_shipment_is_not_a_surge():
    hist = _dense()
    counts = [40.0] * 36
    # one declaration of 2.5m on top of an ordinary month of 40 declarations
    w = window_for([hist], value=[200_000.0 + 2_500_000.0], count=[41.0], counts=[counts], max_item=[2_500_000.0])
    v = AlertPolicy().decide(w)
    assert not v.alert[0]
    assert v.protect[0], "the giant month must still be kept out of the baseline"


def test_sparse_lane_count_surge():
    """A lane with a shipment every few months suddenly gets a dozen."""
    rng = np.random.default_rng(1)
    counts = rng.poisson(0.3, 36).astype(float)
    values = counts * 30_000.0
    w = window_for([values], value=[12 * 30_000.0], count=[12.0], counts=[counts], max_item=[40_000.0])
    v = AlertPolicy().decide(w)
    assert v.surge.p_count[0] < 1e-6
    assert v.alert[0]


def test_seasonal_peak_is_not_a_surge():
    year = [100_000.0] * 11 + [260_000.0]  # every December is 2.6 times the other months
    to_november = (year * 4)[-37:-1]  # 36 months ending with a November
    w = window_for([to_november], value=[265_000.0], count=[NAN])
    v = AlertPolicy().decide(w)
    assert not v.alert[0] and not v.surge.soft[0]
    # the same value in an ordinary month (a June) is a surge candidate
    to_may = (year * 4)[-43:-7]
    assert AlertPolicy().decide(window_for([to_may], value=[265_000.0], count=[NAN])).surge.candidate[0]


def test_novelty_needs_a_known_empty_baseline():
    d = NoveltyDetector()
    assert d.score_many(window_for([[0.0] * 12], value=[90_000.0], count=[4.0])).fired[0]
    assert not d.score_many(window_for([[0.0] * 5], value=[90_000.0], count=[4.0])).fired[0]
    one_shipment = d.score_many(window_for([[0.0] * 12], value=[90_000.0], count=[1.0]))
    assert one_shipment.candidate[0] and not one_shipment.fired[0]


def test_import_detectors_pulls_no_service_dependencies():
    code = (
        "import sys, detectors, transitwatch.detectors.engine, transitwatch.detectors.batch, transitwatch.detectors.watch;"
        "bad = [m for m in ('faust', 'aiokafka', 'prometheus_client') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_quarter_record_catches_a_lumpy_lane_that_starts_trading_every_month():
    """Two years shaped like Eurostat LT>KZ 847150 2020-2021 (EUR k: one spike), then a lane
    trading every month, where no single month stands out against that spike."""
    lumpy = [11, 252, 0, 0, 0, 0, 0, 0, 5, 0, 0, 9] * 2
    policy = AlertPolicy()

    def record(history_k, value_k):
        w = window_for([[1000.0 * x for x in history_k]], value=[1000.0 * value_k], count=[NAN])
        return bool(policy.ramp.quarter_record(w, policy.surge.score_many(w))[0])

    # 300k, 350k, 400k: without its largest month the quarter is 650k, against a best
    # quarter of 263k in the two years before
    assert record(lumpy + [300, 350], 400)
    assert not record(lumpy + [100, 120], 150), "a quarter below twice the best is not a record"
    assert not record(lumpy + [0, 0], 2_000), "one giant month is not a quarter record"


def test_scikit_learn_loads_only_when_the_isolation_forest_is_fitted():
    code = (
        "import sys, transitwatch.streams.cli, transitwatch.streams.replay, transitwatch.detectors.policy;"
        "from transitwatch.detectors.watch import WatchConfig; WatchConfig.default().policy();"
        "before = 'sklearn' in sys.modules;"
        "import numpy as np; from transitwatch.detectors.isolation import IsolationForestDetector, IsolationParams;"
        "IsolationForestDetector(IsolationParams(n_estimators=10)).fit(np.zeros((20, 2)));"
        "print(before, 'sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_warm_up_holds_back_seasonal_and_ramp_alerts_until_a_year_is_known():
    """``[policy] min_history``: a rise against 9 known months alerts with no warm-up and not with
    the default 12; against 12 known months it alerts either way; novelty is not held back."""
    from transitwatch.detectors.policy import PolicyParams
    from transitwatch.detectors.table import window_for

    params = dict(surge=SurgeParams(min_excess=100, strong_excess=100), ramp=RampParams(min_excess=100))
    short = window_for([[100.0, 120, 90] * 3], value=[50_000.0], count=[float("nan")])
    year = window_for([[100.0, 120, 90, 110] * 3], value=[50_000.0], count=[float("nan")])
    cold = AlertPolicy(**params, policy=PolicyParams(min_history=0))
    warm = AlertPolicy(**params)
    assert warm.params.min_history == 12
    assert cold.decide(short).alert[0] and "seasonal_surge" in cold.decide(short).detectors(0)
    assert not warm.decide(short).alert[0]
    assert warm.decide(short).protect[0], "a held-back rise is still kept out of the baseline"
    assert warm.decide(year).alert[0] and "seasonal_surge" in warm.decide(year).detectors(0)
    new_lane = window_for([[0.0] * 12], value=[90_000.0], count=[4.0])
    longer = AlertPolicy(**params, policy=PolicyParams(min_history=24))
    assert longer.decide(new_lane).detectors(0) == ("novelty",)
