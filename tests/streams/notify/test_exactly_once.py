"""Exactly once to receivers across crashes: the intent and the outcome in the delivery log.

A "process" here is a router and a dispatcher over in-memory durable state: the delivery log's
records, the undelivered topic and the receiver's inbox survive a crash; nothing else does. A
crash is a :class:`Killed` raised at a chosen step (a durable write, a sink preparing a message,
the receiver accepting), before or after that step takes effect, exactly as SIGKILL would stop
the process there.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import pytest

from transitwatch.streams.notify.deliverylog import DELIVERED, FAILED, SENDING, UNKNOWN, DeliveryLog, DeliveryRecord
from transitwatch.streams.notify.kafkastate import parse_version_key
from transitwatch.streams.notify.metrics import NotifyMetrics
from transitwatch.streams.notify.router import RetryPolicy, Router
from transitwatch.streams.notify.service import Dispatcher
from transitwatch.streams.notify.silences import Silences
from transitwatch.streams.notify.sinks import DeliveryError, Notification, Source, Transmission
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
    fail_prepares: int = 0
    poison: set[str] = field(default_factory=set)
    open: int = 0  # prepared transmissions not closed yet

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
    """A sink whose preparation and transmission are crash points; only accepting is durable."""

    def __init__(self, name: str, type_: str, durable: Durable) -> None:
        self.name, self.type, self.durable = name, type_, durable

    async def prepare(self, n: Notification) -> Transmission:
        d = self.durable
        if any(i.alert_id in d.poison for i in n.items):
            raise TypeError("a bug that this alert's content triggers")
        d.step(f"prepare {self.name}", lambda: None)  # charts, connect, login: nothing outlives a crash
        if d.fail_prepares:
            d.fail_prepares -= 1
            raise DeliveryError(f"{self.name}: connection refused")
        d.open += 1

        async def deliver() -> None:
            if d.fail_sends:
                d.fail_sends -= 1
                raise DeliveryError(f"{self.name}: HTTP 503")
            d.step(f"accept {self.name}", lambda: d.inbox.setdefault(self.name, []).append(n))

        async def close() -> None:
            d.open -= 1

        return Transmission(deliver, close)

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


#: The steps of one alert to two receivers, in order (the route reaches mail first).
CLEAN_STEPS = ["prepare mail", "log sending", "accept mail", "log delivered",
               "prepare desk", "log sending", "accept desk", "log delivered"]


def test_the_steps_of_a_clean_delivery_are_prepare_intent_transmit_outcome():
    durable, clock = Durable(), FakeClock()
    a = make_alert()
    p = life(durable, clock, [a])
    assert durable.steps == CLEAN_STEPS
    assert durable.received("desk") == durable.received("mail") == [a["alert_id"]]
    assert p.done == [Source("alerts", 0, 0)] and durable.undelivered == []
    assert durable.open == 0, "every prepared transmission was closed"


@pytest.mark.parametrize("after", [False, True], ids=["as-it-starts", "once-prepared"])
def test_crash_while_preparing_leaves_no_intent_and_the_restart_sends_once(after):
    # Charts rendered, SMTP connected and logged in (or not yet): nothing was sent and nothing
    # recorded, so the restarted notifier just sends it; no operator is asked.
    durable, clock = Durable(kill_at=0, kill_after=after), FakeClock()
    a = make_alert()
    assert life(durable, clock, [a]) is None
    assert durable.steps == ["prepare mail"] and durable.records == [] and durable.inbox == {}
    durable.kill_at = None
    p = life(durable, clock, [a])
    assert durable.received("desk") == durable.received("mail") == [a["alert_id"]]
    assert p.unknown("slack") == p.unknown("email") == 0 and durable.undelivered == []
    assert p.done == [Source("alerts", 0, 0)]


def test_a_failed_preparation_is_a_failed_attempt_retried_without_an_intent():
    durable, clock = Durable(fail_prepares=1), FakeClock()  # mail's SMTP server refuses the connection once
    a = make_alert()
    p = life(durable, clock, [a])
    assert durable.steps[0] == "prepare mail" and durable.steps.count("prepare mail") == 2
    assert [r.state for r in durable.records if r.receiver == "mail"] == [SENDING, DELIVERED], "no intent, no failed"
    assert p.metrics.registry.get_sample_value("transitwatch_notify_retries_total", {"receiver_type": "email"}) == 1
    assert durable.received("desk") == durable.received("mail") == [a["alert_id"]]
    assert p.unknown("email") == 0 and durable.undelivered == [] and durable.open == 0
    # A crash during the backoff (as the retry starts) leaves nothing to surface either.
    retry = durable.steps.index("prepare mail", 1)
    durable, clock = Durable(fail_prepares=1, kill_at=retry), FakeClock()
    assert life(durable, clock, [a]) is None
    assert [r for r in durable.records if r.receiver == "mail"] == []
    durable.kill_at = None
    p = life(durable, clock, [a])
    assert durable.received("desk") == durable.received("mail") == [a["alert_id"]]
    assert p.unknown("email") == 0 and durable.undelivered == []


def test_a_preparation_that_keeps_failing_ends_on_the_undelivered_topic_as_failed_not_unknown():
    durable, clock = Durable(fail_prepares=10**6), FakeClock()
    a = make_alert()
    p = life(durable, clock, [a])
    assert sorted(durable.undelivered_keys()) == sorted(f"{r}|{a['alert_id']}|final" for r in ("desk", "mail"))
    assert all(h["outcome"] == b"failed" and b"connection refused" in h["reason"] for _, _, h in durable.undelivered)
    assert "log sending" not in durable.steps and p.unknown("slack") == p.unknown("email") == 0
    assert p.done == [Source("alerts", 0, 0)]


def test_crash_after_the_send_and_after_the_outcome_is_not_sent_again():
    durable, clock = Durable(kill_at=3, kill_after=True), FakeClock()  # dies right after "log delivered"
    a = make_alert()
    assert life(durable, clock, [a]) is None
    receiver = durable.steps[0].split()[1]
    assert durable.steps == [f"prepare {receiver}", "log sending", f"accept {receiver}", "log delivered"]
    durable.kill_at = None
    p = life(durable, clock, [a])
    assert durable.received("desk") == durable.received("mail") == [a["alert_id"]], "once each"
    assert durable.undelivered == [] and p.unknown("slack") == p.unknown("email") == 0
    assert p.done == [Source("alerts", 0, 0)]


@pytest.mark.parametrize(("kill_at", "after", "accepted"), [(1, True, False), (2, False, False), (2, True, True)],
                         ids=["between-intent-and-transmission", "as-the-transmission-starts",
                              "receiver-accepted"])
def test_crash_between_intent_and_outcome_is_not_resent_but_surfaced_as_unknown_outcome(kill_at, after, accepted):
    # The documented window: the intent is recorded, the outcome is not. The receiver has the
    # message (it accepted, the answer or its record was lost) or not (the transmission had not
    # left or not arrived): the restarted notifier cannot tell the two apart.
    durable, clock = Durable(kill_at=kill_at, kill_after=after), FakeClock()
    a = make_alert()
    assert life(durable, clock, [a]) is None
    receiver = durable.steps[0].split()[1]
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


def _window(steps: list[str]) -> tuple[str, bool] | None:
    """If these steps end inside a send's window (its intent recorded, its outcome not): the
    receiver and whether it had accepted the message. Sends run one at a time here."""
    opened = None
    for step in steps:
        if step.startswith("prepare "):
            receiver = step.split()[1]
        elif step == "log sending":
            opened = (receiver, False)
        elif step.startswith("accept ") and opened is not None:
            opened = (receiver, True)
        elif step.startswith("log "):
            opened = None
    return opened


@pytest.mark.parametrize("scenario", ["clean", "a failed preparation", "a failed transmission"])
def test_a_crash_at_every_step_never_sends_twice_and_only_the_window_is_unknown(scenario):
    failures = {"clean": {}, "a failed preparation": {"fail_prepares": 1},
                "a failed transmission": {"fail_sends": 1}}[scenario]
    alerts = [make_alert(partner=p) for p in ("AM", "KG", "KZ")]
    clean = Durable(**failures)
    life(clean, FakeClock(), alerts)
    n_steps = len(clean.steps)
    if scenario == "clean":
        assert n_steps == 3 * len(CLEAN_STEPS)
    seen: dict[tuple[str, bool], dict[str, int]] = {}
    for turn in range(n_steps):
        for after in (False, True):
            durable, clock = Durable(kill_at=turn, kill_after=after, **failures), FakeClock()
            assert life(durable, clock, alerts) is None
            first = list(durable.steps)
            window = _window(first if after else first[:-1])
            durable.kill_at = None
            assert life(durable, clock, alerts) is not None
            where = f"a crash {'after' if after else 'before'} step {turn} ({first[-1]}) with {scenario}"
            keys = durable.undelivered_keys()
            assert len(keys) == len(set(keys)) <= 1, (where, keys)
            for receiver in ("desk", "mail"):
                got = durable.received(receiver)
                assert len(got) == len(set(got)), f"sent twice after {where}"
                for a in alerts:
                    if f"{receiver}|{a['alert_id']}|final" not in keys:
                        assert a["alert_id"] in got, f"lost after {where}"
            if window is None:
                assert keys == [], f"an unknown outcome outside the window: {where}"
                result = "clean"
            else:
                (key,) = keys
                receiver, accepted = window
                assert key.startswith(f"{receiver}|")
                assert (key.split("|")[1] in durable.received(receiver)) == accepted, where
                result = "window" if accepted else "not_reached"
            assert durable.open == 0, f"a prepared transmission left open after {where}"
            kind = (first[-1].split()[0], after)
            seen.setdefault(kind, {}).setdefault(result, 0)
            seen[kind][result] += 1
    if scenario == "clean":
        # Per send (6): a crash while preparing, before its intent or after its outcome is clean
        # (sent once); right after the intent or as the transmission starts, the receiver has
        # nothing; after it accepted and before the outcome, it has it (the window). Only the
        # last two kinds are unknown outcomes, and none is sent again.
        assert seen == {("prepare", False): {"clean": 6}, ("prepare", True): {"clean": 6},
                        ("log", False): {"clean": 6, "window": 6}, ("log", True): {"clean": 6, "not_reached": 6},
                        ("accept", False): {"not_reached": 6}, ("accept", True): {"window": 6}}


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
