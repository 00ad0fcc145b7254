"""A self-contained HTML report of a replay run, for an export-control analyst.

One file an analyst can mail: the run summary, then one row per **case** (most severe first)
with filters, sorting and free-text search, and for each case, on demand, the lane's chart and
every alert record of the case with its explanation. Charts are drawn in the page by the
vendored uPlot from embedded data; its script and stylesheet are inlined with the report's own
(``streams/assets/report/``), so the page loads nothing from anywhere and works from file://.
Without JavaScript the summary and the case table still read.

The data sits in ``<script type="application/json" id="report-data">`` (``"<"`` written as
``\\u003c``), JSON of this shape (``DATA_VERSION``)::

    {"version": 1, "currency": "EUR",
     "sentences": ["...", ...],            # every distinct sentence of the explanations, once
     "record_fields": ["alert_id", "period", ...],   # RECORD_FIELDS: the columns of "records"
     "lanes": {series_id: {"title", "first": "YYYY-MM", "value", "expected", "low", "high"}},
     "cases": [{"case_id", "series_id", "reporter", "partner", "flow", "hs6", "goods", "tier",
                "severity", "confidence", "status", "onset", "last", "months", "peak_ratio",
                "peak_period", "excess", "detectors", "banned_since", "banned_by",
                "records": [[...], ...]}]}          # one row per alert record, oldest first

A record's ``explanation`` is the list of its sentences' indexes in ``sentences`` (joined with
one space they give the text back exactly): the records of one case repeat most sentences, and
this keeps the sample's report under 2 MB without compressing anything. Lane arrays are aligned
month by month from ``first``; ``null`` where there is no baseline yet. Every piece of text
comes from users' files and is escaped.
"""

from __future__ import annotations

import html
import itertools
import math
import numbers
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from transitwatch.detectors.errors import InvalidParameterError
from transitwatch.detectors.reference import country_name

__all__ = ["DATA_VERSION", "RECORD_FIELDS", "ChartSeries", "alert_records", "build_data", "write_report"]

DATA_VERSION = 1
RECORD_FIELDS = (
    "alert_id", "period", "case_event", "severity", "confidence", "materiality", "detectors",
    "score", "p_value", "observed_value", "baseline_value", "observed_count", "baseline_count",
    "ratio", "case_ratio", "early", "as_of", "explanation", "top_exporters", "top_consignees",
    "new_consignees", "corroborating_reporters", "case_note",
)
SEVERITIES = ("critical", "high", "medium", "low")
CONFIDENCES = ("very high", "high", "medium", "low")
_SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
_CONFIDENCE_RANK = {c: i for i, c in enumerate(CONFIDENCES)}
# Split after a sentence's end; a record whose text does not come back whole is kept whole.
_SENTENCE_END = re.compile(r"(?<=[.:;!?]) (?=[A-Z(])")
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")

_INTRO = (
    "transitwatch compared the monthly exports on each trade lane (reporting country to "
    "partner country, by 6-digit HS product code) with the value it expected from that "
    "lane's own history and season. It flags months where dual-use goods, such as those on "
    "the Common High Priority List (CHPL), going to Russia's neighbours rose well above "
    "normal: a pattern consistent with re-export to Russia. An alert is a reason to look "
    "closer, not proof of evasion. Alerts come as <em>cases</em>: a lane's episode opens with "
    "an alert and has one record for every month it stays up. The table lists every case, most "
    "severe first; filter, sort (click a column's title) or search it, and open a case to see "
    "the lane's chart (the blue line is what was exported, the dashed line what was expected, "
    "the grey band the normal range, red points the case's months) and every record of the "
    "case with its explanation."
)

# (title, key the script sorts by, cell class)
_COLUMNS = (
    ("Severity", "severity", ""), ("Confidence", "confidence", ""), ("Lane", "lane", ""),
    ("Goods", "hs6", ""), ("Tier", "tier", ""), ("Onset", "onset", ""),
    ("Months", "months", "num"), ("Peak ratio", "peak_ratio", "num"),
    ("Cumulative excess", "excess", "num"), ("Detectors", "detectors", ""),
    ("Status", "status", ""),
)


@dataclass(frozen=True, slots=True)
class ChartSeries:
    """One monthly series to chart: observations, expected values and the normal band.

    ``months`` are consecutive ``"YYYY-MM"`` strings; the other sequences align with
    them, with ``None`` where there is no baseline yet. Above ``band_high`` is unusual.
    ``alert_months`` is kept for callers; the report marks each case's own months.
    """

    series_id: str
    title: str
    currency: str
    months: Sequence[str]
    values: Sequence[float]
    baseline: Sequence[float | None]
    band_low: Sequence[float | None]
    band_high: Sequence[float | None]
    alert_months: Sequence[str]

    def __post_init__(self) -> None:
        n = len(self.months)
        for name in ("values", "baseline", "band_low", "band_high"):
            if len(getattr(self, name)) != n:
                raise InvalidParameterError(name, len(getattr(self, name)), f"{n} values, one a month")
        ordinals = [_month_ordinal(m) for m in self.months]
        if any(b != a + 1 for a, b in itertools.pairwise(ordinals)):
            raise InvalidParameterError("months", list(self.months)[:3], "consecutive YYYY-MM months")


