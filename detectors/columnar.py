"""The columnar replay: what :class:`~transitwatch.detectors.engine.Engine` does record by record, over columns.

Fed :class:`~transitwatch.detectors.frame.Block` s in file order, :class:`ColumnarReplay`
sorts the records into event order (declarations by date, monthly statistics at
their month's last day; ties keep input order) and reproduces, exactly, the
Engine fed one record at a time:

- duplicate declaration ids are ignored and counted (the first in event order wins);
- every lane (reporter, partner, flow, hs6, currency) is routed by the Engine's own
  ``_route`` (same checks, same order, same counts, the same ``no_fx_rate`` reject);
- series rows are created in the order their first record arrives, and flagged
  as counted when their first declaration arrives, before the step that reads them;
- running totals are the Engine's: sums in event order (``itertools.accumulate``
  and a rank-by-rank numpy loop add in the same order as ``cell.value += value``),
  revisions of monthly statistics replace (``math.fsum`` of the latest line per HS code);
- early checks run where the Engine runs them (the first watched, new declaration
  dated on or after each check day, or the month's close when none is; a month left
  in progress may be checked to date at the end) on the same series and as of the
  same days, through ``Engine.run_checks``, and months close through
  ``Engine.close_month``, so verdicts, alerts and snapshots are the Engine's own.
  Exporters, consignees and mass are folded only for alerted series.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from transitwatch.detectors.alerts import period_of
from transitwatch.detectors.base import PARTY_MEMORY_MONTHS, party_key
from transitwatch.detectors.contract import FLOWS
from transitwatch.detectors.engine import Cell, EarlyCheck, Engine, MonthSnapshot, NewParty
from transitwatch.detectors.errors import RejectError
from transitwatch.detectors.frame import COUNTRIES, CURRENCIES, HS_CODES, Block
from transitwatch.detectors.numeric import nan_to_num
from transitwatch.detectors.table import SeriesKey
from transitwatch.detectors.watch import WatchConfig
from transitwatch.detectors.window import IdHorizon, PartyMemory, first_occurrences, month_of_day

__all__ = ["ColumnarReplay", "Outcome", "decide_final_month"]

FinalMonth = Literal["auto", "closed", "open"]
#: How a run holds its input: ``all`` every record until the end, sorted at once; ``stream``
#: month by month, each month closed once the input has moved past it by ``lateness_days``;
#: ``auto`` holds the first ``hold`` records, then streams if they were in time order (within the
#: lateness) and holds everything otherwise.
Window = Literal["auto", "stream", "all"]

# The service's defaults (streams.settings: TRANSITWATCH_LATENESS_DAYS, TRANSITWATCH_DEDUP_MONTHS),
# repeated here because the core imports nothing from the service; a test holds them equal.
LATENESS_DAYS = 3
DEDUP_MONTHS = 3
HOLD_RECORDS = 1 << 18  # what ``auto`` reads before it decides; held whole below this
_NEVER_SEEN = -(1 << 40)  # PartyMemory.last is below this for a pair never seen

_USED, _NO_FX, _REASON = 0, 1, 2  # route ids; not-watched reason k is _REASON + k
_HS6_SPAN = 1 << 24  # room for the hs6 codes of a lane code
_RANK_LOOP = 512  # ranks summed by the vectorized loop; longer cells finish in accumulate()


@dataclass
class Outcome:
    """What a columnar run produced besides the engine's own state."""

    engine: Engine
    records: int = 0
    rejects: list[tuple[int, int, dict[str, Any], RejectError]] = field(default_factory=list)
    last_month_closed: bool = True
    final_month: str = ""  # what was decided about the input's last month, and why, in words
    order: str = ""  # how the input was held (streamed or held whole), said when it matters


def decide_final_month(
    mode: FinalMonth, *, statistic: bool, last_day: dt.date, today: dt.date | None = None
) -> tuple[bool, str]:
    """Whether the input's last month is closed at the end of a replay, and why, in words.

    The last month is the month of the input's last record in event order (``statistic``:
    it is a monthly statistic; ``last_day``: its event day, a statistic's being its month's
    last day). ``closed`` and ``open`` decide as asked. ``auto`` closes the month when it
    is complete (monthly statistics cover whole months; declarations dated on its last
    day reach its end) or when it is older than the present (``today``'s month: the clock
    is the caller's); otherwise it stays in progress, as the service would see it.

    Examples
    --------
    >>> decide_final_month("auto", statistic=False, last_day=dt.date(2024, 5, 17), today=dt.date(2024, 6, 3))
    (True, 'closed (auto: it is older than the present month, 2024-06)')
    >>> decide_final_month("auto", statistic=False, last_day=dt.date(2024, 6, 2), today=dt.date(2024, 6, 3))
    (False, 'in progress (auto: it is the present month and its declarations end on 2024-06-02)')
    """
    if mode == "closed":
        return True, "closed (as asked: --final-month closed)"
    if mode == "open":
        return False, "in progress (as asked: --final-month open)"
    if statistic:
        return True, "closed (auto: its last records are monthly statistics, which cover whole months)"
    if (last_day + dt.timedelta(days=1)).day == 1:
        return True, f"closed (auto: its declarations reach its last day, {last_day.isoformat()})"
    month = last_day.year * 12 + last_day.month - 1
    if today is None:
        return False, f"in progress (auto: its declarations end on {last_day.isoformat()}, before its last day)"
    present = today.year * 12 + today.month - 1
    if month < present:
        return True, f"closed (auto: it is older than the present month, {period_of(present)})"
    when = "the present month" if month == present else f"after the present month, {period_of(present)},"
    return False, f"in progress (auto: it is {when} and its declarations end on {last_day.isoformat()})"


