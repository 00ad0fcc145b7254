"""The three sinks against real protocols on loopback: a Slack stand-in, aiosmtpd and Alertmanager."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import pytest

from transitwatch.streams.notify.alertmanager import AlertmanagerSink
from transitwatch.streams.notify.config import AlertmanagerReceiver, EmailReceiver, SlackReceiver
from transitwatch.streams.notify.deliverylog import DeliveryRecord
from transitwatch.streams.notify.mail import EmailSink
from transitwatch.streams.notify.sinks import DeliveryError, Item, Notification, Redactor, send
from transitwatch.streams.notify.slack import SlackSink
from tests.integration.notify_servers import SlackStandIn, SmtpServer

pytestmark = pytest.mark.integration

_ids = itertools.count(1)


def alert(**overrides):
    n = next(_ids)
    base = {
        "alert_id": f"tw-sink{n:015d}", "series_id": "DE>KG export 854231", "reporter": "DE", "partner": "KG",
        "flow": "export", "hs6": "854231", "hs_description": "Electronic integrated circuits: processors and controllers",
        "chpl_tier": "1", "period": "2022-05", "detectors": ["seasonal_surge"], "score": 9.1, "severity": "critical",
        "observed_value": 2_400_000.0, "baseline_value": 300_000.0, "observed_count": 31, "baseline_count": 6.0,
        "ratio": 8.0, "p_value": 1e-9, "currency": "EUR",
        "top_exporters": [{"name": "Muster GmbH", "value": 1_500_000.0}],
        "top_consignees": [{"name": "Bishkek Components", "value": 2_000_000.0}],
        "corroborating_reporters": [], "early": False, "as_of": "2022-05-31",
        "explanation": "Germany's exports to Kyrgyzstan of HS 854231 reached EUR 2.40m in 2022-05, 8.0 times the expected.",
        "evidence": {"band_high": 450_000.0},
    }
    return base | overrides


def notification(receiver, alerts, *, previous=None, thread=(), mid=None):
    return Notification(receiver=receiver, group_key="0|x|partner=KG", group_labels={"partner": "KG"},
                        items=[Item(alert=a, labels={}, timestamp=time.time(), previous=previous) for a in alerts],
                        message_id=mid or f"<tw-{next(_ids)}@tw.test>", thread=thread,
                        alert_url="https://tw.example.org/alerts/{alert_id}")


@pytest.fixture
def slack_standin():
    server = SlackStandIn().start()
    yield server
    server.stop()


def test_slack_sink_posts_block_kit_and_maps_every_answer(slack_standin):
    receiver = SlackReceiver(name="desk", webhook_secret="slack_desk", min_interval=0.0, timeout=0.5)
    sink = SlackSink(receiver, slack_standin.url, redactor=Redactor([slack_standin.url]))
    a = alert()

    async def run():
        try:
            await send(sink, notification(receiver, [a]))
            outcomes = []
            slack_standin.then(("retry_after", 3), ("status", 503), ("timeout", 2.0))
            for _ in range(3):
                with pytest.raises(DeliveryError) as err:
                    await send(sink, notification(receiver, [alert()]))
                outcomes.append(err.value)
            return outcomes
        finally:
            await sink.close()

    rate_limited, server_error, timed_out = asyncio.run(run())
    assert len(slack_standin.posts) == 1
    payload = slack_standin.posts[0]
    assert payload["text"].startswith("transitwatch · CRITICAL: 1 alert · partner KG")
    assert any(b["type"] == "header" for b in payload["blocks"])
    assert slack_standin.alert_ids() == [a["alert_id"]]
    assert rate_limited.retry_after == 3.0 and not rate_limited.permanent
    assert server_error.retry_after is None and not server_error.permanent and "HTTP 503" in str(server_error)
    assert "no answer within 0.5 s" in str(timed_out) and not timed_out.permanent
    for err in (rate_limited, server_error, timed_out):
        assert slack_standin.TOKEN not in str(err) and "/services/" not in str(err)


def test_slack_sink_permanent_errors_and_spacing(slack_standin):
    wrong = slack_standin.url.replace("s3cr3t", "wrong")
    receiver = SlackReceiver(name="desk", webhook_secret="slack_desk", min_interval=0.3)
    sink = SlackSink(receiver, wrong, redactor=Redactor([wrong]))
    good = SlackSink(receiver, slack_standin.url)

    async def run():
        try:
            with pytest.raises(DeliveryError) as err:
                await send(sink, notification(receiver, [alert()]))
            started = time.monotonic()
            for _ in range(3):
                await send(good, notification(receiver, [alert()]))
            return err.value, time.monotonic() - started
        finally:
            await sink.close()
            await good.close()

    not_found, elapsed = asyncio.run(run())
    assert not_found.permanent and "HTTP 404" in str(not_found) and "wrong" not in str(not_found)
    assert elapsed >= 0.6, "posts to one webhook are spaced by min_interval"
    assert len(slack_standin.posts) == 3


def test_slack_sink_reports_a_dead_webhook_without_its_url():
    dead = "http://127.0.0.1:9/services/T1/B1/zzzSecretzzz"
    receiver = SlackReceiver(name="desk", webhook_secret="slack_desk", timeout=2.0)
    sink = SlackSink(receiver, dead, redactor=Redactor([dead]))

    async def run():
        try:
            with pytest.raises(DeliveryError) as err:
                await send(sink, notification(receiver, [alert()]))
            return err.value
        finally:
            await sink.close()

    err = asyncio.run(run())
    assert not err.permanent and "zzzSecretzzz" not in str(err) and "desk" in str(err)


def test_email_sink_over_starttls_with_auth(tmp_path):
    server = SmtpServer(tmp_path).up()
    try:
        receiver = EmailReceiver(name="desk", to=("desk@example.org", "duty@example.org"), sender="tw@example.org",
                                 host="127.0.0.1", port=server.port, tls="starttls", auth_username=server.username,
                                 auth_password_secret="smtp_password", ca_file=str(server.ca_file), timeout=10.0)
        sink = EmailSink(receiver, server.password)
        first, second = alert(severity="high"), alert()
        earlier = DeliveryRecord(receiver="desk", receiver_type="email", alert_id=second["alert_id"], early=True,
                                 severity="medium", group_key="g", message_id="<tw-early@tw.test>", delivered_at=1.0)
        asyncio.run(send(sink, notification(receiver, [first], mid="<tw-first@tw.test>")))
        asyncio.run(send(sink, notification(receiver, [second], previous=earlier, thread=("<tw-early@tw.test>",))))
    finally:
        server.down()
    assert server.logins == [("transitwatch", True), ("transitwatch", True)], "AUTH only after STARTTLS"
    (sender, rcpts, msg), (_, _, update) = server.messages
    assert sender == "tw@example.org" and rcpts == ["desk@example.org", "duty@example.org"]
    assert msg["Message-ID"] == "<tw-first@tw.test>"
    assert msg["Subject"] == "[transitwatch] HIGH: 1 alert · partner KG"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for needle in ("Germany → Kyrgyzstan", "HS 854231", "CHPL tier 1", "EUR 2.40m against EUR 300.0k expected (8.0×)",
                   "Muster GmbH", "Bishkek Components", first["alert_id"]):
        assert needle in text and needle in html, needle
    (image,) = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    png = image.get_content()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert f"cid:{image['Content-ID'].strip('<>')}" in html
    assert update["In-Reply-To"] == "<tw-early@tw.test>" and update["References"] == "<tw-early@tw.test>"
    assert update["Subject"].startswith("[transitwatch] UPDATE CRITICAL: 1 update")


def test_email_sink_errors(tmp_path, caplog):
    server = SmtpServer(tmp_path).up()
    receiver = EmailReceiver(name="desk", to=("desk@example.org",), sender="tw@example.org", host="127.0.0.1",
                             port=server.port, auth_username=server.username, auth_password_secret="smtp_password",
                             ca_file=str(server.ca_file), timeout=5.0)
    wrong = "Wr0ng-Passw0rd-Here"
    try:
        # Each fails while preparing, before the notifier records an intent: a plain failed attempt.
        with pytest.raises(DeliveryError) as bad_password:
            asyncio.run(EmailSink(receiver, wrong).prepare(notification(receiver, [alert()])))
        untrusted = EmailReceiver(**{**{f: getattr(receiver, f) for f in ("name", "to", "sender", "host", "port",
                                                                           "auth_username", "auth_password_secret")},
                                     "timeout": 5.0})
        with pytest.raises(DeliveryError) as bad_cert:
            asyncio.run(EmailSink(untrusted, server.password).prepare(notification(untrusted, [alert()])))
    finally:
        server.down()
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(DeliveryError) as down:
            asyncio.run(EmailSink(receiver, server.password).prepare(notification(receiver, [alert()])))
    assert bad_password.value.permanent and "authentication failed" in str(bad_password.value)
    assert not bad_cert.value.permanent, "a certificate the client does not trust is not delivered"
    assert not down.value.permanent
    for err in (bad_password.value, bad_cert.value, down.value):
        assert wrong not in str(err) and server.password not in str(err)
    assert server.password not in caplog.text and wrong not in caplog.text
    assert server.messages == []


def test_alertmanager_sink_against_a_real_alertmanager(alertmanager):
    receiver = AlertmanagerReceiver(name="ops", url=alertmanager.url, resolve_after=3600.0)
    sink = AlertmanagerSink(receiver, alertmanager.url)
    early = alert(severity="medium", early=True, as_of="2022-05-15")
    final = dict(early, severity="critical", early=False, as_of="2022-05-31")
    earlier = DeliveryRecord(receiver="ops", receiver_type="alertmanager", alert_id=early["alert_id"], early=True,
                             severity="medium", group_key="g", message_id="<m@x>", delivered_at=time.time() - 5)

    async def run():
        try:
            await send(sink, notification(receiver, [early]))
            before = alertmanager.alerts(alert_id=early["alert_id"])
            await send(sink, notification(receiver, [final], previous=earlier))
            return before
        finally:
            await sink.close()

    before = asyncio.run(run())
    assert [a["labels"]["severity"] for a in before] == ["medium"]
    got = alertmanager.alerts(alert_id=early["alert_id"])
    assert [a["labels"]["severity"] for a in got] == ["critical"], "the medium version was resolved by the update"
    labels, annotations = got[0]["labels"], got[0]["annotations"]
    assert labels | {"alertname": "TransitwatchExportSurge", "partner": "KG", "reporter": "DE", "hs6": "854231",
                     "chpl_tier": "1", "period": "2022-05"} == labels
    assert annotations["early"] == "false" and "month-end figures" in annotations["update"]
    assert annotations["observed_vs_expected"] == "EUR 2.40m against EUR 300.0k expected (8.0×)"
    assert got[0]["generatorURL"].endswith(early["alert_id"])
    assert got[0]["status"]["state"] == "active"


def test_preparing_sends_nothing_and_delivering_sends_once(tmp_path, slack_standin, alertmanager):
    """The split the delivery log relies on: everything up to the transmission (payload, chart,
    webhook spacing, SMTP connection, STARTTLS, login) is in ``prepare``, and nothing a
    receiver could deliver leaves before ``deliver``."""
    smtp = SmtpServer(tmp_path).up()
    slack_r = SlackReceiver(name="desk", webhook_secret="slack_desk", min_interval=0.5)
    mail_r = EmailReceiver(name="mail", to=("desk@example.org",), sender="tw@example.org", host="127.0.0.1",
                           port=smtp.port, auth_username=smtp.username, auth_password_secret="smtp_password",
                           ca_file=str(smtp.ca_file), timeout=10.0)
    ops_r = AlertmanagerReceiver(name="ops", url=alertmanager.url)
    slack_sink, mail_sink = SlackSink(slack_r, slack_standin.url), EmailSink(mail_r, smtp.password)
    ops_sink = AlertmanagerSink(ops_r, alertmanager.url)
    a = alert()
    seen = []
    posted = {}

    async def run():
        try:
            for sink, receiver, received in ((slack_sink, slack_r, lambda: slack_standin.alert_ids()),
                                             (mail_sink, mail_r, lambda: [str(m["X-Transitwatch-Alerts"])
                                                                          for _, _, m in smtp.messages]),
                                             (ops_sink, ops_r, lambda: [x["labels"]["alert_id"] for x in
                                                                        alertmanager.alerts(alert_id=a["alert_id"])])):
                prepared = await sink.prepare(notification(receiver, [a]))
                seen.append((sink.type, list(received())))
                try:
                    await prepared.deliver()
                    posted.setdefault(sink.type, time.monotonic())
                finally:
                    await prepared.close()
                seen.append((sink.type, list(received())))
            # The webhook's spacing (0.5 s from the end of the last post) is waited out while
            # preparing, not while transmitting: however long the steps between took.
            prepared = await slack_sink.prepare(notification(slack_r, [alert()]))
            waited = time.monotonic() - posted["slack"]
            assert len(slack_standin.posts) == 1, "preparing posted nothing"
            await prepared.deliver()
            await prepared.close()
            return waited
        finally:
            await slack_sink.close()
            await ops_sink.close()

    try:
        waited = asyncio.run(run())
    finally:
        smtp.down()
    assert seen == [("slack", []), ("slack", [a["alert_id"]]), ("email", []), ("email", [a["alert_id"]]),
                    ("alertmanager", []), ("alertmanager", [a["alert_id"]])]
    assert smtp.logins == [("transitwatch", True)], "logged in over TLS while preparing"
    assert waited >= 0.4 and len(slack_standin.posts) == 2
