"""``transitwatch produce``: publish input files to the service's Kafka topics.

Lines are published as they are (JSON; CSV rows as JSON objects of their
cells): validation is the worker's job, as it is replay's, so a bad line
reaches the worker and its dead-letter topic with the worker's reason. A line
that cannot even be a JSON message (a CSV row with the wrong number of cells or
an unclosed quote; a line longer than ``[input] max_line_bytes``, of which only
the first bytes are read and sent; JSON nested deeper than ``max_depth``) goes straight to the dead-letter topic with
its reason, source and line in headers. Nothing is dropped.

Declarations go to the declarations topic, monthly statistics to the monthly
topic; both are keyed by their goods group (the HS6 code) where the line names
one, so a group's records share a partition and reach the worker in the order
they were published (the order the worker's month clock needs; see
``docs/architecture.md``).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

import orjson

from transitwatch.detectors.limits import InputLimits
from transitwatch.streams.files import check_inputs, iter_messages
from transitwatch.streams.settings import Settings

#: The largest line sent as it is: under Kafka's default ``message.max.bytes`` (1 MiB) with room
#: for the key and headers. A longer one goes to the dead-letter topic (its first bytes) as
#: ``line_too_long``, whatever ``[input] max_line_bytes`` allows.
MAX_MESSAGE_BYTES = 1_000_000


@dataclass
class RateLimiter:
    """Spaces sends to ``rate`` a second on an absolute schedule; the clock and sleep are injected.

    Send ``i`` is due ``i / rate`` seconds after the first. A sleep that oversleeps
    (``asyncio.sleep`` always does, by up to a millisecond or more) is made up by the
    sends that follow, which go without waiting until the schedule is met again, so
    the rate asked for is the rate delivered. After a long stall (a slow broker), at
    most ``burst`` sends go back to back (default: a tenth of a second's worth); the
    rest of the backlog is forgiven rather than sent as one flood.

    Examples
    --------
    Every sleep here oversleeps by 0.1 s; each send is late by that much, never by the
    sum of them:

    >>> now, sent = [0.0], []
    >>> def sleep(s):
    ...     now[0] += s + 0.1
    >>> limit = RateLimiter(2.0, clock=lambda: now[0], sleep=sleep)
    >>> for _ in range(5):
    ...     limit.wait_sync(); sent.append(round(now[0], 2))
    >>> sent
    [0.0, 0.6, 1.1, 1.6, 2.1]
    """

    rate: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], object] = time.sleep
    burst: float | None = None
    _next: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate {self.rate!r} must be a finite number > 0")
        if self.burst is None:
            self.burst = max(1.0, self.rate / 10)
        elif not self.burst >= 1:
            raise ValueError(f"burst {self.burst!r} must be >= 1")

    def delay(self) -> float:
        """Seconds to wait before the next send (and book that send); <= 0 means send now."""
        now = self.clock()
        step = 1.0 / self.rate
        if self._next is None:
            self._next = now
        else:
            # behind by more than a burst: catch up a burst's worth, forgive the rest
            self._next = max(self._next, now - (self.burst - 1) * step)
        wait = self._next - now
        self._next += step
        return wait

    def wait_sync(self) -> None:
        wait = self.delay()
        if wait > 0:
            self.sleep(wait)


def route(message: bytes, settings: Settings) -> tuple[str, bytes | None]:
    """The topic and key of one message, read cheaply (no validation).

    Examples
    --------
    >>> s = Settings()
    >>> route(b'{"period": "2024-01", "reporter": "de", "partner": "KZ", "hs_code": "8542.31.10"}', s)
    ('trade.monthly', b'854231')
    >>> route(b'not json', s)
    ('customs.declarations', None)
    """
    try:
        obj = orjson.loads(message)
    except orjson.JSONDecodeError:
        return settings.declarations_topic, None
    if not isinstance(obj, dict):
        return settings.declarations_topic, None
    topic = settings.monthly_topic if "period" in obj and "declaration_id" not in obj else settings.declarations_topic
    hs = obj.get("hs_code")
    if isinstance(hs, int) and not isinstance(hs, bool):
        hs = str(hs)
    if not isinstance(hs, str):
        return topic, None
    return topic, hs.replace(".", "").replace(" ", "")[:6].encode()


@dataclass
class ProduceResult:
    """How many messages went to each topic."""

    sent: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.sent.values())


async def produce(
    paths: Sequence[str | os.PathLike[str]],
    settings: Settings,
    *,
    rate: float | None = None,
    progress: Callable[[int], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    limits: InputLimits = InputLimits(),
) -> ProduceResult:
    """Publish every line of ``paths``; returns the counts per topic.

    Raises :class:`~transitwatch.streams.files.InputFileError` (an ``OSError``) before connecting
    when an input cannot be read."""
    from aiokafka import AIOKafkaProducer

    check_inputs(paths)
    if limits.max_line_bytes > MAX_MESSAGE_BYTES:  # the broker would refuse them: dead letters instead
        limits = replace(limits, max_line_bytes=MAX_MESSAGE_BYTES)
    result = ProduceResult()
    limiter = RateLimiter(rate) if rate else None
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=10)
    await producer.start()
    try:
        pending = []
        for path in paths:
            source = os.fspath(path).encode()
            for number, message, error in iter_messages(path, limits):
                if limiter is not None:
                    wait = limiter.delay()
                    if wait > 0:
                        await sleep(wait)
                if error is not None:
                    topic, key = settings.dead_letter_topic, None
                    headers = [("reason", error.key.encode()), ("message", error.message.encode()),
                               ("source", source), ("line", str(number).encode())]
                else:
                    topic, key = route(message, settings)
                    headers = [("source", source), ("line", str(number).encode())]
                pending.append(await producer.send(topic, message, key=key, headers=headers))
                result.sent[topic] += 1
                if progress is not None:
                    progress(1)
                if len(pending) >= 10_000:
                    await asyncio.gather(*pending)
                    pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return result
