"""Exactly once to receivers across crashes: the intent and the outcome in the delivery log.

A "process" here is a router and a dispatcher over in-memory durable state: the delivery log's
records, the undelivered topic and the receiver's inbox survive a crash; nothing else does. A
crash is a :class:`Killed` raised at a chosen step (a durable write or the receiver accepting),
before or after that step takes effect, exactly as SIGKILL would stop the process there.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import pytest

from streams.notify.deliverylog import DELIVERED, FAILED, SENDING, UNKNOWN, DeliveryLog, DeliveryRecord
from streams.notify.kafkastate import parse_version_key
from streams.notify.metrics import NotifyMetrics
from streams.notify.router import RetryPolicy, Router
from streams.notify.service import Dispatcher
from streams.notify.silences import Silences
from streams.notify.sinks import DeliveryError, Notification, Source
from tests.streams.notify.notify_helpers import FakeClock, build_config, email, make_alert, slack

ROUTE = {"receiver": "desk", "group_by": ["partner", "period"], "group_wait": "30s", "group_interval": "5m",
         "repeat_interval": "1h", "routes": [{"receiver": "mail", "continue": True}, {"receiver": "desk"}]}
CONFIG = build_config(ROUTE, [slack("desk"), email("mail")])


class Killed(BaseException):
    """SIGKILL: not an Exception, so nothing in the notifier catches it."""


@dataclass
class Durable:
    """What outlives a process: delivery-log records, the undelivered topic, the receivers' inboxes."""

    records: list[DeliveryRecord] = field(default_factory=list)
    undelivered: list[tuple[bytes, bytes, dict[str, bytes]]] = field(default_factory=list)
    inbox: dict[str, list[Notification]] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    kill_at: int | None = None
    kill_after: bool = False
    fail_sends: int = 0
    poison: set[str] = field(default_factory=set)

    def step(self, what: str, effect) -> None:
        """Take one durable step, dying before or after it when its turn comes."""
        turn = len(self.steps)
        self.steps.append(what)
        if turn == self.kill_at and not self.kill_after:
            raise Killed(what)
        effect()
        if turn == self.kill_at and self.kill_after:
            raise Killed(what)

    def received(self, receiver: str) -> list[str]:
        return [i.alert_id for n in self.inbox.get(receiver, []) for i in n.items]

    def undelivered_keys(self) -> list[str]:
        return [k.decode() for k, _, _ in self.undelivered]


class DurableLog(DeliveryLog):
    def __init__(self, durable: Durable) -> None:
        super().__init__()
        self.durable = durable
        for r in durable.records:
            self.apply(r)
        for key, _, _ in durable.undelivered:
            self.mark_undelivered(*parse_version_key(key))

    async def record(self, records):
        self.durable.step(f"log {records[0].state}", lambda: self.durable.records.extend(records))
        for r in records:
            self.apply(r)


class DurableSink:
    def __init__(self, name: str, type_: str, durable: Durable) -> None:
        self.name, self.type, self.durable = name, type_, durable

    async def send(self, n: Notification) -> None:
        if any(i.alert_id in self.durable.poison for i in n.items):
            raise TypeError("a bug that this alert's content triggers")
        if self.durable.fail_sends:
            self.durable.fail_sends -= 1
            raise DeliveryError(f"{self.name}: HTTP 503")
        self.durable.step(f"accept {self.name}", lambda: self.durable.inbox.setdefault(self.name, []).append(n))

    async def close(self) -> None:
        return None


class Future:
    def __await__(self):
        return iter(())


class DurableProducer:
    def __init__(self, durable: Durable) -> None:
        self.durable = durable

    async def send(self, topic, value, key=None, headers=()):
        self.durable.step("undelivered", lambda: self.durable.undelivered.append((key, value, dict(headers))))
        return Future()


class Process:
    """One notifier life over ``durable``: reads the alerts from the last commit, then runs."""

    def __init__(self, durable: Durable, clock: FakeClock, *, max_attempts: int = 3) -> None:
        self.durable, self.clock = durable, clock
        self.log = DurableLog(durable)
        self.metrics = NotifyMetrics()
        self.done: list[Source] = []
        self.router = Router(CONFIG, self.log, Silences(), metrics=self.metrics, clock=clock,
                             retry=RetryPolicy(max_attempts=max_attempts, initial=1.0, maximum=1.0),
                             rng=random.Random(3), on_done=self.done.append)
        sinks = {"desk": DurableSink("desk", "slack", durable), "mail": DurableSink("mail", "email", durable)}
        self.dispatcher = Dispatcher(self.router, sinks, self.log, DurableProducer(durable), "undelivered")

    def read(self, alerts) -> None:
        for offset, alert in enumerate(alerts):
            self.router.add(dict(alert), source=Source("alerts", 0, offset), timestamp=self.clock())

    def run(self, seconds: float = 600.0) -> None:
        """Send whatever is due, second by second, as the sender tasks would."""
        async def go():
            for _ in range(int(seconds)):
                for n in self.router.due():
                    await self.dispatcher.send_now(n)
                self.clock.advance(1.0)
        asyncio.run(go())

    def unknown(self, kind: str) -> float:
        return self.metrics.registry.get_sample_value("transitwatch_notify_unknown_outcomes_total",
                                                      {"receiver_type": kind})


