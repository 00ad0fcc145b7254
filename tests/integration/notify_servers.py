"""Stand-ins for the notifier's receivers, on loopback, each in its own thread.

- :class:`SlackStandIn`: an HTTP server with Slack incoming-webhook semantics: ``200 ok`` for a
  valid payload on the webhook path, ``400 invalid_payload`` without ``text``/``blocks``,
  ``404 no_service`` on another path, ``429`` with ``Retry-After`` when posts come faster than
  ``min_gap`` seconds apart, and scripted ``5xx``, ``429`` or timeouts. A message counts as
  posted only when it is answered ``200``. ``latency`` delays every ``200`` after the post is
  taken, as a real receiver answers after it has accepted.
- :class:`SmtpServer`: a real aiosmtpd server requiring STARTTLS and AUTH (certificates from
  trustme), that can go down and come back on the same port; ``latency`` delays the ``250``
  after a message is taken.
"""

from __future__ import annotations

import asyncio
import collections
import email
import email.policy
import json
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class SlackStandIn:
    """A Slack incoming webhook on ``127.0.0.1``; ``posts`` holds accepted payloads."""

    TOKEN = "T0TEST/B0TEST/s3cr3tW3bh00kT0k3n"

    def __init__(self, *, min_gap: float = 0.0, latency: float = 0.0) -> None:
        self.port = free_port()
        self.min_gap = min_gap
        self.latency = latency
        self.posts: list[dict[str, Any]] = []
        self.answers: collections.Counter[int] = collections.Counter()
        self.script: collections.deque[tuple[str, float]] = collections.deque()
        self.mode: tuple[str, float] = ("ok", 0.0)
        self.held = 0
        self.release = threading.Event()
        self._last_ok = 0.0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/{self.TOKEN}"

    def then(self, *behaviours: tuple[str, float]) -> None:
        """Queue behaviours for the next requests: ("ok", 0), ("status", 503), ("retry_after", 2),
        ("timeout", seconds), ("hold", 0) (wait for :attr:`release`, then 503, never posted)."""
        with self._lock:
            self.script.extend(behaviours)

    def set_mode(self, behaviour: tuple[str, float]) -> None:
        with self._lock:
            self.mode = behaviour

    def alert_ids(self) -> list[str]:
        """Every alert id in the accepted posts, in order, repeats included."""
        out = []
        for payload in self.posts:
            for block in payload["blocks"]:
                for element in block.get("elements", []):
                    text = element.get("text", "")
                    if isinstance(text, str) and text.startswith("alert `"):
                        out.append(text.split("`")[1])
        return out

    async def _handle(self, request):
        from aiohttp import web

        if request.path != f"/services/{self.TOKEN}":
            return self._answer(web.Response(status=404, text="no_service"))
        try:
            payload = json.loads(await request.read())
        except ValueError:
            return self._answer(web.Response(status=400, text="invalid_payload"))
        if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks")):
            return self._answer(web.Response(status=400, text="invalid_payload"))
        with self._lock:
            behaviour = self.script.popleft() if self.script else self.mode
        kind, value = behaviour
        if kind == "status":
            return self._answer(web.Response(status=int(value), text="internal_error"))
        if kind == "retry_after":
            return self._answer(web.Response(status=429, text="rate_limited", headers={"Retry-After": str(int(value))}))
        if kind == "timeout":
            await asyncio.sleep(value)
            return self._answer(web.Response(status=504, text="timeout"))
        if kind == "hold":
            with self._lock:
                self.held += 1
            while not self.release.is_set():
                await asyncio.sleep(0.05)
            return self._answer(web.Response(status=503, text="service_unavailable"))
        with self._lock:
            now = time.monotonic()
            if self.min_gap and now - self._last_ok < self.min_gap:
                return self._answer(web.Response(status=429, text="rate_limited", headers={"Retry-After": "1"}))
            self._last_ok = now
            self.posts.append(payload)
        if self.latency:
            await asyncio.sleep(self.latency)
        return self._answer(web.Response(status=200, text="ok"))

    def _answer(self, response):
        self.answers[response.status] += 1
        return response

    def start(self) -> SlackStandIn:
        from aiohttp import web

        async def up():
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        self._thread.start()
        asyncio.run_coroutine_threadsafe(up(), self._loop).result(10)
        return self

    def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class SmtpServer:
    """aiosmtpd requiring STARTTLS and AUTH; ``messages`` holds parsed emails."""

    def __init__(self, workdir: Path, *, username: str = "transitwatch", password: str = "smtp-S3cret!",
                 latency: float = 0.0) -> None:
        import trustme

        self.port = free_port()
        self.latency = latency
        self.username, self.password = username, password
        self.messages: list[tuple[str, list[str], email.message.EmailMessage]] = []
        self.logins: list[tuple[str, bool]] = []
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = Path(workdir) / "smtp-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self._tls)
        self._controller = None

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.username
              and auth_data.password.decode() == self.password)
        self.logins.append((auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?",
                            session.ssl is not None))
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        if self.latency:
            await asyncio.sleep(self.latency)
        return "250 Message accepted for delivery"

    def up(self) -> SmtpServer:
        from aiosmtpd.controller import Controller

        self._controller = Controller(
            self, hostname="127.0.0.1", port=self.port, tls_context=self._tls, require_starttls=True,
            auth_required=True, auth_require_tls=True, authenticator=self._authenticate,
        )
        self._controller.start()
        return self

    def down(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
