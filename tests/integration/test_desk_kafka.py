"""The desk's alerts-topic source against a real Kafka broker: every record read back, bad
messages named with their offset, a missing topic a clear error."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from transitwatch.streams.desk.cases import CaseSourceError, build_cases
from transitwatch.streams.desk.kafka import KafkaCaseSource

from tests.streams.desk.desk_helpers import record

pytestmark = pytest.mark.integration


async def _publish(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()


def test_records_of_the_topic_become_cases(kafka):
    topic = f"it-desk-{uuid.uuid4().hex[:8]}.alerts"
    good = [record(case_id="twc-a", period="2022-05"), record(case_id="twc-a", period="2022-06"),
            record(case_id="twc-b", series_id="PL>KG export 854231", reporter="PL")]
    values = [orjson.dumps(r) for r in good] + [b"{broken", orjson.dumps({"case_id": "twc-c"})]
    asyncio.run(_publish(kafka.bootstrap, topic, values))
    loaded = KafkaCaseSource(kafka.bootstrap, topic).load()
    assert loaded.records == good
    assert [b.where for b in loaded.bad] == [f"{topic}[0]@3", f"{topic}[0]@4"]
    assert sorted(build_cases(loaded.records)) == ["twc-a", "twc-b"]


def test_a_missing_topic_is_a_clear_error(kafka):
    with pytest.raises(CaseSourceError, match="does not exist"):
        KafkaCaseSource(kafka.bootstrap, f"it-desk-missing-{uuid.uuid4().hex[:8]}", timeout=30).load()