class ColumnarReplay:
    """Collects blocks of accepted records and runs the Engine's logic over them, all at
    once (``window="all"``) or month by month as the input moves on (``"stream"``, ``"auto"``).

    Streamed, a month is run (early checks, close) once the latest record read is
    ``lateness_days`` past its end and a used record of a later month has been read; its
    records are then forgotten, so what is held is the open window, the series' state, the
    de-duplication horizon (ids of ``dedup_months`` months, as the service keeps them) and the
    consignee memory. A record read after its month was run is late and handled as the service
    handles one (``Engine._late``: a declaration folded into the history, a statistic counted
    and not applied), counted in the engine's counts. On input in time order (within the
    lateness) the alerts are those of the run that holds everything.

    Examples
    --------
    >>> from transitwatch.detectors.frame import parse_objects
    >>> rows = [{"period": f"{y}-{m:02d}", "reporter": "DE", "partner": "KG", "flow": "export",
    ...          "hs_code": "854231", "value": 50_000 + 1_000 * (m % 3), "currency": "USD"}
    ...         for y in (2020, 2021) for m in range(1, 13)]
    >>> rows.append(dict(rows[-1], period="2022-01", value=400_000))
    >>> block, _ = parse_objects(rows)
    >>> run = ColumnarReplay()
    >>> run.feed(block, source=0, lines=block.index + 1)
    >>> out = run.run(final_month="closed")
    >>> [(a.period, a.detectors, a.severity) for a in out.engine.drain()]
    [('2022-01', ('seasonal_surge',), 'high')]
    """

    def __init__(self, config: WatchConfig | None = None, *, on_close: Callable[[MonthSnapshot], None] | None = None,
                 window: Window = "all", lateness_days: int = LATENESS_DAYS, dedup_months: int = DEDUP_MONTHS,
                 hold: int = HOLD_RECORDS) -> None:
        self.engine = Engine(config, on_close=on_close)
        self._parts: list[dict[str, np.ndarray]] = []
        self._routes: dict[int, tuple[int, float]] = {}  # lane code -> (route id, rate)
        self._reasons: list[str] = []
        self._hs6: dict[str, int] = {}
        self._hs6_values: list[str] = []
        self._hs6_of = np.zeros(0, np.int64)  # HS_CODES code -> hs6 code
        self._no_fx: dict[tuple[int, int], tuple[dict[str, Any], RejectError]] = {}
        self.window: Window = window
        self._mode = {"auto": "hold", "stream": "stream", "all": "all"}[window]
        self.lateness_days = lateness_days
        self._hold = hold
        self._buffered = 0  # records in _parts
        self._fed = 0
        self._max_day: int | None = None
        self._low_month: int | None = None  # the earliest month buffered
        self.behind = 0  # records read more than the lateness behind the latest, into an earlier month
        self._held_behind = 0  # what made ``auto`` hold a large input whole
        self.peak_buffered = 0  # the most records held at once (streamed: the open window)
        self._horizon = IdHorizon(dedup_months)
        self.memory = PartyMemory()
        self._rows: dict[int, int] = {}  # series code -> engine row
        self._rejects: list[tuple[int, int, dict[str, Any], RejectError]] = []

    # -- input ---------------------------------------------------------------------------------

    def feed(self, block: Block, *, source: int, lines: np.ndarray) -> None:
        """Take a block of accepted records (file order) of input ``source``, with their line numbers."""
        if len(block) == 0:
            return
        hs6 = self._hs6_codes(block.hs_code)
        series = ((block.reporter.astype(np.int64) * 256 + block.partner) * 4 + block.flow) * _HS6_SPAN + hs6
        lane = series * 256 + block.currency
        codes, uniques = pd.factorize(lane)
        routes = [self._route(int(c)) for c in uniques]
        route = np.array([r for r, _ in routes], dtype=np.int64)[codes]
        rate = np.array([x for _, x in routes], dtype=float)[codes]
        lines = np.asarray(lines, dtype=np.int64)
        for i in np.flatnonzero(route == _NO_FX).tolist():
            self._no_fx[(source, int(lines[i]))] = (block.to_dict(i), self._reject_of(int(lane[i])))
        part = {
            "source": np.full(len(block), source, np.int32),
            "line": lines,
            "declaration": block.declaration,
            "declaration_id": block.declaration_id,
            "day": block.day,
            "month": block.month,
            "series": series,
            "route": route,
            "hs_code": block.hs_code,
            "value": block.value,
            "rate": rate,
            "net_mass_kg": block.net_mass_kg,
            "exporter": block.exporter,
            "consignee": block.consignee,
        }
        self._note_order(part["day"], part["month"])
        self._parts.append(part)
        self._fed += len(block)
        self._buffered += len(block)
        self.peak_buffered = max(self.peak_buffered, self._buffered)
        low = int(part["month"].min())
        self._low_month = low if self._low_month is None else min(self._low_month, low)
        if self._mode == "hold" and self._buffered > self._hold:
            self._mode = "all" if self.behind else "stream"
            self._held_behind = self.behind
        if self._mode == "stream":
            self._release()

    def _note_order(self, day: np.ndarray, month: np.ndarray) -> None:
        """Count the records that arrive behind the window: into a month before the one the
        latest record read, less the lateness, is in (a streamed run may have closed it)."""
        carry = int(day[0]) if self._max_day is None else self._max_day
        latest = np.maximum.accumulate(np.r_[carry, day])
        self._max_day = int(latest[-1])
        self.behind += int(np.count_nonzero(month < month_of_day(latest[:-1] - self.lateness_days)))

    def _release(self) -> None:
        """Run the months the input has moved past (all their records are in), if a used
        record of a later month has been read (so the Engine would close them)."""
        ready = int(month_of_day(self._max_day - self.lateness_days))
        if self._low_month is None or self._low_month >= ready:
            return
        cols = _concat(self._parts)
        take = cols["month"] < ready
        rest = {k: v[~take] for k, v in cols.items()}
        batch = {k: v[take] for k, v in cols.items()}
        if not self._later_used(batch, rest):
            self._parts = [cols]
            return
        self._parts = [rest] if len(rest["day"]) else []
        self._buffered = len(rest["day"])
        self._low_month = int(rest["month"].min()) if self._buffered else None
        self._process(batch, close=True)

    def _later_used(self, batch: dict[str, np.ndarray], rest: dict[str, np.ndarray]) -> bool:
        """Whether ``rest`` holds a used record: watched, valued and not a re-sent declaration."""
        used = rest["route"] == _USED
        if not used.any():
            return False
        if (used & ~rest["declaration"]).any():
            return True
        ids = rest["declaration_id"][used]
        known = [*self._horizon.buckets.values(), pa.array(batch["declaration_id"][batch["declaration"]], type=pa.string())]
        for few in (ids[:64], ids):  # a few first: one of them is almost always new
            wanted = pa.array(list(dict.fromkeys(few.tolist())), type=pa.string())
            found: set[str] = set()
            for arr in known:  # the known ids probe the few, not the few a set of all the known
                found.update(pc.filter(arr, pc.is_in(arr, value_set=wanted)).to_pylist())
            if len(found) < len(wanted):
                return True
        return False

    def _hs6_codes(self, hs: np.ndarray) -> np.ndarray:
        known = len(self._hs6_of)
        if len(HS_CODES.values) > known:
            extra = [self._hs6.setdefault(h6, len(self._hs6)) for h6 in HS_CODES.facts[known:]]
            self._hs6_values = list(self._hs6)
            self._hs6_of = np.concatenate([self._hs6_of, np.array(extra, dtype=np.int64)])
        return self._hs6_of[hs]

    def _lane(self, code: int) -> tuple[str, str, str, str, str]:
        currency, series = code % 256, code // 256
        hs6, rest = series % _HS6_SPAN, series // _HS6_SPAN
        flow, rest = rest % 4, rest // 4
        partner, reporter = rest % 256, rest // 256
        return COUNTRIES[reporter], COUNTRIES[partner], FLOWS[flow], self._hs6_values[hs6], CURRENCIES[currency]

    def _route(self, code: int) -> tuple[int, float]:
        """The Engine's own routing of a lane, as (route id, rate)."""
        found = self._routes.get(code)
        if found is None:
            try:
                route = self.engine._route(self._lane(code))
            except RejectError:
                found = (_NO_FX, math.nan)
            else:
                if type(route) is str:
                    if route not in self._reasons:
                        self._reasons.append(route)
                    found = (_REASON + self._reasons.index(route), math.nan)
                else:
                    found = (_USED, route[0])
            self._routes[code] = found
        return found

    def _reject_of(self, code: int) -> RejectError:
        try:
            self.engine._route(self._lane(code))
        except RejectError as error:
            return error
        raise AssertionError("a lane routed as no_fx_rate has a rate")  # pragma: no cover

    # -- the run -------------------------------------------------------------------------------

    def run(self, *, final_month: FinalMonth = "open", today: dt.date | None = None, to_date: bool = False
            ) -> Outcome:
        """Run everything fed and not yet run, as ``Engine.add`` per record then ``Engine.finish``
        (``to_date``: its ``to_date``, a check of a last month left in progress as of its latest declaration).

        ``final_month`` as in :func:`transitwatch.streams.replay.replay`: ``open`` leaves the last
        month in progress (``finish(close_last=False)``), ``closed`` closes it, ``auto``
        decides from the data and ``today`` (:func:`decide_final_month`); ``Outcome.final_month``
        says what was decided and why.
        """
        engine = self.engine
        out = Outcome(engine=engine, records=self._fed)
        if self._mode == "hold":
            self._mode = "all"  # the input ended before ``auto`` had to decide: held whole
        if self._parts:
            cols = _concat(self._parts)
            self._parts = []
            self._buffered = 0
            self._process(cols, close=None, final_month=final_month, today=today, to_date=to_date, out=out)
        out.rejects = self._rejects
        if engine.open_month is not None:
            engine._parties = self.memory.to_dict()
        if self.window != "all":
            late = sum(v for k, v in engine._counts.items() if k.startswith("late records"))
            if self._mode == "stream" and late:
                out.order = (f"streamed month by month; {late:,} records came after their month had run (more than "
                             f"{self.lateness_days} days behind the input): late, as the service treats them "
                             "(--window all sorts everything)")
            elif self._held_behind:
                out.order = (f"held whole and sorted: {self._held_behind:,} of the first {self._hold:,} records were "
                             f"more than {self.lateness_days} days out of time order")
        return out

    def _process(self, cols: dict[str, np.ndarray], *, close: bool | None, final_month: FinalMonth = "open",
                 today: dt.date | None = None, to_date: bool = False, out: Outcome | None = None) -> None:
        """Run a batch of records: de-duplicate, count, fold late records, run the used ones.
        ``close``: close every month of the batch (a streamed release); ``None``: the end of
        input, whose last month ``final_month`` decides (``out`` says what was decided)."""
        engine = self.engine
        order = np.argsort(cols["day"], kind="stable")
        decl = cols["declaration"][order]
        route = cols["route"][order]
        counts = engine._counts

        at = np.flatnonzero(decl)
        ids = cols["declaration_id"][order[at]]
        if self._mode == "stream":
            dup = self._horizon.duplicates(ids, cols["month"][order[at]])
        else:
            dup = first_occurrences(ids)
        if dup.any():
            route[at[dup]] = -1
            counts["duplicate declarations ignored"] += int(np.count_nonzero(dup))
        del ids
        for k, reason in enumerate(self._reasons):
            hits = int(np.count_nonzero(route == _REASON + k))
            if hits:
                counts[reason] += hits
        for i in order[route == _NO_FX].tolist():
            key = (int(cols["source"][i]), int(cols["line"][i]))
            self._rejects.append((*key, *self._no_fx.pop(key)))

        if engine.open_month is not None:
            late = (route == _USED) & (cols["month"][order] < engine.open_month)
            if late.any():
                self._late(cols, order[late])
                route[late] = -2
        used = order[route == _USED]
        last = order[-1]
        if close is None:
            if len(used) == 0:
                return
            close, decided = decide_final_month(
                final_month, statistic=not cols["declaration"][last],
                last_day=dt.date.fromordinal(int(cols["day"][last])), today=today,
            )
            if out is not None:
                out.last_month_closed, out.final_month = close, decided
        elif len(used) == 0:
            return
        _Run(self, engine, {k: v[used] for k, v in cols.items()}, close, to_date).go()
        if self._mode == "stream":
            self._horizon.expire(closed=engine.open_month - 1)

    def _late(self, cols: dict[str, np.ndarray], where: np.ndarray) -> None:
        """Records of months already run (in event order): the Engine's own ``_late``, with the
        consignee memory handed over for the record and taken back (merged once at the end)."""
        engine, memory = self.engine, self.memory
        taken: dict[tuple[int, int], int] = {}  # (row, consignee) -> month, this batch's late sightings
        for i in where.tolist():
            reporter, partner, flow, hs6, _ = self._lane(int(cols["series"][i]) * 256)
            name = cols["consignee"][i]
            key = party_key(name) if name else ""
            row = engine.table.index.get(SeriesKey(reporter, partner, flow, hs6))
            pid = int(memory.ids([key])[0])
            engine._parties = {}
            if key and row is not None:
                seen = taken.get((row, pid))
                if seen is None:
                    seen = int(memory.last(np.array([row]), np.array([pid]))[0])
                if seen > _NEVER_SEEN:
                    engine._parties = {row: {key: seen}}
            rec = _LateRecord(int(cols["month"][i]), reporter, partner, flow, float(cols["value"][i]), name or None)
            engine._late(rec, hs6, float(cols["rate"][i]), bool(cols["declaration"][i]))
            for r, known in engine._parties.items():
                m = known.get(key)
                if m is not None:
                    taken[(r, pid)] = m
        engine._parties = {}
        if taken:
            pairs = np.array(list(taken), dtype=np.int64)
            memory.merge(pairs[:, 0], pairs[:, 1], np.array(list(taken.values()), dtype=np.int64))


