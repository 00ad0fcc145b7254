"""The service's alerts topic as a :class:`~transitwatch.streams.desk.cases.CaseSource`: every
record on the topic, from its beginning to the end it had when ``load`` was called. A later
``load`` reads on from where the last one stopped (the desk's ``--refresh``), so following a
topic costs what was written since, not the whole topic again."""

from __future__ import annotations

import asyncio
from typing import Any

from transitwatch.streams.desk.cases import (
    BadRecord,
    CaseSourceError,
    Loaded,
    read_record,
)


class KafkaCaseSource:
    """The alert records of the topic ``topic`` (the worker's ``alerts_topic``) on ``bootstrap``.

    ``load`` runs its own event loop: call it outside one (the desk does, at start)."""

    def __init__(self, bootstrap: str, topic: str, *, timeout: float = 60.0) -> None:
        self.bootstrap, self.topic, self.timeout = bootstrap, topic, timeout
        self.description = f"topic {topic} on {bootstrap}"
        self._positions: dict[int, int] = {}  # partition -> the next offset to read
        self._records: list[dict[str, Any]] = []
        self._bad: list[BadRecord] = []

    def load(self) -> Loaded:
        try:
            return asyncio.run(asyncio.wait_for(self._read(), self.timeout))
        except TimeoutError as exc:
            raise CaseSourceError(f"could not read {self.description} to its end within {self.timeout:.0f} s") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("aiokafka"):
                raise CaseSourceError(f"cannot read {self.description}: {exc}") from exc
            raise

    async def _read(self) -> Loaded:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        records: list[dict[str, Any]] = []
        bad: list[BadRecord] = []
        positions = dict(self._positions)
        try:
            metadata = await consumer._client.fetch_all_metadata()
            found = metadata.partitions_for_topic(self.topic)
            if not found:
                raise CaseSourceError(f"{self.description}: the topic does not exist")
            tps = [TopicPartition(self.topic, p) for p in sorted(found)]
            consumer.assign(tps)
            for tp in tps:
                if tp.partition in positions:
                    consumer.seek(tp, positions[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
            end = await consumer.end_offsets(tps)
            while not all([await consumer.position(tp) >= end[tp] for tp in tps]):
                batches = await consumer.getmany(timeout_ms=500)
                for tp in sorted(batches):
                    for message in batches[tp]:
                        if message.offset >= end[tp]:
                            continue  # written after the call: the next load reads it
                        read_record(message.value or b"", f"{tp.topic}[{tp.partition}]@{message.offset}", records, bad)
            positions.update({tp.partition: end[tp] for tp in tps})
        finally:
            await consumer.stop()
        # only a load read to its end moves the positions on: a failed one is read again next time
        self._records += records
        self._bad += bad
        self._positions = positions
        return Loaded(list(self._records), list(self._bad))
