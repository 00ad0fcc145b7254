"""The incremental engine: records in, alerts out, one record at a time.

Records must arrive in event order (``transitwatch replay`` sorts them; the
service keeps a watermark). A record of a later month closes every month
before it: all series are evaluated together, vectorized, and their state
advances by one month. Within a month, running totals of the series that
changed are checked on ``early.check_days``; a month whose running total
already passes what the full-month test needs alerts early, and says so.

A check day ``D`` is checked once the month's data is known complete up to its
eve, whatever reveals it: a declaration dated ``D`` or later (of any goods),
the service's watermark passing ``D - 1`` (:meth:`Engine.data_through`), or the
month closing with no declaration after ``D``. The check is as of ``D - 1``
and covers every series changed since the last check, so what it sees of a
goods group depends on that group's records only. The history of a new series
starts when its group started (or at ``watch.history_start``, when the
configuration sets it). So an engine holding only some hs6 codes (a partition
of the service, which routes records by hs6) emits exactly the alerts an
engine holding them all emits for them. The end of the input closes nothing:
a month is closed by a record of a later month (or :meth:`Engine.close_until`),
never by running out of records; a replay may check the month left in progress
as of its latest declaration (:meth:`Engine.finish` with ``to_date``).

The engine does no I/O and reads no clock: time is the records' own.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from transitwatch.detectors.alerts import (
    Alert,
    alert_id,
    ban_text,
    case_text,
    explain,
    hub_shift_text,
    mirror_text,
    new_consignees_text,
    period_of,
)
from transitwatch.detectors.base import DETECTORS, PARTY_MEMORY_MONTHS, Window, party_key
from transitwatch.detectors.cases import Case, CaseEvent, CaseParams, open_case
from transitwatch.detectors.contract import Declaration, Record
from transitwatch.detectors.errors import RejectError, StateError
from transitwatch.detectors.features import FEATURES
from transitwatch.detectors.numeric import nan_to_num
from transitwatch.detectors.policy import SEVERITIES, Lanes, Verdict
from transitwatch.detectors.reference import chpl, country_name
from transitwatch.detectors.sanctions import months_since, sanctions_calendar
from transitwatch.detectors.severity import CONFIDENCES, MATERIALITIES
from transitwatch.detectors.snapshot import EngineSnapshot
from transitwatch.detectors.table import SeriesKey, StateTable
from transitwatch.detectors.watch import WatchConfig

TOP_PARTIES = 3
NAMED_PARTIES = 10  # new consignees a record names (and a series remembers per month), biggest first


@dataclass(slots=True)
class NewParty:
    """A consignee new to a series in the month in progress: the name it was first
    written with, the day of its first declaration and its value so far (all spellings)."""

    name: str
    first_seen: dt.date
    value: float = 0.0


@dataclass(slots=True)
class Cell:
    """A series' running totals for the month in progress."""

    value: float = 0.0
    count: int = 0
    mass: float = 0.0
    max_item: float = math.nan
    exporters: dict[str, float] = field(default_factory=dict)
    consignees: dict[str, float] = field(default_factory=dict)
    lines: dict[str, float] | None = None  # monthly statistics: identity -> value (revisions replace)
    dirty: bool = True
    last: dt.date | None = None  # the latest declaration's date
    new_parties: int = 0  # consignees the series had not seen in PARTY_MEMORY_MONTHS months
    parties: set[str] = field(default_factory=set)  # the month's consignees, by party_key
    fresh: dict[str, NewParty] | None = None  # the new ones among them, by party_key (None: none yet)


@dataclass(frozen=True, slots=True)
class EarlyCheck:
    """One goods group's check of the month in progress: the rows that changed
    since the group's last check (not yet alerted early), their running totals
    (arrays over ``rows``), and the cells their alerts take parties from."""

    rows: np.ndarray
    as_of: dt.date
    value: np.ndarray
    count: np.ndarray
    max_item: np.ndarray
    cells: Mapping[int, Cell]
    party: np.ndarray  # new consignees (NaN where not counted)


class SeenIds(Protocol):
    """Where the engine remembers declaration ids, to drop re-sent declarations
    (a set by default; the service passes a bounded one)."""

    def __contains__(self, declaration_id: object, /) -> bool: ...

    def add(self, declaration_id: str, /) -> None: ...


@dataclass(frozen=True, slots=True)
class MonthSnapshot:
    """What one closed month looked like, for charts: arrays over all rows."""

    month: int
    value: np.ndarray
    expected: np.ndarray
    band_low: np.ndarray
    band_high: np.ndarray


