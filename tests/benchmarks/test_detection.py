"""benchmarks.detection: how the combined run's false-alarm months divide between new false
cases and further months of cases already open."""

from __future__ import annotations

import collections
import dataclasses
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from benchmarks import detection_report, scoring
from benchmarks.detection import Row, Run, false_alarm_cases

KEY = ("DE", "KG", "export", "854231")
EVENTS = ("opened", "reopened", "updated", "escalated")


def _alert(period: str, event: str, detectors=("seasonal_surge",), key=KEY):
    reporter, partner, flow, hs6 = key
    return SimpleNamespace(reporter=reporter, partner=partner, flow=flow, hs6=hs6, period=period,
                           detectors=detectors, case_event=event)


def test_a_false_case_of_three_alerting_months_is_one_new_case_and_two_months_in_it():
    alerts = [_alert("2022-04", "opened"), _alert("2022-05", "updated"), _alert("2022-06", "escalated"),
              _alert("2022-07", "updated", detectors=())]   # a quiet month of the case: no alert
    false = {(KEY, scoring.month_index(p)) for p in ("2022-04", "2022-05", "2022-06")}
    assert false_alarm_cases(alerts, false) == collections.Counter({"new case": 1, "in a case": 2})


def test_an_opening_outside_the_false_cells_does_not_count():
    other = ("PL", "KG", "export", "854231")
    alerts = [_alert("2022-04", "opened", key=other), _alert("2022-05", "updated")]
    false = {(KEY, scoring.month_index("2022-05"))}
    assert false_alarm_cases(alerts, false) == collections.Counter({"in a case": 1})


def test_a_reopened_case_is_a_new_case_and_an_opening_without_a_detector_is_not():
    alerts = [_alert("2022-04", "reopened"), _alert("2022-09", "opened", detectors=())]
    false = {(KEY, scoring.month_index(p)) for p in ("2022-04", "2022-09")}
    assert false_alarm_cases(alerts, false) == collections.Counter({"new case": 1, "in a case": 1})


@given(st.lists(st.tuples(st.integers(0, 23), st.sampled_from(EVENTS)), max_size=30),
       st.sets(st.integers(0, 23), max_size=24))
def test_every_false_cell_is_counted_once(events, false_months):
    alerts = [_alert(f"{2000 + m // 12}-{m % 12 + 1:02d}", e) for m, e in events]
    false = {(KEY, scoring.month_index(f"{2000 + m // 12}-{m % 12 + 1:02d}")) for m in false_months}
    split = false_alarm_cases(alerts, false)
    assert sum(split.values()) == len(false)
    opened = {m for m, e in events if e in ("opened", "reopened")}
    assert split["new case"] == len(opened & set(false_months))


def _run(false_alarms: int, fa_per_1000: float, split: dict) -> Run:
    zero = {f.name: 0 for f in dataclasses.fields(scoring.Score)}
    score = scoring.Score(**{**zero, "false_alarms": false_alarms, "fa_per_1000": fa_per_1000})
    row = Row("transitwatch combined", "monthly", score, "", set(), 0.0)
    return Run({}, None, 0, 0, [row], {}, {}, {}, {}, None, {"monthly": collections.Counter(split)})


def test_the_report_says_how_many_false_alarm_months_opened_a_case():
    text = detection_report._case_split(_run(400, 4.0, {"new case": 150, "in a case": 250}), "monthly")
    assert "150 of them opened or reopened a case (1.50 per 1,000 series-months), 250 were further months" in text
    assert detection_report._case_split(_run(400, 4.0, {}), "monthly") == ""
    assert detection_report._case_split(_run(0, 0.0, {"in a case": 0}), "declarations") == ""
