"""The service's detector state for one goods group, kept in a key-value store.

The service partitions records by goods group (the HS6 code): every series of a
group lives on one worker, and so do the cross-series detectors, which only
compare series of the same HS6 (diversion: one reporter's lanes; corroboration:
one hub's reporters). Each group has its own :class:`~transitwatch.detectors.engine.Engine`,
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
    what arrived since (records, release passes, watermark advances), a batch's entries in
    one or more keys, small consecutive logs merged (size-tiered); the first log after a
    snapshot carries the records then waiting in the buffer
``{g}|seen|{month}|{i}``
    declaration ids of a closed month, in parts, kept ``dedup_months`` (the bounded
    de-duplication horizon); ids of the open month are in the log
``{g}|head``
    which of the above are current, and the fingerprints of the poison records the logs
    hold, written last in every batch

Every value written is at most :data:`MAX_MESSAGE_BYTES` (a changelog message
well under the producer's ``max_request_size``): what could grow is cut into
parts, and :class:`OversizeError` says so if something still does not fit.

Writes of one group go to one changelog partition, in order, so a crash leaves
a prefix of them: the head names only keys written before it. Restoring loads
the snapshot and feeds the logs again through the same code; the alerts this
regenerates are filtered against the alerts topic (see ``transitwatch.streams.ledger``).

A record that raises while it is applied (a poison record) is taken out: the
group is rebuilt from its last written state, the operations since are run
again without it, and it waits in :attr:`GroupState.poisoned` for the
dead-letter topic. The same input gives the same result on every replay.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import zlib
from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from transitwatch.detectors.alerts import Alert
from transitwatch.detectors.contract import Declaration, Record, parse_mapping
from transitwatch.detectors.engine import Engine
from transitwatch.detectors.errors import StateError, TransitwatchError
from transitwatch.detectors.snapshot import EngineSnapshot
from transitwatch.detectors.watch import WatchConfig

HEAD_VERSION = 2
READABLE_HEADS = (1, 2)  # 1: one key per closed month's ids, no poison fingerprints

#: The producer's ``max_request_size`` the worker sets (aiokafka's default): a larger message is refused.
PRODUCER_MAX_REQUEST_BYTES = 1 << 20
#: The largest value the worker writes to Kafka (state, goods bundles, alerts, dead letters): half
#: the producer's limit, so key, headers and the record batch's framing always fit beside it.
MAX_MESSAGE_BYTES = 1 << 19
#: The largest record (``to_dict()`` as JSON) the worker forwards: one fits in a bundle or a log part.
MAX_RECORD_BYTES = MAX_MESSAGE_BYTES - (16 << 10)


class OversizeError(TransitwatchError, ValueError):
    """A value the worker would write to Kafka is larger than :data:`MAX_MESSAGE_BYTES`.

    Everything that can grow is cut into parts before it is written, so this is a
    bug (or a single item larger than the bound): the message says what and how large.

    >>> OversizeError("state head", 600_000).size
    600000
    """

    def __init__(self, what: str, size: int, limit: int = MAX_MESSAGE_BYTES) -> None:
        self.what, self.size, self.limit = what, size, limit
        super().__init__(f"{what} is {size:,} bytes, over the {limit:,}-byte bound on what the worker writes "
                         "to Kafka; it must be cut into parts (report this as a bug)")


def bounded(value: bytes, what: str, limit: int = MAX_MESSAGE_BYTES) -> bytes:
    """``value``, if it is within ``limit``; else :class:`OversizeError`.

    >>> bounded(b"x" * 10, "a test value", limit=8)
    Traceback (most recent call last):
    ...
    transitwatch.streams.state.OversizeError: a test value is 10 bytes, over the 8-byte bound on what the worker writes to Kafka; it must be cut into parts (report this as a bug)
    """
    if len(value) > limit:
        raise OversizeError(what, len(value), limit)
    return value


# -- the calendar, for any integer ----------------------------------------------------------------
# Integer arithmetic (proleptic Gregorian, H. Hinnant's civil-day algorithms) rather than
# ``datetime``, whose constructors raise outside years 1..9999: no value reaching these can crash.

UNIX_EPOCH_DAY = 719_163  # dt.date(1970, 1, 1).toordinal()
_LAST_DAY = dt.date.max.toordinal()


def day_of(year: int, month: int, day: int) -> int:
    """The day ordinal (``date.toordinal()``, 0001-01-01 is 1) of a date, for any year.

    >>> day_of(2024, 2, 29) == __import__("datetime").date(2024, 2, 29).toordinal()
    True
    >>> day_of(10000, 1, 1) - day_of(9999, 12, 31)
    1
    """
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468 + UNIX_EPOCH_DAY


def month_of_day(day: int) -> int:
    """The month index (``year * 12 + month - 1``) of a day ordinal, for any integer.

    >>> import datetime as dt
    >>> month_of_day(dt.date(2022, 3, 31).toordinal()) == 2022 * 12 + 2
    True
    >>> month_of_day(day_of(10000, 1, 1)) == 10000 * 12
    True
    """
    z = day - UNIX_EPOCH_DAY + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    mp = (5 * (doe - (365 * yoe + yoe // 4 - yoe // 100)) + 2) // 153
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    return year * 12 + month - 1


def month_start_day(month: int) -> int:
    """The day ordinal of the first day of a month index.

    >>> month_start_day(2024 * 12 + 1) == day_of(2024, 2, 1)
    True
    """
    return day_of(month // 12, month % 12 + 1, 1)


def day_seconds(day: int) -> int:
    """Unix time of the start (UTC) of a day ordinal.

    >>> day_seconds(UNIX_EPOCH_DAY + 1)
    86400
    """
    return (day - UNIX_EPOCH_DAY) * 86_400


def event_day(rec: Record) -> int:
    """A record's event time as a day ordinal: a declaration's date, a
    statistic's last day of its month (any period, even 0000-01 or 9999-12)."""
    if type(rec) is Declaration:
        return rec.date.toordinal()
    return month_start_day(rec.month + 1) - 1


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


