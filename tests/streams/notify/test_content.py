"""What goes out: the Slack Block Kit payload, the email message and the Alertmanager alerts."""

from __future__ import annotations

import email
import email.policy
import json

from transitwatch.streams.notify.alertmanager import alertmanager_payload
from transitwatch.streams.notify.chart import chart_png
from transitwatch.streams.notify.config import SLACK_MAX_ALERTS, AlertmanagerReceiver, EmailReceiver, SlackReceiver
from transitwatch.streams.notify.deliverylog import DeliveryRecord
from transitwatch.streams.notify.mail import _cid, email_message
from transitwatch.streams.notify.sinks import Item, Notification
from transitwatch.streams.notify.slack import slack_payload
from tests.streams.notify.notify_helpers import make_alert

SLACK = SlackReceiver(name="desk", webhook_secret="slack_desk")
MAIL = EmailReceiver(name="mail", to=("desk@example.org", "duty@example.org"), sender="tw@example.org",
                     host="127.0.0.1", port=2525)
URL = "https://tw.example.org/alerts/{alert_id}"


def _notification(alerts, receiver=SLACK, previous=None, thread=()):
    items = [Item(alert=a, labels={}, timestamp=0.0, previous=previous) for a in alerts]
    return Notification(receiver=receiver, group_key="0|desk|partner=AM|period=2022-04",
                        group_labels={"partner": "AM", "period": "2022-04"}, items=items, message_id="<tw-abc@tw.test>",
                        thread=thread, alert_url=URL)


def _earlier(severity="medium"):
    return DeliveryRecord(receiver="desk", receiver_type="slack", alert_id="x", early=True, severity=severity,
                          group_key="g", message_id="<tw-early@tw.test>", delivered_at=1_700_000_000.0)


def _all_text(payload):
    return json.dumps(payload, ensure_ascii=False)


def test_slack_payload_carries_everything_an_analyst_needs():
    a = make_alert()
    payload = slack_payload(_notification([a]))
    assert payload["text"].startswith("transitwatch · HIGH: 1 alert · partner AM · period 2022-04")
    assert "DE→AM HS 854232" in payload["text"]
    text = _all_text(payload["blocks"])
    for needle in ("Germany → Armenia", "HS 854232 Electronic integrated circuits: memories", "CHPL tier 1",
                   "EUR 1.64m against EUR 570.0k expected (2.9×)", "*HIGH*", "seasonal_surge, ramp",
                   "2.9 times the expected", "Elektro &amp; Söhne GmbH: EUR 900.0k", "Yerevan &lt;Trade&gt; LLC",
                   "2022-04", a["alert_id"], "Also rising from:* PL"):
        assert needle in text, needle
    buttons = [b for b in payload["blocks"] if b["type"] == "actions"]
    assert buttons[0]["elements"][0]["url"] == f"https://tw.example.org/alerts/{a['alert_id']}"
    assert payload["blocks"][0]["type"] == "header" and len(payload["blocks"][0]["text"]["text"]) <= 150


def test_slack_payload_of_a_full_group_stays_within_slack_limits():
    alerts = [make_alert(severity=s, explanation="x" * 5000) for s in ["low", "critical", "medium"] * 3][:SLACK_MAX_ALERTS]
    previous = _earlier()
    payload = slack_payload(_notification(alerts, previous=previous))
    assert len(payload["blocks"]) <= 50
    for block in payload["blocks"]:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
            assert len(block.get("fields", [])) <= 10
    sections = [b for b in payload["blocks"] if b["type"] == "section" and "fields" in b]
    assert "*CRITICAL*" in sections[0]["text"]["text"], "most severe first"
    assert "*LOW*" in sections[-1]["text"]["text"]
    assert len(payload["text"]) <= 3000 and "and 6 more" in payload["text"]


def test_slack_marks_updates():
    a = make_alert(severity="high")
    payload = slack_payload(_notification([a], previous=_earlier("medium")))
    text = _all_text(payload["blocks"])
    assert "*Update*" in text and "severity was medium, now high" in text
    assert payload["text"].startswith("transitwatch · UPDATE HIGH: 1 update")


def _parse(msg):
    return email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)


