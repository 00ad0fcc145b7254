"""The desk's data: cases from a :class:`CaseSource`, feedback from a :class:`FeedbackStore`,
the list's rows with their feedback and suppression, and what a case page shows."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import pycountry

from transitwatch.streams.desk.cases import (
    BadRecord,
    Case,
    CaseSource,
    Loaded,
    build_cases,
    lane_records,
)
from transitwatch.streams.desk.inputs import InputSeries
from transitwatch.streams.feedback import (
    Feedback,
    FeedbackError,
    FeedbackStore,
    latest,
    now_utc,
    record_suppressed,
)

DESTINATIONS: tuple[str, ...] = ("RU", "BY")


def country_name(code: Any) -> str:
    if not isinstance(code, str):
        return ""
    found = pycountry.countries.get(alpha_2=code) if len(code) == 2 else None
    return getattr(found, "common_name", None) or getattr(found, "name", None) or code


@dataclass(frozen=True)
class Point:
    period: str
    value: float | None
    baseline: float | None
    band_high: float | None
    count: float | None
    baseline_count: float | None
    in_case: bool


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _next_month(period: str) -> str:
    year, month = int(period[:4]), int(period[5:7])
    return f"{year + month // 12}-{month % 12 + 1:02d}"


def series(records: Sequence[Mapping[str, Any]], case_periods: AbstractSet[str] = frozenset(),
           full: Mapping[str, tuple[float, int | None]] | None = None) -> list[Point]:
    """One point per month. Without ``full``: from the lane's first record to its last, months
    without a record are gaps (None), never invented values. With ``full`` (the lane's months in
    the replay's input, :mod:`transitwatch.streams.desk.inputs`): every month of the input, the
    value and count from it, the expected value and band from the records where they exist."""
    by_period = {str(r["period"]): r for r in records}
    if full:
        periods = sorted(full)
    elif by_period:
        periods, period = [], min(by_period)
        while period <= max(by_period):
            periods.append(period)
            period = _next_month(period)
    else:
        return []
    points: list[Point] = []
    for period in periods:
        r = by_period.get(period) or {}
        evidence = r.get("evidence")
        value, count = full[period] if full else (_num(r.get("observed_value")), _num(r.get("observed_count")))
        points.append(Point(
            period, value, _num(r.get("baseline_value")),
            _num(evidence.get("band_high")) if isinstance(evidence, dict) else None,
            None if count is None else float(count), _num(r.get("baseline_count")), period in case_periods,
        ))
    return points


def chart_data(points: Sequence[Point]) -> dict[str, list[Any]]:
    """Columns for the page's charts (uPlot's data layout: x, then one array per series)."""
    return {
        "periods": [p.period for p in points],
        "value": [p.value for p in points],
        "baseline": [p.baseline for p in points],
        "band_high": [p.band_high for p in points],
        "count": [p.count for p in points],
        "baseline_count": [p.baseline_count for p in points],
        "in_case": [p.in_case for p in points],
    }


@dataclass(frozen=True)
class RelatedLane:
    series_id: str
    label: str
    reason: str
    case_ids: list[str]
    data: dict[str, list[Any]] | None  # None: no alert records for this lane


class Desk:
    """The cases of one source with their feedback. ``reload`` reads the source again."""

    def __init__(self, source: CaseSource, store: FeedbackStore, *, suppress_months: int = 6,
                 inputs: InputSeries | None = None) -> None:
        if suppress_months < 0:
            raise FeedbackError(f"--suppress-months must be >= 0, not {suppress_months}")
        self.source = source
        self.store = store
        self.suppress_months = suppress_months
        self.inputs = inputs
        self._lock = threading.Lock()
        self.cases: dict[str, Case] = {}
        self.lanes: dict[str, list[Mapping[str, Any]]] = {}
        self.bad: list[BadRecord] = []
        self.records = 0
        self._rows: list[dict[str, Any]] = []
        self._labels: dict[str, str] = {}
        self.version = 0  # changes whenever the rows do (a reload that read something new, new feedback)
        self.refresh_error: str | None = None  # why the last refresh failed (the desk keeps what it had)
        self._loaded: Loaded | None = None
        self._feedback: list[Feedback] | None = None
        self.reload()

    def read_inputs(self, paths: Sequence[str]) -> InputSeries:
        """Read the replay's input for full series of the alerts' reporters and codes."""
        with self._lock:
            reporters = {str(r[-1]["reporter"]) for r in self.lanes.values()}
            codes = {str(r[-1]["hs6"]) for r in self.lanes.values()}
        self.inputs = InputSeries.read(paths, reporters, codes)
        return self.inputs

    def reload(self) -> bool:
        """Read the source again; returns whether anything changed, alert records or feedback
        (another analyst's, on a shared store): rows are rebuilt only then."""
        loaded = self.source.load()
        feedback = self.store.all()
        if loaded == self._loaded and feedback == self._feedback:
            return False
        if loaded != self._loaded:
            self._loaded = loaded
            cases = build_cases(loaded.records)
            records = [r for case in cases.values() for r in case.records]
            with self._lock:
                self.cases = cases
                self.lanes = lane_records(records)
                self.bad = loaded.bad
                self.records = len(records)
        self._refresh_rows(feedback)
        return True

    def _refresh_rows(self, feedback: list[Feedback] | None = None) -> None:
        if feedback is None:
            feedback = self.store.all()
        self._feedback = feedback
        by_case = latest(feedback, "case_id")
        by_lane = latest(feedback, "series_id")
        rows = []
        for case in self.cases.values():
            row = case.row()
            mine = by_case.get(case.case_id)
            row["feedback"] = mine.verdict if mine else ""
            row["suppressed"] = self._suppressed(case, by_lane.get(case.series_id))
            row["search"] = " ".join(str(v) for v in (
                row["case_id"], row["lane"], row["goods"], row["detectors"], country_name(row["reporter"]),
                country_name(row["partner"]), case.latest.get("explanation") or "",
                mine.reason if mine else ""))
            rows.append(row)
        labels = {}
        for row in rows:
            labels[row["partner"]] = f"{row['partner']} {country_name(row['partner'])}"
            labels[row["reporter"]] = f"{row['reporter']} {country_name(row['reporter'])}"
            labels[row["hs6"]] = f"{row['hs6']} {row['goods'][:60]}".strip()
        with self._lock:
            self._rows = rows
            self._labels = labels
            self.version += 1

    def _suppressed(self, case: Case, feedback: Feedback | None) -> bool:
        return record_suppressed(feedback, case_id=case.case_id, period=str(case.latest["period"]),
                                 lane=self.lanes.get(case.series_id, ()), suppress_months=self.suppress_months)

    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._rows

    def options(self) -> dict[str, list[tuple[str, str]]]:
        """The values each filter can take, with labels."""
        rows = self.rows()

        def values(name: str, label=lambda v: v) -> list[tuple[str, str]]:
            return [(v, label(v)) for v in sorted({str(r[name]) for r in rows if r[name] != ""})]

        order = {"low": 0, "medium": 1, "high": 2, "critical": 3}
        severities = sorted({str(r["severity"]) for r in rows}, key=lambda v: order.get(v, 9))
        detectors = sorted({d for r in rows for d in str(r["detectors"]).split(", ") if d})
        return {
            "severity": [(v, v) for v in severities],
            "partner": values("partner", lambda c: f"{c} {country_name(c)}"),
            "reporter": values("reporter", lambda c: f"{c} {country_name(c)}"),
            "tier": values("tier", lambda t: f"tier {t}"),
            "detector": [(d, d.replace("_", " ")) for d in detectors],
            "status": values("status"),
            "feedback": [("none", "none"), ("confirmed", "confirmed"), ("dismissed", "dismissed"), ("known", "known")],
        }

    def group_labels(self) -> dict[str, str]:
        """Labels of the groups (hubs, reporters, goods), made once per refresh."""
        with self._lock:
            return self._labels

    def case(self, case_id: str) -> Case | None:
        return self.cases.get(case_id)

    def row(self, case_id: str) -> dict[str, Any] | None:
        return next((r for r in self.rows() if r["case_id"] == case_id), None)

    def feedback_for(self, case_id: str) -> list[Feedback]:
        return [f for f in self.store.all() if f.case_id == case_id]

    def add_feedback(self, case_id: str, *, verdict: str, reason: str, analyst: str) -> Feedback:
        case = self.cases.get(case_id)
        if case is None:
            raise FeedbackError(f"no case {case_id!r}")
        item = Feedback(case_id=case_id, series_id=case.series_id, verdict=verdict, reason=reason.strip(),
                        analyst=analyst.strip(), period=str(case.latest["period"]),
                        severity=str(case.latest.get("severity")), created_at=now_utc())
        self.store.add(item)
        self._refresh_rows()
        return item

    def _full(self, reporter: str, partner: str, flow: Any, hs6: str, currency: Any):
        if self.inputs is None or not isinstance(flow, str) or not isinstance(currency, str):
            return None
        return self.inputs.months(reporter, partner, flow, hs6, currency)

    def lane_chart(self, case: Case) -> dict[str, Any]:
        last = case.latest
        full = self._full(last["reporter"], last["partner"], last.get("flow"), last["hs6"], last.get("currency"))
        data: dict[str, Any] = chart_data(series(self.lanes.get(case.series_id, []), set(case.periods), full))
        data["from_input"] = full is not None
        return data

    def related(self, case: Case) -> dict[str, list[RelatedLane]]:
        """The related lanes the alert records hold: the same goods into the same hub from other
        reporters; the same reporter's lanes of the goods to Russia and Belarus (named even
        without records); the same reporter's other goods into the hub."""
        last = case.latest
        reporter, partner, hs6, flow = last["reporter"], last["partner"], last["hs6"], last.get("flow")
        peers, destinations, goods = [], [], []
        lanes_by_key: dict[tuple[str, str, str], list[str]] = {}
        for series_id, recs in self.lanes.items():
            r0 = recs[-1]
            lanes_by_key.setdefault((r0["reporter"], r0["partner"], r0["hs6"]), []).append(series_id)

        currency = last.get("currency")

        def lane(series_id: str, label: str, reason: str) -> RelatedLane:
            recs = self.lanes[series_id]
            case_ids = sorted({str(r["case_id"]) for r in recs})
            r0 = recs[-1]
            full = self._full(r0["reporter"], r0["partner"], r0.get("flow"), r0["hs6"], r0.get("currency"))
            return RelatedLane(series_id, label, reason, case_ids, chart_data(series(recs, full=full)))

        for (rep, par, code), ids in sorted(lanes_by_key.items()):
            for series_id in ids:
                if series_id == case.series_id:
                    continue
                if par == partner and code == hs6 and rep != reporter:
                    peers.append(lane(series_id, f"{country_name(rep)} → {country_name(par)}", "same goods, same hub"))
                elif rep == reporter and par == partner and code != hs6:
                    goods.append(lane(series_id, f"HS {code}", "same reporter, same hub, other goods"))
        for dest in DESTINATIONS:
            ids = lanes_by_key.get((reporter, dest, hs6), [])
            label = f"{country_name(reporter)} → {country_name(dest)}, HS {hs6}"
            if ids:
                destinations += [lane(i, label, "same reporter and goods, to a destination") for i in ids]
            else:
                full = self._full(reporter, dest, flow, hs6, currency)
                destinations.append(RelatedLane(f"{reporter}>{dest} {flow} {hs6}", label,
                                                "same reporter and goods, to a destination", [],
                                                chart_data(series([], full=full)) if full else None))
        return {"peers": peers, "destinations": destinations, "goods": goods}
