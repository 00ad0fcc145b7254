"""The desk in headless Chromium against a replay of the shipped sample (issue 17, item 6)."""

from __future__ import annotations

import csv
import io
import urllib.request

import openpyxl
import orjson
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from tests.streams.desk.browser import DeskProcess

pytestmark = pytest.mark.browser


def case_ids(browser) -> list[str]:
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#cases tr.case')).map(r => r.dataset.case);")


def wait_for_update(browser, change) -> None:
    """Run ``change`` and wait for the list's script to replace the results."""
    browser.execute_script("window.__updated = false; document.addEventListener('desk:updated', "
                           "() => { window.__updated = true; }, {once: true});")
    change()
    WebDriverWait(browser, 20).until(lambda b: b.execute_script("return window.__updated === true;"))


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def cases_in(alerts_file) -> set[str]:
    return {orjson.loads(line)["case_id"] for line in alerts_file.read_bytes().splitlines() if line.strip()}


def test_list_renders_every_case_and_filters_and_sorting_change_it(browser, desk, alerts_file):
    browser.get(desk.url + "/?per_page=all")
    everything = case_ids(browser)
    assert set(everything) == cases_in(alerts_file) and len(everything) == len(cases_in(alerts_file))

    wait_for_update(browser, lambda: Select(browser.find_element(By.ID, "f-partner")).select_by_value("KZ"))
    kz = case_ids(browser)
    assert 0 < len(kz) < len(everything)
    lanes = browser.execute_script(
        "return Array.from(document.querySelectorAll('#cases tr.case th[scope=row]')).map(c => c.textContent);")
    assert all(">KZ " in lane for lane in lanes)
    assert "partner=KZ" in browser.current_url  # the view is its URL

    wait_for_update(browser, lambda: browser.find_element(By.LINK_TEXT, "Lane").click())
    lanes = browser.execute_script(
        "return Array.from(document.querySelectorAll('#cases tr.case th[scope=row]')).map(c => c.textContent.trim());")
    assert lanes == sorted(lanes) and sorted(case_ids(browser)) == sorted(kz)
    header = browser.find_element(By.XPATH, "//thead//th[a[text()='Lane']]")
    assert header.get_attribute("aria-sort") == "ascending"

    # The shared URL opens the same view, rendered by the server alone.
    sorted_view = case_ids(browser)
    browser.get(browser.current_url)
    assert case_ids(browser) == sorted_view


def test_pages(browser, desk):
    browser.get(desk.url + "/")
    first = case_ids(browser)
    assert len(first) == 100
    wait_for_update(browser, lambda: browser.find_element(By.LINK_TEXT, "Next page").click())
    second = case_ids(browser)
    assert len(second) == 100 and not set(first) & set(second) and "page=2" in browser.current_url
    # A filter change shows the first page of the new view.
    wait_for_update(browser, lambda: Select(browser.find_element(By.ID, "f-status")).select_by_value("open"))
    assert "&page=" not in browser.current_url and "?page=" not in browser.current_url


def test_search_and_grouping(browser, desk):
    browser.get(desk.url + "/?group=partner&per_page=all")
    counts = browser.execute_script(
        "return Array.from(document.querySelectorAll('#group-counts tbody tr td')).map(c => +c.textContent);")
    assert sum(counts) == len(case_ids(browser)) and counts == sorted(counts, reverse=True)

    box = browser.find_element(By.ID, "f-q")
    wait_for_update(browser, lambda: box.send_keys("Armenia"))
    found = case_ids(browser)
    assert found and all(">AM " in t for t in browser.execute_script(
        "return Array.from(document.querySelectorAll('#cases tr.case th[scope=row]')).map(c => c.textContent);"))


def test_export_returns_the_rows_shown(browser, desk):
    browser.get(desk.url + "/?sort=excess&dir=desc&per_page=50")
    shown = case_ids(browser)
    while browser.find_elements(By.LINK_TEXT, "Next page"):  # every page of the view
        wait_for_update(browser, lambda: browser.find_element(By.LINK_TEXT, "Next page").click())
        shown += case_ids(browser)
    assert len(shown) > 100 and len(set(shown)) == len(shown)
    csv_href = browser.find_element(By.ID, "export-csv").get_attribute("href")
    xlsx_href = browser.find_element(By.ID, "export-xlsx").get_attribute("href")
    rows = list(csv.DictReader(io.StringIO(get(csv_href).decode("utf-8"))))
    assert [r["case_id"] for r in rows] == shown
    sheet = openpyxl.load_workbook(io.BytesIO(get(xlsx_href))).active
    assert [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)] == shown


