"""The ``transitwatch`` command."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from transitwatch import __version__
from transitwatch.data import SAMPLE, SAMPLE_CONFIG
from transitwatch.detectors.errors import ConfigError, StrictModeError
from transitwatch.detectors.formats import FORMATS
from transitwatch.streams.extras import MissingExtraError, extra_of, require, require_for_config

# Modules that add their own subcommands: each has ``add_commands(subparsers)`` and sets
# ``handler`` (``args -> exit code``) on its parsers with ``set_defaults``.
COMMAND_MODULES: tuple[str, ...] = ("transitwatch.streams.worker", "transitwatch.streams.demo", "transitwatch.streams.notify.cli",
                                     "transitwatch.streams.desk.cli")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="transitwatch",
        description="Flag surges of high-tech and dual-use exports to Russia's neighbours.",
    )
    parser.add_argument("--version", action="version", version=f"transitwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    rp = sub.add_parser("replay", help="run the detectors over files (no broker needed)")
    rp.add_argument("inputs", nargs="*", metavar="INPUT", help="JSON Lines or CSV files, gzip or not")
    rp.add_argument("--sample", action="store_true",
                    help="replay the shipped Eurostat sample (with its configuration unless --config is given)")
    rp.add_argument("--alerts-out", metavar="FILE", help="write alerts as JSON Lines")
    rp.add_argument("--report", metavar="FILE.html",
                    help="write a self-contained HTML report of the cases: filters, sorting, search, a chart per lane")
    rp.add_argument("--rejects-out", metavar="FILE", help="write rejected lines with line number and reason")
    rp.add_argument("--config", metavar="FILE", help="watch configuration (TOML); defaults are shipped")
    rp.add_argument(
        "--format", choices=FORMATS, default=None,
        help="how to read the inputs: auto (default: the container from the name or first bytes, the layout from "
        "the header), jsonl, csv, parquet (transitwatch's columns, or [input.columns] of --config), or a layout: "
        "comext (Eurostat Comext bulk), comext-extract, comtrade (UN Comtrade API v1), comtrade-legacy; overrides "
        "[input] format",
    )
    rp.add_argument("--strict", action="store_true", help="stop with an error at the first rejected line")
    rp.add_argument(
        "--final-month",
        choices=("auto", "closed", "open"),
        default="auto",
        help="the input's last month: auto (default) closes it when it is complete (monthly statistics, or "
        "declarations up to its last day) or older than the present month, and says so in the summary; "
        "closed closes it; open leaves it in progress, as the service sees the present",
    )
    rp.add_argument(
        "--window",
        choices=("auto", "stream", "all"),
        default="auto",
        help="how records are held: stream runs each month once the input is 3 days past it and forgets its records "
        "(later ones are late, as in the service); all holds every record and sorts them; auto (default) streams "
        "an input whose first 262,144 records are in time order and holds any other whole",
    )
    rp.add_argument("--quiet", action="store_true", help="no progress bar (and no line count before the run)")
    pp = sub.add_parser("produce", help="publish input files to the service's Kafka topics")
    pp.add_argument("inputs", nargs="+", metavar="FILE", help="JSON Lines or CSV files, gzip or not")
    pp.add_argument("--rate", type=float, metavar="N", help="at most N messages a second")
    pp.add_argument("--config", metavar="FILE", help="watch configuration (TOML): its [input] says how files are read")
    pp.add_argument("--format", choices=FORMATS, default=None,
                    help="how to read the inputs, as for replay (default: [input] format, auto)")
    pp.add_argument("--broker", metavar="URL", help="Kafka URL, e.g. kafka://127.0.0.1:9092 (default: settings)")
    pp.add_argument("--quiet", action="store_true", help="no progress bar")
    pp.set_defaults(handler=_produce, extra="service")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "replay":
        if args.sample:
            args.inputs = [*args.inputs, str(SAMPLE)]
            args.config = args.config or str(SAMPLE_CONFIG)
        elif not args.inputs:
            parser.error("replay: give INPUT files or --sample")
        return _replay(args)
    try:
        return _run_command(args)
    except MissingExtraError as exc:
        Console(stderr=True, emoji=False, highlight=False, soft_wrap=True).print(f"[red]{escape(str(exc))}[/red]")
        return 2


def _run_command(args: argparse.Namespace) -> int:
    """Run a command's handler once the optional extra it declares is there (streams/extras.py)."""
    extra = getattr(args, "extra", None)
    if extra is not None:
        require(extra, args.command)
    try:
        return args.handler(args)
    except ModuleNotFoundError as exc:  # a module of an extra imported by a path ``extra=`` did not foresee
        needed = extra_of(exc.name, prefer=extra)
        if needed is None:
            raise
        raise MissingExtraError(args.command, needed, (exc.name or "?",)) from exc


