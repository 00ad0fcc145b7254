"""The service's per-group state: same alerts as one Engine, across restarts."""

from __future__ import annotations

import datetime as dt
import random

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.scenarios.declarations import generate
from transitwatch.detectors.contract import Declaration, parse_mapping
from transitwatch.detectors.engine import Engine
from transitwatch.detectors.errors import StateError
from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.replay import _event_key
from transitwatch.streams.state import (
    MAX_MESSAGE_BYTES,
    GroupState,
    MonthBuckets,
    day_of,
    day_seconds,
    event_day,
    goods_partition,
    month_of_day,
    records_by_group,
)

CONFIG = WatchConfig.default()


@pytest.fixture(scope="module")
def records():
    lines, _ = generate(25_000, 5)
    return [parse_mapping(r) for r in lines]


def reference(records):
    """One Engine over everything, in event order, the last month left open (as replay does)."""
    engine = Engine(CONFIG)
    for rec in sorted(records, key=_event_key):
        engine.add(rec)
    engine.finish(close_last=False)
    return engine.drain()


class Service:
    """GroupStates over a dict store, as the detect agent drives them, with restarts.
    Published alert versions are remembered the way the alerts-topic ledger does."""

    def __init__(self, store, lateness=1, sources=False):
        self.store = store
        self.sources = sources  # each record's (input, offset): its position in the stream
        self.positions: dict[int, int] = {}
        self.poisoned: list = []
        self.lateness = lateness
        self.groups: dict[str, GroupState] = {}
        self.published: list = []
        self.versions: set = set()

    def state(self, group):
        if group not in self.groups:
            self.groups[group] = GroupState.open(group, CONFIG, self.store, lateness_days=self.lateness)
        return self.groups[group]

    def batch(self, records):
        touched = []
        for group, recs in records_by_group(records):
            state = self.state(group)
            state.feed(recs, [(f"in:{group}", self.offset(r)) for r in recs] if self.sources else None)
            touched.append(state)
        self.finish(touched)

    def offset(self, rec):
        return self.positions.setdefault(id(rec), len(self.positions))

    def finish(self, states):
        for state in states:
            self.poisoned += state.take_poisoned()
            for alert in state.drain():
                if (alert.alert_id, alert.early) not in self.versions:
                    self.versions.add((alert.alert_id, alert.early))
                    self.published.append(alert)
            state.persist()

    def restart(self):
        self.groups = {}
        self.finish([self.state(g) for g in sorted({k.split("|")[0] for k in self.store})])

    def idle(self, day):
        """Every input has passed ``day``: the watermark advances every group."""
        for state in self.groups.values():
            state.advance(day)
        self.finish(list(self.groups.values()))


def run_service(records, *, seed, restarts, lateness=1, sources=False):
    rng = random.Random(seed)
    service = Service({}, lateness, sources)
    i = 0
    while i < len(records):
        n = rng.randint(1, 3000)
        service.batch(records[i:i + n])
        i += n
        if rng.random() < restarts:
            service.restart()
    service.idle(max(event_day(r) for r in records))
    return service


def as_dicts(alerts):
    return sorted((a.to_dict() for a in alerts), key=lambda d: (d["alert_id"], d["early"]))


def test_groups_give_the_alerts_of_one_engine(records):
    ordered = sorted(records, key=_event_key)  # the file in date order, as produced
    expected = reference(records)
    assert any(a.early for a in expected) and any(not a.early for a in expected)
    service = run_service(ordered, seed=1, restarts=0.0)
    assert as_dicts(service.published) == as_dicts(expected)


@pytest.mark.parametrize("seed", [2, 3])
def test_restarts_lose_no_alert_and_repeat_none(records, seed):
    ordered = sorted(records, key=_event_key)
    calm = run_service(ordered, seed=seed, restarts=0.0)
    stormy = run_service(ordered, seed=seed, restarts=0.3)
    assert as_dicts(stormy.published) == as_dicts(calm.published)
    assert len({(a.alert_id, a.early) for a in stormy.published}) == len(stormy.published)


