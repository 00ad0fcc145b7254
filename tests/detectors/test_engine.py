"""The incremental engine, its state, and the batch path that must agree with it."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import batch
from benchmarks.scenarios.declarations import generate
from transitwatch.detectors.contract import parse_mapping
from transitwatch.detectors.engine import Engine
from transitwatch.detectors.errors import StateError
from transitwatch.detectors.table import SeriesKey, SeriesState, StateTable
from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.replay import _event_key

KEY = SeriesKey("DE", "KG", "export", "854231")


@given(
    values=st.lists(st.one_of(st.none(), st.floats(0, 1e12)), min_size=36, max_size=36),
    counts=st.lists(st.one_of(st.none(), st.integers(0, 10_000).map(float)), min_size=36, max_size=36),
    protected=st.lists(st.booleans(), min_size=36, max_size=36),
    ramp=st.floats(0, 100),
    streak=st.integers(0, 200),
)
@settings(max_examples=100, deadline=None)
def test_state_round_trips(values, counts, protected, ramp, streak):
    state = SeriesState(
        KEY,
        month=24_300,
        values_=np.array([np.nan if v is None else v for v in values]),
        counts_=np.array([np.nan if v is None else v for v in counts]),
        protected_=np.array(protected),
        ramp_=ramp,
        streak_=streak,
        counted_=True,
    )
    again = SeriesState.from_state(state.to_state())
    assert again == state
    assert np.array_equal(again.values_, state.values_, equal_nan=True)
    assert again.protected_.tolist() == protected


def test_state_rejects_foreign_dicts():
    with pytest.raises(StateError):
        SeriesState.from_state({"v": 99})
    with pytest.raises(StateError):
        SeriesState.from_state({"v": 1, "key": ["DE"]})


def test_table_state_restores_into_a_fresh_table():
    t = StateTable(start=24_000)
    t.row(KEY, counted=True)
    for m in range(24_000, 24_010):
        t.commit(m, np.array([float(m)]), np.array([2.0]), np.array([m % 3 == 0]), ramp=np.array([1.5]))
    state = t.state(KEY)
    fresh = StateTable(start=24_000)
    fresh.month = t.month
    fresh.restore(state)
    assert fresh.state(KEY) == state


def _stat(period, value, reporter="DE", partner="KG", hs="85423190"):
    return parse_mapping({"period": period, "reporter": reporter, "partner": partner, "flow": "export",
                          "hs_code": hs, "value": value, "currency": "USD"})


def _months(start_year=2020, n=36):
    return [f"{start_year + i // 12}-{i % 12 + 1:02d}" for i in range(n)]


def _surged(months_up, total=42, config=None):
    e = Engine(config)
    rng = np.random.default_rng(3)
    periods = _months(2019, total)
    for i, p in enumerate(periods):
        value = 100_000 * rng.lognormal(0, 0.1) * (6 if 30 <= i < 30 + months_up else 1)
        e.add(_stat(p, value))
    e.finish(close_last=True)
    return periods, e.drain()


def test_a_surge_is_never_learned_into_the_baseline():
    periods, records = _surged(6)
    assert sorted({a.period for a in records if a.detectors}) == periods[30:36], (
        "every surged month alerts, the sixth as surely as the first")
    assert len({a.case_id for a in records}) == 1, "one case for the lane's one episode"
    assert [a.period for a in records] == periods[30:39], "one update a month until the case closes"
    assert records[0].case_event == "opened"
    assert {a.case_event for a in records[1:-1]} <= {"updated", "escalated"}
    assert [a.case_event for a in records].count("escalated") <= 2, "escalates when its evidence or money grows"
    last = records[-1]
    assert last.case_event == "closed" and last.case_status == "closed" and last.case_months == 9
    assert last.case_note == "closed: back within its normal band for 3 months"


def test_a_closed_case_reopens_when_the_lane_is_hot_again_within_reopen_within():
    e = Engine()
    rng = np.random.default_rng(4)
    periods = _months(2019, 48)
    up = {30, 31, 40}  # a surge, four quiet months, and the lane's next big shipment
    for i, p in enumerate(periods):
        e.add(_stat(p, 100_000 * rng.lognormal(0, 0.1) * (6 if i in up else 1)))
    e.finish(close_last=True)
    records = e.drain()
    events = [(a.period, a.case_event) for a in records]
    assert events[0] == (periods[30], "opened") and (periods[34], "closed") in events
    assert (periods[40], "reopened") in events, events
    assert len({a.case_id for a in records}) == 1, "the same story: the same case"
    assert not [p for p, _ in events if periods[35] <= p < periods[40]], "a closed case is silent while it waits"


def test_a_lasting_new_level_stays_a_case_and_is_never_learned_silently():
    periods, records = _surged(12)
    assert [a.period for a in records] == periods[30:42], "every month at the new level updates the case"
    assert len({a.case_id for a in records}) == 1 and records[-1].case_status != "closed"
    assert all(a.case_ratio > 4 for a in records), "the baseline stays the pre-case level"


def test_a_new_level_is_accepted_only_by_the_explicit_rule():
    periods, records = _surged(12, config=WatchConfig.from_toml("[cases]\naccept_after = 8"))
    assert [a.period for a in records] == periods[30:38]
    assert records[-1].case_event == "closed"
    assert records[-1].case_note == "closed: new level accepted after 8 months"
    assert "new level accepted after 8 months" in records[-1].explanation


def test_monthly_revision_replaces_and_cn8_lines_add_up():
    e = Engine()
    e.add(_stat("2022-01", 100.0, hs="85423110"))
    e.add(_stat("2022-01", 40.0, hs="85423190"))
    e.add(_stat("2022-01", 70.0, hs="85423110"))  # a revision of the first line
    cell = next(iter(e.cells.values()))
    assert cell.value == pytest.approx(110.0)
    assert e.counts["revisions applied"] == 1


def _decl(i, date, value, exporter="Acme", reporter="DE", partner="KG", hs="85423190"):
    return parse_mapping({"declaration_id": str(i), "date": date, "reporter": reporter, "partner": partner,
                          "hs_code": hs, "value": value, "currency": "USD", "exporter": exporter,
                          "consignee": "Bishkek Trade"})


def test_early_alert_before_the_month_ends_then_month_end_alert_with_same_id():
    e = Engine()
    i = 0
    day = dt.date(2020, 1, 1)
    while day < dt.date(2022, 3, 1):
        if day.day in (3, 17):
            i += 1
            e.add(_decl(i, day.isoformat(), 50_000.0 + 1000 * (i % 5)))
        day += dt.timedelta(days=1)
    early = [a for a in e.drain() if a.early]
    assert early == []
    for d in range(1, 8):  # a burst in the first week of March 2022
        for k in range(6):
            i += 1
            e.add(_decl(i, f"2022-03-0{d}", 60_000.0, exporter=f"Shell {k}"))
    i += 1
    e.add(_decl(i, "2022-03-09", 50_000.0))  # passes the 8th: check the month in progress
    first = e.drain()
    assert len(first) == 1 and first[0].early and first[0].period == "2022-03"
    assert first[0].as_of == "2022-03-07", "as of the eve of the check day: the first week"
    assert "early alert" in first[0].explanation
    assert first[0].top_exporters[0]["name"].startswith("Shell")
    i += 1
    e.add(_decl(i, "2022-04-03", 50_000.0))  # closes March
    final = [a for a in e.drain() if a.period == "2022-03"]
    assert len(final) == 1 and not final[0].early
    assert final[0].alert_id == first[0].alert_id


def test_duplicate_declarations_are_ignored_and_counted():
    e = Engine()
    e.add(_decl(1, "2022-01-05", 10.0))
    e.add(_decl(1, "2022-01-05", 10.0))
    assert e.counts["duplicate declarations ignored"] == 1
    assert next(iter(e.cells.values())).count == 1


def test_unwatched_records_are_counted_not_silently_dropped():
    e = Engine()
    e.add(_decl(1, "2022-01-05", 10.0, partner="FR"))
    e.add(_decl(2, "2022-01-05", 10.0, hs="01012100"))
    assert e.counts["not watched: partner"] == 1 and e.counts["not watched: hs6"] == 1


def test_diversion_when_russia_collapses_and_the_hub_rises():
    e = Engine()
    rng = np.random.default_rng(5)
    for i, p in enumerate(_months(2019, 42)):
        post = i >= 36
        e.add(_stat(p, 1_000_000 * rng.lognormal(0, 0.05) * (0.1 if post else 1), partner="RU"))
        e.add(_stat(p, 40_000 * rng.lognormal(0, 0.05) * (2.2 if post else 1), partner="KZ"))
    e.finish(close_last=True)
    alerts = e.drain()
    div = [a for a in alerts if "diversion" in a.detectors]
    assert div and all(a.partner == "KZ" for a in div)
    assert min(a.period for a in div) <= "2022-04", "within three months of the January onset"
    assert "fell to" in div[0].explanation
    assert not any(a.partner == "RU" for a in alerts), "destination lanes feed diversion; they never alert"


def test_a_modest_hub_rise_after_russia_falls_to_nothing_names_diversion_and_the_russian_lane():
    """Russia to 0 from month 37; the hub rises 1.6x two months later, a rise a plain surge
    would not carry: diversion fires and the record names the Russian lane's before and after."""
    e = Engine()
    rng = np.random.default_rng(7)
    for i, p in enumerate(_months(2019, 44)):
        e.add(_stat(p, 1_000_000 * rng.lognormal(0, 0.05) * (0.0 if i >= 36 else 1) or 0.01, partner="RU"))
        e.add(_stat(p, 60_000 * rng.lognormal(0, 0.3) * (1.6 if i >= 38 else 1), partner="KZ"))
    e.finish(close_last=True)
    div = [a for a in e.drain() if "diversion" in a.detectors]
    assert div, "the deep collapse lowers the hub's bar"
    ev = div[0].evidence
    assert ev["destination_before"] == pytest.approx(1_000_000, rel=0.1)
    assert ev["destination_after"] < 1_000
    assert "went from USD 9" in div[0].explanation and "to USD 0 a month" in div[0].explanation


