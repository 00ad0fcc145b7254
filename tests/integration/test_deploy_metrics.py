"""Every metric the alert rules and the dashboards read is one the live processes export.

A worker (``python -m transitwatch.streams.cli worker``) and a notifier (``python -m transitwatch.streams.cli notify``) run
as subprocesses against the test broker; records (one of them bad) and an alert go through them
so that labelled series appear; their ``/metrics`` pages are scraped with prometheus_client's
parser and compared with the ``transitwatch_*`` names in deploy/prometheus/rules and
deploy/grafana/dashboards, and with the label names their selectors use.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.tools import (
    ROOT, dashboard_queries, exported_series, free_port, rule_expressions, strip_strings, used_metric_names,
)

pytestmark = pytest.mark.integration

#: Labels Prometheus adds at scrape time, and the histogram bucket bound.
SCRAPE_LABELS = {"job", "instance", "le"}


def _get(url: str, timeout: float = 3.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def _wait(predicate, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; log:\n{log.read_text(errors='replace')[-4000:]}")


def _families(port: int) -> list:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as resp:
        assert resp.status == 200
        # Prometheus 3 fails a scrape whose Content-Type is missing or not a format it parses.
        content_type = resp.headers.get("Content-Type", "")
        assert content_type.split(";")[0].strip() in ("text/plain", "application/openmetrics-text"), content_type
        return list(text_string_to_metric_families(resp.read().decode()))


def _sample(families: list, name: str, **labels: str) -> float | None:
    for f in families:
        for s in f.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def _ready(proc: subprocess.Popen, port: int, log: Path) -> bool:
    """/ready answers 200; a process that has exited fails at once, with its log."""
    if proc.poll() is not None:
        raise AssertionError(f"exited with {proc.returncode}; log:\n{log.read_text(errors='replace')[-4000:]}")
    return _get(f"http://127.0.0.1:{port}/ready")[0] == 200


def _base_env(tag: str, kafka) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRANSITWATCH_")}
    env.update({
        "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        "TRANSITWATCH_BROKER": f"kafka://{kafka.bootstrap}",
        "TRANSITWATCH_APP_ID": f"tw-metrics-{tag}",
        "TRANSITWATCH_DECLARATIONS_TOPIC": f"it-{tag}.declarations",
        "TRANSITWATCH_MONTHLY_TOPIC": f"it-{tag}.monthly",
        "TRANSITWATCH_GOODS_TOPIC": f"it-{tag}.by-goods",
        "TRANSITWATCH_ALERTS_TOPIC": f"it-{tag}.alerts",
        "TRANSITWATCH_DEAD_LETTER_TOPIC": f"it-{tag}.dead-letter",
        "TRANSITWATCH_UNDELIVERED_TOPIC": f"it-{tag}.undelivered",
        "TRANSITWATCH_NOTIFY_GROUP_ID": f"it-{tag}.notify",
        "TRANSITWATCH_DELIVERIES_TOPIC": f"it-{tag}.deliveries",
        "TRANSITWATCH_SILENCES_TOPIC": f"it-{tag}.silences",
        "TRANSITWATCH_PARTITIONS": "2",
    })
    return env


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


async def _publish(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def worker(kafka, tmp_path_factory) -> Iterator[list]:
    """A live worker's parsed /metrics after good and bad records went through it."""
    from transitwatch.streams.produce import produce
    from transitwatch.streams.settings import Settings

    tmp = tmp_path_factory.mktemp("deploy-worker")
    tag = uuid.uuid4().hex[:8]
    port = free_port()
    env = {**_base_env(tag, kafka), "TRANSITWATCH_WEB_PORT": str(port), "TRANSITWATCH_STATE_DIR": str(tmp / "state")}
    log = tmp / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "transitwatch.streams.cli", "worker"], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: _ready(proc, port, log), 120, "the worker's /ready", log)
        lines = tmp / "input.jsonl"
        lines.write_bytes(
            b'{"declaration_id": "m1", "date": "2022-03-01", "reporter": "DE", "partner": "KG", "hs_code": "85423190", "value": 1000}\n'
            b'{"declaration_id": "m2", "date": "2022-03-02", "reporter": "DE", "partner": "AM", "hs_code": "854232", "value": 2000}\n'
            b'{"declaration_id": "m3", "date": "2022-03-03", "reporter": "PL", "partner": "KZ", "hs_code": "854239", "value": 3000}\n'
            b'{"period": "2022-03", "reporter": "DE", "partner": "AM", "hs_code": "854232", "value": 5000}\n'
            b'this is not json\n'
        )
        settings = Settings(**{k.removeprefix("TRANSITWATCH_").lower(): v for k, v in env.items()
                               if k.startswith("TRANSITWATCH_")}, _env_file=None)
        asyncio.run(produce([lines], settings))

        def counted() -> list | None:
            families = _families(port)
            consumed = _sample(families, "transitwatch_records_consumed_total", kind="declarations") or 0
            rejected = sum(s.value for f in families for s in f.samples
                           if s.name == "transitwatch_records_rejected_total")
            monthly = _sample(families, "transitwatch_records_consumed_total", kind="monthly") or 0
            lag = _sample(families, "transitwatch_consumer_lag_messages", kind="declarations")
            return families if consumed >= 4 and monthly >= 1 and rejected >= 1 and lag is not None else None

        yield _wait(counted, 90, "the records to be counted", log)
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def notifier(kafka, tmp_path_factory) -> Iterator[list]:
    """A live notifier's parsed /metrics after one alert went through it to an SMTP server."""
    from aiosmtpd.controller import Controller

    class Mailbox:
        def __init__(self) -> None:
            self.count = 0

        async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's name
            self.count += 1
            return "250 OK"

    tmp = tmp_path_factory.mktemp("deploy-notifier")
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    config = tmp / "notify.toml"
    config.write_text(
        '[global]\nsmtp_smarthost = "127.0.0.1:%d"\nsmtp_from = "transitwatch@localhost"\nsmtp_tls = "none"\n'
        '[route]\nreceiver = "mail"\ngroup_wait = "1s"\n'
        '[[receivers]]\nname = "mail"\ntype = "email"\nto = ["analysts@localhost"]\n' % smtp.port)
    tag = uuid.uuid4().hex[:8]
    port = free_port()
    env = {**_base_env(tag, kafka), "TRANSITWATCH_NOTIFY_WEB_PORT": str(port),
           "TRANSITWATCH_NOTIFY_CONFIG": str(config)}
    log = tmp / "notifier.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "transitwatch.streams.cli", "notify"], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: _ready(proc, port, log), 120, "the notifier's /ready", log)
        alert = {
            "alert_id": f"tw-deploy{tag}", "series_id": "DE>AM export 854232", "reporter": "DE", "partner": "AM",
            "flow": "export", "hs6": "854232", "hs_description": "Electronic integrated circuits: memories",
            "chpl_tier": "1", "period": "2022-04", "detectors": ["seasonal_surge"], "score": 6.5,
            "severity": "high", "observed_value": 812000.0, "baseline_value": 120000.0, "observed_count": None,
            "baseline_count": None, "ratio": 6.77, "p_value": 1e-6, "currency": "EUR", "top_exporters": [],
            "top_consignees": [], "corroborating_reporters": [], "early": False, "as_of": "2022-04-30",
            "explanation": "Germany's exports to Armenia of HS 854232 reached EUR 812.0k in 2022-04.",
            "evidence": {},
        }
        asyncio.run(_publish(kafka.bootstrap, env["TRANSITWATCH_ALERTS_TOPIC"], [orjson.dumps(alert)]))

        def delivered() -> list | None:
            families = _families(port)
            ok = _sample(families, "transitwatch_notify_deliveries_total", receiver_type="email", outcome="delivered")
            return families if ok and ok >= 1 and mailbox.count >= 1 else None

        yield _wait(delivered, 90, "the alert to be delivered", log)
    finally:
        _stop(proc)
        smtp.stop()


