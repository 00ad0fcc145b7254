"""``transitwatch worker`` and ``transitwatch alerts``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import IO

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from transitwatch.detectors.errors import ConfigError
from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.settings import Settings


def add_commands(sub: argparse._SubParsersAction) -> None:
    wp = sub.add_parser("worker", help="run the always-on service (Faust worker)")
    wp.add_argument("--broker", metavar="URL", help="Kafka URL (default: settings)")
    wp.add_argument("--web-port", type=int, metavar="PORT", help="port of /metrics, /ready, /alerts")
    wp.add_argument("--state-dir", metavar="DIR", help="worker data directory")
    wp.add_argument("--partitions", type=int, metavar="N", help="partitions of the topics the worker creates")
    wp.add_argument("--config", metavar="FILE", help="watch configuration (TOML)")
    wp.add_argument("--loglevel", default="warning", choices=("debug", "info", "warning", "error"))
    wp.set_defaults(handler=run_worker)
    ap = sub.add_parser("alerts", help="print the alerts on the alerts topic as JSON Lines")
    ap.add_argument("--broker", metavar="URL", help="Kafka URL (default: settings)")
    ap.add_argument("--follow", action="store_true", help="keep printing new alerts until interrupted")
    ap.set_defaults(handler=run_alerts)


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with the command's options on top."""
    return Settings.from_options(
        broker=getattr(args, "broker", None),
        web_port=getattr(args, "web_port", None),
        state_dir=getattr(args, "state_dir", None),
        partitions=getattr(args, "partitions", None),
        watch_config=getattr(args, "config", None),
    )


def load_config(settings: Settings) -> WatchConfig:
    if settings.watch_config is None:
        return WatchConfig.default()
    return WatchConfig.from_toml(Path(settings.watch_config).read_text("utf-8"))


async def ensure_topics(settings: Settings) -> None:
    """Create the service's topics that do not exist yet: inputs, dead letters, alerts, and the
    two Faust would declare itself (the goods topic, the state changelog) but, on a broker that
    has just started, sometimes does not."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    from transitwatch.streams.service import STATE_TABLE

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        n, r = settings.partitions, settings.replication
        wanted = [NewTopic(t, n, r) for t in (settings.declarations_topic, settings.monthly_topic,
                                              settings.dead_letter_topic, settings.alerts_topic,
                                              settings.goods_topic)]
        wanted.append(NewTopic(f"{settings.app_id}-{STATE_TABLE}-changelog", n, r,
                               topic_configs={"cleanup.policy": "compact"}))
        new = [t for t in wanted if t.name not in existing]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:  # another worker starting at the same time
                pass
    finally:
        await admin.close()


def run_worker(args: argparse.Namespace) -> int:
    import faust

    from transitwatch.streams.service import create_app

    console = Console(stderr=True, emoji=False, highlight=False, soft_wrap=True)
    try:
        settings = settings_from(args)
        config = load_config(settings)
    except ValidationError as exc:
        console.print(f"[red]settings error:[/red] {escape(Settings.explain(exc))}")
        return 2
    except (OSError, ConfigError, ValueError) as exc:
        console.print(f"[red]configuration error:[/red] {escape(str(exc))}")
        return 2
    try:
        asyncio.run(ensure_topics(settings))
    except Exception as exc:  # noqa: BLE001 - an unreachable broker is an operator error
        console.print(f"[red]cannot reach Kafka at {escape(settings.broker)}:[/red] {escape(str(exc))}")
        return 2
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings, config)
    worker = faust.Worker(app, loglevel=args.loglevel.upper(), quiet=True)
    worker.execute_from_commandline()
    return 0


def run_alerts(args: argparse.Namespace) -> int:
    console = Console(stderr=True, emoji=False, highlight=False, soft_wrap=True)
    try:
        settings = settings_from(args)
    except ValidationError as exc:
        console.print(f"[red]settings error:[/red] {escape(Settings.explain(exc))}")
        return 2
    try:
        asyncio.run(print_alerts(settings, sys.stdout.buffer, follow=args.follow))
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # noqa: BLE001
        if type(exc).__module__.startswith("aiokafka"):
            console.print(f"[red]cannot read from {escape(settings.broker)}:[/red] {escape(str(exc))}")
            return 2
        raise
    return 0


async def print_alerts(settings: Settings, out: IO[bytes], *, follow: bool) -> int:
    """Write every alert on the topic (one JSON object a line); with ``follow``, keep going."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    written = 0
    try:
        parts = await consumer._client.fetch_all_metadata()  # noqa: SLF001
        tps = [TopicPartition(settings.alerts_topic, p)
               for p in sorted(parts.partitions_for_topic(settings.alerts_topic) or ())]
        if not tps:
            return 0
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        while True:
            if not follow and all([await consumer.position(tp) >= end[tp] for tp in tps]):
                return written
            batches = await consumer.getmany(timeout_ms=500)
            for tp in sorted(batches):
                for message in batches[tp]:
                    out.write(message.value + b"\n")
                    written += 1
            out.flush()
    finally:
        await consumer.stop()
