"""Silences, the delivery log and the offset tracker."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transitwatch.streams.notify.deliverylog import DeliveryLog, DeliveryRecord
from transitwatch.streams.notify.matchers import NotifyConfigError, alert_labels
from transitwatch.streams.notify.offsets import OffsetTracker
from transitwatch.streams.notify.silences import Silence, Silences
from transitwatch.streams.notify.sinks import Source


def _silence(*matchers, start=100.0, end=200.0, now=100.0, **kw):
    return Silence.create(list(matchers), author=kw.get("author", "ana"), reason=kw.get("reason", "known case"),
                          starts_at=start, ends_at=end, now=now)


def test_silence_life_cycle_and_serialisation():
    s = _silence('partner="KG"', 'severity=~"low|medium"', start=150.0, now=100.0)
    labels = alert_labels({"partner": "KG", "severity": "low"})
    assert s.state(120.0) == "pending" and not s.mutes(labels, 120.0)
    assert s.state(160.0) == "active" and s.mutes(labels, 160.0)
    assert not s.mutes(alert_labels({"partner": "KG", "severity": "high"}), 160.0)
    ended = s.expired(170.0)
    assert ended.state(170.0) == "expired" and ended.id == s.id and ended.updated_at == 170.0
    assert Silence.from_dict(ended.to_dict()) == ended


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"matchers": []}, "at least one matcher"),
    ({"matchers": ['partner=~".*"']}, "does not match an empty label"),
    ({"author": " "}, "author"),
    ({"reason": ""}, "reason"),
    ({"end": 90.0, "start": 50.0}, "end in the future"),
    ({"end": 100.0, "start": 100.0}, "end after it starts"),
])
def test_silence_validation(kwargs, message):
    matchers = kwargs.pop("matchers", ['partner="KG"'])
    with pytest.raises(NotifyConfigError, match=message):
        _silence(*matchers, **kwargs)


def test_the_newest_version_of_a_silence_wins_whatever_the_order():
    s = _silence('partner="KG"')
    later = s.expired(150.0)
    for order in ([s, later], [later, s]):
        view = Silences()
        for x in order:
            view.apply(x)
        assert view.get(s.id).ends_at == 150.0
        assert view.muting(alert_labels({"partner": "KG"}), 160.0) is None


def _record(receiver="desk", alert_id="tw-1", early=False, at=1.0, group="g", mid="<m@x>"):
    return DeliveryRecord(receiver=receiver, receiver_type="slack", alert_id=alert_id, early=early, severity="high",
                          group_key=group, message_id=mid, delivered_at=at)


def test_delivery_log_coverage_and_groups():
    log = DeliveryLog()
    asyncio.run(log.record([_record(early=True, mid="<e@x>", at=1.0)]))
    assert log.get("desk", "tw-1").covers(early=True) and not log.get("desk", "tw-1").covers(early=False)
    assert not log.get("mail", "tw-1").covers(early=True), "per receiver"
    log.apply(_record(early=False, mid="<f@x>", at=3.0))
    log.apply(_record(early=False, mid="<f2@x>", at=2.0))  # a replayed record does not overwrite the first
    assert log.get("desk", "tw-1").final.message_id == "<f@x>"
    assert log.get("desk", "tw-1").early.message_id == "<e@x>"
    assert log.last_notified("desk", "g") == (3.0, "<f@x>")
    assert len(log) == 2


def test_offset_tracker_commits_up_to_the_first_unfinished_offset():
    t = OffsetTracker()
    for o in range(10, 15):
        t.seen(Source("a", 0, o))
    t.seen(Source("a", 1, 3))
    for o in (11, 12, 14):
        t.done(Source("a", 0, o))
    t.done(Source("a", 1, 3))
    assert t.committable() == {("a", 1): 4}, "partition 0 waits for offset 10"
    t.done(Source("a", 0, 10))
    assert t.committable() == {("a", 0): 13, ("a", 1): 4}
    t.committed({("a", 0): 13, ("a", 1): 4})
    assert t.committable() == {}
    t.forget([("a", 0)])
    assert t.unfinished() == 0


@given(st.lists(st.integers(0, 40), min_size=1, max_size=40, unique=True), st.data())
def test_offset_tracker_never_commits_past_an_unfinished_offset(offsets, data):
    t = OffsetTracker()
    for o in sorted(offsets):
        t.seen(Source("a", 0, o))
    finished = data.draw(st.sets(st.sampled_from(offsets)))
    for o in finished:
        t.done(Source("a", 0, o))
    point = t.committable().get(("a", 0))
    unfinished = set(offsets) - finished
    if unfinished:
        # Nothing to commit while the first offset read (the last commit) is unfinished.
        assert point == (None if min(unfinished) == min(offsets) else min(unfinished))
    else:
        assert point == max(offsets) + 1
