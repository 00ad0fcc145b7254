"""The baseline of the service benchmark: a bare Faust app whose agent only decodes JSON.

Run as ``python -m benchmarks.service_baseline`` by ``benchmarks/service.py``, configured by
environment variables (``BENCH_BROKER``, ``BENCH_TOPIC``, ``BENCH_APP_ID``, ``BENCH_PARTITIONS``,
``BENCH_EXPECT``, ``BENCH_OUT``, ``BENCH_WEB_PORT``, ``BENCH_DATADIR``, ``BENCH_MODE``). It
reads the topic from the start in its own consumer group and calls ``orjson.loads`` on every
message's value. ``BENCH_MODE=message`` iterates the stream one value at a time (the plainest
agent); ``batch`` takes events in batches with ``stream.take_events(2000, within=0.25)``, as the
worker's agents do; ``aiokafka`` is no Faust at all, a plain ``AIOKafkaConsumer`` calling
``getmany`` (what Faust's own consumer runs underneath), for the cost of Faust itself. When
``BENCH_EXPECT`` messages have been decoded it writes ``{"count", "seconds"}`` to ``BENCH_OUT``: the
time from the first message to the last, on the monotonic clock, so start-up and group joining are not counted (in batches: from the first
batch's arrival, and ``count`` leaves that batch out), and the CPU seconds the process used
meanwhile (``time.process_time``, all threads). Then it idles until stopped.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import faust
import orjson


def create_app() -> faust.App:
    env = os.environ
    expect = int(env["BENCH_EXPECT"])
    out = Path(env["BENCH_OUT"])
    partitions = int(env["BENCH_PARTITIONS"])
    app = faust.App(
        env["BENCH_APP_ID"],
        broker=f"kafka://{env['BENCH_BROKER']}",
        store="memory://",
        datadir=env["BENCH_DATADIR"],
        topic_partitions=partitions,
        web_host="127.0.0.1",
        web_bind="127.0.0.1",
        web_port=int(env["BENCH_WEB_PORT"]),
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
    )
    topic = app.topic(env["BENCH_TOPIC"], value_type=bytes, value_serializer="raw", key_serializer="raw",
                      partitions=partitions)
    seen = {"count": 0, "first": 0.0, "skip": 0, "cpu": 0.0}

    def start(skip: int = 0) -> None:
        seen["first"], seen["skip"], seen["cpu"] = time.monotonic(), skip, time.process_time()

    def done() -> None:
        seconds = time.monotonic() - seen["first"]
        tmp = out.with_suffix(".part")
        tmp.write_bytes(orjson.dumps({"count": seen["count"] - seen["skip"], "seconds": seconds,
                                      "cpu_seconds": time.process_time() - seen["cpu"]}))
        tmp.replace(out)

    if env.get("BENCH_MODE", "message") == "batch":
        @app.agent(topic, name="bare")
        async def bare_batch(stream: faust.StreamT) -> None:
            loads = orjson.loads
            async for events in stream.take_events(2000, within=0.25):
                if not seen["count"]:
                    start(len(events))
                for event in events:
                    loads(event.value)
                before = seen["count"]
                seen["count"] += len(events)
                if before < expect <= seen["count"]:
                    done()
    else:
        @app.agent(topic, name="bare")
        async def bare(stream: faust.StreamT) -> None:
            loads = orjson.loads
            async for value in stream:
                if not seen["count"]:
                    start()
                loads(value)
                seen["count"] += 1
                if seen["count"] == expect:
                    done()

    return app


async def plain_consumer() -> None:
    """The ``aiokafka`` mode: the same work without Faust. The consumer is given every partition
    (no group) and the clock starts before its first fetch, so all of the fetching is timed."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    env = os.environ
    expect, out = int(env["BENCH_EXPECT"]), Path(env["BENCH_OUT"])
    consumer = AIOKafkaConsumer(bootstrap_servers=env["BENCH_BROKER"], group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        meta = await consumer._client.fetch_all_metadata()  # noqa: SLF001
        tps = [TopicPartition(env["BENCH_TOPIC"], p) for p in sorted(meta.partitions_for_topic(env["BENCH_TOPIC"]))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        loads, count = orjson.loads, 0
        first, cpu = time.monotonic(), time.process_time()
        while count < expect:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            for messages in batches.values():
                for message in messages:
                    loads(message.value)
                count += len(messages)
        seconds = time.monotonic() - first
        out.with_suffix(".part").write_bytes(orjson.dumps({"count": count, "seconds": seconds,
                                                           "cpu_seconds": time.process_time() - cpu}))
        out.with_suffix(".part").replace(out)
        while True:  # idle until stopped, as the Faust modes do
            await asyncio.sleep(3600)
    finally:
        await consumer.stop()


def main() -> None:
    if os.environ.get("BENCH_MODE") == "aiokafka":
        asyncio.run(plain_consumer())
        return
    worker = faust.Worker(create_app(), loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
