"""The notifier and the analysts' feedback: what a dismissal holds back, and what it does not."""

from __future__ import annotations

import logging
import random

import orjson
import pytest

from tests.streams.notify.notify_helpers import FakeClock, build_config, make_alert, slack
from transitwatch.streams.desk.cli import FEEDBACK_TOPIC
from transitwatch.streams.notify.config import NotifyConfig
from transitwatch.streams.notify.deliverylog import DeliveryLog
from transitwatch.streams.notify.matchers import NotifyConfigError
from transitwatch.streams.notify.metrics import NotifyMetrics
from transitwatch.streams.notify.router import RetryPolicy, Router
from transitwatch.streams.notify.silences import Silences
from transitwatch.streams.notify.sinks import Source
from transitwatch.streams.notify.suppression import LaneFeedback, LaneHistory, Suppression
from transitwatch.streams.settings import Settings

LANE = "DE>AM export 854232"
ROUTE = {"receiver": "desk", "group_by": ["..."], "group_wait": "30s", "group_interval": "5m", "repeat_interval": "1h"}


def feedback(verdict="dismissed", *, period="2022-04", severity="medium", case_id="twc-a", series_id=LANE,
             created_at="2026-01-01T00:00:00+00:00") -> bytes:
    return orjson.dumps({"case_id": case_id, "series_id": series_id, "verdict": verdict, "reason": "known distributor",
                         "analyst": "ana", "period": period, "severity": severity, "created_at": created_at})


def record(period, *, severity="medium", event="updated", case_id="twc-a", **extra):
    return make_alert(series_id=LANE, case_id=case_id, period=period, severity=severity, case_event=event, **extra)


class Desk:
    """A router with suppression, a fake clock and the alerts it would send."""

    def __init__(self, suppress_months=6):
        self.clock = FakeClock()
        self.metrics = NotifyMetrics()
        self.feedback = LaneFeedback(self.metrics)
        self.suppression = Suppression(self.feedback, LaneHistory(), suppress_months=suppress_months,
                                       metrics=self.metrics)
        self.done: list[Source] = []
        self.router = Router(build_config(ROUTE, [slack("desk")]), DeliveryLog(), Silences(), metrics=self.metrics,
                             clock=self.clock, retry=RetryPolicy(max_attempts=2), rng=random.Random(1),
                             on_done=self.done.append, suppression=self.suppression)
        self.offset = 0

    def add(self, alert) -> Source:
        self.offset += 1
        source = Source("alerts", 0, self.offset)
        self.router.add(alert, source=source)
        return source

    def sent(self) -> list[str]:
        self.clock.advance(31)
        out = []
        for n in self.router.due():
            out.extend(i.alert_id for i in n.items)
            self.router.delivered(n)
        return out

    def suppressed(self) -> float:
        return self.metrics.registry.get_sample_value("transitwatch_notify_suppressed_total", {"verdict": "dismissed"})


def test_a_dismissed_lane_sends_nothing_until_it_escalates_and_escalation_is_sent():
    desk = Desk()
    desk.add(record("2022-04", event="opened"))
    assert len(desk.sent()) == 1
    desk.feedback.apply(feedback())
    quiet = desk.add(record("2022-05", event="updated"))
    reopened_lower = record("2022-06", event="opened", case_id="twc-b", severity="low")
    held = desk.add(reopened_lower)
    assert desk.sent() == [] and {quiet, held} <= set(desk.done)
    assert desk.suppressed() == 1.0
    escalated = record("2022-07", event="escalated", severity="high")
    desk.add(escalated)
    assert desk.sent() == [escalated["alert_id"]]
    # Once escalated, the dismissal no longer holds for the lane's later records either.
    later = record("2022-08", event="opened", case_id="twc-c")
    desk.add(later)
    assert desk.sent() == [later["alert_id"]] and desk.suppressed() == 1.0


