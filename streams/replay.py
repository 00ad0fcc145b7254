"""``transitwatch replay``: the detectors over files, with no broker.

Reads every input in chunks, sets rejected lines aside (rejects file, counted
per reason), and runs the columnar replay
(:class:`~transitwatch.detectors.columnar.ColumnarReplay`): the records sorted into event
order and put through the very same :class:`~transitwatch.detectors.engine.Engine` logic the
service runs record by record, with the same alerts and counts. Then it writes
alerts, a summary and an HTML report.

JSON Lines are read a chunk at a time by Arrow's C++ JSON reader and validated
column by column (:mod:`transitwatch.detectors.arrow`); a chunk Arrow cannot read line for
line is decoded with ``orjson`` and validated as objects (:mod:`transitwatch.detectors.frame`)
instead. Either way only lines not already in normalised form go through
:func:`~transitwatch.detectors.contract.parse_json_line` one by one.

What a run reads is bounded by ``[input]`` of the configuration
(:class:`~transitwatch.detectors.limits.InputLimits`): lines too long or nested too deep are
rejected before any parser sees them (:func:`~transitwatch.detectors.limits.screen_lines`), and
records of a month outside the run's time domain are rejected
(``date_out_of_range``) before their event day is computed, so the columnar replay
never walks across empty months to the year 9999.
"""

from __future__ import annotations

import datetime as dt
import gc
import io
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import orjson

from transitwatch.detectors.alerts import Alert, period_of
from transitwatch.detectors.arrow import plain_lines, split_data, split_lines
from transitwatch.detectors.columnar import ColumnarReplay, FinalMonth, Window
from transitwatch.detectors.contract import Declaration, Record, parse_json_line
from transitwatch.detectors.engine import MonthSnapshot
from transitwatch.detectors.errors import RejectError, StrictModeError
from transitwatch.detectors.frame import Block, complete, month_end_ordinal, parse_objects
from transitwatch.detectors.layouts import ReaderParams
from transitwatch.detectors.limits import InputLimits, TimeDomain, screen_lines
from transitwatch.detectors.reference import country_name
from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.files import Line, LongLine, check_inputs, count_lines, iter_jsonl_blocks, iter_records
from transitwatch.streams.tables import container, read_table_blocks

CHUNK_LINES = 8192
# After this many chunks in a row that Arrow could not read, a file is decoded with orjson only
# (a writer that always sends, say, numeric HS codes would otherwise pay for both readers).
ARROW_TRIES = 3
# JSON Lines are read by bytes: each chunk has fixed costs (Arrow, the block, ColumnarReplay.feed),
# and 8 MiB (about 32,000 declaration lines) was about 7 % faster than 2 MiB, for a few MiB more.
CHUNK_BYTES = 8 << 20
_LIMITS = InputLimits()
_READER = ReaderParams()
_RAW_BYTES = 8000  # of a rejected line kept for the rejects file (which shows 2,000 characters)