def _compare(records):
    cfg = WatchConfig.default()
    records = sorted(records, key=_event_key)
    e = Engine(cfg)
    for r in records:
        e.add(r)
    e.finish(close_last=True)
    incremental = sorted(
        (a.alert_id, a.detectors, a.severity, a.score, a.observed_value, a.baseline_value)
        for a in e.drain() if not a.early
    )
    vectorized = sorted(
        (a.alert_id, a.detectors, a.severity, a.score, a.observed_value, a.baseline_value)
        for a in batch.detect(batch.monthly_cells(batch.records_frame(records), cfg), cfg)
    )
    return incremental, vectorized


def test_batch_equals_incremental_on_generated_declarations():
    lines, _truth = generate(30_000, 11)
    incremental, vectorized = _compare([parse_mapping(r) for r in lines])
    assert incremental, "the generated data holds surges: some alerts are expected"
    assert incremental == vectorized


@given(
    data=st.lists(
        st.tuples(
            st.integers(0, 29),  # month
            st.sampled_from(["KG", "AM", "RU"]),
            st.sampled_from(["DE", "PL"]),
            st.floats(0, 5e6),
            st.sampled_from(["85423190", "85176200"]),
        ),
        min_size=1,
        max_size=120,
    ),
    surge=st.floats(1, 30),
)
@settings(max_examples=40, deadline=None)
def test_batch_equals_incremental_property(data, surge):
    records = []
    for m, partner, reporter, value, hs in data:
        for rep in range(2):  # a steady base so baselines exist
            records.append(_stat(f"{2020 + m // 12}-{m % 12 + 1:02d}", 50_000.0 + rep, reporter, partner, hs))
            break
        records.append(_stat(f"{2020 + m // 12}-{m % 12 + 1:02d}", value * (surge if m > 24 else 1), reporter, partner, hs[:6] + "99"))
    incremental, vectorized = _compare(records)
    assert incremental == vectorized


