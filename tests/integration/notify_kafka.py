"""Helpers for the notifier's Kafka tests: settings per test, producing alerts, the notifier in a
thread or a subprocess, scraping its metrics, reading topics and committed offsets."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from transitwatch.streams.settings import Settings
from tests.integration.notify_servers import free_port

ROOT = Path(__file__).resolve().parents[2]
_ids = itertools.count(1)


def make_alert(**overrides: Any) -> dict[str, Any]:
    n = next(_ids)
    base = {
        "alert_id": f"tw-it{n:017d}", "series_id": "DE>AM export 854232", "reporter": "DE", "partner": "AM",
        "flow": "export", "hs6": "854232", "hs_description": "Electronic integrated circuits: memories",
        "chpl_tier": "1", "period": "2022-04", "detectors": ["seasonal_surge"], "score": 6.5, "severity": "high",
        "observed_value": 812_000.0, "baseline_value": 120_000.0, "observed_count": None, "baseline_count": None,
        "ratio": 6.77, "p_value": 1e-6, "currency": "EUR", "top_exporters": [], "top_consignees": [],
        "corroborating_reporters": [], "early": False, "as_of": "2022-04-30",
        "explanation": "Germany's exports to Armenia of HS 854232 reached EUR 812.0k in 2022-04, 6.8 times the expected.",
        "evidence": {"band_high": 200_000.0},
    }
    return base | overrides


def topics(name: str) -> dict[str, str]:
    """Topic and group names of one test, so tests sharing the broker never meet."""
    return {
        "alerts_topic": f"it.{name}.alerts", "notify_group_id": f"it.{name}.notify",
        "deliveries_topic": f"it.{name}.deliveries", "silences_topic": f"it.{name}.silences",
        "undelivered_topic": f"it.{name}.undelivered", "dead_letter_topic": f"it.{name}.dead-letter",
    }


def settings_for(kafka, name: str, secrets: dict[str, str], **extra: Any) -> Settings:
    values = {"broker": f"kafka://{kafka.bootstrap}", **topics(name), "notify_web_port": free_port(),
              "notify_retry_initial_seconds": 0.2, "notify_retry_max_seconds": 0.5, "secrets": secrets, **extra}
    return Settings(**values)


def environment(settings: Settings) -> dict[str, str]:
    """The settings as the ``TRANSITWATCH_`` environment of a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRANSITWATCH_")}
    for field in ("broker", "alerts_topic", "notify_group_id", "deliveries_topic", "silences_topic",
                  "undelivered_topic", "dead_letter_topic", "notify_web_port", "notify_retry_initial_seconds",
                  "notify_retry_max_seconds", "notify_max_attempts", "notify_session_timeout",
                  "notify_group_instance_id"):
        if getattr(settings, field) is not None:
            env[f"TRANSITWATCH_{field.upper()}"] = str(getattr(settings, field))
    for name, value in settings.secrets.items():
        env[f"TRANSITWATCH_SECRETS__{name.upper()}"] = value.get_secret_value()
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


async def _produce(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes | None]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for key, value in zip(keys, values, strict=True):
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def produce(settings: Settings, alerts: list[dict[str, Any] | bytes]) -> None:
    values = [a if isinstance(a, bytes) else orjson.dumps(a) for a in alerts]
    keys = [None if isinstance(a, bytes) else a["alert_id"].encode() for a in alerts]
    asyncio.run(_produce(settings.bootstrap_servers, settings.alerts_topic, values, keys))


async def _read_all(bootstrap: str, topic: str):
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from transitwatch.streams.notify.kafkastate import partitions

    tps = [TopicPartition(topic, p) for p in await partitions(bootstrap, topic)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out = []
        async def behind() -> bool:
            return any([await consumer.position(tp) < end[tp] for tp in tps])

        while await behind():
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(messages)
        return out
    finally:
        await consumer.stop()


def read_topic(settings: Settings, topic: str) -> list:
    return asyncio.run(_read_all(settings.bootstrap_servers, topic))


async def _committed(bootstrap: str, group: str, topic: str) -> int | None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()


def committed(settings: Settings) -> int | None:
    return asyncio.run(_committed(settings.bootstrap_servers, settings.notify_group_id, settings.alerts_topic))


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` of a notifier as {(sample name, sorted labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def metric(port: int, name: str, **labels: str) -> float:
    try:
        return scrape(port).get((name, tuple(sorted(labels.items()))), 0.0)
    except OSError:
        return -1.0


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return -1


class NotifierThread:
    """``Notifier.run`` on its own event loop in a thread; :meth:`stop` ends it and re-raises."""

    def __init__(self, notifier) -> None:
        self.notifier = notifier
        self.error: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def run():
            self._stop = asyncio.Event()
            await self.notifier.run(self._stop)

        try:
            self._loop.run_until_complete(run())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc
        finally:
            self._loop.close()

    def start(self) -> NotifierThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive() and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        if self.error is not None:
            raise self.error


def start_subprocess(config: Path, settings: Settings, log: Path) -> subprocess.Popen:
    """``python -m transitwatch.streams.cli notify`` with the settings in its environment."""
    out = open(log, "ab")  # noqa: SIM115 - kept open for the process's life
    return subprocess.Popen(
        [sys.executable, "-m", "transitwatch.streams.cli", "notify", "--config", str(config), "--broker", settings.broker],
        env=environment(settings), cwd=str(ROOT), stdout=out, stderr=subprocess.STDOUT,
    )
