"""A self-contained HTML report of a replay run, for an export-control analyst.

The page holds the run summary, a table of every alert (most severe first) and one
chart section per alerted series. Charts are PNGs embedded as base64, so the file
can be mailed or archived alone. Every piece of text comes from users' files and
is escaped. matplotlib is imported only when a report is written.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transitwatch.detectors.errors import InvalidParameterError

__all__ = ["ChartSeries", "write_report"]

_SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
_SEVERITY_COLOUR = {"critical": "#8b0000", "high": "#d9480f", "medium": "#e8a317", "low": "#5c7cfa"}

_INTRO = (
    "transitwatch compared the monthly exports on each trade lane (reporting country to "
    "partner country, by 6-digit HS product code) with the value it expected from that "
    "lane's own history and season. It flags months where dual-use goods, such as those on "
    "the Common High Priority List (CHPL), going to Russia's neighbours rose well above "
    "normal: a pattern consistent with re-export to Russia. An alert is a reason to look "
    "closer, not proof of evasion. The table lists every alert, most severe first; "
    "follow a link to see the lane's chart: the blue line is what was exported, the dashed "
    "line what was expected, the grey band the normal range, and red marks the alerted months. "
    "An <em>early</em> badge marks an alert raised while its month was still in progress: the "
    "running total had already passed what the full-month test needs."
)

_CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top;font-size:.92em}
th{background:#f1f3f5}
td.num{text-align:right;white-space:nowrap}
.sev{color:#fff;border-radius:3px;padding:1px 6px;font-size:.85em;font-weight:bold}
.early{background:#0b7285;color:#fff;border-radius:3px;padding:1px 6px;font-size:.8em}
section.series{border-top:2px solid #dee2e6;margin-top:2em;padding-top:.5em}
img{max-width:100%}
.note{background:#fff3bf;padding:.4em .8em}
"""


