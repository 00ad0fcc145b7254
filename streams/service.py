"""The always-on service: a Faust app over the input topics.

Two stages, one process (see ``docs/architecture.md``):

ingest (:mod:`transitwatch.streams.ingest`)
    reads the declarations and monthly-statistics topics in batches with a plain
    aiokafka consumer of its own group (outside Faust's per-message path), validates
    each message with the input contract (the same as replay), sends what fails
    to the dead-letter topic with its reason, source topic, partition and offset
    in headers, counts what is outside the watch configuration, and forwards the
    rest to the internal goods topic, one message per goods partition per batch,
    so that every series of an HS6 code is handled by one worker. Input offsets
    are committed once the broker has acknowledged the batch's messages.
``detect`` (a Faust agent)
    reads the goods topic in batches and feeds each goods group's
    :class:`~transitwatch.streams.state.GroupState` (its engine, reorder buffer and
    de-duplication), publishes case updates keyed by ``case_id`` (early alerts when the
    evidence is there, the month-end verdict when the month closes) and writes
    the state to a changelog-backed table. A record (or bundle, or alert) whose
    handling raises goes to the dead-letter topic with the error in its headers
    and is counted (``transitwatch_poison_records_total{stage}``); the worker goes on.

Pages: ``/metrics`` (Prometheus), ``/healthz``, ``/ready`` and ``/alerts``
(recent alerts as JSON).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from transitwatch.detectors.alerts import Alert
from transitwatch.detectors.contract import rebuild
from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.ingest import (
    DEAD_VALUE_BYTES,
    IDLE_REPORT_TRUSTED,
    Ingest,
    IngestService,
    new_consumer,
    poison_headers,
    retry_waits,
)
from transitwatch.streams.ledger import AlertLedger
from transitwatch.streams.metrics import WorkerMetrics
from transitwatch.streams.settings import Settings
from transitwatch.streams.state import (
    PRODUCER_MAX_REQUEST_BYTES,
    GroupState,
    Poisoned,
    bounded,
    day_seconds,
    goods_partition,
    group_of,
    month_start_day,
)

STATE_TABLE = "goods-state"
log = logging.getLogger(__name__)

#: a dead letter of the detect stage: key, value, headers, and the stage it is counted under
DeadLetter = tuple[bytes | None, bytes, list[tuple[str, bytes]], str]


class GoodsTable(faust.Table):
    """A table whose keys live in the partition they name, whichever event (or
    timer) writes them: a goods group's keys start with its HS6, a partition's
    own keys with ``#{partition}``."""

    def partition_for_key(self, key: Any) -> int:
        if key.startswith("#"):
            return int(key[1:key.index("|")])
        return goods_partition(group_of(key), self.partitions or self.app.conf.topic_partitions)

    _sent: list | None = None  # changelog writes not yet known to be acknowledged

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        fut = super().send_changelog(*args, **kwargs)
        if self._sent is None:
            self._sent = []
        self._sent.append(fut)
        return fut

    async def written(self) -> None:
        """Wait until the broker has acknowledged every changelog write made so far.

        Faust commits the goods offsets after ``producer.flush()``, but the flush of
        faust-streaming 0.15.3's producer buffer gives up after 0.1 s without a send
        (``ProducerBuffer.flush_atmost``), leaving writes queued behind the commit. A batch
        returns (and its events are acknowledged, so committable) only once this returns."""
        sent, self._sent = self._sent or [], []
        for fut in sent:
            await fut


