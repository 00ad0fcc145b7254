"""What the notifier accepts from the alerts topic, and why it skips the rest.

An alert message is read defensively: it is checked whole before any of it reaches the
router or a sink, so that a hostile or broken message is one skipped message (logged,
counted by reason, kept on the dead-letter topic), never a crash or a crash loop. The
reasons are stable codes, the values of the ``reason`` label of
``transitwatch_notify_invalid_alerts_total``:

- ``too_large``: more than :data:`MAX_ALERT_BYTES` (an alert is a few kilobytes);
- ``too_deep``: JSON nested deeper than the input limit (``transitwatch.detectors.limits``);
- ``invalid_json``: not JSON (also: a number too large for a double, invalid UTF-8);
- ``invalid_alert``: JSON, but not an alert record (``docs/alerts.md``): not an object, no
  usable ``alert_id``, a field of the wrong type, a label longer than :data:`MAX_LABEL_CHARS`
  or with a control character or line break (labels go into mail headers), a period that is
  not ``YYYY-MM``;
- ``date_out_of_range``: a period outside the months a run accepts (``transitwatch.detectors.limits``:
  1990-01 to a year past the present), such as ``0000-01`` or ``9999-12``;
- ``invalid_number``: an amount, count, score, ratio or p-value that is not a finite number
  within :data:`LIMITS`;
- ``unprocessable``: an alert that passed these checks but raised while being routed (a bug:
  logged with its traceback; that alert is skipped, the notifier goes on).

Dates are compared as month indices parsed from digits; nothing here builds a ``date`` from
a message's values.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

from transitwatch.detectors.errors import RejectError
from transitwatch.detectors.limits import InputLimits, TimeDomain, deeper_than

REJECT_REASONS = ("too_large", "too_deep", "invalid_json", "invalid_alert", "date_out_of_range", "invalid_number",
                  "unprocessable")

#: An alert record is 1-3 kB; anything past this is not one (and must not fill memory or a message).
MAX_ALERT_BYTES = 256 * 1024
#: Labels (lane, HS code, severity...) end up in group keys, subjects and Slack headers.
MAX_LABEL_CHARS = 200
#: Ids are ``tw-`` and a hash; the characters keep delivery-log keys (``receiver|id|version``) unambiguous.
ALERT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
PERIOD = re.compile(r"(\d{4})-(\d{2})")
#: Control characters and line or paragraph separators: a label is one line (it becomes a mail header).
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

#: (lowest, highest, integer only) per numeric field (each may also be null or missing).
#: Amounts are in the base currency: 1e15 is more than a year of world trade.
LIMITS: dict[str, tuple[float, float, bool]] = {
    "observed_value": (-1e15, 1e15, False),
    "baseline_value": (-1e15, 1e15, False),
    "observed_count": (0, 1e12, True),
    "baseline_count": (0.0, 1e12, False),
    "score": (-1e6, 1e6, False),
    "ratio": (-1e15, 1e15, False),
    "p_value": (0.0, 1.0, False),
}
EVIDENCE_LIMIT = 1e15
LABEL_FIELDS = ("series_id", "reporter", "partner", "flow", "hs6", "chpl_tier", "severity", "currency")
TEXT_FIELDS = ("hs_description", "as_of", "explanation")
LIST_FIELDS = ("detectors", "top_exporters", "top_consignees", "corroborating_reporters")
_DEFAULT_LIMITS = InputLimits()


def period_domain(now: float, limits: InputLimits = _DEFAULT_LIMITS) -> TimeDomain:
    """The months an alert may be about, given the present (the notifier's clock)."""
    return limits.domain(dt.datetime.fromtimestamp(now, dt.UTC).date())


def _number(name: str, value: Any, low: float, high: float, integer: bool) -> None:
    ok = (not isinstance(value, bool) and isinstance(value, (int, float))
          and (not integer or isinstance(value, int) or (isinstance(value, float) and value.is_integer()))
          and math.isfinite(value) and low <= value <= high)
    if not ok:
        kind = "an integer" if integer else "a number"
        raise RejectError("invalid_number", f"{name} is {str(value)[:40]!r}: expected {kind} from {low:g} to {high:g}",
                          field=name)


def _wrong(name: str, value: Any, expected: str) -> RejectError:
    return RejectError("invalid_alert", f"{name} is {type(value).__name__} {str(value)[:40]!r}: expected {expected}",
                       field=name)


def check_alert(alert: Any, domain: TimeDomain) -> dict[str, Any]:
    """The alert record if it is one the notifier can route and render, else :class:`RejectError`.

    Examples
    --------
    >>> d = TimeDomain(1990 * 12, 2030 * 12)
    >>> check_alert({"alert_id": "tw-1", "period": "2022-04"}, d)["alert_id"]
    'tw-1'
    >>> for bad in ({"alert_id": "tw-1", "period": "9999-12", "observed_value": 5.0},
    ...             {"alert_id": "tw-1", "period": "2022-04", "observed_value": 1e300},
    ...             {"alert_id": "tw 1", "period": "2022-04", "observed_value": 5.0}):
    ...     try:
    ...         check_alert(bad, d)
    ...     except RejectError as e:
    ...         print(e.key)
    date_out_of_range
    invalid_number:observed_value
    invalid_alert:alert_id
    """
    if not isinstance(alert, dict):
        raise RejectError("invalid_alert", f"a JSON {type(alert).__name__}, not an object")
    alert_id = alert.get("alert_id")
    if not isinstance(alert_id, str) or ALERT_ID.fullmatch(alert_id) is None:
        raise _wrong("alert_id", alert_id, "1-128 letters, digits and . _ : -")
    if not isinstance(alert.get("early", False), bool):
        raise _wrong("early", alert["early"], "true or false")
    period = alert.get("period")
    found = PERIOD.fullmatch(period) if isinstance(period, str) else None
    if found is None or not 1 <= int(found[2]) <= 12:
        raise _wrong("period", period, "a month YYYY-MM")
    month = int(found[1]) * 12 + int(found[2]) - 1
    if month not in domain:
        raise domain.reject(month)
    for name in LABEL_FIELDS:
        value = alert.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_LABEL_CHARS
                                  or CONTROL.search(value)):
            raise _wrong(name, value, f"one line of at most {MAX_LABEL_CHARS} characters")
    for name in TEXT_FIELDS:
        if alert.get(name) is not None and not isinstance(alert[name], str):
            raise _wrong(name, alert[name], "a string")
    for name in LIST_FIELDS:
        value = alert.get(name)
        if value is not None and not isinstance(value, list):
            raise _wrong(name, value, "a list")
    for d in alert.get("detectors") or ():
        if not isinstance(d, str) or len(d) > MAX_LABEL_CHARS or CONTROL.search(d):
            raise _wrong("detectors", d, "names of detectors")
    for name in ("top_exporters", "top_consignees"):
        for entry in alert.get(name) or ():
            if isinstance(entry, Mapping) and entry.get("value") is not None:
                _number(f"{name}.value", entry["value"], -EVIDENCE_LIMIT, EVIDENCE_LIMIT, False)
    for name, (low, high, integer) in LIMITS.items():
        value = alert.get(name)
        if value is not None:
            _number(name, value, low, high, integer)
    evidence = alert.get("evidence")
    if evidence is not None:
        if not isinstance(evidence, dict):
            raise _wrong("evidence", evidence, "an object")
        for key, value in evidence.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                _number(f"evidence.{key}", value, -EVIDENCE_LIMIT, EVIDENCE_LIMIT, False)
    return alert


