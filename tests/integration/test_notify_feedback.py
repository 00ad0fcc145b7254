"""The notifier and the desk's feedback topic on the real Kafka broker, with a Slack stand-in: a
dismissal stops the lane's next message, an escalation gets through, bad feedback is counted,
and the lane's history (the escalation) survives a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.integration.notify_kafka import (
    NotifierThread,
    _produce,
    http_status,
    make_alert,
    metric,
    produce,
    settings_for,
)
from tests.integration.notify_servers import SlackStandIn, wait_for
from transitwatch.streams.feedback import Feedback
from transitwatch.streams.feedback_topic import KafkaFeedbackStore
from transitwatch.streams.notify.config import load_config
from transitwatch.streams.notify.service import Notifier

pytestmark = pytest.mark.integration

LANE = "DE>AM export 854232"
OTHER = "FR>KG export 847130"
SUPPRESSED = "transitwatch_notify_suppressed_total"
DELIVERED = "transitwatch_notify_deliveries_total"


@pytest.fixture
def slack_standin():
    server = SlackStandIn().start()
    yield server
    server.stop()


def lane_record(period: str, case_id: str, *, event: str = "opened", severity: str = "medium", lane: str = LANE):
    reporter, rest = lane.split(">")
    partner = rest.split()[0]
    return make_alert(series_id=lane, reporter=reporter, partner=partner, hs6=lane.split()[-1], period=period,
                      case_id=case_id, case_event=event, severity=severity)


def test_a_dismissal_on_the_feedback_topic_stops_the_lanes_next_slack_message(kafka, slack_standin, tmp_path: Path):
    config = tmp_path / "notify.toml"
    config.write_text("""
[feedback]
suppress_months = 6
[route]
receiver = "desk"
group_by = ["..."]
group_wait = "300ms"
group_interval = "500ms"
repeat_interval = "1h"
[[receivers]]
name = "desk"
type = "slack"
webhook_secret = "slack_desk"
min_interval = "0s"
timeout = "2s"
""")
    settings = settings_for(kafka, "feedback", {"slack_desk": slack_standin.url},
                            feedback_topic="it.feedback.feedback")
    port = settings.notify_web_port
    first = lane_record("2022-04", "twc-a", severity="medium")
    produce(settings, [first])
    store = KafkaFeedbackStore(settings.bootstrap_servers, settings.feedback_topic, timeout=30.0)
    try:
        thread = NotifierThread(Notifier(settings, load_config(config))).start()
        try:
            wait_for(lambda: http_status(port, "/ready") == 200, what="/ready")
            wait_for(lambda: slack_standin.alert_ids() == [first["alert_id"]], what="the lane's first message")

            # The analyst dismisses the case on the desk; one message on the topic is not feedback.
            store.add(Feedback(case_id="twc-a", series_id=LANE, verdict="dismissed", reason="known distributor",
                               analyst="ana", period="2022-04", severity="medium",
                               created_at="2026-01-01T00:00:00+00:00"))
            asyncio.run(_produce(settings.bootstrap_servers, settings.feedback_topic, [b"{not feedback"], [b"junk-1"]))
            wait_for(lambda: metric(port, "transitwatch_notify_feedback_lanes", verdict="dismissed") == 1
                     and metric(port, "transitwatch_notify_feedback_invalid_total") == 1, what="the feedback read")

            held = lane_record("2022-05", "twc-b", severity="medium")
            other = lane_record("2022-05", "twc-o", lane=OTHER)
            produce(settings, [held, other])
            wait_for(lambda: other["alert_id"] in slack_standin.alert_ids() and metric(port, SUPPRESSED,
                                                                                        verdict="dismissed") == 1,
                     what="the other lane's message and the suppression")

            escalated = lane_record("2022-06", "twc-b", event="escalated", severity="high")
            produce(settings, [escalated])
            wait_for(lambda: escalated["alert_id"] in slack_standin.alert_ids(), what="the escalation")
            assert metric(port, DELIVERED, receiver_type="slack", outcome="delivered") == 3
        finally:
            thread.stop()
        assert slack_standin.alert_ids() == [first["alert_id"], other["alert_id"], escalated["alert_id"]]

        # After a restart the lane's history (the escalation) is rebuilt from the alerts topic: the
        # dismissal no longer holds, so the lane's next record is sent.
        again = settings.model_copy(update={"notify_web_port": settings_for(kafka, "x", {}).notify_web_port})
        thread = NotifierThread(Notifier(again, load_config(config))).start()
        try:
            wait_for(lambda: http_status(again.notify_web_port, "/ready") == 200, what="/ready after the restart")
            after = lane_record("2022-07", "twc-c", severity="medium")
            produce(again, [after])
            wait_for(lambda: after["alert_id"] in slack_standin.alert_ids(), what="the lane's record after the restart")
            assert metric(again.notify_web_port, SUPPRESSED, verdict="dismissed") == 0
            assert metric(again.notify_web_port, "transitwatch_notify_feedback_lanes", verdict="dismissed") == 1
        finally:
            thread.stop()
    finally:
        store.close()
    assert held["alert_id"] not in slack_standin.alert_ids()