def test_a_higher_severity_in_a_quiet_update_lifts_the_suppression():
    desk = Desk()
    desk.feedback.apply(feedback(severity="low"))
    desk.add(record("2022-05", severity="high", event="updated"))  # not sent (an update), but evidence
    new_case = record("2022-06", case_id="twc-b", severity="low", event="opened")
    desk.add(new_case)
    assert desk.sent() == [new_case["alert_id"]] and desk.suppressed() == 0.0


@pytest.mark.parametrize("months, period, held", [(6, "2022-10", True), (6, "2022-11", False), (0, "2022-05", False),
                                                  (12, "2023-04", True)])
def test_suppression_ends_after_suppress_months(months, period, held):
    desk = Desk(suppress_months=months)
    desk.feedback.apply(feedback(period="2022-04"))
    alert = record(period, event="opened", case_id="twc-z")
    desk.add(alert)
    assert desk.sent() == ([] if held else [alert["alert_id"]])


@pytest.mark.parametrize("verdict", ["confirmed", "known"])
def test_confirmed_or_known_never_suppress(verdict):
    desk = Desk()
    desk.feedback.apply(feedback(verdict=verdict))
    alert = record("2022-05", event="opened", case_id="twc-b")
    desk.add(alert)
    assert desk.sent() == [alert["alert_id"]] and desk.suppressed() == 0.0


def test_the_latest_verdict_of_the_lane_decides_and_other_lanes_are_untouched():
    desk = Desk()
    desk.feedback.apply(feedback(created_at="2026-01-01T00:00:00+00:00"))
    desk.feedback.apply(feedback(verdict="confirmed", created_at="2026-01-02T00:00:00+00:00"))
    desk.feedback.apply(feedback(series_id="FR>KG export 847130", created_at="2026-01-03T00:00:00+00:00"))
    # An older verdict read later (another partition, a slow desk) does not override the latest.
    desk.feedback.apply(feedback(created_at="2025-12-31T00:00:00+00:00"))
    alert = record("2022-05", event="opened", case_id="twc-b")
    desk.add(alert)
    assert desk.sent() == [alert["alert_id"]]


def test_an_older_month_of_another_case_is_history_not_suppressed():
    desk = Desk()
    desk.feedback.apply(feedback(period="2022-06", case_id="twc-a"))
    old = record("2022-03", case_id="twc-old", event="opened")
    same_case_late = record("2022-05", case_id="twc-a", event="opened", severity="low")
    desk.add(old)
    desk.add(same_case_late)
    assert desk.sent() == [old["alert_id"]]


def test_feedback_given_during_group_wait_holds_back_the_waiting_record_and_after_sending_only_later_ones():
    desk = Desk()
    sent_first = record("2022-04", event="opened")
    desk.add(sent_first)
    assert desk.sent() == [sent_first["alert_id"]]
    waiting = record("2022-05", event="opened", case_id="twc-b")
    source = desk.add(waiting)
    desk.feedback.apply(feedback(period="2022-04"))
    assert desk.sent() == [] and source in desk.done and desk.suppressed() == 1.0


def test_counted_once_per_alert_version_and_logged_once_per_case(caplog):
    desk = Desk()
    desk.feedback.apply(feedback())
    first = record("2022-05", event="opened", case_id="twc-b")
    with caplog.at_level(logging.INFO, logger="transitwatch.notify"):
        desk.add(first)
        desk.add(dict(first))  # read again after a restart
        desk.add(record("2022-06", event="opened", case_id="twc-b", early=True))
        assert desk.sent() == []
    assert desk.suppressed() == 2.0
    lines = [r.getMessage() for r in caplog.records if "not notified" in r.getMessage()]
    assert len(lines) == 1 and "twc-b" in lines[0] and "'ana'" in lines[0]


