"""``transitwatch notify``: the Kafka loop, the per-receiver senders and the HTTP endpoints.

The loop reads alerts (manual offset commits, consumer group ``notify_group_id``), feeds the
router and hands what is due to one sender task per receiver, so a receiver that is slow
or down delays only itself. A sender records each delivery in the delivery log (awaited,
``acks=all``) before the router releases the alert; the loop then commits offsets up to the
first alert still being handled. After the last failed attempt the alerts go to the
undelivered topic (awaited) before they are released. So a crash at any point loses
nothing: unreleased alerts are read again and the delivery log skips those already sent.
The one window left is between a receiver accepting a message and the log recording it:
a crash exactly there sends that message again (with the same email Message-ID).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiokafka.abc import ConsumerRebalanceListener

from streams.notify.alertmanager import AlertmanagerSink
from streams.notify.config import AlertmanagerReceiver, EmailReceiver, NotifyConfig, SlackReceiver
from streams.notify.deliverylog import DeliveryLog
from streams.notify.kafkastate import COMPACTED, KafkaDeliveryLog, KafkaSilences, ensure_topics
from streams.notify.mail import EmailSink
from streams.notify.matchers import NotifyConfigError
from streams.notify.metrics import NotifyMetrics
from streams.notify.offsets import OffsetTracker
from streams.notify.router import RetryPolicy, Router
from streams.notify.sinks import DeliveryError, Notification, Redactor, Sink, Source
from streams.notify.slack import SlackSink
from streams.settings import Settings

log = logging.getLogger("transitwatch.notify")


def secret_values(settings: Settings) -> dict[str, str]:
    """The settings' secrets by (lower-case) name."""
    return {name.lower(): value.get_secret_value() for name, value in settings.secrets.items()}


def build_sinks(config: NotifyConfig, settings: Settings) -> tuple[dict[str, Sink], Redactor]:
    """One sink per receiver, with its secrets; fails at start-up if a secret is missing."""
    secrets = secret_values(settings)
    missing = sorted(config.secret_names() - set(secrets))
    if missing:
        raise NotifyConfigError("missing secret(s): " + ", ".join(
            f"{name} (set TRANSITWATCH_SECRETS__{name.upper()})" for name in missing))
    redactor = Redactor(secrets.values())
    sinks: dict[str, Sink] = {}
    for r in config.receivers.values():
        if isinstance(r, SlackReceiver):
            url = secrets[r.webhook_secret]
            if not url.startswith(("https://", "http://")):
                raise NotifyConfigError(f"secret {r.webhook_secret!r} of receiver {r.name!r} is not an http(s) URL")
            sinks[r.name] = SlackSink(r, url, redactor=redactor)
        elif isinstance(r, EmailReceiver):
            password = secrets[r.auth_password_secret] if r.auth_password_secret else None
            sinks[r.name] = EmailSink(r, password, redactor=redactor)
        elif isinstance(r, AlertmanagerReceiver):
            url = secrets[r.url_secret] if r.url_secret else r.url
            if not url.startswith(("https://", "http://")):
                raise NotifyConfigError(f"secret {r.url_secret!r} of receiver {r.name!r} is not an http(s) URL")
            sinks[r.name] = AlertmanagerSink(r, url, redactor=redactor)
    return sinks, redactor


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(max_attempts=settings.notify_max_attempts, initial=settings.notify_retry_initial_seconds,
                       maximum=max(settings.notify_retry_max_seconds, settings.notify_retry_initial_seconds))


def invalid_reason(value: bytes | None) -> tuple[str, Any]:
    """``("", alert)`` for an alert record, else ``(reason, None)``.

    Examples
    --------
    >>> invalid_reason(b'{"alert_id": "tw-1", "early": false}')[0], invalid_reason(b"nope")[0]
    ('', 'invalid_json')
    >>> invalid_reason(b'{"alert_id": 3}')[0]
    'invalid_alert'
    """
    try:
        alert = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return "invalid_json", None
    if (not isinstance(alert, dict) or not isinstance(alert.get("alert_id"), str) or not alert["alert_id"]
            or not isinstance(alert.get("early", False), bool)):
        return "invalid_alert", None
    return "", alert