def fingerprint(rec: Record) -> str:
    """A short stable digest of a record's content: how a poison record is named in the state."""
    data = orjson.dumps(rec.to_dict(), option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(data, digest_size=12).hexdigest()


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

Source = tuple[str, int]  # input "topic:partition", offset


@dataclass(frozen=True)
class Poisoned:
    """A record that raised while it was applied, taken out of the group's state."""

    record: Record
    source: Source | None  # where it was read, when this process still knows
    error_type: str
    message: str


class _Poison(Exception):
    """Raised inside :class:`GroupState` when applying ``record`` raised ``error``."""

    def __init__(self, record: Record, source: Source | None, error: Exception) -> None:
        super().__init__(record, source, error)
        self.record, self.source, self.error = record, source, error


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
    :meth:`feed` / :meth:`advance`, :meth:`drain` the alerts and take the
    :attr:`poisoned` records, and :meth:`persist`.
    """

    group: str
    config: WatchConfig
    store: MutableMapping[str, bytes]
    lateness_days: int = 1
    dedup_months: int = 3
    engine: Engine = field(init=False)
    seen: MonthBuckets = field(init=False)
    max_day: int = field(default=0, init=False)
    poisoned: list[Poisoned] = field(default_factory=list, init=False)  # taken out, for the dead-letter topic
    quarantine: set[str] = field(default_factory=set, init=False)  # fingerprints the logs hold, not applied
    applied: dict[str, int] = field(default_factory=dict, init=False)  # input topic-partition -> last offset
    _heap: list[tuple[int, int, Record, Source | None]] = field(default_factory=list, init=False)
    _arrivals: int = field(default=0, init=False)
    _batch: list[Any] = field(default_factory=list, init=False)  # log entries of this batch
    _pending: _Pending | None = field(default=None, init=False)
    _head: dict[str, Any] = field(default_factory=dict, init=False)
    _log_sizes: dict[int, int] = field(default_factory=dict, init=False)  # seq -> bytes of the stored log
    _ops: list[tuple] = field(default_factory=list, init=False)  # feeds and advances since the last persist
    _replaying: bool = field(default=False, init=False)  # arrivals in quarantine are skipped
    _skipped: list[tuple[Record, Source | None, bool]] = field(default_factory=list, init=False)  # and: in _ops
    _failed_day: int | None = field(default=None, init=False)
    _in_ops: bool = field(default=False, init=False)

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

        Alerts regenerated while the logs are fed again wait in :meth:`drain`. A logged
        record that raises when fed again (it did not when it came) is taken out as a
        poison record, as :meth:`feed` does."""
        errors: dict[str, Exception] = {}
        while True:
            try:
                self = cls._restore(group, config, store, lateness_days, dedup_months, set(errors))
            except _Poison as p:
                _note(errors, p)
                continue
            self.poisoned = [Poisoned(rec, src, type(errors[fp]).__name__, str(errors[fp]))
                             for rec, src, fp in self._skipped_in(errors, set())]
            self._skipped = []
            return self

    @classmethod
    def _restore(cls, group: str, config: WatchConfig, store: MutableMapping[str, bytes], lateness_days: int,
                 dedup_months: int, quarantine: set[str]) -> GroupState:
        self = cls(group, config, store, lateness_days=lateness_days, dedup_months=dedup_months)
        self.seen = MonthBuckets(dedup_months)
        raw = store.get(self._key("head"))
        head = _loads(raw, "head") if raw is not None else None
        if head is None:
            self.engine = Engine(config, seen=self.seen)
            self._head = {"v": HEAD_VERSION, "snap": None, "logs": [], "seen": [], "max_day_at_snap": 0, "next": 0,
                          "applied": {}, "drop": []}
            self.quarantine = quarantine
            return self
        if head.get("v") not in READABLE_HEADS:
            raise StateError(f"group {group}: state head version {head.get('v')!r} is not one of {READABLE_HEADS}")
        head = {**head, "v": HEAD_VERSION, "drop": head.get("drop", [])}
        self._head = head
        self.quarantine = set(head["drop"]) | quarantine
        snap = head["snap"]
        if snap is None:
            self.engine = Engine(config, seen=self.seen)
        else:
            month, n = snap
            parts = [self._get(f"snap|{month}|{i}") for i in range(n)]
            self.engine = Engine.from_snapshot(EngineSnapshot.from_parts(parts), config, seen=self.seen)
        for item in head["seen"]:
            ids = self.seen.buckets[_seen_month(item)] = set()
            for name in _seen_keys(item):
                ids.update(_loads(self._get(name), "seen ids"))
        if self.engine.open_month is not None:
            self.seen.month = self.engine.open_month
        self.max_day = head["max_day_at_snap"]
        self.applied = dict(head["applied"])
        self._replaying = True
        for seq in head["logs"]:
            raw = self._get(f"log|{seq}")
            self._log_sizes[seq] = len(raw)
            for entry in _loads(raw, "log"):
                if type(entry) is int or type(entry) is list:
                    self._release(entry)
                else:
                    rec = parse_mapping(entry)
                    if self._arrive(rec, None):
                        self._batch.append(rec)
        self._replaying = False
        if self._pending is None:
            self._batch = []  # nothing new to write: the logs are already stored (a new poison: the head)
        return self

    # -- records -------------------------------------------------------------------------------

    def feed(self, records: Iterable[Record], sources: Iterable[Source] | None = None) -> int:
        """Records of this group, in arrival order; applies what the watermark allows.

        ``sources`` gives each record's input topic-partition and offset: a record
        at or below the last offset this group took from that partition is a
        redelivery (the input was read again after a crash) and is dropped.
        Returns how many were dropped. A record that raises while it is applied
        is taken out (see :attr:`poisoned`); this never raises for one record."""
        records = list(records)
        op = ("feed", records, list(sources) if sources is not None else [None] * len(records))
        self._ops.append(op)
        try:
            return self._run(op)
        except _Poison as p:
            return self._heal(p)

    def advance(self, day: int) -> bool:
        """Every input has passed ``day`` (the service's watermark): apply what
        waits up to it and close the months before its month. Returns whether
        anything changed.

        A waiting record that raises is taken out as in :meth:`feed`. Any other
        error (closing a month raised) leaves the state as it was before this call and
        is raised; the same ``day`` is not tried again."""
        if day == self._failed_day:
            return False
        heap, engine = self._heap, self.engine
        if not (heap and heap[0][0] <= day) and not (engine.open_month is not None
                                                     and engine.open_month < month_of_day(day)) and not (
                0 < day <= _LAST_DAY and engine.check_revealed(dt.date.fromordinal(day))):
            return False  # nothing to do (most calls): not an operation to run again
        op = ("advance", day)
        self._ops.append(op)
        try:
            return self._run(op)
        except _Poison as p:
            return self._heal(p)
        except Exception:
            self._ops.pop()
            self._heal(None)
            self._failed_day = day
            raise

    @property
    def waiting(self) -> int:
        """Records waiting in the reorder buffer."""
        return len(self._heap)

    def drain(self) -> list[Alert]:
        return self.engine.drain()

    def take_poisoned(self) -> list[Poisoned]:
        """The poison records taken out since the last call."""
        out, self.poisoned = self.poisoned, []
        return out

    def _run(self, op: tuple) -> Any:
        if op[0] == "feed":
            _, records, sources = op
            applied = self.applied
            dropped = 0
            for rec, source in zip(records, sources):
                if source is not None:
                    tp, offset = source
                    if offset <= applied.get(tp, -1):
                        dropped += 1
                        continue
                    applied[tp] = offset
                if self._arrive(rec, source):
                    self._batch.append(rec)
            self._release(RELEASE)
            return dropped
        day = op[1]
        heap, engine = self._heap, self.engine
        due = bool(heap) and heap[0][0] <= day
        if due or (engine.open_month is not None and engine.open_month < month_of_day(day)):
            self._release([day])
            return True
        return False

    def _heal(self, poison: _Poison | None) -> Any:
        """Rebuild from the store and run this batch's operations again, without the
        poison record(s); returns what the last operation returns."""
        errors: dict[str, Exception] = {}
        known = {}
        for _, _, rec, src in self._heap:
            if src is not None:
                known[fingerprint(rec)] = src
        for _ in range(len(self._heap) + sum(len(op[1]) for op in self._ops if op[0] == "feed") + 64):
            if poison is not None:
                _note(errors, poison)
                if poison.source is not None:
                    known[fingerprint(poison.record)] = poison.source
            try:
                fresh = type(self)._restore(self.group, self.config, self.store, self.lateness_days,
                                            self.dedup_months, self.quarantine | set(errors))
                fresh._replaying = fresh._in_ops = True
                result = None
                for op in self._ops:
                    result = fresh._run(op)
                fresh._replaying = fresh._in_ops = False
            except _Poison as p:
                poison = p
                continue
            break
        else:  # each pass takes one more record out: more passes than records is a bug
            raise StateError(f"group {self.group}: cannot rebuild the state without its poison records")
        fresh._ops = self._ops
        fresh.poisoned = self.poisoned + [
            Poisoned(rec, src if src is not None else known.get(fp), type(errors[fp]).__name__, str(errors[fp]))
            for rec, src, fp in fresh._skipped_in(errors, self.quarantine)]
        fresh._skipped = []
        self.__dict__.update(fresh.__dict__)
        return result

    def _skipped_in(self, errors: dict[str, Exception],
                    known: set[str]) -> Iterator[tuple[Record, Source | None, str]]:
        """Skipped arrivals taken out for ``errors``: those of this batch, and the logged ones
        not ``known`` already (those went to the dead-letter topic when they were taken out)."""
        for rec, src, in_ops in self._skipped:
            fp = fingerprint(rec)
            if fp in errors and (in_ops or fp not in known):
                yield rec, src, fp

    def _arrive(self, rec: Record, source: Source | None) -> bool:
        """Into the buffer; ``False``: a poison record being replayed, skipped."""
        if self._replaying and self.quarantine and fingerprint(rec) in self.quarantine:
            self._skipped.append((rec, source, self._in_ops))
            return False
        try:
            day = event_day(rec)
        except Exception as exc:  # noqa: BLE001 - whatever a record does, it is that record's
            raise _Poison(rec, source, exc) from exc
        if day > self.max_day:
            self.max_day = day
        heapq.heappush(self._heap, (day, self._arrivals, rec, source))
        self._arrivals += 1
        return True

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
            _, _, rec, source = heap[0]
            try:
                if engine.open_month is not None and rec.month > engine.open_month:
                    self._close_until(rec.month, entry)
                heapq.heappop(heap)
                engine.add(rec)
            except Exception as exc:  # noqa: BLE001 - the record raised: a poison record
                raise _Poison(rec, source, exc) from exc
            if self.seen.month != engine.open_month:
                self.seen.month = engine.open_month
        if until is not None and engine.open_month is not None and engine.open_month < month_of_day(until):
            self._close_until(month_of_day(until), entry)
        if until is not None and engine.open_month is not None and 0 < until <= _LAST_DAY:
            engine.data_through(dt.date.fromordinal(until))  # a check day the watermark passed is checked

    def _close_until(self, month: int, entry: int | list[int]) -> None:
        """Close the months before ``month`` and snapshot the engine. What is still
        waiting (this record included) starts the next log, with this release."""
        engine = self.engine
        for m in range(engine.open_month, month):
            engine.close_until(m + 1)
            self.seen.expire(closed=m)
        self.seen.month = engine.open_month
        carry = [e[2] for e in sorted(self._heap, key=lambda e: (e[0], e[1]))]
        self._pending = _Pending(month - 1, engine.snapshot(), self.max_day)
        self._batch = [*carry, entry]

    # -- the store -----------------------------------------------------------------------------

    def persist(self) -> None:
        """Write this batch: a snapshot if a month closed, the log, then the head."""
        head = dict(self._head)
        pending = self._pending
        stale: list[str] = []
        self._ops = []
        if pending is not None:
            parts = _snapshot_parts(pending.snapshot, f"group {self.group}: snapshot")
            for i, part in enumerate(parts):
                self._put(f"snap|{pending.month}|{i}", part)
            old = head["snap"]
            if old is not None and old[0] != pending.month:
                stale += [f"snap|{old[0]}|{i}" for i in range(old[1])]
            stale += [f"log|{seq}" for seq in head["logs"]]
            months = self.seen.closed_months()
            kept = {_seen_month(item): item for item in head["seen"]}
            seen = []
            for month in months:
                item = kept.pop(month, None)
                if item is None:
                    ids = _chunks([orjson.dumps(i) for i in sorted(self.seen.buckets[month])])
                    for name, part in zip(_seen_keys([month, len(ids)]), ids):
                        self._put(name, part)
                    item = [month, len(ids)]
                seen.append(item)
            stale += [name for item in kept.values() for name in _seen_keys(item)]
            head.update(snap=[pending.month, len(parts)], logs=[], seen=seen, max_day_at_snap=pending.max_day)
            self._log_sizes = {}
            self._pending = None
            self.quarantine = set()  # the logs that held them are dropped with this snapshot
        if self._batch:
            entries = [e if type(e) is int or type(e) is list else e.to_dict() for e in self._batch]
            raw = orjson.dumps(entries)
            chunks = [raw] if len(raw) <= _LOG_BYTES else _chunks([orjson.dumps(e) for e in entries])
            logs, written, dropped = self._merge_logs(head["logs"], chunks, head["next"])
            head.update(logs=logs, next=max([head["next"], *(seq + 1 for seq in written)]))
            stale += [f"log|{seq}" for seq in dropped]
            self._batch = []
        drop = sorted(self.quarantine)
        if drop != head["drop"]:
            head["drop"] = drop
        if self.applied != head["applied"]:
            head["applied"] = dict(self.applied)
        if head != self._head:
            self._put("head", orjson.dumps(head))
            self._head = head
        for key in stale:
            self.store.pop(self._key(key), None)

    def _merge_logs(self, logs: list[int], chunks: list[bytes], seq: int) -> tuple[list[int], list[int], list[int]]:
        """Append ``chunks`` to the logs, merging the newest while the one before is no larger
        (size-tiered: a few keys, each entry rewritten O(log n) times) and the merge fits.
        Writes the new keys; returns the logs, the keys written and the stored keys now unused."""
        items: list[tuple[int | None, bytes | None, int]] = [(s, None, self._log_sizes[s]) for s in logs]
        for chunk in chunks:
            items.append((None, chunk, len(chunk)))
            while len(items) >= 2 and items[-2][2] <= items[-1][2] and items[-2][2] + items[-1][2] <= _LOG_BYTES:
                b, a = items.pop(), items.pop()
                raw_a = a[1] if a[1] is not None else self._get(f"log|{a[0]}")
                raw_b = b[1] if b[1] is not None else self._get(f"log|{b[0]}")
                merged = raw_a[:-1] + b"," + raw_b[1:]
                items.append((None, merged, len(merged)))
        kept, written = [], []
        for stored, raw, size in items:
            if stored is None:
                stored = seq
                seq += 1
                self._put(f"log|{stored}", raw)
                self._log_sizes[stored] = size
                written.append(stored)
            kept.append(stored)
        keep = set(kept)
        dropped = [s for s in logs if s not in keep]
        for s in dropped:
            self._log_sizes.pop(s, None)
        return kept, written, dropped

    def _put(self, name: str, value: bytes) -> None:
        key = self._key(name)
        self.store[key] = bounded(value, f"state value {key!r}")

    def _key(self, name: str) -> str:
        return f"{self.group}|{name}"

    def _get(self, name: str) -> bytes:
        value = self.store.get(self._key(name))
        if value is None:
            raise StateError(f"group {self.group}: state key {name!r} named by the head is missing")
        return value


# a log part's size: small enough that merging logs rewrites little, large enough for few keys
_LOG_BYTES = MAX_MESSAGE_BYTES


def _note(errors: dict[str, Exception], poison: _Poison) -> None:
    """Remember a poison record's error; one that raises again once taken out is not the
    record's fault: re-raise the error (a bug, which must not loop)."""
    fp = fingerprint(poison.record)
    if fp in errors:
        raise poison.error
    errors[fp] = poison.error


def _chunks(items: Sequence[bytes], limit: int = _LOG_BYTES) -> list[bytes]:
    """JSON arrays of the encoded ``items``, in order, each at most ``limit`` bytes.

    >>> _chunks([b"1", b"22", b"333"], limit=8)
    [b'[1,22]', b'[333]']
    """
    out: list[bytes] = []
    part: list[bytes] = []
    size = 2
    for item in items:
        if part and size + len(item) + 1 > limit:
            out.append(b"[" + b",".join(part) + b"]")
            part, size = [], 2
        part.append(item)
        size += len(item) + 1
    out.append(bounded(b"[" + b",".join(part) + b"]", "one state log entry", limit))
    return out


def _snapshot_parts(snapshot: EngineSnapshot, what: str) -> list[bytes]:
    """The snapshot's parts, each within the bound: fewer series a part until they fit."""
    rows = 256
    while True:
        parts = snapshot.to_parts(rows_per_part=rows)
        largest = max(len(p) for p in parts)
        if largest <= MAX_MESSAGE_BYTES:
            return parts
        if rows == 1:
            raise OversizeError(f"{what} (one series a part)", largest)
        rows = max(rows // 4, 1)


def _seen_month(item: int | list[int]) -> int:
    return item if type(item) is int else item[0]


def _seen_keys(item: int | list[int]) -> list[str]:
    """The keys of one closed month's ids: ``seen|{m}`` (head version 1) or ``seen|{m}|{i}``."""
    if type(item) is int:
        return [f"seen|{item}"]
    month, n = item
    return [f"seen|{month}|{i}" for i in range(n)]


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