@dataclass(frozen=True, slots=True)
class _LateRecord:
    """What ``Engine._late`` reads of a record."""

    month: int
    reporter: str
    partner: str
    flow: str
    value: float
    consignee: str | None


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class _Run:
    """One run over the used records (watched, new, valued), in event order."""

    def __init__(self, owner: ColumnarReplay, engine: Engine, u: dict[str, np.ndarray], close: bool,
                 to_date: bool = False) -> None:
        self.engine = engine
        self.close = close
        self.to_date = to_date
        n = self.n = len(u["day"])
        engine._used += n
        self.memory = owner.memory
        self.decl = u["declaration"]
        self.day = u["day"]
        self.month = u["month"]
        self.value = u["value"] / u["rate"]
        self.hs = u["hs_code"]
        self.mass = u["net_mass_kg"]
        self.exporter = u["exporter"]
        self.consignee = u["consignee"]
        # rows: the engine's, new ones numbered in the order their first record arrives
        table = engine.table
        base = self.base = len(table) if table is not None else 0
        local, uniques = pd.factorize(u["series"])
        known = owner._rows
        self.new_keys: list[SeriesKey] = []
        rows = np.empty(len(uniques), np.int64)
        for j, c in enumerate(uniques.tolist()):
            r = known.get(c)
            if r is None:
                key = SeriesKey(*owner._lane(c * 256)[:4])
                r = table.index.get(key) if table is not None else None
                if r is None:
                    r = base + len(self.new_keys)
                    self.new_keys.append(key)
                known[c] = r
            rows[j] = r
        self.row = rows[local]
        k = self.k = base + len(self.new_keys)
        firsts = np.unique(self.row, return_index=True)
        self.first_of_new = firsts[1][firsts[0] >= base]
        self.decl_first = np.full(k, n + 1, np.int64)
        if base:
            self.decl_first[:base][table.counted[:base]] = -1  # counted before this run
        at = np.flatnonzero(self.decl)
        rows_with, first_at = np.unique(self.row[at], return_index=True)
        fresh = self.decl_first[rows_with] > n
        self.decl_first[rows_with[fresh]] = at[first_at[fresh]]
        self.first_month = engine.open_month if table is not None else int(self.month[0])
        self.last_month = int(self.month[-1])

        stats = ~self.decl
        if stats.any():
            identity = ((self.month[stats] - self.first_month) * k + self.row[stats]) * (1 << 31) + self.hs[stats]
            revised = int(stats.sum()) - len(np.unique(identity))
            if revised:
                engine._counts["revisions applied"] += revised

        # cells (month, row): records grouped by cell, in event order within a cell
        self.cell = (self.month - self.first_month) * k + self.row
        srt = self.srt = np.argsort(self.cell, kind="stable")
        ck = self.cell[srt]
        starts = self.starts = np.flatnonzero(np.r_[True, ck[1:] != ck[:-1]])
        self.ends = np.r_[starts[1:], n]
        self.seg_cell = ck[starts]
        lengths = self.ends - starts
        self.seg_of = np.repeat(np.arange(len(starts)), lengths)  # sorted position -> segment
        self.pos_of = np.empty(n, np.int64)
        self.pos_of[srt] = np.arange(n)
        self.rank = np.arange(n) - np.repeat(starts, lengths)
        self.seg_first = srt[starts]
        self.seg_stat = np.add.reduceat(stats[srt].astype(np.int64), starts) > 0
        self.cum, self.cmax = _running(self.value[srt], starts, self.ends, self.rank)
        self.new_party, self._last_seen, self.pcode = self._new_parties()
        flags = self.new_party[srt].astype(np.int64)
        running = np.cumsum(flags)
        self.cparty = (running - (running - flags)[starts][self.seg_of]).astype(float)

    def _new_parties(self) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
        """Per record, whether it is its series' first declaration of the month to a
        consignee the series had not seen in ``PARTY_MEMORY_MONTHS`` months (as
        ``Engine.add`` counts ``Cell.new_parties``, the months before this run read from the
        memory); per (series, consignee) the months it was seen, for the memory; and per
        record its consignee's number (-1: none)."""
        names, uniques = pd.factorize(self.consignee)  # None -> -1; party_key once per name
        ids = self.memory.ids([party_key(c) if c else "" for c in uniques.tolist()])
        code = np.where(names >= 0, ids[names] if len(ids) else -1, -1)
        at = np.flatnonzero(self.decl & (code >= 0))
        flag = np.zeros(self.n, dtype=bool)
        if at.size == 0:
            return flag, (at, at, at, at), code
        row, cons, month = self.row[at], code[at], self.month[at]
        order = np.lexsort((at, cons, row))  # by series, consignee, then event order
        row, cons, month, at = row[order], cons[order], month[order], at[order]
        same = np.r_[False, (row[1:] == row[:-1]) & (cons[1:] == cons[:-1])]
        before = np.r_[0, month[:-1]]
        before[~same] = self.memory.last(row[~same], cons[~same])
        flag[at] = (month != before) & (before < month - PARTY_MEMORY_MONTHS)
        return flag, (row, cons, at, month), code

    # -- the Engine's table as it is before record p -------------------------------------------

    def go(self) -> None:
        engine = self.engine
        if engine.table is None:
            engine.table = engine.new_table(self.first_month)
            engine._open(self.first_month)
        self._created = 0
        counted = np.flatnonzero((self.decl_first >= 0) & (self.decl_first <= self.n))
        self._counting = counted[np.argsort(self.decl_first[counted], kind="stable")]
        self._counted = 0
        days = engine.config.early_days
        month_bounds = np.searchsorted(self.month, np.arange(self.first_month, self.last_month + 2))
        for m in range(self.first_month, self.last_month + 1):
            ms, me = int(month_bounds[m - self.first_month]), int(month_bounds[m - self.first_month + 1])
            # The month's rows all at once: a check reads only its own rows, and whether
            # a row was counted at its check comes from decl_first, not from the table.
            self._advance(me)
            closes = m < self.last_month or self.close
            if days and me > ms:
                self._checks(m, ms, me, self._triggers(m, ms, me, days, closes), days)
            if closes:
                self._close(m, ms, me)
                engine._open(m + 1)
            elif self.to_date and me > ms and self.decl[ms:me].any():
                latest = int(self.day[ms + np.flatnonzero(self.decl[ms:me])].max())
                self._checks(m, ms, me, [me], days, dt.date.fromordinal(latest))
        self._remember_parties(engine.open_month)
        # The engine may still fold this run's cells for the names of new consignees (its
        # ``_named``, for two months): keep what ``fold`` and ``segment`` read, drop the rest.
        for name in ("pos_of", "rank", "seg_of", "cum", "cmax", "cparty", "_last_seen", "row", "cell", "pcode",
                     "seg_first", "seg_stat", "decl_first", "first_of_new"):
            self.__dict__.pop(name, None)

    def _remember_parties(self, open_month: int) -> None:
        """The memory of consignees after the months closed before ``open_month``:
        per series, each consignee's last closed month, those still within the memory."""
        row, cons, at, month = self._last_seen
        closed = month < open_month
        row, cons, month = row[closed], cons[closed], month[closed]
        # runs of one (series, consignee) in event order: the last record of each run
        last = np.r_[(row[1:] != row[:-1]) | (cons[1:] != cons[:-1]), True] if row.size else closed[:0]
        self.memory.merge(row[last], cons[last], month[last])
        self.memory.prune(open_month - PARTY_MEMORY_MONTHS)

    def _advance(self, p: int) -> None:
        engine = self.engine
        keys, firsts = self.new_keys, self.first_of_new
        while self._created < len(keys) and firsts[self._created] < p:
            engine._row(keys[self._created], bool(self.decl[firsts[self._created]]))
            self._created += 1
        counting = self._counting
        table_keys = engine.table.keys
        while self._counted < len(counting) and self.decl_first[counting[self._counted]] < p:
            engine._row(table_keys[counting[self._counted]], True)
            self._counted += 1

    # -- month totals, early checks, closes ----------------------------------------------------

    def _triggers(self, month: int, ms: int, me: int, days: tuple[int, ...], closes: bool) -> list[int]:
        """Where the Engine checks ``month``: the first declaration dated on or after
        each check day (one that passes several check days triggers once), and, when the
        month closes with a check day no declaration reached, just before it closes."""
        at = ms + np.flatnonzero(self.decl[ms:me])
        out: list[int] = []
        for d in days:
            i = int(np.searchsorted(self.day[at], _month_day(month, d))) if at.size else 0
            if i < at.size:
                p = int(at[i])
            elif closes and at.size:
                p = me
            else:
                break
            if not out or out[-1] != p:
                out.append(p)
            if p == me:
                break
        return out

    def _checks(self, month: int, ms: int, me: int, triggers: list[int], days: tuple[int, ...],
                as_of: dt.date | None = None) -> None:
        """The Engine's checks of ``month`` at each trigger: every series whose cell a
        declaration changed since the last check (first touched first), not alerted early
        this month, as of the eve of the first check day after its latest declaration
        (or ``as_of``, the end of input's check to date)."""
        engine = self.engine
        due = np.array([_month_day(month, d) for d in days], dtype=np.int64)
        since = ms
        for p in triggers:
            q = since + np.flatnonzero(self.decl[since:p])  # statistics are judged when the month closes
            since = p
            if q.size == 0:
                continue
            cells, back = np.unique(self.cell[q][::-1], return_index=True)
            last = q[len(q) - 1 - back]  # each cell's last declaration before the check
            segs = self.seg_of[self.pos_of[last]]
            order = np.argsort(self.seg_first[segs], kind="stable")  # the Engine's cells: first touch first
            rows, segs, last = cells[order] % self.k, segs[order], last[order]
            early = engine._early
            keep = np.array([int(r) not in early and not (self.seg_stat[g] and self.fold(int(g), p).lines is not None)
                             for r, g in zip(rows.tolist(), segs.tolist())], dtype=bool)
            rows, segs, last = rows[keep], segs[keep], last[keep]
            if rows.size == 0:
                continue
            # a declaration that triggers a check has its series made (and counted) first
            counted = self.decl_first[rows] <= p if p < me else self.decl_first[rows] < p
            value, count, max_item, party = self._totals(rows, segs, self.pos_of[last], np.full(len(rows), p), counted)
            if as_of is None:
                labels = due[np.searchsorted(due, self.day[last], side="right")] - 1
            else:
                labels = np.full(len(rows), as_of.toordinal())
            cells_at = _Cells(self, month, p)
            batch = []
            for label in np.unique(labels).tolist():
                k = labels == label
                batch.append(EarlyCheck(rows[k].astype(np.int64), dt.date.fromordinal(label), value[k], count[k],
                                        max_item[k], cells_at, party[k]))
            for alerts in engine.run_checks(batch):
                engine._pending.extend(alerts)

    def _close(self, month: int, ms: int, me: int) -> None:
        engine = self.engine
        table = engine.table
        n = len(table)
        value = np.zeros(n)
        count = np.where(table.counted[:n], 0.0, np.nan)
        max_item = np.full(n, np.nan)
        party = count.copy()
        lo, hi = np.searchsorted(self.seg_cell, [(month - self.first_month) * self.k, (month - self.first_month + 1) * self.k])
        segs = np.arange(lo, hi)
        rows = self.seg_cell[segs] % self.k
        value[rows], count[rows], max_item[rows], party[rows] = self._totals(
            rows, segs, self.ends[segs] - 1, np.full(len(rows), me), table.counted[rows]
        )
        engine.cells = _Cells(self, month, me)
        engine.close_month(month, value, count, max_item, party, self._new_top(ms, me, party))

    def _new_top(self, ms: int, me: int, party: np.ndarray) -> np.ndarray:
        """``engine.new_top_of`` at a month's close, over columns (:meth:`tops`)."""
        out = np.where(np.isnan(party), np.nan, 0.0)
        has = nan_to_num(party) > 0
        out[has] = self.tops(ms, me)[:len(party)][has]
        return out

    def tops(self, start: int, p: int) -> np.ndarray:
        """Per row, the value of the month so far (records ``start`` to ``p``, one month) to the
        row's largest new consignee: ``NewParty.value``, every declaration to that consignee
        from its first in the month on, summed in event order as ``+=`` does (0 for none)."""
        top = np.zeros(self.k)
        at = start + np.flatnonzero(self.decl[start:p] & (self.pcode[start:p] >= 0))
        if at.size == 0:
            return top
        span = int(self.pcode[at].max()) + 1
        pair = self.cell[at] * span + self.pcode[at]
        sel = np.isin(pair, pair[self.new_party[at]])
        codes, pairs = pd.factorize(pair[sel])
        sums = np.zeros(len(pairs))
        np.add.at(sums, codes, self.value[at[sel]])  # unbuffered: in event order, one by one
        np.maximum.at(top, (pairs // span) % self.k, sums)
        return top

    def _totals(
        self, rows: np.ndarray, segs: np.ndarray, last: np.ndarray, p: np.ndarray, counted: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """Engine._totals for these rows: running totals of their cells before records ``p``
        (``last``: the sorted position of each cell's last record before its ``p``;
        ``counted``: whether each row was counted by then)."""
        value = self.cum[last]
        count = (self.rank[last] + 1).astype(float)
        max_item = self.cmax[last].copy()
        party = self.cparty[last]
        for i in np.flatnonzero(self.seg_stat[segs]).tolist():
            cell = self.fold(int(segs[i]), int(p[i]))
            value[i] = cell.value
            if cell.lines is None:
                count[i], max_item[i], party[i] = cell.count, cell.max_item, cell.new_parties
            else:
                count[i] = party[i] = 0.0 if counted[i] else math.nan
                max_item[i] = math.nan
        return value, count, max_item, party

    def fold(self, seg: int, p: int) -> Cell:
        """A cell's records before ``p`` folded exactly as Engine.add folds them."""
        us = self.srt[self.starts[seg]:self.ends[seg]]
        us = us[us < p].tolist()
        cell: Cell | None = None
        hs_values = HS_CODES.values
        for u in us:
            value = float(self.value[u])
            if self.decl[u]:
                if cell is None:
                    cell = Cell()
                cell.value += value
                cell.count += 1
                if not value <= cell.max_item:
                    cell.max_item = value
                mass = float(self.mass[u])
                if not math.isnan(mass):
                    cell.mass += mass
                name = self.exporter[u]
                if name:
                    cell.exporters[name] = cell.exporters.get(name, 0.0) + value
                name = self.consignee[u]
                if name:
                    cell.consignees[name] = cell.consignees.get(name, 0.0) + value
                    if self.new_party[u]:
                        cell.new_parties += 1
                        cell.fresh = cell.fresh or {}
                        cell.fresh[party_key(name)] = NewParty(name, dt.date.fromordinal(int(self.day[u])))
                    if cell.fresh is not None:
                        fresh = cell.fresh.get(party_key(name))
                        if fresh is not None:
                            fresh.value += value
            else:
                if cell is None:
                    cell = Cell(lines={})
                elif cell.lines is None:
                    cell.lines = {}
                cell.lines[hs_values[self.hs[u]]] = value
                cell.value = math.fsum(cell.lines.values())
        return cell if cell is not None else Cell()

    def segment(self, month: int, row: int) -> int | None:
        key = (month - self.first_month) * self.k + row
        seg = int(np.searchsorted(self.seg_cell, key))
        return seg if seg < len(self.seg_cell) and self.seg_cell[seg] == key else None


class _Cells(dict):
    """The Engine's ``cells`` as its alert builder reads them: folded on demand, for alerted rows only."""

    def __init__(self, run: _Run, month: int, p: int) -> None:
        super().__init__()
        self._run, self._month, self._p = run, month, p
        self._tops: np.ndarray | None = None

    def get(self, row: int, default: Any = None) -> Any:  # type: ignore[override]
        seg = self._run.segment(self._month, row)
        if seg is None or self._run.srt[self._run.starts[seg]] >= self._p:
            return default
        return self._run.fold(seg, self._p)

    def new_top(self, rows: np.ndarray, party: np.ndarray) -> np.ndarray:
        """``engine.new_top_of`` for these cells, over columns instead of one fold per row."""
        if self._tops is None:
            run = self._run
            start = int(np.searchsorted(run.month, self._month))
            self._tops = run.tops(start, self._p)
        out = np.where(np.isnan(party), np.nan, 0.0)
        has = nan_to_num(party) > 0
        out[has] = self._tops[np.asarray(rows)[has]]
        return out


def _running(v: np.ndarray, starts: np.ndarray, ends: np.ndarray, rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per position, the running sum and maximum of its segment so far, adding left to right
    as ``cell.value += value`` does (numpy's pairwise sums would round differently)."""
    cum = 0.0 + v
    cmax = v.copy()
    if len(v) == 0:
        return cum, cmax
    longest = int((ends - starts).max())
    limit = min(longest, _RANK_LOOP)
    if limit > 1:
        capped = np.minimum(rank, limit).astype(np.int16)
        by = np.argsort(capped, kind="stable")
        bounds = np.searchsorted(capped[by], np.arange(limit + 1))
        for r in range(1, limit):
            idx = by[bounds[r]:bounds[r + 1]]
            before = idx - 1
            cum[idx] = cum[before] + v[idx]
            here, best = v[idx], cmax[before]
            cmax[idx] = np.where(here > best, here, best)
    for a, b in zip(starts.tolist(), ends.tolist()):
        if b - a > limit:
            tail = v[a + limit:b].tolist()
            cum[a + limit - 1:b] = list(accumulate(tail, initial=float(cum[a + limit - 1])))
            cmax[a + limit - 1:b] = list(accumulate(tail, max, initial=float(cmax[a + limit - 1])))
    return cum, cmax


def _month_day(month: int, day: int) -> int:
    return dt.date(month // 12, month % 12 + 1, day).toordinal()
