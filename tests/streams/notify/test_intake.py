"""Hostile messages on the alerts topic: each is skipped with a reason, never a crash."""

from __future__ import annotations

import ast
import asyncio
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transitwatch.detectors.errors import RejectError
from transitwatch.detectors.limits import TimeDomain
from transitwatch.streams.notify import alertmanager, mail, slack
from transitwatch.streams.notify.chart import chart_png
from transitwatch.streams.notify.deliverylog import DeliveryLog
from transitwatch.streams.notify.intake import MAX_ALERT_BYTES, REJECT_REASONS, parse_alert, period_domain
from transitwatch.streams.notify.matchers import alert_labels
from transitwatch.streams.notify.metrics import NotifyMetrics
from transitwatch.streams.notify.router import Router
from transitwatch.streams.notify.service import Notifier
from transitwatch.streams.notify.silences import Silences
from transitwatch.streams.notify.sinks import InMemorySink, Item, Notification, Source
from transitwatch.streams.settings import Settings
from tests.streams.notify.notify_helpers import FakeClock, build_config, email, make_alert, slack as slack_cfg

DOMAIN = TimeDomain(1990 * 12, 2027 * 12 + 11)
CONFIG = build_config({"receiver": "desk", "group_wait": "0s",
                       "routes": [{"receiver": "mail", "continue": True}, {"receiver": "desk"}]},
                      [slack_cfg("desk"), email("mail")])
