"""The detect agent's batch loop without Kafka: a batch that fails as a whole (the broker did not
answer the ledger's metadata request, an alert send or a changelog write was refused) is the
batch's failure, not the worker's. It is tried again, and the alerts are those of a run without
faults: none lost, none different, none published twice.

A worker once lost such a batch: the detect agent crashed on "Unable to get cluster metadata"
while a rebalance was under way, Faust restarted it past the batch's events, and the records in
them were never counted (the hostile-stream SIGKILL test saw a lane's baseline move)."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from functools import cache
from types import SimpleNamespace

import orjson
import pytest
from aiokafka.errors import KafkaError, NotEnoughReplicasError

from benchmarks.scenarios import labelled
from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.ingest import route_batch
from transitwatch.streams.metrics import WorkerMetrics
from transitwatch.streams.service import Worker, _detect
from transitwatch.streams.settings import Settings

SETTINGS = Settings(partitions=2, lateness_days=3)
CONFIG = WatchConfig.default()
DECL = SETTINGS.declarations_topic
GOODS = "goods"
TODAY = dt.date(2030, 1, 1)


class Faults:
    """Fails a call of each kind with its probability (seeded): half of the failed sends are
    written all the same (the acknowledgement was lost). The ledger is read only when a batch
    meets partitions new to it (the first, and each one tried again), so it fails more often."""

    P = {"send": 0.3, "catch_up": 0.4, "written": 0.1}

    def __init__(self, seed: int | None) -> None:
        self.rng = random.Random(seed)
        self.p = self.P if seed is not None else dict.fromkeys(self.P, 0.0)
        self.failed = 0
        self.kinds: set[str] = set()

    def now(self, kind: str) -> bool:
        if self.rng.random() < self.p[kind]:
            self.failed += 1
            self.kinds.add(kind)
            return True
        return False


class Topic:
    """An alerts or dead-letter topic: what was written, in order; a send's future may fail."""

    def __init__(self, faults: Faults) -> None:
        self.messages: list[bytes] = []
        self.faults = faults

    async def send(self, key=None, value=None, headers=None):
        fut = asyncio.get_running_loop().create_future()
        if self.faults.now("send"):
            if self.faults.rng.random() < 0.5:  # written, but the acknowledgement was lost
                self.messages.append(value)
            fut.set_exception(NotEnoughReplicasError("refused"))
        else:
            self.messages.append(value)
            fut.set_result(None)
        return fut


class Ledger:
    """The alerts-topic ledger over a :class:`Topic`; reading it may fail as the broker's metadata does."""

    def __init__(self, topic: Topic, faults: Faults) -> None:
        self.topic, self.faults = topic, faults
        self.published: set[tuple[str, bool]] = set()
        self.position = 0

    def __contains__(self, version) -> bool:
        return version in self.published

    def add(self, version) -> None:
        self.published.add(version)

    def discard(self, version) -> None:
        self.published.discard(version)

    async def catch_up(self) -> int:
        if self.faults.now("catch_up"):
            raise KafkaError("Unable to get cluster metadata over all known brokers")
        new = self.topic.messages[self.position:]
        for value in new:
            alert = orjson.loads(value)
            self.published.add((alert["alert_id"], alert["early"]))
        self.position += len(new)
        return len(new)


class Table(dict):
    """The state table: writes land at once; waiting for their acknowledgement may fail."""

    def __init__(self, faults: Faults) -> None:
        super().__init__()
        self.faults = faults

    async def written(self) -> None:
        if self.faults.now("written"):
            raise KafkaError("changelog write not acknowledged")


class App:
    def __init__(self, partitions: int) -> None:
        self.consumer = SimpleNamespace(assignment=lambda: {(GOODS, p) for p in range(partitions)})


@cache
def goods_batches() -> tuple[tuple[tuple[int, bytes], ...], ...]:
    """The labelled scenario in date order over two input partitions, routed by ingest in batches
    of 300: each batch's goods bundles."""
    lines = sorted(labelled.generate(seed=11, hub_series=40, months=30).declarations, key=lambda r: r["date"])
    offsets = [0, 0]
    messages = []
    for i, line in enumerate(lines):
        p = i % 2
        messages.append(SimpleNamespace(topic=DECL, partition=p, offset=offsets[p], key=None,
                                        value=orjson.dumps(line), timestamp=1_700_000_000_000))
        offsets[p] += 1
    out = []
    for start in range(0, len(messages), 300):
        routed = route_batch(messages[start:start + 300], SETTINGS, CONFIG, today=TODAY)
        out.append(tuple(routed.bundles))
    return tuple(out)