@dataclass
class Marks:
    """How far each input partition has got, as one goods partition has heard it.

    Every ingest batch tells every goods partition the newest event day it read
    on each input partition, and which input partitions its reader holds at their
    end and for how long it has read nothing new there (``idle``; a reader with
    nothing to read says so every second). The goods partition's watermark is the
    oldest of the days, leaving out the input partitions whose reader said, less
    than ``IDLE_REPORT_TRUSTED`` seconds ago, that they had been idle for
    ``idle_seconds`` (when all are, everything has been delivered, and it is the
    newest).

    Silence is not idleness: an input partition whose reader died, or is
    rebalancing, still holds records nobody has read; it holds the watermark back
    at its last day until a reader takes it on again."""

    days: dict[str, int] = field(default_factory=dict)
    idle_since: dict[str, float] = field(default_factory=dict)  # input partition -> idle since (reader's word)
    reported: dict[str, float] = field(default_factory=dict)  # input partition -> when that was heard
    changed: bool = False

    def hear(self, marks: dict[str, int], now: float, idle: dict[str, float] | None = None) -> None:
        for tp, day in marks.items():
            self.reported.pop(tp, None)  # records read there: not idle, until its reader says so again
            if day > self.days.get(tp, -1):
                self.days[tp] = day
                self.changed = True
        for tp, seconds in (idle or {}).items():
            self.idle_since[tp] = now - seconds
            self.reported[tp] = now

    def idle(self, tp: str, now: float, idle_seconds: float) -> bool:
        heard = self.reported.get(tp)
        return heard is not None and now - heard < IDLE_REPORT_TRUSTED and now - self.idle_since[tp] >= idle_seconds

    def watermark(self, now: float, idle_seconds: float) -> int | None:
        if not self.days:
            return None
        active = [day for tp, day in self.days.items() if not self.idle(tp, now, idle_seconds)]
        return min(active) if active else max(self.days.values())


@dataclass
class Worker:
    """What the agents share: settings, the groups held here, the ledger, metrics."""

    settings: Settings
    config: WatchConfig
    metrics: WorkerMetrics
    clock: Callable[[], float] = time.time
    groups: dict[str, GroupState] = field(default_factory=dict)
    recent: deque = field(default_factory=deque)
    ledger: AlertLedger | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    marks: dict[int, Marks] = field(default_factory=dict)  # goods partition -> input progress
    restoring: float = 0.0  # seconds spent restoring groups since the gauge was last set
    ledger_partitions: set[int] = field(default_factory=set)
    max_event_day: int = 0
    ingest: Ingest | None = None
    dead_letter: Any = None  # the dead-letter topic (``send(key=, value=, headers=)``)
    broken: set[str] = field(default_factory=set)  # groups whose state could not be opened


