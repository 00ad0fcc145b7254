"""transitwatch in a notebook: the detectors over a DataFrame, or over files.

:func:`detect` takes what an analyst has in memory (a pandas or Polars DataFrame, or an Arrow
table) of declarations or monthly statistics, with the input contract's column names or a
``columns`` mapping to them, and returns the alert records as a pandas DataFrame: one row per
record, the fields of the JSON Lines that ``transitwatch replay --alerts-out`` writes. It runs the
very replay core the command line runs (:func:`transitwatch.streams.replay.run_feed`), so the same
records give the same alerts.

>>> import pandas as pd
>>> import transitwatch
>>> months = pd.period_range("2019-01", "2022-12", freq="M")
>>> frame = pd.DataFrame({
...     "period": months.astype(str), "reporter": "DE", "partner": "KG", "hs_code": "854231",
...     "value": [100_000.0] * 40 + [2_500_000.0] * 8,
... })
>>> alerts = transitwatch.detect(frame)
>>> print(alerts[["period", "reporter", "partner", "hs6", "case_event"]].head(2).to_string(index=False))
 period reporter partner    hs6 case_event
2022-05       DE      KG 854231     opened
2022-06       DE      KG 854231    updated

Rows the contract refuses are not dropped silently: they are counted per reason in
``alerts.attrs["summary"]`` (as ``transitwatch replay`` prints them), a :class:`RejectedRowsWarning`
says how many, ``rejects_out`` writes them as JSON Lines with their row number and reason, and
``strict=True`` raises on the first.
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from transitwatch.detectors.columnar import ColumnarReplay, FinalMonth
from transitwatch.detectors.contract import parse_mapping
from transitwatch.detectors.errors import ConfigError, RejectError
from transitwatch.detectors.frame import FIELDS, complete
from transitwatch.detectors.limits import TimeDomain
from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.files import Line
from transitwatch.streams.replay import ReplayResult, run_feed
from transitwatch.streams.replay import replay as _replay_files

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

__all__ = ["RejectedRowsWarning", "alerts_frame", "detect", "load_config", "replay"]

#: Rows handed to the detectors at a time (as a replay reads a file in chunks).
BATCH_ROWS = 65_536
#: The name rejected rows carry in the rejects file and in errors.
FRAME_SOURCE = "<frame>"


class RejectedRowsWarning(UserWarning):
    """Some rows of the frame were refused by the input contract (counted, never dropped silently)."""


def load_config(config: WatchConfig | str | os.PathLike[str] | None = None) -> WatchConfig:
    """A :class:`WatchConfig` as given, read from a TOML file's path, or the shipped defaults.

    >>> load_config().params["surge"].min_ratio
    2.0
    """
    if config is None:
        return WatchConfig.default()
    if isinstance(config, WatchConfig):
        return config
    if isinstance(config, (str, os.PathLike)):
        return WatchConfig.from_toml(Path(config).read_text("utf-8"))
    raise ConfigError(f"config must be a WatchConfig, the path of a TOML file or None, not {type(config).__name__}")


def replay(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    config: WatchConfig | str | os.PathLike[str] | None = None,
    *,
    final_month: FinalMonth = "auto",
    rejects_out: str | os.PathLike[str] | None = None,
    strict: bool = False,
    today: dt.date | None = None,
) -> ReplayResult:
    """``transitwatch replay`` over files: the :class:`~transitwatch.streams.replay.ReplayResult`
    (``.alerts``, ``.summary(...)``, ``.shifts()``); :func:`alerts_frame` turns its alerts into a
    DataFrame."""
    inputs = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    return _replay_files(inputs, config=load_config(config), final_month=final_month, rejects_out=rejects_out,
                         strict=strict, today=today)


def detect(
    frame: Any,
    config: WatchConfig | str | os.PathLike[str] | None = None,
    columns: Mapping[str, str] | None = None,
    *,
    final_month: FinalMonth = "auto",
    rejects_out: str | os.PathLike[str] | None = None,
    strict: bool = False,
    today: dt.date | None = None,
) -> pd.DataFrame:
    """The detectors over ``frame``; the alert records as a DataFrame.

    Parameters
    ----------
    frame
        A pandas or Polars DataFrame, or a pyarrow Table or RecordBatch, of declarations
        (``declaration_id``, ``date``, ...) or monthly statistics (``period``, ...), or both,
        one record per row, with the input contract's column names (``docs/input-format.md``).
        Date and period columns may be text (``"2024-03-05"``, ``"2024-03"``) or pandas/Arrow
        dates, timestamps and periods. Columns that are not fields of the contract are ignored.
    config
        A :class:`WatchConfig`, the path of a TOML configuration, or ``None`` for the defaults.
    columns
        Contract field -> the frame's column, for frames named otherwise
        (``{"reporter": "DECLARANT_ISO", "value": "VALUE_IN_EUROS"}``).
    final_month, strict, rejects_out, today
        As ``transitwatch replay``'s ``--final-month``, ``--strict`` and ``--rejects-out``; a
        rejected row's ``line`` is its position in ``frame`` counted from 1.

    Returns
    -------
    pandas.DataFrame
        One row per alert record, in the order and with the fields of the JSON Lines that
        ``transitwatch replay --alerts-out`` writes; ``.attrs["summary"]`` holds the run's summary
        (rows read, accepted, rejected per reason, cases, shifts).
    """
    settings = load_config(config)
    table = _as_table(frame, columns)

    def feed(run: ColumnarReplay, reject: Callable[[Line, RejectError], None], domain: TimeDomain,
             result: ReplayResult) -> int:
        result.layouts[FRAME_SOURCE] = "frame"
        return feed_table(table, run, reject, domain)

    result = run_feed(feed, [FRAME_SOURCE], config=settings, rejects_out=rejects_out, strict=strict,
                      final_month=final_month, today=today)
    rejected = sum(result.rejected.values())
    if rejected:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(result.rejected.items()))
        warnings.warn(f"{rejected} of {result.lines} rows were rejected by the input contract ({reasons}); "
                      "pass rejects_out= to see them", RejectedRowsWarning, stacklevel=2)
    out = alerts_frame(result)
    out.attrs["summary"] = result.summary([FRAME_SOURCE])
    return out


def alerts_frame(result: ReplayResult) -> pd.DataFrame:
    """The alerts of a replay as a DataFrame, one row per record, the JSON Lines fields as columns."""
    rows = [alert.to_dict() for alert in result.alerts]
    if rows:
        return pd.DataFrame.from_records(rows, columns=list(rows[0]))
    import dataclasses

    from transitwatch.detectors.alerts import Alert

    return pd.DataFrame(columns=[f.name for f in dataclasses.fields(Alert)])


def feed_table(
    table: pa.Table, run: ColumnarReplay, reject: Callable[[Line, RejectError], None], domain: TimeDomain,
) -> int:
    """Put an Arrow table of contract columns through ``run`` in batches: the columnar fast path
    (:func:`~transitwatch.detectors.arrow.split_table`), then the contract row by row for what it
    could not prove normal. Returns the rows accepted; rejected rows go to ``reject``."""
    from transitwatch.detectors.arrow import split_table

    accepted = 0
    for offset in range(0, table.num_rows, BATCH_ROWS):
        # The exact length: a table with no columns sliced past its end reports the length asked for.
        part = _Rows(table.slice(offset, min(BATCH_ROWS, table.num_rows - offset)))
        columns = {name: part.table.column(name).combine_chunks() for name in part.table.column_names}
        block, rejected = complete(*split_table(columns, part.table.num_rows), part.parse, domain=domain)
        for i, error in rejected:
            reject(Line(FRAME_SOURCE, offset + i + 1, _raw(part.row(i))), error)
        run.feed(block, source=0, lines=offset + block.index + 1)
        accepted += len(block)
    return accepted


class _Rows:
    """A batch, with its rows as dicts built only if the slow path or a reject needs them."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self._rows: list[dict[str, Any]] | None = None

    def row(self, i: int) -> dict[str, Any]:
        if self._rows is None:
            self._rows = self.table.to_pylist()
        return self._rows[i]

    def parse(self, i: int) -> Any:
        """Row ``i`` through the contract (raises its :class:`RejectError`); nulls are absent fields."""
        return parse_mapping({k: v for k, v in self.row(i).items() if v is not None})


