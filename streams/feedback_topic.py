"""Feedback on a compacted Kafka topic: the service's :class:`~transitwatch.streams.feedback.FeedbackStore`.

Each verdict is one message with a key of its own (case id, time, a random suffix), so compaction
never drops one and no retention deletes one: the topic keeps every verdict for as long as it
exists, and a desk (or the notifier) rebuilds the list by reading it from the beginning. The store
runs its Kafka clients on an event loop in a thread of its own, so ``add`` and ``all`` are plain
calls like the SQLite store's; ``add`` returns once the broker has the message (``acks=all``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

import orjson

from transitwatch.streams.feedback import Feedback, FeedbackError, FeedbackStoreError

log = logging.getLogger(__name__)
T = TypeVar("T")


class KafkaFeedbackStore:
    """Every verdict on ``topic`` (created compacted if missing); ``bad`` lists the messages of
    the topic that are not feedback, with their partition and offset (never dropped silently)."""

    def __init__(self, bootstrap: str, topic: str, *, timeout: float = 60.0) -> None:
        self.bootstrap, self.topic, self.timeout = bootstrap, topic, timeout
        self.bad: list[str] = []
        self._items: dict[bytes, Feedback] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"feedback {topic}", daemon=True)
        self._thread.start()
        self._producer: Any = None
        self._consumer: Any = None
        self._tail: asyncio.Task[None] | None = None
        try:
            self._call(self._start())
        except FeedbackStoreError:
            self.close()
            raise

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(self.timeout)
        except TimeoutError as exc:
            future.cancel()
            raise FeedbackStoreError(f"the feedback topic {self.topic} did not answer within {self.timeout:.0f} s") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("aiokafka"):
                raise FeedbackStoreError(f"the feedback topic {self.topic} on {self.bootstrap}: {exc}") from exc
            raise

    async def _start(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import TopicAlreadyExistsError

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(self.topic, num_partitions=1, replication_factor=1,
                                                topic_configs={"cleanup.policy": "compact"})])
        except TopicAlreadyExistsError:
            pass
        finally:
            await admin.close()
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True)
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                          auto_offset_reset="earliest")
        await self._consumer.start()
        found: set[int] = set()
        for _ in range(100):  # a topic just created takes a moment to appear in the metadata
            metadata = await self._consumer._client.fetch_all_metadata()  # noqa: SLF001
            found = metadata.partitions_for_topic(self.topic) or set()
            if found:
                break
            await asyncio.sleep(0.1)
        if not found:
            raise FeedbackStoreError(f"the feedback topic {self.topic} has no partitions")
        tps = [TopicPartition(self.topic, p) for p in sorted(found)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        end = await self._consumer.end_offsets(tps)
        self._tail = asyncio.create_task(self._follow())
        while not all([await self._consumer.position(tp) >= end[tp] for tp in tps]):
            if self._tail.done():
                self._tail.result()
            await asyncio.sleep(0.02)

    async def _follow(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=500)
            for tp in sorted(batches):
                for message in batches[tp]:
                    self._apply(message.key or b"", message.value, f"{tp.topic}[{tp.partition}]@{message.offset}")

    def _apply(self, key: bytes, value: bytes | None, where: str) -> None:
        if value is None:
            return  # a tombstone: nothing to show
        try:
            item = Feedback(**orjson.loads(value))
        except (orjson.JSONDecodeError, TypeError, FeedbackError) as exc:
            log.error("feedback topic %s: not feedback: %s", where, exc)
            with self._lock:
                self.bad.append(f"{where}: {exc}")
            return
        with self._lock:
            self._items.setdefault(key, item)

    async def _send(self, key: bytes, value: bytes) -> None:
        await self._producer.send_and_wait(self.topic, value, key=key)

    def add(self, feedback: Feedback) -> None:
        key = f"{feedback.case_id}|{feedback.created_at}|{uuid.uuid4().hex}".encode()
        self._call(self._send(key, orjson.dumps(feedback.to_dict())))
        with self._lock:
            self._items.setdefault(key, feedback)

    def all(self) -> list[Feedback]:
        with self._lock:
            items = list(self._items.values())
        return sorted(items, key=lambda f: f.created_at)

    def close(self) -> None:
        async def stop() -> None:
            if self._tail is not None:
                self._tail.cancel()
                try:
                    await self._tail
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping: how the reader ended does not matter
                    pass
            for client in (self._producer, self._consumer):
                if client is not None:
                    await client.stop()

        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(stop(), self._loop).result(self.timeout)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(self.timeout)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()
