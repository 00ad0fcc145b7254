"""The chart of one alert for email: observed against expected, with the normal band.

An alert carries no history, so the chart draws what it has: the expected value of the
month, the top of the lane's normal range (``evidence.band_high``) where the evidence gives
it, and the observed value, as horizontal bars sized for a phone screen. matplotlib (Agg)
is imported only here, through its object API (no pyplot), so charts can be drawn in a
worker thread.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from typing import Any

from transitwatch.detectors.alerts import money
from transitwatch.streams.notify.content import SEVERITY_COLOUR, lane, severity, text


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def chart_png(alert: Mapping[str, Any]) -> bytes:
    """A PNG (600×260 px) of the alert's month against its baseline.

    Examples
    --------
    >>> png = chart_png({"reporter": "DE", "partner": "AM", "hs6": "854232", "period": "2022-04",
    ...                  "observed_value": 112845.0, "baseline_value": 172.7, "currency": "EUR",
    ...                  "severity": "high", "evidence": {"band_high": 16073.4}})
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    currency = str(alert.get("currency") or "")
    observed = _num(alert.get("observed_value")) or 0.0
    baseline = _num(alert.get("baseline_value"))
    evidence = alert.get("evidence") if isinstance(alert.get("evidence"), Mapping) else {}
    band_high = _num(evidence.get("band_high"))
    colour = SEVERITY_COLOUR.get(severity(alert), "#1c7ed6")
    labels = ["observed", "expected"]
    values = [observed, baseline or 0.0]
    top = max([observed, baseline or 0.0, band_high or 0.0, 1.0])
    fig = Figure(figsize=(6.0, 2.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if band_high is not None and band_high > 0:
        ax.axvspan(0, band_high, color="#adb5bd", alpha=0.3, linewidth=0, label="normal range")
        ax.axvline(band_high, color="#868e96", linewidth=1, linestyle=":")
    bars = ax.barh(labels[::-1], values[::-1], color=["#495057", colour], height=0.55)
    for bar, value, known in zip(bars, values[::-1], [baseline is not None, True], strict=True):
        shown = money(value, currency) if known else "no baseline"
        ax.text(bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2, shown, va="center",
                fontsize=9)
    ax.set_xlim(0, top * 1.22)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: money(v, "").strip()))
    ax.set_xlabel(f"value in {text(alert.get('period'))} ({currency})", fontsize=8)
    ax.tick_params(labelsize=8)
    title = f"{lane(alert)} · HS {text(alert.get('hs6'))} · {text(alert.get('period'))}"
    if _num(alert.get("ratio")) is not None:
        title += f" · {alert['ratio']:,.1f}× expected"
    ax.set_title(title, fontsize=10, loc="left")
    if band_high is not None and band_high > 0:
        ax.legend(loc="lower right", fontsize=7, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
