"""``transitwatch worker`` against a real Kafka broker: the same alerts as replay,
through restarts, kills, several workers and bad messages."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from benchmarks.scenarios import labelled
from transitwatch.streams.produce import produce
from transitwatch.streams.replay import replay
from transitwatch.streams.settings import Settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """Generated declarations in date order (as a customs system publishes them) and
    what replay says about them, the last month in progress."""
    lines = sorted(labelled.generate(seed=7, hub_series=200, months=36).declarations, key=lambda r: r["date"])
    path = tmp_path_factory.mktemp("worker") / "declarations.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in lines))
    result = replay([path], final_month="open", keep_snapshots=False, to_date=False)
    expected = {a.alert_id: a.to_dict() for a in result.alerts}
    assert len(expected) >= 10 and len({a.case_id for a in result.alerts}) < len(expected), "cases over months"
    return path, expected


class Deployment:
    """Topics and an app id of its own, workers as subprocesses."""

    def __init__(self, kafka, tmp_path: Path, partitions: int = 4, **env: str) -> None:
        tag = uuid.uuid4().hex[:8]
        self.env = {
            **os.environ,
            "TRANSITWATCH_BROKER": f"kafka://{kafka.bootstrap}",
            "TRANSITWATCH_APP_ID": f"tw-{tag}",
            "TRANSITWATCH_DECLARATIONS_TOPIC": f"it-{tag}.declarations",
            "TRANSITWATCH_MONTHLY_TOPIC": f"it-{tag}.monthly",
            "TRANSITWATCH_GOODS_TOPIC": f"it-{tag}.by-goods",
            "TRANSITWATCH_ALERTS_TOPIC": f"it-{tag}.alerts",
            "TRANSITWATCH_DEAD_LETTER_TOPIC": f"it-{tag}.dead-letter",
            "TRANSITWATCH_PARTITIONS": str(partitions),
            "TRANSITWATCH_BATCH_SIZE": "500",
            **env,
        }
        self.settings = Settings(**{k.removeprefix("TRANSITWATCH_").lower(): v for k, v in self.env.items()
                                    if k.startswith("TRANSITWATCH_")})
        self.tmp = tmp_path
        self.workers: list[tuple[subprocess.Popen, int]] = []

    def start_worker(self, command: list[str] | None = None) -> tuple[subprocess.Popen, int]:
        """A worker process (``transitwatch worker``, or ``command``) on a port of its own."""
        port = _free_port()
        n = len(self.workers)
        env = {**self.env, "TRANSITWATCH_WEB_PORT": str(port), "TRANSITWATCH_STATE_DIR": str(self.tmp / f"w{n}")}
        log = open(self.tmp / f"worker{n}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(command or [sys.executable, "-m", "transitwatch.streams.cli", "worker"], env=env, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
        self.workers.append((proc, port))
        return proc, port

    def wait_ready(self, port: int, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"worker on port {port} not ready; log:\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.tmp.glob("worker*.log")))

    def produce(self, path: Path, rate: float | None = None) -> None:
        asyncio.run(produce([path], self.settings, rate=rate))

    def alerts(self) -> list[dict]:
        return asyncio.run(_read_all(self.settings.bootstrap_servers, self.settings.alerts_topic))

    def wait_for_first_alert(self, timeout: float = 60.0) -> None:
        """Until the worker has published something: the stream is under way."""
        deadline = time.monotonic() + timeout
        while not self.alerts() and time.monotonic() < deadline:
            time.sleep(0.2)

    def wait_for(self, expected: dict, timeout: float = 120.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        got: list[dict] = []
        while time.monotonic() < deadline:
            got = self.alerts()
            if set(expected) <= {a["alert_id"] for a in got} and _final(got) == expected:
                time.sleep(3)  # anything more would be a surplus (or a duplicate): give it time to show
                return self.alerts()
            time.sleep(1)
        final = _final(got)
        missing = [(a["series_id"], a["period"], a["early"]) for k, a in expected.items() if k not in final]
        wrong = [(a["series_id"], a["period"], a["early"]) for k, a in expected.items() if k in final and final[k] != a]
        fields = [{f: (a.get(f), final[k].get(f)) for f in sorted(set(a) | set(final[k])) if a.get(f) != final[k].get(f)}
                  for k, a in expected.items() if k in final and final[k] != a][:2]
        raise AssertionError(f"{len(missing)} alerts missing of {len(expected)}: {missing[:5]}; "
                             f"different: {wrong[:5]}; live workers' counters: {self.counters()}; "
                             f"fields (replay's, worker's): {fields}; log:\n{self.logs()[-2000:]}")

    def counters(self) -> list[dict[str, float]]:
        """What each live worker counted that could explain different alerts (late, re-sent,
        redelivered records, batches tried again): a failure message says which it was."""
        names = ("transitwatch_late_records_total", "transitwatch_duplicates_dropped_total",
                 "transitwatch_records_redelivered_total", "transitwatch_batch_retries_total")
        out = []
        for proc, port in self.workers:
            if proc.poll() is not None:
                continue
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
            except OSError:
                continue
            seen: dict[str, float] = {}
            for line in text.splitlines():
                name = line.split("{")[0].split(" ")[0]
                if name in names:
                    seen[name.removeprefix("transitwatch_")] = seen.get(name.removeprefix("transitwatch_"), 0.0) + float(line.split()[-1])
            out.append(seen)
        return out

    def stop(self) -> None:
        for proc, _ in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in self.workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


async def _read_all(bootstrap: str, topic: str, *, with_headers: bool = False) -> list:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        from aiokafka import TopicPartition

        meta = await consumer._client.fetch_all_metadata()
        tps = [TopicPartition(topic, p) for p in sorted(meta.partitions_for_topic(topic) or ())]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out = []
        while any([await consumer.position(tp) < end[tp] for tp in tps]):
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(messages)
        return out if with_headers else [orjson.loads(m.value) for m in out]
    finally:
        await consumer.stop()


def _final(alerts: list[dict]) -> dict:
    """The latest version of each alert id (the month-end one replaces the early one)."""
    out: dict = {}
    for a in alerts:
        if a["alert_id"] not in out or out[a["alert_id"]]["early"]:
            out[a["alert_id"]] = a
    return out


def _no_duplicates(alerts: list[dict]) -> None:
    versions = [(a["alert_id"], a["early"]) for a in alerts]
    assert len(versions) == len(set(versions)), "an alert version was published twice"


@pytest.fixture
def deployment(kafka, tmp_path):
    d = Deployment(kafka, tmp_path)
    yield d
    d.stop()


def test_produce_to_alerts_end_to_end(deployment, sample):
    path, expected = sample
    lines = path.read_bytes().splitlines()
    _, port = deployment.start_worker()
    deployment.wait_ready(port)
    deployment.produce(path)
    got = deployment.wait_for(expected)
    assert _final(got) == expected, "the service publishes exactly replay's alerts"
    _no_duplicates(got)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/alerts", timeout=5) as r:
        recent = orjson.loads(r.read())
    assert recent and {a["alert_id"] for a in recent} <= set(expected)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    consumed = [line for line in text.splitlines() if line.startswith("transitwatch_records_consumed_total")]
    assert f'transitwatch_records_consumed_total{{kind="declarations"}} {float(len(lines))}' in consumed


def test_sigkill_mid_stream_loses_nothing_and_repeats_nothing(deployment, sample):
    path, expected = sample
    proc, port = deployment.start_worker()
    deployment.wait_ready(port)
    deployment.produce(path)
    deployment.wait_for_first_alert()
    assert len(_final(deployment.alerts())) < len(expected), "the kill must come mid-stream"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    _, port = deployment.start_worker()
    got = deployment.wait_for(expected)
    assert _final(got) == expected
    _no_duplicates(got)


def test_two_workers_and_a_rebalance_give_the_same_alerts(deployment, sample):
    path, expected = sample
    _, port = deployment.start_worker()
    deployment.wait_ready(port)
    deployment.produce(path)
    deployment.wait_for_first_alert()
    deployment.start_worker()  # joins mid-stream: partitions and their state move
    got = deployment.wait_for(expected, timeout=180)
    assert _final(got) == expected
    _no_duplicates(got)


def test_malformed_messages_go_to_the_dead_letter_topic(deployment, sample):
    path, expected = sample
    _, port = deployment.start_worker()
    deployment.wait_ready(port)
    bad = [b"not json", b'{"declaration_id": "x1", "date": "2021-02-30", "reporter": "DE", "partner": "KG",'
           b' "hs_code": "854231", "value": 5, "currency": "USD"}', b"[1, 2]"]

    async def send_bad():
        producer = AIOKafkaProducer(bootstrap_servers=deployment.settings.bootstrap_servers)
        await producer.start()
        try:
            for value in bad:
                await producer.send_and_wait(deployment.settings.declarations_topic, value, key=b"854231")
        finally:
            await producer.stop()

    asyncio.run(send_bad())
    deployment.produce(path)
    got = deployment.wait_for(expected)
    assert _final(got) == expected, "the good messages are processed"
    dead = asyncio.run(_read_all(deployment.settings.bootstrap_servers, deployment.settings.dead_letter_topic,
                                 with_headers=True))
    assert sorted(m.value for m in dead) == sorted(bad)
    for m in dead:
        headers = dict(m.headers)
        assert headers["reason"] and headers["source_topic"] == deployment.settings.declarations_topic.encode()
        assert int(headers["source_partition"]) >= 0 and int(headers["source_offset"]) >= 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert "transitwatch_records_rejected_total" in text