def test_reorder_buffer_puts_records_back_in_date_order(records):
    """Records shuffled within a day or so still give the alerts of the sorted stream."""
    ordered = sorted(records, key=_event_key)
    rng = random.Random(4)
    jittered = sorted(ordered, key=lambda r: event_day(r) + rng.uniform(0, 1.5))
    expected = as_dicts(run_service(ordered, seed=5, restarts=0.0).published)
    got = run_service(jittered, seed=5, restarts=0.2, lateness=2).published
    assert {(a["alert_id"], a["early"]) for a in as_dicts(got)} == {(a["alert_id"], a["early"]) for a in expected}


def test_the_watermark_closes_the_month_of_a_group_that_fell_silent(records):
    """A group whose records stop after a month that alerts still gets that month's
    verdict, as in replay, once the other groups' records move the watermark on."""
    ordered = sorted(records, key=_event_key)
    last_month = ordered[-1].month
    final = next(a for a in reference(records) if not a.early and _month(a.period) < last_month - 2)
    cut = [r for r in ordered if r.hs_code[:6] != final.hs6 or r.month <= _month(final.period)]
    expected = as_dicts(reference(cut))
    assert final.alert_id in {a["alert_id"] for a in expected if not a["early"]}
    got = run_service(cut, seed=8, restarts=0.1)
    assert as_dicts(got.published) == expected


def _month(period: str) -> int:
    year, month = period.split("-")
    return int(year) * 12 + int(month) - 1


def test_state_keys_stay_bounded(records):
    """Logs are dropped at each snapshot: the store holds about one month per group."""
    service = run_service(sorted(records, key=_event_key), seed=6, restarts=0.0)
    groups = {k.split("|")[0] for k in service.store}
    logs = [k for k in service.store if "|log|" in k]
    snaps = {tuple(k.split("|")[:3]) for k in service.store if "|snap|" in k}
    assert len(snaps) == len(groups), "one snapshot month per group"
    assert len(logs) < 40 * len(groups)


def test_a_missing_key_is_a_state_error(records):
    service = run_service(sorted(records, key=_event_key)[:20_000], seed=7, restarts=0.0)
    store = dict(service.store)
    del store[next(k for k in store if "|snap|" in k)]
    group = next(k for k in store if "|head" in k).split("|")[0]
    with pytest.raises(StateError):
        for g in sorted({k.split("|")[0] for k in store}):
            GroupState.open(g, CONFIG, store)
    assert group


def test_month_buckets_forget_beyond_the_horizon():
    seen = MonthBuckets(months=2)
    for month, ids in ((1, "ab"), (2, "c"), (3, "d")):
        seen.month = month
        for i in ids:
            seen.add(i)
    seen.expire(closed=3)
    assert "a" not in seen and "c" in seen and "d" in seen


def test_goods_partition_is_stable():
    assert [goods_partition(h, 8) for h in ("854231", "880211", "847130")] == [
        goods_partition(h, 8) for h in ("854231", "880211", "847130")
    ]


# -- the calendar, for any value -----------------------------------------------------------------


@given(st.dates())
def test_calendar_arithmetic_is_the_datetime_calendar(date):
    day = date.toordinal()
    assert day_of(date.year, date.month, date.day) == day
    assert month_of_day(day) == date.year * 12 + date.month - 1
    assert day_seconds(day) == (dt.datetime.combine(date, dt.time(), dt.timezone.utc).timestamp())


@pytest.mark.parametrize("period", ["0000-01", "9999-12"])
def test_event_day_of_any_valid_period_is_a_number(period):
    rec = parse_mapping({"period": period, "reporter": "DE", "partner": "KG", "hs_code": "854231", "value": 1})
    day = event_day(rec)
    assert month_of_day(day) == rec.month and month_of_day(day + 1) == rec.month + 1


# -- poison records ------------------------------------------------------------------------------

POISON = {"20IT000000004000", "20DE000000011000", "20PL000000017000"}


def poison_engine(monkeypatch, ids):
    """Engine.add raises for the declarations ``ids``, after changing the engine (as a bug would)."""
    real = Engine.add

    def add(self, rec):
        if getattr(rec, "declaration_id", None) in ids:
            self._counts["half-applied"] += 1
            raise ArithmeticError(f"injected fault for {rec.declaration_id}")
        return real(self, rec)

    monkeypatch.setattr(Engine, "add", add)


