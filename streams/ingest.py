"""Ingest: the input topics read with a plain aiokafka consumer, inside the worker.

Faust's path for one input message costs about 85 µs of CPU here, a plain
``AIOKafkaConsumer`` about 3 µs (``docs/performance.md``), so the worker reads
``customs.declarations`` and ``trade.monthly`` itself, in its own consumer group
(``{app_id}-ingest``), on the event loop Faust runs on. Faust keeps the goods
topic, the detector agent, the state table and its changelog.

Each batch (up to ``batch_size`` messages or ``ingest_batch_seconds`` after the first):

1. every message is validated by the input contract (``parse_json_line``, as
   replay does) and the input limits (``[input]`` of the watch configuration:
   its size, its month within the domain of time of the worker's clock); what
   fails goes to the dead-letter topic with its reason and where it came from
   (headers), a record outside the watch configuration is counted and goes no
   further; a message whose handling raises anything else (a poison message)
   goes to the dead-letter topic too, with the error, and the batch goes on;
2. the rest goes to the goods topic, in bundles per goods partition (several
   when one would pass :data:`~transitwatch.streams.state.MAX_MESSAGE_BYTES`), and every
   goods partition hears how far each input partition has got (``marks``, the
   watermark's input; see ``docs/architecture.md``) and which input partitions this
   reader holds at their end, idle for how long (``idle``; also every second, in a
   bundle without records, when there is nothing else to send: silence alone never
   makes an input partition idle);
3. once the broker has acknowledged every goods bundle and dead letter of the
   batch, and only then, the batch's input offsets are committed.

So input is processed at least once; the detector drops what it is given again
by (input partition, offset), per goods group. A rebalance of the ingest group
waits for the batch in flight to be acknowledged and committed before it gives
partitions away.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, IllegalStateError
from mode import Service

from transitwatch.detectors.contract import parse_json_line
from transitwatch.detectors.engine import route_reason
from transitwatch.detectors.errors import RejectError
from transitwatch.detectors.limits import deeper_than, line_too_long, too_deep
from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.metrics import WorkerMetrics
from transitwatch.streams.settings import Settings
from transitwatch.streams.state import MAX_MESSAGE_BYTES, MAX_RECORD_BYTES, OversizeError, event_day, goods_partition

log = logging.getLogger(__name__)

#: Sends one message; what it returns resolves when the broker has acknowledged it.
Send = Callable[..., Awaitable[Awaitable[Any]]]


class InputMessage(Protocol):
    """What ingest reads of a Kafka message (``aiokafka.ConsumerRecord`` has it)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int  # milliseconds


@dataclass
class Routed:
    """What one batch of input messages becomes (no Kafka, no metrics: see :func:`route_batch`)."""

    bundles: list[tuple[int, bytes]] = field(default_factory=list)  # (goods partition, bundle), in order
    dead: list[tuple[InputMessage, Exception]] = field(default_factory=list)  # a RejectError, or a poison's error
    consumed: Counter[str] = field(default_factory=Counter)  # kind -> messages
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> messages
    not_watched: Counter[str] = field(default_factory=Counter)  # reason -> records
    commit: dict[TopicPartition, int] = field(default_factory=dict)  # input partition -> next offset
    forwarded: int = 0
    poisoned: int = 0  # messages whose handling raised something other than a RejectError


