"""The notifier against the real Kafka broker, a Slack stand-in, aiosmtpd and a real Alertmanager.

Every test uses its own topics and consumer group. Timers are short (group_wait of a few
hundred milliseconds) so the whole file runs in well under a minute.
"""

from __future__ import annotations

import collections
import signal
import time
from pathlib import Path

import pytest

from transitwatch.streams.cli import main
from transitwatch.streams.notify.config import load_config
from transitwatch.streams.notify.service import Notifier
from tests.integration.notify_kafka import (
    NotifierThread,
    committed,
    http_status,
    make_alert,
    metric,
    produce,
    read_topic,
    settings_for,
    start_subprocess,
    topics,
)
from tests.integration.notify_servers import SlackStandIn, SmtpServer, free_port, wait_for

pytestmark = pytest.mark.integration

DELIVERED = "transitwatch_notify_deliveries_total"


@pytest.fixture
def slack_standin():
    server = SlackStandIn().start()
    yield server
    server.stop()


def write_config(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def slack_receiver(name="desk", timeout="2s"):
    return f"""
[[receivers]]
name = "{name}"
type = "slack"
webhook_secret = "slack_{name}"
min_interval = "0s"
timeout = "{timeout}"
"""


def email_receiver(smtp: SmtpServer, name="mail"):
    return f"""
[[receivers]]
name = "{name}"
type = "email"
to = ["desk@example.org"]
from = "transitwatch@example.org"
smarthost = "127.0.0.1:{smtp.port}"
auth_username = "{smtp.username}"
auth_password_secret = "smtp_password"
ca_file = "{smtp.ca_file}"
timeout = "3s"
"""


def test_end_to_end_grouping_updates_duplicates_silences_and_restart(kafka, alertmanager, slack_standin, tmp_path,
                                                                       monkeypatch, capsys):
    smtp = SmtpServer(tmp_path).up()
    config = write_config(tmp_path / "notify.toml", f"""
[global]
alert_url = "https://tw.example.org/alerts/{{alert_id}}"
[route]
receiver = "desk"
group_by = ["partner", "period"]
group_wait = "400ms"
group_interval = "1s"
repeat_interval = "1h"
  [[route.routes]]
  matchers = ['severity=~"high|critical"']
  receiver = "mail"
  continue = true
  [[route.routes]]
  receiver = "ops"
  continue = true
  [[route.routes]]
  receiver = "desk"
{slack_receiver()}
{email_receiver(smtp)}
[[receivers]]
name = "ops"
type = "alertmanager"
url = "{alertmanager.url}"
""")
    secrets = {"slack_desk": slack_standin.url, "smtp_password": smtp.password}
    settings = settings_for(kafka, "e2e", secrets)
    port = settings.notify_web_port
    broker = ["--broker", settings.broker]
    for key, value in topics("e2e").items():
        monkeypatch.setenv(f"TRANSITWATCH_{key.upper()}", value)

    # A silence made with the command line before the notifier starts.
    assert main(["silence", "add", 'partner="GE"', "--reason", "case GE-17 under review", "--author", "ana",
                 "--duration", "1h", *broker]) == 0
    silence_id = capsys.readouterr().out.strip()

    a1, a2 = make_alert(), make_alert()
    b1 = make_alert(partner="KG", severity="low")
    g1 = make_alert(partner="GE")
    early = make_alert(period="2022-05", severity="medium", early=True, as_of="2022-05-15")
    produce(settings, [a1, a2, b1, dict(a1), g1, b"this is not an alert", early])

    thread = NotifierThread(Notifier(settings, load_config(config))).start()
    try:
        wait_for(lambda: http_status(port, "/ready") == 200, what="/ready")
        assert http_status(port, "/healthz") == 200
        wait_for(lambda: len(slack_standin.posts) >= 3 and len(smtp.messages) >= 1
                 and metric(port, DELIVERED, receiver_type="alertmanager", outcome="delivered") >= 4,
                 what="the first messages")
        final = dict(early, early=False, severity="high", as_of="2022-05-31")
        produce(settings, [final])
        wait_for(lambda: len(slack_standin.posts) >= 4 and len(smtp.messages) >= 2
                 and metric(port, DELIVERED, receiver_type="alertmanager", outcome="delivered") >= 5,
                 what="the update")
        wait_for(lambda: committed(settings) == 8, what="the offset commit")
        time.sleep(1.5)  # one more group_interval: nothing else may arrive
        scraped = {name: metric(port, name, **labels) for name, labels in [
            ("transitwatch_notify_alerts_consumed_total", {}), ("transitwatch_notify_silenced_total", {}),
            ("transitwatch_notify_invalid_alerts_total", {"reason": "invalid_json"}),
            ("transitwatch_notify_pending_groups", {}),
        ]}
        email_delivered = metric(port, DELIVERED, receiver_type="email", outcome="delivered")
        latency_count = metric(port, "transitwatch_notify_delivery_latency_seconds_count", receiver_type="slack")
    finally:
        thread.stop()
        smtp.down()

    # Slack: one message per group, the update of the early alert marked as such.
    ids = slack_standin.alert_ids()
    assert collections.Counter(ids) == {a1["alert_id"]: 1, a2["alert_id"]: 1, b1["alert_id"]: 1, early["alert_id"]: 2}
    assert len(slack_standin.posts) == 4
    texts = [p["text"] for p in slack_standin.posts]
    assert any(t.startswith("transitwatch · HIGH: 2 alerts · partner AM · period 2022-04") for t in texts)
    assert texts[-1].startswith("transitwatch · UPDATE HIGH: 1 update · partner AM · period 2022-05"), texts
    # Email: high alerts only; the month-end alert is new to this receiver (it never got the early one).
    first, second = (m for _, _, m in smtp.messages)
    assert first["Subject"] == "[transitwatch] HIGH: 2 alerts · partner AM · period 2022-04"
    assert len([p for p in first.walk() if p.get_content_type() == "image/png"]) == 2
    assert second["Subject"] == "[transitwatch] HIGH: 1 alert · partner AM · period 2022-05"
    assert second["In-Reply-To"] is None
    assert email_delivered == 3
    # Alertmanager: four alerts; the early one was updated in place.
    got = {a["labels"]["alert_id"]: a for a in alertmanager.alerts(source="transitwatch")
           if a["labels"]["alert_id"] in {a1["alert_id"], a2["alert_id"], b1["alert_id"], early["alert_id"]}}
    assert set(got) == {a1["alert_id"], a2["alert_id"], b1["alert_id"], early["alert_id"]}
    assert got[early["alert_id"]]["labels"]["severity"] == "high"
    assert got[early["alert_id"]]["annotations"]["early"] == "false"
    assert len(alertmanager.alerts(alert_id=early["alert_id"])) == 1, "the medium version was resolved"
    # Counted, not sent; the bad message is on the dead-letter topic with its reason.
    assert scraped == {"transitwatch_notify_alerts_consumed_total": 8, "transitwatch_notify_silenced_total": 1,
                       "transitwatch_notify_invalid_alerts_total": 1, "transitwatch_notify_pending_groups": 0}
    assert latency_count == 5, "one observation per alert delivered to Slack"
    (dead,) = read_topic(settings, settings.dead_letter_topic)
    assert dead.value == b"this is not an alert" and dict(dead.headers)["reason"] == b"invalid_json"
    assert g1["alert_id"] not in ids

    # Silences from the command line.
    assert main(["silence", "list", *broker]) == 0
    listed = capsys.readouterr().out
    assert silence_id in listed and "case GE-17 under review" in listed and "active" in listed
    assert main(["silence", "expire", silence_id, *broker]) == 0
    assert main(["silence", "list", *broker]) == 0
    assert silence_id not in capsys.readouterr().out
    assert main(["silence", "list", "--all", *broker]) == 0
    assert "expired" in capsys.readouterr().out

    # A notifier with a new consumer group reads every alert again: the delivery log stops them all,
    # and the expired silence no longer mutes GE.
    again = settings_for(kafka, "e2e", secrets, notify_group_id="it.e2e.notify-again")
    smtp.up()
    thread = NotifierThread(Notifier(again, load_config(config))).start()
    try:
        wait_for(lambda: committed(again) == 8, what="the second notifier's commit")
        wait_for(lambda: g1["alert_id"] in slack_standin.alert_ids(), what="the alert the silence muted before")
        time.sleep(1.5)
    finally:
        thread.stop()
        smtp.down()
    assert collections.Counter(slack_standin.alert_ids()) == {
        a1["alert_id"]: 1, a2["alert_id"]: 1, b1["alert_id"]: 1, early["alert_id"]: 2, g1["alert_id"]: 1}
    assert len(smtp.messages) == 3 and g1["alert_id"] in smtp.messages[2][2]["X-Transitwatch-Alerts"]


def every_alert_to_slack(*, timeout: str) -> str:
    """Routing that sends every alert to the Slack receiver "desk", each alert its own group."""
    return f"""
[route]
receiver = "desk"
group_by = ["..."]
group_wait = "100ms"
group_interval = "200ms"
repeat_interval = "1h"
{slack_receiver(timeout=timeout)}
"""


def test_webhook_down_then_back_every_alert_exactly_once(kafka, slack_standin, tmp_path):
    config = write_config(tmp_path / "notify.toml", every_alert_to_slack(timeout="500ms"))
    settings = settings_for(kafka, "flaky", {"slack_desk": slack_standin.url}, notify_max_attempts=100)
    port = settings.notify_web_port
    slack_standin.set_mode(("status", 503))
    alerts = [make_alert(period=f"2021-{m:02d}") for m in range(1, 7)]
    produce(settings, alerts)
    thread = NotifierThread(Notifier(settings, load_config(config))).start()
    try:
        wait_for(lambda: slack_standin.answers[503] >= 6, what="failed attempts while the webhook is down")
        assert slack_standin.posts == []
        slack_standin.then(("retry_after", 1), ("timeout", 1.0), ("status", 500))
        slack_standin.set_mode(("ok", 0))
        wait_for(lambda: len(set(slack_standin.alert_ids())) == 6, what="every alert after the webhook is back")
        wait_for(lambda: committed(settings) == 6, what="the offset commit")
        time.sleep(1.0)
        retries = metric(port, "transitwatch_notify_retries_total", receiver_type="slack")
        failed = metric(port, DELIVERED, receiver_type="slack", outcome="failed")
        delivered = metric(port, DELIVERED, receiver_type="slack", outcome="delivered")
        undelivered = metric(port, "transitwatch_notify_undelivered_total", receiver_type="slack")
    finally:
        thread.stop()
    assert sorted(slack_standin.alert_ids()) == sorted(a["alert_id"] for a in alerts), "each exactly once"
    assert slack_standin.answers[429] == 1 and slack_standin.answers[504] == 1 and slack_standin.answers[500] == 1
    assert delivered == 6 and undelivered == 0
    assert failed >= 9 and retries == failed, (failed, retries)


def test_one_receiver_down_the_other_keeps_receiving_then_redeliver(kafka, slack_standin, tmp_path, monkeypatch,
                                                                     capsys):
    smtp = SmtpServer(tmp_path)  # not up: connection refused
    config = write_config(tmp_path / "notify.toml", f"""
[route]
receiver = "desk"
group_by = ["partner", "period"]
group_wait = "200ms"
group_interval = "500ms"
repeat_interval = "1h"
  [[route.routes]]
  receiver = "mail"
  continue = true
  [[route.routes]]
  receiver = "desk"
{slack_receiver()}
{email_receiver(smtp)}
""")
    secrets = {"slack_desk": slack_standin.url, "smtp_password": smtp.password}
    settings = settings_for(kafka, "down", secrets, notify_max_attempts=3)
    port = settings.notify_web_port
    first = [make_alert() for _ in range(3)]
    produce(settings, first)
    thread = NotifierThread(Notifier(settings, load_config(config))).start()
    try:
        wait_for(lambda: len(slack_standin.posts) == 1, what="Slack while email is down")
        later = make_alert(partner="KZ")
        produce(settings, [later])
        wait_for(lambda: len(slack_standin.posts) == 2, what="Slack again, email still down")
        wait_for(lambda: metric(port, "transitwatch_notify_undelivered_total", receiver_type="email") == 4,
                 what="email alerts on the undelivered topic")
        wait_for(lambda: committed(settings) == 4, what="the commit after the undelivered topic has them")
        failed = metric(port, DELIVERED, receiver_type="email", outcome="failed")
    finally:
        thread.stop()
    assert sorted(slack_standin.alert_ids()) == sorted(a["alert_id"] for a in [*first, later])
    assert failed == 4 * 3, "three attempts for each of the four alerts"
    undelivered = read_topic(settings, settings.undelivered_topic)
    assert sorted(m.key.decode() for m in undelivered) == sorted(f"mail|{a['alert_id']}|final" for a in [*first, later])
    headers = dict(undelivered[0].headers)
    assert headers["receiver"] == b"mail" and headers["attempts"] == b"3" and headers["outcome"] == b"failed"
    assert headers["reason"].startswith(b"email receiver 'mail'") and b"SMTPConnectError" in headers["reason"]
    assert smtp.password.encode() not in b"".join(m.value + b"".join(v for _, v in m.headers) for m in undelivered)

    # transitwatch redeliver, with the settings from the environment as an operator runs it.
    for key, value in topics("down").items():
        monkeypatch.setenv(f"TRANSITWATCH_{key.upper()}", value)
    monkeypatch.setenv("TRANSITWATCH_SECRETS__SLACK_DESK", slack_standin.url)
    monkeypatch.setenv("TRANSITWATCH_SECRETS__SMTP_PASSWORD", smtp.password)
    broker = ["--broker", settings.broker]
    capsys.readouterr()
    assert main(["redeliver", "--list", *broker]) == 0
    listed = capsys.readouterr().out
    assert all(a["alert_id"] in listed for a in first) and "mail" in listed
    smtp.up()
    try:
        assert main(["redeliver", "--config", str(config), *broker]) == 0
        assert "4 delivered, 0 already delivered, 0 failed again" in capsys.readouterr().out
        assert main(["redeliver", "--config", str(config), *broker]) == 0
        assert "0 delivered" in capsys.readouterr().out
    finally:
        smtp.down()
    (message,) = [m for _, _, m in smtp.messages]
    assert sorted(message["X-Transitwatch-Alerts"].split(", ")) == sorted(a["alert_id"] for a in [*first, later])
    assert len(slack_standin.posts) == 2, "redelivery went only to the receiver that missed them"


def test_sigkill_mid_send_the_alert_in_flight_is_not_resent_but_surfaced_then_redelivered(kafka, slack_standin,
                                                                                           tmp_path, monkeypatch,
                                                                                           capsys):
    config = write_config(tmp_path / "notify.toml", every_alert_to_slack(timeout="20s"))
    settings = settings_for(kafka, "kill", {"slack_desk": slack_standin.url})
    port = settings.notify_web_port
    alerts = [make_alert(period=f"2020-{m:02d}") for m in range(1, 13)]
    produce(settings, alerts)
    # Four posts go through; the fifth is held (in flight, never answered) when the notifier dies.
    slack_standin.then(*[("ok", 0)] * 4)
    slack_standin.set_mode(("hold", 0))
    log = tmp_path / "notifier.log"
    first = start_subprocess(config, settings, log)
    try:
        wait_for(lambda: slack_standin.held >= 1, timeout=60, what=f"a held post (log: {log})")
        wait_for(lambda: metric(port, DELIVERED, receiver_type="slack", outcome="delivered") == 4,
                 what="the four deliveries recorded")
        first.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    assert len(slack_standin.posts) == 4
    before = committed(settings)
    assert before is None or before <= 4, "nothing past the unsent alerts was committed"
    slack_standin.set_mode(("ok", 0))
    slack_standin.release.set()  # the held request is answered 503 to a dead client: never posted

    second = start_subprocess(config, settings, log)
    try:
        wait_for(lambda: committed(settings) == 12, timeout=60, what=f"the final commit (log: {log})")
        time.sleep(1.0)
        unknown = metric(port, "transitwatch_notify_unknown_outcomes_total", receiver_type="slack")
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0, "SIGTERM stops the notifier cleanly"
    finally:
        if second.poll() is None:
            second.kill()
    counts = collections.Counter(slack_standin.alert_ids())
    assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1]
    # The alert in flight had its intent recorded and no outcome: not sent again, surfaced.
    (record,) = read_topic(settings, settings.undelivered_topic)
    held = record.key.decode().split("|")[1]
    assert set(counts) == {a["alert_id"] for a in alerts} - {held} and unknown == 1
    headers = dict(record.headers)
    assert headers["outcome"] == b"unknown" and headers["reason"].startswith(b"unknown_outcome")

    # The operator sees it, finds it missing in the channel, and resends it.
    for key, value in topics("kill").items():
        monkeypatch.setenv(f"TRANSITWATCH_{key.upper()}", value)
    monkeypatch.setenv("TRANSITWATCH_SECRETS__SLACK_DESK", slack_standin.url)
    broker = ["--broker", settings.broker]
    capsys.readouterr()
    assert main(["redeliver", "--list", *broker]) == 0
    assert held in capsys.readouterr().out
    assert main(["redeliver", "--config", str(config), *broker]) == 1, "kept by default: the operator must decide"
    assert "1 unknown outcome(s) kept" in capsys.readouterr().out
    assert main(["redeliver", "--config", str(config), "--unknown", "resend", *broker]) == 0
    assert "1 delivered" in capsys.readouterr().out
    assert collections.Counter(slack_standin.alert_ids()) == {a["alert_id"]: 1 for a in alerts}