def test_isolation_forest_fits_on_the_reference_period_and_can_alert_alone():
    cfg = WatchConfig.from_toml(
        "[isolation]\nin_alerting_path = true\nfit_months = 6\nn_estimators = 50\nthreshold = 0.6\n"
        '[policy]\ndetectors = ["isolation"]\n'
    )
    lines, _ = generate(30_000, 11)
    e = Engine(cfg)
    for r in sorted((parse_mapping(x) for x in lines), key=_event_key):
        e.add(r)
    e.finish(close_last=True)
    assert e.policy.isolation.fitted
    alerts = [a for a in e.drain() if a.detectors]  # (the months of a case in which nothing fired carry none)
    assert alerts and all(a.detectors == ("isolation",) for a in alerts)
    assert all(a.evidence["isolation_score"] >= 0.6 for a in alerts)


def test_detectors_can_be_switched_off():
    cfg = WatchConfig.from_toml('[policy]\ndetectors = ["novelty"]\n')
    lines, _ = generate(30_000, 11)
    e = Engine(cfg)
    for r in sorted((parse_mapping(x) for x in lines), key=_event_key):
        e.add(r)
    e.finish(close_last=True)
    assert {a.detectors for a in e.drain()} <= {("novelty",), ()}, "only novelty alerts; () is a later month of its case"


# --- clocks and partitions ------------------------------------------------------------------

SPARSE = WatchConfig.from_toml('[watch]\nhs6 = ["chpl", "930190", "880240"]\n')