def parse_alert(value: bytes | None, domain: TimeDomain, *, max_depth: int = _DEFAULT_LIMITS.max_depth) -> dict[str, Any]:
    """The alert in a Kafka message's value, or :class:`RejectError` with the reason.

    Examples
    --------
    >>> d = TimeDomain(1990 * 12, 2030 * 12)
    >>> parse_alert(b'{"alert_id": "tw-1", "period": "2022-04", "observed_value": 1.0}', d)["period"]
    '2022-04'
    >>> for bad in (b"nope", b"[" * 100, b"x" * (MAX_ALERT_BYTES + 1), b'{"alert_id": "tw-1", "period": "0000-01"}'):
    ...     try:
    ...         parse_alert(bad, d)
    ...     except RejectError as e:
    ...         print(e.reason)
    invalid_json
    too_deep
    too_large
    date_out_of_range
    """
    data = value or b""
    if len(data) > MAX_ALERT_BYTES:
        raise RejectError("too_large", f"{len(data):,} bytes: an alert is at most {MAX_ALERT_BYTES:,} bytes")
    if deeper_than(data, max_depth):
        raise RejectError("too_deep", f"JSON nested deeper than {max_depth} levels")
    try:
        alert = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RejectError("invalid_json", f"not JSON: {exc}") from None
    return check_alert(alert, domain)