@dataclass
class ReplayResult:
    """What a replay produced and counted.

    ``lines`` non-blank lines (CSV: rows) were read: ``accepted`` of them became
    records and the others are ``rejected``, counted per reason key, so
    ``lines == accepted + sum(rejected.values())``.
    """

    alerts: list[Alert]
    lines: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    engine_counts: Counter[str] = field(default_factory=Counter)
    series: int = 0
    first_month: int | None = None
    last_month: int | None = None
    last_month_closed: bool = True
    final_month: str = ""  # what was decided about the last month, and why (``decide_final_month``)
    order: str = ""  # how the input was held, when it matters (``Outcome.order``)
    snapshots: list[MonthSnapshot] = field(default_factory=list)
    keys: list[Any] = field(default_factory=list)
    added_up: int = 0  # statistics rows added into another row of their lane and month (Comtrade, Comext)
    layouts: dict[str, str] = field(default_factory=dict)  # input -> how it was read

    def summary(self, inputs: Sequence[str]) -> dict[str, Any]:
        severities = Counter(a.severity for a in self.alerts)
        months = "none"
        if self.first_month is not None:
            months = f"{period_of(self.first_month)} to {period_of(self.last_month)}"
            if not self.last_month_closed:
                months += f" ({period_of(self.last_month)} in progress: early checks only)"
        final = {"final month": f"{period_of(self.last_month)} {self.final_month}"} if self.final_month else {}
        return {
            "inputs": list(inputs),
            "lines read": self.lines,
            "records accepted": self.accepted,
            "rejected": dict(sorted(self.rejected.items())) or 0,
            **({"read as": self.layouts} if any(v != "jsonl" for v in self.layouts.values()) else {}),
            **({"rows added up": self.added_up} if self.added_up else {}),
            **{k: v for k, v in sorted(self.engine_counts.items())},
            "series": self.series,
            "months": months,
            **final,
            **({"input order": self.order} if self.order else {}),
            "alerts": {s: severities.get(s, 0) for s in ("critical", "high", "medium", "low")},
            "early alerts": sum(a.early for a in self.alerts),
            "cases": self.case_counts(),
            "hub shifts": self.hub_shifts(),
            **self.common_shifts(),
        }

    def hub_shifts(self, show: int = 10) -> dict[str, Any] | int:
        """Hub shifts (``hub_shift``: most reporters' lanes of one HS6 into one hub up together),
        reported once each: one finding per hub and HS6, from its first month, with its widest
        month; the ``show`` earliest are described.

        >>> from types import SimpleNamespace
        >>> def a(period, reporter, rising):
        ...     return SimpleNamespace(reporter=reporter, partner="AM", flow="export", hs6="999999", period=period,
        ...                            detectors=("hub_shift",), evidence={"hub_shift_rising": rising,
        ...                            "hub_shift_reporters": 27, "hub_shift_ratio": 1.33})
        >>> ReplayResult(alerts=[a("2022-03", "DE", 15), a("2022-03", "FR", 15), a("2022-05", "DE", 24)]).hub_shifts()
        {'findings': 1, 'earliest': ["AM 999999 from 2022-03: 15 of 27 reporters' lanes up together (median x1.3); 2 months, widest 24 of 27"]}
        """  # noqa: E501 - doctest output, one line as printed
        found: dict[tuple[str, str, str], list[Alert]] = {}
        for alert in self.alerts:
            if "hub_shift" in alert.detectors:
                found.setdefault((alert.partner, alert.flow, alert.hs6), []).append(alert)
        if not found:
            return 0
        lines = []
        for (partner, flow, hs6), records in sorted(found.items(), key=lambda kv: (min(a.period for a in kv[1]), kv[0])):
            first = min(records, key=lambda a: a.period)
            widest = max(records, key=lambda a: (a.evidence.get("hub_shift_rising") or 0, a.period))
            ev, wide = first.evidence, widest.evidence
            months = len({a.period for a in records})
            lines.append(f"{partner} {hs6}{'' if flow == 'export' else ' ' + flow} from {first.period}: "
                         f"{ev.get('hub_shift_rising')} of {ev.get('hub_shift_reporters')} reporters' lanes up together "
                         f"(median x{ev.get('hub_shift_ratio') or 0:.1f}); {months} month{'s' if months > 1 else ''}, widest "
                         f"{wide.get('hub_shift_rising')} of {wide.get('hub_shift_reporters')}")
        return {"findings": len(found), "earliest": lines[:show]}

    def shifts(self) -> dict[str, list[Any]]:
        """Reporter shifts (``"reporter"``) and hub-wide shifts across goods (``"partner"``) of
        :mod:`transitwatch.detectors.shifts`, read from the month snapshots of every lane (none without them)."""
        from transitwatch.detectors.shifts import common_shifts

        if not self.snapshots or not self.keys:
            return {"reporter": [], "partner": []}
        n, t = len(self.keys), len(self.snapshots)
        value, expected = np.full((n, t), np.nan), np.full((n, t), np.nan)
        for j, snap in enumerate(self.snapshots):
            rows = snap.value.shape[0]
            value[:rows, j], expected[:rows, j] = snap.value, snap.expected
        keys = [(k.reporter, k.partner, k.hs6) for k in self.keys]
        return {side: common_shifts(keys, first=self.snapshots[0].month, value=value, expected=expected, side=side)
                for side in ("reporter", "partner")}

    def common_shifts(self, show: int = 10) -> dict[str, Any]:
        """The summary's rows of :meth:`shifts`: each shift found once, described, with the cases
        opened on its lanes since. Empty without snapshots."""
        if not self.snapshots or not self.keys:
            return {}
        every = self.shifts()
        onsets: dict[tuple[str, str, str], dict[str, str]] = {}  # lane -> case id -> its onset
        for a in self.alerts:
            if a.case_id:
                onsets.setdefault((a.reporter, a.partner, a.hs6), {})[a.case_id] = a.case_onset
        out: dict[str, Any] = {}
        for side, label in (("reporter", "reporter shifts"), ("partner", "hub-wide shifts")):
            found = every[side]
            each = []
            for f in found[:show]:
                covered = {c for lane in f.members for c, onset in onsets.get(lane, {}).items() if onset >= f.period}
                each.append(f"{f.describe()}; {len(covered)} case{'' if len(covered) == 1 else 's'} opened on "
                            "those lanes since: read them against the shift")
            out[label] = {"findings": len(found), "each": each} if found else 0
        return out

    def case_counts(self) -> dict[str, int] | int:
        """Cases by where they stand at the end of the run (each case's last record), and
        by the highest severity they reached."""
        last: dict[str, Alert] = {}
        for alert in self.alerts:
            if alert.case_id:
                last[alert.case_id] = alert
        if not last:
            return 0
        status = Counter("closed" if a.case_status == "closed" else "open" for a in last.values())
        worst = Counter(a.case_severity for a in last.values())
        return {"open": status["open"], "closed": status["closed"],
                **{f"reached {s}": worst[s] for s in ("critical", "high", "medium", "low") if worst[s]}}