def create_app(settings: Settings, config: WatchConfig, metrics: WorkerMetrics | None = None,
               clock: Callable[[], float] = time.time) -> faust.App:
    """The Faust app of ``transitwatch worker``; ``clock`` (Unix time) dates the present
    for the domain of time of the inputs and for the gauges."""
    metrics = metrics or WorkerMetrics()
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        store=settings.store,
        datadir=str(settings.state_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=0,
        autodiscover=False,
        producer_acks=-1,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=1.0,
        broker_commit_every=2000,
        broker_commit_interval=1.0,
        producer_max_request_size=PRODUCER_MAX_REQUEST_BYTES,  # what the worker writes is bounded well under it
    )
    w = Worker(settings, config, metrics, clock=clock, recent=deque(maxlen=settings.recent_alerts))
    app.transitwatch = w  # type: ignore[attr-defined]
    n = settings.partitions
    goods = app.topic(settings.goods_topic, value_type=bytes, value_serializer="raw", key_serializer="raw",
                      partitions=n, internal=True)
    dead_letter = w.dead_letter = app.topic(settings.dead_letter_topic, value_serializer="raw",
                                            key_serializer="raw")
    alerts = app.topic(settings.alerts_topic, value_serializer="raw", key_serializer="raw")
    # str keys travel as JSON, bytes values as they are (the table picks serializers from the types)
    table = app.tables.add(GoodsTable(app, name=STATE_TABLE, partitions=n, key_type=str, value_type=bytes))

    @app.task
    async def start_ingest() -> None:
        """The input topics are read outside Faust (``transitwatch.streams.ingest``); started once the app is
        (tables recovered), stopped before it (it is a child of the app)."""
        w.ingest = Ingest(settings, config, metrics, new_consumer(settings), goods.send, dead_letter.send,
                          clock=w.clock)
        await app.add_runtime_dependency(IngestService(w.ingest, loop=app.loop, beacon=app.beacon))

    @app.agent(goods, name="detect")
    async def detect(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_seconds):
            await _detect(w, app, events, table, alerts)

    @app.timer(interval=1.0)
    async def watermark() -> None:
        """Inputs fall silent: move the groups on to where the watermark now is."""
        async with w.lock:
            partitions = set(w.marks)
            try:
                states = _advance(w, partitions)
                await _publish_and_persist(w, states, alerts)
                _save_marks(w, table)
                await table.written()
            except Exception as exc:  # noqa: BLE001 - the broker, not a record: adopt() opens them again
                _failed(w, "watermark", partitions, exc, 1.0)

    @app.timer(interval=1.0)
    async def adopt() -> None:
        """Open the groups of newly assigned partitions that have state but no new records:
        what was waiting in their buffers still has to be applied, and their alerts published."""
        if app.rebalancing or not app.tables.recovery.completed.is_set() or w.ledger is None:
            return
        try:
            assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic == settings.goods_topic}
        except Exception:  # noqa: BLE001 - not started or rebalancing: next time
            return
        heads = [key[:-5] for key in list(table.keys()) if key.endswith("|head")]
        new = [g for g in heads if g not in w.groups and g not in w.broken and goods_partition(g, n) in assigned]
        if not new:
            return
        async with w.lock:
            started = time.perf_counter()
            partitions = {goods_partition(g, n) for g in new}
            try:
                await _learn_published(w, partitions)
                _load_marks(w, table, partitions)
                states = []
                for g in new:
                    if g not in w.groups:
                        try:
                            states.append(_group(w, g, table))
                        except Exception as exc:  # noqa: BLE001 - its records will go to the dead-letter topic
                            _broken(w, g, exc)
                await _publish_and_persist(w, states, alerts)
                await table.written()
            except Exception as exc:  # noqa: BLE001 - the broker, not a record: the next tick tries again
                _failed(w, "adopt", partitions, exc, 1.0)
                return
            metrics.restore_seconds.set(time.perf_counter() - started)
            w.restoring = 0.0

    @app.timer(interval=2.0)
    async def gauges() -> None:
        try:
            await _update_gauges(app, w)
        except Exception as exc:  # noqa: BLE001 - a gauge left as it was until the broker answers again
            log.debug("gauges not updated: %s: %s", type(exc).__name__, exc)

    @app.on_partitions_revoked.connect
    async def on_revoked(app: faust.App, revoked: set, **kwargs: Any) -> None:
        gone = {tp.partition for tp in revoked if tp.topic == settings.goods_topic}
        async with w.lock:
            _forget(w, gone)
        metrics.ready.set(0)

    @app.on_partitions_assigned.connect
    async def on_assigned(app: faust.App, assigned: set, **kwargs: Any) -> None:
        metrics.partitions.set(sum(1 for tp in assigned if tp.topic == settings.goods_topic))

    @app.task
    async def start_ledger() -> None:
        w.ledger = AlertLedger(settings.bootstrap_servers, settings.alerts_topic)
        await w.ledger.start()

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        is_ready = _is_ready(app, w)
        metrics.ready.set(1 if is_ready else 0)
        return web.json({"ready": is_ready}, status=200 if is_ready else 503)

    @app.page("/alerts")
    async def recent_alerts(web: Any, request: Any) -> Any:
        return web.bytes(orjson.dumps(list(reversed(w.recent))), content_type="application/json")

    return app


def _is_ready(app: faust.App, w: Worker) -> bool:
    return (
        w.ledger is not None
        and w.ingest is not None
        and w.ingest.joined
        and bool(getattr(app.consumer, "assignment", None))
        and not app.rebalancing
        and app.tables.recovery.completed.is_set()
    )


# -- detect --------------------------------------------------------------------------------------


def _still_ours(app: faust.App, events: list) -> list:
    """Events of partitions still assigned here: a batch taken before a rebalance may hold events
    of partitions that have moved; their new owner reads them again from the committed offset."""
    try:
        assigned = app.consumer.assignment()
    except Exception:  # noqa: BLE001 - the consumer is rebalancing: the next batch will say
        return []
    return [e for e in events if e.message.tp in assigned]


