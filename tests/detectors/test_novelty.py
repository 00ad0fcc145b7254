"""Pooled novelty (issue 15, intermittent lanes): material months that do not come in a row."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import batch
from transitwatch.detectors.contract import parse_mapping
from transitwatch.detectors.engine import Engine
from transitwatch.detectors.errors import InvalidParameterError
from transitwatch.detectors.novelty import NoveltyDetector, NoveltyParams
from transitwatch.detectors.table import window_for
from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.replay import _event_key

NAN = float("nan")
CONFIG = WatchConfig.from_toml('[watch]\nhistory_start = "2019-01"\n')
UNPOOLED = WatchConfig.from_toml('[watch]\nhistory_start = "2019-01"\n[novelty]\npool_months = 1\n')


def _periods(n: int) -> list[str]:
    return [f"{2019 + i // 12}-{i % 12 + 1:02d}" for i in range(n)]


def _stats(values: list[float]) -> list:
    return [parse_mapping({"period": p, "reporter": "DE", "partner": "AM", "flow": "export", "hs_code": "85044000",
                           "value": v, "currency": "USD"})
            for p, v in zip(_periods(len(values)), values) if v > 0]


def _engine_alerts(records: list, config: WatchConfig) -> list:
    e = Engine(config)
    for r in sorted(records, key=_event_key):
        e.add(r)
    e.finish(close_last=True)
    return [a for a in e.drain() if not a.early]


def _batch_alerts(records: list, config: WatchConfig) -> list:
    return batch.detect(batch.monthly_cells(batch.records_frame(sorted(records, key=_event_key)), config), config)


def _signature(alerts: list) -> list:
    return sorted((a.alert_id, a.detectors, a.severity, a.score, a.observed_value, a.baseline_value) for a in alerts)


def test_alternate_months_fire_on_the_second_material_month():
    history = [[0.0] * 33 + [1.2e6, 0.0]]
    pooled = NoveltyDetector().score_many(window_for(history, value=[9e5], count=[NAN]))
    assert pooled.fired[0] and pooled.pooled[0] and pooled.baseline[0] == 0.0
    alone = NoveltyDetector(NoveltyParams(pool_months=1)).score_many(window_for(history, value=[9e5], count=[NAN]))
    assert not alone.fired[0], "without pooling a lone earlier month learned into the baseline is not enough"


def test_a_gap_of_two_months_is_inside_a_pool_of_four_not_three():
    history = [[0.0] * 32 + [1.2e6, 0.0, 0.0]]
    w = window_for(history, value=[9e5], count=[NAN])
    assert NoveltyDetector(NoveltyParams(pool_months=4)).score_many(w).fired[0]
    assert not NoveltyDetector(NoveltyParams(pool_months=3)).score_many(w).fired[0]


def test_one_material_month_alone_does_not_fire_on_monthly_statistics():
    s = NoveltyDetector().score_many(window_for([[0.0] * 35], value=[2e6], count=[NAN]))
    assert s.candidate[0] and not s.fired[0]


def test_the_pool_months_are_not_the_baseline_but_the_months_before_them_are():
    # material in the pool, but the lane was not near empty before it: not new
    history = [[80_000.0] * 30 + [0.0] * 3 + [1.2e6, 0.0]]
    assert not NoveltyDetector().score_many(window_for(history, value=[9e5], count=[NAN])).fired[0]


def test_pool_parameters_are_validated():
    with pytest.raises(InvalidParameterError, match="pool_min"):
        NoveltyParams(pool_months=3, pool_min=4)
    with pytest.raises(InvalidParameterError, match="pool_months"):
        NoveltyParams(lookback=12, pool_months=7)
    assert NoveltyParams(pool_months=1, pool_min=5).pool_months == 1, "pool_min is moot when pooling is off"


def test_the_shipped_watch_pools():
    p = WatchConfig.default().params["novelty"]
    assert (p.pool_months, p.pool_min) == (NoveltyParams().pool_months, NoveltyParams().pool_min)


@settings(max_examples=15, deadline=None)
@given(level=st.floats(100_000, 5e6), onset=st.integers(18, 30), seed=st.integers(0, 2**16))
def test_alternate_material_months_alert_by_the_second_one_on_every_path(level, onset, seed):
    rng = np.random.default_rng(seed)
    values = [0.0] * onset + [level * rng.lognormal(0, 0.3) if (i % 2 == 0) else 0.0 for i in range(10)]
    records = _stats(values)
    alerts = _engine_alerts(records, CONFIG)
    first = min((a.period for a in alerts if "novelty" in a.detectors), default=None)
    periods = _periods(len(values))
    # the onset month alone may pass (a value far above min_value); it must not wait past the second
    assert first is not None and periods[onset] <= first <= periods[onset + 2]
    assert _signature(alerts) == _signature(_batch_alerts(records, CONFIG)), "batch equals the engine"


@settings(max_examples=15, deadline=None)
@given(level=st.floats(20_000, 3e6), sigma=st.floats(0.02, 0.4), onset=st.integers(18, 30),
       seed=st.integers(0, 2**16))
def test_a_steady_lane_turning_intermittent_with_the_same_total_is_not_new(level, sigma, onset, seed):
    rng = np.random.default_rng(seed)
    noise = rng.lognormal(0, sigma, 48)
    values = [float(level * noise[i] * (1 if i < onset else 2 * ((i - onset) % 2 == 0))) for i in range(48)]
    records = _stats(values)
    pooled, unpooled = _engine_alerts(records, CONFIG), _engine_alerts(records, UNPOOLED)
    assert not [a for a in pooled if "novelty" in a.detectors]
    assert _signature(pooled) == _signature(unpooled), "pooling adds no alert to the decoy"