def test_redelivery_to_a_named_receiver_is_not_suppressed():
    desk = Desk()
    desk.feedback.apply(feedback())
    alert = record("2022-05", event="opened", case_id="twc-b")
    desk.router.add(alert, receiver="desk")
    assert desk.sent() == [alert["alert_id"]]


@pytest.mark.parametrize("value", [b"not json", b"[1, 2]", b'{"verdict": "dismissed"}',
                                   feedback(verdict="maybe"), feedback(period="2022-13"), b"\xff\xfe"])
def test_bad_feedback_messages_are_counted_and_logged_never_raised(value, caplog):
    desk = Desk()
    with caplog.at_level(logging.ERROR, logger="transitwatch.notify"):
        desk.feedback.apply(value, where="feedback[0]@7")
    assert desk.feedback.invalid == 1 and len(desk.feedback) == 0
    assert desk.metrics.registry.get_sample_value("transitwatch_notify_feedback_invalid_total") == 1.0
    assert any("feedback[0]@7" in r.getMessage() for r in caplog.records)
    alert = record("2022-05", event="opened")
    desk.add(alert)
    assert desk.sent() == [alert["alert_id"]]


def test_the_lane_history_is_bounded_and_idempotent():
    history = LaneHistory(months=3, max_lanes=2)
    for month in range(1, 13):
        history.observe({"series_id": "a", "period": f"2022-{month:02d}", "severity": "low", "case_event": "updated"})
    history.observe({"series_id": "a", "period": "2022-12", "severity": "low", "case_event": "updated"})
    assert [r["period"] for r in history.records("a")] == ["2022-10", "2022-11", "2022-12"]
    history.observe({"series_id": "b", "period": "2022-01", "severity": "low"})
    history.observe({"series_id": "c", "period": "2022-01", "severity": "low"})
    assert len(history) == 2 and history.records("a") == []


def test_the_history_must_cover_the_suppression():
    m = NotifyMetrics()
    with pytest.raises(ValueError, match="suppress_months"):
        Suppression(LaneFeedback(m), LaneHistory(months=6), suppress_months=6, metrics=m)


def _config(extra: str) -> NotifyConfig:
    return NotifyConfig.from_toml(f"""
{extra}
[route]
receiver = "desk"
[[receivers]]
name = "desk"
type = "slack"
webhook_secret = "s"
""")


def test_suppress_months_is_read_from_the_config_and_validated():
    assert _config("").suppress_months == 6
    assert _config("[feedback]\nsuppress_months = 12").suppress_months == 12
    for bad, says in [("suppress_months = -1", "from 0 to 120"), ("suppress_months = 121", "from 0 to 120"),
                      ('suppress_months = "6"', "expected int"), ("suppress_months = true", "expected int"),
                      ("suppres_months = 6", "unknown key")]:
        with pytest.raises(NotifyConfigError, match=says):
            _config(f"[feedback]\n{bad}")


def test_the_notifier_reads_the_topic_the_desk_writes_by_default():
    assert Settings().feedback_topic == FEEDBACK_TOPIC


def test_a_reopened_case_on_a_dismissed_lane_is_sent():
    desk = Desk()
    desk.feedback.apply(feedback())
    alert = record("2022-06", event="reopened", severity="low")
    desk.add(alert)
    assert desk.sent() == [alert["alert_id"]]


def test_lanes_with_feedback_are_a_gauge_by_latest_verdict():
    desk = Desk()
    desk.feedback.apply(feedback(created_at="2026-01-01T00:00:00+00:00"))
    desk.feedback.apply(feedback(verdict="confirmed", created_at="2026-01-02T00:00:00+00:00"))
    desk.feedback.apply(feedback(series_id="FR>KG export 847130"))
    value = {v: desk.metrics.registry.get_sample_value("transitwatch_notify_feedback_lanes", {"verdict": v})
             for v in ("confirmed", "dismissed", "known")}
    assert value == {"confirmed": 1.0, "dismissed": 1.0, "known": 0.0}
