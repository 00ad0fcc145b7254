"""Slack: a Block Kit message per notification, posted to an incoming webhook.

One message carries a whole group (up to ``max_alerts_per_message`` alerts, most severe
first): a header with the count and the group, then per alert the lane, goods and CHPL
tier, observed against expected with the ratio, severity, detectors, the plain-words
explanation, the top exporters and consignees and a button to the alert page. ``text`` is
the notification fallback. Section fields stack on a phone.

Slack's webhook semantics: ``200 ok`` is success; ``429`` carries ``Retry-After`` seconds;
``400/403/404/410`` (invalid payload, no such webhook or channel) are permanent; ``5xx`` and
timeouts are worth retrying. Posts to one webhook are spaced by ``min_interval`` (Slack allows
about one a second). Preparing a message builds its payload and waits out that spacing;
delivering it is the POST alone.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable
from typing import Any

from transitwatch.streams.notify import content as c
from transitwatch.streams.notify.config import SlackReceiver
from transitwatch.streams.notify.sinks import DeliveryError, JsonPoster, Notification, Prepared, Redactor, Transmission

PERMANENT = {400, 401, 403, 404, 410}


def mrkdwn(value: Any) -> str:
    """Escape text for Slack mrkdwn (``&``, ``<``, ``>``).

    Examples
    --------
    >>> mrkdwn("R&D <Ltd>")
    'R&amp;D &lt;Ltd&gt;'
    """
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def slack_payload(n: Notification) -> dict[str, Any]:
    """The webhook body: ``text`` (fallback) and ``blocks`` (Block Kit)."""
    items = c.ordered(n.items)
    title = c.summary(n)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(f"transitwatch · {title}", 150), "emoji": True}},
    ]
    if any(i.is_update for i in items):
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
            ":arrows_counterclockwise: Marked *Update*: month-end figures of alerts sent earlier as early alerts.")}]})
    for item in items:
        a = item.alert
        mark = c.SEVERITY_MARK.get(c.severity(a), ":white_circle:")
        head = (f"{mark} *{mrkdwn(c.severity(a).upper())}* · *{mrkdwn(c.lane(a))}* ({mrkdwn(a.get('flow') or 'export')})\n"
                f"{mrkdwn(c.goods(a))} · {mrkdwn(c.tier(a))}")
        if c.ban(a):
            head += f"\n:no_entry: {mrkdwn(c.ban(a))}"
        if item.is_update:
            head = ":arrows_counterclockwise: *Update* · " + head
        score = a.get("score")
        fields = [
            f"*Observed vs expected*\n{mrkdwn(c.amounts(a))}",
            f"*Period*\n{mrkdwn(c.period(a))}",
            f"*Detectors*\n{mrkdwn(c.detectors(a))}",
            f"*Score*\n{score:.2f}" if isinstance(score, (int, float)) else "*Score*\n–",
        ]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(head, 3000)},
                       "fields": [{"type": "mrkdwn", "text": _cut(f, 2000)} for f in fields]})
        explanation = str(a.get("explanation") or "")
        note = c.update_note(item)
        body = " ".join(x for x in (note, explanation) if x) or "No explanation was given."
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(mrkdwn(body), 3000)}})
        facts = []
        exporters = c.parties(a.get("top_exporters"), a.get("currency"))
        consignees = c.parties(a.get("top_consignees"), a.get("currency"))
        if exporters:
            facts.append("*Top exporters:* " + mrkdwn("; ".join(exporters)))
        if consignees:
            facts.append("*Top consignees:* " + mrkdwn("; ".join(consignees)))
        corroborating = a.get("corroborating_reporters") or []
        if corroborating:
            facts.append("*Also rising from:* " + mrkdwn(", ".join(map(str, corroborating))))
        facts.append(f"alert `{mrkdwn(a.get('alert_id'))}`")
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(f, 3000)} for f in facts]})
        url = c.link(a, n.alert_url)
        if url:
            blocks.append({"type": "actions", "elements": [{
                "type": "button", "text": {"type": "plain_text", "text": "Open alert"}, "url": url,
            }]})
        blocks.append({"type": "divider"})
    lines = [c.headline(i.alert) + (" (update)" if i.is_update else "") for i in items[:3]]
    if len(items) > 3:
        lines.append(f"and {len(items) - 3} more")
    return {"text": _cut(f"transitwatch · {title}: " + "; ".join(lines), 3000), "blocks": blocks[:50]}


def retry_after(header: str | None, now: float | None = None) -> float:
    """Seconds in a ``Retry-After`` header (seconds or an HTTP date); 1 if absent or odd.

    Examples
    --------
    >>> retry_after("3"), retry_after(None), retry_after("soon")
    (3.0, 1.0, 1.0)
    """
    if not header:
        return 1.0
    header = header.strip()
    if header.isdigit():
        return float(min(int(header), 3600))
    try:
        when = email.utils.parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return 1.0
    return max(0.0, min(3600.0, when - (time.time() if now is None else now)))


class SlackSink:
    """Posts notifications to one Slack incoming webhook."""

    type = "slack"

    def __init__(
        self,
        receiver: SlackReceiver,
        webhook_url: str,
        *,
        redactor: Redactor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.receiver, self.name = receiver, receiver.name
        self._url = webhook_url
        self._redact = redactor or Redactor([webhook_url])
        self._clock = clock
        self._next = 0.0
        self._http = JsonPoster(f"slack receiver {receiver.name!r}", self._redact)

    async def prepare(self, notification: Notification) -> Prepared:
        """Build and encode the payload and wait out ``min_interval``: nothing is posted yet."""
        body = JsonPoster.encode(slack_payload(notification))
        wait = self._next - self._clock()
        if wait > 0:
            await asyncio.sleep(wait)
        return Transmission(lambda: self._post(body))

    async def _post(self, body: bytes) -> None:
        where = self._http.where
        try:
            answer = await self._http.post(self._url, body, timeout=self.receiver.timeout, keep=200)
        finally:
            self._next = self._clock() + self.receiver.min_interval
        status = answer.status
        if status == 200:
            return
        detail = self._redact(answer.text.strip().replace("\n", " "))
        if status == 429:
            raise DeliveryError(f"{where}: HTTP 429 rate limited",
                                retry_after=retry_after(answer.headers.get("Retry-After")))
        if status in PERMANENT:
            raise DeliveryError(f"{where}: HTTP {status} {detail}", permanent=True)
        raise DeliveryError(f"{where}: HTTP {status} {detail}")

    async def close(self) -> None:
        await self._http.close()
