"""The service's per-group state: same alerts as one Engine, across restarts."""

from __future__ import annotations

import random

import pytest

from benchmarks.scenarios.declarations import generate
from detectors.contract import parse_mapping
from detectors.engine import Engine
from detectors.errors import StateError
from detectors.watch import WatchConfig
from streams.replay import _event_key
from streams.state import GroupState, MonthBuckets, event_day, goods_partition, records_by_group

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

    def __init__(self, store, lateness=1):
        self.store = store
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
            state.feed(recs)
            touched.append(state)
        self.finish(touched)

    def finish(self, states):
        for state in states:
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


def run_service(records, *, seed, restarts, lateness=1):
    rng = random.Random(seed)
    service = Service({}, lateness)
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