def route_batch(messages: Iterable[InputMessage], settings: Settings, config: WatchConfig, *,
                today: dt.date, idle: dict[str, float] | None = None) -> Routed:
    """Validate, route and bundle one batch of input messages, in order.

    Every goods partition gets a bundle ``{"records", "ts", "src", "marks"}``: its
    records (``to_dict()``), their Kafka timestamps (seconds), their sources
    (``["topic:partition", offset]``) and the newest event day read on each input
    partition of the batch (valid records only). A batch with no valid record sends
    nothing. A partition whose bundle would pass :data:`MAX_MESSAGE_BYTES` gets
    several, in order; the last carries the marks, the others none (a goods
    partition must not hear of progress before it has every record behind it).
    ``idle`` (input partition -> seconds this reader has been at its end with nothing
    new, see :meth:`Ingest.idle_report`), when given, goes with the marks.

    ``today`` (the worker's clock) sets the domain of time, ``config.input.domain``:
    a record of a month outside it is a reject (``date_out_of_range``), as is a
    message longer than ``config.input.max_line_bytes`` (``line_too_long``) or nested
    deeper than ``config.input.max_depth`` (``too_deep``), neither parsed.

    Examples
    --------
    >>> from types import SimpleNamespace as M
    >>> s, cfg = Settings(partitions=2), WatchConfig.default()
    >>> good = b'{"declaration_id": "a", "date": "2024-01-09", "reporter": "DE", "partner": "KG",' \\
    ...        b' "hs_code": "854231", "value": 10}'
    >>> r = route_batch([M(topic=s.declarations_topic, partition=3, offset=7, key=None, value=good,
    ...                    timestamp=1_700_000_000_000),
    ...                  M(topic=s.declarations_topic, partition=3, offset=8, key=None, value=b"{", timestamp=0)],
    ...                 s, cfg, today=dt.date(2024, 2, 1))
    >>> [(p, orjson.loads(b)["marks"]) for p, b in r.bundles]
    [(0, {'customs.declarations:3': 738894}), (1, {'customs.declarations:3': 738894})]
    >>> r.forwarded, dict(r.rejected), {tp.partition: o for tp, o in r.commit.items()}
    (1, {'invalid_json': 1}, {3: 9})
    """
    n = settings.partitions
    monthly_topic = settings.monthly_topic
    limits = config.input
    domain = limits.domain(today)
    max_line, max_depth = limits.max_line_bytes, limits.max_depth
    out = Routed()
    parts: dict[int, tuple[list[dict], list[float], list[list]]] = {}
    marks: dict[str, int] = {}
    consumed = out.consumed
    for msg in messages:
        consumed["monthly" if msg.topic == monthly_topic else "declarations"] += 1
        tp = TopicPartition(msg.topic, msg.partition)
        if msg.offset + 1 > out.commit.get(tp, -1):
            out.commit[tp] = msg.offset + 1
        try:
            value = msg.value
            if value is None:
                raise RejectError("invalid_json", "The message has no value (a tombstone); each must be one JSON object.")
            if len(value) > max_line:
                raise line_too_long(len(value), max_line)
            if deeper_than(value, max_depth):
                raise too_deep(max_depth)
            rec = parse_json_line(value)
            error = domain.check(rec.month)
            if error is not None:
                raise error
            record = rec.to_dict()
            if len(value) + 1024 > MAX_RECORD_BYTES and len(orjson.dumps(record)) > MAX_RECORD_BYTES:
                raise RejectError("record_too_large", f"The record is over the {MAX_RECORD_BYTES:,} bytes the worker "
                                  "forwards in one message; shorten its text fields.")
            source = f"{msg.topic}:{msg.partition}"
            day = event_day(rec)
            reason = route_reason(config, rec.reporter, rec.partner, rec.flow, rec.hs_code[:6], rec.currency)
            partition = goods_partition(rec.hs_code[:6], n)
        except RejectError as exc:
            out.dead.append((msg, exc))
            out.rejected[exc.key] += 1
            continue
        except Exception as exc:  # noqa: BLE001 - a poison message: the dead-letter topic, not a crash loop
            log.warning("ingest: %s:%s@%s raised %s: %s; sent to the dead-letter topic",
                        msg.topic, msg.partition, msg.offset, type(exc).__name__, exc)
            out.dead.append((msg, exc))
            out.poisoned += 1
            continue
        if day > marks.get(source, -1):  # only records that passed every check say how far an input is
            marks[source] = day
        if reason is not None:
            out.not_watched[reason] += 1
            continue
        records, stamps, sources = parts.setdefault(partition, ([], [], []))
        records.append(record)
        stamps.append(msg.timestamp / 1000.0 if msg.timestamp and msg.timestamp > 0 else 0.0)
        sources.append([source, msg.offset])
        out.forwarded += 1
    if marks:  # every goods partition hears how far the inputs have got
        empty: tuple[list, list, list] = ([], [], [])
        for partition in range(n):
            records, stamps, sources = parts.get(partition, empty)
            out.bundles.extend((partition, b) for b in pack_bundle(records, stamps, sources, marks, idle=idle))
    return out


