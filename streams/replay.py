"""``transitwatch replay``: the detectors over files, with no broker.

Reads every input, sets rejected lines aside (rejects file, counted per
reason), sorts the records into event order, runs the very same
:class:`~detectors.engine.Engine` the service runs, and writes alerts, a
summary and an HTML report.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from operator import itemgetter
from typing import IO, Any, Literal

import numpy as np
import orjson

from detectors.alerts import Alert, period_of
from detectors.contract import Declaration, Record
from detectors.engine import Engine, MonthSnapshot
from detectors.errors import RejectError, StrictModeError
from detectors.reference import country_name
from detectors.watch import WatchConfig
from streams.files import Line, count_lines, iter_records

FinalMonth = Literal["auto", "closed", "open"]


@dataclass
class ReplayResult:
    """What a replay produced and counted."""

    alerts: list[Alert]
    lines: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    engine_counts: Counter[str] = field(default_factory=Counter)
    series: int = 0
    first_month: int | None = None
    last_month: int | None = None
    last_month_closed: bool = True
    snapshots: list[MonthSnapshot] = field(default_factory=list)
    keys: list[Any] = field(default_factory=list)

    def summary(self, inputs: Sequence[str]) -> dict[str, Any]:
        severities = Counter(a.severity for a in self.alerts)
        months = "none"
        if self.first_month is not None:
            months = f"{period_of(self.first_month)} to {period_of(self.last_month)}"
            if not self.last_month_closed:
                months += f" ({period_of(self.last_month)} in progress: early checks only)"
        return {
            "inputs": list(inputs),
            "lines read": self.lines,
            "records accepted": self.accepted,
            "rejected": dict(sorted(self.rejected.items())) or 0,
            **{k: v for k, v in sorted(self.engine_counts.items())},
            "series": self.series,
            "months": months,
            "alerts": {s: severities.get(s, 0) for s in ("critical", "high", "medium", "low")},
            "early alerts": sum(a.early for a in self.alerts),
        }


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
    month = rec.month
    end = dt.date(month // 12 + (month % 12 == 11), (month + 1) % 12 + 1, 1)
    return end.toordinal() - 1


def read_records(
    inputs: Sequence[str | os.PathLike[str]],
    reject: Callable[[Line, RejectError], None],
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, int, int, Record]]:
    """Every accepted record of every input as ``(event key, input index, line
    number, record)``; the line itself is not kept (memory)."""
    done = 0
    for index, path in enumerate(inputs):
        source = os.fspath(path)
        for number, content, parsed in iter_records(path):
            done += 1
            if progress is not None and done % 4096 == 0:
                progress(4096)
            if isinstance(parsed, RejectError):
                reject(Line(source, number, content), parsed)
            else:
                yield _event_key(parsed), index, number, parsed
    if progress is not None:
        progress(done % 4096)


def replay(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    config: WatchConfig | None = None,
    rejects_out: str | os.PathLike[str] | None = None,
    strict: bool = False,
    final_month: FinalMonth = "auto",
    keep_snapshots: bool = True,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Run the detectors over ``inputs`` and return alerts and counts.

    ``final_month``: ``closed`` treats the last month of the input as complete,
    ``open`` as still in progress (early checks only); ``auto`` closes it when
    it holds monthly statistics or declarations up to its last day.
    """
    result = ReplayResult(alerts=[])
    snapshots = result.snapshots if keep_snapshots else None
    engine = Engine(config, on_close=snapshots.append if snapshots is not None else None)
    with ExitStack() as stack:
        stream = stack.enter_context(open(rejects_out, "wb")) if rejects_out else None
        reject = _Rejects(stream, strict, result.rejected)
        records = list(read_records(inputs, reject, progress))
        result.lines = len(records) + sum(result.rejected.values())
        records.sort(key=itemgetter(0))  # stable: file order within a day
        last_key = records[-1][0] if records else None
        add = engine.add
        for _, index, number, rec in records:
            try:
                add(rec)
            except RejectError as error:
                reject(Line(os.fspath(inputs[index]), number, orjson.dumps(rec.to_dict())), error)
        result.accepted = len(records) - sum(v for k, v in result.rejected.items() if k.startswith("no_fx_rate"))
        if engine.open_month is not None:
            last = records[-1][3]
            close = final_month == "closed" or (
                final_month == "auto"
                and (type(last) is not Declaration or dt.date.fromordinal(last_key + 1).day == 1)
            )
            engine.finish(close_last=close)
            result.last_month_closed = close
            result.first_month = engine.table.start
            result.last_month = engine.open_month - 1 if close else engine.open_month
    result.alerts = _latest(engine.drain())
    result.engine_counts = engine.counts
    result.series = len(engine.table) if engine.table is not None else 0
    result.keys = list(engine.table.keys) if engine.table is not None else []
    return result


def _latest(alerts: list[Alert]) -> list[Alert]:
    """One alert per id, the latest version (a month-end alert replaces its early one)."""
    by_id: dict[str, Alert] = {}
    for alert in alerts:
        by_id.pop(alert.alert_id, None)
        by_id[alert.alert_id] = alert
    return sorted(by_id.values(), key=lambda a: (a.period, a.series_id))


def write_alerts(path: str | os.PathLike[str], alerts: Sequence[Alert]) -> None:
    with open(path, "wb") as out:
        for alert in alerts:
            out.write(orjson.dumps(alert.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")


def charts(result: ReplayResult) -> dict[str, Any]:
    """Chart data for every alerted series, from the month snapshots."""
    from streams.report import ChartSeries

    wanted = {a.series_id for a in result.alerts}
    rows = {key.series_id: i for i, key in enumerate(result.keys) if key.series_id in wanted}
    alert_months: dict[str, list[str]] = {}
    for a in result.alerts:
        alert_months.setdefault(a.series_id, []).append(a.period)
    out = {}
    currency = result.alerts[0].currency if result.alerts else "USD"
    for series_id, row in rows.items():
        months, values, base, low, high = [], [], [], [], []
        for snap in result.snapshots:
            if row >= snap.value.shape[0]:
                continue
            months.append(period_of(snap.month))
            values.append(float(snap.value[row]))
            base.append(_opt(snap.expected[row]))
            low.append(_opt(snap.band_low[row]))
            high.append(_opt(snap.band_high[row]))
        key = result.keys[row]
        title = (
            f"{country_name(key.reporter)} → {country_name(key.partner)}, {key.flow}, HS {key.hs6}"
        )
        out[series_id] = ChartSeries(
            series_id=series_id, title=title, currency=currency, months=months, values=values,
            baseline=base, band_low=low, band_high=high, alert_months=alert_months.get(series_id, []),
        )
    return out


def _opt(x: float) -> float | None:
    x = float(x)
    return None if np.isnan(x) or np.isinf(x) else x


def input_size(inputs: Sequence[str | os.PathLike[str]]) -> int | None:
    """Total lines of the inputs for a progress bar, ``None`` if unknown (gzip)."""
    total = 0
    for path in inputs:
        n = count_lines(path)
        if n is None:
            return None
        total += n
    return total