@pytest.fixture
def poisoned_stream(records):
    ordered = sorted(records, key=_event_key)
    ids = {r.declaration_id for r in ordered}
    chosen = sorted(ids)[::5000][1:4]  # three ids spread over the stream
    assert len(chosen) == 3
    return ordered, set(chosen)


@pytest.mark.parametrize("restarts", [0.0, 0.3])
def test_a_poison_record_is_taken_out_and_the_rest_gives_the_alerts_without_it(
        monkeypatch, poisoned_stream, restarts):
    ordered, ids = poisoned_stream
    expected = as_dicts(reference([r for r in ordered if r.declaration_id not in ids]))
    poison_engine(monkeypatch, ids)
    service = run_service(ordered, seed=11, restarts=restarts, sources=True)
    assert sorted(p.record.declaration_id for p in service.poisoned) == sorted(ids), "each exactly once"
    assert all(p.error_type == "ArithmeticError" and "injected fault" in p.message for p in service.poisoned)
    assert all(p.source == (f"in:{p.record.hs_code[:6]}", service.positions[id(p.record)])
               for p in service.poisoned), "a dead letter says where the record was read"
    assert as_dicts(service.published) == expected
    assert all("half-applied" not in s.engine.counts for s in service.groups.values()), "the state was rebuilt"


def test_poison_handling_is_deterministic(monkeypatch, poisoned_stream):
    ordered, ids = poisoned_stream
    poison_engine(monkeypatch, ids)
    first, second = (run_service(ordered, seed=12, restarts=0.2) for _ in range(2))
    assert as_dicts(first.published) == as_dicts(second.published)
    assert [p.record for p in first.poisoned] == [p.record for p in second.poisoned]


def decl(i: int, day: int, hs: str = "854231", **extra) -> Declaration:
    date = dt.date(2024, 1, 1) + dt.timedelta(days=day)
    return parse_mapping({"declaration_id": f"t{i}", "date": date.isoformat(), "reporter": "DE",
                          "partner": "KG", "hs_code": hs, "value": 100 + i, **extra})


def test_a_poison_record_that_waited_in_the_buffer_is_taken_out_of_the_logged_state(monkeypatch):
    store: dict = {}
    poison_engine(monkeypatch, {"t1"})
    state = GroupState.open("854231", CONFIG, store, lateness_days=3)
    state.feed([decl(0, 0), decl(1, 2)], [("in:0", 0), ("in:0", 1)])
    assert state.waiting == 2 and not state.poisoned
    state.persist()  # t1 waits in the logged buffer
    state.feed([decl(2, 9)], [("in:0", 2)])  # releases t0 and t1: t1 raises
    (taken,) = state.take_poisoned()
    assert taken.record.declaration_id == "t1" and taken.source == ("in:0", 1)
    assert state.engine.counts["records used"] == 1 and "half-applied" not in state.engine.counts
    state.persist()
    again = GroupState.open("854231", CONFIG, store, lateness_days=3)
    assert not again.poisoned, "taken out once: a restart skips it without a second dead letter"
    assert again.engine.counts["records used"] == 1 and again.waiting == 1
    again.feed([decl(3, 20)], [("in:0", 3)])
    assert again.engine.counts["records used"] == 2 and again.waiting == 1 and not again.poisoned


def test_a_logged_record_that_raises_when_the_state_is_opened_is_taken_out(monkeypatch):
    store: dict = {}
    state = GroupState.open("854231", CONFIG, store, lateness_days=0)
    state.feed([decl(0, 0), decl(1, 1), decl(2, 2)])
    state.persist()
    assert state.engine.counts["records used"] == 3
    poison_engine(monkeypatch, {"t1"})  # e.g. a new release whose engine raises on what the old one took
    opened = GroupState.open("854231", CONFIG, store, lateness_days=0)
    assert [p.record.declaration_id for p in opened.take_poisoned()] == ["t1"]
    assert opened.engine.counts["records used"] == 2
    opened.persist()
    assert not GroupState.open("854231", CONFIG, store, lateness_days=0).poisoned


