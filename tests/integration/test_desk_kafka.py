"""The desk's alerts-topic source against a real Kafka broker: every record read back, bad
messages named with their offset, a missing topic a clear error."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.streams.desk.desk_helpers import record
from transitwatch.streams.desk.cases import CaseSourceError, build_cases
from transitwatch.streams.desk.kafka import KafkaCaseSource
from transitwatch.streams.feedback import Feedback
from transitwatch.streams.feedback_topic import KafkaFeedbackStore

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


def test_a_later_load_reads_on_from_where_the_last_one_stopped(kafka):
    """The desk's ``--refresh`` over the topic: each load returns every record so far, but reads
    only what was written since the last one (a re-read would repeat records as duplicates)."""
    topic = f"it-desk-{uuid.uuid4().hex[:8]}.alerts"
    first = [record(case_id="twc-a", period="2022-05"), record(case_id="twc-a", period="2022-06")]
    asyncio.run(_publish(kafka.bootstrap, topic, [orjson.dumps(r) for r in first]))
    source = KafkaCaseSource(kafka.bootstrap, topic)
    assert source.load().records == first
    later = [record(case_id="twc-b", series_id="PL>KG export 854231", reporter="PL")]
    asyncio.run(_publish(kafka.bootstrap, topic, [orjson.dumps(r) for r in later] + [b"{broken"]))
    loaded = source.load()
    assert loaded.records == first + later, "every record once, in the order read"
    assert [b.where for b in loaded.bad] == [f"{topic}[0]@3"]
    assert source.load() == loaded, "nothing new: the same records"
    assert sorted(build_cases(loaded.records)) == ["twc-a", "twc-b"]


def test_a_missing_topic_is_a_clear_error(kafka):
    with pytest.raises(CaseSourceError, match="does not exist"):
        KafkaCaseSource(kafka.bootstrap, f"it-desk-missing-{uuid.uuid4().hex[:8]}", timeout=30).load()


def _feedback(case_id: str, verdict: str, created_at: str) -> Feedback:
    return Feedback(case_id=case_id, series_id="DE>KG export 854231", verdict=verdict, reason="checked",
                    analyst="Ana", period="2022-05", severity="medium", created_at=created_at)


def test_feedback_on_the_topic_survives_a_new_store_and_bad_messages_are_named(kafka):
    topic = f"it-desk-{uuid.uuid4().hex[:8]}.feedback"
    store = KafkaFeedbackStore(kafka.bootstrap, topic, timeout=60)
    first = _feedback("twc-a", "dismissed", "2026-01-01T00:00:00+00:00")
    second = _feedback("twc-a", "confirmed", "2026-01-02T00:00:00+00:00")
    store.add(first)
    store.add(second)
    assert store.all() == [first, second]
    store.close()
    asyncio.run(_publish(kafka.bootstrap, topic, [b'{"verdict": "maybe"}']))

    again = KafkaFeedbackStore(kafka.bootstrap, topic, timeout=60)
    try:
        assert again.all() == [first, second]
        assert len(again.bad) == 1 and again.bad[0].startswith(f"{topic}[0]@2")
    finally:
        again.close()
    config = asyncio.run(_topic_config(kafka.bootstrap, topic))
    assert config["cleanup.policy"] == "compact"


async def _topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    (resource,) = response.resources  # (error code, message, type, name, entries)
    return {entry[0]: entry[1] for entry in resource[4]}