class Dispatcher:
    """One sender task per receiver; the outcome of every attempt goes back to the router."""

    def __init__(self, router: Router, sinks: Mapping[str, Sink], log_: DeliveryLog, producer, undelivered_topic: str,
                 *, via: str = "notify", redactor: Redactor | None = None) -> None:
        self.router, self.sinks, self.log = router, sinks, log_
        self.producer, self.undelivered_topic, self.via = producer, undelivered_topic, via
        self.redact = redactor or Redactor()
        self._queues: dict[str, asyncio.Queue[Notification]] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self.busy = 0
        self.sending = 0
        self.stopping = False

    def start(self) -> None:
        for name, sink in self.sinks.items():
            self._queues[name] = asyncio.Queue()
            self._tasks[name] = asyncio.create_task(self._work(sink, self._queues[name]), name=f"send {name}")

    def submit(self, notifications: list[Notification]) -> None:
        for n in notifications:
            self.busy += 1
            self._queues[n.receiver.name].put_nowait(n)

    def check(self) -> None:
        """Raise the error of a sender that crashed (a bug must not go unnoticed)."""
        for task in self._tasks.values():
            if task.done() and not task.cancelled():
                task.result()

    async def stop(self, grace: float = 10.0) -> None:
        """Drop what waits in the queues (it is read again after a restart), let sends in flight
        finish for up to ``grace`` seconds (so they are recorded, not repeated), then stop."""
        if self.stopping:
            return
        self.stopping = True
        for queue in self._queues.values():
            while not queue.empty():
                queue.get_nowait()
                self.busy -= 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.sending and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        for sink in self.sinks.values():
            await sink.close()

    async def _work(self, sink: Sink, queue: asyncio.Queue[Notification]) -> None:
        while True:
            n = await queue.get()
            self.sending += 1
            try:
                await self._send(sink, n)
            finally:
                self.sending -= 1
                self.busy -= 1

    async def _send(self, sink: Sink, n: Notification) -> None:
        try:
            await sink.send(n)
        except DeliveryError as err:
            reason = self.redact(str(err))
            if self.router.failed(n, DeliveryError(reason, retry_after=err.retry_after, permanent=err.permanent)):
                log.warning("%s (attempt %d; retrying in %.1f s)", reason, n.attempt, max(0.0, n.next_attempt_at - time.time()))
                return
            log.error("%s (attempt %d, giving up: %d alert(s) to %s)", reason, n.attempt, len(n.items),
                      self.undelivered_topic)
            await self._persist(lambda: self._undeliver(n, reason), "sending to the undelivered topic")
            self.router.abandoned(n)
            return
        records = self.router.records_for(n, via=self.via)
        await self._persist(lambda: self.log.record(records), "recording a delivery")
        self.router.delivered(n)
        log.info("delivered %d alert(s) to %s (%s)", len(n.items), n.receiver.name, n.message_id)

    async def _persist(self, write: Callable[[], Any], what: str) -> None:
        """Keep trying a Kafka write: the alert is released only once it is written."""
        delay = 0.5
        while True:
            try:
                await write()
                return
            except Exception as exc:  # noqa: BLE001 - any Kafka error: retry, the alert stays unreleased
                if not type(exc).__module__.startswith("aiokafka") and not isinstance(exc, OSError):
                    raise
                log.error("%s failed (%s); retrying in %.1f s", what, self.redact(str(exc)), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _undeliver(self, n: Notification, reason: str) -> None:
        pending = []
        for item in n.items:
            headers = [("receiver", n.receiver.name.encode()), ("receiver_type", n.receiver_type.encode()),
                       ("attempts", str(n.attempt).encode()), ("via", self.via.encode()), ("reason", reason[:500].encode()),
                       ("alert_timestamp", repr(item.timestamp).encode())]
            if item.source is not None:
                headers += [("source_topic", item.source.topic.encode()),
                            ("source_partition", str(item.source.partition).encode()),
                            ("source_offset", str(item.source.offset).encode())]
            pending.append(await self.producer.send(self.undelivered_topic, orjson.dumps(dict(item.alert)),
                                                    key=item.alert_id.encode(), headers=headers))
        await asyncio.gather(*pending)


class Notifier:
    """The running notifier: ``await Notifier(settings, config).run(stop_event)``."""

    def __init__(self, settings: Settings, config: NotifyConfig, *, metrics: NotifyMetrics | None = None,
                 sinks: Mapping[str, Sink] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.settings, self.config = settings, config
        self.metrics = metrics if metrics is not None else NotifyMetrics()
        if sinks is None:
            sinks, self.redactor = build_sinks(config, settings)
        else:
            self.redactor = Redactor(secret_values(settings).values())
        self.sinks = dict(sinks)
        self.clock = clock
        self.tracker = OffsetTracker()
        self.ready = False
        self.router: Router | None = None
        self._consumer = None

    async def run(self, stop: asyncio.Event) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        s = self.settings
        bootstrap = s.bootstrap_servers
        await ensure_topics(bootstrap, {s.deliveries_topic: COMPACTED, s.silences_topic: COMPACTED,
                                        s.undelivered_topic: {}}, s.notify_replication)
        web = await self._serve()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5)
        await producer.start()
        delivery_log = KafkaDeliveryLog(bootstrap, s.deliveries_topic, producer)
        silences = KafkaSilences(bootstrap, s.silences_topic)
        dispatcher = None
        try:
            await delivery_log.tail.start()
            await silences.tail.start()
            log.info("delivery log: %d record(s); silences: %d", len(delivery_log), len(silences.view.all()))
            router = self.router = Router(
                self.config, delivery_log, silences.view, metrics=self.metrics, clock=self.clock,
                retry=retry_policy(s), on_done=self.tracker.done, domain=s.notify_message_domain,
            )
            dispatcher = Dispatcher(router, self.sinks, delivery_log, producer, s.undelivered_topic,
                                    redactor=self.redactor)
            dispatcher.start()
            consumer = self._consumer = AIOKafkaConsumer(
                bootstrap_servers=bootstrap, group_id=s.notify_group_id, enable_auto_commit=False,
                auto_offset_reset="earliest", max_poll_records=500,
            )
            consumer.subscribe([s.alerts_topic], listener=_Rebalance(self, delivery_log, silences))
            await consumer.start()
            self.ready = True
            log.info("notifier reading %s as %s; receivers: %s", s.alerts_topic, s.notify_group_id,
                     ", ".join(f"{n} ({r.type})" for n, r in self.config.receivers.items()))
            try:
                while not stop.is_set():
                    wake = router.next_wakeup()
                    wait = 0.2 if wake is None else min(0.2, max(0.0, wake - self.clock()))
                    batches = await consumer.getmany(timeout_ms=int(wait * 1000), max_records=500)
                    for messages in batches.values():
                        for m in messages:
                            await self._ingest(m, router, producer)
                    dispatcher.submit(router.due())
                    dispatcher.check()
                    await self._commit()
            finally:
                self.ready = False
                await dispatcher.stop()  # sends in flight finish and are recorded first
                await self._commit()
                await consumer.stop()
        finally:
            self.ready = False
            if dispatcher is not None:
                await dispatcher.stop()
            await silences.tail.stop()
            await delivery_log.tail.stop()
            await producer.stop()
            await web.cleanup()

    async def _ingest(self, m, router: Router, producer) -> None:
        source = Source(m.topic, m.partition, m.offset)
        self.tracker.seen(source)
        self.metrics.consumed.inc()
        reason, alert = invalid_reason(m.value)
        if reason:
            log.error("%s[%d]@%d is not an alert (%s): sent to %s", m.topic, m.partition, m.offset, reason,
                      self.settings.dead_letter_topic)
            headers = [("reason", reason.encode()), ("source_topic", m.topic.encode()),
                       ("source_partition", str(m.partition).encode()), ("source_offset", str(m.offset).encode())]
            await producer.send_and_wait(self.settings.dead_letter_topic, m.value, key=m.key, headers=headers)
            self.metrics.invalid.labels(reason=reason).inc()
            self.tracker.done(source)
            return
        router.add(alert, source=source, timestamp=m.timestamp / 1000.0 if m.timestamp else None)

    async def _commit(self) -> None:
        from aiokafka import TopicPartition
        from aiokafka.errors import CommitFailedError, IllegalStateError

        consumer = self._consumer
        if consumer is None:
            return
        owned = consumer.assignment()
        offsets = {tp: o for tp, o in self.tracker.committable().items() if TopicPartition(*tp) in owned}
        if not offsets:
            return
        try:
            await consumer.commit({TopicPartition(*tp): o for tp, o in offsets.items()})
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("offset commit failed (%s); the alerts after the last commit will be read again", exc)
            return
        self.tracker.committed(offsets)

    async def _serve(self):
        from aiohttp import web
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        async def metrics(_request):
            return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def healthz(_request):
            return web.Response(text="ok\n")

        async def ready(_request):
            return web.Response(text="ready\n" if self.ready else "starting\n", status=200 if self.ready else 503)

        app = web.Application()
        app.add_routes([web.get("/metrics", metrics), web.get("/healthz", healthz), web.get("/ready", ready)])
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.notify_web_host, self.settings.notify_web_port)
        await site.start()
        return runner


class _Rebalance(ConsumerRebalanceListener):
    """Commits before partitions go; catches up on the state topics before new ones come."""

    def __init__(self, notifier: Notifier, delivery_log: KafkaDeliveryLog, silences: KafkaSilences) -> None:
        self.notifier, self.delivery_log, self.silences = notifier, delivery_log, silences

    async def on_partitions_revoked(self, revoked) -> None:
        await self.notifier._commit()
        gone = [(tp.topic, tp.partition) for tp in revoked]
        if self.notifier.router is not None:
            self.notifier.router.drop_partitions(gone)
        self.notifier.tracker.forget(gone)

    async def on_partitions_assigned(self, assigned) -> None:
        await self.delivery_log.tail.catch_up()
        await self.silences.tail.catch_up()