class _Rejects:
    """Writes rejected lines (JSON Lines) and counts them per reason."""

    def __init__(self, stream: IO[bytes] | None, strict: bool, counts: Counter[str]) -> None:
        self.stream = stream
        self.strict = strict
        self.counts = counts

    def __call__(self, line: Line, error: RejectError) -> None:
        if self.strict:
            raise StrictModeError(line.source, line.number, error)
        self.counts[error.key] += 1
        if self.stream is not None:
            self.stream.write(orjson.dumps({
                "source": line.source, "line": line.number, "reason": error.reason,
                "field": error.field, "message": error.message, "raw": line.raw,
            }) + b"\n")


def _event_key(rec: Record) -> int:
    if type(rec) is Declaration:
        return rec.date.toordinal()
    return month_end_ordinal(rec.month)


def read_records(
    inputs: Sequence[str | os.PathLike[str]],
    reject: Callable[[Line, RejectError], None],
    progress: Callable[[int], None] | None = None,
    *,
    limits: InputLimits = _LIMITS,
    domain: TimeDomain | None = None,
) -> Iterator[tuple[int, int, int, Record]]:
    """Every accepted record of every input as ``(event key, input index, line
    number, record)``, read line by line; the line itself is not kept (memory).

    ``limits`` bound what is read; ``domain``, if given, rejects records of other months."""
    done = 0
    for index, path in enumerate(inputs):
        source = os.fspath(path)
        for number, content, parsed in iter_records(path, limits=limits, domain=domain):
            done += 1
            if progress is not None and done % 4096 == 0:
                progress(4096)
            if isinstance(parsed, RejectError):
                reject(Line(source, number, content), parsed)
            else:
                yield _event_key(parsed), index, number, parsed
    if progress is not None:
        progress(done % 4096)


