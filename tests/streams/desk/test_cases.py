"""Alert records into cases; the JSON Lines source counts what it cannot read."""

from __future__ import annotations

import orjson
import pytest

from tests.streams.desk.desk_helpers import record
from transitwatch.streams.desk.cases import (
    CaseSourceError,
    JsonLinesCaseSource,
    build_cases,
)


def test_cases_group_by_id_in_month_order_and_the_latest_record_speaks():
    records = [
        record(period="2022-06", case_id="twc-a", case_severity="high", case_status="escalated", case_months=2,
               detectors=["ramp"], case_detectors=["seasonal_surge", "ramp"]),
        record(period="2022-05", case_id="twc-a"),
        record(period="2022-05", case_id="twc-b", series_id="PL>KG export 854231", reporter="PL"),
    ]
    cases = build_cases(records)
    assert sorted(cases) == ["twc-a", "twc-b"]
    a = cases["twc-a"]
    assert a.periods == ["2022-05", "2022-06"]
    row = a.row()
    assert (row["severity"], row["status"], row["months"], row["onset"]) == ("high", "escalated", 2, "2022-05")
    assert row["detectors"] == "ramp, seasonal_surge"


def test_an_early_alert_is_replaced_by_the_month_end_record_of_the_same_id():
    early = record(alert_id="tw-x", early=True, observed_value=1.0)
    final = record(alert_id="tw-x", early=False, observed_value=2.0)
    (case,) = build_cases([early, final]).values()
    assert [r["observed_value"] for r in case.records] == [2.0]


def test_the_file_source_reads_records_and_reports_every_bad_line(tmp_path):
    path = tmp_path / "alerts.jsonl"
    good = record()
    path.write_bytes(orjson.dumps(good) + b"\n" + b"{not json\n" + b"\n" + b"[1, 2]\n"
                     + orjson.dumps({**good, "case_id": None}) + b"\n" + orjson.dumps({**good, "period": "2022-13"}) + b"\n"
                     + orjson.dumps({**good, "period": "May 2022"}) + b"\n")
    loaded = JsonLinesCaseSource(path).load()
    assert loaded.records == [good]
    assert [(b.where, b.reason.split(":")[0]) for b in loaded.bad] == [
        ("alerts.jsonl:2", "not JSON"), ("alerts.jsonl:4", "not a JSON object"),
        ("alerts.jsonl:5", "missing or not text"), ("alerts.jsonl:6", "period '2022-13' is not YYYY-MM"),
        ("alerts.jsonl:7", "period 'May 2022' is not YYYY-MM")]


def test_a_missing_file_is_a_typed_error(tmp_path):
    with pytest.raises(CaseSourceError, match="cannot read the alerts file"):
        JsonLinesCaseSource(tmp_path / "nope.jsonl").load()
