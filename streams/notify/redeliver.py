"""``transitwatch redeliver``: send the alerts of the undelivered topic again.

It reads the undelivered topic up to its end as of the start (consumer group
``<notify_group_id>.redeliver``, manual commits), sends each alert to the receiver named in
its ``receiver`` header, straight away (no grouping, no silences: an operator asked for it),
with the same retries, and records each delivery in the delivery log, so an alert that a
receiver already has is skipped. An alert that fails again, or whose receiver is no longer
configured, or that ``--receiver`` leaves out, is written back to the end of the topic
before its offset is committed: nothing is lost, and the next run tries again.

Alerts put there as ``unknown_outcome`` (the notifier stopped between sending and recording
the outcome: the receiver may have them) need a decision: by default they are put back
untouched (``--unknown keep``); ``--unknown resend`` sends them, ``--unknown drop`` takes
them off the topic without sending; ``--alert`` limits either to the alerts named. Each
send records its intent and outcome in the delivery log like the notifier; a ``redeliver``
that dies between the two finds the intent on its next run and puts the alert back as
``unknown_outcome`` instead of sending it again. Two records of the same alert version and
receiver (a put-back read again after a crash) are taken once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from transitwatch.detectors.errors import RejectError
from transitwatch.streams.notify.config import RECEIVER_TYPES, NotifyConfig
from transitwatch.streams.notify.deliverylog import version_key
from transitwatch.streams.notify.intake import parse_alert, period_domain
from transitwatch.streams.notify.kafkastate import COMPACTED, KafkaDeliveryLog, ensure_topics, partitions
from transitwatch.streams.notify.metrics import NotifyMetrics
from transitwatch.streams.notify.offsets import OffsetTracker
from transitwatch.streams.notify.router import RetryPolicy, Router
from transitwatch.streams.notify.service import Dispatcher, build_sinks
from transitwatch.streams.notify.silences import Silences
from transitwatch.streams.notify.sinks import Sink, Source
from transitwatch.streams.settings import Settings

log = logging.getLogger("transitwatch.notify")


@dataclass
class RedeliverResult:
    delivered: int = 0
    already_delivered: int = 0
    failed_again: int = 0
    put_back: int = 0
    unreadable: int = 0
    unknown_kept: int = 0
    unknown_dropped: int = 0
    unknown_found: int = 0
    superseded: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)


def _headers(message) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in (message.headers or ())}


def is_unknown_outcome(headers: Mapping[str, str]) -> bool:
    """Whether an undelivered record is an unknown outcome (the receiver may have the alert)."""
    return headers.get("outcome") == "unknown" or headers.get("reason", "").startswith("unknown_outcome")


async def _open(settings: Settings, group: str | None):
    from aiokafka import AIOKafkaConsumer, TopicPartition

    parts = await partitions(settings.bootstrap_servers, settings.undelivered_topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    tps = [TopicPartition(settings.undelivered_topic, p) for p in parts]
    consumer.assign(tps)
    end = await consumer.end_offsets(tps)
    return consumer, tps, end


async def _read_to(consumer, tps, end):
    """Yield the messages before the end offsets taken at the start."""
    while True:
        positions = {tp: await consumer.position(tp) for tp in tps}
        if all(positions[tp] >= end[tp] for tp in tps):
            return
        batches = await consumer.getmany(timeout_ms=500, max_records=500)
        for tp, messages in batches.items():
            for m in messages:
                if m.offset < end[tp]:
                    yield m


async def list_undelivered(settings: Settings) -> list[dict[str, Any]]:
    """What ``redeliver`` would take, without taking it."""
    await ensure_topics(settings.bootstrap_servers, {settings.undelivered_topic: {}}, settings.notify_replication)
    consumer, tps, end = await _open(settings, f"{settings.notify_group_id}.redeliver")
    out = []
    try:
        async for m in _read_to(consumer, tps, end):
            headers = _headers(m)
            try:
                alert = orjson.loads(m.value or b"")
            except orjson.JSONDecodeError:
                alert = None
            if not isinstance(alert, dict):
                alert = None
            out.append({"offset": m.offset, "receiver": headers.get("receiver", "?"),
                        "alert_id": (alert or {}).get("alert_id", "?"), "early": (alert or {}).get("early"),
                        "attempts": headers.get("attempts", "?"), "reason": headers.get("reason", "")})
    finally:
        await consumer.stop()
    return out


async def redeliver(
    settings: Settings, config: NotifyConfig, *, receiver: str | None = None, attempts: int = 3,
    sinks: Mapping[str, Sink] | None = None, unknown: str = "keep", alerts: frozenset[str] | None = None,
) -> RedeliverResult:
    """Send the undelivered alerts again; see the module docstring.

    ``unknown``: ``keep``, ``resend`` or ``drop`` the unknown outcomes; ``alerts``: only these ids."""
    if unknown not in ("keep", "resend", "drop"):
        raise ValueError(f"unknown={unknown!r}: expected keep, resend or drop")
    from aiokafka import AIOKafkaProducer, TopicPartition

    s = settings
    bootstrap = s.bootstrap_servers
    await ensure_topics(bootstrap, {s.deliveries_topic: COMPACTED, s.undelivered_topic: {}}, s.notify_replication)
    redactor = None
    if sinks is None:
        sinks, redactor = build_sinks(config, settings)
    result = RedeliverResult()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    delivery_log = KafkaDeliveryLog(bootstrap, s.deliveries_topic, producer)
    consumer = None
    dispatcher = None
    try:
        await delivery_log.tail.start()
        consumer, tps, end = await _open(settings, f"{s.notify_group_id}.redeliver")
        tracker = OffsetTracker()
        metrics = NotifyMetrics()
        router = Router(config, delivery_log, Silences(), metrics=metrics, on_done=tracker.done,
                        retry=RetryPolicy(max_attempts=attempts, initial=s.notify_retry_initial_seconds,
                                          maximum=max(s.notify_retry_max_seconds, s.notify_retry_initial_seconds)),
                        domain=s.notify_message_domain, redelivery=True)
        dispatcher = Dispatcher(router, sinks, delivery_log, producer, s.undelivered_topic, via="redeliver",
                                redactor=redactor, dedupe=False)
        dispatcher.start()
        domain = period_domain(router.clock())
        seen: set[str] = set()
        async for m in _read_to(consumer, tps, end):
            source = Source(m.topic, m.partition, m.offset)
            tracker.seen(source)
            headers = _headers(m)
            name = headers.get("receiver", "")
            try:
                alert = parse_alert(m.value, domain)
            except RejectError as err:
                log.error("%s[%d]@%d is not an alert (%s: %s); skipped", m.topic, m.partition, m.offset, err.reason,
                          err.message)
                result.unreadable += 1
                tracker.done(source)
                continue
            alert_id, early = alert["alert_id"], bool(alert.get("early"))
            key = version_key(name, alert_id, early)
            if key in seen:
                result.superseded += 1
                tracker.done(source)
                continue
            seen.add(key)
            unknown_outcome = is_unknown_outcome(headers)
            why = ""
            if name not in config.receivers:
                why = "no such receiver in the configuration"
                log.error("alert %s: receiver %r is not configured; put back on %s", alert_id, name, s.undelivered_topic)
            elif receiver is not None and name != receiver:
                why = "left out by --receiver"
            elif alerts is not None and alert_id not in alerts:
                why = "left out by --alert"
            elif delivery_log.get(name, alert_id).has(early):
                result.already_delivered += 1
                tracker.done(source)
                continue
            elif unknown_outcome and unknown == "keep":
                why = "unknown outcome kept: check the receiver, then --unknown resend or --unknown drop"
                result.unknown_kept += 1
            elif unknown_outcome and unknown == "drop":
                log.warning("alert %s to %s: unknown outcome dropped by the operator (not sent)", alert_id, name)
                result.unknown_dropped += 1
                tracker.done(source)
                continue
            if why:
                await producer.send_and_wait(s.undelivered_topic, m.value, key=m.key,
                                             headers=[*(m.headers or ()), ("put_back", why.encode())])
                result.put_back += 1
                tracker.done(source)
                continue
            try:
                stamp = float(headers["alert_timestamp"])
            except (KeyError, ValueError):
                stamp = m.timestamp / 1000.0
            router.add(alert, source=source, timestamp=stamp, receiver=name)
        # All read first, so each receiver gets its undelivered alerts in as few messages as it takes.
        while router.outstanding or dispatcher.busy or router.next_wakeup() is not None:
            dispatcher.submit(router.due())
            dispatcher.check()
            await asyncio.sleep(0.05)
        offsets = tracker.committable()
        if offsets:
            await consumer.commit({TopicPartition(*tp): o for tp, o in offsets.items()})
        reg = metrics.registry
        result.delivered = int(sum(reg.get_sample_value("transitwatch_notify_deliveries_total",
                                                        {"receiver_type": t, "outcome": "delivered"}) or 0
                                   for t in RECEIVER_TYPES))
        result.failed_again = int(sum(reg.get_sample_value("transitwatch_notify_undelivered_total",
                                                           {"receiver_type": t}) or 0
                                      for t in RECEIVER_TYPES))
        result.unknown_found = int(sum(reg.get_sample_value("transitwatch_notify_unknown_outcomes_total",
                                                            {"receiver_type": t}) or 0
                                       for t in RECEIVER_TYPES))
        result.put_back += result.unknown_found
    finally:
        if dispatcher is not None:
            await dispatcher.stop()
        if consumer is not None:
            await consumer.stop()
        await delivery_log.tail.stop()
        await producer.stop()
    return result