def life(durable: Durable, clock: FakeClock, alerts) -> Process | None:
    """Run one process to its end; None if it was killed."""
    p = Process(durable, clock)
    p.read(alerts)
    try:
        p.run()
    except Killed:
        return None
    return p


#: The durable steps of one alert to two receivers, in order (the route reaches mail first).
CLEAN_STEPS = ["log sending", "accept mail", "log delivered", "log sending", "accept desk", "log delivered"]


def test_the_steps_of_a_clean_delivery_are_intent_send_outcome():
    durable, clock = Durable(), FakeClock()
    a = make_alert()
    p = life(durable, clock, [a])
    assert durable.steps == CLEAN_STEPS
    assert durable.received("desk") == durable.received("mail") == [a["alert_id"]]
    assert p.done == [Source("alerts", 0, 0)] and durable.undelivered == []


def test_crash_before_the_intent_sends_once_after_the_restart():
    durable, clock = Durable(kill_at=0), FakeClock()
    a = make_alert()
    assert life(durable, clock, [a]) is None
    assert durable.records == [] and durable.inbox == {}
    durable.kill_at = None
    p = life(durable, clock, [a])
    assert durable.received("desk") == durable.received("mail") == [a["alert_id"]]
    assert p.done == [Source("alerts", 0, 0)] and durable.undelivered == []


def test_crash_after_the_send_and_after_the_outcome_is_not_sent_again():
    durable, clock = Durable(kill_at=2, kill_after=True), FakeClock()  # dies right after "log delivered"
    a = make_alert()
    assert life(durable, clock, [a]) is None
    first = durable.steps[0:3]
    assert first == ["log sending", f"accept {first[1].split()[1]}", "log delivered"]
    durable.kill_at = None
    p = life(durable, clock, [a])
    assert durable.received("desk") == durable.received("mail") == [a["alert_id"]], "once each"
    assert durable.undelivered == [] and p.unknown("slack") == p.unknown("email") == 0
    assert p.done == [Source("alerts", 0, 0)]


@pytest.mark.parametrize("accepted", [True, False], ids=["receiver-accepted", "never-reached-the-receiver"])
def test_crash_between_intent_and_outcome_is_not_resent_but_surfaced_as_unknown_outcome(accepted):
    # Dies after the receiver accepted (the window that cannot be closed), or after the intent
    # and before the send left: the restarted notifier cannot tell the two apart.
    durable, clock = Durable(kill_at=1, kill_after=accepted), FakeClock()
    a = make_alert()
    assert life(durable, clock, [a]) is None
    receiver = durable.steps[1].split()[1]
    other = "mail" if receiver == "desk" else "desk"
    assert durable.records[-1].state == SENDING
    durable.kill_at = None
    p = life(durable, clock, [a])
    assert durable.received(receiver) == ([a["alert_id"]] if accepted else []), "never sent twice"
    assert durable.received(other) == [a["alert_id"]], "the other receiver is not affected"
    ((key, value, headers),) = durable.undelivered
    assert key.decode() == f"{receiver}|{a['alert_id']}|final"
    assert headers["outcome"] == b"unknown" and headers["reason"].startswith(b"unknown_outcome")
    assert headers["message_id"] == durable.records[0].message_id.encode()
    kind = "slack" if receiver == "desk" else "email"
    assert p.unknown(kind) == 1
    assert p.log.get(receiver, a["alert_id"]).final.state == UNKNOWN
    assert p.done == [Source("alerts", 0, 0)], "surfaced, so the offset may be committed"
    # A third life finds the unknown outcome recorded: nothing more is sent or written.
    before = len(durable.steps)
    p3 = life(durable, clock, [a])
    assert len(durable.steps) == before and p3.done == [Source("alerts", 0, 0)]


def test_a_crash_at_every_step_never_sends_twice_nor_writes_the_undelivered_topic_twice():
    alerts = [make_alert(partner=p) for p in ("AM", "KG", "KZ")]
    clean = Durable()
    life(clean, FakeClock(), alerts)
    n_steps = len(clean.steps)
    assert n_steps == 3 * len(CLEAN_STEPS)
    outcomes = {"window": 0, "not_reached": 0}
    for turn in range(n_steps):
        for after in (False, True):
            durable, clock = Durable(kill_at=turn, kill_after=after), FakeClock()
            assert life(durable, clock, alerts) is None
            durable.kill_at = None
            assert life(durable, clock, alerts) is not None
            keys = durable.undelivered_keys()
            assert len(keys) == len(set(keys)) <= 1, (turn, after, keys)
            for receiver in ("desk", "mail"):
                got = durable.received(receiver)
                assert len(got) == len(set(got)), f"sent twice after a crash at step {turn} ({after=})"
                for a in alerts:
                    key = f"{receiver}|{a['alert_id']}|final"
                    if key in keys:
                        outcomes["window" if a["alert_id"] in got else "not_reached"] += 1
                    else:
                        assert a["alert_id"] in got, f"lost after a crash at step {turn} ({after=})"
    # 36 crash points (before and after each of 18 steps). Per send: before its intent or after
    # its outcome is clean (sent once); after the intent or before the accept, the receiver has
    # nothing; after the accept or before the outcome it has the alert (the window). Both are
    # surfaced as unknown outcomes, never sent again.
    assert outcomes == {"window": 12, "not_reached": 12}