def pack_bundle(records: list[dict], stamps: list[float], sources: list[list], marks: dict[str, int],
                limit: int = MAX_MESSAGE_BYTES, *, idle: dict[str, float] | None = None) -> list[bytes]:
    """One goods partition's bundle, or several in order when one would pass ``limit``
    bytes; only the last carries ``marks`` (and ``idle``, when given).

    >>> [len(orjson.loads(b)["records"]) for b in pack_bundle([{"a": "x" * 40}] * 4, [0.0] * 4,
    ...                                                        [["t:0", 1]] * 4, {"t:0": 1}, limit=150)]
    [1, 1, 1, 1]
    """
    bundle: dict[str, Any] = {"records": records, "ts": stamps, "src": sources, "marks": marks}
    if idle:
        bundle["idle"] = idle
    raw = orjson.dumps(bundle)
    if len(raw) <= limit:
        return [raw]
    if len(records) <= 1:
        raise OversizeError("a goods bundle of one record", len(raw), limit)
    half = len(records) // 2
    return (pack_bundle(records[:half], stamps[:half], sources[:half], {}, limit)
            + pack_bundle(records[half:], stamps[half:], sources[half:], marks, limit, idle=idle))


#: How often (seconds) a reader tells the goods partitions which of its input partitions are idle,
#: when its batches have not said so already. A report is trusted for ``IDLE_REPORT_TRUSTED`` seconds.
IDLE_REPORT_EVERY = 1.0
IDLE_REPORT_TRUSTED = 3.0
#: the first wait before a batch that failed as a whole (the broker, not a record) is tried again;
#: it doubles up to the second. Ingest and the detect agent both use them
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 10.0


def retry_waits() -> Iterator[float]:
    """The waits before each new attempt at a batch that failed as a whole: 0.5, 1, 2 ... 10 s.

    >>> waits = retry_waits(); [next(waits) for _ in range(7)]
    [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    """
    wait = RETRY_FIRST_SECONDS
    while True:
        yield wait
        wait = min(wait * 2, RETRY_MAX_SECONDS)

#: The part of a rejected message's value the dead letter keeps: the whole value when it fits
#: (with room for key and headers within :data:`MAX_MESSAGE_BYTES`), else a prefix.
DEAD_VALUE_BYTES = MAX_MESSAGE_BYTES - (64 << 10)
_HEADER_TEXT = 2000  # characters of an error message kept in a header


DEAD_KEY_BYTES = 16 << 10


def dead_letter(msg: InputMessage, error: Exception) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """The dead letter of an input message: its key and value (prefixes, when longer than
    :data:`DEAD_KEY_BYTES` / :data:`DEAD_VALUE_BYTES`: header ``truncated``) and the
    headers (:func:`dead_letter_headers`).

    >>> from types import SimpleNamespace as M
    >>> key, value, headers = dead_letter(M(topic="t", partition=0, offset=1, key=b"k", value=b"x" * (1 << 20)),
    ...                                   RejectError("line_too_long", "Long."))
    >>> len(value) == DEAD_VALUE_BYTES, dict(headers)["value_bytes"], dict(headers)["truncated"]
    (True, b'1048576', b'true')
    """
    key, value, headers = msg.key, msg.value, dead_letter_headers(msg, error)
    if value is not None and len(value) > DEAD_VALUE_BYTES:
        headers.append(("value_bytes", str(len(value)).encode()))
        value = value[:DEAD_VALUE_BYTES]
    if key is not None and len(key) > DEAD_KEY_BYTES:
        headers.append(("key_bytes", str(len(key)).encode()))
        key = key[:DEAD_KEY_BYTES]
    if value is not msg.value or key is not msg.key:
        headers.append(("truncated", b"true"))
    return key, value, headers


