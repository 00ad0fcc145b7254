"""Evidence an investigator acts on (issue 14, item 4): new consignees named with their value and
first day against the months actually observed, one expected value, one ratio and one usual range
that never contradict each other, and every corroborating reporter named and counted."""

from __future__ import annotations

import dataclasses
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.scenarios.declarations import generate
from transitwatch.detectors.alerts import money
from transitwatch.detectors.columnar import ColumnarReplay
from transitwatch.detectors.contract import parse_mapping
from transitwatch.detectors.engine import Engine
from transitwatch.detectors.watch import WatchConfig
from transitwatch.detectors.frame import Block
from transitwatch.detectors.snapshot import EngineSnapshot, _digest, _pack, _unpack
from transitwatch.streams.replay import _event_key

JANUARY = 2022 * 12


def _declaration(i, date, consignee, value, exporter="Muster GmbH"):
    return parse_mapping({"declaration_id": f"d{i}", "date": date, "reporter": "DE", "partner": "KG",
                          "hs_code": "85423190", "value": value, "currency": "USD", "consignee": consignee,
                          "exporter": exporter})


def _two_old_buyers(years=(2020, 2021)):
    """Two declarations a month to the lane's two usual buyers, from January of the first year."""
    return [_declaration(f"{y}{m}{d}", f"{y}-{m:02d}-{d:02d}", who, 20_000.0)
            for y in years for m in range(1, 13) for d, who in ((5, "Old Buyer A"), (19, "Old Buyer B"))]


def _run(records, engine=None):
    """Records in event order through an engine; the last month closed."""
    engine = engine or Engine()
    for rec in sorted(records, key=_event_key):
        engine.add(rec)
    engine.finish(close_last=True)
    return engine.drain()


def _statistic(reporter, period, value):
    return parse_mapping({"period": period, "reporter": reporter, "partner": "KG", "hs_code": "854231",
                          "value": value, "currency": "USD"})


# -- new consignees ----------------------------------------------------------------------------

SURGE = [("2022-01-04", "Alfa LLC", 300_000.0), ("2022-01-05", "Old Buyer A", 20_000.0),
         ("2022-01-11", "Beta OOO", 150_000.0), ("2022-01-12", "ALFA, LLC", 100_000.0),
         ("2022-01-20", "Gamma TOO", 30_000.0), ("2022-01-21", "Beta OOO", 50_000.0),
         ("2022-01-25", "Alfa LLC", 200_000.0), ("2022-01-27", "Old Buyer B", 20_000.0)]


def test_new_consignees_are_named_with_value_and_first_day_against_the_months_observed():
    records = _two_old_buyers() + [_declaration(f"s{i}", *row) for i, row in enumerate(SURGE)]
    month_end = [a for a in _run(records) if not a.early]
    (alert,) = month_end
    assert alert.evidence["new_consignees_named"] == [
        {"name": "Alfa LLC", "value": 600_000.0, "first_seen": "2022-01-04"},  # every spelling of it
        {"name": "Beta OOO", "value": 200_000.0, "first_seen": "2022-01-11"},
        {"name": "Gamma TOO", "value": 30_000.0, "first_seen": "2022-01-20"},
    ]
    assert alert.evidence["new_consignees_observed_months"] == 24  # two years of data, not "three years"
    assert ("3 consignees of the month are new to this lane, none of them seen in the 24 months observed before: "
            "Alfa LLC (USD 600.0k, first on 2022-01-04), Beta OOO (USD 200.0k, first on 2022-01-11) and "
            "Gamma TOO (USD 30.0k, first on 2022-01-20); about 0.4 would be expected at the lane's usual "
            "turnover of buyers.") in alert.explanation
    assert "The month's only exporter: Muster GmbH (USD 870.0k, 100%)." in alert.explanation
    assert "three years" not in alert.explanation


def test_a_lane_observed_longer_than_the_memory_says_thirty_six_months():
    records = _two_old_buyers((2018, 2019, 2020, 2021)) + [_declaration(f"s{i}", *row) for i, row in enumerate(SURGE)]
    (alert,) = [a for a in _run(records) if not a.early]
    assert alert.evidence["new_consignees_observed_months"] == 36
    assert "none of them seen in the 36 months observed before" in alert.explanation


DECEMBER = [("2021-12-02", "Delta LLP", 60_000.0), ("2021-12-09", "Epsilon SRL", 45_000.0),
            ("2021-12-16", "Delta LLP", 30_000.0)]
POOLED_JANUARY = [("2022-01-04", "Alfa LLC", 90_000.0), ("2022-01-11", "Beta OOO", 70_000.0),
                  ("2022-01-20", "Gamma TOO", 30_000.0), ("2022-01-27", "Old Buyer B", 20_000.0)]
POOLED = ("5 consignees of the last 2 months are new to this lane, none of them seen in the 23 months observed "
          "before: Alfa LLC (USD 90.0k, first on 2022-01-04), Delta LLP (USD 90.0k, first on 2021-12-02), "
          "Beta OOO (USD 70.0k, first on 2022-01-11), Epsilon SRL (USD 45.0k, first on 2021-12-09) and "
          "Gamma TOO (USD 30.0k, first on 2022-01-20); about 0.4 would be expected at the lane's usual "
          "turnover of buyers.")