def run(seed: int | None) -> tuple[dict, list[tuple[str, bool]], Faults, WorkerMetrics]:
    """Every batch through ``_detect`` with faults drawn from ``seed`` (none for ``None``)."""
    faults = Faults(seed)
    alerts, dead = Topic(faults), Topic(Faults(None))
    metrics = WorkerMetrics()
    w = Worker(SETTINGS, CONFIG, metrics)
    w.ledger = Ledger(alerts, faults)  # type: ignore[assignment]
    w.dead_letter = dead
    table, app = Table(faults), App(SETTINGS.partitions)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def scenario() -> None:
        offsets = [0] * SETTINGS.partitions
        for bundles in goods_batches():
            events = []
            for partition, value in bundles:
                message = SimpleNamespace(topic=GOODS, partition=partition, offset=offsets[partition],
                                          tp=(GOODS, partition))
                offsets[partition] += 1
                events.append(SimpleNamespace(value=value, message=message))
            await _detect(w, app, events, table, alerts, sleep=sleep)

    asyncio.run(scenario())
    versions = [(a["alert_id"], a["early"]) for a in map(orjson.loads, alerts.messages)]
    final: dict = {}
    for value in alerts.messages:
        a = orjson.loads(value)
        if a["alert_id"] not in final or final[a["alert_id"]]["early"]:
            final[a["alert_id"]] = a
    assert not dead.messages, "nothing here is a bad record"
    return final, versions, faults, metrics


@cache
def reference() -> dict:
    final, versions, _, _ = run(None)
    assert len(final) >= 10, "the scenario gives alerts to compare"
    assert len(versions) == len(set(versions))
    return final


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_batches_that_fail_as_a_whole_are_tried_again_and_give_the_same_alerts(seed):
    final, versions, faults, metrics = run(seed)
    assert faults.kinds == {"send", "catch_up", "written"}, "the seed injects faults at every stage"
    retries = metrics.registry.get_sample_value("transitwatch_batch_retries_total", {"stage": "detect"})
    assert 0 < retries <= faults.failed, "a batch is tried again once per failed attempt (some fail twice over)"
    want = reference()
    assert set(final) == set(want), (f"{len(set(want) - set(final))} alerts lost, "
                                     f"{len(set(final) - set(want))} not in the fault-free run")
    different = [k for k in want if final[k] != want[k]]
    assert not different, f"{len(different)} alerts differ, first {different[:3]}"
    assert len(versions) == len(set(versions)), "an alert version published twice"


def test_a_partition_moved_away_while_its_batch_waits_to_be_tried_again_is_left_to_its_new_owner():
    async def scenario() -> list[float]:
        faults = Faults(None)
        alerts = Topic(faults)
        w = Worker(SETTINGS, CONFIG, WorkerMetrics())
        w.ledger = Ledger(alerts, faults)  # type: ignore[assignment]
        w.dead_letter = Topic(faults)
        app = App(SETTINGS.partitions)
        table = Table(faults)
        waits: list[float] = []
        broken = {"times": 0}

        async def catch_up() -> int:
            broken["times"] += 1
            raise KafkaError("Unable to get cluster metadata over all known brokers")

        w.ledger.catch_up = catch_up  # type: ignore[method-assign]

        async def sleep(seconds: float) -> None:
            waits.append(seconds)
            if len(waits) == 6:  # a rebalance takes every partition away meanwhile
                app.consumer.assignment = set

        bundles = goods_batches()[0]
        events = [SimpleNamespace(value=v, message=SimpleNamespace(topic=GOODS, partition=p, offset=0, tp=(GOODS, p)))
                  for p, v in bundles]
        await _detect(w, app, events, table, alerts, sleep=sleep)
        assert broken["times"] == 6 and not w.groups and not table
        return waits

    assert asyncio.run(scenario()) == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0], "a growing wait, at most 10 s"