def _sparse_lanes():
    """Two goods groups of sparse lanes next to the generated ones: one starting in
    2021-01 (declarations and monthly statistics) with bursts in 2022-06 and
    2022-12, one trading every other month from 2020-05 that stops in 2022-05."""
    rows, i = [], 0
    for m in range(13, 36, 3):
        for reporter in ("DE", "PL"):
            i += 1
            value = 120_000.0 if m == 29 else 20_000.0 + 1_000 * (m % 4)
            for k in range(6 if m == 29 else 1):
                rows.append({"declaration_id": f"s{i}-{k}", "date": f"{2020 + m // 12}-{m % 12 + 1:02d}-{3 + 4 * k:02d}",
                             "reporter": reporter, "partner": "KG", "hs_code": "93019000", "value": value,
                             "currency": "EUR", "exporter": f"Sparse {k}"})
    for d in (1, 2, 3, 5, 6, 10):  # a burst early in the last month, checked on the 8th
        rows.append({"declaration_id": f"burst{d}", "date": f"2022-12-{d:02d}", "reporter": "DE", "partner": "KG",
                     "hs_code": "93019000", "value": 90_000.0, "currency": "USD", "exporter": f"Shell {d}"})
    for m in range(12, 36):
        rows.append({"period": f"{2020 + m // 12}-{m % 12 + 1:02d}", "reporter": "FR", "partner": "AM",
                     "hs_code": "930190", "value": 30_000.0 * (4 if m >= 33 else 1), "currency": "USD"})
    for m in range(4, 29, 2):
        for k in range(8 if m == 28 else 1):
            i += 1
            rows.append({"declaration_id": f"t{i}", "date": f"{2020 + m // 12}-{m % 12 + 1:02d}-{9 + m % 11 + k:02d}",
                         "reporter": "IT", "partner": "AM", "hs_code": "88024000", "value": 60_000.0 + 5_000 * (m % 3),
                         "currency": "USD"})
    return [parse_mapping(r) for r in rows]


@pytest.fixture(scope="module")
def stream():
    """Generated declarations, sparse lanes, and a last month that ends on its 23rd day."""
    lines, _ = generate(30_000, 11)
    records = [parse_mapping(r) for r in lines] + _sparse_lanes()
    cut = dt.date(2022, 12, 23).toordinal()
    return sorted((r for r in records if _event_key(r) <= cut), key=_event_key)


def _key(alert):
    import orjson

    return orjson.dumps(alert.to_dict(), option=orjson.OPT_SORT_KEYS)


@pytest.fixture(scope="module")
def one_engine(stream):
    """One Engine over everything, and the columnar replay of the same records."""
    from transitwatch.detectors.columnar import ColumnarReplay
    from transitwatch.detectors.frame import Block

    whole = Engine(SPARSE)
    for r in stream:
        whole.add(r)
    whole.finish(close_last=False)
    run = ColumnarReplay(SPARSE)
    run.feed(Block.from_records(stream), source=0, lines=np.arange(1, len(stream) + 1))
    columnar = run.run(final_month="open").engine
    return whole, whole.drain(), columnar, columnar.drain()


@pytest.mark.parametrize("parts", [1, 2, 5, None])  # None: one engine per hs6, as the service runs
def test_engines_split_by_hs6_give_the_alerts_of_one_engine(stream, one_engine, parts):
    import zlib

    whole, expected, columnar, replayed = one_engine
    by_part: dict[object, list] = {}
    for r in stream:
        hs6 = r.hs_code[:6]
        by_part.setdefault(hs6 if parts is None else zlib.crc32(hs6.encode()) % parts, []).append(r)
    got, counts, starts = [], Counter(), set()
    for records in by_part.values():
        e = Engine(SPARSE)
        for r in records:
            e.add(r)
        if e.table is not None:
            starts.add(e.table.start)
            # A part whose records stopped before the last month still lives in it: the
            # service's clock closes its months (records of other parts do not).
            e.close_until(whole.open_month)
            # ... and its watermark says the data is complete up to the day before the last record's
            e.data_through(dt.date(2022, 12, 22))
        e.finish(close_last=False)
        got += e.drain()
        counts += e.counts

    assert sorted(map(_key, got)) == sorted(map(_key, expected))
    assert sorted(map(_key, replayed)) == sorted(map(_key, expected))
    assert counts == whole.counts == columnar.counts
    assert whole.open_month == 2022 * 12 + 11
    assert len({a.hs6 for a in expected if a.early and a.period == "2022-12"}) == 2
    assert any(not a.early for a in expected) and any(a.hs6 == "930190" for a in expected)
    assert any(a.hs6 == "880240" and a.period == "2022-05" and not a.early for a in expected)
    if parts is None:
        assert len(starts) > 1, "some goods groups start after the first month"