def _missing(used: dict[str, list[str]], exported: set[str]) -> str:
    return "\n".join(f"{name} (used in {', '.join(sorted(set(where)))})"
                     for name, where in sorted(used.items()) if name not in exported)


def test_every_worker_metric_used_by_rules_and_dashboards_is_exported(worker):
    used = {n: w for n, w in used_metric_names().items() if not n.startswith("transitwatch_notify_")}
    assert len(used) >= 12, "the extractor found too few names: is it broken?"
    missing = _missing(used, exported_series(worker))
    assert not missing, f"not exported by a live worker:\n{missing}"


def test_every_notifier_metric_used_by_rules_and_dashboards_is_exported(notifier):
    used = {n: w for n, w in used_metric_names().items() if n.startswith("transitwatch_notify_")}
    assert len(used) >= 6, "the extractor found too few names: is it broken?"
    missing = _missing(used, exported_series(notifier))
    assert not missing, f"not exported by a live notifier:\n{missing}"


def _selectors() -> Iterator[tuple[str, str, set[str]]]:
    """(where, metric, label names matched) of every selector with matchers in rules and dashboards."""
    exprs = [(w, e) for w, e in rule_expressions()] + [(f"{b} {w}", e) for b, w, e in dashboard_queries()]
    for where, expr in exprs:
        for metric, matchers in re.findall(r"(?<![\w:])(transitwatch_\w+)\s*\{([^{}]*)\}", strip_strings(expr)):
            yield where, metric, set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))


@pytest.mark.parametrize("process", ["worker", "notifier"])
def test_the_labels_selectors_match_on_are_the_exported_ones(process, request):
    families = request.getfixturevalue(process)
    labels: dict[str, set[str]] = {}
    for f in families:
        for s in f.samples:
            labels.setdefault(s.name, set()).update(s.labels)
    checked = 0
    for where, metric, names in _selectors():
        if (metric.startswith("transitwatch_notify_")) != (process == "notifier") or metric not in labels:
            continue
        unknown = names - labels[metric] - SCRAPE_LABELS
        assert not unknown, f"{where}: {metric} has no label {unknown} (it has {sorted(labels[metric])})"
        checked += 1
    assert checked >= 3


def test_the_worker_counted_the_test_traffic_with_its_labels(worker):
    assert _sample(worker, "transitwatch_records_consumed_total", kind="declarations") >= 4
    reasons = {s.labels["reason"] for f in worker for s in f.samples if s.name == "transitwatch_records_rejected_total"}
    assert reasons, "the bad line was not counted as rejected"
    assert _sample(worker, "transitwatch_worker_ready") == 1
