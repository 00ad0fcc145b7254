"""The service's detector state for one goods group, kept in a key-value store.

The service partitions records by goods group (the HS6 code): every series of a
group lives on one worker, and so do the cross-series detectors, which only
compare series of the same HS6 (diversion: one reporter's lanes; corroboration:
one hub's reporters). Each group has its own :class:`~detectors.engine.Engine`,
so whatever runs next to it on a worker (other groups, other partitions) cannot
change its alerts: they are the alerts ``transitwatch replay`` gives for the
group, whatever the partition count.

A group's records pass a small reorder buffer first: a record is applied once
the group's event time (its newest date) has passed it by ``lateness_days``, in
date order, or once the service's watermark (every input partition has passed a
day, see ``docs/architecture.md``) has passed it. A month closes when a record
of a later month is applied, or when the watermark enters a later month.

The state is event-sourced into a key-value store (a Faust table, whose
changelog survives a restart or a move to another worker). All keys of a group
start with its HS6:

``{g}|snap|{month}|{i}``
    the Engine as it was right after ``month`` closed, in parts
``{g}|log|{seq}``
    what arrived since (records, release passes, watermark advances), one key per batch; the
    first log after a snapshot carries the records then waiting in the buffer
``{g}|seen|{month}``
    declaration ids of a closed month, kept ``dedup_months`` (the bounded
    de-duplication horizon); ids of the open month are in the log
``{g}|head``
    which of the above are current, written last in every batch

Writes of one group go to one changelog partition, in order, so a crash leaves
a prefix of them: the head names only keys written before it. Restoring loads
the snapshot and feeds the logs again through the same code; the alerts this
regenerates are filtered against the alerts topic (see ``streams.ledger``).
"""

from __future__ import annotations

import datetime as dt
import heapq
from itertools import repeat
import zlib
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from detectors.alerts import Alert
from detectors.contract import Declaration, Record, parse_mapping
from detectors.engine import Engine
from detectors.errors import StateError
from detectors.snapshot import EngineSnapshot
from detectors.watch import WatchConfig

HEAD_VERSION = 1


def goods_partition(hs6: str, partitions: int) -> int:
    """The partition of a goods group: stable across processes and releases.

    Examples
    --------
    >>> goods_partition("854231", 8) == goods_partition("854231", 8)
    True
    >>> 0 <= goods_partition("880211", 8) < 8
    True
    """
    return zlib.crc32(hs6.encode()) % partitions


def month_of_day(day: int) -> int:
    """The month index (``year * 12 + month - 1``) of a day ordinal.

    >>> month_of_day(dt.date(2022, 3, 31).toordinal()) == 2022 * 12 + 2
    True
    """
    date = dt.date.fromordinal(day)
    return date.year * 12 + date.month - 1


