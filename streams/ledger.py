"""Which alerts are already on the alerts topic: the worker's guard against duplicates.

The worker publishes an alert before it writes the state that produced it (so
a crash cannot lose it). After a crash, a restart or a partition moving to
another worker, the state is rebuilt by feeding the logged records again, and
that regenerates alerts that may already be on the topic. The topic itself is
the record of what was published: the ledger reads it to its end before a
worker takes on a partition, and skips any (``alert_id``, early) pair it holds.
An early alert and the month-end alert of the same id are two versions, both
published once.
"""

from __future__ import annotations

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition


class AlertLedger:
    """(alert_id, early) pairs on the alerts topic, read with a group-less consumer."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.topic = topic
        self.published: set[tuple[str, bool]] = set()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=20,  # reading to the end must not wait out 500 ms per partition (benchmarks/service.py)
        )
        self._assigned: set[TopicPartition] = set()

    async def start(self) -> None:
        await self._consumer.start()
        await self.catch_up()

    async def stop(self) -> None:
        await self._consumer.stop()

    def __contains__(self, version: tuple[str, bool]) -> bool:
        return version in self.published

    def add(self, version: tuple[str, bool]) -> None:
        self.published.add(version)

    def discard(self, version: tuple[str, bool]) -> None:
        """A version whose send failed: not known to be on the topic until :meth:`catch_up` reads it."""
        self.published.discard(version)

    async def catch_up(self) -> int:
        """Read the topic up to its current end; returns how many alerts were read."""
        consumer = self._consumer
        parts = await consumer._client.fetch_all_metadata()  # noqa: SLF001 - fresh partition list
        tps = {TopicPartition(self.topic, p) for p in (parts.partitions_for_topic(self.topic) or ())}
        if tps != self._assigned:
            known = {tp: await consumer.position(tp) for tp in self._assigned}
            consumer.assign(sorted(tps))
            for tp in tps:
                if tp in known:
                    consumer.seek(tp, known[tp])
                else:
                    await consumer.seek_to_beginning(tp)
            self._assigned = tps
        if not tps:
            return 0
        end = await consumer.end_offsets(sorted(tps))
        read = 0
        while True:
            behind = [tp for tp in tps if await consumer.position(tp) < end[tp]]
            if not behind:
                return read
            batches = await consumer.getmany(*behind, timeout_ms=500)
            for messages in batches.values():
                for message in messages:
                    alert = orjson.loads(message.value)
                    self.published.add((alert["alert_id"], bool(alert["early"])))
                    read += 1