async def _detect(w: Worker, app: faust.App, events: list, table: GoodsTable, alerts: faust.TopicT,
                  sleep: Callable[[float], Any] = asyncio.sleep) -> None:
    """One batch of goods events, until it passes.

    A record that raises is that record's failure (the dead-letter topic). Anything else that
    escapes the batch (the broker did not answer, a send or a changelog write was refused) is the
    batch's: what it changed in memory is forgotten (:func:`_forget`), and it is tried again after
    a growing wait, on the partitions still ours. Its events are not acknowledged before it
    passes, so nothing is lost, and the records it had already fed are known again by their
    input offsets when they come back."""
    waits = retry_waits()
    while True:
        wait = next(waits)
        async with w.lock:  # the revocation handler waits for it: a batch runs on partitions still ours
            events = _still_ours(app, events)
            if not events:
                return
            try:
                await _detect_batch(w, events, table, alerts)
                return
            except Exception as exc:  # noqa: BLE001 - not one record's (those are taken out inside)
                _failed(w, "detect", {e.message.partition for e in events}, exc, wait)
        await sleep(wait)


def _forget(w: Worker, partitions: set[int]) -> None:
    """Drop what this worker holds in memory of the goods ``partitions``: their groups are opened
    again from the table, their marks read from it, and the alerts topic read to its end, when
    they are next needed (a revocation, or a batch that failed half-way)."""
    n = w.settings.partitions
    for group in [g for g in w.groups if goods_partition(g, n) in partitions]:
        del w.groups[group]
    for partition in partitions:
        w.marks.pop(partition, None)
    w.ledger_partitions -= partitions


def _failed(w: Worker, stage: str, partitions: set[int], exc: Exception, wait: float) -> None:
    log.warning("%s: the batch failed as a whole (%s: %s); what it changed in memory is forgotten and it is "
                "tried again in %.1f s", stage, type(exc).__name__, exc, wait, exc_info=exc)
    w.metrics.retries.labels(stage=stage).inc()
    _forget(w, partitions)


async def _detect_batch(w: Worker, events: list, table: GoodsTable, alerts: faust.TopicT) -> None:
    started = time.perf_counter()
    by_group: dict[str, tuple[list, list]] = {}
    stamps: list[float] = []
    partitions: set[int] = set()
    heard: list[tuple[int, dict, dict]] = []
    dead: list[DeadLetter] = []
    for event in events:
        partition = event.message.partition
        partitions.add(partition)
        try:
            bundle = orjson.loads(event.value)
            marks = {str(tp): int(day) for tp, day in bundle["marks"].items()}
            idle = {str(tp): float(seconds) for tp, seconds in bundle.get("idle", {}).items()}
            items = list(zip(bundle["records"], bundle["src"], strict=True))
            ts = [float(t) for t in bundle["ts"]]
        except Exception as exc:  # noqa: BLE001 - not a bundle ingest wrote: the dead-letter topic
            dead.append(_bundle_dead_letter(event, exc))
            continue
        heard.append((partition, marks, idle))
        stamps.extend(ts)
        for item, src in items:
            try:
                rec = rebuild(item)  # validated by ingest, which wrote it with to_dict()
                tp, offset = src
                source = (str(tp), int(offset))
                group = rec.hs_code[:6]
            except Exception as exc:  # noqa: BLE001
                dead.append(_item_dead_letter(event, item, exc))
                continue
            records, sources = by_group.setdefault(group, ([], []))
            records.append(rec)
            sources.append(source)
    await _learn_published(w, partitions)
    _load_marks(w, table, partitions)
    touched = []
    for group, (records, sources) in by_group.items():
        try:
            state = _group(w, group, table)
            before = state.engine.counts
            redelivered = state.feed(records, sources)
        except Exception as exc:  # noqa: BLE001 - not one record's fault (feed takes those out): all of them
            _broken(w, group, exc)
            dead += [_record_dead_letter(group, Poisoned(r, s, type(exc).__name__, str(exc)))
                     for r, s in zip(records, sources)]
            continue
        w.broken.discard(group)
        if redelivered:
            w.metrics.redelivered.inc(redelivered)
        _count_engine(w.metrics, before, state.engine.counts)
        touched.append(state)
        if state.max_day > w.max_event_day:
            w.max_event_day = state.max_day
    now = w.clock()
    for partition, marks, idle in heard:
        w.marks[partition].hear(marks, now, idle)
    advanced = _advance(w, partitions)
    touched += [s for s in advanced if s not in touched]
    await _publish_and_persist(w, touched, alerts, dead)
    _save_marks(w, table)
    await table.written()  # the batch's events are acknowledged, so committable, only once their state is
    done = time.time()
    for ts in stamps:
        if ts:
            w.metrics.latency.observe(max(done - ts, 0.0))
    w.metrics.batch_seconds.observe(time.perf_counter() - started)
    if w.restoring:
        w.metrics.restore_seconds.set(w.restoring)
        w.restoring = 0.0


