"""The notifier's commands: ``notify``, ``silence add|list|expire`` and ``redeliver``.

``transitwatch.streams.cli`` loads this module through ``COMMAND_MODULES``; each parser sets ``handler``
(``args -> exit code``). Exit codes: 0 done, 1 some alerts are still undelivered, 2 a
configuration, settings or broker problem (the message says which).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import signal
import time
from collections.abc import Callable, Coroutine
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

_BROKER_HELP = "Kafka URL, e.g. kafka://127.0.0.1:9092 (default: settings)"


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``notify``, ``silence`` and ``redeliver`` to the ``transitwatch`` command."""
    p = subparsers.add_parser("notify", help="deliver alerts to Slack, email and Alertmanager (runs until stopped)")
    p.add_argument("--config", metavar="FILE.toml", help="routing and receivers (default: TRANSITWATCH_NOTIFY_CONFIG)")
    p.add_argument("--broker", metavar="URL", help=_BROKER_HELP)
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.set_defaults(handler=notify_command)

    s = subparsers.add_parser("silence", help="mute alerts that match: add, list or expire silences")
    ss = s.add_subparsers(dest="silence_command", required=True)
    add = ss.add_parser("add", help="add a silence")
    add.add_argument("matchers", nargs="+", metavar="MATCHER",
                     help="label matchers, e.g. 'partner=\"KG\"' 'severity=~\"low|medium\"' 'detector!=\"ramp\"'")
    add.add_argument("--reason", required=True, help="why these alerts are muted")
    add.add_argument("--author", required=True, help="who mutes them")
    when = add.add_mutually_exclusive_group()
    when.add_argument("--duration", default="2h", help="how long from now or --start (default 2h), e.g. 30m, 2d")
    when.add_argument("--until", metavar="TIME", help="end, ISO 8601 (UTC unless it says), e.g. 2024-06-01T12:00")
    add.add_argument("--start", metavar="TIME", help="start, ISO 8601 (default: now)")
    add.add_argument("--broker", metavar="URL", help=_BROKER_HELP)
    add.set_defaults(handler=silence_add)
    ls = ss.add_parser("list", help="list active and pending silences")
    ls.add_argument("--all", action="store_true", help="also expired ones")
    ls.add_argument("--broker", metavar="URL", help=_BROKER_HELP)
    ls.set_defaults(handler=silence_list)
    ex = ss.add_parser("expire", help="end silences now")
    ex.add_argument("ids", nargs="+", metavar="ID")
    ex.add_argument("--broker", metavar="URL", help=_BROKER_HELP)
    ex.set_defaults(handler=silence_expire)

    r = subparsers.add_parser("redeliver", help="send the alerts of the undelivered topic again")
    r.add_argument("--config", metavar="FILE.toml", help="routing and receivers (default: TRANSITWATCH_NOTIFY_CONFIG)")
    r.add_argument("--receiver", metavar="NAME", help="only this receiver's alerts (the others are put back)")
    r.add_argument("--attempts", type=int, default=3, metavar="N", help="attempts per message (default 3)")
    r.add_argument("--unknown", choices=("keep", "resend", "drop"), default="keep",
                   help="alerts whose earlier send has an unknown outcome (the receiver may have them): put them "
                        "back (keep, default), send them (resend) or take them off the topic unsent (drop)")
    r.add_argument("--alert", action="append", metavar="ID", dest="alerts",
                   help="only this alert (repeatable); the others are put back")
    r.add_argument("--list", action="store_true", help="only list what is undelivered")
    r.add_argument("--broker", metavar="URL", help=_BROKER_HELP)
    r.set_defaults(handler=redeliver_command)


def _console() -> Console:
    return Console(stderr=True, emoji=False, highlight=False, soft_wrap=True)


def _settings(args: argparse.Namespace):
    from transitwatch.streams.settings import Settings

    return Settings.from_options(broker=getattr(args, "broker", None), notify_config=getattr(args, "config", None))


