"""Feedback: validation, the SQLite store's durability, JSON Lines export, the suppression rule."""

from __future__ import annotations

import doctest
import sqlite3

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import transitwatch.streams.feedback as feedback_module
from transitwatch.streams.feedback import (
    Feedback,
    FeedbackError,
    FeedbackStoreError,
    SqliteFeedbackStore,
    is_suppressed,
    latest,
    to_jsonl,
)


def make(**changes) -> Feedback:
    values = dict(case_id="twc-1", series_id="DE>KG export 854231", verdict="dismissed", reason="known distributor",
                  analyst="Ana", period="2022-05", severity="medium", created_at="2026-01-02T03:04:05+00:00")
    values.update(changes)
    return Feedback(**values)


def rec(period: str, severity: str = "low", event: str = "updated") -> dict:
    return {"period": period, "severity": severity, "case_event": event}


def test_docstring_examples():
    result = doctest.testmod(feedback_module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("changes, message", [
    ({"verdict": "maybe"}, "verdict"),
    ({"analyst": "  "}, "analyst"),
    ({"case_id": ""}, "case id"),
    ({"reason": "x" * 2001}, "longer"),
    ({"severity": "huge"}, "severity"),
    ({"period": "2022-13"}, "YYYY-MM"),
    ({"period": "May 2022"}, "YYYY-MM"),
])
def test_invalid_feedback_is_a_typed_error(changes, message):
    with pytest.raises(FeedbackError, match=message):
        make(**changes)


def test_store_keeps_feedback_across_reopening(tmp_path):
    path = tmp_path / "fb.sqlite"
    store = SqliteFeedbackStore(path)
    first, second = make(), make(verdict="confirmed", reason="new buyer", analyst="Bo")
    store.add(first)
    store.add(second)
    store.close()
    again = SqliteFeedbackStore(path)
    assert again.all() == [first, second]
    assert latest(again.all(), "case_id")["twc-1"] == second


def test_store_that_cannot_be_opened_says_so(tmp_path):
    with pytest.raises(FeedbackStoreError, match="cannot open"):
        SqliteFeedbackStore(tmp_path / "missing-folder" / "fb.sqlite")
    (tmp_path / "junk.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(FeedbackStoreError):
        SqliteFeedbackStore(tmp_path / "junk.sqlite")


def test_store_refuses_a_row_edited_into_nonsense(tmp_path):
    path = tmp_path / "fb.sqlite"
    store = SqliteFeedbackStore(path)
    store.add(make())
    with sqlite3.connect(path) as db:
        db.execute("UPDATE feedback SET verdict = 'perhaps'")
    with pytest.raises(FeedbackError, match="perhaps"):
        store.all()


def test_jsonl_export_round_trips():
    items = [make(), make(case_id="twc-2", verdict="known")]
    lines = to_jsonl(items).splitlines()
    assert [Feedback(**orjson.loads(line)) for line in lines] == items


def test_only_a_dismissal_suppresses():
    for verdict in ("confirmed", "known"):
        assert not is_suppressed(make(verdict=verdict), "2022-05", [], suppress_months=6)
    assert not is_suppressed(None, "2022-05", [], suppress_months=6)
    assert is_suppressed(make(), "2022-05", [], suppress_months=6)


def test_suppression_lasts_the_configured_months():
    f = make(period="2022-05")
    assert is_suppressed(f, "2022-11", [], suppress_months=6)
    assert not is_suppressed(f, "2022-12", [], suppress_months=6)
    assert not is_suppressed(f, "2022-06", [], suppress_months=0)
    assert is_suppressed(make(period="2022-11"), "2023-02", [], suppress_months=6)  # across a year end
    with pytest.raises(FeedbackError):
        is_suppressed(f, "2022-06", [], suppress_months=-1)


@pytest.mark.parametrize("later, suppressed", [
    ([rec("2022-06", "medium")], True),              # as severe as dismissed: still suppressed
    ([rec("2022-06", "low")], True),
    ([rec("2022-06", "high")], False),               # more severe than dismissed
    ([rec("2022-07", "low", "escalated")], False),
    ([rec("2022-07", "low", "reopened")], False),
    ([rec("2022-05", "critical", "escalated")], True),  # the month the analyst saw is not "after"
])
def test_escalation_after_the_dismissal_lifts_it(later, suppressed):
    assert is_suppressed(make(period="2022-05", severity="medium"), "2022-08", later, suppress_months=6) is suppressed


periods = st.builds(lambda y, m: f"{y}-{m:02d}", st.integers(2019, 2024), st.integers(1, 12))
records = st.lists(st.fixed_dictionaries({
    "period": periods, "severity": st.sampled_from(["low", "medium", "high", "critical"]),
    "case_event": st.sampled_from(["opened", "updated", "escalated", "reopened", "closed"])}), max_size=6)


@given(seen=periods, at=periods, since=records, months=st.integers(0, 24), more=st.integers(0, 24),
       severity=st.sampled_from(["low", "medium", "high", "critical"]))
def test_the_rule_is_monotone(seen, at, since, months, more, severity):
    """Longer suppression never un-suppresses; more evidence never suppresses."""
    f = make(period=seen, severity=severity)
    now = is_suppressed(f, at, since, suppress_months=months)
    if now:
        assert is_suppressed(f, at, since, suppress_months=months + more)
    if not now:
        assert not is_suppressed(f, at, [*since, rec(at, "critical", "escalated")], suppress_months=months)
