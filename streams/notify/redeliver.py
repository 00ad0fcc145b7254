"""``transitwatch redeliver``: send the alerts of the undelivered topic again.

It reads the undelivered topic up to its end as of the start (consumer group
``<notify_group_id>.redeliver``, manual commits), sends each alert to the receiver named in
its ``receiver`` header, straight away (no grouping, no silences: an operator asked for it),
with the same retries, and records each delivery in the delivery log, so an alert that a
receiver already has is skipped. An alert that fails again, or whose receiver is no longer
configured, or that ``--receiver`` leaves out, is written back to the end of the topic
before its offset is committed: nothing is lost, and the next run tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.notify.config import NotifyConfig
from streams.notify.kafkastate import COMPACTED, KafkaDeliveryLog, ensure_topics, partitions
from streams.notify.metrics import NotifyMetrics
from streams.notify.offsets import OffsetTracker
from streams.notify.router import RetryPolicy, Router
from streams.notify.service import Dispatcher, build_sinks, invalid_reason
from streams.notify.silences import Silences
from streams.notify.sinks import Sink, Source
from streams.settings import Settings

log = logging.getLogger("transitwatch.notify")


@dataclass
class RedeliverResult:
    delivered: int = 0
    already_delivered: int = 0
    failed_again: int = 0
    put_back: int = 0
    unreadable: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)


def _headers(message) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in (message.headers or ())}


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
            _, alert = invalid_reason(m.value)
            out.append({"offset": m.offset, "receiver": headers.get("receiver", "?"),
                        "alert_id": (alert or {}).get("alert_id", "?"), "early": (alert or {}).get("early"),
                        "attempts": headers.get("attempts", "?"), "reason": headers.get("reason", "")})
    finally:
        await consumer.stop()
    return out


async def redeliver(
    settings: Settings, config: NotifyConfig, *, receiver: str | None = None, attempts: int = 3,
    sinks: Mapping[str, Sink] | None = None,
) -> RedeliverResult:
    """Send the undelivered alerts again; see the module docstring."""
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
                        domain=s.notify_message_domain)
        dispatcher = Dispatcher(router, sinks, delivery_log, producer, s.undelivered_topic, via="redeliver",
                                redactor=redactor)
        dispatcher.start()
        async for m in _read_to(consumer, tps, end):
            source = Source(m.topic, m.partition, m.offset)
            tracker.seen(source)
            headers = _headers(m)
            name = headers.get("receiver", "")
            reason, alert = invalid_reason(m.value)
            if reason:
                log.error("%s[%d]@%d is not an alert (%s); skipped", m.topic, m.partition, m.offset, reason)
                result.unreadable += 1
                tracker.done(source)
                continue
            if name not in config.receivers or (receiver is not None and name != receiver):
                why = "no such receiver in the configuration" if name not in config.receivers else "left out by --receiver"
                if name not in config.receivers:
                    log.error("alert %s: receiver %r is not configured; put back on %s", alert["alert_id"], name,
                              s.undelivered_topic)
                await producer.send_and_wait(s.undelivered_topic, m.value, key=m.key,
                                             headers=[*(m.headers or ()), ("put_back", why.encode())])
                result.put_back += 1
                tracker.done(source)
                continue
            if delivery_log.get(name, alert["alert_id"]).covers(bool(alert.get("early"))):
                result.already_delivered += 1
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
                                   for t in ("slack", "email", "alertmanager")))
        result.failed_again = int(sum(reg.get_sample_value("transitwatch_notify_undelivered_total",
                                                           {"receiver_type": t}) or 0
                                      for t in ("slack", "email", "alertmanager")))
    finally:
        if dispatcher is not None:
            await dispatcher.stop()
        if consumer is not None:
            await consumer.stop()
        await delivery_log.tail.stop()
        await producer.stop()
    return result
