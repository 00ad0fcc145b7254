"""The HTML replay report: content, escaping, embedded charts, caps and ordering."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from transitwatch.detectors.errors import InvalidParameterError
from transitwatch.streams.report import ChartSeries, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MALICIOUS = "<script>alert(1)</script>"
IMG_RE = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')

MONTHS = [f"{y}-{m:02d}" for y in (2020, 2021, 2022) for m in range(1, 13)][:35]


def _series(series_id: str, title: str, surge_from: str, scale: float) -> ChartSeries:
    values, baseline, low, high = [], [], [], []
    for i, month in enumerate(MONTHS):
        season = 1.0 + 0.2 * ((i % 12) in (10, 11))
        base = scale * season
        values.append(base * (4.0 if month >= surge_from else 1.0) * (1 + 0.05 * (i % 3)))
        known = i >= 12
        baseline.append(base if known else None)
        low.append(base * 0.6 if known else None)
        high.append(base * 1.5 if known else None)
    alerted = [m for m in MONTHS if m >= surge_from][:3]
    return ChartSeries(series_id, title, "USD", MONTHS, values, baseline, low, high, alerted)


def _alert(alert_id: str, series_id: str, severity: str, score: float, **extra) -> dict:
    alert = {
        "alert_id": alert_id,
        "reporter": "DE",
        "partner": "AM",
        "flow": "export",
        "hs6": "854231",
        "hs_description": "Integrated circuits: processors & controllers",
        "chpl_tier": "1",
        "period": "2022-03",
        "detectors": ["seasonal_surge", "ramp"],
        "score": score,
        "severity": severity,
        "observed_value": 1_980_000.0,
        "baseline_value": 410_000.0,
        "observed_count": 14,
        "baseline_count": 3.2,
        "ratio": 4.8,
        "p_value": 0.001,
        "currency": "USD",
        "top_exporters": [],
        "top_consignees": [],
        "corroborating_reporters": [],
        "early": False,
        "explanation": "Exports rose to 4.8 times the seasonal expectation.",
        "series_id": series_id,
    }
    alert.update(extra)
    return alert


@pytest.fixture
def run():
    charts = {
        "DE>AM export 854231": _series(
            "DE>AM export 854231", "Germany → Armenia, HS 854231 processors (CHPL tier 1)",
            "2022-03", 120_000),
        "IT>KG export 851762": _series(
            "IT>KG export 851762", "Italy → Kyrgyzstan, HS 851762 radio parts", "2022-05", 8_000),
        "PL>KZ export 853224": _series(
            "PL>KZ export 853224", "Poland → Kazakhstan, HS 853224 capacitors", "2022-06", 2_500),
    }
    # Given in the wrong order on purpose: the report must sort them.
    alerts = [
        _alert("a-low-1", "PL>KZ export 853224", "low", 9.9, partner="KZ", hs6="853224",
               early=True, period="2022-06"),
        _alert("a-crit-1", "DE>AM export 854231", "critical", 3.1,
               top_exporters=[{"name": MALICIOUS, "value": 1_200_000.0}],
               top_consignees=[{"name": "Ararat Trade LLC", "value": 900_000.0}]),
        _alert("a-high-1", "IT>KG export 851762", "high", 5.0, reporter="IT", partner="KG",
               hs6="851762", hs_description=f"Radio parts {MALICIOUS}"),
        _alert("a-crit-2", "DE>AM export 854231", "critical", 7.5, period="2022-04"),
    ]
    summary = {
        "inputs": ["comext_2022.csv", "kg_imports.csv"],
        "lines read": 12345,
        "rejected": {"invalid_field:value": 3, MALICIOUS: 1},
        "months": "2020-01 to 2022-11",
    }
    return alerts, charts, summary


def _write(tmp_path: Path, run, **kwargs) -> str:
    alerts, charts, summary = run
    out = tmp_path / "report.html"
    write_report(out, alerts, charts, summary, **kwargs)
    return out.read_text(encoding="utf-8")


class _TagCounter(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.ids += [v for k, v in attrs if k == "id"]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def _section(page: str, start: str, end: str) -> str:
    return page[page.index(start): page.index(end)]


def test_page_is_well_formed_and_lists_every_alert(tmp_path, run):
    page = _write(tmp_path, run)
    assert page.startswith("<!DOCTYPE html>")
    parser = _TagCounter()
    parser.feed(page)
    assert parser.errors == [] and parser.stack == []
    for alert in run[0]:
        assert alert["alert_id"] in page
    assert "12,345" in page and "comext_2022.csv, kg_imports.csv" in page
    assert "invalid_field:value" in page


def test_user_text_is_escaped_everywhere(tmp_path, run):
    page = _write(tmp_path, run)
    assert MALICIOUS not in page
    assert "<script" not in page.lower()
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3  # exporter, HS text, summary


def test_one_png_per_chart_section(tmp_path, run):
    page = _write(tmp_path, run)
    sections = page.count("<section class='series'")
    images = IMG_RE.findall(page)
    assert sections == 3 and len(images) == sections
    assert page.count("data:image/png;base64,") == sections
    for data in images:
        assert base64.b64decode(data, validate=True).startswith(PNG_SIGNATURE)


def test_chart_cap_says_how_many_were_left_out(tmp_path, run):
    page = _write(tmp_path, run, max_charts=1)
    assert len(IMG_RE.findall(page)) == 1
    assert "2 alerted series were left out" in page
    table = _section(page, "<h2>Alerts", "<h2>Charts")
    assert all(a["alert_id"] in table for a in run[0])
    assert table.count("not charted") == 2
    assert "left out" not in _write(tmp_path, run)


def test_table_is_sorted_by_severity_then_score(tmp_path, run):
    table = _section(_write(tmp_path, run), "<h2>Alerts", "<h2>Charts")
    positions = [table.index(i) for i in ("a-crit-2", "a-crit-1", "a-high-1", "a-low-1")]
    assert positions == sorted(positions)


def test_sections_follow_most_severe_alert_and_links_resolve(tmp_path, run):
    page = _write(tmp_path, run)
    charts = page[page.index("<h2>Charts"):]
    titles = ["Germany → Armenia", "Italy → Kyrgyzstan", "Poland → Kazakhstan"]
    positions = [charts.index(t) for t in titles]
    assert positions == sorted(positions)
    parser = _TagCounter()
    parser.feed(page)
    links = set(re.findall(r"href='#([^']+)'", page))
    assert links and links <= set(parser.ids)


def test_early_badge_only_on_early_alerts(tmp_path, run):
    table = _section(_write(tmp_path, run), "<h2>Alerts", "<h2>Charts")
    rows = {re.search(r"a-\w+-\d", row).group(0): row for row in table.split("<tr>")[2:]}
    assert "class='early'" in rows["a-low-1"]
    assert not any("class='early'" in rows[k] for k in ("a-crit-1", "a-crit-2", "a-high-1"))


def test_series_without_chart_keeps_its_explanation(tmp_path, run):
    alerts, charts, summary = run
    charts = {k: v for k, v in charts.items() if not k.startswith("PL")}
    page = _write(tmp_path, (alerts, charts, summary))
    assert len(IMG_RE.findall(page)) == 2
    assert "No chart data" in page and page.count("seasonal expectation") == 4


def test_empty_run_still_writes_a_page(tmp_path):
    out = tmp_path / "empty.html"
    write_report(out, [], {}, {"lines read": 0})
    page = out.read_text(encoding="utf-8")
    assert "No alerts" in page and "data:image/png" not in page


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_bad_max_charts_is_rejected(tmp_path, run, bad):
    alerts, charts, summary = run
    with pytest.raises(InvalidParameterError):
        write_report(tmp_path / "r.html", alerts, charts, summary, max_charts=bad)


def test_import_does_not_load_matplotlib():
    code = "import sys, transitwatch.streams.report; print('matplotlib' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "False"