def _pooled():
    before = _two_old_buyers() + [_declaration(f"dec{i}", *row) for i, row in enumerate(DECEMBER)]
    after = [_declaration(f"jan{i}", *row) for i, row in enumerate(POOLED_JANUARY)]
    return before, after


def test_the_months_pooled_name_the_consignees_of_every_month_and_survive_a_snapshot():
    before, after = _pooled()
    alerts = _run(before + after)
    january = alerts[-1]
    assert (january.period, january.evidence["new_consignees_months"]) == ("2022-01", 2)
    assert POOLED in january.explanation

    engine = Engine()
    for rec in sorted(before, key=_event_key):
        engine.add(rec)
    engine.close_until(JANUARY)
    snapshot = engine.snapshot()
    assert [p["name"] for p in snapshot.named_parties[0][JANUARY - 1]] == ["Delta LLP", "Epsilon SRL"]
    again = Engine.from_snapshot(EngineSnapshot.from_parts(snapshot.to_parts(rows_per_part=1)))
    assert [a.to_dict() for a in _run(after, again)] == [alerts[-1].to_dict()]


def test_a_snapshot_written_before_names_were_kept_still_restores_and_counts_them():
    """A snapshot whose parts carry no names: the next record counts December's new consignees
    and names only January's."""
    before, after = _pooled()
    engine = Engine()
    for rec in sorted(before, key=_event_key):
        engine.add(rec)
    engine.close_until(JANUARY)
    parts = engine.snapshot().to_parts()
    head, _ = _unpack(parts[0])
    header, arrays = _unpack(parts[1])
    del header["named"]
    parts[1] = _pack(header, arrays)
    head["parts"][0] = _digest(parts[1])
    parts[0] = _pack(head, [])
    restored = EngineSnapshot.from_parts(parts)
    assert restored.named_parties == {} and restored == dataclasses.replace(engine.snapshot(), named_parties={})
    (january,) = _run(after, Engine.from_snapshot(restored))
    assert january.evidence["new_consignees"] == 5
    assert [p["name"] for p in january.evidence["new_consignees_named"]] == ["Alfa LLC", "Beta OOO", "Gamma TOO"]
    assert ("Alfa LLC (USD 90.0k, first on 2022-01-04), Beta OOO (USD 70.0k, first on 2022-01-11), "
            "Gamma TOO (USD 30.0k, first on 2022-01-20) and 2 more;") in january.explanation


def test_the_columnar_replay_names_the_same_consignees_and_keeps_the_same_memory():
    before, after = _pooled()
    records = before + after
    engine = Engine()
    expected = _run(records, engine)
    run = ColumnarReplay()
    run.feed(Block.from_records(records), source=0, lines=list(range(1, len(records) + 1)))
    out = run.run(final_month="closed")
    assert [a.to_dict() for a in out.engine.drain()] == [a.to_dict() for a in expected]
    assert out.engine.snapshot() == engine.snapshot()


# -- one expected value, one usual range, one ratio ----------------------------------------------

def test_a_month_within_the_usual_range_says_what_carried_the_evidence():
    """A lumpy lane (nothing most months, a spike now and then): 14 small declarations make a
    month inside the lane's usual range for a single month; the count carries the evidence."""
    lumpy = [0, 2000, 3000, 0, 1000, 90000, 0, 1000, 0, 2500, 40000, 1500, 0, 500, 0, 150000]
    history = [_declaration(f"h{k}", f"{2020 + k // 12}-{k % 12 + 1:02d}-10", "Old Buyer", float(lumpy[k % 16]))
               for k in range(24)]
    month = [_declaration(f"m{d}", f"2022-01-{d + 1:02d}", "Old Buyer", 2_000.0) for d in range(14)]
    (alert,) = [a for a in _run(history + month) if not a.early]
    assert alert.evidence["carried_by"] == ["count", "ramp"]
    assert (alert.observed_value, alert.baseline_value, alert.ratio) == (28_000.0, 9_750.0, 2.8718)
    band = alert.evidence["band_high"]
    assert alert.observed_value < band
    assert (f"reached USD 28.0k in 2022-01, 2.9 times the expected USD 9.8k (from 14 declarations against about "
            f"1.0 expected). That alone is within the lane's usual range for a single month (up to "
            f"{money(band, 'USD')}); what stands out is 14 declarations against about 1.0 expected."
            ) in alert.explanation


def test_a_case_opening_says_how_its_level_and_the_seasonal_expected_value_relate():
    steady = [100_000.0 + 7_000 * (k % 5) for k in range(24)]
    records = [_statistic("PL", f"{2020 + k // 12}-{k % 12 + 1:02d}", v) for k, v in enumerate(steady)]
    (alert,) = _run(records + [_statistic("PL", "2022-01", 1_500_000.0)])
    level, expected = money(alert.case_level, "USD"), money(alert.baseline_value, "USD")
    assert level != expected
    assert (f"A case opens on this lane: its pre-case level, {level} a month (the expected {expected} is that "
            "level with the lane's seasonal pattern for 2022-01), stays its baseline until the case closes."
            ) in alert.explanation


