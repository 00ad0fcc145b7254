"""Words and numbers shared by the Slack, email and Alertmanager messages.

Every function reads an alert record (``docs/alerts.md``) defensively: a missing or null
field gives a dash, never an exception, so one odd alert cannot block a group's message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from transitwatch.detectors.alerts import money
from transitwatch.detectors.reference import country_name
from transitwatch.streams.notify.sinks import Item, Notification

SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
SEVERITY_COLOUR = {"critical": "#8b0000", "high": "#d9480f", "medium": "#e8a317", "low": "#5c7cfa"}
SEVERITY_MARK = {"critical": ":red_circle:", "high": ":large_orange_circle:", "medium": ":large_yellow_circle:",
                 "low": ":large_blue_circle:"}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def text(value: Any) -> str:
    return "–" if value is None or value == "" else str(value)


def severity(alert: Mapping[str, Any]) -> str:
    return str(alert.get("severity") or "unknown")


def lane(alert: Mapping[str, Any]) -> str:
    """``Germany → Armenia`` (names where known).

    Examples
    --------
    >>> lane({"reporter": "DE", "partner": "AM"})
    'Germany → Armenia'
    """
    reporter, partner = str(alert.get("reporter") or "?"), str(alert.get("partner") or "?")
    return f"{country_name(reporter)} → {country_name(partner)}"


def lane_codes(alert: Mapping[str, Any]) -> str:
    return f"{alert.get('reporter') or '?'}→{alert.get('partner') or '?'}"


def goods(alert: Mapping[str, Any]) -> str:
    """``HS 854232 Electronic integrated circuits: memories``."""
    description = alert.get("hs_description")
    return f"HS {text(alert.get('hs6'))}" + (f" {description}" if description else "")


def tier(alert: Mapping[str, Any]) -> str:
    value = alert.get("chpl_tier")
    return f"CHPL tier {value}" if value not in (None, "") else "not on the CHPL"


def ban(alert: Mapping[str, Any]) -> str | None:
    """The goods' export ban from the sanctions calendar, and how long before the case's onset
    (``None`` when the goods are not in it).

    Examples
    --------
    >>> ban({"banned_since": "2022-02-26", "banned_by": "EU 833/2014 Annex VII, 2nd package", "months_since_ban": 3})
    'banned since 2022-02-26 (EU 833/2014 Annex VII, 2nd package); case opened 3 months after'
    >>> ban({"banned_since": "2023-02-26", "banned_by": "X", "months_since_ban": -2})
    'banned since 2023-02-26 (X); case opened 2 months before'
    >>> ban({"banned_since": None}) is None
    True
    """
    since = alert.get("banned_since")
    if not since:
        return None
    out = f"banned since {since} ({text(alert.get('banned_by'))})"
    months = alert.get("months_since_ban")
    if isinstance(months, int) and not isinstance(months, bool):
        out += ("; case opened in the month of the ban" if months == 0 else
                f"; case opened {abs(months)} month{'s' if abs(months) != 1 else ''} "
                f"{'after' if months > 0 else 'before'}")
    return out


def ratio(alert: Mapping[str, Any]) -> str:
    value = _num(alert.get("ratio"))
    return "–" if value is None else f"{value:,.1f}×"


def amounts(alert: Mapping[str, Any]) -> str:
    """``EUR 112.8k against EUR 173 expected (653.3×)``.

    Examples
    --------
    >>> amounts({"observed_value": 112845.0, "baseline_value": 172.73, "ratio": 653.3132, "currency": "EUR"})
    'EUR 112.8k against EUR 173 expected (653.3×)'
    >>> amounts({"observed_value": 5000.0, "baseline_value": None, "ratio": None, "currency": "USD"})
    'USD 5.0k, no baseline yet'
    """
    currency = str(alert.get("currency") or "")
    observed, baseline = _num(alert.get("observed_value")), _num(alert.get("baseline_value"))
    out = money(observed, currency)
    if baseline is None:
        return out + ", no baseline yet"
    out += f" against {money(baseline, currency)} expected"
    if _num(alert.get("ratio")) is not None:
        out += f" ({ratio(alert)})"
    return out


def counts(alert: Mapping[str, Any]) -> str | None:
    observed, expected = alert.get("observed_count"), _num(alert.get("baseline_count"))
    if observed is None or expected is None:
        return None
    return f"{observed} declarations against about {expected:,.1f} expected"


def detectors(alert: Mapping[str, Any]) -> str:
    return ", ".join(str(d) for d in alert.get("detectors") or ()) or "–"


def period(alert: Mapping[str, Any]) -> str:
    """``2022-04``, or ``2022-04 (early, data to 2022-04-15)``."""
    out = text(alert.get("period"))
    if alert.get("early"):
        out += f" (early, data to {text(alert.get('as_of'))})"
    return out


def parties(entries: Any, currency: Any) -> list[str]:
    """``ACME GmbH: EUR 50.0k`` for each of the top exporters or consignees."""
    out = []
    for entry in entries or ():
        if isinstance(entry, Mapping):
            value = _num(entry.get("value"))
            out.append(f"{text(entry.get('name'))}: {money(value, str(currency or ''))}" if value is not None
                       else text(entry.get("name")))
    return out


def link(alert: Mapping[str, Any], template: str | None) -> str | None:
    """The alert's page, from ``global.alert_url``."""
    if not template:
        return None
    return template.replace("{alert_id}", quote(str(alert.get("alert_id", "")), safe=""))