def read_blocks(
    inputs: Sequence[str | os.PathLike[str]],
    run: ColumnarReplay,
    reject: Callable[[Line, RejectError], None],
    progress: Callable[[int], None] | None = None,
    *,
    chunk: int = CHUNK_LINES,
    chunk_bytes: int = CHUNK_BYTES,
    limits: InputLimits = _LIMITS,
    domain: TimeDomain | None = None,
    reader: ReaderParams = _READER,
    result: ReplayResult | None = None,
) -> int:
    """Feed every accepted record of every input to ``run``, a chunk at a time;
    rejected lines go to ``reject`` in file order. Returns the accepted count.

    A chunk is about ``chunk_bytes`` of JSON Lines or CSV (whole lines), or a Parquet batch;
    CSV and Parquet are read column-wise (:mod:`transitwatch.streams.tables`) in the layout ``reader``
    names or the header shows (:mod:`transitwatch.detectors.layouts`). ``limits`` bound what is read (a
    line too long or too deep is a reject); ``domain``, if given, rejects records of other
    months before anything computes their event day. ``result``, if given, gets the
    layout each input was read with and the statistics rows added up."""
    accepted = 0
    for index, path in enumerate(inputs):
        source = os.fspath(path)
        kind = container(path, reader)
        if kind == "jsonl":
            if result is not None:
                result.layouts[source] = "jsonl"
            failures = 0
            for first, data, ends in iter_jsonl_blocks(path, chunk_bytes, limits):
                if isinstance(data, LongLine):
                    reject(Line(source, first, data.head), data.reject(limits.max_line_bytes))
                    if progress is not None:
                        progress(1)
                    continue
                n, by_arrow = _feed_jsonl(run, index, source, first, data, reject, progress,
                                          arrow=failures < ARROW_TRIES, limits=limits, domain=domain, ends=ends)
                accepted += n
                failures = 0 if by_arrow else failures + 1
        else:
            accepted += _read_table_file(run, index, path, kind, reject, progress, reader=reader, limits=limits,
                                         domain=domain, chunk_bytes=chunk_bytes, result=result)
    return accepted


def _read_table_file(
    run: ColumnarReplay,
    index: int,
    path: str | os.PathLike[str],
    kind: str,
    reject: Callable[[Line, RejectError], None],
    progress: Callable[[int], None] | None,
    *,
    reader: ReaderParams,
    limits: InputLimits,
    domain: TimeDomain | None,
    chunk_bytes: int,
    result: ReplayResult | None,
) -> int:
    """A CSV or Parquet file through its layout and the contract (:func:`transitwatch.streams.tables.read_table_blocks`).
    Returns the rows accepted."""
    source = os.fspath(path)
    accepted = 0
    with _no_gc():
        for piece in read_table_blocks(path, reader, limits=limits, domain=domain, chunk_bytes=chunk_bytes):
            for number, content, error in piece.rejects:
                reject(Line(source, number, content), error)
            run.feed(piece.block, source=index, lines=piece.lines)
            if progress is not None:
                progress(piece.rows)
            accepted += len(piece.block) + piece.added
            if result is not None:
                result.added_up += piece.added
                result.layouts[source] = piece.layout
    return accepted


def _feed_records(run: ColumnarReplay, index: int, records: list[Record], numbers: list[int],
                  progress: Callable[[int], None] | None) -> int:
    run.feed(Block.from_records(records), source=index, lines=np.array(numbers, dtype=np.int64))
    if progress is not None:
        progress(len(records))
    return len(records)


