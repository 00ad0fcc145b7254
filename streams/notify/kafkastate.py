"""The notifier's state on compacted Kafka topics, so it survives restarts and moves.

Two small topics, created compacted if missing: the delivery log (one record per alert
version per receiver, keyed ``receiver|alert_id|early|final``, rewritten from intent to
outcome) and the silences (keyed by silence id; expiring one writes it again with its new
end). The notifier reads each to the end before it takes an alert, and keeps tailing them,
so a silence added with ``transitwatch silence add`` on any machine takes effect within a
second. A record is written with ``acks=all`` and awaited before the alert's offset is
committed. It also reads the keys of the undelivered topic (same keys), so that it puts
each alert version there at most once, whatever restarts happen in between.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import orjson

from transitwatch.streams.notify.deliverylog import DeliveryLog, DeliveryRecord
from transitwatch.streams.notify.silences import Silence, Silences

log = logging.getLogger("transitwatch.notify")

COMPACTED = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1", "segment.ms": "86400000"}
_TOPIC_ALREADY_EXISTS = 36


class StateTopicError(RuntimeError):
    """A state topic could not be created or read; the message says which and why."""


async def ensure_topics(bootstrap: str, topics: dict[str, dict[str, str]], replication: int) -> None:
    """Create the missing topics (one partition each, with their configs)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(name, num_partitions=1, replication_factor=replication, topic_configs=cfg)
               for name, cfg in topics.items() if name not in existing]
        if not new:
            return
        response = await admin.create_topics(new)
        for entry in getattr(response, "topic_errors", ()):
            name, code = entry[0], entry[1]
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                message = entry[2] if len(entry) > 2 else ""
                raise StateTopicError(f"cannot create topic {name!r}: error {code} {message or ''}".strip())
    finally:
        await admin.close()


async def partitions(bootstrap: str, topic: str, timeout: float = 10.0) -> list[int]:
    """The partition numbers of a topic (waiting a little for a topic just created)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            (described,) = await admin.describe_topics([topic])
            found = sorted(p["partition"] for p in described.get("partitions", ()))
            if described.get("error_code") == 0 and found:
                return found
            if loop.time() > deadline:
                raise StateTopicError(f"topic {topic!r} does not exist or has no partitions")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


class TopicTail:
    """Reads a topic from the beginning and keeps following it; ``apply(key, value)`` per record."""

    def __init__(self, bootstrap: str, topic: str, apply: Callable[[bytes | None, bytes | None], None]) -> None:
        self.bootstrap, self.topic, self._apply = bootstrap, topic, apply
        self._consumer = None
        self._partitions: list = []
        self._task: asyncio.Task | None = None

    async def start(self, timeout: float = 60.0) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        parts = await partitions(self.bootstrap, self.topic)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                          auto_offset_reset="earliest")
        await self._consumer.start()
        self._partitions = [TopicPartition(self.topic, p) for p in sorted(parts)]
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_beginning(*self._partitions)
        self._task = asyncio.create_task(self._run(), name=f"tail {self.topic}")
        await self.catch_up(timeout)

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                for m in messages:
                    try:
                        self._apply(m.key, m.value)
                    except (ValueError, KeyError, TypeError) as exc:
                        log.error("skipping an unreadable record at %s[%d]@%d: %s", m.topic, m.partition, m.offset, exc)

    async def catch_up(self, timeout: float = 60.0) -> None:
        """Return once everything written to the topic before this call has been applied."""
        end = await self._consumer.end_offsets(self._partitions)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._task is not None and self._task.done():
                self._task.result()  # a crashed reader raises here
            positions = [await self._consumer.position(tp) for tp in self._partitions]
            if all(pos >= end[tp] for pos, tp in zip(positions, self._partitions, strict=True)):
                return
            if loop.time() > deadline:
                raise StateTopicError(f"could not read topic {self.topic!r} to its end within {timeout:.0f} s")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping: the reader's end does not matter
                pass
        if self._consumer is not None:
            await self._consumer.stop()


class KafkaDeliveryLog(DeliveryLog):
    """The delivery log, persisted on a compacted topic through ``producer`` (acks=all)."""

    def __init__(self, bootstrap: str, topic: str, producer) -> None:
        super().__init__()
        self.topic, self._producer = topic, producer
        self.tail = TopicTail(bootstrap, topic, self._read)

    def _read(self, key: bytes | None, value: bytes | None) -> None:
        if value is not None:
            self.apply(DeliveryRecord.from_dict(orjson.loads(value)))

    async def record(self, records: Sequence[DeliveryRecord]) -> None:
        pending = [await self._producer.send(self.topic, orjson.dumps(r.to_dict()), key=r.key.encode())
                   for r in records]
        await asyncio.gather(*pending)
        for r in records:
            self.apply(r)


def parse_version_key(key: bytes | None) -> tuple[str, str, bool] | None:
    """``(receiver, alert_id, early)`` of a key written by :func:`version_key`, else None.

    Examples
    --------
    >>> from transitwatch.streams.notify.deliverylog import version_key
    >>> parse_version_key(version_key("desk", "tw-1", True).encode()), parse_version_key(b"tw-1")
    (('desk', 'tw-1', True), None)
    """
    parts = (key or b"").decode("utf-8", "replace").rsplit("|", 2)
    if len(parts) != 3 or parts[2] not in ("early", "final") or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1], parts[2] == "early"


class UndeliveredKeys:
    """Follows the undelivered topic's keys into ``log`` (:meth:`DeliveryLog.mark_undelivered`).

    Records written before keys named the receiver and version (keyed by alert id alone)
    are left out: they can only be written again once, by the first restart after an upgrade.
    """

    def __init__(self, bootstrap: str, topic: str, log_: DeliveryLog) -> None:
        self.topic, self.log = topic, log_
        self.tail = TopicTail(bootstrap, topic, self._read)

    def _read(self, key: bytes | None, value: bytes | None) -> None:
        parsed = parse_version_key(key)
        if parsed is not None:
            self.log.mark_undelivered(*parsed)


class KafkaSilences:
    """Silences kept on a compacted topic; ``view`` is what the router reads."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.view = Silences()
        self.tail = TopicTail(bootstrap, topic, self._read)

    def _read(self, key: bytes | None, value: bytes | None) -> None:
        if value is not None:
            self.view.apply(Silence.from_dict(orjson.loads(value)))

    async def put(self, producer, silence: Silence) -> None:
        await producer.send_and_wait(self.topic, orjson.dumps(silence.to_dict()), key=silence.id.encode())
        self.view.apply(silence)
