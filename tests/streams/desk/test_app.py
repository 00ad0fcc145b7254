"""The desk's web application over an in-process server: pages, fragments, exports, feedback."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable
from typing import Any

import openpyxl
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.streams.desk.desk_helpers import record
from transitwatch.streams.desk.app import make_app
from transitwatch.streams.desk.cases import JsonLinesCaseSource
from transitwatch.streams.desk.model import Desk
from transitwatch.streams.feedback import SqliteFeedbackStore


def records() -> list[dict[str, Any]]:
    return [
        record(case_id="twc-a", period="2022-05"),
        record(case_id="twc-a", period="2022-06", case_event="updated", case_months=2,
               explanation="<script>alert(1)</script> rose", top_exporters=[{"name": "Siltek s.r.o.", "value": 1.0}]),
        record(case_id="twc-b", series_id="PL>KG export 854231", reporter="PL", severity="low", case_severity="low",
               corroborating_reporters=["DE"]),
        record(case_id="twc-c", series_id="DE>KZ export 851762", partner="KZ", hs6="851762", severity="high",
               case_severity="high", case_status="closed"),
        # A record with only what a case needs: the pages show what is there and never fail.
        {"case_id": "twc-d", "series_id": "LT>AM export 852691", "period": "2022-04", "reporter": "LT",
         "partner": "AM", "hs6": "852691", "severity": "low", "evidence": None, "detectors": None},
    ]


@pytest.fixture
def desk(tmp_path) -> Desk:
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records()) + b"oops\n")
    return Desk(JsonLinesCaseSource(path), SqliteFeedbackStore(tmp_path / "fb.sqlite"), suppress_months=6)


def run(desk: Desk, scenario: Callable[[TestClient], Any]) -> Any:
    async def main():
        async with TestClient(TestServer(make_app(desk))) as client:
            return await scenario(client)
    return asyncio.run(main())


def test_list_page_shows_every_case_and_says_what_it_could_not_read(desk):
    async def go(client):
        response = await client.get("/")
        assert response.status == 200
        assert "Content-Security-Policy" in response.headers
        return await response.text()
    html = run(desk, go)
    assert html.count('class="case ') == 4
    assert "1 lines could not be read" in html
    assert '<html lang="en">' in html and 'href="#main"' in html


def test_rows_fragment_filters_and_sorts(desk):
    async def go(client):
        kz = await (await client.get("/rows?partner=KZ")).text()
        by_lane = await (await client.get("/rows?sort=lane&dir=asc")).text()
        return kz, by_lane
    kz, by_lane = run(desk, go)
    assert kz.count('class="case ') == 1 and "DE&gt;KZ" in kz
    assert by_lane.index("DE&gt;KG") < by_lane.index("DE&gt;KZ") < by_lane.index("PL&gt;KG")
    assert 'aria-sort="ascending"' in by_lane


def test_case_page_escapes_record_text_and_embeds_chart_data(desk):
    async def go(client):
        ok = await client.get("/case/twc-a")
        missing = await client.get("/case/twc-zzz")
        sparse = await client.get("/case/twc-d")
        return ok.status, await ok.text(), missing.status, sparse.status
    status, html, missing, sparse = run(desk, go)
    assert status == 200 and missing == 404 and sparse == 200
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)" in html
    assert '"periods":["2022-05","2022-06"]' in html
    assert "Siltek s.r.o." in html
    assert "No alert records for this lane." in html  # Russia and Belarus: no records, none invented
    assert "PL&gt;KG export 854231" in html  # the same goods into the same hub from Poland


def test_case_page_draws_every_month_of_the_input_when_given(desk, tmp_path):
    base = {"reporter": "DE", "flow": "export", "hs_code": "854231", "currency": "EUR"}
    rows = [{**base, "partner": "KG", "period": f"2022-0{m}", "value": 1000.0 * m} for m in range(1, 8)]
    rows.append({**base, "partner": "RU", "period": "2022-01", "value": 5.0})
    path = tmp_path / "input.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    desk.read_inputs([str(path)])

    async def go(client):
        return await (await client.get("/case/twc-a")).text()
    html = run(desk, go)
    assert '"periods":["2022-01","2022-02","2022-03","2022-04","2022-05","2022-06","2022-07"]' in html
    assert '"value":[1000.0,2000.0,3000.0,4000.0,5000.0,6000.0,7000.0]' in html
    assert "every month of the replay's input" in html
    assert "from the input, no alert records" in html  # DE>RU: drawn from the input, not from alerts
    assert "No alert records for this lane." in html  # DE>BY: in neither


def test_feedback_needs_the_same_origin_and_then_suppresses_the_lane(desk):
    form = {"verdict": "dismissed", "reason": "known distributor", "analyst": "Ana"}

    async def go(client):
        origin = f"http://{client.host}:{client.port}"
        no_origin = await client.post("/case/twc-a/feedback", data=form, allow_redirects=False)
        cross = await client.post("/case/twc-a/feedback", data=form, headers={"Origin": "http://evil.example"},
                                  allow_redirects=False)
        bad = await client.post("/case/twc-a/feedback", data={**form, "analyst": ""}, headers={"Origin": origin},
                                allow_redirects=False)
        ok = await client.post("/case/twc-a/feedback", data=form, headers={"Origin": origin}, allow_redirects=False)
        listing = await (await client.get("/")).text()
        shown = await (await client.get("/?suppressed=1")).text()
        exported = await (await client.get("/feedback.jsonl")).read()
        return no_origin.status, cross.status, bad.status, bad.headers["Location"], ok.status, listing, shown, exported
    no_origin, cross, bad, bad_location, ok, listing, shown, exported = run(desk, go)
    assert (no_origin, cross, bad, ok) == (403, 403, 303, 303)
    assert "error=" in bad_location
    assert 'data-case="twc-a"' not in listing and "1 suppressed by dismissals hidden" in listing
    assert 'data-case="twc-a"' in shown
    (line,) = exported.splitlines()
    assert orjson.loads(line)["verdict"] == "dismissed" and orjson.loads(line)["period"] == "2022-06"


def test_exports_hold_the_rows_shown(desk):
    async def go(client):
        html = await (await client.get("/rows?sort=lane&dir=asc&partner=KG")).text()
        text = await (await client.get("/export.csv?sort=lane&dir=asc&partner=KG")).text()
        book = await (await client.get("/export.xlsx?sort=lane&dir=asc&partner=KG")).read()
        return html, text, book
    html, text, book = run(desk, go)
    shown = [part.split('"')[0] for part in html.split('data-case="')[1:]]
    csv_rows = list(csv.DictReader(io.StringIO(text)))
    sheet = openpyxl.load_workbook(io.BytesIO(book)).active
    xlsx_ids = [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert shown == [r["case_id"] for r in csv_rows] == xlsx_ids == ["twc-a", "twc-b"]
    assert csv_rows[0]["lane"] == "DE>KG export 854231" and csv_rows[0]["excess"] == "350000.0"


json_values = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                         max_size=3), max_leaves=6)
OPTIONAL = ("hs_description", "chpl_tier", "detectors", "case_detectors", "severity", "case_severity", "confidence",
            "case_status", "case_event", "case_onset", "case_months", "case_peak_ratio", "case_excess", "currency",
            "observed_value", "baseline_value", "observed_count", "ratio", "explanation", "evidence", "top_exporters",
            "top_consignees", "corroborating_reporters", "banned_since", "months_since_ban", "early", "case_note")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(OPTIONAL), json_values, max_size=8))
def test_any_values_in_optional_fields_never_break_a_page(tmp_path, changes):
    """Records are input: whatever their optional fields hold, the list, the case page and the
    exports answer (a record without a usable severity is reported as bad, not shown)."""
    path = tmp_path / f"alerts-{abs(hash(repr(changes)))}.jsonl"
    path.write_bytes(orjson.dumps(record(**changes)) + b"\n" + orjson.dumps(record(case_id="twc-z")) + b"\n")
    store = SqliteFeedbackStore(tmp_path / f"{path.name}.sqlite")
    desk = Desk(JsonLinesCaseSource(path), store)

    async def go(client):
        pages = [await client.get(u) for u in ("/", "/?group=hs6&sort=goods", "/case/twc-a", "/export.xlsx",
                                                  "/export.csv?sort=excess")]
        return [p.status for p in pages]
    statuses = run(desk, go)
    store.close()
    assert all(s in (200, 404) for s in statuses) and statuses[0] == 200
    assert (statuses[2] == 200) == ("twc-a" in desk.cases)


def test_following_the_source_picks_up_new_records_and_keeps_the_desk_when_the_source_fails(desk, tmp_path):
    """``--refresh``: each tick reads the source again. New records become cases and move the
    rows' version (what the list page polls); a tick that reads nothing new changes nothing; a
    source that cannot be read leaves the desk as it was, says why on /healthz, and recovers."""
    from transitwatch.streams.desk.app import follow

    path = tmp_path / "alerts.jsonl"
    original = path.read_bytes()
    grown_file = original + orjson.dumps(record(case_id="twc-new", period="2022-07")) + b"\n"
    seen: list[dict] = []

    async def scenario(client):
        async def health():
            return await (await client.get("/healthz")).json()

        ticks = [
            lambda: None,  # nothing new
            lambda: path.write_bytes(grown_file),
            lambda: path.unlink(),  # the file is being replaced
            lambda: path.write_bytes(grown_file),
        ]

        async def sleep(seconds):
            assert seconds == 5
            seen.append(await health())
            if not ticks:
                raise asyncio.CancelledError
            ticks.pop(0)()

        with pytest.raises(asyncio.CancelledError):
            await follow(desk, 5, sleep=sleep)

    run(desk, scenario)
    before, quiet, grown, failed, recovered = seen
    assert before["cases"] == 4 and before["refresh_error"] is None
    assert quiet["version"] == before["version"], "nothing new: the rows are not rebuilt"
    assert grown["cases"] == 5 and grown["version"] > before["version"]
    assert failed["cases"] == 5 and "cannot read the alerts file" in failed["refresh_error"]
    assert recovered["refresh_error"] is None and recovered["version"] == grown["version"]
    assert "twc-new" in desk.cases


def test_the_list_page_polls_only_when_the_desk_follows_its_source(desk):
    async def page(client):
        return await (await client.get("/")).text()

    assert "data-refresh" not in run(desk, page)

    async def main():
        async with TestClient(TestServer(make_app(desk, refresh=15))) as client:
            return await page(client)

    html = asyncio.run(main())
    assert 'data-refresh="15"' in html and f'data-version="{desk.version}"' in html