# -- corroboration -------------------------------------------------------------------------------

def _peers(finals, min_reporters=3):
    records = []
    for k in range(25):
        period = f"{2020 + k // 12}-{k % 12 + 1:02d}"
        for j, (reporter, final) in enumerate(finals.items()):
            records.append(_statistic(reporter, period, 100_000.0 + 7_000 * ((k + j) % 5) if k < 24 else final))
    cfg = WatchConfig.from_toml(f"[corroboration]\nmin_reporters = {min_reporters}\n")
    return {a.reporter: a for a in _run(records, Engine(cfg))}


def test_a_pair_is_not_corroboration_by_default():
    alerts = _peers({"PL": 1_500_000.0, "CZ": 350_000.0, "LT": 110_000.0})
    assert sorted(alerts) == ["PL"], "two lanes rising together: [corroboration] min_reporters is 3"


def test_corroboration_names_one_other_reporter_as_one():
    alerts = _peers({"PL": 1_500_000.0, "CZ": 350_000.0, "LT": 110_000.0}, min_reporters=2)
    assert sorted(alerts) == ["CZ", "PL"]
    assert alerts["PL"].corroborating_reporters == ("CZ",)
    assert "Detected as a surge against its seasonal baseline; a rise seen in the same month from one other " \
           "reporter (Czechia)." in alerts["PL"].explanation
    assert "a rise seen in the same month from one other reporter (Poland)." in alerts["CZ"].explanation
    assert not any("several" in a.explanation for a in alerts.values())


def test_corroboration_names_every_other_reporter():
    alerts = _peers({"PL": 1_500_000.0, "CZ": 350_000.0, "LT": 330_000.0})
    assert {r: a.corroborating_reporters for r, a in alerts.items()} == {
        "PL": ("CZ", "LT"), "CZ": ("LT", "PL"), "LT": ("CZ", "PL")}
    assert "from 2 other reporters (Czechia and Lithuania)." in alerts["PL"].explanation
    assert "from 2 other reporters (Lithuania and Poland)." in alerts["CZ"].explanation


# -- the record never contradicts itself ---------------------------------------------------------

def assert_consistent(alert):
    """One expected value, one ratio of the record's own numbers, one usual range stated the same
    way, the corroborating reporters counted as many as there are."""
    a, text = alert, alert.explanation
    if a.ratio is not None:
        assert a.ratio == round(a.observed_value / a.baseline_value, 4)
        against = "the expected" if a.detectors else "the lane's pre-case level of"
        assert f"{a.ratio:.1f} times {against} {money(a.baseline_value, a.currency)}" in text
    if a.case_level:
        assert a.case_ratio == round(a.observed_value / a.case_level, 4)
    band = a.evidence["band_high"]
    if band is not None:
        above = a.observed_value > band
        assert above == ("value" in a.evidence["carried_by"]) or not a.detectors
        range_ = "usual range for a single month" + ("" if a.detectors else " before the case")
        assert f"{'above' if above else 'within'} {'the lane' + chr(39) + 's' if a.detectors else 'its'} " \
               f"{range_} (up to {money(band, a.currency)})" in text
        assert ("above" if not above else "within") + " the lane's usual range" not in text
    n = len(a.corroborating_reporters)
    if "corroboration" in a.detectors:
        assert ("from one other reporter (" if n == 1 else f"from {n} other reporters (") in text
    assert "several exporting" not in text and "three years" not in text
    if a.evidence.get("new_consignees"):
        named = a.evidence["new_consignees_named"]
        assert len(named) <= min(a.evidence["new_consignees"], 10)
        assert re.search(r"in the (one month|\d+ months) observed before|whose earlier consignees are not known", text)


@given(
    history=st.lists(st.integers(0, 400), min_size=24, max_size=24),
    finals=st.lists(st.integers(0, 4000), min_size=1, max_size=3),
    peers=st.lists(st.integers(0, 400), min_size=24, max_size=24),
)
@settings(max_examples=60, deadline=None)
def test_every_record_is_consistent_with_itself(history, finals, peers):
    """Monthly statistics of up to three reporters into one hub: whatever alerts, and every month
    of a case after it, states its numbers one way."""
    reporters = ("PL", "CZ", "LT")[:len(finals)]
    records = []
    for k in range(27):
        period = f"{2020 + k // 12}-{k % 12 + 1:02d}"
        for j, reporter in enumerate(reporters):
            past = history if j == 0 else peers
            value = past[k] if k < 24 else finals[j] * (1 + k - 24)
            records.append(_statistic(reporter, period, 1_000.0 * value))
    for alert in _run(records):
        assert_consistent(alert)


def test_every_record_of_a_declarations_scenario_is_consistent_with_itself():
    lines, _ = generate(30_000, 11)
    alerts = _run(sorted((parse_mapping(r) for r in lines), key=_event_key))
    assert any(a.evidence.get("new_consignees_named") for a in alerts)
    for alert in alerts:
        assert_consistent(alert)
