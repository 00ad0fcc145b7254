"""The router with a fake clock, an in-memory delivery log and in-memory outcomes."""

from __future__ import annotations

import asyncio
import random

import pytest

from transitwatch.streams.notify.deliverylog import DeliveryLog
from transitwatch.streams.notify.metrics import NotifyMetrics
from transitwatch.streams.notify.router import RetryPolicy, Router
from transitwatch.streams.notify.silences import Silence, Silences
from transitwatch.streams.notify.sinks import DeliveryError, Source
from tests.streams.notify.notify_helpers import FakeClock, build_config, email, make_alert, slack

ROUTE = {"receiver": "desk", "group_by": ["partner", "period"], "group_wait": "30s", "group_interval": "5m",
         "repeat_interval": "1h"}


class Harness:
    """A router plus what a service does with its outcomes, synchronously."""

    def __init__(self, config=None, *, log=None, silences=None, retry=None, clock=None):
        self.config = config or build_config(ROUTE, [slack("desk")])
        self.clock = clock or FakeClock()
        self.log = log if log is not None else DeliveryLog()
        self.silences = silences or Silences()
        self.metrics = NotifyMetrics()
        self.done: list[Source] = []
        self.router = Router(self.config, self.log, self.silences, metrics=self.metrics, clock=self.clock,
                             retry=retry or RetryPolicy(max_attempts=3, initial=1.0, maximum=10.0),
                             rng=random.Random(1), on_done=self.done.append)
        self.offset = 0

    def add(self, alert, **kw):
        self.offset += 1
        source = Source("alerts", 0, self.offset)
        self.router.add(alert, source=source, timestamp=self.clock() - 2.0, **kw)
        return source

    def deliver(self, n):
        asyncio.run(self.log.record(self.router.records_for(n)))
        self.router.delivered(n)

    def due(self, deliver=True):
        out = self.router.due()
        if deliver:
            for n in out:
                self.deliver(n)
        return out

    def sample(self, name, labels=None):
        return self.metrics.registry.get_sample_value(name, labels or {})


def ids(n):
    return sorted(i.alert_id for i in n.items)


def test_group_wait_then_one_message_per_group():
    h = Harness()
    a1, a2 = make_alert(partner="AM"), make_alert(partner="AM")
    b1 = make_alert(partner="KG")
    h.add(a1)
    h.clock.advance(10)
    h.add(a2)
    h.add(b1)
    h.clock.advance(19.9)
    assert h.due() == [], "nothing goes out before group_wait"
    h.clock.advance(0.1)
    sent = h.due()
    assert [ids(n) for n in sent] == [sorted([a1["alert_id"], a2["alert_id"]])]
    assert sent[0].group_labels == {"partner": "AM", "period": "2022-04"}
    h.clock.advance(10)
    assert [ids(n) for n in h.due()] == [[b1["alert_id"]]], "the KG group waited its own 30 s"
    assert h.sample("transitwatch_notify_deliveries_total", {"receiver_type": "slack", "outcome": "delivered"}) == 3
    assert h.sample("transitwatch_notify_delivery_latency_seconds_count", {"receiver_type": "slack"}) == 3
    assert len(h.done) == 3


def test_group_interval_after_a_group_has_sent_and_repeat_interval_closes_it():
    h = Harness()
    h.add(make_alert())
    h.clock.advance(30)
    first = h.due()
    assert len(first) == 1
    h.clock.advance(60)
    late = make_alert()
    h.add(late)
    assert h.router.next_wakeup() == pytest.approx(h.clock() - 60 + 300), "group_interval after the last message"
    h.clock.advance(239)
    assert h.due() == []
    h.clock.advance(1)
    follow = h.due()
    assert [ids(n) for n in follow] == [[late["alert_id"]]]
    assert follow[0].thread == (first[0].message_id,), "a follow-up threads to the group's first message"
    # Quiet for repeat_interval: the group closes; the next alert waits group_wait and starts a new thread.
    h.clock.advance(3600)
    again = make_alert()
    h.add(again)
    assert h.router.next_wakeup() == pytest.approx(h.clock() + 30)
    h.clock.advance(30)
    fresh = h.due()
    assert [ids(n) for n in fresh] == [[again["alert_id"]]] and fresh[0].thread == ()