@dataclass(frozen=True, slots=True)
class ChartSeries:
    """One monthly series to chart: observations, expected values and the normal band.

    ``months`` are consecutive ``"YYYY-MM"`` strings; the other sequences align with
    them, with ``None`` where there is no baseline yet. Above ``band_high`` is unusual.
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


def write_report(
    path: str | os.PathLike,
    alerts: Sequence[Mapping[str, Any]],
    charts: Mapping[str, ChartSeries],
    summary: Mapping[str, Any],
    *,
    max_charts: int = 300,
) -> None:
    """Write the HTML report of a replay run to ``path`` (UTF-8, overwritten).

    At most ``max_charts`` series get a chart section, the most severe first; the page
    says how many were left out, and their alerts stay in the table.
    """
    if not isinstance(max_charts, int) or isinstance(max_charts, bool) or max_charts < 0:
        raise InvalidParameterError("max_charts", max_charts, "an integer >= 0")
    import matplotlib

    matplotlib.use("Agg")
    ordered = sorted(alerts, key=_alert_key)
    series_order = _series_order(ordered)
    shown = series_order[:max_charts]
    anchors = {sid: f"series-{i}" for i, sid in enumerate(shown)}
    parts = [
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>",
        "<title>transitwatch report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>transitwatch: unusual exports of dual-use goods to Russia's neighbours</h1>",
        f"<p>{_INTRO}</p>",
        "<h2>Run summary</h2>",
        _summary_table(summary),
        f"<h2>Alerts ({len(ordered)})</h2>",
        _alert_table(ordered, anchors),
        f"<h2>Charts ({len(shown)} of {len(series_order)} alerted series)</h2>",
    ]
    left_out = len(series_order) - len(shown)
    if left_out:
        parts.append(
            f"<p class='note'>{left_out} alerted series were left out of the charts "
            f"(limit {max_charts}); their alerts are still in the table above.</p>"
        )
    by_series: dict[str, list[Mapping[str, Any]]] = {}
    for alert in ordered:
        by_series.setdefault(str(alert.get("series_id")), []).append(alert)
    for sid in shown:
        parts.append(_series_section(sid, anchors[sid], charts.get(sid), by_series[sid]))
    parts.append("</body></html>\n")
    Path(path).write_text("\n".join(parts), encoding="utf-8")


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _alert_key(alert: Mapping[str, Any]) -> tuple[int, float]:
    score = alert.get("score")
    score = float(score) if isinstance(score, (int, float)) and not math.isnan(score) else -math.inf
    return (_SEVERITY_RANK.get(str(alert.get("severity")), len(_SEVERITY_RANK)), -score)


def _series_order(ordered_alerts: Sequence[Mapping[str, Any]]) -> list[str]:
    """Series ids in the order of their first (most severe) alert."""
    return list(dict.fromkeys(str(a.get("series_id")) for a in ordered_alerts))


def _money(value: Any) -> str:
    """Format an amount compactly in k/m/bn.

    Examples
    --------
    >>> _money(1_234_567), _money(980), _money(45_000), _money(None)
    ('1.23m', '980', '45k', '–')
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "–"
    for factor, suffix in ((1e9, "bn"), (1e6, "m"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}" if value != int(value) else f"{int(value)}"


def _number(value: Any, fmt: str) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "–"
    return format(value, fmt)


def _badge_severity(severity: Any) -> str:
    colour = _SEVERITY_COLOUR.get(str(severity), "#868e96")
    return f"<span class='sev' style='background:{colour}'>{_esc(severity)}</span>"


def _badge_early(alert: Mapping[str, Any]) -> str:
    return " <span class='early'>early</span>" if alert.get("early") is True else ""


def _lane(alert: Mapping[str, Any]) -> str:
    tier = alert.get("chpl_tier")
    tier_text = f"CHPL tier {_esc(tier)}" if tier not in (None, "") else "not on CHPL"
    return (
        f"<b>{_esc(alert.get('reporter'))} → {_esc(alert.get('partner'))}</b> "
        f"({_esc(alert.get('flow'))})<br>HS {_esc(alert.get('hs6'))} "
        f"{_esc(alert.get('hs_description'))}<br><small>{tier_text}</small>"
    )


def _observed_vs_baseline(alert: Mapping[str, Any]) -> str:
    currency = _esc(alert.get("currency"))
    text = (
        f"{_money(alert.get('observed_value'))} vs {_money(alert.get('baseline_value'))} {currency}"
    )
    if alert.get("observed_count") is not None:
        text += (
            f"<br><small>{_number(alert.get('observed_count'), ',')} vs "
            f"{_number(alert.get('baseline_count'), ',.1f')} records</small>"
        )
    return text


def _alert_table(ordered: Sequence[Mapping[str, Any]], anchors: Mapping[str, str]) -> str:
    if not ordered:
        return "<p>No alerts: nothing rose above its normal band in this run.</p>"
    head = (
        "<tr><th>Severity</th><th>Score</th><th>Period</th><th>Lane</th><th>Detectors</th>"
        "<th>Observed vs expected</th><th>Ratio</th><th>Alert</th><th>Chart</th></tr>"
    )
    rows = [head]
    for a in ordered:
        anchor = anchors.get(str(a.get("series_id")))
        link = f"<a href='#{anchor}'>chart</a>" if anchor else "<small>not charted</small>"
        ratio = a.get("ratio")
        rows.append(
            f"<tr><td>{_badge_severity(a.get('severity'))}</td>"
            f"<td class='num'>{_number(a.get('score'), '.2f')}</td>"
            f"<td>{_esc(a.get('period'))}{_badge_early(a)}</td><td>{_lane(a)}</td>"
            f"<td>{_esc(', '.join(map(str, a.get('detectors') or [])))}</td>"
            f"<td class='num'>{_observed_vs_baseline(a)}</td>"
            f"<td class='num'>{'×' + _number(ratio, '.1f') if ratio is not None else '–'}</td>"
            f"<td><small>{_esc(a.get('alert_id'))}</small></td><td>{link}</td></tr>"
        )
    return "<table>" + "\n".join(rows) + "</table>"


def _summary_value(value: Any) -> str:
    if isinstance(value, Mapping):
        return _summary_table(value) if value else "–"
    if isinstance(value, (list, tuple, set, frozenset)):
        return _esc(", ".join(map(str, value)))
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return _esc(value)


def _summary_table(summary: Mapping[str, Any]) -> str:
    rows = (f"<tr><th>{_esc(k)}</th><td>{_summary_value(v)}</td></tr>" for k, v in summary.items())
    return "<table>" + "".join(rows) + "</table>"


def _parties(label: str, parties: Any, currency: Any) -> str:
    if not parties:
        return ""
    items = "".join(
        f"<li>{_esc(p.get('name'))}: {_money(p.get('value'))} {_esc(currency)}</li>" for p in parties
    )
    return f"<p><b>{label}</b></p><ul>{items}</ul>"


def _series_section(
    sid: str, anchor: str, chart: ChartSeries | None, alerts: Sequence[Mapping[str, Any]]
) -> str:
    title = chart.title if chart is not None else sid
    parts = [f"<section class='series' id='{anchor}'><h3>{_esc(title)}</h3>"]
    parts.append(f"<p><small>series {_esc(sid)}</small></p>")
    if chart is None:
        parts.append("<p class='note'>No chart data was provided for this series.</p>")
    else:
        png = base64.b64encode(_chart_png(chart)).decode("ascii")
        parts.append(f"<img src=\"data:image/png;base64,{png}\" alt='chart of {_esc(title)}'>")
    for a in alerts:
        parts.append(
            f"<h4>{_esc(a.get('period'))} {_badge_severity(a.get('severity'))}"
            f"{_badge_early(a)} <small>{_esc(a.get('alert_id'))} · score "
            f"{_number(a.get('score'), '.2f')} · p = {_number(a.get('p_value'), '.2g')}</small></h4>"
            f"<p>{_esc(a.get('explanation'))}</p>"
        )
        if a.get("corroborating_reporters"):
            others = ", ".join(map(str, a["corroborating_reporters"]))
            parts.append(f"<p>Also seen by reporters: {_esc(others)}</p>")
        parts.append(_parties("Top exporters", a.get("top_exporters"), a.get("currency")))
        parts.append(_parties("Top consignees", a.get("top_consignees"), a.get("currency")))
    parts.append("</section>")
    return "\n".join(parts)


def _floats(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _chart_png(chart: ChartSeries) -> bytes:
    """Render one series as a PNG: observed, expected, normal band, alerted months."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    x = list(range(len(chart.months)))
    values, baseline = _floats(chart.values), _floats(chart.baseline)
    low, high = _floats(chart.band_low), _floats(chart.band_high)
    fig, ax = plt.subplots(figsize=(10, 3.6), dpi=100)
    try:
        ax.fill_between(x, low, high, color="#adb5bd", alpha=0.35, linewidth=0, label="normal band")
        ax.plot(x, baseline, "--", color="#495057", linewidth=1.3, label="expected")
        ax.plot(x, values, "-o", color="#1c7ed6", markersize=3.5, linewidth=1.6, label="observed")
        alerted = [i for i, m in enumerate(chart.months) if m in set(chart.alert_months)]
        for i in alerted:
            ax.axvspan(i - 0.5, i + 0.5, color="#fa5252", alpha=0.15, linewidth=0)
        if alerted:
            ax.plot(alerted, [values[i] for i in alerted], "o", color="#e03131", markersize=7,
                    label="alert")
        handles, labels = ax.get_legend_handles_labels()
        if alerted:
            handles.append(Patch(color="#fa5252", alpha=0.15))
            labels.append("alerted month")
        # Above the plot area, so it never hides data points.
        ax.legend(handles, labels, loc="lower left", bbox_to_anchor=(0, 1.0), fontsize=8,
                  frameon=False, ncol=5)
        step = max(1, math.ceil(len(x) / 18))
        ax.set_xticks(x[::step], [chart.months[i] for i in x[::step]], rotation=45, ha="right",
                      fontsize=8)
        ax.set_xlim(-0.6, max(len(x) - 0.4, 0.6))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _money(v)))
        ax.set_ylim(bottom=0)
        ax.set_ylabel(f"monthly value ({chart.currency})")
        ax.set_xlabel("month")
        ax.grid(axis="y", color="#e9ecef")
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(fig)
