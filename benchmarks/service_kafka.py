"""Kafka and process plumbing of the service benchmark (``benchmarks/service.py``).

A :class:`Deployment` is one app id with internal topics of its own (goods, alerts, dead
letters, the state changelog) over shared input topics; :class:`WorkerProcess` runs
``python -m transitwatch.streams.cli worker`` for it as a subprocess with ``TRANSITWATCH_*`` settings,
exactly as an operator would, and reads its ``/ready`` and ``/metrics`` pages.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.service_analysis import Progress, parse_metrics

ROOT = Path(__file__).resolve().parent.parent
STATE_TABLE = "goods-state"  # transitwatch.streams.service.STATE_TABLE (not imported: it pulls in Faust)


class BenchmarkError(RuntimeError):
    """A run could not complete; the message says what and where the logs are."""


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU seconds of a process so far (all its threads), from /proc; None off Linux."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Deployment:
    """Settings of one worker deployment: shared input topics, everything else its own."""

    bootstrap: str
    declarations_topic: str
    monthly_topic: str
    workdir: Path
    partitions: int
    prefix: str = "bench"
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    extra: dict[str, str] = field(default_factory=dict)
    root: Path = ROOT  # the checkout the worker runs from (its working directory)

    @property
    def app_id(self) -> str:
        return f"{self.prefix}-{self.tag}"

    @property
    def alerts_topic(self) -> str:
        return f"{self.app_id}.alerts"

    @property
    def changelog_topic(self) -> str:
        return f"{self.app_id}-{STATE_TABLE}-changelog"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TRANSITWATCH_BROKER": f"kafka://{self.bootstrap}",
            "TRANSITWATCH_APP_ID": self.app_id,
            "TRANSITWATCH_DECLARATIONS_TOPIC": self.declarations_topic,
            "TRANSITWATCH_MONTHLY_TOPIC": self.monthly_topic,
            "TRANSITWATCH_GOODS_TOPIC": f"{self.app_id}.by-goods",
            "TRANSITWATCH_ALERTS_TOPIC": self.alerts_topic,
            "TRANSITWATCH_DEAD_LETTER_TOPIC": f"{self.app_id}.dead-letter",
            "TRANSITWATCH_PARTITIONS": str(self.partitions),
            "TRANSITWATCH_STATE_DIR": str(self.workdir / self.app_id),
            **self.extra,
        }

    def worker(self, name: str) -> WorkerProcess:
        return WorkerProcess(self, name)


class WorkerProcess:
    """One ``python -m transitwatch.streams.cli worker`` subprocess of a deployment."""

    def __init__(self, deployment: Deployment, name: str) -> None:
        self.deployment = deployment
        self.name = name
        self.port = free_port()
        self.log_path = deployment.workdir / f"{deployment.app_id}-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> WorkerProcess:
        env = {**self.deployment.env(), "TRANSITWATCH_WEB_PORT": str(self.port)}
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child holds it; closed when we drop it
        self.started = time.monotonic()
        self.process = subprocess.Popen([sys.executable, "-m", "transitwatch.streams.cli", "worker"], env=env,
                                        cwd=self.deployment.root,
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, b""
        except OSError:
            return None

    def ready(self) -> bool:
        got = self.get("/ready")
        return got is not None and got[0] == 200

    def progress(self) -> Progress | None:
        got = self.get("/metrics")
        if got is None or got[0] != 200:
            return None
        p = Progress.of(time.monotonic(), parse_metrics(got[1].decode()))
        return dataclasses.replace(p, cpu=cpu_seconds(self.pid()))

    def alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise BenchmarkError(f"worker {self.name} exited ({code}); log {self.log_path}:\n{self.log_tail()}")

    def wait(self, check: Callable[[], Any], what: str, timeout: float, interval: float = 0.05) -> Any:
        """Poll ``check`` until it returns something truthy; returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.alive()
            got = check()
            if got:
                return got
            time.sleep(interval)
        raise BenchmarkError(f"worker {self.name}: {what} not within {timeout:.0f} s; log {self.log_path}:\n"
                             f"{self.log_tail()}")

    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> float:
        """Send ``sig`` and wait for the process to exit; returns the seconds it took."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        return time.monotonic() - t0

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


# -- topics -------------------------------------------------------------------------------------

async def create_topics(bootstrap: str, topics: dict[str, int], timeout: float = 30.0) -> None:
    """Create topics (name -> partitions) and wait until every partition has a leader."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(name, n, 1) for name, n in topics.items() if name not in existing]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            meta = await consumer._client.fetch_all_metadata()  # noqa: SLF001
            ok = all(len(meta.partitions_for_topic(name) or ()) == n
                     and all(meta.leader_for_partition(_tp(name, p)) not in (None, -1) for p in range(n))
                     for name, n in topics.items())
            if ok:
                return
            if time.monotonic() > deadline:
                raise BenchmarkError(f"topics {sorted(topics)} have no leaders after {timeout:.0f} s")
            await asyncio.sleep(0.2)
    finally:
        await consumer.stop()


def _tp(topic: str, partition: int) -> Any:
    from aiokafka import TopicPartition

    return TopicPartition(topic, partition)


async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every message on ``topic`` up to its end now (aiokafka ``ConsumerRecord``s, with timestamps)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 2**20)
    await consumer.start()
    try:
        meta = await consumer._client.fetch_all_metadata()  # noqa: SLF001
        tps = [_tp(topic, p) for p in sorted(meta.partitions_for_topic(topic) or ())]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[Any] = []
        while any([await consumer.position(tp) < end[tp] for tp in tps]):
            for messages in (await consumer.getmany(timeout_ms=500, max_records=50_000)).values():
                out.extend(messages)
        return out
    finally:
        await consumer.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's end offset (messages ever written, for a topic never truncated)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        meta = await consumer._client.fetch_all_metadata()  # noqa: SLF001
        tps = [_tp(topic, p) for p in sorted(meta.partitions_for_topic(topic) or ())]
        ends = await consumer.end_offsets(tps) if tps else {}
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()


def disk_bytes(log_dir: Path, topic: str) -> int:
    """Bytes of ``topic``'s log segments on the broker's disk (all partitions)."""
    return sum(f.stat().st_size for d in log_dir.glob(f"{topic}-*") if d.name.rpartition("-")[0] == topic
               for f in d.glob("*.log"))


async def publish_paced(path: Path, settings: Any, rate: float, tick: float = 0.01) -> dict[str, float]:
    """Publish the lines of ``path`` at ``rate`` a second, routed and keyed as ``transitwatch.streams.produce``
    does (by HS6), on an absolute schedule: line ``i`` is due ``i / rate`` seconds after the
    start and is sent at the first wake-up (every ``tick`` seconds) after that, so a late
    wake-up is caught up.
    (``transitwatch.streams.produce``'s limiter starts afresh whenever it is late and so falls short of a high
    rate.) Returns the lines sent and the seconds it took."""
    from aiokafka import AIOKafkaProducer

    from transitwatch.streams.produce import route

    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=10)
    await producer.start()
    try:
        pending = []
        sent, start = 0, time.monotonic()
        while sent < len(lines):
            due = min(len(lines), int((time.monotonic() - start) * rate) + 1)
            for line in lines[sent:due]:
                topic, key = route(line, settings)
                pending.append(await producer.send(topic, line, key=key))
            sent = due
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
            await asyncio.sleep(tick)
        await asyncio.gather(*pending)
        seconds = time.monotonic() - start
    finally:
        await producer.stop()
    return {"total": float(len(lines)), "seconds": seconds}