def test_a_delivered_alert_is_never_sent_again_also_after_a_restart():
    log = DeliveryLog()
    h = Harness(log=log)
    a = make_alert()
    h.add(a)
    h.clock.advance(30)
    assert len(h.due()) == 1
    h.add(dict(a))  # at-least-once producers: the same alert again
    h.clock.advance(600)
    assert h.due() == []
    # A new router over the same log is a restarted notifier re-reading uncommitted alerts.
    h2 = Harness(log=log, clock=h.clock)
    s = h2.add(dict(a))
    assert h2.done == [s], "a duplicate is released at once, so its offset can be committed"
    h2.clock.advance(600)
    assert h2.due() == []


def test_duplicate_while_waiting_or_in_flight_is_sent_once():
    h = Harness()
    a = make_alert()
    h.add(a)
    h.add(dict(a))
    h.clock.advance(30)
    sent = h.due(deliver=False)
    assert len(sent) == 1 and len(sent[0].items) == 1
    h.add(dict(a))  # arrives while the first copy is being sent
    h.clock.advance(600)
    assert h.due() == []
    h.deliver(sent[0])
    assert len(h.done) == 3


def test_month_end_alert_is_an_update_threaded_to_the_early_one():
    h = Harness()
    early = make_alert(early=True, as_of="2022-04-15", severity="medium")
    h.add(early)
    h.clock.advance(30)
    (first,) = h.due()
    assert not first.items[0].is_update
    final = dict(early, early=False, as_of="2022-04-30", severity="high")
    h.add(final)
    h.clock.advance(300)
    (second,) = h.due()
    item = second.items[0]
    assert item.is_update and item.previous.message_id == first.message_id
    assert item.previous.severity == "medium"
    assert second.thread[0] == first.message_id, "In-Reply-To is the early alert's message"
    assert second.message_id != first.message_id
    # The early version again, after the final went out: stale, dropped.
    h.add(dict(early))
    h.clock.advance(600)
    assert h.due() == []


def test_month_end_alert_replaces_an_early_one_that_has_not_gone_out():
    h = Harness()
    early = make_alert(early=True)
    s_early = h.add(early)
    h.clock.advance(5)
    s_final = h.add(dict(early, early=False))
    assert h.done == [s_early], "the replaced early alert is released"
    h.clock.advance(25)
    (n,) = h.due()
    assert [i.early for i in n.items] == [False] and not n.items[0].is_update
    assert h.done == [s_early, s_final]


def test_final_waits_while_its_early_version_is_in_flight():
    h = Harness()
    early = make_alert(early=True)
    h.add(early)
    h.clock.advance(30)
    (n_early,) = h.due(deliver=False)
    h.add(dict(early, early=False))
    h.clock.advance(300)
    assert h.due() == [], "the final is held back until the early one is delivered"
    h.deliver(n_early)
    h.clock.advance(300)
    (n_final,) = h.due()
    assert n_final.items[0].is_update


def test_silenced_alerts_are_counted_once_and_not_sent(clock):
    silences = Silences()
    silences.apply(Silence.create(['partner="KG"'], author="ana", reason="case 17", starts_at=clock(),
                                  ends_at=clock() + 3600, now=clock()))
    config = build_config(ROUTE | {"routes": [{"matchers": ['severity="high"'], "receiver": "mail", "continue": True},
                                              {"receiver": "desk"}]},
                          [slack("desk"), email("mail")])
    h = Harness(config, silences=silences, clock=clock)
    muted = make_alert(partner="KG")
    s = h.add(muted)
    assert h.done == [s]
    h.add(dict(muted))
    loud = make_alert(partner="AM")
    h.add(loud)
    clock.advance(30)
    sent = h.due()
    assert sorted((n.receiver.name, ids(n)[0]) for n in sent) == [("desk", loud["alert_id"]), ("mail", loud["alert_id"])]
    assert h.sample("transitwatch_notify_silenced_total") == 1


