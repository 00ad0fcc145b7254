"""The incremental engine: records in, alerts out, one record at a time.

Records must arrive in event order (``transitwatch replay`` sorts them; the
service keeps a watermark). A record of a later month closes every month
before it: all series are evaluated together, vectorized, and their state
advances by one month. Within a month, running totals of the series that
changed are checked on ``early.check_days``; a month whose running total
already passes what the full-month test needs alerts early, and says so.

The engine does no I/O and reads no clock: time is the records' own.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from detectors.alerts import Alert, alert_id, explain, period_of
from detectors.base import DETECTORS, Window
from detectors.contract import Declaration, MonthlyStat, Record
from detectors.errors import RejectError
from detectors.policy import SEVERITIES, Lanes, Verdict
from detectors.reference import chpl, country_name
from detectors.table import SeriesKey, StateTable
from detectors.watch import WatchConfig

TOP_PARTIES = 3


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
    >>> from detectors.contract import parse_mapping
    >>> e = Engine()
    >>> rows = [{"period": f"{y}-{m:02d}", "reporter": "DE", "partner": "KG", "flow": "export",
    ...          "hs_code": "854231", "value": 50_000 + 1_000 * (m % 3), "currency": "USD"}
    ...         for y in (2020, 2021) for m in range(1, 13)]
    >>> rows.append(dict(rows[-1], period="2022-01", value=400_000))
    >>> for r in rows:
    ...     e.add(parse_mapping(r))
    >>> e.finish(close_last=True)
    >>> [(a.period, a.detectors, a.severity) for a in e.drain()]
    [('2022-01', ('seasonal_surge',), 'critical')]
    """

    def __init__(self, config: WatchConfig | None = None, *, on_close: Callable[[MonthSnapshot], None] | None = None) -> None:
        self.config = config or WatchConfig.default()
        self.policy = self.config.policy()
        self.on_close = on_close
        self.table: StateTable | None = None
        self.open_month: int | None = None
        self.cells: dict[int, Cell] = {}
        self._counts: Counter[str] = Counter()
        self._used = 0
        self._routes: dict[tuple[str, str, str, str, str], str | list] = {}
        self._seen: set[str] = set()
        self._pending: list[Alert] = []
        self._early: dict[int, Alert] = {}
        self._next_check: dt.date | None = None
        self._last_date: dt.date | None = None
        self._lane_lists: tuple[list[int], list[int], list[bool], list[bool], list[bool]] = ([], [], [], [], [])
        self._groups: tuple[dict[tuple[str, str, str], int], dict[tuple[str, str, str], int]] = ({}, {})
        self._reference: list[np.ndarray] = []
        self._lanes_cache: Lanes | None = None  # feature rows of the reference period (isolation model)
        cfg = self.config
        self._role = {c: "hub" for c in cfg.hubs} | {c: "destination" for c in cfg.destinations}

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
            self.table = StateTable(start=month)
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
            if self._next_check is not None and date >= self._next_check:
                self.check_early(date - dt.timedelta(days=1))
            self._last_date = date
            if cell is None:
                cell = self.cells[row] = Cell()
            cell.value += value
            cell.count += 1
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
        else:
            self._last_date = _month_end(month)
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
        reporter, partner, flow, hs6, currency = lane
        cfg = self.config
        if partner not in self._role:
            return "not watched: partner"
        if hs6 not in cfg.hs6:
            return "not watched: hs6"
        if flow not in cfg.flows:
            return "not watched: flow"
        if cfg.reporters and reporter not in cfg.reporters:
            return "not watched: reporter"
        rate = cfg.rates.get(currency)
        if rate is None:
            raise RejectError(
                "no_fx_rate",
                f"no exchange rate for currency {currency}: add it under [currency.rates] in the configuration",
                field="currency",
            )
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

    def finish(self, *, close_last: bool) -> None:
        """End of input: close the month in progress, or check it early."""
        if self.open_month is None:
            return
        if close_last:
            self._close_until(self.open_month + 1)
        elif self._last_date is not None:
            self.check_early(self._last_date)

    def drain(self) -> list[Alert]:
        """Alerts emitted since the last call, in order."""
        out, self._pending = self._pending, []
        return out

    # -- months --------------------------------------------------------------------------------

    def _open(self, month: int) -> None:
        self.open_month = month
        self.cells = {}
        self._early = {}
        days = self.config.early_days
        self._next_check = _month_day(month, days[0]) if days else None

    def _close_until(self, month: int) -> None:
        while self.open_month < month:
            self._close(self.open_month)
            self._open(self.open_month + 1)

    def _row(self, key: SeriesKey, counted: bool) -> int:
        table = self.table
        before = len(table)
        row = table.row(key, counted=counted)
        if len(table) > before:
            sources, hubs = self._groups
            src, hub, is_hub, is_dest, prio = self._lane_lists
            src.append(sources.setdefault((key.reporter, key.flow, key.hs6), len(sources)))
            hub.append(hubs.setdefault((key.partner, key.flow, key.hs6), len(hubs)))
            role = self._role.get(key.partner)
            is_hub.append(role == "hub")
            is_dest.append(role == "destination")
            tier = chpl().get(key.hs6)
            prio.append(tier is not None and tier.tier in ("1", "2"))
        return row

    def _lanes(self) -> Lanes:
        """Per-row lane facts as arrays, rebuilt only when rows were added."""
        src, hub, is_hub, is_dest, prio = self._lane_lists
        if self._lanes_cache is not None and self._lanes_cache.is_hub.shape[0] == len(src):
            return self._lanes_cache
        self._lanes_cache = Lanes(
            source_group=np.array(src, dtype=np.int64),
            hub_group=np.array(hub, dtype=np.int64),
            is_hub=np.array(is_hub, dtype=bool),
            is_destination=np.array(is_dest, dtype=bool),
            priority=np.array(prio, dtype=bool),
        )
        return self._lanes_cache

    def _inputs(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        table = self.table
        n = len(table)
        value = np.zeros(n)
        count = np.where(table.counted[:n], 0.0, np.nan)
        max_item = np.full(n, np.nan)
        for row, cell in self.cells.items():
            value[row] = cell.value
            if cell.lines is None:
                count[row] = cell.count
                max_item[row] = cell.max_item
        if rows is not None:
            return value[rows], count[rows], max_item[rows]
        return value, count, max_item

    def _close(self, month: int) -> None:
        self.close_month(month, *self._inputs())

    def close_month(self, month: int, value: np.ndarray, count: np.ndarray, max_item: np.ndarray) -> None:
        """Close ``month`` for every series with these month totals (arrays over
        all rows), emit its alerts and advance the state. The batch path calls
        this directly with totals it aggregated itself."""
        table = self.table
        window = table.window(slice(0, len(table)), value, count, max_item)
        verdict = self.policy.decide(window, self._lanes())
        rows = np.flatnonzero(verdict.alert)
        if rows.size:
            reporters = self._corroborating(verdict)
            as_of = _month_end(month).isoformat()
            for i in rows.tolist():
                self._pending.append(
                    self._alert(i, i, month, verdict, window, early=False, as_of=as_of,
                                corroborating=reporters.get(i, ()))
                )
        self._learn_reference(verdict)
        if self.on_close is not None:
            s = verdict.surge
            self.on_close(MonthSnapshot(month, value, s.expected, s.band_low, s.band_high))
        table.commit(
            month, value, count, verdict.protect, ramp=verdict.ramp_statistic, streak=verdict.streak,
            release=verdict.release, relearn=verdict.relearn, relearn_months=self.policy.params.relearn_after,
        )

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
                model.fit(rows)
            else:
                self._reference = [rows]

    def check_early(self, as_of: dt.date) -> None:
        """Check the month in progress on the series that changed since the last check."""
        rows = np.array([r for r, c in self.cells.items() if c.dirty and r not in self._early], dtype=np.int64)
        for cell in self.cells.values():
            cell.dirty = False
        today = as_of + dt.timedelta(days=1)
        days = [d for d in self.config.early_days if _month_day(self.open_month, d) > today]
        self._next_check = _month_day(self.open_month, days[0]) if days else None
        if rows.size == 0:
            return
        self.check_rows(rows, as_of, *self._inputs(rows))

    def check_rows(
        self, rows: np.ndarray, as_of: dt.date, value: np.ndarray, count: np.ndarray, max_item: np.ndarray
    ) -> None:
        """Check ``rows`` of the month in progress early, with these running totals
        (arrays over ``rows``), and emit their alerts. The columnar replay calls
        this directly with totals it aggregated itself."""
        self._counts["early checks"] += 1
        # No detector alerts on a month below its smallest money floor: skip those
        # rows (most of them, early in a month) without changing any outcome.
        keep = value >= self.policy.smallest_alert_value
        if not keep.all():
            rows, value, count, max_item = rows[keep], value[keep], count[keep], max_item[keep]
        if rows.size == 0:
            return
        window = self.table.window(rows, value, count, max_item)
        verdict = self.policy.decide(window, self._lanes().take(rows), cross=False)
        for i in np.flatnonzero(verdict.alert).tolist():
            row = int(rows[i])
            alert = self._alert(row, i, self.open_month, verdict, window, early=True, as_of=as_of.isoformat(),
                                corroborating=())
            self._early[row] = alert
            self._pending.append(alert)

    def _late(self, rec: Record, hs6: str, rate: float, is_declaration: bool) -> None:
        """A record for a month already closed: fold it into the history so
        later baselines are right; the closed month's verdict stands."""
        table = self.table
        offset = table.month - rec.month
        if not is_declaration or offset >= table.history:
            self._counts["late records not applied (month closed)"] += 1
            return
        row = self._row(SeriesKey(rec.reporter, rec.partner, rec.flow, hs6), is_declaration)
        pos = table.history - 1 - offset
        table.values[row, pos] = np.nan_to_num(table.values[row, pos]) + rec.value / rate
        table.counts[row, pos] = np.nan_to_num(table.counts[row, pos]) + 1
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
    ) -> Alert:
        key = self.table.keys[row]
        cell = self.cells.get(row) or Cell()
        s = verdict.surge
        detectors = verdict.detectors(i)
        period = period_of(month)
        goods = chpl().get(key.hs6)
        baseline = _num(s.expected[i]) if s.eligible[i] else _num(verdict.novelty.baseline[i])
        observed = float(window.value[i])
        counted = not math.isnan(window.count[i])
        observed_count = int(window.count[i]) if counted else None
        baseline_count = _num(s.expected_count[i]) if counted else None
        ratio = _num(s.ratio[i]) if s.eligible[i] else None
        p_value = float(s.p_value[i]) if s.eligible[i] else None
        dest_ratio = None
        if verdict.diversion is not None:
            dest_ratio = _num(verdict.diversion.destination_ratio[i])
        currency = self.config.base_currency
        exporters = _top(cell.exporters)
        consignees = _top(cell.consignees)
        destinations = " or ".join(country_name(c) for c in sorted(self.config.destinations))
        text = explain(
            key=key, period=period, detectors=detectors, observed_value=observed,
            baseline_value=baseline, observed_count=observed_count, baseline_count=baseline_count,
            ratio=ratio, p_value=p_value, currency=currency, top_exporters=exporters,
            corroborating=corroborating, early=early, as_of=as_of, destination_ratio=dest_ratio,
            destinations=destinations,
        )
        evidence = {
            "z": round(float(s.z[i]), 4),
            "z_robust": round(float(s.z_robust[i]), 4),
            "band_high": _num(s.band_high[i]),
            "ramp_statistic": round(float(verdict.ramp.statistic[i]), 4),
            "destination_ratio": dest_ratio,
            "isolation_score": None if verdict.isolation is None else round(float(verdict.isolation[i]), 4),
            "distinct_exporters": len(cell.exporters) if counted else None,
            "distinct_consignees": len(cell.consignees) if counted else None,
            "net_mass_kg": cell.mass if counted and cell.mass else None,
        }
        return Alert(
            alert_id=alert_id(key, period, detectors[0]),
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
            baseline_value=None if baseline is None else round(baseline, 2),
            observed_count=observed_count,
            baseline_count=None if baseline_count is None else round(baseline_count, 3),
            ratio=None if ratio is None else round(ratio, 4),
            p_value=p_value,
            currency=currency,
            top_exporters=exporters,
            top_consignees=consignees,
            corroborating_reporters=corroborating,
            early=early,
            as_of=as_of,
            explanation=text,
            evidence=evidence,
        )


def _num(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def _top(parties: dict[str, float]) -> tuple[dict[str, object], ...]:
    best = sorted(parties.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_PARTIES]
    return tuple({"name": name, "value": round(value, 2)} for name, value in best)


def _month_end(month: int) -> dt.date:
    return dt.date(month // 12 + (month % 12 == 11), (month + 1) % 12 + 1, 1) - dt.timedelta(days=1)


def _month_day(month: int, day: int) -> dt.date:
    return dt.date(month // 12, month % 12 + 1, day)
