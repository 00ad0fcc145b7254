"""The HTML replay report: one self-contained page of cases, its embedded data and its escaping."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transitwatch.detectors.errors import InvalidParameterError
from transitwatch.streams.report import RECORD_FIELDS, ChartSeries, alert_records, build_data, write_report

MALICIOUS = "<script>alert(1)</script>"
MONTHS = [f"{y}-{m:02d}" for y in (2020, 2021, 2022) for m in range(1, 13)][:35]
DATA_RE = re.compile(r"<script type='application/json' id='report-data'>(.*?)</script>", re.DOTALL)


def _series(series_id: str, title: str, scale: float) -> ChartSeries:
    values, baseline, low, high = [], [], [], []
    for i, _month in enumerate(MONTHS):
        base = scale * (1.0 + 0.2 * ((i % 12) in (10, 11)))
        values.append(base * (4.0 if i >= 26 else 1.0) * (1 + 0.05 * (i % 3)) + 0.123)
        known = i >= 12
        baseline.append(base if known else None)
        low.append(base * 0.6 if known else None)
        high.append(base * 1.5 if known else None)
    return ChartSeries(series_id, title, "USD", MONTHS, values, baseline, low, high, MONTHS[26:29])


def _alert(alert_id: str, series_id: str, period: str, case_id: str | None, severity: str, **extra) -> dict:
    reporter, rest = series_id.split(">")
    partner, flow, hs6 = rest.split(" ")
    alert = {
        "alert_id": alert_id, "series_id": series_id, "reporter": reporter, "partner": partner,
        "flow": flow, "hs6": hs6, "hs_description": "Integrated circuits: processors & controllers",
        "chpl_tier": "1", "period": period, "detectors": ["seasonal_surge", "ramp"], "score": 3.5,
        "severity": severity, "confidence": "medium", "materiality": "high",
        "observed_value": 1_980_000.0, "baseline_value": 410_000.0, "observed_count": 14,
        "baseline_count": 3.2, "ratio": 4.8293, "p_value": 0.001, "currency": "USD",
        "top_exporters": [], "top_consignees": [], "corroborating_reporters": [], "early": False,
        "as_of": f"{period}-28",
        "explanation": f"Exports rose in {period} to 4.8 times the expected USD 410k. A case opens on this lane: "
                       "its pre-case level stays its baseline. The goods were banned (EU 833/2014): ok.",
        "evidence": {"new_consignees_named": None},
        "case_id": case_id, "case_severity": severity, "case_status": "open", "case_event": "opened",
        "case_onset": period, "case_months": 1, "case_peak_ratio": 4.8, "case_peak_period": period,
        "case_excess": 1_570_000.0, "case_detectors": ["seasonal_surge", "ramp"], "case_note": "",
        "banned_since": "2022-02-26", "banned_by": "EU 833/2014 Annex VII",
    }
    alert.update(extra)
    return alert


@pytest.fixture
def run():
    de, it, pl = "DE>AM export 854231", "IT>KG export 851762", "PL>KZ export 853224"
    charts = {
        de: _series(de, "Germany → Armenia, export, HS 854231", 120_000),
        it: _series(it, "Italy → Kyrgyzstan, export, HS 851762", 8_000),
        pl: _series(pl, "Poland → Kazakhstan, export, HS 853224", 2_500),
    }
    # Given out of order on purpose; DE>AM has two cases (the first closed, then a new one).
    alerts = [
        _alert("a-pl-1", pl, "2022-06", "twc-pl", "low", early=True, case_excess=20_000.0,
               evidence={"new_consignees_named": [{"name": f"New {MALICIOUS} LLC", "value": 5e4,
                                                    "first_seen": "2022-06-03"}]}),
        _alert("a-de-2", de, "2022-04", "twc-de-b", "critical", case_event="updated", case_months=2,
               case_onset="2022-03", case_excess=3_000_000.0, case_status="escalated",
               top_exporters=[{"name": MALICIOUS, "value": 1_200_000.0}],
               top_consignees=[{"name": "Ararat Trade LLC", "value": 900_000.0}]),
        _alert("a-it-1", it, "2022-05", "twc-it", "high", hs_description=f"Radio parts {MALICIOUS}",
               chpl_tier=None, case_excess=float("nan"), case_peak_ratio=None),
        _alert("a-de-1", de, "2022-03", "twc-de-b", "high", case_severity="high"),
        _alert("a-de-0", de, "2021-03", "twc-de-a", "medium", case_status="closed",
               case_event="closed", case_note="closed: back within its normal band for 3 months"),
        _alert("a-loose", pl, "2022-07", None, "medium", explanation="", case_excess=10.0),
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


def _data(page: str) -> dict:
    found = DATA_RE.search(page)
    assert found is not None
    return json.loads(found.group(1))


class _Page(HTMLParser):
    """Checks that every element closes in order and collects what the tests look at."""

    VOID = {"meta", "img", "br", "hr", "link", "input", "col", "source", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.scripts: list[dict] = []
        self.row_headers: list[str] = []
        self.html_lang: str | None = None
        self._text: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        d = dict(attrs)
        self.ids += [v for k, v in attrs if k == "id"]
        self.attrs += [(tag, k, v) for k, v in attrs]
        if tag == "html":
            self.html_lang = d.get("lang")
        if tag == "script":
            self.scripts.append(d)
        if tag == "th" and d.get("scope") == "row":
            self._text = []
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "th" and self._text is not None:
            self.row_headers.append("".join(self._text))
            self._text = None
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def test_page_is_well_formed_accessible_and_lists_every_case(tmp_path, run):
    page = _write(tmp_path, run)
    assert page.startswith("<!DOCTYPE html>")
    parsed = _parse(page)
    assert parsed.errors == [] and parsed.stack == []
    assert parsed.html_lang == "en"
    assert len(parsed.ids) == len(set(parsed.ids))
    # One row per case, headed by its lane; five cases (the record without a case_id is its own).
    lanes = [h.split(" export")[0] for h in parsed.row_headers if "→" in h]
    assert sorted(lanes) == ["DE → AM", "DE → AM", "IT → KG", "PL → KZ", "PL → KZ"]
    assert page.count("aria-controls='case-") == 5
    for column in ("severity", "confidence", "lane", "hs6", "tier", "onset", "months", "peak_ratio",
                   "excess", "detectors", "status"):
        assert f"aria-sort='none' data-key='{column}'" in page
    # Every form control has a label.
    controls = [v for tag, k, v in parsed.attrs if tag in ("select", "input") and k == "id"]
    labels = {v for tag, k, v in parsed.attrs if tag == "label" and k == "for"}
    assert controls and set(controls) <= labels
    assert "12,345" in page and "comext_2022.csv, kg_imports.csv" in page and "invalid_field:value" in page


def test_the_page_loads_nothing_from_outside_and_inlines_uplot(tmp_path, run):
    page = _write(tmp_path, run)
    parsed = _parse(page)
    assert not [a for a in parsed.attrs if a[1] in ("src", "href") and a[2] and re.match(r"\s*(https?:)?//", a[2])]
    assert not [s for s in parsed.scripts if "src" in s]
    assert not any(tag == "link" for tag, _, _ in parsed.attrs)
    vendored = resources.files("transitwatch.streams").joinpath("assets/vendor/uplot/uPlot.iife.min.js")
    assert vendored.read_text("utf-8").replace("</", "<\\/") in page
    assert "var uPlot=" in page and ".uplot" in page


def test_user_text_is_escaped_everywhere(tmp_path, run):
    page = _write(tmp_path, run)
    assert MALICIOUS not in page
    assert "<script>alert" not in page
    # In the table (the goods) and the summary as HTML text, in the data as JSON.
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 2
    data = _data(page)
    names = [p[0] for c in data["cases"] for r in c["records"] for p in r[RECORD_FIELDS.index("top_exporters")]]
    assert MALICIOUS in names


def test_data_block_holds_every_record_as_given(tmp_path, run):
    alerts = run[0]
    data = _data(_write(tmp_path, run))
    assert data["version"] == 1 and data["record_fields"] == list(RECORD_FIELDS)
    field = {name: i for i, name in enumerate(RECORD_FIELDS)}
    seen = {}
    for case in data["cases"]:
        periods = [r[field["period"]] for r in case["records"]]
        assert periods == sorted(periods)
        for rec in case["records"]:
            seen[rec[field["alert_id"]]] = (case, rec)
    assert set(seen) == {a["alert_id"] for a in alerts}
    for alert in alerts:
        case, rec = seen[alert["alert_id"]]
        assert case["case_id"] == (alert["case_id"] or f"record {alert['alert_id']}")
        assert case["series_id"] == alert["series_id"] and case["reporter"] == alert["reporter"]
        text = " ".join(data["sentences"][i] for i in rec[field["explanation"]])
        assert text == alert["explanation"]
        for name in ("period", "severity", "observed_value", "ratio", "case_event", "early", "observed_count"):
            assert rec[field[name]] == alert[name], name
    de_b = next(c for c in data["cases"] if c["case_id"] == "twc-de-b")
    assert (de_b["months"], de_b["status"], de_b["excess"], de_b["onset"]) == (2, "escalated", 3_000_000.0, "2022-03")
    # Sentences shared by records are stored once.
    assert len(data["sentences"]) == len(set(data["sentences"]))
    assert sum(s.startswith("A case opens on this lane") for s in data["sentences"]) == 1


def test_cases_come_most_severe_first_then_largest_excess(tmp_path, run):
    data = _data(_write(tmp_path, run))
    assert [c["case_id"] for c in data["cases"]] == [
        "twc-de-b", "twc-it", "twc-de-a", "record a-loose", "twc-pl"]


def test_unknown_numbers_are_null_and_a_case_without_tier_says_so(tmp_path, run):
    page = _write(tmp_path, run)
    data = _data(page)
    it = next(c for c in data["cases"] if c["case_id"] == "twc-it")
    assert it["excess"] is None and it["peak_ratio"] is None and it["tier"] is None
    assert "NaN" not in DATA_RE.search(page).group(1)


def test_lane_data_is_aligned_and_rounded(tmp_path, run):
    alerts, charts, _ = run
    data = build_data(alerts, charts)
    assert set(data["lanes"]) == set(charts)
    lane = data["lanes"]["PL>KZ export 853224"]
    assert lane["first"] == "2020-01" and len(lane["value"]) == len(MONTHS)
    assert lane["expected"][:12] == [None] * 12 and lane["expected"][12] == 2500
    assert lane["value"][0] == 2500  # whole units from 100 up
    small = build_data(alerts, {"PL>KZ export 853224": ChartSeries(
        "PL>KZ export 853224", "t", "USD", ["2022-01"], [12.3456], [None], [None], [None], [])})
    assert small["lanes"]["PL>KZ export 853224"]["value"] == [12.35]


def test_a_lane_without_chart_data_keeps_its_case(tmp_path, run):
    alerts, charts, summary = run
    charts = {k: v for k, v in charts.items() if not k.startswith("PL")}
    data = _data(_write(tmp_path, (alerts, charts, summary)))
    assert "PL>KZ export 853224" not in data["lanes"]
    assert sum(c["series_id"] == "PL>KZ export 853224" for c in data["cases"]) == 2


def test_new_consignees_are_carried(tmp_path, run):
    data = _data(_write(tmp_path, run))
    pl = next(c for c in data["cases"] if c["case_id"] == "twc-pl")
    assert pl["records"][0][RECORD_FIELDS.index("new_consignees")] == [
        [f"New {MALICIOUS} LLC", 50000.0, "2022-06-03"]]


def test_progress_reaches_every_case(tmp_path, run):
    calls = []
    _write(tmp_path, run, progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (5, 5)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_empty_run_still_writes_a_page(tmp_path):
    out = tmp_path / "empty.html"
    write_report(out, [], {}, {"lines read": 0})
    page = out.read_text(encoding="utf-8")
    assert "No alerts" in page and _data(page)["cases"] == []
    assert _parse(page).errors == []


@pytest.mark.parametrize("months, values", [
    (["2022-01", "2022-03"], [1.0, 2.0]),     # a gap
    (["2022-1", "2022-02"], [1.0, 2.0]),      # not YYYY-MM
    (["2022-01", "2022-02"], [1.0]),          # misaligned
])
def test_chart_series_checks_its_months(months, values):
    n = len(months)
    with pytest.raises(InvalidParameterError):
        ChartSeries("s", "t", "USD", months, values, [None] * n, [None] * n, [None] * n, [])


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def test_severity_badges_have_aa_contrast():
    css = resources.files("transitwatch.streams").joinpath("assets/report/report.css").read_text("utf-8")
    badges = re.findall(r"\.sev-([a-z-]+)\{background:(#[0-9a-f]{6});color:(#[0-9a-f]{6})\}", css)
    assert {name for name, _, _ in badges} == {"critical", "high", "medium", "low"}
    for name, background, colour in badges:
        a, b = sorted((_luminance(background), _luminance(colour)))
        assert (b + 0.05) / (a + 0.05) >= 4.5, name


def test_writing_a_report_loads_no_matplotlib(tmp_path):
    out = tmp_path / "r.html"
    code = (
        "import sys; from transitwatch.streams.report import write_report, ChartSeries; "
        f"write_report({str(out)!r}, [], {{}}, {{}}); print('matplotlib' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False" and out.exists()


def test_alert_records_are_the_alerts_file_lines(tmp_path):
    from transitwatch.detectors.alerts import Alert
    from transitwatch.streams.replay import write_alerts

    alerts = [
        Alert(alert_id=f"tw-{i}", series_id="DE>KG export 854231", reporter="DE", partner="KG", flow="export",
              hs6="854231", hs_description=None, chpl_tier="1", period=f"2022-0{i}", detectors=("ramp",),
              score=float("nan") if i == 2 else 2.5, severity="low", observed_value=1.5, baseline_value=None,
              observed_count=3, baseline_count=None, ratio=None, p_value=0.01, currency="USD",
              top_exporters=({"name": "A", "value": 1.0},), top_consignees=(), corroborating_reporters=("PL",),
              early=False, as_of=f"2022-0{i}-28", explanation="Up. Case open.", case_id="twc-1")
        for i in (1, 2)
    ]
    path = tmp_path / "a.jsonl"
    write_alerts(path, alerts)
    assert alert_records(alerts) == [json.loads(line) for line in path.read_text().splitlines()]
    assert alert_records(alerts)[1]["score"] is None


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("Ab. :;(!?\n\u2028é<"), max_size=80))
def test_any_explanation_comes_back_whole(text):
    record = dict(_alert("a", "DE>AM export 854231", "2022-03", "c", "low"), explanation=text)
    data = build_data([record], {})
    indexes = data["cases"][0]["records"][0][RECORD_FIELDS.index("explanation")]
    assert " ".join(data["sentences"][i] for i in indexes) == text


def test_filter_choices_carry_their_case_counts_and_country_names(tmp_path, run):
    page = _write(tmp_path, run)
    assert "<option value='AM'>AM · Armenia (2)</option>" in page
    assert "<option value='KZ'>KZ · Kazakhstan (2)</option>" in page
    assert "<option value='critical'>critical (1)</option>" in page
    assert "<option value='seasonal_surge'>seasonal_surge (5)</option>" in page
