"""Alertmanager: hand alerts to an existing Alertmanager through its v2 API.

For organisations that route everything through Alertmanager: each alert becomes one
Alertmanager alert (``POST /api/v2/alerts``) whose labels identify it (so the month-end
version of an early alert has the same fingerprint and updates it in place) and whose
annotations carry the content. Alerts resolve ``resolve_after`` after delivery: a
transitwatch alert is a finding about one month, not a condition that clears. If an
update changes the severity (a label), the old version is resolved at once.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from typing import Any

from transitwatch.streams.notify import content as c
from transitwatch.streams.notify.config import AlertmanagerReceiver
from transitwatch.streams.notify.sinks import DeliveryError, Item, JsonPoster, Notification, Prepared, Redactor, Transmission

ALERTNAME = "TransitwatchExportSurge"


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def labels_of(alert: Mapping[str, Any], severity: str | None = None) -> dict[str, str]:
    """The Alertmanager labels of an alert (empty values left out, as Alertmanager does).

    Examples
    --------
    >>> labels_of({"alert_id": "tw-1", "severity": "high", "partner": "AM", "reporter": "DE",
    ...            "hs6": "854232", "chpl_tier": None, "period": "2022-04", "flow": "export"})["alertname"]
    'TransitwatchExportSurge'
    """
    out = {
        "alertname": ALERTNAME,
        "alert_id": alert.get("alert_id"),
        "severity": severity if severity is not None else alert.get("severity"),
        "reporter": alert.get("reporter"),
        "partner": alert.get("partner"),
        "flow": alert.get("flow"),
        "hs6": alert.get("hs6"),
        "chpl_tier": alert.get("chpl_tier"),
        "period": alert.get("period"),
        "series_id": alert.get("series_id"),
        "source": "transitwatch",
    }
    return {k: str(v) for k, v in out.items() if v not in (None, "")}


def annotations_of(item: Item, alert_url: str | None) -> dict[str, str]:
    a = item.alert
    out = {
        "summary": c.headline(a),
        "description": str(a.get("explanation") or ""),
        "lane": c.lane(a),
        "goods": f"{c.goods(a)} · {c.tier(a)}",
        "observed_vs_expected": c.amounts(a),
        "export_ban": c.ban(a) or "",
        "detectors": c.detectors(a),
        "score": str(a.get("score", "")),
        "early": "true" if item.early else "false",
        "as_of": str(a.get("as_of") or ""),
        "top_exporters": "; ".join(c.parties(a.get("top_exporters"), a.get("currency"))),
        "top_consignees": "; ".join(c.parties(a.get("top_consignees"), a.get("currency"))),
        "update": c.update_note(item) or "",
        "alert_url": c.link(a, alert_url) or "",
    }
    return {k: v for k, v in out.items() if v}


def alertmanager_payload(n: Notification, now: float, resolve_after: float) -> list[dict[str, Any]]:
    """The body of ``POST /api/v2/alerts`` for a notification."""
    out = []
    for item in n.items:
        url = c.link(item.alert, n.alert_url)
        entry = {"labels": labels_of(item.alert), "annotations": annotations_of(item, n.alert_url),
                 "startsAt": _iso(now), "endsAt": _iso(now + resolve_after)}
        if url:
            entry["generatorURL"] = url
        out.append(entry)
        before = item.previous.severity if item.previous is not None else None
        if before and before != c.severity(item.alert):
            out.append({"labels": labels_of(item.alert, severity=before),
                        "annotations": {"summary": "superseded by the month-end alert"},
                        "startsAt": _iso(item.previous.delivered_at), "endsAt": _iso(now)})
    return out


class AlertmanagerSink:
    """Posts notifications to one Alertmanager."""

    type = "alertmanager"

    def __init__(self, receiver: AlertmanagerReceiver, url: str, *, redactor: Redactor | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.receiver, self.name = receiver, receiver.name
        self._endpoint = url.rstrip("/") + "/api/v2/alerts"
        self._redact = redactor or Redactor([url] if receiver.url_secret else [])
        self._clock = clock
        self._http = JsonPoster(f"alertmanager receiver {receiver.name!r}", self._redact)

    async def prepare(self, notification: Notification) -> Prepared:
        """Build and encode the alerts: nothing is posted yet."""
        body = JsonPoster.encode(alertmanager_payload(notification, self._clock(), self.receiver.resolve_after))
        return Transmission(lambda: self._post(body))

    async def _post(self, body: bytes) -> None:
        answer = await self._http.post(self._endpoint, body, timeout=self.receiver.timeout, keep=300)
        status = answer.status
        if 200 <= status < 300:
            return
        detail = self._redact(answer.text.strip().replace("\n", " "))
        raise DeliveryError(f"{self._http.where}: HTTP {status} {detail}",
                            permanent=400 <= status < 500 and status != 429,
                            retry_after=1.0 if status == 429 else None)

    async def close(self) -> None:
        await self._http.close()