def test_an_advance_that_raises_leaves_the_state_as_it_was(monkeypatch):
    store: dict = {}
    state = GroupState.open("854231", CONFIG, store, lateness_days=0)
    state.feed([decl(0, 0), decl(1, 1)])
    state.persist()
    state.feed([decl(2, 3)])

    def close_until(self, month):
        raise FloatingPointError("closing raised")

    monkeypatch.setattr(Engine, "close_until", close_until)
    with pytest.raises(FloatingPointError):
        state.advance(dt.date(2024, 3, 1).toordinal())
    assert state.engine.open_month == 2024 * 12 and state.engine.counts["records used"] == 3
    assert state.advance(dt.date(2024, 3, 1).toordinal()) is False, "the same day is not tried again"
    state.persist()
    assert GroupState.open("854231", CONFIG, store, lateness_days=0).engine.counts["records used"] == 3


# -- bounded state values ------------------------------------------------------------------------


class BoundedStore(dict):
    """A store that records the largest value written."""

    largest = 0

    def __setitem__(self, key, value):
        self.largest = max(self.largest, len(value))
        super().__setitem__(key, value)


def test_a_large_batch_is_logged_in_parts_within_the_bound():
    store = BoundedStore()
    text = "c" * 20_000
    batch = [decl(i, i % 20, consignee=f"{i} {text}") for i in range(100)]  # about 2 MB of records
    assert len(orjson.dumps([r.to_dict() for r in batch])) > 2 * MAX_MESSAGE_BYTES
    state = GroupState.open("854231", CONFIG, store, lateness_days=50)
    state.feed(batch)
    state.persist()
    assert 0 < store.largest <= MAX_MESSAGE_BYTES
    assert len([k for k in store if "|log|" in k]) >= 4
    again = GroupState.open("854231", CONFIG, store, lateness_days=50)
    assert [e[2] for e in sorted(again._heap)] == [e[2] for e in sorted(state._heap)]


def test_many_small_batches_keep_few_log_keys_and_a_small_head():
    store = BoundedStore()
    state = GroupState.open("854231", CONFIG, store, lateness_days=0)
    for i in range(600):
        state.feed([decl(i, (i // 30) % 28)])
        state.persist()
    logs = [k for k in store if "|log|" in k]
    assert len(logs) <= 12, "size-tiered merging: O(log n) keys"
    assert len(store["854231|head"]) < 1000
    again = GroupState.open("854231", CONFIG, store, lateness_days=0)
    assert again.engine.counts["records used"] == state.engine.counts["records used"] == 600


def test_a_closed_months_ids_are_written_in_parts_and_still_recognised():
    store = BoundedStore()
    state = GroupState.open("854231", CONFIG, store, lateness_days=0)
    january = [parse_mapping({**decl(i, i % 28).to_dict(), "declaration_id": f"{i:0400d}"}) for i in range(3000)]
    for a in range(0, 3000, 500):
        state.feed(january[a:a + 500])
        state.persist()
    state.feed([decl(9999, 40)])  # February: January closes
    state.persist()
    parts = [k for k in store if "|seen|" in k]
    assert len(parts) >= 3 and store.largest <= MAX_MESSAGE_BYTES
    again = GroupState.open("854231", CONFIG, store, lateness_days=0)
    before = again.engine.counts["duplicate declarations ignored"]
    again.feed([january[1234]])
    assert again.engine.counts["duplicate declarations ignored"] == before + 1


def test_a_version_1_head_is_still_read():
    store: dict = {}
    state = GroupState.open("854231", CONFIG, store, lateness_days=0)
    state.feed([decl(i, i) for i in range(5)] + [decl(9, 40)])
    state.persist()
    head = orjson.loads(store["854231|head"])
    for month, n in head["seen"]:  # as version 1 wrote them: one key a month, no poison list
        store[f"854231|seen|{month}"] = b"[" + b",".join(store.pop(f"854231|seen|{month}|{i}")[1:-1]
                                                       for i in range(n)) + b"]"
    store["854231|head"] = orjson.dumps({**{k: v for k, v in head.items() if k != "drop"}, "v": 1,
                                         "seen": [m for m, _ in head["seen"]]})
    again = GroupState.open("854231", CONFIG, store, lateness_days=0)
    assert again.engine.counts["records used"] == 6
    again.feed([decl(2, 2)])
    assert again.engine.counts["duplicate declarations ignored"] == 1