def _run(make: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run a coroutine; report configuration and broker problems as exit code 2."""
    from pydantic import ValidationError

    from transitwatch.detectors.errors import ConfigError, InvalidParameterError
    from transitwatch.streams.notify.kafkastate import StateTopicError

    err = _console()
    try:
        return asyncio.run(make())
    except ValidationError as exc:
        from transitwatch.streams.settings import Settings

        err.print(f"[red]settings error:[/red] {escape(Settings.explain(exc))}")
    except (ConfigError, InvalidParameterError, StateTopicError) as exc:
        err.print(f"[red]configuration error:[/red] {escape(str(exc))}")
    except Exception as exc:
        if type(exc).__module__.startswith("aiokafka"):
            err.print(f"[red]cannot use the Kafka broker:[/red] {escape(type(exc).__name__)}: {escape(str(exc))}")
        else:
            raise
    return 2


def _config(settings):
    from transitwatch.streams.notify.config import load_config
    from transitwatch.streams.notify.matchers import NotifyConfigError

    if settings.notify_config is None:
        raise NotifyConfigError("no routing configuration: pass --config FILE.toml or set TRANSITWATCH_NOTIFY_CONFIG "
                                "(see examples/notify.toml)")
    return load_config(settings.notify_config)


def notify_command(args: argparse.Namespace) -> int:
    """``transitwatch notify``: run until SIGTERM or SIGINT."""
    logging.basicConfig(level=getattr(logging, args.log_level), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)

    async def main() -> int:
        from transitwatch.streams.notify.service import Notifier

        settings = _settings(args)
        notifier = Notifier(settings, _config(settings))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await notifier.run(stop)
        return 0

    return _run(main)


def _when(text: str) -> float:
    from transitwatch.streams.notify.matchers import NotifyConfigError

    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise NotifyConfigError(f"{text!r} is not an ISO 8601 time such as 2024-06-01T12:00") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


async def _silences(settings):
    from transitwatch.streams.notify.kafkastate import COMPACTED, KafkaSilences, ensure_topics

    await ensure_topics(settings.bootstrap_servers, {settings.silences_topic: COMPACTED}, settings.notify_replication)
    store = KafkaSilences(settings.bootstrap_servers, settings.silences_topic)
    await store.tail.start()
    return store


async def _producer(settings):
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", enable_idempotence=False)
    await producer.start()
    return producer


def silence_add(args: argparse.Namespace) -> int:
    async def main() -> int:
        from transitwatch.streams.notify.matchers import parse_duration
        from transitwatch.streams.notify.silences import Silence

        settings = _settings(args)
        now = time.time()
        start = _when(args.start) if args.start else now
        end = _when(args.until) if args.until else start + parse_duration(args.duration, "--duration")
        silence = Silence.create(args.matchers, author=args.author, reason=args.reason, starts_at=start,
                                 ends_at=end, now=now)
        store = await _silences(settings)
        producer = await _producer(settings)
        try:
            await store.put(producer, silence)
        finally:
            await producer.stop()
            await store.tail.stop()
        print(silence.id)
        _console().print(f"silence {silence.id} {silence.state(now)} until {_iso(silence.ends_at)}: "
                         f"{escape(' '.join(map(str, silence.matchers)))}")
        return 0

    return _run(main)


def silence_list(args: argparse.Namespace) -> int:
    async def main() -> int:
        settings = _settings(args)
        store = await _silences(settings)
        await store.tail.stop()
        now = time.time()
        shown = [s for s in store.view.all() if args.all or s.state(now) != "expired"]
        table = Table(title=f"silences ({len(shown)})")
        for col in ("id", "state", "matchers", "starts", "ends", "author", "reason"):
            table.add_column(col)
        for s in shown:
            table.add_row(s.id, s.state(now), escape(" ".join(map(str, s.matchers))), _iso(s.starts_at),
                          _iso(s.ends_at), escape(s.author), escape(s.reason))
        Console(emoji=False, highlight=False, width=200).print(table)
        return 0

    return _run(main)


def silence_expire(args: argparse.Namespace) -> int:
    async def main() -> int:
        settings = _settings(args)
        store = await _silences(settings)
        producer = await _producer(settings)
        code = 0
        try:
            for silence_id in args.ids:
                silence = store.view.get(silence_id)
                if silence is None:
                    _console().print(f"[red]no silence {escape(silence_id)}[/red]")
                    code = 2
                    continue
                now = time.time()
                if silence.state(now) == "expired":
                    _console().print(f"silence {silence_id} had already expired")
                    continue
                await store.put(producer, silence.expired(now))
                _console().print(f"silence {silence_id} expired")
        finally:
            await producer.stop()
            await store.tail.stop()
        return code

    return _run(main)


def redeliver_command(args: argparse.Namespace) -> int:
    async def main() -> int:
        from transitwatch.streams.notify.redeliver import list_undelivered, redeliver

        settings = _settings(args)
        out = Console(emoji=False, highlight=False, width=200)
        if args.list:
            rows = await list_undelivered(settings)
            table = Table(title=f"undelivered alerts ({len(rows)})")
            for col in ("offset", "receiver", "alert", "early", "attempts", "last error"):
                table.add_column(col)
            for r in rows:
                table.add_row(str(r["offset"]), escape(str(r["receiver"])), escape(str(r["alert_id"])),
                              str(r["early"]), str(r["attempts"]), escape(str(r["reason"])[:120]))
            out.print(table)
            return 0
        if args.attempts < 1:
            _console().print("[red]--attempts must be >= 1[/red]")
            return 2
        config = _config(settings)
        if args.receiver is not None and args.receiver not in config.receivers:
            _console().print(f"[red]no receiver {escape(args.receiver)} in the configuration[/red]")
            return 2
        result = await redeliver(settings, config, receiver=args.receiver, attempts=args.attempts,
                                 unknown=args.unknown, alerts=frozenset(args.alerts) if args.alerts else None)
        out.print(f"{result.delivered} delivered, {result.already_delivered} already delivered, "
                  f"{result.failed_again} failed again, {result.put_back} put back, {result.unreadable} unreadable, "
                  f"{result.unknown_kept + result.unknown_found} unknown outcome(s) kept, "
                  f"{result.unknown_dropped} dropped")
        narrowed = args.receiver is not None or args.alerts
        return 1 if result.failed_again or result.unknown_kept or result.unknown_found or (
            result.put_back and not narrowed) else 0

    return _run(main)