def _broken(w: Worker, group: str, exc: Exception) -> None:
    """A group whose state raised as a whole: forgotten here (opened again next time)."""
    log.error("detect: goods group %s raised %s: %s; its records of this batch go to the dead-letter topic",
              group, type(exc).__name__, exc, exc_info=exc)
    w.groups.pop(group, None)
    w.broken.add(group)


def _bundle_dead_letter(event: Any, exc: Exception) -> DeadLetter:
    value = event.value if isinstance(event.value, bytes) else repr(event.value).encode()
    return (None, value[:DEAD_VALUE_BYTES], poison_headers("bundle", exc) + _goods_source(event), "bundle")


def _item_dead_letter(event: Any, item: Any, exc: Exception) -> DeadLetter:
    try:
        value = orjson.dumps(item)
    except Exception:  # noqa: BLE001
        value = repr(item).encode()
    return (None, value[:DEAD_VALUE_BYTES], poison_headers("bundle", exc) + _goods_source(event), "bundle")


def _goods_source(event: Any) -> list[tuple[str, bytes]]:
    message = event.message
    return [("source_topic", str(message.topic).encode()), ("source_partition", str(message.partition).encode()),
            ("source_offset", str(message.offset).encode())]


def _record_dead_letter(group: str, poisoned: Poisoned, stage: str = "detect") -> DeadLetter:
    """A record taken out of a group: its normalised form, the error, and where it was read."""
    headers = poison_headers(stage, (poisoned.error_type, poisoned.message))
    if poisoned.source is not None:
        tp, offset = poisoned.source
        topic, _, partition = tp.rpartition(":")
        headers += [("source_topic", topic.encode()), ("source_partition", partition.encode()),
                    ("source_offset", str(offset).encode())]
    headers.append(("goods_group", group.encode()))
    try:
        value = orjson.dumps(poisoned.record.to_dict())
    except Exception:  # noqa: BLE001
        value = repr(poisoned.record).encode()
    return (group.encode(), value[:DEAD_VALUE_BYTES], headers, stage)


async def _learn_published(w: Worker, partitions: set[int]) -> None:
    """Before this worker publishes for partitions new to it, read what is already on the alerts topic."""
    if partitions <= w.ledger_partitions:
        return
    while w.ledger is None:
        await asyncio.sleep(0.05)
    await w.ledger.catch_up()
    w.ledger_partitions |= partitions


def _group(w: Worker, group: str, table: faust.Table) -> GroupState:
    """The group's state, restored from the table the first time this worker needs it."""
    state = w.groups.get(group)
    if state is None:
        started = time.perf_counter()
        state = w.groups[group] = GroupState.open(
            group, w.config, table, lateness_days=w.settings.lateness_days, dedup_months=w.settings.dedup_months,
        )
        w.restoring += time.perf_counter() - started
    return state


def _advance(w: Worker, partitions: set[int]) -> list[GroupState]:
    """Move the groups of ``partitions`` on to their partition's watermark; returns those that changed.

    A group that raises stays where it was (see :meth:`GroupState.advance`): counted, logged."""
    n, now = w.settings.partitions, w.clock()
    marks = {p: w.marks[p].watermark(now, w.settings.idle_seconds) for p in partitions if p in w.marks}
    changed = []
    for group, state in w.groups.items():
        day = marks.get(goods_partition(group, n))
        if day is None:
            continue
        try:
            moved = state.advance(day)
        except Exception as exc:  # noqa: BLE001 - closing a month raised: not one record's fault
            log.error("detect: goods group %s could not advance to day %s: %s: %s", group, day,
                      type(exc).__name__, exc, exc_info=exc)
            w.metrics.poison.labels(stage="advance").inc()
            moved = True  # rebuilt: what it holds is written
        if moved or state.poisoned:
            changed.append(state)
    return changed


def _load_marks(w: Worker, table: faust.Table, partitions: set[int]) -> None:
    """The input progress a goods partition had heard, for partitions new to this worker
    (none idle: an input partition is left out of the watermark only once its reader says so)."""
    for partition in partitions - set(w.marks):
        raw = table.get(f"#{partition}|marks")
        days = orjson.loads(raw) if raw is not None else {}
        w.marks[partition] = Marks(days=days)


