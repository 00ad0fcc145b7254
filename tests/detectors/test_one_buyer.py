"""The one-buyer route of the new-consignee detector, and the month's value to its largest new consignee."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.batch import detect, monthly_cells, records_frame
from benchmarks.scenarios import evasion
from transitwatch.detectors.columnar import ColumnarReplay
from transitwatch.detectors.consignees import ConsigneeParams, NewConsigneeDetector
from transitwatch.detectors.contract import parse_mapping
from transitwatch.detectors.engine import Engine, new_top_of
from transitwatch.detectors.errors import InvalidParameterError
from transitwatch.detectors.frame import Block
from transitwatch.detectors.seasonal import SeasonalSurgeDetector
from transitwatch.detectors.snapshot import EngineSnapshot
from transitwatch.detectors.table import SeriesState, window_for
from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.replay import _event_key

# a lane of ten 2,000 declarations a month to its usual buyers (20,000 a month), with a new buyer once a year
PAST = [[20_000.0] * 36]
COUNTS = [[10.0] * 36]
CHURN = [([0.0] * 11 + [1.0]) * 3]


def _scores(value, count, new_top, party=1.0, churn=CHURN, max_item=None, params=None):
    big = max(new_top, 2_000.0) if max_item is None else max_item
    w = window_for(PAST, value=[value], count=[count], counts=COUNTS, parties=churn, party=[party],
                   max_item=[big], new_top=[new_top])
    return NewConsigneeDetector(params).score_many(w, SeasonalSurgeDetector().score_many(w))


def test_one_large_declaration_to_a_new_buyer_fires_on_the_one_buyer_route():
    s = _scores(value=18_000.0 + 100_000.0, count=10.0, new_top=100_000.0)
    assert s.one_buyer[0] and s.fired[0]


def test_the_same_month_carried_by_an_old_buyer_does_not():
    # the largest declaration went to a known buyer: the new one took 2,000
    s = _scores(value=18_000.0 + 100_000.0, count=10.0, new_top=2_000.0)
    assert not s.one_buyer[0]


def test_unknown_new_buyer_values_keep_the_route_silent():
    s = _scores(value=118_000.0, count=10.0, new_top=float("nan"))
    assert not s.one_buyer[0]


def test_a_giant_declaration_to_a_known_buyer_with_a_new_buyer_beside_it_does_not():
    # the decoy: the largest declaration (100,000) went to a known buyer, a new one took 30,000
    s = _scores(value=148_000.0, count=11.0, new_top=30_000.0, max_item=100_000.0)
    assert not s.one_buyer[0] and s.z_one_buyer[0] == 0.0


def test_a_lane_that_churns_buyers_does_not():
    # half the months bring a new buyer: one more, however large, is the lane's own habit
    s = _scores(value=118_000.0, count=10.0, new_top=100_000.0, churn=[[5.0, 0.0] * 18])
    assert not s.one_buyer[0]


def test_the_joint_z_grows_as_the_lane_churns_less():
    calm = _scores(value=60_000.0, count=10.0, new_top=42_000.0, churn=[[0.0] * 36])
    busy = _scores(value=60_000.0, count=10.0, new_top=42_000.0, churn=[[1.0, 0.0] * 18])
    assert calm.z_one_buyer[0] > busy.z_one_buyer[0] > 0.0


def test_a_new_buyer_of_an_ordinary_month_does_not():
    s = _scores(value=22_000.0, count=10.0, new_top=3_000.0)
    assert not s.one_buyer[0]


@given(value=st.floats(0, 1e8), share=st.floats(0, 1), count=st.integers(1, 60), party=st.integers(0, 3))
@settings(max_examples=200, deadline=None)
def test_the_route_needs_a_new_buyer_taking_most_of_the_month(value, share, count, party):
    top = value * share if party else 0.0
    s = _scores(value=value, count=float(count), new_top=top, party=float(party))
    assert np.isfinite(s.z_one_buyer[0])
    if s.one_buyer[0]:
        p = ConsigneeParams()
        assert party >= 1 and top >= p.one_buyer_share * value and top >= 2_000.0 and s.fired[0]
        assert top >= p.one_buyer_item_ratio * 2_000.0 and s.z_one_buyer[0] >= p.one_buyer_z


@given(value=st.floats(1e5, 1e8), scale=st.floats(0.01, 100))
@settings(max_examples=100, deadline=None)
def test_the_route_ignores_the_currency(value, scale):
    """Scale invariance: every amount times the same factor gives the same verdict (min_excess aside)."""
    def run(k):
        w = window_for([[20_000.0 * k] * 36], value=[value * k], count=[10.0], counts=COUNTS, parties=CHURN,
                       party=[1.0], max_item=[0.9 * value * k], new_top=[0.9 * value * k])
        p = ConsigneeParams(min_excess=0.0)
        return NewConsigneeDetector(p).score_many(w, SeasonalSurgeDetector().score_many(w)).one_buyer[0]
    assert run(1.0) == run(scale)


def test_parameters_are_checked():
    with pytest.raises(InvalidParameterError):
        ConsigneeParams(one_buyer_share=1.5)
    with pytest.raises(InvalidParameterError):
        ConsigneeParams(one_buyer_max_rate=1.5)
    with pytest.raises(InvalidParameterError):
        ConsigneeParams(one_buyer_z=0)


def _declaration(i, day, consignee, value):
    return parse_mapping({"declaration_id": f"d{i}", "date": f"2022-03-{day:02d}", "reporter": "DE",
                          "partner": "KG", "hs_code": "85423190", "value": value, "currency": "USD",
                          "consignee": consignee})


def test_engine_and_batch_give_the_largest_new_consignee_the_same_value():
    recs = [_declaration(1, 1, "Alpha", 10.0), _declaration(2, 2, "Beta", 30.0), _declaration(3, 3, "Alpha", 25.0),
            _declaration(4, 4, "", 99.0)]
    engine = Engine()
    for rec in recs:
        engine.add(rec)
    row = next(iter(engine.cells))
    top = new_top_of(np.array([row]), np.array([2.0]), engine.cells)
    cells = monthly_cells(records_frame(recs), WatchConfig.default())
    assert top[0] == 35.0 == float(cells["new_top"].iloc[0])
    assert np.isnan(new_top_of(np.array([row]), np.array([np.nan]), engine.cells)[0])


# --- the look-back: a new consignee that led a recent month -------------------------------

# a lane of two 10,000 declarations a month (20,000), trading every month, one new buyer a year
FEW = [[2.0] * 36]


def _after_lead(value, lead=100_000.0, lead_value=None, k=1, leads_before=0.0, counts=FEW, params=None,
                history=None):
    """Month t of a lane whose month ``t - k`` was led by a new consignee taking ``lead`` of
    ``lead_value``, the months between at ``value``; nothing new this month."""
    past = list(history or PAST[0])
    lead_value = lead + 10_000.0 if lead_value is None else lead_value
    past[-k] = lead_value
    for j in range(1, k):
        past[-j] = value
    leads = [leads_before] * 36
    leads[-k] = lead
    parties = list(CHURN[0])
    parties[-k] = 1.0
    w = window_for([past], value=[value], count=[2.0], counts=counts, parties=[parties], party=[0.0],
                   max_item=[value / 2], new_top=[0.0], leads=[leads])
    return NewConsigneeDetector(params).score_many(w, SeasonalSurgeDetector().score_many(w))


def test_the_month_after_a_shell_company_led_fires_on_the_look_back():
    s = _after_lead(value=110_000.0)
    assert s.one_buyer[0] and s.fired[0] and s.months[0] == 2 and s.new[0] == 1.0


def test_two_months_after_it_pools_three():
    s = _after_lead(value=90_000.0, k=2)
    assert s.one_buyer[0] and s.months[0] == 3


def test_the_look_back_is_off_with_no_recent_months():
    s = _after_lead(value=110_000.0, params=ConsigneeParams(one_buyer_recent_months=0))
    assert not s.one_buyer[0]


def test_a_lead_no_larger_than_the_lanes_own_record_does_not():
    # the lane's new buyers led months with 150,000 before: 100,000 is its habit
    s = _after_lead(value=110_000.0, leads_before=150_000.0)
    assert not s.one_buyer[0]


def test_a_lead_that_took_a_small_share_of_its_month_does_not():
    s = _after_lead(value=110_000.0, lead_value=400_000.0)
    assert not s.one_buyer[0]


def test_a_lane_that_trades_in_few_months_does_not():
    sparse = [[2.0 if m % 3 == 0 else 0.0 for m in range(36)]]
    history = [20_000.0 if m % 3 == 0 else 0.0 for m in range(36)]
    s = _after_lead(value=110_000.0, counts=sparse, history=history)
    assert not s.one_buyer[0]


def test_a_lane_back_to_normal_after_the_lead_does_not():
    s = _after_lead(value=21_000.0)
    assert not s.one_buyer[0]


@given(value=st.floats(0, 1e8), lead=st.floats(0, 1e8), k=st.integers(1, 2), before=st.floats(0, 1e8))
@settings(max_examples=200, deadline=None)
def test_the_look_back_needs_a_record_lead_of_most_of_its_month(value, lead, k, before):
    s = _after_lead(value=value, lead=lead, k=k, leads_before=before)
    assert np.isfinite(s.z_one_buyer[0])
    if s.one_buyer[0]:  # nothing new this month: only the look-back can fire
        p = ConsigneeParams()
        assert lead > before and lead >= p.min_excess and lead >= p.one_buyer_share * (lead + 10_000.0)
        assert s.months[0] == k + 1 and s.fired[0]


def test_the_engine_keeps_each_months_lead_in_its_state():
    def decl(i, month, consignee, value):
        return parse_mapping({"declaration_id": f"l{i}", "date": f"2022-{month:02d}-05", "reporter": "DE",
                              "partner": "KG", "hs_code": "85423190", "value": value, "currency": "USD",
                              "consignee": consignee})
    engine = Engine()
    recs = [decl(1, 1, "Old", 10.0), decl(2, 2, "Old", 10.0), decl(3, 2, "Shell", 50.0), decl(4, 3, "Old", 90.0),
            decl(5, 3, "Other", 20.0)]
    for rec in recs:
        engine.add(rec)
    engine.close_until(24267)
    # January: Old is new and led; February: Shell led with 50; March: Other is new but Old led
    assert engine.table.leads[0, -3:].tolist() == [10.0, 50.0, 0.0]
    again = Engine.from_snapshot(EngineSnapshot.from_parts(engine.snapshot().to_parts()))
    assert again.table.leads[0, -3:].tolist() == [10.0, 50.0, 0.0]
    key = engine.table.keys[0]
    state = SeriesState.from_state(engine.table.state(key).to_state())
    assert state.leads_[-3:].tolist() == [10.0, 50.0, 0.0]


def test_engine_batch_and_columnar_agree_on_one_buyer_surges_and_the_look_back_counts():
    scn = evasion.generate(seed=5, families=["one_buyer"], size=12, months=48)
    records = sorted((parse_mapping(r) for r in scn.declarations), key=_event_key)

    def engine_alerts(config):
        engine = Engine(config)
        for rec in records:
            engine.add(rec)
        engine.finish(close_last=True)
        return engine, [a for a in engine.drain()]

    config = WatchConfig.default()
    engine, alerts = engine_alerts(config)
    month_end = sorted((a.series_id, a.period, a.detectors) for a in alerts if not a.early)
    batch = sorted((a.series_id, a.period, a.detectors)
                   for a in detect(monthly_cells(records_frame(records), config), config))
    assert month_end == batch
    columnar = ColumnarReplay(config)
    columnar.feed(Block.from_records(records), source=0, lines=list(range(1, len(records) + 1)))
    out = columnar.run(final_month="closed")
    assert [a.to_dict() for a in out.engine.drain()] == [a.to_dict() for a in alerts]
    assert out.engine.snapshot() == engine.snapshot()
    _, without = engine_alerts(WatchConfig.from_toml("[new_consignees]\none_buyer_recent_months = 0\n"))
    assert {(a.series_id, a.period) for a in without} != {(a.series_id, a.period) for a in alerts}, \
        "the look-back changes what the scenario's one-buyer lanes alert"