def _burst_engine():
    e = Engine()
    i = 0
    for m in range(1, 13):
        for d in (3, 17):
            i += 1
            e.add(_decl(i, f"2021-{m:02d}-{d:02d}", 50_000.0 + 1000 * (i % 5)))
    for d in range(1, 8):  # a burst in the first week of January 2022
        for k in range(6):
            i += 1
            e.add(_decl(i, f"2022-01-0{d}", 60_000.0, exporter=f"Shell {k}"))
    assert e.drain() == []
    return e


def test_a_check_day_passed_by_any_goods_checks_every_lane_as_of_its_eve():
    """Data to date: a declaration of other goods dated after the 8th says the first week is complete."""
    e = _burst_engine()
    e.add(_decl("other", "2022-01-12", 70_000.0, hs="85176200"))
    (alert,) = e.drain()
    assert alert.early and alert.hs6 == "854231" and alert.as_of == "2022-01-07"
    e.add(_decl("own", "2022-01-13", 50_000.0))
    assert e.drain() == [], "one early alert a lane and month"


def test_the_watermark_reveals_a_check_day_as_a_record_would():
    e = _burst_engine()
    e.data_through(dt.date(2022, 1, 6))
    assert e.drain() == [], "the 8th's check waits until the 7th is complete"
    e.data_through(dt.date(2022, 1, 7))
    (alert,) = e.drain()
    assert alert.early and alert.as_of == "2022-01-07"


def test_the_end_of_a_replay_checks_its_month_in_progress_to_date():
    e = _burst_engine()
    e.finish(close_last=False)
    assert e.drain() == [], "without to_date nothing is checked before the 8th has passed"
    e = _burst_engine()
    e.finish(close_last=False, to_date=True)
    (alert,) = e.drain()
    assert alert.early and alert.as_of == "2022-01-07" and "by 2022-01-07" in alert.explanation

def test_the_end_of_input_checks_nothing():
    e = Engine()
    e.add(_decl(1, "2022-01-03", 5_000_000.0))
    before = e.counts
    e.finish(close_last=False)
    assert e.drain() == [] and e.counts == before and e.open_month == 2022 * 12


def test_history_of_a_new_series_starts_with_its_goods_group():
    e = Engine()
    e.add(_stat("2020-01", 10.0))
    e.add(_stat("2021-01", 20.0, hs="85176200"))  # a group that starts a year later
    e.add(_stat("2021-03", 30.0, partner="AM", hs="85176200"))  # a new series of that group
    e.add(_stat("2021-03", 30.0, partner="AM"))  # a new series of the first group
    t = e.table
    assert t.starts == {"854231": 2020 * 12, "851762": 2021 * 12}
    late = t.values[t.index[SeriesKey("DE", "AM", "export", "851762")]]
    early = t.values[t.index[SeriesKey("DE", "AM", "export", "854231")]]
    assert np.isnan(late[:-2]).all() and (late[-2:] == 0).all(), "known since 2021-01 only"
    assert (early[-14:] == 0).all() and np.isnan(early[:-14]).all(), "known since 2020-01"


def test_a_seen_store_replaces_the_set_of_declaration_ids():
    class Seen:
        def __init__(self):
            self.ids, self.asked = set(), 0

        def __contains__(self, declaration_id):
            self.asked += 1
            return declaration_id in self.ids

        def add(self, declaration_id):
            self.ids.add(declaration_id)

    seen = Seen()
    e = Engine(seen=seen)
    e.add(_decl(1, "2022-01-05", 10.0))
    e.add(_decl(1, "2022-01-05", 10.0))
    assert seen.ids == {"1"} and seen.asked == 2
    assert e.counts["duplicate declarations ignored"] == 1
    seen.ids.clear()  # a bounded store forgets: the engine takes what it is told is new
    e.add(_decl(1, "2022-01-06", 10.0))
    assert e.counts["records used"] == 2


def test_close_until_closes_the_months_a_record_would():
    a, b = Engine(), Engine()
    for e in (a, b):
        for i, p in enumerate(_months(2020, 30)):
            e.add(_stat(p, 50_000.0 * (8 if i == 29 else 1)))
    a.close_until(2022 * 12 + 6)
    a.close_until(2022 * 12 + 1)  # a month already closed: nothing
    b.finish(close_last=True)
    assert a.open_month == 2022 * 12 + 6 and len(a.table) == len(b.table)
    assert [x.to_dict() for x in a.drain()] == [x.to_dict() for x in b.drain()]