FIELDS = ["alert_id", "series_id", "reporter", "partner", "flow", "hs6", "hs_description", "chpl_tier", "period",
          "detectors", "score", "severity", "observed_value", "baseline_value", "observed_count", "baseline_count",
          "ratio", "p_value", "currency", "top_exporters", "top_consignees", "corroborating_reporters", "early",
          "as_of", "explanation", "evidence"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=300),
    st.sampled_from(["0000-01", "9999-12", "2022-13", "2022-4", "-001-01", "2022-04", "1e400", "", "tw|x"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
hostile_alerts = st.builds(
    lambda base, changes, dropped: {k: v for k, v in {**base, **changes}.items() if k not in dropped},
    st.builds(make_alert), st.dictionaries(st.sampled_from(FIELDS), values, max_size=4),
    st.sets(st.sampled_from(FIELDS), max_size=2),
)


def _render(alert) -> None:
    """Everything the notifier does with an accepted alert, short of the network."""
    clock = FakeClock()
    router = Router(CONFIG, DeliveryLog(), Silences(), clock=clock)
    router.add(alert, source=Source("alerts", 0, 1))
    to_mail, to_desk = router.due()
    assert slack.slack_payload(to_desk)["blocks"]
    assert mail.email_message(to_mail, CONFIG.receivers["mail"], {})["Subject"]
    assert alertmanager.alertmanager_payload(to_desk, clock(), 86400.0)


def _json(alert) -> bytes:
    # Python's json writes what orjson refuses to: NaN, Infinity, integers past 64 bits.
    return json.dumps(alert).encode()


@given(st.binary(max_size=2000))
def test_any_bytes_give_an_alert_or_a_known_reason(data):
    try:
        alert = parse_alert(data, DOMAIN)
    except RejectError as err:
        assert err.reason in REJECT_REASONS
    else:
        assert isinstance(alert, dict) and alert["alert_id"]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(hostile_alerts)
def test_hostile_alerts_are_rejected_with_a_reason_or_are_safe_to_route_and_render(alert):
    try:
        accepted = parse_alert(_json(alert), DOMAIN)
    except RejectError as err:
        assert err.reason in REJECT_REASONS and err.message
        return
    for name in ("score", "observed_value", "baseline_value", "ratio", "p_value", "observed_count"):
        value = accepted.get(name)
        assert value is None or (math.isfinite(value) and abs(value) <= 1e15), name
    alert_labels(accepted)
    _render(accepted)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_alerts)
def test_the_chart_of_any_accepted_alert_is_drawn(alert):
    try:
        accepted = parse_alert(_json(alert), DOMAIN)
    except RejectError:
        return
    assert chart_png(accepted)[:4] == b"\x89PNG"


@given(st.integers(0, 9999), st.integers(1, 12))
def test_a_period_is_accepted_exactly_when_it_is_inside_the_months_a_run_accepts(year, month):
    raw = _json(make_alert(period=f"{year:04d}-{month:02d}"))
    inside = 1990 * 12 <= year * 12 + month - 1 <= 2027 * 12 + 11
    if inside:
        assert parse_alert(raw, DOMAIN)["period"] == f"{year:04d}-{month:02d}"
    else:
        with pytest.raises(RejectError) as err:
            parse_alert(raw, DOMAIN)
        assert err.value.reason == "date_out_of_range"


@pytest.mark.parametrize(("value", "reason"), [
    (b"not json at all", "invalid_json"),
    (b"", "invalid_json"),
    (b"\xff\xfe{}", "invalid_json"),
    (b'{"alert_id": "tw-1", "period": "2022-04", "score": 1e400}', "invalid_json"),
    (b"[1, 2, 3]", "invalid_alert"),
    (b'{"period": "2022-04"}', "invalid_alert"),
    (b'{"alert_id": "tw-1", "period": "April"}', "invalid_alert"),
    (b'{"alert_id": "tw-1", "period": "2022-04", "detectors": 7}', "invalid_alert"),
    (b'{"alert_id": "tw-1", "period": "2022-04", "partner": {"x": 1}}', "invalid_alert"),
    (b'{"alert_id": "tw-1", "period": "0000-01"}', "date_out_of_range"),
    (b'{"alert_id": "tw-1", "period": "9999-12"}', "date_out_of_range"),
    (b'{"alert_id": "tw-1", "period": "2022-04", "observed_value": 1.7e308}', "invalid_number"),
    (b'{"alert_id": "tw-1", "period": "2022-04", "observed_count": 18446744073709551616}', "invalid_number"),
    (b'{"alert_id": "tw-1", "period": "2022-04", "p_value": -3}', "invalid_number"),
    (b'{"alert_id": "tw-1", "period": "2022-04", "evidence": {"band_high": 1e300}}', "invalid_number"),
    (b'{"alert_id": "tw-1", "period": "2022-04", "explanation": "' + b"x" * MAX_ALERT_BYTES + b'"}', "too_large"),
    (b'{"alert_id": "tw-1", "evidence": ' + b"[" * 5000 + b"]" * 5000 + b"}", "too_deep"),
])
def test_each_kind_of_bad_message_has_its_reason(value, reason):
    with pytest.raises(RejectError) as err:
        parse_alert(value, DOMAIN)
    assert err.value.reason == reason


def test_the_period_domain_follows_the_clock_a_year_ahead():
    d = period_domain(1_700_000_000.0)  # 2023-11-14
    assert (d.first, d.last) == (1990 * 12, 2024 * 12 + 10)


def test_nothing_in_the_notifier_builds_a_date_from_values():
    """``date(year, month, day)`` on a message's values raises for year 0 or month 13; the
    notifier compares month indices instead. Only timestamps from the clock become datetimes."""
    package = Path(__file__).resolve().parents[3] / "streams" / "notify"
    calls, scanned = [], 0
    for path in sorted(package.glob("*.py")):
        scanned += 1
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            keywords = {k.arg for k in node.keywords}
            # A constructor with values (``date(y, m, d)``, ``datetime(...)``), a parser of a
            # format, or ``.replace(year=...)``; ``datetime.date()`` (no arguments) is a method.
            if ((name in ("date", "datetime") and (node.args or keywords)) or name == "strptime"
                    or (name == "replace" and keywords & {"year", "month", "day"})):
                calls.append(f"{path.name}:{node.lineno}")
    assert scanned >= 15 and calls == []


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, dict]] = []

    async def send_and_wait(self, topic, value, key=None, headers=()):
        self.sent.append((topic, value, dict(headers)))


