"""The router: fan-out, grouping, de-duplication, updates, silences and retries.

It holds no I/O and reads time only from the injected ``clock``, so tests drive it with a
fake clock and an in-memory delivery log. The service feeds it alerts (:meth:`Router.add`),
sends what :meth:`Router.due` returns through the sinks, and reports back with
:meth:`Router.delivered` (after the delivery log recorded it), :meth:`Router.failed` and
:meth:`Router.abandoned`. ``on_done`` is called with an alert message's :class:`Source` once
every receiver it was routed to has it delivered, recorded, muted, skipped as a duplicate or
handed to the undelivered topic: only then may its offset be committed.

Grouping follows Alertmanager. A group is (route, receiver, values of ``group_by``). Its
first alert waits ``group_wait``; once the group has notified, new alerts wait until
``group_interval`` after the last message. Where Alertmanager would re-send an unchanged
group after ``repeat_interval``, the router closes it instead (transitwatch alerts never
resolve and an alert is never delivered twice): the group's next alert opens a new group,
waits ``group_wait`` again and starts a new email thread.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from transitwatch.detectors.errors import InvalidParameterError
from transitwatch.streams.notify.config import NotifyConfig, Receiver, Route
from transitwatch.streams.notify.deliverylog import DELIVERED, DeliveryLog, DeliveryRecord
from transitwatch.streams.notify.matchers import LABELS, alert_labels, label_value
from transitwatch.streams.notify.metrics import NotifyMetrics
from transitwatch.streams.notify.silences import Silences
from transitwatch.streams.notify.sinks import DeliveryError, Item, Notification, Source, message_id

#: Case updates a notifier reads and does not send: a case notifies when it opens, escalates or reopens.
QUIET_CASE_EVENTS = ("updated", "closed")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter, and when to give up.

    The n-th retry waits between half and all of ``min(maximum, initial * multiplier**(n-1))``.

    Examples
    --------
    >>> p = RetryPolicy(max_attempts=5, initial=1.0, maximum=8.0)
    >>> rng = random.Random(0)
    >>> [round(p.delay(n, rng), 2) for n in (1, 2, 3, 4, 5)]
    [0.92, 1.76, 2.84, 5.04, 6.05]
    """

    max_attempts: int = 8
    initial: float = 1.0
    maximum: float = 300.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise InvalidParameterError("max_attempts", self.max_attempts, "an integer >= 1")
        if not self.initial > 0:
            raise InvalidParameterError("initial", self.initial, "a number of seconds > 0")
        if not self.maximum >= self.initial:
            raise InvalidParameterError("maximum", self.maximum, f"a number of seconds >= initial ({self.initial})")
        if not self.multiplier >= 1:
            raise InvalidParameterError("multiplier", self.multiplier, "a number >= 1")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after the ``attempt``-th failed attempt (1-based)."""
        cap = min(self.maximum, self.initial * self.multiplier ** (attempt - 1))
        return cap / 2 + rng.random() * cap / 2


@dataclass(slots=True, eq=False)
class _Group:
    key: str
    route: Route
    receiver: Receiver
    labels: dict[str, str]
    items: dict[str, Item] = field(default_factory=dict)
    next_flush: float | None = None
    last_flush: float | None = None
    thread_parent: str | None = None


def _direct_route(receiver: str) -> Route:
    return Route(path="direct", receiver=receiver, group_by=(), group_wait=0.0, group_interval=0.001,
                 repeat_interval=0.001)


class Router:
    """Decides what to send, to whom and when; see the module docstring.

    Examples
    --------
    >>> from transitwatch.streams.notify.config import NotifyConfig
    >>> cfg = NotifyConfig.from_dict({"route": {"receiver": "desk", "group_wait": "30s"},
    ...     "receivers": [{"name": "desk", "type": "slack", "webhook_secret": "s"}]})
    >>> now = [1000.0]
    >>> router = Router(cfg, DeliveryLog(), Silences(), clock=lambda: now[0])
    >>> router.add({"alert_id": "tw-1", "partner": "AM", "period": "2022-04", "early": False})
    >>> router.due(), router.next_wakeup()
    ([], 1030.0)
    >>> now[0] = 1030.0
    >>> [(n.receiver.name, [i.alert_id for i in n.items]) for n in router.due()]
    [('desk', ['tw-1'])]
    """

    def __init__(
        self,
        config: NotifyConfig,
        log: DeliveryLog,
        silences: Silences,
        *,
        metrics: NotifyMetrics | None = None,
        clock: Callable[[], float] = time.time,
        retry: RetryPolicy = RetryPolicy(),
        rng: random.Random | None = None,
        on_done: Callable[[Source], None] | None = None,
        domain: str = "transitwatch.local",
        redelivery: bool = False,
    ) -> None:
        self.config, self.log, self.silences = config, log, silences
        self.metrics = metrics if metrics is not None else NotifyMetrics()
        self.clock, self.retry = clock, retry
        self.rng = rng if rng is not None else random.Random()
        self.on_done = on_done or (lambda source: None)
        self.domain = domain
        # ``redeliver`` sends what is on the undelivered topic, so only a delivery skips an alert.
        self.redelivery = redelivery
        self._unknown: list[Notification] = []
        self._groups: dict[str, _Group] = {}
        self._in_group: dict[tuple[str, str], _Group] = {}
        self._in_flight: dict[tuple[str, str], list[Item]] = {}
        self._retrying: list[Notification] = []
        self._blocked: dict[str, float] = {}
        self._outstanding: dict[Source, int] = {}
        self._muted: set[tuple[str, bool]] = set()
        self._seq = 0

    # -- intake ---------------------------------------------------------------------------------

    def add(self, alert: Mapping[str, Any], *, source: Source | None = None, timestamp: float | None = None,
            receiver: str | None = None) -> None:
        """Take one alert record; ``receiver`` bypasses routing (redelivery to that receiver)."""
        now = self.clock()
        event = alert.get("case_event")
        if receiver is None and event in QUIET_CASE_EVENTS:
            # a case notifies when it opens, escalates or reopens; its monthly updates stay on the topic
            self.metrics.case_updates.labels(event=event).inc()
            self._finish(source, 0)
            return
        labels = alert_labels(alert)
        if self._mute(alert, labels, now):
            self._finish(source, 0)
            return
        if receiver is not None:
            routes = [_direct_route(receiver)]
        else:
            # Two routes (through ``continue``) to one receiver deliver to it once.
            first: dict[str, Route] = {}
            for route in self.config.route.match(labels):
                first.setdefault(route.receiver, route)
            routes = list(first.values())
        held = 0
        for route in routes:
            item = Item(alert=alert, labels=labels, timestamp=now if timestamp is None else timestamp, source=source)
            held += self._hold(self.config.receivers[route.receiver], route, item, now)
        self._finish(source, held)

    def _finish(self, source: Source | None, held: int) -> None:
        if source is None:
            return
        if held:
            self._outstanding[source] = self._outstanding.get(source, 0) + held
        elif source not in self._outstanding:
            self.on_done(source)

    def _release(self, source: Source | None) -> None:
        if source is None or source not in self._outstanding:
            return
        self._outstanding[source] -= 1
        if self._outstanding[source] <= 0:
            del self._outstanding[source]
            self.on_done(source)

    def _mute(self, alert: Mapping[str, Any], labels: Mapping[str, tuple[str, ...]], now: float) -> bool:
        if self.silences.muting(labels, now) is None:
            return False
        version = (str(alert.get("alert_id")), bool(alert.get("early")))
        if version not in self._muted:
            if len(self._muted) >= 100_000:  # a bound on memory; at worst a muted alert is counted twice
                self._muted.clear()
            self._muted.add(version)
            self.metrics.silenced.inc()
        return True

    def _covered(self, receiver: str, alert_id: str, early: bool) -> bool:
        delivered = self.log.get(receiver, alert_id)
        return delivered.has(early) if self.redelivery else delivered.covers(early)

    def _hold(self, receiver: Receiver, route: Route, item: Item, now: float) -> bool:
        """Put the item in its group unless the receiver has, or will get, this alert anyway."""
        key = (receiver.name, item.alert_id)
        delivered = self.log.get(*key)
        if delivered.has(item.early):
            return False
        if any(f.early == item.early or not f.early for f in self._in_flight.get(key, ())):
            return False
        intent = delivered.intent(item.early)
        if intent is not None:
            # Not ours (ours are in flight): an earlier process stopped between sending and
            # recording the outcome. Not sent again; surfaced as an unknown outcome.
            self._seq += 1
            n = Notification(receiver=receiver, group_key=intent.group_key, group_labels={}, items=[item],
                             message_id=intent.message_id, alert_url=self.config.alert_url, seq=self._seq,
                             outcome_unknown=True)
            self._in_flight.setdefault(key, []).append(item)
            self._unknown.append(n)
            return True
        if self._covered(*key, item.early):
            return False
        group = self._in_group.get(key)
        if group is not None:
            waiting = group.items[item.alert_id]
            if waiting.early == item.early or not waiting.early:
                return False
            # The month-end alert replaces its early version that has not gone out yet.
            del group.items[item.alert_id]
            group.items[item.alert_id] = item
            self._release(waiting.source)
            return True
        group = self._group_for(receiver, route, item.labels)
        if not group.items and group.next_flush is None:
            if group.last_flush is None or now - group.last_flush >= route.repeat_interval:
                group.next_flush = now + route.group_wait
                group.thread_parent = None
            else:
                group.next_flush = max(now, group.last_flush + route.group_interval)
        group.items[item.alert_id] = item
        self._in_group[key] = group
        return True

    def _group_for(self, receiver: Receiver, route: Route, labels: Mapping[str, tuple[str, ...]]) -> _Group:
        names = [n for n in LABELS if n != "early"] if route.group_by_all else list(route.group_by)
        values = {name: label_value(labels, name) for name in names}
        key = f"{route.path}|{receiver.name}|" + "|".join(f"{k}={v}" for k, v in values.items())
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(key=key, route=route, receiver=receiver, labels=values)
            last = self.log.last_notified(receiver.name, key)
            if last is not None:
                group.last_flush, group.thread_parent = last
        return group

    # -- what to send ---------------------------------------------------------------------------

    def due(self) -> list[Notification]:
        """Notifications to send now: groups whose time came, and retries whose wait is over."""
        now = self.clock()
        fresh: list[Notification] = self._unknown
        self._unknown = []
        for group in list(self._groups.values()):
            if group.items and group.next_flush is not None and group.next_flush <= now:
                fresh.extend(self._flush(group, now))
            elif not group.items and (group.last_flush is None or now - group.last_flush >= group.route.repeat_interval):
                del self._groups[group.key]
        for n in fresh:
            blocked = self._blocked.get(n.receiver.name, 0.0)
            n.next_attempt_at = max(now, blocked)
        self._retrying.extend(fresh)
        ready = [n for n in self._retrying
                 if n.next_attempt_at <= now and self._blocked.get(n.receiver.name, 0.0) <= now]
        if ready:
            ids = {id(n) for n in ready}
            self._retrying = [n for n in self._retrying if id(n) not in ids]
        self.metrics.pending_groups.set(self.pending_groups)
        return sorted(ready, key=lambda n: n.seq)

    def _flush(self, group: _Group, now: float) -> list[Notification]:
        name = group.receiver.name
        items: list[Item] = []
        held_back: dict[str, Item] = {}
        for alert_id, item in group.items.items():
            key = (name, alert_id)
            delivered = self.log.get(*key)
            if self._covered(*key, item.early) or self._mute(item.alert, item.labels, now):
                del self._in_group[key]
                self._release(item.source)
            elif not item.early and any(f.early for f in self._in_flight.get(key, ())):
                held_back[alert_id] = item  # wait for the early version, so this goes out as its update
            else:
                del self._in_group[key]
                item.previous = delivered.delivered_early() if not item.early else None
                items.append(item)
        group.items = held_back
        group.next_flush = now + group.route.group_interval if held_back else None
        if not items:
            return []
        group.last_flush = now
        parent = group.thread_parent
        size = group.receiver.max_alerts_per_message
        out = []
        for start in range(0, len(items), size):
            chunk = items[start:start + size]
            earlier = [i.previous.message_id for i in chunk if i.previous is not None]
            self._seq += 1
            n = Notification(
                receiver=group.receiver, group_key=group.key, group_labels=dict(group.labels), items=chunk,
                message_id=message_id(name, group.key, chunk, self.domain),
                thread=tuple(dict.fromkeys([*earlier, *([parent] if parent else [])])),
                alert_url=self.config.alert_url, seq=self._seq,
            )
            for i in chunk:
                self._in_flight.setdefault((name, i.alert_id), []).append(i)
            out.append(n)
        group.thread_parent = parent or out[0].message_id
        return out

    def next_wakeup(self) -> float | None:
        """The earliest time :meth:`due` may return something, or None."""
        times = [g.next_flush for g in self._groups.values() if g.items and g.next_flush is not None]
        times += [max(n.next_attempt_at, self._blocked.get(n.receiver.name, 0.0)) for n in self._retrying]
        times += [self.clock() for _ in self._unknown[:1]]
        return min(times) if times else None

    @property
    def pending_groups(self) -> int:
        """Groups holding alerts that wait to be sent."""
        return sum(1 for g in self._groups.values() if g.items)

    @property
    def outstanding(self) -> int:
        """Alert messages not yet fully handled."""
        return len(self._outstanding)

    # -- outcomes -------------------------------------------------------------------------------

    def records_for(self, n: Notification, delivered_at: float | None = None, *, via: str = "notify",
                    state: str = DELIVERED) -> list[DeliveryRecord]:
        """The delivery-log records of a notification: by default, the receiver accepted it;
        ``state`` ``sending`` is the intent, ``failed`` or ``unknown`` another outcome."""
        at = self.clock() if delivered_at is None else delivered_at
        return [
            DeliveryRecord(receiver=n.receiver.name, receiver_type=n.receiver_type, alert_id=i.alert_id,
                           early=i.early, severity=str(i.alert.get("severity", "")), group_key=n.group_key,
                           message_id=n.message_id, delivered_at=at, via=via, state=state)
            for i in n.items
        ]

    def single(self, n: Notification, item: Item) -> Notification:
        """A notification of one item of ``n`` (to send alone what failed in company)."""
        self._seq += 1
        return Notification(receiver=n.receiver, group_key=n.group_key, group_labels=dict(n.group_labels),
                            items=[item], message_id=message_id(n.receiver.name, n.group_key, [item], self.domain),
                            thread=n.thread, attempt=n.attempt, alert_url=n.alert_url, seq=self._seq)

    def _leave_flight(self, n: Notification) -> None:
        for i in n.items:
            key = (n.receiver.name, i.alert_id)
            flying = self._in_flight.get(key, [])
            if i in flying:
                flying.remove(i)
            if not flying:
                self._in_flight.pop(key, None)

    def delivered(self, n: Notification) -> None:
        """The receiver accepted ``n`` and the delivery log recorded it."""
        now = self.clock()
        self._leave_flight(n)
        kind = n.receiver_type
        self.metrics.deliveries.labels(receiver_type=kind, outcome="delivered").inc(len(n.items))
        for i in n.items:
            self.metrics.latency.labels(receiver_type=kind).observe(max(0.0, now - i.timestamp))
            self._release(i.source)

    def failed(self, n: Notification, error: DeliveryError) -> bool:
        """An attempt failed: True if a retry is scheduled, False if the caller must give up
        (send the alerts to the undelivered topic, then call :meth:`abandoned`)."""
        now = self.clock()
        n.attempt += 1
        n.last_error = str(error)
        kind = n.receiver_type
        self.metrics.deliveries.labels(receiver_type=kind, outcome="failed").inc(len(n.items))
        if error.permanent or n.attempt >= self.retry.max_attempts:
            return False
        if error.retry_after is not None:
            wait = max(0.0, error.retry_after)
            self._blocked[n.receiver.name] = max(self._blocked.get(n.receiver.name, 0.0), now + wait)
        else:
            wait = self.retry.delay(n.attempt, self.rng)
        n.next_attempt_at = now + wait
        self.metrics.retries.labels(receiver_type=kind).inc(len(n.items))
        self._retrying.append(n)
        return True

    def abandoned(self, n: Notification) -> None:
        """The alerts of ``n`` are on the undelivered topic: stop tracking them."""
        self._leave_flight(n)
        counter = self.metrics.unknown_outcomes if n.outcome_unknown else self.metrics.undelivered
        counter.labels(receiver_type=n.receiver_type).inc(len(n.items))
        for i in n.items:
            self._release(i.source)

    def drop_partitions(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Forget waiting alerts of partitions this instance no longer owns (their new owner
        reads them again from the last commit); what is already being sent goes on."""
        gone = set(partitions)
        for group in self._groups.values():
            for alert_id, item in list(group.items.items()):
                if item.source is not None and (item.source.topic, item.source.partition) in gone:
                    del group.items[alert_id]
                    self._in_group.pop((group.receiver.name, alert_id), None)
            if not group.items:
                group.next_flush = None
        for source in [s for s in self._outstanding if (s.topic, s.partition) in gone]:
            del self._outstanding[source]