def _raw(row: Mapping[str, Any]) -> bytes:
    import orjson

    return orjson.dumps({k: v for k, v in row.items() if v is not None}, default=str)


def _as_table(frame: Any, columns: Mapping[str, str] | None) -> pa.Table:
    """``frame`` as an Arrow table with the contract's column names and types the fast path reads."""
    import pyarrow as pa

    if isinstance(frame, pa.RecordBatch):
        table = pa.Table.from_batches([frame])
    elif isinstance(frame, pa.Table):
        table = frame
    elif isinstance(frame, pd.DataFrame):
        table = pa.Table.from_pandas(_plain_pandas(frame), preserve_index=False)
    elif hasattr(frame, "to_arrow") and type(frame).__module__.startswith("polars"):
        table = frame.to_arrow()
    else:
        raise TypeError(f"detect() takes a pandas or Polars DataFrame or an Arrow table, not {type(frame).__name__}")
    if columns:
        unknown = sorted(set(columns) - set(FIELDS))
        if unknown:
            raise ConfigError(f"columns maps {unknown}, which are not fields of the input contract {list(FIELDS)}")
        missing = sorted(c for c in columns.values() if c not in table.column_names)
        if missing:
            raise ConfigError(f"columns names {missing}, which the frame does not have: {table.column_names}")
        taken = {source: field for field, source in columns.items()}
        # A column already named like a mapped field gives way to the column mapped to it.
        shadowed = {f for f, source in columns.items() if source != f and f not in taken}
        table = table.select([n for n in table.column_names if n not in shadowed])
        table = table.rename_columns([taken.get(name, name) for name in table.column_names])
    keep = [name for name in table.column_names if name in FIELDS]
    if len(set(keep)) != len(keep):
        raise ConfigError(f"the frame has a contract column twice: {sorted(keep)}")
    # Dictionary, large and view strings, dates and timestamps: split_table reads them as they are.
    return table.select(keep)


def _plain_pandas(frame: pd.DataFrame) -> pd.DataFrame:
    """pandas periods (not Arrow types) as text; the rest Arrow converts itself."""
    out = {}
    for name in frame.columns:
        column = frame[name]
        if isinstance(column.dtype, pd.PeriodDtype):
            column = column.astype(str).where(column.notna(), None)
        out[name] = column
    return pd.DataFrame(out)