def dead_letter_headers(msg: InputMessage, error: Exception) -> list[tuple[str, bytes]]:
    """The dead-letter topic's headers: why, and where the message came from.

    A reject says its reason; a poison message (its handling raised anything else)
    has reason ``poison``, the stage and the error's type.

    >>> from types import SimpleNamespace as M
    >>> dict(dead_letter_headers(M(topic="t", partition=2, offset=41), RejectError("invalid_json", "Bad.")))
    {'reason': b'invalid_json', 'message': b'Bad.', 'source_topic': b't', 'source_partition': b'2', 'source_offset': b'41'}
    >>> dict(dead_letter_headers(M(topic="t", partition=2, offset=41), KeyError("x")))["error_type"]
    b'KeyError'
    """
    source = [
        ("source_topic", msg.topic.encode()),
        ("source_partition", str(msg.partition).encode()),
        ("source_offset", str(msg.offset).encode()),
    ]
    if isinstance(error, RejectError):
        return [("reason", error.key.encode()), ("message", error.message[:_HEADER_TEXT].encode()), *source]
    return poison_headers("ingest", error) + source


def poison_headers(stage: str, error: Exception | tuple[str, str]) -> list[tuple[str, bytes]]:
    """Headers of a poison record's dead letter: ``reason`` poison, the ``stage``, and the
    error (an exception, or its type name and message)."""
    kind, text = (type(error).__name__, str(error)) if isinstance(error, BaseException) else error
    return [("reason", b"poison"), ("stage", stage.encode()), ("error_type", kind.encode()),
            ("message", text[:_HEADER_TEXT].encode(errors="replace"))]


class Consumer(Protocol):
    """The part of ``aiokafka.AIOKafkaConsumer`` ingest uses."""

    def subscribe(self, topics: Sequence[str], listener: ConsumerRebalanceListener) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list]: ...
    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None: ...
    def assignment(self) -> set[TopicPartition]: ...
    async def position(self, tp: TopicPartition) -> int: ...
    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...
    def highwater(self, tp: TopicPartition) -> int | None: ...


