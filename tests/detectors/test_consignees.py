"""New consignees: what the engine counts as new, and when the detector fires."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.scenarios import labelled
from transitwatch.detectors.batch import detect, monthly_cells, records_frame
from transitwatch.detectors.columnar import ColumnarReplay
from transitwatch.detectors.frame import Block
from transitwatch.detectors.consignees import ConsigneeParams, NewConsigneeDetector, party_z
from transitwatch.detectors.contract import parse_mapping
from transitwatch.detectors.engine import Engine
from transitwatch.detectors.errors import InvalidParameterError
from transitwatch.detectors.seasonal import SeasonalSurgeDetector
from transitwatch.detectors.snapshot import EngineSnapshot
from transitwatch.detectors.table import window_for
from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.replay import _event_key


def _declaration(i, month, consignee, value=20_000.0, partner="KG"):
    year, m = divmod(month, 12)
    return parse_mapping({"declaration_id": f"d{i}", "date": f"{year:04d}-{m + 1:02d}-10", "reporter": "DE",
                          "partner": partner, "hs_code": "85423190", "value": value, "consignee": consignee})


def _new_in_each_month(records, months):
    """Each month's new consignees, read from the table's history right after it closes."""
    engine, new = Engine(), {}
    pending = sorted(records, key=_event_key)
    for m in months:
        while pending and pending[0].month <= m:
            engine.add(pending.pop(0))
        engine.close_until(m + 1)
        new[m] = float(engine.table.parties[0, -1])
    return new, engine


def test_a_consignee_is_new_once_and_again_after_three_years():
    start = 2019 * 12
    plan = [(0, "Alpha"), (0, "Alpha"), (0, "Beta"), (2, "Alpha"), (30, "Alpha"), (30, "Gamma"), (67, "Alpha")]
    records = [_declaration(i, start + m, name) for i, (m, name) in enumerate(plan)]
    months = [start + m for m in (0, 2, 30, 67)]
    new, _ = _new_in_each_month(records, months)
    # month 0: Alpha and Beta; month 2: Alpha again; month 30: Gamma only (Alpha seen 28 months
    # before); month 67: Alpha, last seen 37 months before, is new again
    assert [new[m] for m in months] == [2.0, 0.0, 1.0, 1.0]


def test_one_buyer_written_differently_is_not_new_again():
    start = 2019 * 12
    plan = [(0, "Acme-Trade, LLC"), (1, "ACME TRADE LLC"), (1, " acme  trade llc"), (2, "Acme Trade LLC."),
            (2, "Beta Trade")]
    records = [_declaration(i, start + m, name) for i, (m, name) in enumerate(plan)]
    new, engine = _new_in_each_month(records, [start, start + 1, start + 2])
    assert list(new.values()) == [1.0, 0.0, 1.0]  # only Beta is new in month 2
    cells = monthly_cells(records_frame(records), WatchConfig.default())
    assert cells["new_parties"].tolist() == [1.0, 0.0, 1.0], "the batch path reads names alike"
    columnar = ColumnarReplay()
    columnar.feed(Block.from_records(records), source=0, lines=list(range(1, len(records) + 1)))
    out = columnar.run(final_month="closed")
    assert out.engine.snapshot() == engine.snapshot(), "and so does the columnar replay"


def test_declarations_without_consignees_count_none_and_statistics_are_unknown():
    start = 2019 * 12
    recs = [_declaration(i, start + i % 3, None) for i in range(6)]
    new, _ = _new_in_each_month(recs, [start, start + 1, start + 2])
    assert list(new.values()) == [0.0, 0.0, 0.0]
    stats = [parse_mapping({"period": "2019-0%d" % m, "reporter": "DE", "partner": "KG", "hs_code": "85423190",
                            "value": 1000.0}) for m in (1, 2)]
    new, _ = _new_in_each_month(stats, [start, start + 1])
    assert all(np.isnan(v) for v in new.values())


def test_the_memory_survives_a_snapshot():
    start = 2019 * 12
    records = [_declaration(0, start, "Alpha"), _declaration(1, start + 5, "Alpha")]
    engine = Engine()
    engine.add(records[0])
    engine.close_until(start + 1)
    again = Engine.from_snapshot(EngineSnapshot.from_parts(engine.snapshot().to_parts()))
    again.add(records[1])
    again.close_until(start + 6)
    assert again.table.parties[0, -1] == 0.0, "Alpha was known before the restore"


def test_a_late_declaration_teaches_the_memory():
    start = 2019 * 12
    engine = Engine()
    engine.add(_declaration(0, start, "Alpha"))
    engine.add(_declaration(1, start + 2, "Beta"))       # closes months 0 and 1
    engine.add(_declaration(2, start + 1, "Gamma"))      # late, for month 1
    engine.close_until(start + 3)
    assert engine.table.parties[0, -2] == 1.0            # Gamma counted in its own month
    engine.add(_declaration(3, start + 3, "Gamma"))
    engine.close_until(start + 4)
    assert engine.table.parties[0, -1] == 0.0


# --- the detector -------------------------------------------------------------------------


def _window(party, parties_before=0.0, count=9.0, value=90_000.0):
    w = window_for([[20_000.0] * 36], value=[value], count=[count], counts=[[2.0] * 36],
                   parties=[[parties_before] * 36], party=[party])
    return w, SeasonalSurgeDetector().score_many(w)


def test_a_rise_carried_by_new_buyers_on_a_lane_that_keeps_its_buyers_fires():
    w, surge = _window(party=4.0)
    s = NewConsigneeDetector().score_many(w, surge)
    assert s.fired[0] and s.z_party[0] > 3 and s.expected[0] < 0.2


def test_the_same_rise_on_a_lane_that_always_has_new_buyers_does_not():
    w, surge = _window(party=4.0, parties_before=1.0)  # one new buyer in every two declarations
    assert not NewConsigneeDetector().score_many(w, surge).fired[0]


def test_no_new_buyer_no_alert_however_large_the_rise():
    w, surge = _window(party=0.0, count=30.0, value=500_000.0)
    assert not NewConsigneeDetector().score_many(w, surge).fired[0]


@given(
    counts=st.lists(st.integers(0, 30), min_size=36, max_size=36),
    count=st.integers(0, 200),
    value=st.floats(0, 1e7),
    new_before=st.lists(st.integers(0, 5), min_size=36, max_size=36),
)
@settings(max_examples=200, deadline=None)
def test_it_never_fires_without_unusual_new_consignees(counts, count, value, new_before):
    """Whatever the count and value, no new consignee in the pooled months means no alert."""
    w = window_for([[10_000.0 * c for c in counts]], value=[value], count=[float(count)], counts=[counts],
                   parties=[[float(min(n, c)) for n, c in zip(new_before[:-2], counts)] + [0.0, 0.0]], party=[0.0])
    s = NewConsigneeDetector().score_many(w, SeasonalSurgeDetector().score_many(w))
    assert not s.fired[0]


@given(new=st.integers(0, 50), expected=st.floats(1e-6, 50), more=st.integers(1, 5))
def test_party_z_grows_with_new_buyers_and_shrinks_with_churn(new, expected, more):
    z = party_z(np.array([new, new + more], float), np.array([expected, expected]))
    assert (z >= 0).all() and z[1] >= z[0]
    assert party_z(np.array([new + 1.0]), np.array([expected * 2]))[0] <= party_z(np.array([new + 1.0]), np.array([expected]))[0]


def test_parameters_are_checked():
    with pytest.raises(InvalidParameterError):
        ConsigneeParams(min_months=0)
    with pytest.raises(InvalidParameterError):
        ConsigneeParams(threshold=-1)


def test_engine_and_batch_agree_and_the_detector_fires_on_the_labelled_scenario():
    scenario = labelled.generate(seed=7, hub_series=300, months=60)
    records = sorted((parse_mapping(r) for r in scenario.declarations), key=_event_key)
    config = WatchConfig.default()
    engine = Engine(config)
    for rec in records:
        engine.add(rec)
    engine.finish(close_last=True)
    alerts = engine.drain()
    month_end = sorted((a.series_id, a.period, a.detectors) for a in alerts if not a.early)
    batch = sorted((a.series_id, a.period, a.detectors)
                   for a in detect(monthly_cells(records_frame(records), config), config))
    assert month_end == batch
    assert any("new_consignees" in d for _, _, d in batch), "the scenario's surges bring new buyers"
    assert any("new_consignees" in a.detectors for a in alerts if a.early), "and early alerts too"
    for alert in (a for a in alerts if "new_consignees" in a.detectors):
        new, expected = alert.evidence["new_consignees"], alert.evidence["new_consignees_expected"]
        assert new >= 1 and 0 < expected < new
        named, months = alert.evidence["new_consignees_named"], alert.evidence["new_consignees_observed_months"]
        assert len(named) == min(new, 10), "every new consignee is named (up to ten)"
        assert [p["value"] for p in named] == sorted((p["value"] for p in named), reverse=True)
        head = "One consignee" if new == 1 else f"{new} consignees"
        assert head in alert.explanation and f"in the {months} months observed before" in alert.explanation
        assert all(f"{p['name']} (" in alert.explanation for p in named[:5])

    columnar = ColumnarReplay(config)
    columnar.feed(Block.from_records(records), source=0, lines=list(range(1, len(records) + 1)))
    out = columnar.run(final_month="closed")
    assert [a.to_dict() for a in out.engine.drain()] == [a.to_dict() for a in alerts]
    assert out.engine.snapshot() == engine.snapshot(), "the same memory of consignees"