def _feed_jsonl(
    run: ColumnarReplay,
    index: int,
    source: str,
    first: int,
    data: bytes,
    reject: Callable[[Line, RejectError], None],
    progress: Callable[[int], None] | None,
    *,
    arrow: bool = True,
    limits: InputLimits = _LIMITS,
    domain: TimeDomain | None = None,
    ends: np.ndarray | None = None,
) -> tuple[int, bool]:
    """Feed one chunk of whole lines (``first`` the number of its first line; ``ends`` the
    positions of its newlines, if known); returns (records accepted, whether Arrow read it).

    Lines too long or too deep are set aside first: neither Arrow (whose reader can
    crash on deep nesting) nor orjson ever sees them."""
    with _no_gc():
        screened = screen_lines(data, limits, ends)
        plain = plain_lines(data, ends) if arrow and not screened else None
        if plain is not None:  # the usual layout: no blank lines, row i is line i
            split = split_data(data, plain)
            lines: list[bytes] = io.BytesIO(data).readlines() if split is None or split[1].any() else []
            numbers = np.arange(first, first + plain, dtype=np.int64)
        else:
            lines = io.BytesIO(data).readlines()
            kept, numbers = _non_blank(lines, first, [i for i, _ in screened])
            split = split_lines(kept) if arrow else None
            lines = kept
        set_aside = [(first + i, _line_start(data, i, ends), error) for i, error in screened] if screened else []
        if split is None:  # Arrow cannot read it line for line: orjson can say what is wrong where
            return _decode_jsonl(run, index, source, first, lines, numbers, reject, progress, set_aside,
                                 domain), False
        block, rejected = complete(*split, lambda i: parse_json_line(lines[i]), domain=domain)
        if rejected and not lines:  # a fast row out of the time domain
            lines = io.BytesIO(data).readlines()
        return _feed(run, index, source, lines, numbers, block, rejected, reject, progress, set_aside), True


def _line_start(data: bytes, i: int, ends: np.ndarray | None) -> bytes:
    """The start of line ``i`` (0-based) of a chunk, enough for the rejects file."""
    if ends is None:
        ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    start = int(ends[i - 1]) + 1 if i else 0
    return data[start : start + _RAW_BYTES]


def _non_blank(lines: list[bytes], first: int, skip: Sequence[int] = ()) -> tuple[list[bytes], np.ndarray]:
    """The lines that are neither blank nor among ``skip`` (positions), and their numbers."""
    if skip or any(map(bytes.isspace, lines)):
        dropped = set(skip)
        where = [i for i, line in enumerate(lines) if not line.isspace() and i not in dropped]
        return [lines[i] for i in where], np.array(where, dtype=np.int64) + first
    return lines, np.arange(first, first + len(lines), dtype=np.int64)