def test_a_silence_added_during_group_wait_mutes_the_waiting_alert(clock):
    silences = Silences()
    h = Harness(silences=silences, clock=clock)
    a = make_alert(severity="low")
    s = h.add(a)
    clock.advance(10)
    silences.apply(Silence.create(['severity="low"'], author="a", reason="noise", starts_at=clock(),
                                  ends_at=clock() + 60, now=clock()))
    clock.advance(20)
    assert h.due() == []
    assert h.done == [s] and h.sample("transitwatch_notify_silenced_total") == 1


def test_offsets_are_released_only_when_every_receiver_is_done():
    config = build_config(ROUTE | {"routes": [{"matchers": ['partner="AM"'], "receiver": "mail", "continue": True},
                                              {"matchers": ['partner="AM"'], "receiver": "desk"}]},
                          [slack("desk"), email("mail", max_alerts_per_message=5)])
    h = Harness(config)
    s = h.add(make_alert())
    h.clock.advance(30)
    sent = h.due(deliver=False)
    assert sorted(n.receiver.name for n in sent) == ["desk", "mail"]
    h.deliver(sent[0])
    assert h.done == []
    h.deliver(sent[1])
    assert h.done == [s]


def test_two_routes_to_one_receiver_deliver_once():
    config = build_config(ROUTE | {"routes": [{"matchers": ['partner="AM"'], "receiver": "desk", "continue": True},
                                              {"matchers": ['severity="high"'], "receiver": "desk"}]},
                          [slack("desk")])
    h = Harness(config)
    h.add(make_alert())
    h.clock.advance(30)
    assert len(h.due()) == 1


def test_retries_back_off_then_give_up():
    h = Harness(retry=RetryPolicy(max_attempts=3, initial=2.0, maximum=10.0))
    s = h.add(make_alert())
    h.clock.advance(30)
    (n,) = h.due(deliver=False)
    waits = []
    for attempt in (1, 2):
        assert h.router.failed(n, DeliveryError("HTTP 503")) is True
        wait = n.next_attempt_at - h.clock()
        waits.append(wait)
        h.clock.advance(wait - 0.01)
        assert h.due(deliver=False) == []
        h.clock.advance(0.01)
        assert h.due(deliver=False) == [n]
    assert 1.0 <= waits[0] <= 2.0 and 2.0 <= waits[1] <= 4.0, waits
    assert h.router.failed(n, DeliveryError("HTTP 503")) is False, "the third failure is the last"
    assert h.done == []
    h.router.abandoned(n)
    assert h.done == [s]
    assert h.sample("transitwatch_notify_deliveries_total", {"receiver_type": "slack", "outcome": "failed"}) == 3
    assert h.sample("transitwatch_notify_retries_total", {"receiver_type": "slack"}) == 2
    assert h.sample("transitwatch_notify_undelivered_total", {"receiver_type": "slack"}) == 1


def test_permanent_errors_give_up_at_once():
    h = Harness()
    h.add(make_alert())
    h.clock.advance(30)
    (n,) = h.due(deliver=False)
    assert h.router.failed(n, DeliveryError("HTTP 404 no_service", permanent=True)) is False


def test_retry_after_blocks_the_whole_receiver_but_not_the_others():
    config = build_config(ROUTE | {"routes": [{"matchers": ['partner="AM"'], "receiver": "mail", "continue": True},
                                              {"receiver": "desk"}]},
                          [slack("desk"), email("mail")])
    h = Harness(config)
    h.add(make_alert(partner="AM"))
    h.clock.advance(30)
    sent = {n.receiver.name: n for n in h.due(deliver=False)}
    assert sorted(sent) == ["desk", "mail"]
    assert h.router.failed(sent["desk"], DeliveryError("429", retry_after=60.0))
    h.deliver(sent["mail"])
    h.add(make_alert(partner="KG"))  # a new desk group, due in 30 s
    h.add(make_alert(partner="AM", period="2022-05"))  # a new mail (and desk) group
    h.clock.advance(30)
    assert [n.receiver.name for n in h.due()] == ["mail"], "desk waits for Retry-After, mail does not"
    h.clock.advance(30)
    assert sorted(len(n.items) for n in h.due()) == [1, 1, 1], "after 60 s the retry and both new groups go"


