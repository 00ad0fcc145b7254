"""Ingest: the input topics read with a plain aiokafka consumer, inside the worker.

Faust's path for one input message costs about 85 µs of CPU here, a plain
``AIOKafkaConsumer`` about 3 µs (``docs/performance.md``), so the worker reads
``customs.declarations`` and ``trade.monthly`` itself, in its own consumer group
(``{app_id}-ingest``), on the event loop Faust runs on. Faust keeps the goods
topic, the detector agent, the state table and its changelog.

Each batch (up to ``batch_size`` messages or ``ingest_batch_seconds`` after the first):

1. every message is validated by the input contract (``parse_json_line``, as
   replay does); what fails goes to the dead-letter topic with its reason and
   where it came from (headers), a record outside the watch configuration is
   counted and goes no further;
2. the rest goes to the goods topic, one bundle per goods partition, and every
   goods partition hears how far each input partition has got (``marks``, the
   watermark's input; see ``docs/architecture.md``);
3. once the broker has acknowledged every goods bundle and dead letter of the
   batch, and only then, the batch's input offsets are committed.

So input is processed at least once; the detector drops what it is given again
by (input partition, offset), per goods group. A rebalance of the ingest group
waits for the batch in flight to be acknowledged and committed before it gives
partitions away.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, IllegalStateError
from mode import Service

from detectors.contract import parse_json_line
from detectors.engine import route_reason
from detectors.errors import RejectError
from detectors.watch import WatchConfig
from streams.metrics import WorkerMetrics
from streams.settings import Settings
from streams.state import event_day, goods_partition

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

    bundles: list[bytes] = field(default_factory=list)  # index: goods partition; empty: nothing to send
    dead: list[tuple[InputMessage, RejectError]] = field(default_factory=list)
    consumed: Counter[str] = field(default_factory=Counter)  # kind -> messages
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> messages
    not_watched: Counter[str] = field(default_factory=Counter)  # reason -> records
    commit: dict[TopicPartition, int] = field(default_factory=dict)  # input partition -> next offset
    forwarded: int = 0


def route_batch(messages: Iterable[InputMessage], settings: Settings, config: WatchConfig) -> Routed:
    """Validate, route and bundle one batch of input messages, in order.

    Every goods partition gets a bundle ``{"records", "ts", "src", "marks"}``: its
    records (``to_dict()``), their Kafka timestamps (seconds), their sources
    (``["topic:partition", offset]``) and, the same in every bundle, the newest event
    day read on each input partition of the batch (valid records only). A batch with
    no valid record sends nothing.

    Examples
    --------
    >>> from types import SimpleNamespace as M
    >>> s, cfg = Settings(partitions=2), WatchConfig.default()
    >>> good = b'{"declaration_id": "a", "date": "2024-01-09", "reporter": "DE", "partner": "KG",' \\
    ...        b' "hs_code": "854231", "value": 10}'
    >>> r = route_batch([M(topic=s.declarations_topic, partition=3, offset=7, key=None, value=good,
    ...                    timestamp=1_700_000_000_000),
    ...                  M(topic=s.declarations_topic, partition=3, offset=8, key=None, value=b"{", timestamp=0)],
    ...                 s, cfg)
    >>> [orjson.loads(b)["marks"] for b in r.bundles]
    [{'customs.declarations:3': 738894}, {'customs.declarations:3': 738894}]
    >>> r.forwarded, dict(r.rejected), {tp.partition: o for tp, o in r.commit.items()}
    (1, {'invalid_json': 1}, {3: 9})
    """
    n = settings.partitions
    monthly_topic = settings.monthly_topic
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
            if msg.value is None:
                raise RejectError("invalid_json", "The message has no value (a tombstone); each must be one JSON object.")
            rec = parse_json_line(msg.value)
            source = f"{msg.topic}:{msg.partition}"
            day = event_day(rec)
            if day > marks.get(source, -1):
                marks[source] = day
            reason = route_reason(config, rec.reporter, rec.partner, rec.flow, rec.hs_code[:6], rec.currency)
        except RejectError as exc:
            out.dead.append((msg, exc))
            out.rejected[exc.key] += 1
            continue
        if reason is not None:
            out.not_watched[reason] += 1
            continue
        records, stamps, sources = parts.setdefault(goods_partition(rec.hs_code[:6], n), ([], [], []))
        records.append(rec.to_dict())
        stamps.append(msg.timestamp / 1000.0 if msg.timestamp and msg.timestamp > 0 else 0.0)
        sources.append([source, msg.offset])
        out.forwarded += 1
    if marks:  # every goods partition hears how far the inputs have got
        empty: tuple[list, list, list] = ([], [], [])
        for partition in range(n):
            records, stamps, sources = parts.get(partition, empty)
            out.bundles.append(orjson.dumps({"records": records, "ts": stamps, "src": sources, "marks": marks}))
    return out


def dead_letter_headers(msg: InputMessage, error: RejectError) -> list[tuple[str, bytes]]:
    """The dead-letter topic's headers: why, and where the message came from.

    >>> from types import SimpleNamespace as M
    >>> dict(dead_letter_headers(M(topic="t", partition=2, offset=41), RejectError("invalid_json", "Bad.")))
    {'reason': b'invalid_json', 'message': b'Bad.', 'source_topic': b't', 'source_partition': b'2', 'source_offset': b'41'}
    """
    return [
        ("reason", error.key.encode()),
        ("message", error.message.encode()),
        ("source_topic", msg.topic.encode()),
        ("source_partition", str(msg.partition).encode()),
        ("source_offset", str(msg.offset).encode()),
    ]


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
                 send_goods: Send, send_dead: Send) -> None:
        self.settings, self.config, self.metrics = settings, config, metrics
        self.consumer = consumer
        self.send_goods, self.send_dead = send_goods, send_dead
        self.lock = asyncio.Lock()  # held from a batch's fetch to its commit; a revocation waits for it
        self.joined = False  # in the group with an assignment (possibly empty), not rebalancing
        self.started = False
        self._stopping = False
        self._kinds = {settings.declarations_topic: "declarations", settings.monthly_topic: "monthly"}

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

    async def run(self) -> None:
        """Batches until :meth:`stop`."""
        while not self._stopping:
            try:
                messages = await self.take()
            except ConsumerStoppedError:
                return
            if not messages:
                continue
            async with self.lock:
                if self._stopping:
                    return  # not committed: read again by whoever has the partitions next
                messages = self._still_ours(messages)
                if messages:
                    await self.handle(messages)

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
        routed = route_batch(messages, self.settings, self.config)
        pending = [await self.send_dead(key=msg.key, value=msg.value, headers=dead_letter_headers(msg, exc))
                   for msg, exc in routed.dead]
        for partition, bundle in enumerate(routed.bundles):
            pending.append(await self.send_goods(partition=partition, value=bundle))
        for ack in pending:
            await ack  # raises if the broker refused: the worker stops and the batch is read again
        self._count(routed)
        try:
            await self.consumer.commit(routed.commit)
        except (CommitFailedError, IllegalStateError) as exc:
            # the partitions moved meanwhile: their new owner reads them again from the last
            # commit, and the detector drops what it already has (input partition, offset)
            log.warning("ingest: input offsets not committed (%s); the next owner reads them again", exc)
        return routed

    def _count(self, routed: Routed) -> None:
        m = self.metrics
        for kind, count in routed.consumed.items():
            m.consumed.labels(kind=kind).inc(count)
        for reason, count in routed.rejected.items():
            m.rejected.labels(reason=reason).inc(count)
        for reason, count in routed.not_watched.items():
            m.not_watched.labels(reason=reason).inc(count)

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
            pass

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
