"""The one-buyer route of the new-consignee detector, and the month's value to its largest new consignee."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transitwatch.detectors.batch import monthly_cells, records_frame
from transitwatch.detectors.consignees import ConsigneeParams, NewConsigneeDetector
from transitwatch.detectors.contract import parse_mapping
from transitwatch.detectors.engine import Engine, new_top_of
from transitwatch.detectors.errors import InvalidParameterError
from transitwatch.detectors.seasonal import SeasonalSurgeDetector
from transitwatch.detectors.table import window_for
from transitwatch.detectors.watch import WatchConfig

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