def ordered(items: Sequence[Item]) -> list[Item]:
    """Most severe first, then highest score."""
    def key(item: Item) -> tuple[int, float]:
        score = _num(item.alert.get("score"))
        return SEVERITY_RANK.get(severity(item.alert), 9), -(score if score is not None else -math.inf)
    return sorted(items, key=key)


def case(alert: Mapping[str, Any]) -> str | None:
    """What the record is to its case, for a case that has gone on (``None`` when it just opened).

    Examples
    --------
    >>> case({"case_event": "escalated", "case_onset": "2022-03", "case_months": 5, "case_ratio": 9.12,
    ...       "case_excess": 1.9e8, "currency": "EUR"})
    'case escalated: open since 2022-03 (month 5), 9.1× its pre-case level, EUR 190.00m above it since the onset'
    >>> case({"case_event": "opened", "case_onset": "2022-03", "case_months": 1}) is None
    True
    """
    event = alert.get("case_event")
    if not event or event == "opened":
        return None
    out = f"case {event}: open since {text(alert.get('case_onset'))} (month {text(alert.get('case_months'))})"
    value = _num(alert.get("case_ratio"))
    if value is not None:
        out += f", {value:,.1f}× its pre-case level"
    excess = _num(alert.get("case_excess"))
    if excess is not None:
        out += f", {money(excess, str(alert.get('currency') or ''))} above it since the onset"
    return out


def headline(alert: Mapping[str, Any]) -> str:
    """One line per alert: ``HIGH DE→AM HS 854232 2022-04: EUR 112.8k against ... (653.3×)``, then
    what it is to its case when the case has gone on."""
    out = f"{severity(alert).upper()} {lane_codes(alert)} HS {text(alert.get('hs6'))} {text(alert.get('period'))}: {amounts(alert)}"
    more = case(alert)
    return out if more is None else f"{out} · {more}"


def summary(n: Notification) -> str:
    """The subject of a notification: worst severity, count, updates and the group's labels.

    Examples
    --------
    >>> from transitwatch.streams.notify.sinks import Item, Notification
    >>> a = {"alert_id": "tw-1", "severity": "high", "partner": "AM", "period": "2022-04"}
    >>> n = Notification(receiver=None, group_key="g", group_labels={"partner": "AM", "period": "2022-04"},
    ...                  items=[Item(alert=a, labels={}, timestamp=0.0)], message_id="<m@x>")
    >>> summary(n)
    'HIGH: 1 alert · partner AM · period 2022-04'
    """
    items = n.items
    worst = min((severity(i.alert) for i in items), key=lambda s: SEVERITY_RANK.get(s, 9), default="unknown")
    updates = sum(1 for i in items if i.is_update)
    new = len(items) - updates
    parts = []
    if new:
        parts.append(f"{new} alert{'s' if new != 1 else ''}")
    if updates:
        parts.append(f"{updates} update{'s' if updates != 1 else ''}")
    head = f"{'UPDATE ' if updates and not new else ''}{worst.upper()}: " + " and ".join(parts)
    labels = [f"{k} {v}" for k, v in n.group_labels.items() if v and k not in ("alert_id", "detectors", "series_id")]
    if len(items) == 1 and not labels:
        labels = [f"{lane_codes(items[0].alert)} HS {text(items[0].alert.get('hs6'))}"]
    return " · ".join([head, *labels[:4]])


def update_note(item: Item) -> str | None:
    """What an update changes, in words, or None for a new alert."""
    if item.previous is None:
        return None
    note = "Update: the month is complete; these are the month-end figures of the early alert"
    if item.previous.severity and item.previous.severity != severity(item.alert):
        note += f" (severity was {item.previous.severity}, now {severity(item.alert)})"
    return note + "."
