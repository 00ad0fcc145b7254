"""The report of the shipped sample: its size bound, its data against the alerts file, and a real
browser (Debian's chromium through selenium) drawing a chart and filtering the cases from file://.

The browser test skips only when chromium, its driver or selenium is missing and ``CI`` is unset.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import orjson
import pytest

from transitwatch.streams.cli import main
from transitwatch.streams.report import RECORD_FIELDS

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "transitwatch" / "data" / "eurostat_chpl_exports_2020_2022.jsonl.gz"
CONFIG = ROOT / "transitwatch" / "data" / "eurostat.toml"
MAX_BYTES = 2_000_000  # issue 17: the report weighs at most 2 MB on the shipped sample
DATA_RE = re.compile(r"<script type='application/json' id='report-data'>(.*?)</script>", re.DOTALL)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sample-report")
    alerts, report = folder / "alerts.jsonl", folder / "report.html"
    code = main(["replay", str(SAMPLE), "--config", str(CONFIG), "--alerts-out", str(alerts),
                 "--report", str(report), "--quiet"])
    assert code == 0
    rows = [orjson.loads(line) for line in alerts.read_bytes().splitlines()]
    page = report.read_text(encoding="utf-8")
    return rows, report, page, json.loads(DATA_RE.search(page).group(1))


def test_sample_report_is_under_two_megabytes(sample):
    _, report, _, _ = sample
    assert report.stat().st_size <= MAX_BYTES


def test_sample_report_holds_every_case_and_record(sample):
    rows, _, page, data = sample
    field = {name: i for i, name in enumerate(RECORD_FIELDS)}
    records = {r[field["alert_id"]]: (c, r) for c in data["cases"] for r in c["records"]}
    assert len(records) == len(rows) and len(data["cases"]) == len({r["case_id"] for r in rows})
    for row in rows:
        case, rec = records[row["alert_id"]]
        assert case["case_id"] == row["case_id"] and case["series_id"] == row["series_id"]
        assert rec[field["period"]] == row["period"] and rec[field["severity"]] == row["severity"]
        assert " ".join(data["sentences"][i] for i in rec[field["explanation"]]) == row["explanation"]
        assert f"records of case {row['case_id']}<" in page
    # Every alerted lane has its chart data, months aligned.
    assert set(data["lanes"]) == {r["series_id"] for r in rows}
    for lane in data["lanes"].values():
        assert len(lane["value"]) == len(lane["expected"]) == len(lane["low"]) == len(lane["high"]) > 0


def _browser():
    """A headless Chromium driver, or the reason there is none."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None, "selenium is not installed (pip install selenium)"
    if not chromium or not driver:
        return None, "Debian's chromium and chromium-driver are not installed"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options), None


@pytest.fixture(scope="module")
def browser():
    driver, missing = _browser()
    if driver is None:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test must run in CI: {missing}")
        pytest.skip(missing)
    yield driver
    driver.quit()


def _shown(driver) -> list[int]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#cases > tbody'))"
        ".filter(function (b) { return !b.hidden; }).map(function (b) { return +b.id.split('-')[1]; });")


def test_browser_draws_a_chart_and_filters_sorts_and_searches(sample, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _, report, _, data = sample
    cases = data["cases"]
    browser.get(report.as_uri())
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    assert _shown(browser) == list(range(len(cases)))
    assert browser.find_element(By.ID, "shown").text == f"Showing {len(cases)} of {len(cases)} cases"

    # Open the first case: its chart is drawn on a canvas, its records listed.
    button = browser.find_element(By.CSS_SELECTOR, "#case-0 button.open")
    button.click()
    assert button.get_attribute("aria-expanded") == "true"
    painted = browser.execute_script(
        "var c = document.querySelector('#case-0-detail canvas'); if (!c) return -1;"
        "var d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, n = 0;"
        "for (var i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;")
    assert painted > 1000
    listed = browser.find_elements(By.CSS_SELECTOR, "#case-0-detail tr[data-alert-id]")
    assert len(listed) == len(cases[0]["records"])

    # A filter on the hub shows exactly that hub's cases; another narrows them further.
    Select(browser.find_element(By.ID, "f-partner")).select_by_value("AM")
    assert _shown(browser) == [i for i, c in enumerate(cases) if c["partner"] == "AM"]
    Select(browser.find_element(By.ID, "f-severity")).select_by_value("high")
    assert _shown(browser) == [i for i, c in enumerate(cases) if c["partner"] == "AM" and c["severity"] == "high"]
    browser.find_element(By.CSS_SELECTOR, "#filters button[type=reset]").click()
    browser.find_element(By.ID, "f-hs").send_keys("8542")
    assert _shown(browser) == [i for i, c in enumerate(cases) if c["hs6"].startswith("8542")]
    browser.find_element(By.CSS_SELECTOR, "#filters button[type=reset]").click()

    # Free text finds a case by its id; sorting by excess puts the smallest first, then the largest.
    browser.find_element(By.ID, "f-q").send_keys(cases[-1]["case_id"])
    assert _shown(browser) == [len(cases) - 1]
    browser.find_element(By.CSS_SELECTOR, "#filters button[type=reset]").click()
    header = browser.find_element(By.CSS_SELECTOR, "th[data-key=excess]")
    header.find_element(By.TAG_NAME, "button").click()
    assert header.get_attribute("aria-sort") == "ascending"
    excess = [cases[i]["excess"] for i in _shown(browser)]
    known = [e for e in excess if e is not None]
    assert known == sorted(known) and excess[: len(known)] == known
    header.find_element(By.TAG_NAME, "button").click()
    assert header.get_attribute("aria-sort") == "descending"
    known = [cases[i]["excess"] for i in _shown(browser) if cases[i]["excess"] is not None]
    assert known == sorted(known, reverse=True)


def test_browser_view_lives_in_the_address(sample, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _, report, _, data = sample
    cases = data["cases"]
    browser.get(report.as_uri())
    Select(browser.find_element(By.ID, "f-partner")).select_by_value("KZ")
    browser.find_element(By.CSS_SELECTOR, "th[data-key=months] button").click()
    address = browser.current_url
    assert address.endswith("#partner=KZ&sort=months.ascending")
    # The same address, opened afresh, gives the same view.
    browser.get("about:blank")
    browser.get(address)
    assert Select(browser.find_element(By.ID, "f-partner")).first_selected_option.get_attribute("value") == "KZ"
    shown = _shown(browser)
    assert sorted(shown) == [i for i, c in enumerate(cases) if c["partner"] == "KZ"]
    assert [cases[i]["months"] for i in shown] == sorted(cases[i]["months"] for i in shown)
    assert browser.find_element(By.CSS_SELECTOR, "th[data-key=months]").get_attribute("aria-sort") == "ascending"
    # A value the page does not know is ignored, not an error.
    browser.get(report.as_uri() + "#partner=ZZ&sort=nonsense.up")
    assert _shown(browser) == list(range(len(cases)))
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
