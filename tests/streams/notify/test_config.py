"""Matchers, durations and the TOML routing configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transitwatch.streams.notify.config import NotifyConfig, load_config
from transitwatch.streams.notify.matchers import (
    Matcher,
    NotifyConfigError,
    alert_labels,
    format_duration,
    parse_duration,
)
from tests.streams.notify.notify_helpers import build_config, email, make_alert, slack

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "notify.toml"


@pytest.mark.parametrize(("text", "labels", "expected"), [
    ('partner="KG"', {"partner": "KG"}, True),
    ('partner="KG"', {"partner": "KZ"}, False),
    ("partner!=KG", {"partner": "KZ"}, True),
    ('severity=~"high|critical"', {"severity": "critical"}, True),
    ('severity=~"high"', {"severity": "highest"}, False),  # anchored, as in Alertmanager
    ('hs6=~"8542.*"', {"hs6": "854231"}, True),
    ('hs6!~"8542.*"', {"hs6": "854231"}, False),
    ('chpl_tier=""', {"chpl_tier": None}, True),
    ('detector="ramp"', {"detectors": ["seasonal_surge", "ramp"]}, True),
    ('detector!="ramp"', {"detectors": ["seasonal_surge", "ramp"]}, False),
    ('detector!="novelty"', {"detectors": ["seasonal_surge", "ramp"]}, True),
    ('early="true"', {"early": True}, True),
    ('reporter = "DE"', {"reporter": "DE"}, True),
    (r'partner="A\"B"', {"partner": 'A"B'}, True),
])
def test_matchers(text, labels, expected):
    assert Matcher.parse(text).matches(alert_labels(labels)) is expected


@pytest.mark.parametrize("text", ['company="ACME"', 'partner=="KG"', 'partner="KG', 'severity=~"("', "", 'partner="a"b"'])
def test_bad_matchers_are_refused(text):
    with pytest.raises(NotifyConfigError):
        Matcher.parse(text)


@given(st.sampled_from(["=", "!=", "=~", "!~"]), st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20))
def test_matcher_text_round_trips(op, value):
    if op in ("=~", "!~"):
        value = value.replace("\\", "").replace("(", "").replace(")", "").replace("[", "").replace("]", "")
        value = value.replace("*", "").replace("+", "").replace("?", "").replace("{", "").replace("}", "")
    m = Matcher("partner", op, value)
    assert Matcher.parse(str(m)) == m


@given(st.integers(min_value=0, max_value=10**9))
def test_durations_round_trip(ms):
    assert parse_duration(format_duration(ms / 1000)) == pytest.approx(ms / 1000)


@pytest.mark.parametrize("text", ["", "5", "5 m", "1m1h", "-3s", "1.5h", "1y"])
def test_bad_durations(text):
    with pytest.raises(NotifyConfigError):
        parse_duration(text)


def test_the_shipped_example_loads_and_routes():
    cfg = load_config(EXAMPLE)
    assert set(cfg.receivers) == {"analysts", "central-asia", "export-control-desk", "ops-alertmanager"}
    assert cfg.secret_names() == {"slack_analysts", "slack_central_asia", "smtp_password"}
    desk = cfg.receivers["export-control-desk"]
    assert (desk.host, desk.port, desk.tls, desk.auth_username) == ("smtp.example.org", 587, "starttls", "transitwatch")
    route = lambda **kw: [r.receiver for r in cfg.routes_for(make_alert(**kw))]  # noqa: E731
    assert route(severity="high", chpl_tier="1", partner="AM") == ["export-control-desk", "ops-alertmanager", "analysts"]
    assert route(severity="high", chpl_tier="1", partner="KG") == ["export-control-desk", "ops-alertmanager", "central-asia"]
    assert route(severity="low", chpl_tier="3.A", partner="KZ") == ["central-asia"]
    assert route(severity="medium", chpl_tier=None, partner="GE") == ["ops-alertmanager", "analysts"]
    desk_route = cfg.route.routes[0]
    assert desk_route.group_by == ("partner",) and desk_route.group_wait == 60.0
    assert desk_route.group_interval == 300.0 and desk_route.repeat_interval == 4 * 3600.0, "inherited"


def test_children_inherit_and_override():
    cfg = build_config({"receiver": "a", "group_by": ["partner"], "group_wait": "10s", "routes": [
        {"matchers": ['partner="KG"'], "group_by": ["..."], "routes": [
            {"matchers": ['severity="high"'], "receiver": "b", "group_interval": "1m"}]}]}, [slack("a"), slack("b")])
    child = cfg.route.routes[0]
    grandchild = child.routes[0]
    assert (child.receiver, child.group_by_all, child.group_wait) == ("a", True, 10.0)
    assert (grandchild.receiver, grandchild.group_by_all, grandchild.group_interval) == ("b", True, 60.0)
    assert [r.path for r in cfg.routes_for(make_alert(partner="KG", severity="high"))] == ["0.0.0"]
    assert [r.path for r in cfg.routes_for(make_alert(partner="KG", severity="low"))] == ["0.0"]
    assert [r.path for r in cfg.routes_for(make_alert(partner="AM"))] == ["0"]


@pytest.mark.parametrize(("data", "message"), [
    ({"route": {"receiver": "x"}, "receivers": [slack("a")]}, "no receiver is named 'x'"),
    ({"route": {"receiver": "a"}, "receivers": [slack("a"), slack("a")]}, "used twice"),
    ({"route": {"receiver": "a", "groupby": ["x"]}, "receivers": [slack("a")]}, "unknown key(s) groupby"),
    ({"route": {"receiver": "a", "group_by": ["company"]}, "receivers": [slack("a")]}, "unknown label 'company'"),
    ({"route": {"receiver": "a", "group_wait": "soon"}, "receivers": [slack("a")]}, "route.group_wait"),
    ({"route": {"receiver": "a", "group_interval": "5m", "repeat_interval": "1m"}, "receivers": [slack("a")]},
     "at least group_interval"),
    ({"route": {"receiver": "a", "matchers": ['partner="KG"']}, "receivers": [slack("a")]}, "root route"),
    ({"route": {"receiver": "a"}, "receivers": [{"name": "a", "type": "sms"}]}, "expected one of"),
    ({"route": {"receiver": "a"}, "receivers": [slack("a", max_alerts_per_message=20)]}, "at most 9"),
    ({"route": {"receiver": "a"}, "receivers": [{"name": "a", "type": "slack", "webhook_secret": "https://hooks"}]},
     "name a secret"),
    ({"route": {"receiver": "a"}, "receivers": [email("a", auth_username="u", auth_password_secret="pw")]},
     "without TLS"),
    ({"route": {"receiver": "a"}, "receivers": [email("a", to=["not an address"])]}, "email addresses"),
    ({"route": {"receiver": "a"}, "receivers": [{"name": "a", "type": "alertmanager"}]}, "exactly one of url"),
    ({"route": {"receiver": "a"}, "receivers": [slack("a")], "global": {"alert_url": "https://x/"}}, "{alert_id}"),
    ({"receivers": [slack("a")]}, "[route] table"),
])
def test_configuration_errors_say_what_is_wrong(data, message):
    with pytest.raises(NotifyConfigError) as err:
        NotifyConfig.from_dict(data)
    assert message in str(err.value)


def test_email_receivers_take_the_global_smtp_defaults():
    cfg = build_config({"receiver": "m"}, [{"name": "m", "type": "email", "to": "desk@example.org"}],
                       smtp_smarthost="mail.example.org:465", smtp_from="tw@example.org", smtp_tls="tls",
                       smtp_auth_username="tw", smtp_auth_password_secret="SMTP_Password")
    m = cfg.receivers["m"]
    assert (m.host, m.port, m.tls, m.sender, m.to, m.auth_password_secret) == (
        "mail.example.org", 465, "tls", "tw@example.org", ("desk@example.org",), "smtp_password")


def test_invalid_toml_and_missing_file():
    with pytest.raises(NotifyConfigError, match="not valid TOML"):
        NotifyConfig.from_toml("[route\n")
    with pytest.raises(NotifyConfigError, match="cannot read"):
        load_config("/nonexistent/notify.toml")