class Engine:
    """Feeds records to the detectors and collects alerts.

    Examples
    --------
    >>> from transitwatch.detectors.contract import parse_mapping
    >>> e = Engine()
    >>> rows = [{"period": f"{y}-{m:02d}", "reporter": "DE", "partner": "KG", "flow": "export",
    ...          "hs_code": "854231", "value": 50_000 + 1_000 * (m % 3), "currency": "USD"}
    ...         for y in (2020, 2021) for m in range(1, 13)]
    >>> rows.append(dict(rows[-1], period="2022-01", value=400_000))
    >>> for r in rows:
    ...     e.add(parse_mapping(r))
    >>> e.finish(close_last=True)
    >>> [(a.period, a.detectors, a.severity) for a in e.drain()]
    [('2022-01', ('seasonal_surge',), 'high')]
    """

    def __init__(
        self,
        config: WatchConfig | None = None,
        *,
        on_close: Callable[[MonthSnapshot], None] | None = None,
        seen: SeenIds | None = None,
    ) -> None:
        self.config = config or WatchConfig.default()
        self._destinations = tuple(sorted(self.config.destinations))  # for the sanctions calendar
        self.policy = self.config.policy()
        self.on_close = on_close
        self.table: StateTable | None = None
        self.open_month: int | None = None
        self.cells: dict[int, Cell] = {}
        self._counts: Counter[str] = Counter()
        self._used = 0
        self._routes: dict[tuple[str, str, str, str, str], str | list] = {}
        self._seen: SeenIds = set() if seen is None else seen
        self._pending: list[Alert] = []
        self._early: dict[int, Alert] = {}
        self._latest: dt.date | None = None  # the month in progress's latest declaration
        self._next_check: dt.date | None = None  # its next check day (None: none left)
        self._lane_lists: tuple[list[int], list[int], list[bool], list[bool], list[bool], list[int], list[int],
                                list[int]] = ([], [], [], [], [], [], [], [])
        # (reporter, flow, hs6), (partner, flow, hs6) and the mirror test's (exporter, hub, hs6) -> group id
        self._groups: tuple[dict[tuple[str, str, str], int], dict[tuple[str, str, str], int],
                            dict[tuple[str, str, str], int]] = ({}, {}, {})
        self._reference: list[np.ndarray] = []  # feature rows of the reference period (isolation model)
        self._fitted_on: np.ndarray | None = None  # the rows the isolation model was fitted on
        self._lanes_cache: Lanes | None = None
        self._parties: dict[int, dict[str, int]] = {}  # row -> consignee -> last month seen
        # row -> closed month -> its new consignees named (or the cells to read them from: _kept_named)
        self._named: dict[int, dict[int, tuple[dict, ...] | Mapping[int, Cell]]] = {}
        self.cases: dict[int, Case] = {}  # row -> its open case
        self.case_params: CaseParams = self.config.params.get("cases") or CaseParams()
        self._role = self.config.role  # (reporter, partner) -> (alerts, destination) or None

    # -- records -------------------------------------------------------------------------------

    def add(self, rec: Record) -> None:
        """Take one record. Raises :class:`RejectError` for a record the
        configuration cannot value (no exchange rate for its currency)."""
        is_declaration = type(rec) is Declaration
        if is_declaration:
            seen = self._seen
            if rec.declaration_id in seen:
                self._counts["duplicate declarations ignored"] += 1
                return
            seen.add(rec.declaration_id)
        hs6 = rec.hs_code[:6]
        lane = (rec.reporter, rec.partner, rec.flow, hs6, rec.currency)
        route = self._routes.get(lane)
        if route is None:
            route = self._routes[lane] = self._route(lane)
        if type(route) is str:
            self._counts[route] += 1
            return
        month = rec.month
        if self.table is None:
            self.table = self.new_table(month)
            self._open(month)
        if month != self.open_month:
            if month > self.open_month:
                self._close_until(month)
            else:
                self._late(rec, hs6, route[0], is_declaration)
                return
        row = route[1]
        if row < 0 or (is_declaration and not route[2]):
            row = route[1] = self._row(SeriesKey(*lane[:4]), is_declaration)
            route[2] = route[2] or is_declaration
        value = rec.value / route[0]
        cell = self.cells.get(row)
        if is_declaration:
            date = rec.date
            due = self._next_check
            if due is not None and date >= due:
                self._check_due(date)
            if self._latest is None or date > self._latest:
                self._latest = date
            if cell is None:
                cell = self.cells[row] = Cell()
            cell.value += value
            cell.count += 1
            cell.last = date
            if not value <= cell.max_item:
                cell.max_item = value
            if rec.net_mass_kg is not None:
                cell.mass += rec.net_mass_kg
            name = rec.exporter
            if name:
                cell.exporters[name] = cell.exporters.get(name, 0.0) + value
            name = rec.consignee
            if name:
                cell.consignees[name] = cell.consignees.get(name, 0.0) + value
                key = party_key(name)
                if key and key not in cell.parties:
                    cell.parties.add(key)
                    if self._unseen(row, key, month):
                        cell.new_parties += 1
                        cell.fresh = cell.fresh or {}
                        cell.fresh[key] = NewParty(name, date)
                if cell.fresh is not None:
                    fresh = cell.fresh.get(key)
                    if fresh is not None:
                        fresh.value += value
        else:
            if cell is None:
                cell = self.cells[row] = Cell(lines={})
            elif cell.lines is None:
                cell.lines = {}
            if rec.hs_code in cell.lines:
                self._counts["revisions applied"] += 1
            cell.lines[rec.hs_code] = value
            cell.value = math.fsum(cell.lines.values())
        cell.dirty = True
        self._used += 1

    def _route(self, lane: tuple[str, str, str, str, str]) -> str | list:
        """Where records of a lane and currency go: the reason they are not
        watched, or ``[rate, row (-1 until first used), counted]``."""
        reason = route_reason(self.config, *lane)
        if reason is not None:
            return reason
        rate = self.config.rates[lane[4]]
        return [rate, -1, False]

    @property
    def counts(self) -> Counter[str]:
        """What the engine did with the records it was given, by outcome."""
        out = Counter(self._counts)
        out["records used"] = self._used
        return out

    def add_many(self, records: Iterable[Record]) -> None:
        for rec in records:
            self.add(rec)

    def finish(self, *, close_last: bool, to_date: bool = False) -> None:
        """End of input: ``close_last`` closes the month in progress (the input
        held it whole). Otherwise the month stays in progress with the early checks
        its records triggered, as a service sees the present; ``to_date`` also checks
        it as of its latest declaration (:meth:`check_to_date`: the data to date)."""
        if close_last and self.open_month is not None:
            self._close_until(self.open_month + 1)
        elif to_date:
            self.check_to_date()

    def close_until(self, month: int) -> None:
        """Close every month before ``month`` still open, as a record of ``month``
        would: for a service whose clock says ``month`` has begun while this
        engine's records have not reached it, and for a snapshot at a month boundary."""
        if self.open_month is not None and month > self.open_month:
            self._close_until(month)

    def drain(self) -> list[Alert]:
        """Alerts emitted since the last call, in order."""
        out, self._pending = self._pending, []
        return out

    # -- snapshots -----------------------------------------------------------------------------

    def snapshot(self) -> EngineSnapshot:
        """Everything the engine has learned, at a month boundary: the month in
        progress must have no records yet (call :meth:`close_until` with the
        new month first). Alerts not yet drained and the declaration ids seen are
        not part of it (the service keeps the ids in its own ``seen`` store).

        Raises :class:`StateError` when the month in progress already has records.
        """
        if self.cells:
            raise StateError(
                f"month {period_of(self.open_month)} already has records: take a snapshot at a month boundary, "
                "after close_until(<the new month>) and before its first record"
            )
        width = len(FEATURES)
        reference = np.concatenate(self._reference) if self._reference else np.empty((0, width))
        outcomes = {k: v for k, v in self.counts.items() if v}
        table = self.table
        if table is None:
            return EngineSnapshot.empty(outcomes=outcomes, reference=reference,
                                        reference_months=len(self._reference), fitted_on=self._fitted_on)
        n = len(table)
        return EngineSnapshot(
            open_month=self.open_month,
            start=table.start,
            month=table.month,
            keys=tuple(table.keys),
            values=table.values[:n].copy(),
            counts=table.counts[:n].copy(),
            protected=table.protected[:n].copy(),
            ramp=table.ramp[:n].copy(),
            streak=table.streak[:n].copy(),
            counted=table.counted[:n].copy(),
            group_starts=dict(table.starts),
            outcomes=outcomes,
            reference=reference,
            reference_months=len(self._reference),
            fitted_on=self._fitted_on,
            parties=table.parties[:n].copy(),
            leads=table.leads[:n].copy(),
            known_parties=self._known_parties(),
            cases={row: case.to_state() for row, case in sorted(self.cases.items())},
            named_parties={row: {m: self._kept_named(row, m) for m in months} for row, months in self._named.items()},
        )

    def _known_parties(self) -> dict[int, dict[str, int]]:
        """The consignees each row has seen that still count as known in the month in progress."""
        out = {}
        for row, known in self._parties.items():
            kept = _recent(known, self.open_month)
            if kept:
                out[row] = dict(sorted(kept.items()))
        return out

    @classmethod
    def from_snapshot(
        cls,
        snapshot: EngineSnapshot,
        config: WatchConfig | None = None,
        *,
        on_close: Callable[[MonthSnapshot], None] | None = None,
        seen: SeenIds | None = None,
    ) -> Engine:
        """An engine that goes on exactly as the one that took ``snapshot`` would,
        given the same configuration and the same ``seen`` ids.

        Examples
        --------
        >>> from transitwatch.detectors.contract import parse_mapping
        >>> e = Engine()
        >>> e.add(parse_mapping({"period": "2022-01", "reporter": "DE", "partner": "KG",
        ...                      "hs_code": "854231", "value": 5.0}))
        >>> e.close_until(24265)
        >>> again = Engine.from_snapshot(e.snapshot())
        >>> again.open_month, again.table.keys, again.counts["records used"]
        (24265, [SeriesKey(reporter='DE', partner='KG', flow='export', hs6='854231')], 1)
        """
        engine = cls(config, on_close=on_close, seen=seen)
        outcomes = Counter(snapshot.outcomes)
        engine._used = outcomes.pop("records used", 0)
        engine._counts = outcomes
        if snapshot.open_month is not None:
            engine.table = StateTable.from_arrays(
                start=snapshot.start, month=snapshot.month, keys=snapshot.keys, values=snapshot.values,
                counts=snapshot.counts, protected=snapshot.protected, ramp=snapshot.ramp, streak=snapshot.streak,
                counted=snapshot.counted, starts=dict(snapshot.group_starts),
                history_start=engine.config.history_start, parties=snapshot.parties,
                leads=snapshot.leads,
            )
            engine._parties = {row: dict(known) for row, known in snapshot.known_parties.items()}
            engine.cases = {row: Case.from_state(dict(state)) for row, state in snapshot.cases.items()}
            engine._named = {row: dict(months) for row, months in snapshot.named_parties.items()}
            for key in engine.table.keys:
                engine._remember(key)
            engine._open(snapshot.open_month)
        if snapshot.reference_months:
            empty = snapshot.reference[:0]
            engine._reference = [snapshot.reference.copy()] + [empty] * (snapshot.reference_months - 1)
        if snapshot.fitted_on is not None:
            engine._fit(snapshot.fitted_on.copy())
        return engine

    # -- months --------------------------------------------------------------------------------

    def new_table(self, start: int) -> StateTable:
        """An empty state table whose data starts in month ``start``, with this
        configuration's ``history_start`` (the columnar and batch paths use it too)."""
        return StateTable(start=start, history_start=self.config.history_start)

    def _open(self, month: int) -> None:
        self.open_month = month
        self.cells = {}
        self._early = {}
        self._latest = None
        days = self.config.early_days
        self._next_check = _month_day(month, days[0]) if days else None

    def _close_until(self, month: int) -> None:
        while self.open_month < month:
            if self._next_check is not None and self._latest is not None:
                # a check day passed with no declaration after it: its check first
                self._check_due(_month_end(self.open_month) + dt.timedelta(days=1))
            self._close(self.open_month)
            self._open(self.open_month + 1)

    def _row(self, key: SeriesKey, counted: bool, month: int | None = None) -> int:
        table = self.table
        before = len(table)
        row = table.row(key, counted=counted, month=month)
        if len(table) > before:
            self._remember(key)
        return row

    def _remember(self, key: SeriesKey) -> None:
        """The lane facts of a new row (the next one)."""
        sources, hubs, pairs = self._groups
        src, hub, is_hub, is_dest, prio, ban, pair, side = self._lane_lists
        src.append(sources.setdefault((key.reporter, key.flow, key.hs6), len(sources)))
        hub.append(hubs.setdefault((key.partner, key.flow, key.hs6), len(hubs)))
        alerts, destination = self._role(key.reporter, key.partner) or (False, False)
        # the mirror test pairs an exporter's export lane into a hub with the hub's import lane from it
        mirror = self.config.params["mirror"].enabled
        if mirror and key.flow == "export" and alerts:
            pair.append(pairs.setdefault((key.reporter, key.partner, key.hs6), len(pairs)))
            side.append(1)
        elif key.flow == "import" and self.config.mirror_evidence(key.reporter, key.partner):
            pair.append(pairs.setdefault((key.partner, key.reporter, key.hs6), len(pairs)))
            side.append(-1)
        else:
            pair.append(-1)
            side.append(0)
        is_hub.append(alerts)  # "hub" in Lanes: the lane alerts on its own rises
        is_dest.append(destination)
        tier = chpl().get(key.hs6)
        prio.append(tier is not None and tier.tier in ("1", "2"))
        ban.append(int(sanctions_calendar().ban_months([key.hs6], self._destinations)[0]))

    def _lanes(self) -> Lanes:
        """Per-row lane facts as arrays, rebuilt only when rows were added."""
        src, hub, is_hub, is_dest, prio, ban, pair, side = self._lane_lists
        if self._lanes_cache is not None and self._lanes_cache.is_hub.shape[0] == len(src):
            return self._lanes_cache
        self._lanes_cache = Lanes(
            source_group=np.array(src, dtype=np.int64),
            hub_group=np.array(hub, dtype=np.int64),
            is_hub=np.array(is_hub, dtype=bool),
            is_destination=np.array(is_dest, dtype=bool),
            priority=np.array(prio, dtype=bool),
            banned_from=np.array(ban, dtype=np.int64),
            mirror_pair=np.array(pair, dtype=np.int64),
            mirror_side=np.array(side, dtype=np.int64),
        )
        return self._lanes_cache

    def _inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The month's totals over all rows: value, count, largest declaration, new consignees."""
        table = self.table
        n = len(table)
        value = np.zeros(n)
        count = np.where(table.counted[:n], 0.0, np.nan)
        party = count.copy()
        max_item = np.full(n, np.nan)
        for row, cell in self.cells.items():
            value[row] = cell.value
            if cell.lines is None:
                count[row] = cell.count
                party[row] = cell.new_parties
                max_item[row] = cell.max_item
        return value, count, max_item, party

    def _totals(self, rows: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`_inputs` for these rows only (rows with a cell)."""
        cells, counted = self.cells, self.table.counted
        k = len(rows)
        value, count, max_item, party = np.empty(k), np.empty(k), np.empty(k), np.empty(k)
        for i, row in enumerate(rows):
            cell = cells[row]
            value[i] = cell.value
            if cell.lines is None:
                count[i], max_item[i], party[i] = cell.count, cell.max_item, cell.new_parties
            else:
                count[i] = party[i] = 0.0 if counted[row] else math.nan
                max_item[i] = math.nan
        return value, count, max_item, party

    def _close(self, month: int) -> None:
        value, count, max_item, party = self._inputs()
        self.close_month(month, value, count, max_item, party)
        for row, cell in self.cells.items():
            if cell.parties:
                self.see_parties(row, cell.parties, month)

    def _unseen(self, row: int, key: str, month: int) -> bool:
        """Whether series ``row`` had not seen consignee ``key`` in the memory's months before ``month``."""
        last = self._parties.get(row, _NO_PARTIES).get(key)
        return last is None or last < month - PARTY_MEMORY_MONTHS

    def see_parties(self, row: int, names: Iterable[str], month: int) -> None:
        """Remember that series ``row`` traded with these consignees (by
        :func:`~transitwatch.detectors.base.party_key`) in ``month``."""
        known = self._parties.get(row)
        if known is None:
            known = self._parties[row] = {}
        for name in names:
            if known.get(name, month) <= month:
                known[name] = month

    def close_month(self, month: int, value: np.ndarray, count: np.ndarray, max_item: np.ndarray,
                    party: np.ndarray | None = None, new_top: np.ndarray | None = None) -> None:
        """Close ``month`` for every series with these month totals (arrays over
        all rows; ``party``: new consignees, unknown when not given), emit its case
        updates and advance the state. The batch path calls this directly with totals it
        aggregated itself; the caller remembers the month's consignees
        (:meth:`see_parties`).

        Every lane that alerts (now, or early in the month) or has an open case gets
        one update of its case (:mod:`transitwatch.detectors.cases`); a hot month of an open case is
        kept out of the lane's baseline, and a lane with an open case is never relearned."""
        table = self.table
        if new_top is None and party is not None:
            new_top = new_top_of(np.arange(len(table)), party, self.cells)
        window = table.window(slice(0, len(table)), value, count, max_item, party, new_top)
        onset = np.full(len(table), month, dtype=np.int64)  # a case opening now, or its onset
        for row, case in self.cases.items():
            onset[row] = case.onset
        verdict = self.policy.decide(window, self._lanes(), onset=onset, month=month)
        alerted = verdict.alert
        rows = sorted(set(np.flatnonzero(alerted).tolist()) | set(self._early) | set(self.cases))
        protect, relearn, streak, release = verdict.protect, verdict.relearn, verdict.streak, verdict.release
        accepted: list[int] = []
        if rows:
            reporters = self._corroborating(verdict)
            as_of = _month_end(month).isoformat()
            protect, relearn, streak = protect.copy(), relearn.copy(), streak.copy()
            release = None if release is None else release.copy()
            floor = self.policy.surge.params.min_excess
            params = self.case_params
            season = verdict.surge.learned_season  # the month's learned seasonal factor: cases judge against it
            for i in rows:
                case = self.cases.get(i)
                fired = bool(alerted[i])
                if case is None:
                    case = self._open_case(i, i, month, verdict)
                elif case.closed_at >= 0:  # closed: it reopens if the lane is hot again in time
                    # (no early alert on it: early checks skip every lane with a case, closed ones too)
                    waits = case.dormant(month, float(value[i]), alerted=fired, floor=floor, params=params,
                                         season=float(season[i]))
                    if waits is None:
                        del self.cases[i]
                    if waits is not False:
                        continue
                event, note = case.advance(
                    month, float(value[i]), alerted=fired, detectors=verdict.detectors(i) if fired else (),
                    severity=int(verdict.severity[i]) if fired else 0, floor=floor, params=params, order=DETECTORS,
                    confidence=int(verdict.confidence[i]) if fired else 0,
                    materiality=int(verdict.materiality[i]) if fired else 0, season=float(season[i]),
                )
                self._pending.append(
                    self._alert(i, i, month, verdict, window, early=False, as_of=as_of,
                                corroborating=reporters.get(i, ()), case=case, event=event, note=note)
                )
                if case.quiet == 0:
                    protect[i] = True  # a hot month of a case never enters the baseline
                relearn[i] = False
                streak[i] = 0
                if release is not None:
                    release[i] = False
                if event == "closed" and note.startswith("closed: new level accepted"):
                    del self.cases[i]  # the new level is the lane's normal: nothing to reopen
                    accepted.append(i)
                elif event == "closed" and not params.reopen_within:
                    del self.cases[i]
                else:
                    if event == "closed":
                        case.closed_at = month
                    self.cases[i] = case
        self._learn_reference(verdict)
        if self.on_close is not None:
            s = verdict.surge
            self.on_close(MonthSnapshot(month, value, s.expected, s.band_low, s.band_high))
        table.commit(
            month, value, count, protect, ramp=verdict.ramp_statistic, streak=streak,
            release=release, relearn=relearn, relearn_months=self.policy.params.relearn_after,
            party=party, lead=lead_of(new_top, max_item) if new_top is not None else None,
        )
        if accepted:
            table.forget(np.array(accepted, dtype=np.int64), keep=min(self.case_params.accept_after, table.history))
        self._remember_named(month, party)
        if month % 12 == 0:  # forget consignees too old to matter, once a year
            for row, known in self._parties.items():
                self._parties[row] = _recent(known, month + 1)

    def _remember_named(self, month: int, party: np.ndarray | None) -> None:
        """Keep the names of each series' new consignees of closed ``month`` (the
        :data:`NAMED_PARTIES` biggest) for the records of the next two months, whose
        new-consignee evidence may pool it; forget those of older months. The engine's own
        cells are read now; cells that fold on demand (the columnar replay's) are read
        only when a record or a snapshot needs them (:meth:`_kept_named`)."""
        named = self._named
        for row in list(named):
            kept = {m: e for m, e in named[row].items() if m >= month - 1}
            if kept:
                named[row] = kept
            else:
                del named[row]
        if party is None:
            return
        cells = self.cells
        now = type(cells) is dict
        for row in np.flatnonzero(nan_to_num(party) > 0).tolist():
            if not now:
                named.setdefault(row, {})[month] = cells
                continue
            cell = cells.get(row)
            if cell is not None and cell.fresh:
                named.setdefault(row, {})[month] = _named(cell.fresh)[:NAMED_PARTIES]

    def _kept_named(self, row: int, month: int) -> tuple[dict, ...]:
        """The new consignees of series ``row`` in closed ``month`` that the engine kept."""
        months = self._named.get(row)
        if not months:
            return ()
        kept = months.get(month, ())
        if not isinstance(kept, tuple):  # cells that fold on demand: read them now, once
            cell = kept.get(row)
            kept = months[month] = _named(cell.fresh)[:NAMED_PARTIES] if cell is not None and cell.fresh else ()
        return kept

    def _open_case(self, row: int, i: int, month: int, verdict: Verdict) -> Case:
        """A case opening on ``row`` (lane ``i`` of ``verdict``) in ``month``, its pre-case
        level frozen from the verdict (an early alert of the month counts as notified already)."""
        level, band = _pre_case(i, verdict)
        case = open_case(self.table.keys[row].series_id, month, level=level, band=band, period=period_of(month))
        early = self._early.get(row)
        if early is not None:
            case.notified_severity = SEVERITIES.index(early.severity)
            case.notified_excess = max(early.observed_value - case.level, 0.0)
        return case

    def _learn_reference(self, verdict: Verdict) -> None:
        """Collect the reference period's features and fit the isolation model once."""
        model = self.policy.isolation
        if verdict.features is None or model.fitted:
            return
        self._reference.append(verdict.features[verdict.surge.eligible & ~verdict.protect])
        if len(self._reference) >= model.params.fit_months:
            rows = np.concatenate(self._reference)
            self._reference = []
            if rows.shape[0] >= 50:
                self._fit(rows)
            else:
                self._reference = [rows]

    def _fit(self, rows: np.ndarray) -> None:
        """Fit the isolation model, keeping the rows it saw so a snapshot can refit it
        exactly. Sub-samples as :meth:`IsolationForestDetector.fit` would (same seed),
        so the kept rows stay bounded and the model is the same."""
        model = self.policy.isolation
        p = model.params
        if rows.shape[0] > p.max_fit_rows:
            rng = np.random.default_rng(p.seed)
            rows = rows[np.sort(rng.choice(rows.shape[0], p.max_fit_rows, replace=False))]
        model.fit(rows)
        self._fitted_on = rows

    def _check_due(self, date: dt.date) -> None:
        """The month's data is known complete up to the day before ``date`` (a
        declaration of ``date`` arrives, the service's watermark passed the day
        before, or the month closes): check every series changed since the last check.

        Each series is checked as of the eve of the first check day after its latest
        declaration: what a partition holding only its goods group would say, whatever
        other goods revealed the data as complete."""
        month = self.open_month
        days = [_month_day(month, d) for d in self.config.early_days]
        later = [d for d in days if d > date]
        self._next_check = later[0] if later else None
        rows = self._changed()
        if not rows:
            return
        by_day: dict[dt.date, list[int]] = {}
        cells = self.cells
        for row in rows:
            last = cells[row].last
            due = next(d for d in days if d > last)
            by_day.setdefault(due - dt.timedelta(days=1), []).append(row)
        self._run([(as_of, by_day[as_of]) for as_of in sorted(by_day)])

    def _changed(self) -> list[int]:
        """The series changed since the last check (first touched first) that have not
        alerted early this month. Monthly statistics are a whole month's figures: they
        are judged when the month closes."""
        early = self._early
        rows = []
        for row, cell in self.cells.items():
            if cell.dirty:
                cell.dirty = False
                if row not in early and cell.lines is None:
                    rows.append(row)
        return rows

    def _run(self, checks: list[tuple[dt.date, list[int]]]) -> None:
        cells = self.cells
        batch = []
        for as_of, rows in checks:
            value, count, max_item, party = self._totals(rows)
            batch.append(EarlyCheck(np.array(rows, dtype=np.int64), as_of, value, count, max_item, cells, party))
        for alerts in self.run_checks(batch):
            self._pending.extend(alerts)

    def data_through(self, day: dt.date) -> None:
        """Every record dated ``day`` or earlier is in (the service's watermark): run the
        month's check of a check day this reveals as passed, as a declaration of the next
        day would. Nothing when no check is due, or no month is in progress."""
        if self.check_revealed(day):
            self._check_due(min(day + dt.timedelta(days=1), _month_end(self.open_month) + dt.timedelta(days=1)))

    def check_revealed(self, day: dt.date) -> bool:
        """Whether :meth:`data_through` ``(day)`` would run a check."""
        return (self._latest is not None and self._next_check is not None
                and day >= self._next_check - dt.timedelta(days=1))

    def check_to_date(self) -> None:
        """The end of a finite input (a replay) that leaves its last month in progress:
        check that month as of its latest declaration, whatever the check days.
        Nothing when it has no declaration."""
        if self.open_month is not None and self._latest is not None:
            rows = self._changed()
            if rows:
                self._run([(self._latest, rows)])

    def run_checks(self, checks: Sequence[EarlyCheck]) -> list[list[Alert]]:
        """Run early checks of the month in progress and return each one's alerts
        (not queued: the caller emits them, in its order). The in-month verdict is
        row-wise, so checks run together give what each gives alone; the columnar
        replay runs all groups' n-th checks of a month in one call."""
        self._counts["series checked early"] += sum(len(c.rows) for c in checks)
        out: list[list[Alert]] = [[] for _ in checks]
        # No detector alerts on a month below its smallest money floor: skip those
        # rows (most of them, early in a month) without changing any outcome.
        # A lane with an open case gets its update at the month's end, not early alerts.
        floor = self.policy.smallest_alert_value
        cases = np.fromiter(self.cases, np.int64, len(self.cases))
        keep = [(c.value >= floor) & ~np.isin(c.rows, cases) for c in checks]
        sizes = [int(k.sum()) for k in keep]
        if not sum(sizes):
            return out
        rows, value, count, max_item, party = (
            np.concatenate([getattr(c, name)[k] for c, k in zip(checks, keep)])
            for name in ("rows", "value", "count", "max_item", "party")
        )
        new_top = np.concatenate([new_top_of(c.rows[k], c.party[k], c.cells) for c, k in zip(checks, keep)])
        window = self.table.window(rows, value, count, max_item, party, new_top)
        # early checks skip lanes with a case: each would open one this month
        verdict = self.policy.decide(window, self._lanes().take(rows), cross=False,
                                     onset=np.full(rows.shape[0], self.open_month, dtype=np.int64))
        hits = np.flatnonzero(verdict.alert)
        owners = np.searchsorted(np.cumsum(sizes), hits, side="right")
        for i, j in zip(hits.tolist(), owners.tolist()):
            check, row = checks[j], int(rows[i])
            month = self.open_month
            case = self._open_case(row, i, month, verdict)
            case.advance(month, float(value[i]), alerted=True, detectors=verdict.detectors(i),
                         severity=int(verdict.severity[i]), floor=self.policy.surge.params.min_excess,
                         params=self.case_params, order=DETECTORS, confidence=int(verdict.confidence[i]),
                         materiality=int(verdict.materiality[i]), season=float(verdict.surge.learned_season[i]))
            alert = self._alert(row, i, month, verdict, window, early=True, as_of=check.as_of.isoformat(),
                                corroborating=(), cells=check.cells, case=case, event="opened", note="")
            self._early[row] = alert
            out[j].append(alert)
        return out

    def _late(self, rec: Record, hs6: str, rate: float, is_declaration: bool) -> None:
        """A record for a month already closed: fold it into the history so
        later baselines are right; the closed month's verdict stands."""
        table = self.table
        offset = table.month - rec.month
        if not is_declaration or offset >= table.history:
            self._counts["late records not applied (month closed)"] += 1
            return
        row = self._row(SeriesKey(rec.reporter, rec.partner, rec.flow, hs6), is_declaration, rec.month)
        pos = table.history - 1 - offset
        table.values[row, pos] = nan_to_num(table.values[row, pos]) + rec.value / rate
        table.counts[row, pos] = nan_to_num(table.counts[row, pos]) + 1
        key = party_key(rec.consignee) if rec.consignee else ""
        if key:
            if self._unseen(row, key, rec.month):
                table.parties[row, pos] = nan_to_num(table.parties[row, pos]) + 1
            self.see_parties(row, (key,), rec.month)
        self._counts["late records folded into history"] += 1

    # -- alerts --------------------------------------------------------------------------------

    def _corroborating(self, verdict: Verdict) -> dict[int, tuple[str, ...]]:
        col = DETECTORS.index("corroboration")
        hits = np.flatnonzero(verdict.fired[:, col])
        if hits.size == 0:
            return {}
        group = self._lanes().hub_group
        by_group: dict[int, list[int]] = {}
        for r in hits.tolist():
            by_group.setdefault(int(group[r]), []).append(r)
        keys = self.table.keys
        return {
            r: tuple(sorted(keys[o].reporter for o in members if o != r))
            for members in by_group.values()
            for r in members
        }

    def _new_named(self, row: int, i: int, month: int, window: Window, cell: Cell, months: int) -> tuple[dict, ...]:
        """The new consignees of a record's ``months`` pooled months, biggest first, at most
        :data:`NAMED_PARTIES`: this month's from its cell, the months before from what the
        engine kept (:meth:`_remember_named`), never more of a month than its history counts."""
        counts = (window.party[i], window.parties[i, -1], window.parties[i, -2])[:months]
        out: list[dict] = []
        for j, count in enumerate(counts):
            parties = _named(cell.fresh or {}) if j == 0 else self._kept_named(row, month - j)
            out.extend(parties[:int(nan_to_num(count))])
        out.sort(key=lambda p: (-p["value"], p["name"]))
        return tuple(out[:NAMED_PARTIES])

    def _observed_months(self, row: int, i: int, month: int, window: Window, months: int) -> int:
        """How many months of the lane's consignees were observed before the first of a record's
        ``months`` pooled months, at most :data:`PARTY_MEMORY_MONTHS`: a consignee new in any of
        them was seen in none of those months. Counted from the lane's history of new consignees
        (known from its first counted month; a relearned or accepted level restarts it), or, where
        that history is known all the way back, from the month its goods group (or
        ``history_start``) began."""
        history = window.parties[i]
        before = history[:history.shape[0] - (months - 1)]
        known = int(np.count_nonzero(~np.isnan(before)))
        if known and known == before.shape[0]:
            table = self.table
            start = table.history_start if table.history_start is not None else table.starts.get(
                table.keys[row].hs6, table.start)
            known = max(known, month - (months - 1) - start)
        return min(known, PARTY_MEMORY_MONTHS)

    def _carried(self, i: int, verdict: Verdict, detectors: tuple[str, ...], observed: float,
                 band: float | None) -> tuple[str, ...]:
        """What carried a record's evidence: ``value`` (the month above the top of the lane's usual
        range), the surge test's ``count`` and ``frequency`` tails, ``two_months`` (the surge test
        pooled with last month, when nothing else of it passed), then the other detectors that fired."""
        if not detectors:
            return ()
        s, p = verdict.surge, self.policy.surge.params
        out = []
        if band is not None and observed > band:
            out.append("value")
        if s.eligible[i]:
            if s.p_count[i] <= p.count_alpha:
                out.append("count")
            if s.p_freq[i] <= p.count_alpha and s.z_robust[i] >= 0.0:
                out.append("frequency")
            if "seasonal_surge" in detectors and not out and s.sustained[i]:
                out.append("two_months")
        out += [d for d in detectors if d not in ("seasonal_surge", "isolation")]
        return tuple(out)

    def _alert(
        self,
        row: int,
        i: int,
        month: int,
        verdict: Verdict,
        window: Window,
        *,
        early: bool,
        as_of: str,
        corroborating: tuple[str, ...],
        case: Case,
        event: CaseEvent,
        note: str,
        cells: Mapping[int, Cell] | None = None,
    ) -> Alert:
        key = self.table.keys[row]
        cell = (self.cells if cells is None else cells).get(row) or Cell()
        s = verdict.surge
        detectors = verdict.detectors(i)
        period = period_of(month)
        goods = chpl().get(key.hs6)
        baseline = _num(s.expected[i]) if s.eligible[i] else _num(verdict.novelty.baseline[i])
        observed = float(window.value[i])
        counted = not math.isnan(window.count[i])
        observed_count = int(window.count[i]) if counted else None
        baseline_count = _num(s.expected_count[i]) if counted else None
        p_value = float(s.p_value[i]) if s.eligible[i] else None
        band = _num(s.band_high[i]) if s.eligible[i] else None
        dest_ratio = dest_before = dest_after = None
        if verdict.diversion is not None:
            dest_ratio = _num(verdict.diversion.destination_ratio[i])
            if "diversion" in detectors and verdict.diversion.destination_before is not None:
                dest_before = _num(round(float(verdict.diversion.destination_before[i]), 2))
                dest_after = _num(round(float(verdict.diversion.destination_after[i]), 2))
        shift = verdict.hub_shift
        shifted = shift is not None and "hub_shift" in detectors
        mirror = verdict.mirror
        mirrored = mirror is not None and "mirror" in detectors
        currency = self.config.base_currency
        exporters = _top(cell.exporters)
        consignees = _top(cell.consignees)
        destinations = " or ".join(country_name(c) for c in sorted(self.config.destinations))
        ramp_tests = verdict.ramp.passed(i) if "ramp" in detectors else ()
        c = verdict.consignees
        new_parties = _int(c.new[i]) if counted and not math.isnan(window.party[i]) else None
        new_expected = _num(round(float(c.expected[i]), 4)) if new_parties is not None else None
        new_months = int(c.months[i]) if new_parties is not None else None
        named: tuple[dict, ...] = ()
        observed_months = None
        if new_parties is not None:
            named = self._new_named(row, i, month, window, cell, new_months)
            observed_months = self._observed_months(row, i, month, window, new_months)
        level = round(case.level, 2)  # the case's ratio too is of the numbers the record carries
        case_ratio = round(round(observed, 2) / level, 4) if level > 0 else None
        if not detectors:  # a month of an open case in which no detector alerted: the case's own numbers,
            # for this calendar month (times the lane's learned seasonal factor, as the case judges it)
            season = float(s.learned_season[i])
            baseline, p_value, baseline_count = case.level * season, None, None
            band = _num(case.band * season) if case.band > 0 else None
        # one expected value, one ratio (of the rounded numbers the record carries), one band
        baseline = None if baseline is None else round(baseline, 2)
        ratio = round(round(observed, 2) / baseline, 4) if baseline and (not detectors or s.eligible[i]) else None
        band = None if band is None else round(band, 2)
        carried = self._carried(i, verdict, detectors, observed, band)
        ban = sanctions_calendar().ban(key.hs6, self._destinations)
        since_ban = None if ban is None else months_since(case.onset, ban.month)
        text = case_text(
            key=key, period=period, event=event, note=note, onset=period_of(case.onset), months=case.months,
            observed_value=observed, level=case.level, ratio=case_ratio, excess=case.excess,
            peak_period=period_of(case.peak_month), peak_ratio=_num(case.ratio(case.peak_value)),
            detectors=case.detectors, fired=bool(detectors), currency=currency,
            expected=baseline if s.eligible[i] else None, band=band, quiet=case.quiet,
            close_after=self.case_params.close_after,
        )
        if detectors:
            text = explain(
                key=key, period=period, detectors=detectors, ramp_tests=ramp_tests, observed_value=observed,
                baseline_value=baseline, observed_count=observed_count, baseline_count=baseline_count,
                ratio=ratio, p_value=p_value, currency=currency, top_exporters=exporters,
                corroborating=corroborating, early=early, as_of=as_of, destination_ratio=dest_ratio,
                destination_before=dest_before, destination_after=dest_after,
                destinations=destinations, new_consignees=new_parties, new_consignees_expected=new_expected,
                new_consignees_months=new_months, new_consignees_named=named,
                new_consignees_observed=observed_months, band_high=band, carried_by=carried,
                exporters=len(cell.exporters) if counted else None,
            ) + " " + text
            if shifted:
                text += " " + hub_shift_text(partner=country_name(key.partner), rising=int(shift.rising[i]),
                                             reporters=int(shift.reporters[i]), ratio=float(shift.median_ratio[i]))
            if mirrored:
                mp = self.policy.mirror.params
                lag = int(mirror.lag[i])
                text += " " + mirror_text(
                    exporter=country_name(key.reporter), hub=country_name(key.partner),
                    exports=float(mirror.exports[i]), imports=float(mirror.imports[i]),
                    ratio=float(mirror.ratio[i]), usual=float(mirror.usual[i]), periods=int(mirror.periods[i]),
                    max_lag=mp.max_lag, period=period, exports_period=period_of(month - lag), quarter=mp.period == "quarter",
                    cif_fob=mp.cif_fob, currency=currency,
                )
        elif new_parties:  # a month of a case: its new buyers still matter to whoever works it
            text += " " + new_consignees_text(
                reporter=country_name(key.reporter), count=new_parties, months=new_months,
                observed_months=observed_months, named=named, expected=new_expected, currency=currency,
            )
        if ban is not None:
            text += " " + ban_text(since=ban.applies_from.isoformat(), by=ban.label,
                                   destination=country_name(ban.destination), months=since_ban)
        evidence = {
            "z": round(float(s.z[i]), 4),
            "z_robust": round(float(s.z_robust[i]), 4),
            "band_high": band,
            "carried_by": list(carried),
            "ramp_statistic": round(float(verdict.ramp.statistic[i]), 4),
            "ramp_tests": list(ramp_tests),
            "destination_ratio": dest_ratio,
            "destination_before": dest_before,
            "destination_after": dest_after,
            "hub_shift_reporters": int(shift.reporters[i]) if shifted else None,
            "hub_shift_rising": int(shift.rising[i]) if shifted else None,
            "hub_shift_ratio": round(float(shift.median_ratio[i]), 4) if shifted else None,
            # the mirror test's figures (detectors/mirror.py): both reported sides, their ratio, its usual level
            "mirror_exports": round(float(mirror.exports[i]), 2) if mirrored else None,
            "mirror_imports": round(float(mirror.imports[i]), 2) if mirrored else None,
            "mirror_ratio": round(float(mirror.ratio[i]), 4) if mirrored else None,
            "mirror_usual_ratio": round(float(mirror.usual[i]), 4) if mirrored else None,
            "mirror_lag": int(mirror.lag[i]) if mirrored else None,
            "mirror_periods": int(mirror.periods[i]) if mirrored else None,
            "mirror_p": _num(mirror.p_value[i]) if mirrored else None,
            "isolation_score": None if verdict.isolation is None else round(float(verdict.isolation[i]), 4),
            "distinct_exporters": len(cell.exporters) if counted else None,
            "distinct_consignees": len(cell.consignees) if counted else None,
            "new_consignees": new_parties,
            "new_consignees_expected": new_expected,
            "new_consignees_months": new_months,
            "new_consignees_observed_months": observed_months,
            "new_consignees_named": None if new_parties is None else list(named),
            "net_mass_kg": cell.mass if counted and cell.mass else None,
            # severity's grounds (detectors/severity.py): the month's p family-wise, all the evidence
            "p_family": _num(verdict.p_family[i]),
            "p_evidence": float(verdict.p_evidence[i]),
            "family_size": self.policy.family_size,
            # a case opening [sanctions] evidence_months after its goods' ban: confidence one grade up (to high)
            "sanctions_evidence": bool(verdict.sanctioned[i]) if verdict.sanctioned is not None else False,
            "ban_precision": None if ban is None else ban.precision,
        }
        return Alert(
            alert_id=alert_id(key, period),
            series_id=key.series_id,
            reporter=key.reporter,
            partner=key.partner,
            flow=key.flow,
            hs6=key.hs6,
            hs_description=goods.description if goods else None,
            chpl_tier=goods.tier if goods else None,
            period=period,
            detectors=detectors,
            score=float(verdict.score[i]),
            severity=SEVERITIES[int(verdict.severity[i])],
            observed_value=round(observed, 2),
            baseline_value=baseline,
            observed_count=observed_count,
            baseline_count=None if baseline_count is None else round(baseline_count, 3),
            ratio=ratio,
            p_value=p_value,
            currency=currency,
            top_exporters=exporters,
            top_consignees=consignees,
            corroborating_reporters=corroborating,
            early=early,
            as_of=as_of,
            explanation=text,
            evidence=evidence,
            confidence=CONFIDENCES[int(verdict.confidence[i])],
            materiality=MATERIALITIES[int(verdict.materiality[i])],
            banned_since=None if ban is None else ban.applies_from.isoformat(),
            banned_by=None if ban is None else ban.label,
            months_since_ban=since_ban,
            case_id=case.case_id,
            case_severity=SEVERITIES[case.severity],
            case_status=case.status(event),
            case_event=event,
            case_onset=period_of(case.onset),
            case_months=case.months,
            case_level=round(case.level, 2),
            case_ratio=case_ratio,
            case_peak_period=period_of(case.peak_month),
            case_peak_ratio=None if _num(case.ratio(case.peak_value)) is None else round(case.ratio(case.peak_value), 4),
            case_excess=round(case.excess, 2),
            case_detectors=case.detectors,
            case_note=note,
        )


_NO_PARTIES: dict[str, int] = {}


def _pre_case(i: int, verdict: Verdict) -> tuple[float, float]:
    """The pre-case level and the upper edge of a normal month of lane ``i`` of a
    verdict: the surge test's level (a month of the lane's usual year, before the
    seasonal factor) and its band brought to that level; for a lane the surge test
    cannot judge, the near-empty baseline of the novelty test."""
    s = verdict.surge
    if s.eligible[i]:
        level = float(s.level[i])
        expected, high = float(s.expected[i]), float(s.band_high[i])
        band = high * level / expected if expected > 0 and math.isfinite(high) else level
        return level, band
    level = float(verdict.novelty.baseline[i])
    return level, level


def _named(fresh: Mapping[str, NewParty]) -> tuple[dict, ...]:
    """New consignees as a record names them, biggest first."""
    best = sorted(fresh.values(), key=lambda p: (-p.value, p.name))
    return tuple({"name": p.name, "value": round(p.value, 2), "first_seen": p.first_seen.isoformat()} for p in best)


def _recent(known: dict[str, int], month: int) -> dict[str, int]:
    """The consignees of ``known`` (name -> last month seen) that are not new in ``month``."""
    oldest = month - PARTY_MEMORY_MONTHS
    return {c: m for c, m in known.items() if m >= oldest}


def _int(x: float) -> int | None:
    return None if math.isnan(x) else int(x)


def _num(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def new_top_of(rows: np.ndarray, party: np.ndarray, cells: Mapping[int, Cell]) -> np.ndarray:
    """The month's value to each row's largest new consignee, from its cell (0 without a new
    consignee, NaN where consignees are not counted)."""
    columnar = getattr(cells, "new_top", None)  # cells that fold on demand compute it over columns
    if columnar is not None:
        return columnar(rows, party)
    out = np.where(np.isnan(party), np.nan, 0.0)
    for i in np.flatnonzero(nan_to_num(party) > 0).tolist():
        cell = cells.get(int(rows[i]))
        if cell is not None and cell.fresh:
            out[i] = max(f.value for f in cell.fresh.values())
    return out


def lead_of(new_top: np.ndarray, max_item: np.ndarray) -> np.ndarray:
    """The value to a new consignee where it took the month's largest declaration (its value to
    the largest new consignee covers the largest declaration), 0 where no new consignee did, NaN
    where consignees are not counted: what the state table keeps as a month's *lead*.

    Examples
    --------
    >>> lead_of(np.array([50.0, 20.0, 0.0, np.nan]), np.array([40.0, 30.0, 30.0, 10.0])).tolist()
    [50.0, 0.0, 0.0, nan]
    """
    took = (new_top > 0) & ~np.isnan(max_item) & (nan_to_num(new_top) >= nan_to_num(max_item))
    return np.where(np.isnan(new_top), np.nan, np.where(took, new_top, 0.0))


def _top(parties: dict[str, float]) -> tuple[dict[str, object], ...]:
    best = sorted(parties.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_PARTIES]
    return tuple({"name": name, "value": round(value, 2)} for name, value in best)


def _month_end(month: int) -> dt.date:
    return dt.date(month // 12 + (month % 12 == 11), (month + 1) % 12 + 1, 1) - dt.timedelta(days=1)


def _month_day(month: int, day: int) -> dt.date:
    return dt.date(month // 12, month % 12 + 1, day)


def route_reason(config: WatchConfig, reporter: str, partner: str, flow: str, hs6: str, currency: str) -> str | None:
    """Why the engine would not watch records of this lane (``None``: it would).

    Raises :class:`RejectError` (``no_fx_rate``) for a watched lane in a currency
    the configuration cannot value, as :meth:`Engine.add` does.

    Examples
    --------
    >>> cfg = WatchConfig.default()
    >>> route_reason(cfg, "DE", "KG", "export", "854231", "USD") is None
    True
    >>> route_reason(cfg, "DE", "FR", "export", "854231", "USD")
    'not watched: partner'
    >>> route_reason(cfg, "DE", "KG", "export", "999999", "USD")
    'not watched: hs6'
    >>> route_reason(cfg, "KG", "DE", "import", "854231", "USD") is None  # Kyrgyzstan's imports from Germany
    True
    """
    reason = _watch_reason(config, reporter, partner, flow, hs6)
    if reason is not None and flow == "import" and hs6 in config.hs6 and config.mirror_evidence(reporter, partner):
        reason = None  # a hub's imports from a watched exporter: the mirror test's evidence
    if reason is not None:
        return reason
    if currency not in config.rates:
        raise RejectError(
            "no_fx_rate",
            f"no exchange rate for currency {currency}: add it under [currency.rates] in the configuration",
            field="currency",
        )
    return None


def _watch_reason(config: WatchConfig, reporter: str, partner: str, flow: str, hs6: str) -> str | None:
    """Why a lane is not watched for its own rises or as a destination (``None``: it is)."""
    if not config.watches_partner(partner):
        return "not watched: partner"
    if hs6 not in config.hs6:
        return "not watched: hs6"
    if flow not in config.flows:
        return "not watched: flow"
    if config.role(reporter, partner) is None:
        return "not watched: reporter"
    return None