def new_consumer(settings: Settings) -> Consumer:
    """The ingest group's consumer: manual commits, from the earliest offset, the worker's session timeout."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"{settings.app_id}-ingest",
        client_id=f"{settings.app_id}-ingest",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(settings.session_timeout * 1000),
        heartbeat_interval_ms=min(1000, int(settings.session_timeout * 1000) // 3),
    )


class Ingest:
    """The ingest loop over one consumer; sends go through ``send_goods`` / ``send_dead``.

    ``send_goods(partition=..., value=...)`` and ``send_dead(key=..., value=..., headers=...)``
    are awaited to enqueue a message and return what resolves on the broker's
    acknowledgement (Faust's ``Topic.send`` does exactly this)."""

    def __init__(self, settings: Settings, config: WatchConfig, metrics: WorkerMetrics, consumer: Consumer,
                 send_goods: Send, send_dead: Send, clock: Callable[[], float] = time.time) -> None:
        self.settings, self.config, self.metrics = settings, config, metrics
        self.clock = clock  # today, for the domain of time
        self.consumer = consumer
        self.send_goods, self.send_dead = send_goods, send_dead
        self.lock = asyncio.Lock()  # held from a batch's fetch to its commit; a revocation waits for it
        self.joined = False  # in the group with an assignment (possibly empty), not rebalancing
        self.started = False
        self._stopping = False
        self._kinds = {settings.declarations_topic: "declarations", settings.monthly_topic: "monthly"}
        self._last_read: dict[TopicPartition, float] = {}  # input partition -> when a message was last read
        self._reported = 0.0  # when the goods partitions last heard this reader's idle report

    async def start(self) -> None:
        self.consumer.subscribe([self.settings.declarations_topic, self.settings.monthly_topic],
                                listener=_Listener(self))
        await self.consumer.start()
        self.started = True

    async def stop(self) -> None:
        """Finish the batch in flight (acknowledged and committed), then leave the group."""
        self._stopping = True
        async with self.lock:
            if self.started:
                self.started = self.joined = False
                await self.consumer.stop()

    async def run(self, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        """Batches until :meth:`stop`.

        A batch that fails as a whole (a send the broker refused or did not answer) is sent again
        after a growing wait, on the partitions still ours: its offsets were not committed, and
        the detector knows the records it already has by their input offsets. The worker goes on."""
        while not self._stopping:
            try:
                messages = await self.take()
            except ConsumerStoppedError:
                return
            waits = retry_waits()
            while True:
                wait = next(waits)
                async with self.lock:
                    if self._stopping:
                        return  # not committed: read again by whoever has the partitions next
                    try:
                        messages = self._still_ours(messages) if messages else messages
                        if messages:
                            await self.handle(messages)
                        if time.monotonic() - self._reported >= IDLE_REPORT_EVERY:
                            await self.report_idle()
                        break
                    except ConsumerStoppedError:
                        return
                    except Exception as exc:  # noqa: BLE001 - the broker, not a message (those are routed)
                        log.warning("ingest: the batch failed as a whole (%s: %s); sent again in %.1f s",
                                    type(exc).__name__, exc, wait)
                        self.metrics.retries.labels(stage="ingest").inc()
                await sleep(wait)

    async def take(self) -> list[InputMessage]:
        """Up to ``batch_size`` messages, waiting at most ``ingest_batch_seconds`` after the first.

        Shorter than the detector's wait (``batch_seconds``): a batch costs a bundle per goods
        partition and a commit, little at 10 batches a second, while every wait here delays the
        watermark's progress too (alert latency p50 0.67 -> 0.30 s at 2,000/s, from 0.25 s to 0.1 s;
        ``docs/performance.md``). A backfill fills ``batch_size`` from the fetched buffer at once."""
        size, within = self.settings.batch_size, self.settings.ingest_batch_seconds
        loop = asyncio.get_running_loop()
        out: list[InputMessage] = []
        deadline = None
        while len(out) < size and not self._stopping:
            wait = within if deadline is None else deadline - loop.time()
            if wait <= 0:
                break
            got = await self.consumer.getmany(timeout_ms=max(int(wait * 1000), 1), max_records=size - len(out))
            for messages in got.values():
                out.extend(messages)
            if not out:
                return out  # nothing within the wait: let run() look at _stopping
            if deadline is None:
                deadline = loop.time() + within
        return out

    async def handle(self, messages: Sequence[InputMessage]) -> Routed:
        """One batch: route, send, wait for every acknowledgement, count, then commit."""
        today = dt.datetime.fromtimestamp(self.clock(), dt.UTC).date()
        now = time.monotonic()
        for msg in messages:
            self._last_read[TopicPartition(msg.topic, msg.partition)] = now
        idle = await self.idle_report()
        routed = route_batch(messages, self.settings, self.config, today=today, idle=idle)
        pending = []
        for msg, exc in routed.dead:
            key, value, headers = dead_letter(msg, exc)
            pending.append(await self.send_dead(key=key, value=value, headers=headers))
        for partition, bundle in routed.bundles:
            pending.append(await self.send_goods(partition=partition, value=bundle))
        for ack in pending:
            await ack  # raises if the broker refused: the worker stops and the batch is read again
        if routed.bundles and idle:
            self._reported = time.monotonic()
        self._count(routed)
        try:
            await self.consumer.commit(routed.commit)
        except (CommitFailedError, IllegalStateError) as exc:
            # the partitions moved meanwhile: their new owner reads them again from the last
            # commit, and the detector drops what it already has (input partition, offset)
            log.warning("ingest: input offsets not committed (%s); the next owner reads them again", exc)
        return routed

    async def idle_report(self) -> dict[str, float]:
        """The input partitions this reader holds and has read to their end: for each, the seconds
        since it last read a message there (since it was assigned, when it read none).

        Only a live reader can say that an input partition is idle: silence alone does not (the
        partition's reader may have died or be rebalancing, with records still unread), so the
        watermark leaves out only partitions reported idle, and only while the report is fresh."""
        out: dict[str, float] = {}
        now = time.monotonic()
        try:
            assigned = list(self.consumer.assignment())
        except (IllegalStateError, ConsumerStoppedError):
            return out
        at_end: dict[TopicPartition, tuple[int, float]] = {}
        for tp in assigned:
            try:
                position = await self.consumer.position(tp)
                high = self.consumer.highwater(tp)
            except (IllegalStateError, ConsumerStoppedError):  # moving away, or stopping
                continue
            if high is None or position is None or position < high:
                continue  # not known to be at its end: records may wait there
            since = self._last_read.setdefault(tp, now)
            at_end[tp] = (position, round(now - since, 3))
        # The high watermark is the one of the last fetch: a reader whose loop stalled (a long
        # detector batch, a starved machine) has not fetched for seconds and still "is at the
        # end" of a partition the producer went on writing to. A report that could make a goods
        # partition leave it out of the watermark (silent for longer than idle_seconds less the
        # time a report is trusted) is checked against the broker's end offset first; a partition
        # that cannot be checked is not reported idle.
        doubt = [tp for tp, (_, seconds) in at_end.items()
                 if seconds >= max(self.settings.idle_seconds - IDLE_REPORT_TRUSTED, 0.0)]
        ends: dict[TopicPartition, int] = {}
        if doubt:
            try:
                ends = await self.consumer.end_offsets(doubt)
            except Exception as exc:  # noqa: BLE001 - the broker did not answer: nothing is claimed idle
                log.debug("ingest: end offsets not known (%s: %s); no partition reported idle", type(exc).__name__, exc)
        for tp, (position, seconds) in at_end.items():
            if tp in doubt and (tp not in ends or position < ends[tp]):
                continue
            out[f"{tp.topic}:{tp.partition}"] = seconds
        return out

    async def report_idle(self) -> None:
        """Tell every goods partition which input partitions this reader holds at their end
        (a bundle without records), after everything it forwarded before (the lock is held)."""
        self._reported = time.monotonic()
        idle = await self.idle_report()
        if not idle:
            return
        bundle = orjson.dumps({"records": [], "ts": [], "src": [], "marks": {}, "idle": idle})
        pending = [await self.send_goods(partition=p, value=bundle) for p in range(self.settings.partitions)]
        for ack in pending:
            await ack

    def _count(self, routed: Routed) -> None:
        m = self.metrics
        for kind, count in routed.consumed.items():
            m.consumed.labels(kind=kind).inc(count)
        for reason, count in routed.rejected.items():
            m.rejected.labels(reason=reason).inc(count)
        for reason, count in routed.not_watched.items():
            m.not_watched.labels(reason=reason).inc(count)
        if routed.poisoned:
            m.poison.labels(stage="ingest").inc(routed.poisoned)

    def _still_ours(self, messages: list[InputMessage]) -> list[InputMessage]:
        """Messages of partitions still assigned: a batch taken as a rebalance began may hold
        others; their new owner reads them from the committed offset."""
        assigned = self.consumer.assignment()
        return [m for m in messages if TopicPartition(m.topic, m.partition) in assigned]

    async def lag(self) -> dict[str, int]:
        """Messages on the assigned input partitions not yet taken, by kind."""
        lag = dict.fromkeys(self._kinds.values(), 0)
        if not self.started:
            return lag
        for tp in list(self.consumer.assignment()):
            try:
                position = await self.consumer.position(tp)
                high = self.consumer.highwater(tp)
            except (IllegalStateError, ConsumerStoppedError):  # moving away, or stopping
                continue
            if position is not None and high is not None:
                lag[self._kinds[tp.topic]] += max(high - position, 0)
        return lag


class _Listener(ConsumerRebalanceListener):
    def __init__(self, ingest: Ingest) -> None:
        self.ingest = ingest

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.ingest.joined = False
        async with self.ingest.lock:  # the batch in flight is acknowledged and committed first
            for tp in revoked:  # if it comes back, it is idle only once it has been read to its end again
                self.ingest._last_read.pop(tp, None)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.ingest.joined = True


class IngestService(Service):
    """Runs an :class:`Ingest` with the Faust app: started after the app (table recovery
    done), stopped before it (so the producer still takes the last acknowledgements)."""

    def __init__(self, ingest: Ingest, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ingest = ingest

    async def on_start(self) -> None:
        await self.ingest.start()

    async def on_started(self) -> None:
        self.add_future(self.ingest.run())

    async def on_stop(self) -> None:
        await self.ingest.stop()
