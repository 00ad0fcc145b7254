"""``transitwatch desk``: the analyst's desk over a replay's alerts.

``transitwatch.streams.cli`` loads this module through ``COMMAND_MODULES``. Exit codes: 0 done,
2 cannot start (the alerts or feedback file cannot be read, the port is taken).
"""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

from rich.console import Console
from rich.markup import escape

DEFAULT_PORT = 6068
FEEDBACK_TOPIC = "transitwatch.feedback"
BROKER_REFRESH = 30.0  # seconds between reads of the alerts topic, by default


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("desk", help="triage cases and give feedback in the browser (the analyst's desk)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--alerts", metavar="FILE",
                        help="the alert records of a replay (JSON Lines, `replay --alerts-out`)")
    source.add_argument("--broker", metavar="URL",
                        help="read the service's alerts topic instead (Kafka URL, e.g. kafka://127.0.0.1:9092) and "
                             "follow it (see --refresh)")
    p.add_argument("--feedback", metavar="FILE.sqlite",
                   help="keep feedback in this SQLite file (default: next to the alerts file, FILE.feedback.sqlite; "
                        "with --broker, the feedback topic)")
    p.add_argument("--feedback-topic", metavar="NAME",
                   help=f"with --broker: the compacted topic of feedback, which the notifier reads too (default: "
                        f"TRANSITWATCH_FEEDBACK_TOPIC, else {FEEDBACK_TOPIC})")
    p.add_argument("--input", action="append", metavar="FILE",
                   help="the replay's input (repeatable): case pages then draw every month of the lanes, not only "
                        "the months of alert records")
    p.add_argument("--refresh", type=_seconds, metavar="SECONDS",
                   help="read the alerts again every SECONDS: new records become cases and open list pages offer "
                        f"them (default {BROKER_REFRESH:g} with --broker, reading only what is new; 0 with --alerts; "
                        "0 = never)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--suppress-months", type=int, default=6, metavar="N",
                   help="a dismissed lane stays suppressed N months after the month seen, unless it escalates (default 6)")
    p.add_argument("--export-feedback", metavar="FILE",
                   help="write all feedback as JSON Lines to FILE and exit (no server)")
    p.set_defaults(handler=desk_command, extra="desk")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (value == 0 or 1 <= value <= 86_400):
        raise argparse.ArgumentTypeError(f"{text} must be 0 (never) or 1 to 86400 seconds")
    return value


def feedback_path(alerts: str, feedback: str | None) -> Path:
    return Path(feedback) if feedback else Path(alerts).with_name(Path(alerts).name + ".feedback.sqlite")


def _store(args: argparse.Namespace):
    """The feedback store and where it is, for the start-up line."""
    from transitwatch.streams.feedback import SqliteFeedbackStore

    if args.feedback or args.alerts:
        path = feedback_path(args.alerts, args.feedback)
        return SqliteFeedbackStore(path), str(path)
    from transitwatch.streams.feedback_topic import KafkaFeedbackStore
    from transitwatch.streams.settings import Settings

    settings = Settings.from_options(broker=args.broker)
    topic = args.feedback_topic or settings.feedback_topic
    return KafkaFeedbackStore(settings.bootstrap_servers, topic), f"topic {topic}"


def _source(args: argparse.Namespace):
    if args.alerts:
        from transitwatch.streams.desk.cases import JsonLinesCaseSource

        return JsonLinesCaseSource(args.alerts)
    from transitwatch.streams.desk.kafka import KafkaCaseSource
    from transitwatch.streams.settings import Settings

    settings = Settings.from_options(broker=args.broker)
    return KafkaCaseSource(settings.bootstrap_servers, settings.alerts_topic)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def desk_command(args: argparse.Namespace) -> int:
    from aiohttp import web
    from pydantic import ValidationError

    from transitwatch.streams.desk.app import make_app
    from transitwatch.streams.desk.cases import CaseSourceError
    from transitwatch.streams.desk.model import Desk
    from transitwatch.streams.feedback import (
        FeedbackError,
        FeedbackStoreError,
        to_jsonl,
    )

    console = Console(stderr=True, emoji=False, highlight=False, soft_wrap=True)
    store = None
    try:
        store, where = _store(args)
        if args.export_feedback:
            Path(args.export_feedback).write_bytes(to_jsonl(store.all()))
            store.close()
            console.print(f"feedback written to {escape(args.export_feedback)}")
            return 0
        desk = Desk(_source(args), store, suppress_months=args.suppress_months)
        if args.input:
            from transitwatch.streams.files import check_inputs

            check_inputs(args.input)
            inputs = desk.read_inputs(args.input)
            console.print(f"input: {len(inputs.lanes)} lanes of the alerts' reporters and codes"
                          + (f", {inputs.rejected} lines rejected" if inputs.rejected else ""))
    except (CaseSourceError, FeedbackStoreError, FeedbackError, OSError, ValidationError) as exc:
        console.print(f"[red]cannot start the desk:[/red] {escape(str(exc))}")
        if store is not None:
            store.close()
        return 2
    if desk.bad:
        first = desk.bad[0]
        console.print(f"[yellow]{len(desk.bad)} lines of {escape(desk.source.description)} are not alert records[/yellow] "
                      f"(first: {escape(first.where)}: {escape(first.reason)}); the desk shows the others")
    if not _is_loopback(args.host):
        console.print(f"[yellow]listening on {escape(args.host)}: anyone who reaches it can read the cases and "
                      "give feedback (the desk has no login)[/yellow]")
    refresh = args.refresh if args.refresh is not None else (BROKER_REFRESH if args.broker else 0.0)
    console.print(f"desk: {len(desk.cases)} cases from {escape(desk.source.description)}"
                  + (f" (read again every {refresh:g} s)" if refresh else "")
                  + f", feedback in {escape(where)}; http://{args.host}:{args.port}/")
    try:
        web.run_app(make_app(desk, refresh), host=args.host, port=args.port, print=None, handle_signals=True)
    except OSError as exc:
        console.print(f"[red]cannot listen on {escape(args.host)}:{args.port}:[/red] {escape(str(exc))}")
        return 2
    finally:
        store.close()
    return 0