def _save_marks(w: Worker, table: faust.Table) -> None:
    for partition, marks in w.marks.items():
        if marks.changed:
            table[f"#{partition}|marks"] = bounded(orjson.dumps(marks.days), f"the marks of goods partition {partition}")
            marks.changed = False


def _count_engine(m: WorkerMetrics, before: Any, after: Any) -> None:
    dup = after["duplicate declarations ignored"] - before["duplicate declarations ignored"]
    if dup:
        m.duplicates.inc(dup)
    late = sum(after[k] - before[k] for k in after if k.startswith("late records"))
    if late:
        m.late.inc(late)


async def _publish_and_persist(w: Worker, states: list[GroupState], alerts: faust.TopicT,
                               dead: list[DeadLetter] = ()) -> None:
    """Publish new alert versions and dead letters (and wait for the broker), then write the state."""
    futures: list[Any] = []
    added: list[tuple[str, bool]] = []
    dead = list(dead)
    try:
        await _publish(w, states, alerts, dead, futures, added)
    except Exception:
        if w.ledger is not None:  # not known to be on the topic: the ledger reads it again (see _forget)
            for version in added:
                w.ledger.discard(version)
        raise
    for state in states:
        state.persist()


async def _publish(w: Worker, states: list[GroupState], alerts: faust.TopicT, dead: list[DeadLetter],
                   futures: list, added: list[tuple[str, bool]]) -> None:
    for state in states:
        dead += [_record_dead_letter(state.group, p) for p in state.take_poisoned()]
        for alert in state.drain():
            version = (alert.alert_id, alert.early)
            if w.ledger is not None and version in w.ledger:
                continue
            try:
                data = alert.to_dict()
                value = bounded(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), f"alert {alert.alert_id}")
            except Exception as exc:  # noqa: BLE001 - an alert that cannot be written: the dead-letter topic
                dead.append((alert.alert_id.encode()[:1024], repr(alert).encode()[:DEAD_VALUE_BYTES],
                             poison_headers("publish", exc) + [("goods_group", state.group.encode())], "publish"))
                continue
            futures.append(await alerts.send(key=(alert.case_id or alert.alert_id).encode(), value=value))
            w.ledger.add(version)
            added.append(version)
            w.recent.append(data)
            _count_alert(w.metrics, alert)
    for key, value, headers, stage in dead:
        futures.append(await w.dead_letter.send(key=key, value=value, headers=headers))
        w.metrics.poison.labels(stage=stage).inc()
    for result in await asyncio.gather(*futures, return_exceptions=True):  # every one settled, then the first error
        if isinstance(result, BaseException):
            raise result


def _count_alert(m: WorkerMetrics, alert: Alert) -> None:
    m.alerts.labels(
        severity=alert.severity, partner=alert.partner, chpl_tier=alert.chpl_tier or "none",
        kind="early" if alert.early else "final",
    ).inc()


async def _update_gauges(app: faust.App, w: Worker) -> None:
    m = w.metrics
    m.series.set(sum(len(s.engine.table) for s in w.groups.values() if s.engine.table is not None))
    if w.max_event_day:  # integer day arithmetic: any day a record could carry is a number here
        m.event_time_lag.set(max(w.clock() - day_seconds(w.max_event_day + 1), 0.0))
    open_months = [s.engine.open_month for s in w.groups.values() if s.engine.open_month is not None]
    if open_months:
        m.open_month.set(day_seconds(month_start_day(min(open_months))))
    if w.ingest is not None:
        for kind, value in (await w.ingest.lag()).items():
            m.consumer_lag.labels(kind=kind).set(value)
    consumer = app.consumer
    try:
        assignment = consumer.assignment()
    except Exception:  # noqa: BLE001 - not started or rebalancing: try next time
        return
    goods_lag = 0
    for tp in assignment:
        if tp.topic != w.settings.goods_topic:
            continue
        try:
            position = await consumer.position(tp)
            high = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - partition moving away
            continue
        if position is not None and high is not None:
            goods_lag += max(high - position, 0)
    m.consumer_lag.labels(kind="goods").set(goods_lag)
    m.ready.set(1 if _is_ready(app, w) else 0)
