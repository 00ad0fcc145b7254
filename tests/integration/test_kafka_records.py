"""Records carried through a real Kafka broker give the alerts replay gives.

The groundwork of the service: declaration lines published to a topic with
aiokafka and consumed back, in partition order, are parsed by the same contract
and fed to the same engine as ``transitwatch replay``; the alerts must match.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from benchmarks.scenarios.declarations import write
from transitwatch.detectors.contract import parse_json_line
from transitwatch.detectors.engine import Engine
from transitwatch.streams.replay import _event_key, replay

pytestmark = pytest.mark.integration


async def _round_trip(bootstrap: str, topic: str, lines: list[bytes]) -> list[bytes]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        batch = [producer.send(topic, line) for line in lines]
        await asyncio.gather(*[await f for f in batch])
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
        group_id=f"{topic}-reader",
    )
    await consumer.start()
    received: list[bytes] = []
    try:
        while len(received) < len(lines):
            batches = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), timeout=60)
            for messages in batches.values():
                received.extend(m.value for m in messages)
    finally:
        await consumer.stop()
    return received


def test_declarations_through_kafka_give_the_replay_alerts(kafka, tmp_path):
    path = tmp_path / "decl.jsonl"
    write(str(path), 20_000, 3, "2020-01", 36, None)
    lines = path.read_bytes().splitlines()

    received = asyncio.run(_round_trip(kafka.bootstrap, "customs.declarations.it", lines))
    assert received == lines, "one partition keeps the order"

    engine = Engine()
    for rec in sorted((parse_json_line(line) for line in received), key=_event_key):
        engine.add(rec)
    engine.finish(close_last=False)
    through_kafka = {a.alert_id: a.to_dict() for a in engine.drain()}

    from_file = {a.alert_id: a.to_dict() for a in replay([path], keep_snapshots=False, final_month="open", to_date=False).alerts}
    assert from_file, "the generated file holds surges"
    assert set(through_kafka) == set(from_file)
    assert all(through_kafka[k] == from_file[k] for k in from_file)
