"""Email: one multipart message per notification, sent through an SMTP smarthost.

The message is ``multipart/alternative``: a plain-text part and an HTML part with the same
content, the HTML part ``multipart/related`` with each alert's chart inline as a PNG
(``cid:``). The Message-ID is stable (see :func:`transitwatch.streams.notify.sinks.message_id`); an update
and a group's follow-up carry ``In-Reply-To`` and ``References`` so mail clients thread
them under the earlier message. SMTP goes through aiosmtplib with STARTTLS (or implicit
TLS) and AUTH; a password is never sent without TLS. Preparing a message renders it and
opens the authenticated connection; delivering it is the mail transaction alone, one
connection per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from transitwatch.streams.notify import content as c
from transitwatch.streams.notify.chart import chart_png
from transitwatch.streams.notify.config import EmailReceiver
from transitwatch.streams.notify.sinks import DeliveryError, Item, Notification, Prepared, Redactor

if TYPE_CHECKING:
    import aiosmtplib

log = logging.getLogger("transitwatch.notify")

_STYLE = ("font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:1.45;color:#212529;"
          "max-width:600px;margin:0 auto;padding:8px")


def _cid(item: Item) -> str:
    return f"chart-{item.alert_id}-{'early' if item.early else 'final'}@transitwatch"


def _e(value: Any) -> str:
    return html.escape(str(value))


def text_body(n: Notification) -> str:
    """The plain-text part."""
    items = c.ordered(n.items)
    out = [f"transitwatch: {c.summary(n)}", ""]
    for k, item in enumerate(items, 1):
        a = item.alert
        out.append(f"{k}. {'UPDATE · ' if item.is_update else ''}{c.severity(a).upper()} · {c.lane(a)} ({a.get('flow') or 'export'})")
        out.append(f"   {c.goods(a)} · {c.tier(a)}")
        if c.ban(a):
            out.append(f"   Export ban: {c.ban(a)}")
        out.append(f"   Observed vs expected: {c.amounts(a)}")
        if c.counts(a):
            out.append(f"   Declarations: {c.counts(a)}")
        out.append(f"   Period: {c.period(a)}")
        out.append(f"   Detectors: {c.detectors(a)} (score {a.get('score', '–')})")
        note = c.update_note(item)
        if note:
            out.append(f"   {note}")
        out.append(f"   {a.get('explanation') or 'No explanation was given.'}")
        for label, key in (("Top exporters", "top_exporters"), ("Top consignees", "top_consignees")):
            entries = c.parties(a.get(key), a.get("currency"))
            if entries:
                out.append(f"   {label}: " + "; ".join(entries))
        if a.get("corroborating_reporters"):
            out.append("   Also rising from: " + ", ".join(map(str, a["corroborating_reporters"])))
        url = c.link(a, n.alert_url)
        out.append(f"   Alert {a.get('alert_id')}" + (f": {url}" if url else ""))
        out.append("")
    out.append("An alert is a reason to look closer, not proof of evasion.")
    return "\n".join(out) + "\n"


def html_body(n: Notification) -> str:
    """The HTML part (inline CSS, one column: readable on a phone)."""
    items = c.ordered(n.items)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'></head>",
        f"<body style='margin:0'><div style='{_STYLE}'>",
        f"<h2 style='font-size:18px;margin:4px 0 12px'>transitwatch: {_e(c.summary(n))}</h2>",
    ]
    for item in items:
        a = item.alert
        colour = c.SEVERITY_COLOUR.get(c.severity(a), "#868e96")
        badge = (f"<span style='background:{colour};color:#fff;border-radius:3px;padding:1px 6px;"
                 f"font-size:13px;font-weight:bold'>{_e(c.severity(a).upper())}</span>")
        update = ("<span style='background:#0b7285;color:#fff;border-radius:3px;padding:1px 6px;font-size:13px'>"
                  "UPDATE</span> " if item.is_update else "")
        parts.append("<div style='border-top:2px solid #dee2e6;padding:10px 0'>")
        parts.append(f"<p style='margin:0 0 4px'>{update}{badge} <b>{_e(c.lane(a))}</b> ({_e(a.get('flow') or 'export')})</p>")
        parts.append(f"<p style='margin:0 0 8px'>{_e(c.goods(a))} · {_e(c.tier(a))}</p>")
        rows = [("Observed vs expected", c.amounts(a)), ("Declarations", c.counts(a)), ("Export ban", c.ban(a)),
                ("Period", c.period(a)),
                ("Detectors", f"{c.detectors(a)} (score {a.get('score', '–')})")]
        parts.append("<table style='border-collapse:collapse;width:100%;font-size:14px'>")
        for label, value in rows:
            if value:
                parts.append(f"<tr><td style='padding:2px 8px 2px 0;color:#495057;vertical-align:top'>{_e(label)}</td>"
                             f"<td style='padding:2px 0'>{_e(value)}</td></tr>")
        parts.append("</table>")
        note = c.update_note(item)
        if note:
            parts.append(f"<p style='background:#e3fafc;padding:6px'>{_e(note)}</p>")
        parts.append(f"<p>{_e(a.get('explanation') or 'No explanation was given.')}</p>")
        parts.append(f"<img src='cid:{_e(_cid(item))}' alt='chart: observed against expected' width='600' "
                     "style='width:100%;max-width:600px;height:auto'>")
        for label, key in (("Top exporters", "top_exporters"), ("Top consignees", "top_consignees")):
            entries = c.parties(a.get(key), a.get("currency"))
            if entries:
                parts.append(f"<p style='margin:6px 0 2px'><b>{label}</b></p><ul style='margin:0;padding-left:20px'>"
                             + "".join(f"<li>{_e(e)}</li>" for e in entries) + "</ul>")
        if a.get("corroborating_reporters"):
            parts.append(f"<p>Also rising from: {_e(', '.join(map(str, a['corroborating_reporters'])))}</p>")
        url = c.link(a, n.alert_url)
        link = f" · <a href='{_e(url)}'>open the alert</a>" if url else ""
        parts.append(f"<p style='color:#868e96;font-size:12px'>alert {_e(a.get('alert_id'))}{link}</p></div>")
    parts.append("<p style='color:#868e96;font-size:12px'>An alert is a reason to look closer, not proof of evasion.</p>")
    parts.append("</div></body></html>")
    return "\n".join(parts)


def email_message(n: Notification, receiver: EmailReceiver, charts: Mapping[str, bytes],
                  now: float | None = None) -> EmailMessage:
    """The whole message; ``charts`` maps each item's content id to its PNG."""
    msg = EmailMessage()
    # One line whatever the labels hold: a line break in a header value is refused (and unsafe).
    msg["Subject"] = " ".join(f"[transitwatch] {c.summary(n)}".split())
    msg["From"] = receiver.sender
    msg["To"] = ", ".join(receiver.to)
    msg["Date"] = formatdate(time.time() if now is None else now, usegmt=True)
    msg["Message-ID"] = n.message_id
    if n.thread:
        msg["In-Reply-To"] = n.thread[0]
        msg["References"] = " ".join(n.thread)
    msg["X-Transitwatch-Alerts"] = ", ".join(i.alert_id for i in n.items)
    msg.set_content(text_body(n))
    msg.add_alternative(html_body(n), subtype="html")
    html_part = msg.get_payload()[1]
    for item in c.ordered(n.items):
        cid = _cid(item)
        if cid in charts:
            html_part.add_related(charts[cid], maintype="image", subtype="png", cid=f"<{cid}>",
                                  disposition="inline", filename=f"{item.alert_id}.png")
    return msg