def _month_ordinal(month: str) -> int:
    found = _MONTH.match(str(month))
    if found is None:
        raise InvalidParameterError("months", month, "a YYYY-MM month")
    return int(found.group(1)) * 12 + int(found.group(2)) - 1


def alert_records(alerts: Sequence[Any]) -> list[dict[str, Any]]:
    """Alerts (:class:`~transitwatch.detectors.alerts.Alert`) as the records ``write_report``
    takes, exactly as ``--alerts-out`` writes them (unknown numbers null); through orjson,
    several times faster than ``Alert.to_dict`` on a replay's alerts."""
    return orjson.loads(orjson.dumps(list(alerts), option=orjson.OPT_SERIALIZE_NUMPY))


def write_report(
    path: str | os.PathLike[str],
    alerts: Sequence[Mapping[str, Any]],
    charts: Mapping[str, ChartSeries],
    summary: Mapping[str, Any],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write the HTML report of a replay run to ``path`` (UTF-8, overwritten).

    ``alerts`` are alert records (``Alert.to_dict()``, the lines of ``--alerts-out``);
    ``charts`` the lanes' series by ``series_id`` (a lane without one says so on its case).
    ``progress(done, total)`` is called as cases are written.
    """
    data = build_data(alerts, charts)
    cases = data["cases"]
    total = len(cases)
    rows: list[str] = []
    for i, case in enumerate(cases):
        rows.append(_case_rows(i, case))
        if progress is not None and (i % 50 == 49 or i == total - 1):
            progress(i + 1, total)
    payload = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY).replace(b"<", b"\\u003c").decode("utf-8")
    parts = [
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<title>transitwatch report</title>",
        f"<style>{_asset('vendor/uplot/uPlot.min.css')}\n{_asset('report/report.css')}</style>",
        "</head><body><main>",
        "<h1>transitwatch: unusual exports of dual-use goods to Russia's neighbours</h1>",
        f"<p>{_INTRO}</p>",
        "<noscript><p class='note'>JavaScript is off: the case table reads, but filters, "
        "sorting, charts and the records of each case need it.</p></noscript>",
        "<h2>Run summary</h2>",
        _summary_table(summary),
        f"<h2 id='cases-title'>Cases ({total}) and their {len(alerts)} alert records</h2>",
        _filters(cases) if cases else "",
        _case_table(rows) if cases else "<p>No alerts: nothing rose above its normal band in this run.</p>",
        "</main>",
        f"<script type='application/json' id='report-data'>{payload}</script>",
        f"<script>{_asset('vendor/uplot/uPlot.iife.min.js')}</script>",
        f"<script>{_asset('report/report.js')}</script>",
        "</body></html>\n",
    ]
    Path(path).write_text("\n".join(parts), encoding="utf-8")


def _asset(name: str) -> str:
    """A file of the package's assets; ``</`` cannot end its inline element early."""
    text = resources.files("transitwatch.streams").joinpath("assets", *name.split("/")).read_text("utf-8")
    return text.replace("</", "<\\/")


def build_data(
    alerts: Sequence[Mapping[str, Any]], charts: Mapping[str, ChartSeries]
) -> dict[str, Any]:
    """The report's embedded data (the shape in the module's docstring), cases most severe first.

    A record without a ``case_id`` becomes a case of its own (keyed by its ``alert_id``), so
    nothing given is left out.
    """
    sentences: dict[str, int] = {}
    by_case: dict[str, list[Mapping[str, Any]]] = {}
    for alert in alerts:
        key = alert.get("case_id") or f"record {alert.get('alert_id')}"
        by_case.setdefault(str(key), []).append(alert)
    cases = [_case(cid, records, sentences) for cid, records in by_case.items()]
    cases.sort(key=_case_order)
    lanes = {case["series_id"] for case in cases}
    currency = str(alerts[0].get("currency") or "") if alerts else ""
    return {
        "version": DATA_VERSION,
        "currency": currency,
        "sentences": list(sentences),
        "record_fields": list(RECORD_FIELDS),
        "lanes": {sid: _lane(charts[sid]) for sid in sorted(lanes) if sid in charts},
        "cases": cases,
    }


def _case(case_id: str, records: list[Mapping[str, Any]], sentences: dict[str, int]) -> dict[str, Any]:
    records = sorted(records, key=lambda r: str(r.get("period")))
    last = records[-1]
    confidence = min((str(r.get("confidence")) for r in records),
                     key=lambda c: _CONFIDENCE_RANK.get(c, len(CONFIDENCES)))
    severity = last.get("case_severity") or min(
        (str(r.get("severity")) for r in records), key=lambda s: _SEVERITY_RANK.get(s, len(SEVERITIES)))
    detectors = last.get("case_detectors")
    if detectors is None:
        detectors = list(dict.fromkeys(d for r in records for d in (r.get("detectors") or ())))
    return {
        "case_id": case_id,
        "series_id": str(last.get("series_id")),
        "reporter": last.get("reporter"),
        "partner": last.get("partner"),
        "flow": last.get("flow"),
        "hs6": last.get("hs6"),
        "goods": last.get("hs_description"),
        "tier": last.get("chpl_tier"),
        "severity": severity,
        "confidence": confidence,
        "status": last.get("case_status"),
        "onset": last.get("case_onset") or records[0].get("period"),
        "last": last.get("period"),
        "months": last.get("case_months") or len(records),
        "peak_ratio": _finite(last.get("case_peak_ratio")),
        "peak_period": last.get("case_peak_period"),
        "excess": _finite(last.get("case_excess")),
        "detectors": list(detectors),
        "banned_since": last.get("banned_since"),
        "banned_by": last.get("banned_by"),
        "records": [_record(r, sentences) for r in records],
    }


def _case_order(case: Mapping[str, Any]) -> tuple[int, float, str]:
    excess = case["excess"] if isinstance(case["excess"], (int, float)) else -math.inf
    return (_SEVERITY_RANK.get(str(case["severity"]), len(SEVERITIES)), -excess, case["case_id"])


def _record(alert: Mapping[str, Any], sentences: dict[str, int]) -> list[Any]:
    evidence = alert.get("evidence") or {}
    named = evidence.get("new_consignees_named") if isinstance(evidence, Mapping) else None
    values = {
        **{name: alert.get(name) for name in RECORD_FIELDS},
        "explanation": _sentences(str(alert.get("explanation") or ""), sentences),
        "top_exporters": _parties(alert.get("top_exporters")),
        "top_consignees": _parties(alert.get("top_consignees")),
        "new_consignees": [
            [p.get("name"), _finite(p.get("value")), p.get("first_seen")]
            for p in named or () if isinstance(p, Mapping)
        ],
    }
    for name in ("score", "p_value", "observed_value", "baseline_value", "baseline_count", "ratio", "case_ratio"):
        values[name] = _finite(values[name])
    return [values[name] for name in RECORD_FIELDS]


def _sentences(text: str, sentences: dict[str, int]) -> list[int]:
    parts = _SENTENCE_END.split(text) if text else []
    if " ".join(parts) != text:
        parts = [text]
    return [sentences.setdefault(part, len(sentences)) for part in parts]


def _parties(parties: Any) -> list[list[Any]]:
    if not isinstance(parties, Sequence):
        return []
    return [[p.get("name"), _finite(p.get("value"))] for p in parties if isinstance(p, Mapping)]


def _finite(value: Any) -> float | int | None:
    """A number JSON can hold (NumPy's too); NaN and infinities are unknown (``None``)."""
    kind = type(value)
    if kind is float:
        return value if value - value == 0 else None  # NaN and infinities fail this
    if kind is int:
        return value
    if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    return _finite(float(value))


def _chart_number(value: float | None) -> float | int | None:
    """Enough digits to draw: whole units from 100 up, cents below."""
    value = _finite(value)
    if value is None:
        return None
    return round(value) if abs(value) >= 100 else round(float(value), 2)


def _lane(chart: ChartSeries) -> dict[str, Any]:
    return {
        "title": chart.title,
        "first": chart.months[0] if chart.months else None,
        "value": [_chart_number(v) for v in chart.values],
        "expected": [_chart_number(v) for v in chart.baseline],
        "low": [_chart_number(v) for v in chart.band_low],
        "high": [_chart_number(v) for v in chart.band_high],
    }


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def money(value: Any) -> str:
    """Format an amount compactly in k/m/bn.

    Examples
    --------
    >>> money(1_234_567), money(980), money(45_000), money(None)
    ('1.23m', '980', '45k', '–')
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "–"
    for factor, suffix in ((1e9, "bn"), (1e6, "m"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}" if value != int(value) else f"{int(value)}"


def _case_rows(i: int, case: Mapping[str, Any]) -> str:
    """The case's row and its (empty, hidden) detail row, which the script fills when opened."""
    reporter, partner = _esc(case["reporter"]), _esc(case["partner"])
    names = f"{country_name(str(case['reporter']))} → {country_name(str(case['partner']))}"
    peak = case["peak_ratio"]
    tier = case["tier"] if case["tier"] not in (None, "") else "–"
    severity = _esc(case["severity"])
    return (
        f"<tbody id='case-{i}'><tr>"
        f"<td><button type='button' class='open' aria-expanded='false' aria-controls='case-{i}-detail'>"
        f"<span class='visually-hidden'>records of case {_esc(case['case_id'])}</span></button></td>"
        f"<td><span class='sev sev-{severity.replace(' ', '-')}'>{severity}</span></td>"
        f"<td>{_esc(case['confidence'])}</td>"
        f"<th scope='row'>{reporter} → {partner} <small>{_esc(case['flow'])}<br>{_esc(names)}</small></th>"
        f"<td><b>{_esc(case['hs6'])}</b> <small class='goods'>{_esc(case['goods'])}</small></td>"
        f"<td>{_esc(tier)}</td><td>{_esc(case['onset'])}</td>"
        f"<td class='num'>{_esc(case['months'])}</td>"
        f"<td class='num'>{'×' + format(peak, '.1f') if peak is not None else '–'}</td>"
        f"<td class='num'>{money(case['excess'])}</td>"
        f"<td>{_esc(', '.join(case['detectors']))}</td><td>{_esc(case['status'])}</td></tr>"
        f"<tr class='detail' id='case-{i}-detail' hidden><td colspan='{len(_COLUMNS) + 1}'></td></tr>"
        "</tbody>"
    )


def _case_table(rows: Sequence[str]) -> str:
    head = "".join(
        f"<th scope='col' aria-sort='none' data-key='{key}'{' class=num' if cls else ''}>"
        f"<button type='button'>{title}</button></th>"
        for title, key, cls in _COLUMNS
    )
    return (
        "<table id='cases' aria-labelledby='cases-title'>"
        f"<thead><tr><th scope='col'><span class='visually-hidden'>Open</span></th>{head}</tr></thead>"
        + "\n".join(rows) + "</table>"
    )


def _select(name: str, label: str, values: Sequence[str], counts: Mapping[str, int],
            names: Callable[[str], str] | None = None) -> str:
    """A filter's choices, each with its number of cases (and a country's name)."""
    options = "".join(
        f"<option value='{_esc(v)}'>{_esc(v)}{' · ' + _esc(names(v)) if names else ''} ({counts.get(v, 0)})</option>"
        for v in values
    )
    return (
        f"<label for='f-{name}'>{label}</label>"
        f"<select id='f-{name}' data-filter='{name}'><option value=''>all</option>{options}</select>"
    )


def _filters(cases: Sequence[Mapping[str, Any]]) -> str:
    def counted(key: str) -> Counter[str]:
        return Counter(str(c[key]) for c in cases if c[key] not in (None, ""))

    severity, partner, reporter, tier, status = (
        counted(k) for k in ("severity", "partner", "reporter", "tier", "status"))
    detectors = Counter(d for c in cases for d in c["detectors"])
    return (
        "<form id='filters' role='search' aria-label='Filter the cases'><div class='grid'>"
        + _select("severity", "Severity", [s for s in SEVERITIES if s in severity], severity)
        + _select("partner", "Hub (partner)", sorted(partner), partner, country_name)
        + _select("reporter", "Reporter", sorted(reporter), reporter, country_name)
        + "<label for='f-hs'>HS code or chapter</label>"
        "<input id='f-hs' data-filter='hs' inputmode='numeric' placeholder='85, 8542, 854231'>"
        + _select("tier", "CHPL tier", sorted(tier), tier)
        + _select("detector", "Detector", sorted(detectors), detectors)
        + _select("status", "Status", sorted(status), status)
        + "<label for='f-q'>Search</label>"
        "<input id='f-q' type='search' data-filter='q' placeholder='country, goods, consignee, text'>"
        "</div><button type='reset'>Clear filters</button> "
        "<span id='shown' role='status' aria-live='polite'></span>"
        "<p class='hint'>The page's address keeps the filters and the sort: copy it to share this view.</p></form>"
    )


def _summary_value(value: Any) -> str:
    if isinstance(value, Mapping):
        return _summary_table(value) if value else "–"
    if isinstance(value, (list, tuple, set, frozenset)):
        return _esc(", ".join(map(str, value)))
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return _esc(value)


def _summary_table(summary: Mapping[str, Any]) -> str:
    rows = (
        f"<tr><th scope='row'>{_esc(k)}</th><td>{_summary_value(v)}</td></tr>" for k, v in summary.items()
    )
    return "<table class='summary'>" + "".join(rows) + "</table>"