def event_day(rec: Record) -> int:
    """A record's event time as a day ordinal: a declaration's date, a
    statistic's last day of its month."""
    if type(rec) is Declaration:
        return rec.date.toordinal()
    m = rec.month + 1
    return dt.date(m // 12, m % 12 + 1, 1).toordinal() - 1


class MonthBuckets:
    """Declaration ids seen, bucketed by the month open when they came: a
    bounded de-duplication horizon of ``months`` closed months.

    Examples
    --------
    >>> seen = MonthBuckets(months=1)
    >>> seen.month = 10; seen.add("a")
    >>> seen.month = 11; seen.add("b")
    >>> seen.expire(closed=11)  # keeps the open month 12 and one closed month, 11
    >>> "a" in seen, "b" in seen
    (False, True)
    """

    def __init__(self, months: int) -> None:
        self.months = months
        self.month = 0
        self.buckets: dict[int, set[str]] = {}

    def __contains__(self, declaration_id: str) -> bool:
        return any(declaration_id in b for b in self.buckets.values())

    def add(self, declaration_id: str) -> None:
        bucket = self.buckets.get(self.month)
        if bucket is None:
            bucket = self.buckets[self.month] = set()
        bucket.add(declaration_id)

    def expire(self, closed: int) -> None:
        """Month ``closed`` has just closed: forget what is beyond the horizon."""
        for month in [m for m in self.buckets if m <= closed - self.months]:
            del self.buckets[month]

    def closed_months(self) -> list[int]:
        return sorted(m for m in self.buckets if m < self.month)


RELEASE = 0  # log entries besides records: a release pass; ``[day]``: an advance of the watermark


@dataclass
class _Pending:
    """A snapshot taken in this batch, not yet written."""

    month: int
    snapshot: EngineSnapshot
    max_day: int


@dataclass
class GroupState:
    """One goods group's engine, buffer and bookkeeping, bound to a store.

    Use :meth:`open` (restores what the store holds), then per batch
    :meth:`feed` / :meth:`advance`, :meth:`drain` the alerts, and :meth:`persist`.
    """

    group: str
    config: WatchConfig
    store: MutableMapping[str, bytes]
    lateness_days: int = 1
    dedup_months: int = 3
    engine: Engine = field(init=False)
    seen: MonthBuckets = field(init=False)
    max_day: int = field(default=0, init=False)
    _heap: list[tuple[int, int, Record]] = field(default_factory=list, init=False)
    _arrivals: int = field(default=0, init=False)
    _batch: list[Any] = field(default_factory=list, init=False)  # log entries of this batch
    _pending: _Pending | None = field(default=None, init=False)
    _head: dict[str, Any] = field(default_factory=dict, init=False)
    applied: dict[str, int] = field(default_factory=dict, init=False)  # input topic-partition -> last offset

    # -- lifecycle -------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        group: str,
        config: WatchConfig,
        store: MutableMapping[str, bytes],
        *,
        lateness_days: int = 1,
        dedup_months: int = 3,
    ) -> GroupState:
        """The group's state as the store holds it (empty if it holds none).

        Alerts regenerated while the logs are fed again wait in :meth:`drain`."""
        self = cls(group, config, store, lateness_days=lateness_days, dedup_months=dedup_months)
        self.seen = MonthBuckets(dedup_months)
        raw = store.get(self._key("head"))
        head = _loads(raw, "head") if raw is not None else None
        if head is None:
            self.engine = Engine(config, seen=self.seen)
            self._head = {"v": HEAD_VERSION, "snap": None, "logs": [], "seen": [], "max_day_at_snap": 0, "next": 0,
                          "applied": {}}
            return self
        if head.get("v") != HEAD_VERSION:
            raise StateError(f"group {group}: state head version {head.get('v')!r} is not {HEAD_VERSION}")
        self._head = head
        snap = head["snap"]
        if snap is None:
            self.engine = Engine(config, seen=self.seen)
        else:
            month, n = snap
            parts = [self._get(f"snap|{month}|{i}") for i in range(n)]
            self.engine = Engine.from_snapshot(EngineSnapshot.from_parts(parts), config, seen=self.seen)
        for month in head["seen"]:
            self.seen.buckets[month] = set(_loads(self._get(f"seen|{month}"), "seen ids"))
        if self.engine.open_month is not None:
            self.seen.month = self.engine.open_month
        self.max_day = head["max_day_at_snap"]
        self.applied = dict(head["applied"])
        for seq in head["logs"]:
            for entry in _loads(self._get(f"log|{seq}"), "log"):
                if type(entry) is int or type(entry) is list:
                    self._release(entry)
                else:
                    rec = parse_mapping(entry)
                    self._arrive(rec)
                    self._batch.append(rec)
        if self._pending is None:  # nothing new to write: the logs are already stored
            self._batch = []
        return self

    # -- records -------------------------------------------------------------------------------

    def feed(self, records: Iterable[Record], sources: Iterable[tuple[str, int]] | None = None) -> int:
        """Records of this group, in arrival order; applies what the watermark allows.

        ``sources`` gives each record's input topic-partition and offset: a record
        at or below the last offset this group took from that partition is a
        redelivery (the input was read again after a crash) and is dropped.
        Returns how many were dropped."""
        applied = self.applied
        dropped = 0
        for rec, source in zip(records, sources if sources is not None else repeat(None)):
            if source is not None:
                tp, offset = source
                if offset <= applied.get(tp, -1):
                    dropped += 1
                    continue
                applied[tp] = offset
            self._arrive(rec)
            self._batch.append(rec)
        self._release(RELEASE)
        return dropped

    def advance(self, day: int) -> bool:
        """Every input has passed ``day`` (the service's watermark): apply what
        waits up to it and close the months before its month. Returns whether
        anything changed."""
        heap, engine = self._heap, self.engine
        due = bool(heap) and heap[0][0] <= day
        if due or (engine.open_month is not None and engine.open_month < month_of_day(day)):
            self._release([day])
            return True
        return False

    @property
    def waiting(self) -> int:
        """Records waiting in the reorder buffer."""
        return len(self._heap)

    def drain(self) -> list[Alert]:
        return self.engine.drain()

    def _arrive(self, rec: Record) -> None:
        day = event_day(rec)
        if day > self.max_day:
            self.max_day = day
        heapq.heappush(self._heap, (day, self._arrivals, rec))
        self._arrivals += 1

    def _release(self, entry: int | list[int]) -> None:
        """One release pass, logged as ``entry``: apply waiting records in event order,
        those the group's own event time has passed by ``lateness_days`` (``RELEASE``)
        or, for ``[day]``, also those up to ``day``, then close the months before it."""
        self._batch.append(entry)
        heap = self._heap
        limit = self.max_day - self.lateness_days
        until = entry[0] if type(entry) is list else None
        if until is not None and until > limit:
            limit = until
        engine = self.engine
        while heap and heap[0][0] <= limit:
            rec = heap[0][2]
            if engine.open_month is not None and rec.month > engine.open_month:
                self._close_until(rec.month, entry)
            heapq.heappop(heap)
            engine.add(rec)
            if self.seen.month != engine.open_month:
                self.seen.month = engine.open_month
        if until is not None and engine.open_month is not None and engine.open_month < month_of_day(until):
            self._close_until(month_of_day(until), entry)

    def _close_until(self, month: int, entry: int | list[int]) -> None:
        """Close the months before ``month`` and snapshot the engine. What is still
        waiting (this record included) starts the next log, with this release."""
        engine = self.engine
        for m in range(engine.open_month, month):
            engine.close_until(m + 1)
            self.seen.expire(closed=m)
        self.seen.month = engine.open_month
        carry = [entry[2] for entry in sorted(self._heap, key=lambda e: (e[0], e[1]))]
        self._pending = _Pending(month - 1, engine.snapshot(), self.max_day)
        self._batch = [*carry, entry]

    # -- the store -----------------------------------------------------------------------------

    def persist(self) -> None:
        """Write this batch: a snapshot if a month closed, the log, then the head."""
        head = dict(self._head)
        pending = self._pending
        stale: list[str] = []
        if pending is not None:
            parts = pending.snapshot.to_parts()
            for i, part in enumerate(parts):
                self.store[self._key(f"snap|{pending.month}|{i}")] = part
            old = head["snap"]
            if old is not None and old[0] != pending.month:
                stale += [f"snap|{old[0]}|{i}" for i in range(old[1])]
            stale += [f"log|{seq}" for seq in head["logs"]]
            months = self.seen.closed_months()
            for month in months:
                if month not in head["seen"]:
                    self.store[self._key(f"seen|{month}")] = orjson.dumps(sorted(self.seen.buckets[month]))
            stale += [f"seen|{m}" for m in head["seen"] if m not in months]
            head.update(snap=[pending.month, len(parts)], logs=[], seen=months, max_day_at_snap=pending.max_day)
            self._pending = None
        if self._batch:
            seq = head["next"]
            entries = [e if type(e) is int or type(e) is list else e.to_dict() for e in self._batch]
            self.store[self._key(f"log|{seq}")] = orjson.dumps(entries)
            head.update(logs=[*head["logs"], seq], next=seq + 1)
            self._batch = []
        if self.applied != head["applied"]:
            head["applied"] = dict(self.applied)
        if head != self._head:
            self.store[self._key("head")] = orjson.dumps(head)
            self._head = head
        for key in stale:
            self.store.pop(self._key(key), None)

    def _key(self, name: str) -> str:
        return f"{self.group}|{name}"

    def _get(self, name: str) -> bytes:
        value = self.store.get(self._key(name))
        if value is None:
            raise StateError(f"group {self.group}: state key {name!r} named by the head is missing")
        return value


def group_of(key: str) -> str:
    """The goods group a state key belongs to."""
    return key.split("|", 1)[0]


def _loads(raw: bytes, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise StateError(f"cannot read state {what}: {exc}") from exc


def records_by_group(records: Iterable[Record]) -> Iterator[tuple[str, list[Record]]]:
    """Records grouped by goods group, each group's in arrival order."""
    groups: dict[str, list[Record]] = {}
    for rec in records:
        groups.setdefault(rec.hs_code[:6], []).append(rec)
    return iter(groups.items())
