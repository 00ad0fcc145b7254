"""The one small interface every channel implements, and what goes through it.

A send has two halves, so that the notifier can record its intent at the point of no
return and not before (see ``Dispatcher`` in :mod:`transitwatch.streams.notify.service`):

- ``sink.prepare(notification)`` does everything that cannot deliver: build the payload,
  render the charts, wait out the webhook's spacing, open the SMTP connection, STARTTLS and
  log in. It returns a :class:`Prepared`.
- ``prepared.deliver()`` is the transmission itself (the HTTP POST; the SMTP transaction):
  it returns when the receiver has accepted the message. ``prepared.close()`` then releases
  what preparing opened, whether or not it was delivered.

Both halves raise :class:`DeliveryError` when the receiver does not take the message:
``retry_after`` says when to try again (Slack's ``Retry-After``), ``permanent`` that trying
again cannot help (a 404 webhook, a refused login or recipient). :func:`send` does both
halves for a caller that records nothing. Error messages never hold a secret: sinks build
them from the receiver's name, and :class:`Redactor` scrubs whatever a library put in an
exception.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from transitwatch.detectors.errors import TransitwatchError
from transitwatch.streams.notify.config import Receiver
from transitwatch.streams.notify.deliverylog import DeliveryRecord


class DeliveryError(TransitwatchError, RuntimeError):
    """A receiver did not accept a notification.

    Examples
    --------
    >>> e = DeliveryError("slack receiver 'desk': HTTP 429 rate limited", retry_after=3.0)
    >>> e.retry_after, e.permanent
    (3.0, False)
    """

    def __init__(self, message: str, *, retry_after: float | None = None, permanent: bool = False) -> None:
        self.retry_after = retry_after
        self.permanent = permanent
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Source:
    """Where an alert message was read: the offset to commit once it is handled."""

    topic: str
    partition: int
    offset: int


@dataclass(slots=True, eq=False)
class Item:
    """One alert on its way to one receiver.

    ``previous`` is set when the receiver already got the early version of this alert: the
    item is then an update, and threads to ``previous.message_id``.
    """

    alert: Mapping[str, Any]
    labels: Mapping[str, tuple[str, ...]]
    timestamp: float
    source: Source | None = None
    previous: DeliveryRecord | None = None

    @property
    def alert_id(self) -> str:
        return str(self.alert["alert_id"])

    @property
    def early(self) -> bool:
        return bool(self.alert.get("early"))

    @property
    def is_update(self) -> bool:
        return self.previous is not None


@dataclass(slots=True, eq=False)
class Notification:
    """One message to one receiver: a group's alerts (or a chunk of them).

    ``message_id`` is stable (the same alerts to the same receiver and group give the same
    id, also after a restart); ``thread`` lists earlier messages it follows up (the
    update's early alerts first, then the group's previous message), for email threading.
    """

    receiver: Receiver
    group_key: str
    group_labels: Mapping[str, str]
    items: list[Item]
    message_id: str
    thread: tuple[str, ...] = ()
    attempt: int = 0
    next_attempt_at: float = 0.0
    last_error: str = ""
    alert_url: str | None = None
    seq: int = field(default=0)
    #: Not to be sent: an earlier process recorded the intent to send it but no outcome, so
    #: the receiver may have it. It goes to the undelivered topic as ``unknown_outcome``.
    outcome_unknown: bool = False

    @property
    def receiver_type(self) -> str:
        return self.receiver.type


def message_id(receiver: str, group_key: str, items: Iterable[Item], domain: str) -> str:
    """A stable RFC 5322 Message-ID for these alerts to this receiver and group.

    Examples
    --------
    >>> message_id("desk", "g", [], "transitwatch.local")
    '<tw-...@transitwatch.local>'
    """
    ids = sorted(f"{i.alert_id}:{'early' if i.early else 'final'}" for i in items)
    digest = hashlib.blake2b("|".join([receiver, group_key, *ids]).encode(), digest_size=12).hexdigest()
    return f"<tw-{digest}@{domain}>"


class Prepared(Protocol):
    """A message ready to go to its receiver: nothing has left yet."""

    async def deliver(self) -> None:
        """Transmit it (the point of no return); return once the receiver accepted it."""
        ...

    async def close(self) -> None:
        """Release what preparing opened (a connection), delivered or not; never raises."""
        ...


class Sink(Protocol):
    """A channel: Slack, email, Alertmanager, or the in-memory sink of the tests."""

    name: str
    type: str

    async def prepare(self, notification: Notification) -> Prepared:
        """Everything before the transmission; raises :class:`DeliveryError` if the receiver
        cannot be reached or refuses before anything was sent (a failed attempt, retried)."""
        ...

    async def close(self) -> None: ...


async def send(sink: Sink, notification: Notification) -> None:
    """Prepare and deliver in one go, for a caller that records no intent (tests, dry runs)."""
    prepared = await sink.prepare(notification)
    try:
        await prepared.deliver()
    finally:
        await prepared.close()


async def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Transmission:
    """A :class:`Prepared` made of the transmitting coroutine function (and a closing one)."""

    deliver: Callable[[], Awaitable[None]]
    close: Callable[[], Awaitable[None]] = _nothing


class Redactor:
    """Replaces secret values (and the path of secret URLs) in text with ``<redacted>``.

    Examples
    --------
    >>> r = Redactor(["https://hooks.slack.com/services/T0/B0/XyZ", "hunter22"])
    >>> r("POST https://hooks.slack.com/services/T0/B0/XyZ failed; /services/T0/B0/XyZ; pw hunter22")
    'POST <redacted> failed; <redacted>; pw <redacted>'
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        parts: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            parts.add(secret)
            url = urlsplit(secret)
            if url.scheme and url.netloc:
                tail = url.path + (f"?{url.query}" if url.query else "")
                if len(tail) > 1:
                    parts.add(tail)
                if url.password:
                    parts.add(url.password)
        # Longest first, so a URL is replaced whole before its path is.
        self._parts = sorted((p for p in parts if len(p) >= 4), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for part in self._parts:
            text = text.replace(part, "<redacted>")
        return text


class InMemorySink:
    """Keeps what it is sent; ``failures`` scripts errors for the next transmissions to raise
    (tests, dry runs).

    Examples
    --------
    >>> import asyncio
    >>> sink = InMemorySink("desk", failures=[DeliveryError("down")])
    >>> n = Notification(receiver=None, group_key="g", group_labels={}, items=[], message_id="<m@x>")
    >>> try:
    ...     asyncio.run(send(sink, n))
    ... except DeliveryError as e:
    ...     print(e)
    down
    >>> asyncio.run(send(sink, n)); len(sink.sent), sink.attempts
    (1, 2)
    """

    def __init__(self, name: str, type: str = "slack", *, failures: Iterable[BaseException] = ()) -> None:
        self.name, self.type = name, type
        self.failures = list(failures)
        self.sent: list[Notification] = []
        self.attempts = 0

    async def prepare(self, notification: Notification) -> Prepared:
        async def deliver() -> None:
            self.attempts += 1
            if self.failures:
                raise self.failures.pop(0)
            self.sent.append(notification)

        return Transmission(deliver)

    async def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """What a receiver's HTTP endpoint answered: status, the start of the body, headers."""

    status: int
    text: str
    headers: Mapping[str, str]


class JsonPoster:
    """POSTs JSON for an HTTP sink over one aiohttp session, opened on first use.

    What the network does wrong becomes a :class:`DeliveryError` named ``where``: no answer
    within the timeout, or a client error (its text redacted). Any HTTP status is returned,
    for the sink to judge. The body comes encoded (:meth:`encode`), so that a sink builds
    and encodes it while preparing, before the intent is recorded."""

    def __init__(self, where: str, redact: Redactor) -> None:
        self.where, self._redact = where, redact
        self._session = None

    @staticmethod
    def encode(body: Any) -> bytes:
        """The JSON of ``body``; raises ``TypeError`` for what JSON cannot hold.

        >>> JsonPoster.encode({"text": "R&D · 1"})
        b'{"text":"R&D \xc2\xb7 1"}'
        """
        import orjson

        return orjson.dumps(body)

    async def post(self, url: str, body: bytes, *, timeout: float, keep: int) -> HttpAnswer:
        """The answer, its body cut to ``keep`` characters; redirects are not followed."""
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(url, data=body, headers={"Content-Type": "application/json"},
                                          timeout=aiohttp.ClientTimeout(total=timeout),
                                          allow_redirects=False) as response:
                text = (await response.text(errors="replace"))[:keep]
                return HttpAnswer(response.status, text, response.headers.copy())  # case-insensitive
        except TimeoutError:
            raise DeliveryError(f"{self.where}: no answer within {timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"{self.where}: {type(exc).__name__}: {self._redact(str(exc))}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