def test_a_crash_while_giving_up_writes_the_undelivered_topic_once():
    a = make_alert()
    expected = sorted([f"desk|{a['alert_id']}|final", f"mail|{a['alert_id']}|final"])
    clean = Durable(fail_sends=10**6)
    p = life(clean, FakeClock(), [a])
    assert sorted(clean.undelivered_keys()) == expected
    assert p.log.get("desk", a["alert_id"]).final.state == FAILED and p.done == [Source("alerts", 0, 0)]
    writes = [i for i, step in enumerate(clean.steps) if step == "undelivered"]
    assert len(writes) == 2
    for turn in writes:
        # Die right after an undelivered write, before the alert's offset could be committed.
        durable, clock = Durable(fail_sends=10**6, kill_at=turn, kill_after=True), FakeClock()
        assert life(durable, clock, [a]) is None
        durable.kill_at = None
        p2 = life(durable, clock, [a])
        assert sorted(durable.undelivered_keys()) == expected, "each version and receiver once"
        assert p2.done == [Source("alerts", 0, 0)]


def test_a_failed_attempt_is_recorded_so_a_restart_retries_it_instead_of_calling_it_unknown():
    durable, clock = Durable(fail_sends=1), FakeClock()
    a = make_alert()
    p = Process(durable, clock)
    p.read([a])
    asyncio.run(p.dispatcher.send_now(_first_due(p)))
    states = [r.state for r in durable.records]
    assert states == [SENDING, FAILED]
    # Crash during the backoff; the restart sends it (the outcome was known: not accepted).
    p2 = life(durable, clock, [a])
    assert durable.received("desk") + durable.received("mail") == [a["alert_id"], a["alert_id"]]
    assert p2.unknown("slack") == p2.unknown("email") == 0 and durable.undelivered == []


def _first_due(p: Process) -> Notification:
    for _ in range(60):
        p.clock.advance(1.0)
        due = p.router.due()
        if due:
            return due[0]
    raise AssertionError("nothing became due")


def test_redelivery_mode_sends_an_unknown_outcome_but_not_a_delivered_alert():
    log = DeliveryLog()
    rec = dict(receiver="desk", receiver_type="slack", severity="high", group_key="g", message_id="<m@x>",
               delivered_at=1.0)
    unknown, delivered = make_alert(), make_alert()
    log.apply(DeliveryRecord(alert_id=unknown["alert_id"], early=False, state=UNKNOWN, **rec))
    log.apply(DeliveryRecord(alert_id=delivered["alert_id"], early=False, state=DELIVERED, **rec))
    clock = FakeClock()
    for redelivery, expected in ((False, []), (True, [unknown["alert_id"]])):
        router = Router(CONFIG, log, Silences(), clock=clock, redelivery=redelivery)
        for a in (unknown, delivered):
            router.add(a, receiver="desk")
        clock.advance(1)
        assert [i.alert_id for n in router.due() for i in n.items] == expected


def test_a_delivered_record_is_final_whatever_the_order_records_are_read_in():
    log = DeliveryLog()
    base = dict(receiver="desk", receiver_type="slack", alert_id="tw-1", early=False, severity="", group_key="g",
                message_id="<m@x>", delivered_at=1.0)
    for state in (SENDING, DELIVERED, SENDING, UNKNOWN, FAILED):
        log.apply(DeliveryRecord(state=state, **base))
    assert log.get("desk", "tw-1").final.state == DELIVERED
    assert log.get("desk", "tw-1").has(early=True), "the month-end version covers the early one"


def test_an_alert_that_makes_a_sink_raise_fails_alone_and_the_notifier_goes_on():
    good1, bad, good2 = make_alert(), make_alert(), make_alert()  # one group: same partner and period
    durable, clock = Durable(poison={bad["alert_id"]}), FakeClock()
    p = life(durable, clock, [good1, bad, good2])
    assert p is not None, "the exception did not escape"
    for receiver in ("desk", "mail"):
        assert sorted(durable.received(receiver)) == sorted([good1["alert_id"], good2["alert_id"]])
    keys = durable.undelivered_keys()
    assert sorted(keys) == sorted(f"{r}|{bad['alert_id']}|final" for r in ("desk", "mail"))
    assert all(b"TypeError" in h["reason"] and h["outcome"] == b"failed" for _, _, h in durable.undelivered)
    assert sorted(s.offset for s in p.done) == [0, 1, 2], "every offset released"
    assert p.metrics.registry.get_sample_value("transitwatch_notify_undelivered_total", {"receiver_type": "slack"}) == 1
