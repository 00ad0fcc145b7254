"""``transitwatch notify``: the Kafka loop, the per-receiver senders and the HTTP endpoints.

The loop reads alerts (manual offset commits, consumer group ``notify_group_id``), checks
each (:mod:`transitwatch.streams.notify.intake`: a message that is not a usable alert goes to the
dead-letter topic, counted by reason), feeds the router and hands what is due to one sender
task per receiver, so a receiver that is slow or down delays only itself.

A sender prepares the message (payload, charts, the SMTP connection and login: nothing that
can deliver), records the intent in the delivery log (``sending``, awaited, ``acks=all``),
transmits (the POST, the mail transaction), then records the outcome (``delivered`` or
``failed``) before the router releases the alert; the loop commits offsets up to the first
alert still being handled. A preparation that fails is a failed attempt with nothing
recorded (retried; a crash while preparing leaves nothing to surface). After the last
failed attempt the alerts go to the undelivered topic (awaited, at most once per alert
version and receiver) before they are released. So a crash at any point loses nothing and
sends nothing twice: unreleased alerts are read again; the delivery log skips those
delivered and finds those whose intent has no outcome. Those (the notifier died between
the two records, while the receiver may or may not have accepted the message) are not
sent again: they go to the undelivered topic as ``unknown_outcome``, counted in
``transitwatch_notify_unknown_outcomes_total``, for an operator to resend or drop with
``transitwatch redeliver``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiokafka.abc import ConsumerRebalanceListener

from transitwatch.streams.notify.alertmanager import AlertmanagerSink
from transitwatch.streams.notify.config import AlertmanagerReceiver, EmailReceiver, NotifyConfig, SlackReceiver
from transitwatch.detectors.errors import RejectError
from transitwatch.streams.notify.deliverylog import FAILED, SENDING, UNKNOWN, DeliveryLog, version_key
from transitwatch.streams.notify.intake import MAX_ALERT_BYTES, parse_alert, period_domain
from transitwatch.streams.notify.kafkastate import COMPACTED, KafkaDeliveryLog, KafkaSilences, UndeliveredKeys, ensure_topics
from transitwatch.streams.notify.mail import EmailSink
from transitwatch.streams.notify.matchers import NotifyConfigError
from transitwatch.streams.notify.metrics import NotifyMetrics
from transitwatch.streams.notify.offsets import OffsetTracker
from transitwatch.streams.notify.router import RetryPolicy, Router
from transitwatch.streams.notify.sinks import DeliveryError, Notification, Redactor, Sink, Source
from transitwatch.streams.notify.slack import SlackSink
from transitwatch.streams.settings import Settings

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


def unknown_outcome_reason(n: Notification) -> str:
    """The ``reason`` header of an alert whose send has an intent but no outcome."""
    return (f"unknown_outcome: the notifier stopped after recording the intent to send message {n.message_id} "
            f"to {n.receiver.name!r} and before recording whether it was accepted; the receiver may have it. "
            "Check the receiver, then `transitwatch redeliver --unknown resend` (or `--unknown drop`).")


class Dispatcher:
    """One sender task per receiver; the outcome of every attempt goes back to the router.

    ``dedupe``: skip writing an alert version already on the undelivered topic (the notifier;
    ``redeliver`` puts back on purpose what it read from there)."""

    def __init__(self, router: Router, sinks: Mapping[str, Sink], log_: DeliveryLog, producer, undelivered_topic: str,
                 *, via: str = "notify", redactor: Redactor | None = None, dedupe: bool = True) -> None:
        self.router, self.sinks, self.log = router, sinks, log_
        self.producer, self.undelivered_topic, self.via = producer, undelivered_topic, via
        self.dedupe = dedupe
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

    async def send_now(self, n: Notification) -> None:
        """Send one notification in the caller's task, with the same records as a sender."""
        await self._send(self.sinks[n.receiver.name], n)

    def _record(self, n: Notification, state: str | None = None) -> Callable[[], Any]:
        records = (self.router.records_for(n, via=self.via) if state is None
                   else self.router.records_for(n, via=self.via, state=state))
        return lambda: self.log.record(records)

    async def _send(self, sink: Sink, n: Notification) -> None:
        if n.outcome_unknown:
            reason = unknown_outcome_reason(n)
            log.error("alert %s to %s: %s", n.items[0].alert_id, n.receiver.name, reason)
            await self._persist(lambda: self._undeliver(n, reason, outcome=UNKNOWN), "sending to the undelivered topic")
            await self._persist(self._record(n, UNKNOWN), "recording an unknown outcome")
            self.router.abandoned(n)
            return
        error, intended = await self._attempt(sink, n)
        if error is None:
            self.router.delivered(n)
            log.info("delivered %d alert(s) to %s (%s)", len(n.items), n.receiver.name, n.message_id)
        elif isinstance(error, DeliveryError):
            await self._failed(n, error, intended=intended)
        else:
            log.error("sending %d alert(s) to %s raised %s", len(n.items), n.receiver.name, type(error).__name__,
                      exc_info=error)
            if len(n.items) > 1:
                # One odd alert must not take its group down with it: each goes alone.
                if intended:
                    await self._persist(self._record(n, FAILED), "recording a failed attempt")
                for item in n.items:
                    await self._send(sink, self.router.single(n, item))
                return
            await self._failed(n, DeliveryError(
                f"{n.receiver.type} receiver {n.receiver.name!r}: the message could not be built or sent "
                f"({type(error).__name__}: {str(error)[:200]}); see the notifier's log", permanent=True),
                intended=intended)

    async def _attempt(self, sink: Sink, n: Notification) -> tuple[Exception | None, bool]:
        """One attempt: prepare, record the intent, transmit, record the delivery. Returns the
        error of a failed attempt (None if delivered) and whether its intent was recorded."""
        try:
            prepared = await sink.prepare(n)
        except Exception as exc:  # noqa: BLE001 - a failed attempt, judged by the caller
            return exc, False
        try:
            # The intent at the point of no return: a crash while preparing leaves none, so the
            # alert is simply sent after a restart; only a crash from here until the outcome is
            # recorded is an unknown outcome.
            await self._persist(self._record(n, SENDING), "recording the intent to send")
            try:
                await prepared.deliver()
            except Exception as exc:  # noqa: BLE001 - a failed attempt, judged by the caller
                return exc, True
            await self._persist(self._record(n), "recording a delivery")
            return None, True
        finally:
            await prepared.close()

    async def _failed(self, n: Notification, err: DeliveryError, *, intended: bool = True) -> None:
        """The receiver did not take ``n``: record the outcome if the attempt had recorded its
        intent (``intended``; a failed preparation recorded nothing), then retry or give up."""
        reason = self.redact(str(err))
        if intended:
            await self._persist(self._record(n, FAILED), "recording a failed attempt")
        if self.router.failed(n, DeliveryError(reason, retry_after=err.retry_after, permanent=err.permanent)):
            log.warning("%s (attempt %d; retrying in %.1f s)", reason, n.attempt, max(0.0, n.next_attempt_at - time.time()))
            return
        log.error("%s (attempt %d, giving up: %d alert(s) to %s)", reason, n.attempt, len(n.items),
                  self.undelivered_topic)
        await self._persist(lambda: self._undeliver(n, reason), "sending to the undelivered topic")
        self.router.abandoned(n)

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

    async def _undeliver(self, n: Notification, reason: str, *, outcome: str = FAILED) -> None:
        """Put the alerts of ``n`` on the undelivered topic, keyed by alert version and receiver;
        with ``dedupe``, a version already there is not written again (a restart re-reads
        alerts it had already put there before their offsets were committed)."""
        pending, written = [], []
        for item in n.items:
            if self.dedupe and self.log.is_undelivered(n.receiver.name, item.alert_id, item.early):
                log.info("alert %s to %s is already on %s; not written again", item.alert_id, n.receiver.name,
                         self.undelivered_topic)
                continue
            headers = [("receiver", n.receiver.name.encode()), ("receiver_type", n.receiver_type.encode()),
                       ("attempts", str(n.attempt).encode()), ("via", self.via.encode()), ("reason", reason[:500].encode()),
                       ("outcome", outcome.encode()), ("message_id", n.message_id.encode()),
                       ("alert_timestamp", repr(item.timestamp).encode())]
            if item.source is not None:
                headers += [("source_topic", item.source.topic.encode()),
                            ("source_partition", str(item.source.partition).encode()),
                            ("source_offset", str(item.source.offset).encode())]
            key = version_key(n.receiver.name, item.alert_id, item.early)
            pending.append(await self.producer.send(self.undelivered_topic, orjson.dumps(dict(item.alert)),
                                                    key=key.encode(), headers=headers))
            written.append(item)
        await asyncio.gather(*pending)
        for item in written:
            self.log.mark_undelivered(n.receiver.name, item.alert_id, item.early)


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
        from aiokafka.errors import InvalidSessionTimeoutError

        s = self.settings
        bootstrap = s.bootstrap_servers
        await ensure_topics(bootstrap, {s.deliveries_topic: COMPACTED, s.silences_topic: COMPACTED,
                                        s.undelivered_topic: COMPACTED}, s.notify_replication)
        web = await self._serve()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5)
        await producer.start()
        delivery_log = KafkaDeliveryLog(bootstrap, s.deliveries_topic, producer)
        silences = KafkaSilences(bootstrap, s.silences_topic)
        undelivered = UndeliveredKeys(bootstrap, s.undelivered_topic, delivery_log)
        dispatcher = None
        try:
            await delivery_log.tail.start()
            await undelivered.tail.start()
            await silences.tail.start()
            log.info("delivery log: %d record(s); silences: %d", len(delivery_log), len(silences.view.all()))
            intents = delivery_log.intents()
            if intents:
                log.warning("%d alert(s) were being sent when the notifier last stopped (an intent without an "
                            "outcome); each goes to %s as unknown_outcome when its alert is read again",
                            len(intents), s.undelivered_topic)
            router = self.router = Router(
                self.config, delivery_log, silences.view, metrics=self.metrics, clock=self.clock,
                retry=retry_policy(s), on_done=self.tracker.done, domain=s.notify_message_domain,
            )
            dispatcher = Dispatcher(router, self.sinks, delivery_log, producer, s.undelivered_topic,
                                    redactor=self.redactor)
            dispatcher.start()
            session_ms = int(s.notify_session_timeout * 1000)
            consumer = self._consumer = AIOKafkaConsumer(
                bootstrap_servers=bootstrap, group_id=s.notify_group_id, enable_auto_commit=False,
                auto_offset_reset="earliest", max_poll_records=500, session_timeout_ms=session_ms,
                heartbeat_interval_ms=max(100, session_ms // 3), group_instance_id=s.notify_group_instance_id,
            )
            consumer.subscribe([s.alerts_topic], listener=_Rebalance(self, delivery_log, silences, undelivered))
            try:
                await consumer.start()  # joins the group: waits for the partitions
            except InvalidSessionTimeoutError:
                await consumer.stop()
                raise NotifyConfigError(
                    f"the broker refused TRANSITWATCH_NOTIFY_SESSION_TIMEOUT={s.notify_session_timeout:g} (seconds): it "
                    "must lie within the broker's group.min.session.timeout.ms and group.max.session.timeout.ms "
                    "(6 s to 30 min by default)") from None
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
                try:
                    await self._commit()
                finally:
                    await consumer.stop()
        finally:
            self.ready = False
            if dispatcher is not None:
                await dispatcher.stop()
            await silences.tail.stop()
            await undelivered.tail.stop()
            await delivery_log.tail.stop()
            await producer.stop()
            await web.cleanup()

    async def _ingest(self, m, router: Router, producer) -> None:
        source = Source(m.topic, m.partition, m.offset)
        self.tracker.seen(source)
        self.metrics.consumed.inc()
        try:
            alert = parse_alert(m.value, period_domain(self.clock()))
        except RejectError as err:
            await self._dead_letter(m, producer, err.reason, err.message)
            return
        try:
            router.add(alert, source=source, timestamp=m.timestamp / 1000.0 if m.timestamp else None)
        except Exception as exc:  # noqa: BLE001 - one alert's failure, not the process's (logged with its traceback)
            log.exception("alert %s at %s[%d]@%d could not be routed", alert["alert_id"], m.topic, m.partition, m.offset)
            await self._dead_letter(m, producer, "unprocessable", f"{type(exc).__name__}: {str(exc)[:300]}")

    async def _dead_letter(self, m, producer, reason: str, message: str) -> None:
        """Skip one message: logged, counted by reason, kept on the dead-letter topic (cut to
        :data:`MAX_ALERT_BYTES`, so that it fits there), its offset released."""
        log.error("%s[%d]@%d skipped (%s: %s); kept on %s", m.topic, m.partition, m.offset, reason,
                  self.redactor(message)[:300], self.settings.dead_letter_topic)
        value = m.value
        headers = [("reason", reason.encode()), ("error", self.redactor(message)[:500].encode()),
                   ("source_topic", m.topic.encode()), ("source_partition", str(m.partition).encode()),
                   ("source_offset", str(m.offset).encode())]
        if value is not None and len(value) > MAX_ALERT_BYTES:
            headers.append(("truncated_from_bytes", str(len(value)).encode()))
            value = value[:MAX_ALERT_BYTES]
        await producer.send_and_wait(self.settings.dead_letter_topic, value, key=m.key, headers=headers)
        self.metrics.invalid.labels(reason=reason).inc()
        self.tracker.done(Source(m.topic, m.partition, m.offset))

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

    def __init__(self, notifier: Notifier, delivery_log: KafkaDeliveryLog, silences: KafkaSilences,
                 undelivered: UndeliveredKeys) -> None:
        self.notifier, self.delivery_log, self.silences = notifier, delivery_log, silences
        self.undelivered = undelivered

    async def on_partitions_revoked(self, revoked) -> None:
        await self.notifier._commit()
        gone = [(tp.topic, tp.partition) for tp in revoked]
        if self.notifier.router is not None:
            self.notifier.router.drop_partitions(gone)
        self.notifier.tracker.forget(gone)

    async def on_partitions_assigned(self, assigned) -> None:
        await self.delivery_log.tail.catch_up()
        await self.undelivered.tail.catch_up()
        await self.silences.tail.catch_up()

