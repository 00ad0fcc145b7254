"""Metrics names, settings and secrets, sinks' construction and the command line."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from transitwatch.streams.cli import main
from transitwatch.streams.notify.config import NotifyConfig
from transitwatch.streams.notify.matchers import NotifyConfigError
from transitwatch.streams.notify.metrics import NotifyMetrics
from transitwatch.streams.notify.service import build_sinks
from transitwatch.streams.notify.sinks import Redactor
from transitwatch.streams.settings import Settings

WEBHOOK = "https://hooks.slack.test/services/T000/B000/SeCrEtToKeN"
PASSWORD = "pw-Very-Secret-42"

CONFIG = {
    "route": {"receiver": "desk"},
    "receivers": [
        {"name": "desk", "type": "slack", "webhook_secret": "slack_desk"},
        {"name": "mail", "type": "email", "to": ["a@example.org"], "from": "tw@example.org",
         "smarthost": "127.0.0.1:2525", "auth_username": "tw", "auth_password_secret": "smtp_password"},
        {"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:9093"},
    ],
}


def test_metric_names_are_exactly_the_agreed_ones():
    m = NotifyMetrics(CollectorRegistry())
    text = generate_latest(m.registry).decode()
    for line in (
        'transitwatch_notify_deliveries_total{outcome="delivered",receiver_type="slack"} 0.0',
        'transitwatch_notify_deliveries_total{outcome="failed",receiver_type="alertmanager"} 0.0',
        'transitwatch_notify_retries_total{receiver_type="email"} 0.0',
        'transitwatch_notify_delivery_latency_seconds_bucket{le="30.0",receiver_type="slack"} 0.0',
        "transitwatch_notify_silenced_total 0.0",
        'transitwatch_notify_undelivered_total{receiver_type="slack"} 0.0',
        "transitwatch_notify_alerts_consumed_total 0.0",
        "transitwatch_notify_pending_groups 0.0",
    ):
        assert line in text, line
    assert "# TYPE transitwatch_notify_delivery_latency_seconds histogram" in text
    assert "# TYPE transitwatch_notify_pending_groups gauge" in text


def test_secrets_come_from_nested_environment_variables_and_stay_hidden(monkeypatch):
    monkeypatch.setenv("TRANSITWATCH_SECRETS__SLACK_DESK", WEBHOOK)
    monkeypatch.setenv("TRANSITWATCH_SECRETS__SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("TRANSITWATCH_NOTIFY_WEB_PORT", "7077")
    s = Settings()
    assert s.secrets["slack_desk"].get_secret_value() == WEBHOOK
    assert s.notify_web_port == 7077 and s.undelivered_topic == "transitwatch.alerts.undelivered"
    assert WEBHOOK not in repr(s) and PASSWORD not in str(s) and PASSWORD not in s.model_dump_json()
    sinks, redactor = build_sinks(NotifyConfig.from_dict(CONFIG), s)
    assert {n: k.type for n, k in sinks.items()} == {"desk": "slack", "mail": "email", "am": "alertmanager"}
    assert redactor(f"error posting to {WEBHOOK} with {PASSWORD}") == "error posting to <redacted> with <redacted>"


def test_a_missing_secret_fails_at_start_up_naming_the_variable(monkeypatch):
    monkeypatch.setenv("TRANSITWATCH_SECRETS__SLACK_DESK", WEBHOOK)
    with pytest.raises(NotifyConfigError) as err:
        build_sinks(NotifyConfig.from_dict(CONFIG), Settings())
    assert "TRANSITWATCH_SECRETS__SMTP_PASSWORD" in str(err.value)
    assert WEBHOOK not in str(err.value)


def test_a_webhook_secret_that_is_not_a_url_is_refused_without_showing_it(monkeypatch):
    monkeypatch.setenv("TRANSITWATCH_SECRETS__SLACK_DESK", "xoxb-token-not-a-url")
    monkeypatch.setenv("TRANSITWATCH_SECRETS__SMTP_PASSWORD", PASSWORD)
    with pytest.raises(NotifyConfigError) as err:
        build_sinks(NotifyConfig.from_dict(CONFIG), Settings())
    assert "xoxb" not in str(err.value) and "slack_desk" in str(err.value)


def test_redactor_scrubs_url_paths_and_passwords_in_urls():
    r = Redactor(["http://user:Pa55word@am.internal:9093/"])
    assert "Pa55word" not in r("connect to http://user:Pa55word@am.internal:9093/api/v2/alerts failed")
    assert r("nothing secret here") == "nothing secret here"


def test_every_notifier_command_is_wired_and_takes_broker():
    import argparse

    from transitwatch.streams.notify.cli import add_commands

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    for argv in (["notify"], ["silence", "add", 'partner="KG"', "--reason", "r", "--author", "a"],
                 ["silence", "list"], ["silence", "expire", "abc"], ["redeliver"]):
        args = parser.parse_args([*argv, "--broker", "kafka://127.0.0.1:1"])
        assert args.broker == "kafka://127.0.0.1:1" and callable(args.handler), argv


def test_bad_silences_are_refused_before_any_broker_is_contacted(capsys):
    code = main(["silence", "add", 'company="ACME"', "--reason", "r", "--author", "a", "--broker", "kafka://127.0.0.1:1"])
    assert code == 2
    assert "unknown label 'company'" in capsys.readouterr().err
    code = main(["silence", "add", 'partner="KG"', "--reason", "r", "--author", "a", "--duration", "forever"])
    assert code == 2


def test_notify_without_a_configuration_says_how_to_give_one(capsys, monkeypatch):
    monkeypatch.delenv("TRANSITWATCH_NOTIFY_CONFIG", raising=False)
    assert main(["notify", "--broker", "kafka://127.0.0.1:1"]) == 2
    assert "--config" in capsys.readouterr().err


def test_notify_with_a_bad_configuration_fails_at_start_up(tmp_path, capsys):
    path = tmp_path / "notify.toml"
    path.write_text('[route]\nreceiver = "nobody"\n[[receivers]]\nname = "a"\ntype = "slack"\nwebhook_secret = "x"\n')
    assert main(["notify", "--config", str(path), "--broker", "kafka://127.0.0.1:1"]) == 2
    assert "no receiver is named 'nobody'" in capsys.readouterr().err