@contextmanager
def _no_gc() -> Iterator[None]:
    """Decoding a chunk builds tens of thousands of dicts, none of them in a cycle: without
    this, the cyclic collector would sweep them again and again (a third of the time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _decode_jsonl(
    run: ColumnarReplay,
    index: int,
    source: str,
    first: int,
    lines: list[bytes],
    numbers: np.ndarray,
    reject: Callable[[Line, RejectError], None],
    progress: Callable[[int], None] | None,
    set_aside: list[tuple[int, bytes, RejectError]],
    domain: TimeDomain | None,
) -> int:
    """``lines`` (non-blank, numbered ``numbers``) decoded by orjson and validated as objects."""
    loads = orjson.loads
    try:
        objs = [loads(line) for line in lines]
    except orjson.JSONDecodeError:  # a broken line somewhere: sort them out one by one
        objs = []
        for line in lines:
            try:
                objs.append(loads(line))
            except orjson.JSONDecodeError:
                objs.append(None)  # not a dict: parse_json_line says what is wrong
    block, rejected = parse_objects(objs, lines, domain=domain)
    return _feed(run, index, source, lines, numbers, block, rejected, reject, progress, set_aside)


def _feed(
    run: ColumnarReplay,
    index: int,
    source: str,
    lines: list[bytes],
    numbers: np.ndarray,
    block: Block,
    rejected: list[tuple[int, RejectError]],
    reject: Callable[[Line, RejectError], None],
    progress: Callable[[int], None] | None,
    set_aside: Sequence[tuple[int, bytes, RejectError]] = (),
) -> int:
    """Report the chunk's rejects in file order (``set_aside``: lines screened out before
    parsing, as (number, start of the line, reject)) and feed its block."""
    found = [(int(numbers[i]), lines[i], error) for i, error in rejected]
    if set_aside:
        found = sorted([*found, *set_aside], key=lambda item: item[0])
    for number, content, error in found:
        reject(Line(source, number, content), error)
    run.feed(block, source=index, lines=numbers[block.index])
    if progress is not None:
        progress(len(numbers) + len(set_aside))
    return len(block)


def replay(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    config: WatchConfig | None = None,
    rejects_out: str | os.PathLike[str] | None = None,
    strict: bool = False,
    final_month: FinalMonth = "auto",
    keep_snapshots: bool = True,
    progress: Callable[[int], None] | None = None,
    today: dt.date | None = None,
    to_date: bool = True,
    window: Window = "auto",
) -> ReplayResult:
    """Run the detectors over ``inputs`` and return alerts and counts.

    What is read is bounded by ``config.input`` (:class:`~transitwatch.detectors.limits.InputLimits`):
    a record of a month outside ``config.input.domain(today)`` is a ``date_out_of_range``
    reject; ``today`` defaults to the clock's date (read here, never in ``detectors``).

    Raises
    ------
    transitwatch.streams.files.InputFileError
        An ``OSError``: an input cannot be read (checked before any work where possible).

    ``final_month``: ``auto`` (the default) decides from the data and the present
    (``today``): the last month of the input is closed when it is complete (monthly
    statistics, or declarations up to its last day) or older than the present month,
    and stays in progress otherwise; ``closed`` closes it; ``open`` leaves it in
    progress, as the service sees the present. A last month left in progress is
    checked as of its latest declaration (the data to date) unless ``to_date`` is
    false: then it keeps only the checks of the check days its records passed, which
    is what the service, whose input never ends, has done at that point.
    ``ReplayResult.final_month`` (and the summary's "final month") says what was
    decided and why. ``window`` is how the records are held
    (:class:`~transitwatch.detectors.columnar.ColumnarReplay`): ``auto`` streams month by
    month an input in time order and holds one that is not whole; ``stream``, ``all`` as asked.
    """
    limits = config.input if config is not None else _LIMITS
    check_inputs(inputs)

    reader = config.reader if config is not None else _READER

    def feed(run: ColumnarReplay, reject: Callable[[Line, RejectError], None], domain: TimeDomain,
             result: ReplayResult) -> int:
        return read_blocks(inputs, run, reject, progress, limits=limits, domain=domain, reader=reader, result=result)

    return run_feed(feed, [os.fspath(p) for p in inputs], config=config, rejects_out=rejects_out, strict=strict,
                    final_month=final_month, keep_snapshots=keep_snapshots, today=today, to_date=to_date,
                    window=window)


#: What feeds a run: (the run, where rejected lines go, the months accepted, the result to note
#: what was read in) -> records accepted.
Feed = Callable[[ColumnarReplay, Callable[[Line, RejectError], None], TimeDomain, "ReplayResult"], int]


def run_feed(
    feed: Feed,
    sources: Sequence[str],
    *,
    config: WatchConfig | None = None,
    rejects_out: str | os.PathLike[str] | None = None,
    strict: bool = False,
    final_month: FinalMonth = "auto",
    keep_snapshots: bool = True,
    today: dt.date | None = None,
    to_date: bool = True,
    window: Window = "auto",
) -> ReplayResult:
    """The one core of every replay: ``feed`` puts the records of ``sources`` (their names, for
    the rejects file) through a :class:`~transitwatch.detectors.columnar.ColumnarReplay`, then the
    run closes its months and the result is counted. :func:`replay` feeds it files;
    :func:`transitwatch.detect` feeds it a DataFrame. Arguments as :func:`replay`'s."""
    limits = config.input if config is not None else _LIMITS
    today = today if today is not None else dt.date.today()
    domain = limits.domain(today)
    result = ReplayResult(alerts=[])
    snapshots = result.snapshots if keep_snapshots else None
    run = ColumnarReplay(config, on_close=snapshots.append if snapshots is not None else None, window=window)
    with ExitStack() as stack:
        stream = stack.enter_context(open(rejects_out, "wb")) if rejects_out else None
        reject = _Rejects(stream, strict, result.rejected)
        accepted = feed(run, reject, domain, result)
        result.lines = accepted + sum(result.rejected.values())
        outcome = run.run(final_month=final_month, today=today, to_date=to_date)
        for index, number, record, error in outcome.rejects:  # no exchange rate, in event order
            reject(Line(sources[index], number, orjson.dumps(record)), error)
        result.accepted = accepted - len(outcome.rejects)
    engine = outcome.engine
    if engine.open_month is not None:
        close = outcome.last_month_closed
        result.last_month_closed = close
        result.final_month = outcome.final_month
        result.first_month = engine.table.start
        result.last_month = engine.open_month - 1 if close else engine.open_month
    result.order = outcome.order
    result.alerts = _latest(engine.drain())
    result.engine_counts = engine.counts
    result.series = len(engine.table) if engine.table is not None else 0
    result.keys = list(engine.table.keys) if engine.table is not None else []
    return result


def _latest(alerts: list[Alert]) -> list[Alert]:
    """One record per lane and month, the latest (a case's month-end update replaces
    the early alert of the same month): for every month a case is open, its update."""
    by_month: dict[tuple[str, str], Alert] = {}
    for alert in alerts:
        key = (alert.series_id, alert.period)
        by_month.pop(key, None)
        by_month[key] = alert
    return sorted(by_month.values(), key=lambda a: (a.period, a.series_id))


def write_alerts(path: str | os.PathLike[str], alerts: Sequence[Alert]) -> None:
    with open(path, "wb") as out:
        for alert in alerts:
            out.write(orjson.dumps(alert.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")


def charts(result: ReplayResult) -> dict[str, Any]:
    """Chart data for every alerted series, from the month snapshots: each series from the first
    month it has a row to the last snapshot, month by month (``None`` where a month has no
    snapshot or no finite number)."""
    from transitwatch.streams.report import ChartSeries

    wanted = {a.series_id for a in result.alerts}
    picked = [(key, i) for i, key in enumerate(result.keys) if key.series_id in wanted]
    snaps = result.snapshots
    if not picked or not snaps:
        return {}
    alert_months: dict[str, list[str]] = {}
    for a in result.alerts:
        alert_months.setdefault(a.series_id, []).append(a.period)
    rows = np.array([i for _, i in picked])
    first_month, last_month = snaps[0].month, snaps[-1].month
    span = last_month - first_month + 1
    # One matrix per quantity, months x picked series, NaN where a series has no row yet.
    grids = {name: np.full((span, len(rows)), np.nan) for name in ("value", "expected", "band_low", "band_high")}
    present = np.zeros((span, len(rows)), dtype=bool)
    for snap in snaps:
        has = rows < snap.value.shape[0]
        present[snap.month - first_month] = has
        for name, grid in grids.items():
            grid[snap.month - first_month, has] = getattr(snap, name)[rows[has]]
    lists = {name: np.where(np.isfinite(grid), grid, np.nan).T.tolist() for name, grid in grids.items()}
    starts = np.where(present.any(axis=0), present.argmax(axis=0), span)
    labels = [period_of(first_month + k) for k in range(span)]
    currency = result.alerts[0].currency if result.alerts else "USD"
    out = {}
    for j, (key, _) in enumerate(picked):
        start = int(starts[j])
        series = {name: [None if v != v else v for v in lists[name][j][start:]] for name in grids}
        title = f"{country_name(key.reporter)} → {country_name(key.partner)}, {key.flow}, HS {key.hs6}"
        out[key.series_id] = ChartSeries(
            series_id=key.series_id, title=title, currency=currency, months=labels[start:],
            values=series["value"], baseline=series["expected"], band_low=series["band_low"],
            band_high=series["band_high"], alert_months=alert_months.get(key.series_id, []),
        )
    return out


def input_size(inputs: Sequence[str | os.PathLike[str]]) -> int | None:
    """Total lines of the inputs for a progress bar, ``None`` if unknown (gzip)."""
    total = 0
    for path in inputs:
        if container(path, _READER) == "parquet":
            return None
        n = count_lines(path)
        if n is None:
            return None
        total += n
    return total