def open_first_case(browser, desk, query: str = "") -> str:
    browser.get(desk.url + "/" + query)
    first = browser.find_element(By.CSS_SELECTOR, "#cases tr.case th[scope=row] a")
    case_id = first.get_attribute("href").rsplit("/", 1)[1]
    first.click()
    WebDriverWait(browser, 20).until(lambda b: b.execute_script("return window.deskChartsDrawn !== undefined;"))
    return case_id


def test_case_page_draws_its_chart(browser, desk):
    open_first_case(browser, desk, "?partner=KZ")  # a hub with many reporters: related lanes to draw
    painted = browser.execute_script("""
        const canvas = document.querySelector('#chart-value canvas');
        if (!canvas) return -1;
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let n = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) n++;
        return n;""")
    assert painted > 1000
    legend = browser.execute_script(
        "return Array.from(document.querySelectorAll('#chart-value .u-legend .u-series')).map(s => s.textContent);")
    assert any("value" in s for s in legend) and any("expected" in s for s in legend)
    # The related lanes' small charts are drawn as they come into view.
    sparks = browser.find_elements(By.CSS_SELECTOR, ".spark")
    assert sparks
    browser.execute_script("arguments[0].scrollIntoView();", sparks[-1])
    WebDriverWait(browser, 20).until(lambda b: sparks[-1].find_elements(By.CSS_SELECTOR, "canvas"))


def test_feedback_survives_a_restart_and_suppresses_the_case(browser, desk):
    case_id = open_first_case(browser, desk, "?severity=high")
    browser.find_element(By.ID, "v-dismissed").click()
    browser.find_element(By.ID, "fb-reason").send_keys("Known distributor, contract seen")
    browser.find_element(By.ID, "fb-analyst").send_keys("Ana Analyst")
    browser.find_element(By.CSS_SELECTOR, "#feedback-form button[type=submit]").click()
    WebDriverWait(browser, 20).until(ec.text_to_be_present_in_element((By.ID, "h-feedback"), "Feedback"))
    assert "Feedback saved." in browser.page_source

    desk.stop()
    desk.start()
    browser.get(f"{desk.url}/case/{case_id}")
    log = browser.find_element(By.CSS_SELECTOR, "table.feedback-log").text
    assert "Ana Analyst" in log and "dismissed" in log and "Known distributor" in log
    browser.get(desk.url + "/")
    assert case_id not in case_ids(browser)
    browser.get(desk.url + "/?suppressed=1&feedback=dismissed")
    assert case_id in case_ids(browser)
    (line,) = get(desk.url + "/feedback.jsonl").splitlines()
    assert orjson.loads(line)["analyst"] == "Ana Analyst"


@pytest.mark.parametrize("query", ["", "?group=partner&partner=KZ"])
def test_list_has_no_serious_accessibility_violations(browser, desk, query):
    from tests.streams.desk.browser import axe_violations

    browser.get(desk.url + "/" + query)
    assert axe_violations(browser) == []


def test_case_page_has_no_serious_accessibility_violations(browser, desk):
    from tests.streams.desk.browser import axe_violations

    open_first_case(browser, desk)
    assert axe_violations(browser) == []


def test_a_followed_source_offers_its_new_cases_without_losing_the_view(browser, alerts_file, tmp_path):
    """``--refresh 1`` over a file a replay is still writing: the page says the cases changed and,
    on request, shows the new ones in the same view (filters kept)."""
    from tests.streams.desk.desk_helpers import record
    from transitwatch.streams.desk.cases import JsonLinesCaseSource

    growing = tmp_path / "alerts.jsonl"
    growing.write_bytes(alerts_file.read_bytes())
    process = DeskProcess(growing, tmp_path / "feedback.sqlite", "--refresh", "1")
    process.start()
    try:
        browser.get(process.url + "/?partner=KZ&per_page=all")
        before = case_ids(browser)
        assert before and browser.find_element(By.ID, "changed").get_attribute("hidden") is not None
        last = JsonLinesCaseSource(growing).load().records[-1]
        new = record(case_id="twc-followed", series_id="DE>KZ export 999999", reporter="DE", partner="KZ",
                     hs6="999999", period=str(last["period"]))
        with growing.open("ab") as handle:
            handle.write(orjson.dumps(new) + b"\n")
        WebDriverWait(browser, 30).until(ec.visibility_of_element_located((By.ID, "changed")))
        assert "The cases changed" in browser.find_element(By.ID, "changed").text
        assert case_ids(browser) == before, "nothing moves under the analyst's eyes"
        wait_for_update(browser, lambda: browser.find_element(By.ID, "show-changed").click())
        assert sorted(case_ids(browser)) == sorted([*before, "twc-followed"])
        assert "partner=KZ" in browser.current_url
        assert not browser.find_element(By.ID, "changed").is_displayed()
    finally:
        process.stop()
