"""The definitions of ``benchmarks.intermittent_check`` (the real replay itself is the benchmark's)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.intermittent_check import LANE, armstat_records, check, first_alert

CSV = """period,commodity_code,commodity,reexports,X,pct
2022-10-01,850440,"Static converters",956404.62,956404.62,0.004
2022-08-01,850440,"Static converters",1544961.38,1544961.38,0.007
2022-08-01,854239,"Processors",0,10.0,0.0
2022-09-01,710812,"Gold",7.5e8,7.6e8,0.8
"""


def _alert(period: str, hs6: str = "850440", severity: str = "low") -> dict:
    return {"reporter": "AM", "partner": "RU", "flow": "re-export", "hs6": hs6, "period": period,
            "severity": severity, "detectors": ["novelty"]}


def test_records_are_watched_codes_with_a_non_zero_estimate_in_period_order(tmp_path: Path):
    src = tmp_path / "armstat.csv"
    src.write_text(CSV)
    records = armstat_records(src, frozenset({"850440", "854239"}))
    assert [(r["period"], r["hs_code"], r["value"]) for r in records] == [
        ("2022-08", "850440", 1544961.38), ("2022-10", "850440", 956404.62)]
    assert {(r["reporter"], r["partner"], r["flow"], r["currency"]) for r in records} == {("AM", "RU", "re-export", "USD")}


def test_check_reports_the_first_alert_and_whether_it_is_in_the_target(tmp_path: Path):
    src = tmp_path / "armstat.csv"
    src.write_text(CSV)
    records = armstat_records(src, frozenset({"850440"}))
    late = check([_alert("2022-12"), _alert("2023-01"), _alert("2022-10", hs6="854239")], records)
    assert late["first alert"] == "2022-12" and not late["in target"]
    assert late["other lanes alerted"] == 1 and late["other alerts"] == 1
    on_time = check([_alert("2022-10"), _alert("2022-12")], records)
    assert on_time["first alert"] == "2022-10" and on_time["in target"]
    assert ("2022-10", 956404.62, "low", ["novelty"]) in on_time["months"]
    assert check([], records)["first alert"] is None
    assert first_alert([_alert("2022-09", hs6="854239")], LANE) is None