def test_static_membership_a_killed_notifier_restarted_takes_its_partition_back_at_once(kafka, slack_standin,
                                                                                       tmp_path):
    # A session of 30 s: with dynamic membership the restarted notifier would wait most of it for
    # the killed member to expire; with the same group instance id it replaces that member.
    config = write_config(tmp_path / "notify.toml", every_alert_to_slack(timeout="2s"))
    settings = settings_for(kafka, "static", {"slack_desk": slack_standin.url}, notify_session_timeout=30.0,
                            notify_group_instance_id="notify-static-0")
    log = tmp_path / "notifier.log"
    first = start_subprocess(config, settings, log)
    try:
        produce(settings, [make_alert(period="2019-01"), make_alert(period="2019-02")])
        wait_for(lambda: committed(settings) == 2, timeout=60, what=f"the first notifier's commit (log: {log})")
        first.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    produce(settings, [make_alert(period="2019-03"), make_alert(period="2019-04")])
    started = time.monotonic()
    second = start_subprocess(config, settings, log)
    try:
        wait_for(lambda: len(slack_standin.posts) == 4, timeout=25, interval=0.01, what=f"the new alerts (log: {log})")
        restart = time.monotonic() - started
        wait_for(lambda: committed(settings) == 4, what="the second notifier's commit")
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
    finally:
        if second.poll() is None:
            second.kill()
    assert restart < 15.0, f"{restart:.1f} s: the restarted notifier waited for the killed member's session"
    assert max(collections.Counter(slack_standin.alert_ids()).values()) == 1


def test_a_session_timeout_the_broker_refuses_stops_the_notifier_with_what_to_fix(kafka, slack_standin, tmp_path,
                                                                                    monkeypatch, capsys):
    config = write_config(tmp_path / "notify.toml", every_alert_to_slack(timeout="2s"))
    for key, value in topics("session").items():
        monkeypatch.setenv(f"TRANSITWATCH_{key.upper()}", value)
    monkeypatch.setenv("TRANSITWATCH_SECRETS__SLACK_DESK", slack_standin.url)
    monkeypatch.setenv("TRANSITWATCH_NOTIFY_WEB_PORT", str(free_port()))
    monkeypatch.setenv("TRANSITWATCH_NOTIFY_SESSION_TIMEOUT", "3")  # the broker's minimum is 6 s
    assert main(["notify", "--config", str(config), "--broker", f"kafka://{kafka.bootstrap}"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "configuration error: the broker refused TRANSITWATCH_NOTIFY_SESSION_TIMEOUT=3" in err, err