def test_email_is_multipart_text_and_html_with_the_chart_inline():
    a, b = make_alert(), make_alert(partner="AM", severity="critical", top_exporters=[])
    n = _notification([a, b], receiver=MAIL)
    charts = {_cid(i): chart_png(i.alert) for i in n.items}
    msg = _parse(email_message(n, MAIL, charts, now=1_700_000_000.0))
    assert msg["Subject"] == "[transitwatch] CRITICAL: 2 alerts · partner AM · period 2022-04"
    assert msg["Message-ID"] == "<tw-abc@tw.test>" and msg["In-Reply-To"] is None
    assert msg["To"] == "desk@example.org, duty@example.org"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    related = msg.get_payload()[1]
    assert related.get_content_type() == "multipart/related"
    images = [p for p in related.iter_parts() if p.get_content_type() == "image/png"]
    assert len(images) == 2
    for image in images:
        assert image.get_content().startswith(b"\x89PNG")
        assert image["Content-Disposition"].startswith("inline")
        assert f"cid:{image['Content-ID'].strip('<>')}" in html
    for needle in ("Germany → Armenia", "HS 854232 Electronic integrated circuits: memories", "CHPL tier 1",
                   "EUR 1.64m against EUR 570.0k expected (2.9×)", "seasonal_surge, ramp", a["alert_id"],
                   "14 declarations against about 4.2 expected", f"https://tw.example.org/alerts/{a['alert_id']}"):
        assert needle in text, needle
        assert needle.replace("&", "&amp;") in html, needle
    assert "Elektro & Söhne GmbH" in text and "Elektro &amp; Söhne GmbH" in html
    assert "Yerevan <Trade> LLC" in text and "Yerevan &lt;Trade&gt; LLC" in html, "HTML is escaped"
    assert text.index(b["alert_id"]) < text.index(a["alert_id"]), "most severe first"
    assert "width=device-width" in html


def test_email_update_threads_to_the_earlier_message():
    n = _notification([make_alert()], receiver=MAIL, previous=_earlier(), thread=("<tw-early@tw.test>", "<tw-grp@tw.test>"))
    msg = _parse(email_message(n, MAIL, {}))
    assert msg["In-Reply-To"] == "<tw-early@tw.test>"
    assert msg["References"] == "<tw-early@tw.test> <tw-grp@tw.test>"
    assert msg["Subject"].startswith("[transitwatch] UPDATE HIGH: 1 update")
    assert "month-end figures" in msg.get_body(("plain",)).get_content()


def test_alertmanager_payload_labels_and_annotations():
    a = make_alert(chpl_tier=None)
    (entry,) = alertmanager_payload(_notification([a]), now=1_700_000_000.0, resolve_after=3600.0)
    assert entry["labels"] == {"alertname": "TransitwatchExportSurge", "alert_id": a["alert_id"], "severity": "high",
                               "reporter": "DE", "partner": "AM", "flow": "export", "hs6": "854232",
                               "period": "2022-04", "series_id": "DE>AM export 854232", "source": "transitwatch"}
    assert entry["annotations"]["description"] == a["explanation"]
    assert entry["annotations"]["observed_vs_expected"] == "EUR 1.64m against EUR 570.0k expected (2.9×)"
    assert entry["startsAt"] == "2023-11-14T22:13:20.000Z" and entry["endsAt"] == "2023-11-14T23:13:20.000Z"
    assert entry["generatorURL"].endswith(a["alert_id"])


def test_alertmanager_update_with_a_new_severity_resolves_the_old_labels():
    a = make_alert(severity="high")
    new, old = alertmanager_payload(_notification([a], previous=_earlier("medium")), now=1_700_000_000.0,
                                    resolve_after=3600.0)
    assert new["labels"]["severity"] == "high" and old["labels"]["severity"] == "medium"
    assert old["endsAt"] == "2023-11-14T22:13:20.000Z"
    same = alertmanager_payload(_notification([a], previous=_earlier("high")), now=1.0, resolve_after=1.0)
    assert len(same) == 1


def test_odd_alerts_render_without_errors():
    odd = {"alert_id": "tw-odd", "early": True}
    n = _notification([odd], receiver=MAIL)
    assert slack_payload(n)["blocks"]
    charts = {_cid(i): chart_png(i.alert) for i in n.items}
    assert _parse(email_message(n, MAIL, charts)).get_body(("plain",)).get_content()
    assert alertmanager_payload(n, now=0.0, resolve_after=AlertmanagerReceiver(name="x", url="http://h").resolve_after)