class EmailSink:
    """Sends notifications as email through one SMTP smarthost."""

    type = "email"

    def __init__(self, receiver: EmailReceiver, password: str | None = None, *, redactor: Redactor | None = None) -> None:
        self.receiver, self.name = receiver, receiver.name
        self._password = password
        self._redact = redactor or Redactor([password] if password else [])
        self._charts: OrderedDict[str, bytes] = OrderedDict()

    async def _chart(self, item: Item) -> bytes:
        cid = _cid(item)
        png = self._charts.get(cid)
        if png is None:
            png = await asyncio.to_thread(chart_png, item.alert)
            self._charts[cid] = png
            while len(self._charts) > 256:
                self._charts.popitem(last=False)
        return png

    async def prepare(self, notification: Notification) -> Prepared:
        """Render the charts and the message, connect, STARTTLS (or TLS) and log in: the
        server has been sent nothing it could deliver yet."""
        import aiosmtplib

        r = self.receiver
        charts = {_cid(i): await self._chart(i) for i in notification.items}
        message = email_message(notification, r, charts)
        smtp = aiosmtplib.SMTP(hostname=r.host, port=r.port, username=r.auth_username, password=self._password,
                               start_tls=r.tls == "starttls", use_tls=r.tls == "tls", timeout=r.timeout,
                               validate_certs=not r.insecure_skip_verify, cert_bundle=r.ca_file)
        with self._errors():
            try:
                await smtp.connect()
                if smtp.is_ehlo_or_helo_needed:
                    await smtp.ehlo()
            except BaseException:
                smtp.close()
                raise
        return _SmtpTransmission(self, smtp, message)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """SMTP and network errors as :class:`DeliveryError` (5xx permanent), without secrets."""
        import aiosmtplib

        r = self.receiver
        where = f"email receiver {self.name!r} ({r.host}:{r.port})"
        try:
            yield
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [getattr(x, "code", 0) for x in exc.recipients]
            raise DeliveryError(f"{where}: every recipient was refused ({self._redact(str(exc))})",
                                permanent=all(500 <= code < 600 for code in codes)) from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"{where}: authentication failed ({exc.code}); check auth_username and the "
                                "password secret", permanent=True) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(f"{where}: SMTP {exc.code} {self._redact(exc.message)}",
                                permanent=500 <= exc.code < 600) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{where}: {type(exc).__name__}: {self._redact(str(exc))}") from None

    async def close(self) -> None:
        return None


class _SmtpTransmission:
    """One message on an open, authenticated SMTP connection; :meth:`deliver` runs the mail
    transaction (``MAIL``, ``RCPT``, ``DATA``: the server takes the message at the end of
    ``DATA``)."""

    def __init__(self, sink: EmailSink, smtp: aiosmtplib.SMTP, message: EmailMessage) -> None:
        self._sink, self._smtp, self._message = sink, smtp, message
        self._delivered = False

    async def deliver(self) -> None:
        with self._sink._errors():
            result = await self._smtp.send_message(self._message)
        self._delivered = True
        refused = result[0] if result else {}
        if refused:
            log.warning("email receiver %r: some recipients were refused: %s", self._sink.name,
                        ", ".join(sorted(refused)))

    async def close(self) -> None:
        """``QUIT`` after a delivery (briefly: the outcome is already known), else just hang up."""
        import aiosmtplib

        try:
            if self._delivered and self._smtp.is_connected:
                await asyncio.wait_for(self._smtp.quit(), timeout=2.0)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            pass
        finally:
            self._smtp.close()