def test_retry_after_is_honoured_exactly():
    h = Harness()
    h.add(make_alert(partner="AM"))
    h.clock.advance(30)
    (n,) = h.due(deliver=False)
    assert h.router.failed(n, DeliveryError("429", retry_after=7.0))
    h.add(make_alert(partner="KG"))
    h.clock.advance(6.9)
    assert h.due(deliver=False) == []
    h.clock.advance(0.1)
    assert h.due(deliver=False) == [n]
    h.clock.advance(30)
    assert len(h.due(deliver=False)) == 1, "the KG group goes out once its own group_wait is over"


def test_a_receiver_that_is_down_does_not_hold_up_another():
    config = build_config(ROUTE | {"routes": [{"matchers": ['partner="AM"'], "receiver": "mail", "continue": True},
                                              {"receiver": "desk"}]},
                          [slack("desk"), email("mail")])
    h = Harness(config, retry=RetryPolicy(max_attempts=100, initial=1.0, maximum=5.0))
    for k in range(3):
        h.add(make_alert(period=f"2022-0{k + 1}"))
        h.clock.advance(30)
        for n in h.due(deliver=False):
            if n.receiver.name == "mail":
                h.router.failed(n, DeliveryError("connection refused"))
            else:
                h.deliver(n)
    assert h.sample("transitwatch_notify_deliveries_total", {"receiver_type": "slack", "outcome": "delivered"}) == 3
    assert h.done == [], "offsets wait for the email receiver"


def test_large_groups_are_split_into_messages_of_bounded_size():
    config = build_config(ROUTE, [slack("desk", max_alerts_per_message=4)])
    h = Harness(config)
    alerts = [make_alert() for _ in range(10)]
    for a in alerts:
        h.add(a)
    h.clock.advance(30)
    sent = h.due()
    assert [len(n.items) for n in sent] == [4, 4, 2]
    assert sorted(i for n in sent for i in ids(n)) == sorted(a["alert_id"] for a in alerts)
    assert len({n.message_id for n in sent}) == 3


def test_message_ids_are_stable_across_restarts():
    a = make_alert()
    out = []
    for _ in range(2):
        h = Harness()
        h.add(dict(a))
        h.clock.advance(30)
        out.append(h.due()[0].message_id)
    assert out[0] == out[1]


def test_drop_partitions_forgets_waiting_alerts():
    h = Harness()
    h.add(make_alert())
    assert h.router.pending_groups == 1
    h.router.drop_partitions([("alerts", 0)])
    h.clock.advance(30)
    assert h.due() == [] and h.router.pending_groups == 0 and h.router.outstanding == 0


def test_pending_groups_gauge():
    h = Harness()
    h.add(make_alert(partner="AM"))
    h.add(make_alert(partner="KG"))
    h.due()
    assert h.sample("transitwatch_notify_pending_groups") == 2
    h.clock.advance(30)
    h.due()
    assert h.sample("transitwatch_notify_pending_groups") == 0


def test_a_case_notifies_when_it_opens_and_escalates_not_every_month():
    h = Harness()
    events = [("2022-03", "opened"), ("2022-04", "updated"), ("2022-05", "escalated"), ("2022-06", "updated"),
              ("2022-09", "closed")]
    sources = [h.add(make_alert(alert_id=f"tw-{p}", period=p, case_id="twc-1", case_event=e)) for p, e in events]
    h.clock.advance(31)
    sent = [i.alert_id for n in h.due() for i in n.items]
    assert sorted(sent) == ["tw-2022-03", "tw-2022-05"]
    assert h.sample("transitwatch_notify_case_updates_total", {"event": "updated"}) == 2
    assert h.sample("transitwatch_notify_case_updates_total", {"event": "closed"}) == 1
    assert set(h.done) == set(sources), "an update that is not sent is done at once: its offset may be committed"