def _notifier():
    metrics = NotifyMetrics()
    n = Notifier(Settings(dead_letter_topic="dead"), CONFIG, metrics=metrics,
                 sinks={"desk": InMemorySink("desk"), "mail": InMemorySink("mail", "email")},
                 clock=FakeClock())
    router = Router(CONFIG, DeliveryLog(), Silences(), metrics=metrics, clock=n.clock, on_done=n.tracker.done)
    return n, router


def _message(offset, value):
    return SimpleNamespace(topic="alerts", partition=0, offset=offset, value=value, key=None, timestamp=1_700_000_000_000)


def test_the_notifier_skips_hostile_messages_with_a_reason_and_a_counter_and_goes_on():
    n, router = _notifier()
    producer = _Producer()
    messages = [b"\x00garbage", b'{"alert_id": "tw-1", "period": "9999-12"}', b"x" * (2 * MAX_ALERT_BYTES),
                json.dumps(make_alert(observed_value=float("inf"))).encode(), json.dumps(make_alert()).encode()]
    for offset, value in enumerate(messages):
        asyncio.run(n._ingest(_message(offset, value), router, producer))
    reasons = [h["reason"] for _, _, h in producer.sent]
    assert reasons == [b"invalid_json", b"date_out_of_range", b"too_large", b"invalid_json"]
    assert all(topic == "dead" for topic, _, _ in producer.sent)
    big = producer.sent[2]
    assert len(big[1]) == MAX_ALERT_BYTES and big[2]["truncated_from_bytes"] == str(2 * MAX_ALERT_BYTES).encode()
    reg = n.metrics.registry
    assert reg.get_sample_value("transitwatch_notify_invalid_alerts_total", {"reason": "date_out_of_range"}) == 1
    assert reg.get_sample_value("transitwatch_notify_invalid_alerts_total", {"reason": "too_large"}) == 1
    assert n.tracker.committable() == {("alerts", 0): 4}, "skipped ones released; the valid alert is being handled"
    assert router.outstanding == 1 and len(router.due()) == 2, "the good alert goes on to both receivers"


def test_an_alert_that_raises_while_routed_is_that_alerts_failure_not_the_process(monkeypatch):
    n, router = _notifier()
    producer = _Producer()

    def broken(*args, **kwargs):
        raise KeyError("a bug in routing")

    monkeypatch.setattr(router, "add", broken)
    asyncio.run(n._ingest(_message(7, json.dumps(make_alert()).encode()), router, producer))
    ((topic, _, headers),) = producer.sent
    assert headers["reason"] == b"unprocessable" and b"KeyError" in headers["error"]
    assert n.metrics.registry.get_sample_value("transitwatch_notify_invalid_alerts_total",
                                               {"reason": "unprocessable"}) == 1
    assert n.tracker.committable() == {("alerts", 0): 8}, "offset 7 is released"


def test_metrics_count_every_reason_from_zero():
    reg = NotifyMetrics().registry
    for reason in REJECT_REASONS:
        assert reg.get_sample_value("transitwatch_notify_invalid_alerts_total", {"reason": reason}) == 0
    assert reg.get_sample_value("transitwatch_notify_unknown_outcomes_total", {"receiver_type": "email"}) == 0


def test_a_notification_of_odd_but_accepted_content_renders(alert):
    a = parse_alert(json.dumps(alert(detectors=[], top_exporters=[1, "x", None, {"name": None, "value": None}],
                                     evidence=None, severity=None, chpl_tier=None)).encode(), DOMAIN)
    n = Notification(receiver=CONFIG.receivers["desk"], group_key="g", group_labels={}, items=[
        Item(alert=a, labels=alert_labels(a), timestamp=0.0)], message_id="<m@x>")
    assert slack.slack_payload(n)["blocks"]