def _inputs_readable(console: Console, paths: Sequence[str]) -> bool:
    """Say which input cannot be read (missing, a directory, not gzip, damaged), if one cannot."""
    from transitwatch.streams.files import check_inputs

    try:
        check_inputs(paths)
    except OSError as exc:
        console.print(f"[red]cannot read input:[/red] {escape(str(exc))}")
        return False
    return True


def _outputs_writable(console: Console, paths: Sequence[tuple[str, str | None]]) -> bool:
    """Check, before a run, that each output file can be written: a run of minutes must not end
    in a traceback because a folder is missing."""
    for option, path in paths:
        if not path:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            problem = "is a directory; give a file name"
        elif not os.path.isdir(folder):
            problem = f"its folder {folder} does not exist"
        elif not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
            problem = "cannot be written (permissions)"
        else:
            continue
        console.print(f"[red]cannot write {option} {escape(path)}:[/red] {escape(problem)}")
        return False
    return True


def _progress(console: Console, label: str, quiet: bool) -> Progress:
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, console=console, disable=quiet or not console.is_terminal)


def _settings(args: argparse.Namespace):
    from transitwatch.streams.settings import Settings

    return Settings.from_options(broker=getattr(args, "broker", None))


def _produce(args: argparse.Namespace) -> int:
    import asyncio

    from pydantic import ValidationError

    from transitwatch.streams.files import InputFileError
    from transitwatch.streams.produce import produce
    from transitwatch.streams.settings import Settings

    settings_error = Settings.explain
    from transitwatch.streams.replay import input_size

    console = Console(stderr=True, emoji=False, highlight=False, soft_wrap=True)
    try:
        settings = _settings(args)
    except ValidationError as exc:
        console.print(f"[red]settings error:[/red] {escape(settings_error(exc))}")
        return 2
    if args.rate is not None and not args.rate > 0:
        console.print("[red]--rate must be a number > 0[/red]")
        return 2
    from transitwatch.detectors.watch import WatchConfig

    try:
        config = WatchConfig.from_toml(Path(args.config).read_text("utf-8")) if args.config else WatchConfig.default()
    except (OSError, ConfigError) as exc:
        console.print(f"[red]configuration error:[/red] {escape(str(exc))}")
        return 2
    reader = config.reader if args.format is None else dataclasses.replace(config.reader, format=args.format)
    if not _inputs_readable(console, args.inputs):
        return 2
    with _progress(console, "publishing", args.quiet) as bar:
        task = bar.add_task("lines", total=input_size(args.inputs))
        try:
            result = asyncio.run(produce(args.inputs, settings, rate=args.rate, limits=config.input, reader=reader,
                                         progress=lambda n: bar.advance(task, n)))
        except InputFileError as exc:
            console.print(f"[red]cannot read input:[/red] {escape(str(exc))}")
            return 2
        except Exception as exc:  # noqa: BLE001 - a broker that cannot be reached is an operator error
            if type(exc).__module__.startswith("aiokafka"):
                console.print(f"[red]cannot publish to {escape(settings.broker)}:[/red] {escape(str(exc))}")
                return 2
            raise
    out = Console(emoji=False, highlight=False)
    for topic, n in sorted(result.sent.items()):
        out.print(f"{n:,} messages to {topic}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from transitwatch.streams.diagnose import verdict
    from transitwatch.streams.replay import charts, input_size, replay, write_alerts

    console = Console(stderr=True, emoji=False, highlight=False, soft_wrap=True)
    out = Console(emoji=False, highlight=False)
    try:
        from transitwatch.detectors.watch import WatchConfig  # the detectors load only for a command that runs them

        config = WatchConfig.from_toml(Path(args.config).read_text("utf-8")) if args.config else WatchConfig.default()
    except (OSError, ConfigError) as exc:
        console.print(f"[red]configuration error:[/red] {escape(str(exc))}")
        return 2
    try:
        require_for_config(config, "replay")
    except MissingExtraError as exc:
        console.print(f"[red]{escape(str(exc))}[/red] ([isolation] in_alerting_path = true)")
        return 2
    if args.format is not None:
        config = dataclasses.replace(config, reader=dataclasses.replace(config.reader, format=args.format))
    if not _inputs_readable(console, args.inputs):
        return 2
    outputs = [("--alerts-out", args.alerts_out), ("--report", args.report), ("--rejects-out", args.rejects_out)]
    if not _outputs_writable(console, outputs):
        return 2
    with _progress(console, "reading", args.quiet) as bar:
        # counting the lines reads every input once more: only for a bar that is shown
        task = bar.add_task("lines", total=None if bar.disable else input_size(args.inputs))
        try:
            result = replay(
                args.inputs,
                config=config,
                rejects_out=args.rejects_out,
                strict=args.strict,
                final_month=args.final_month,
                keep_snapshots=bool(args.report),
                progress=None if bar.disable else lambda n: bar.advance(task, n),
                window=args.window,
            )
        except StrictModeError as exc:
            console.print(f"[red]rejected (--strict):[/red] {escape(str(exc))}")
            return 3
        except OSError as exc:
            console.print(f"[red]cannot read input:[/red] {escape(str(exc))}")
            return 2
    summary = result.summary([str(p) for p in args.inputs])
    _print_summary(out, summary, result.alerts)
    unusable = verdict(args.inputs, result.lines, result.accepted, result.rejected, config.input.max_reject_share)
    if unusable is not None:
        console.print(f"[red]unusable input:[/red] {escape(str(unusable))}")
        if args.rejects_out and result.rejected:
            console.print(f"rejected lines written to {escape(args.rejects_out)}")
        console.print("no alerts or report written: the run did not see enough of its input to speak for it.")
        return 4
    if args.alerts_out:
        write_alerts(args.alerts_out, result.alerts)
        out.print(f"alerts written to {args.alerts_out}")
    if args.report:
        from transitwatch.streams.report import alert_records, write_report

        with _progress(console, "writing report", args.quiet) as bar:
            task = bar.add_task("cases", total=None)
            write_report(args.report, alert_records(result.alerts), charts(result), summary,
                         progress=lambda done, total: bar.update(task, completed=done, total=total))
        out.print(f"report written to {args.report}")
    if args.rejects_out and result.rejected:
        out.print(f"rejected lines written to {args.rejects_out}")
    return 0


def _print_summary(out: Console, summary: dict, alerts: list) -> None:
    table = Table(title="transitwatch replay", show_header=False)
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items()) or "none"
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        table.add_row(str(key), f"{value:,}" if isinstance(value, int) else str(value))
    out.print(table)
    if not alerts:
        return
    order = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    top = sorted(alerts, key=lambda a: (order[a.severity], -a.score))[:15]
    t = Table(title=f"top alerts ({len(alerts)} in all)")
    for col in ("severity", "period", "lane", "detectors", "observed", "expected", "ratio"):
        t.add_column(col)
    for a in top:
        t.add_row(
            a.severity + (" (early)" if a.early else ""),
            a.period,
            f"{a.reporter}>{a.partner} {a.hs6} (tier {a.chpl_tier or '-'})",
            ", ".join(a.detectors),
            f"{a.observed_value:,.0f}",
            "-" if a.baseline_value is None else f"{a.baseline_value:,.0f}",
            "-" if a.ratio is None else f"{a.ratio:.1f}x",
        )
    out.print(t)


if __name__ == "__main__":
    sys.exit(main())
