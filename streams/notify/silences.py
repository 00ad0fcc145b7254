"""Silences: mute rules with matchers, a reason, an author and an expiry.

A silence mutes every alert whose labels match all its matchers while ``starts_at <= now <
ends_at``. Expiring a silence sets ``ends_at`` to now; it is kept, so ``silence list --all``
still shows who muted what and why. :class:`Silences` is the in-memory view the router reads;
``kafkastate`` keeps silences on a compacted topic so they survive restarts and so that
``transitwatch silence`` can manage them from any machine that reaches the broker.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from transitwatch.streams.notify.matchers import Matcher, NotifyConfigError, matches_all


@dataclass(frozen=True, slots=True, kw_only=True)
class Silence:
    """One mute rule.

    Examples
    --------
    >>> s = Silence.create(["partner=\\"KG\\""], author="ana", reason="known case 2022-17",
    ...                    starts_at=100.0, ends_at=200.0, now=100.0)
    >>> s.state(150.0), s.state(200.0)
    ('active', 'expired')
    >>> s.mutes({"partner": ("KG",)}, 150.0), s.mutes({"partner": ("AM",)}, 150.0)
    (True, False)
    >>> Silence.from_dict(s.to_dict()) == s
    True
    """

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    author: str
    reason: str
    updated_at: float

    @classmethod
    def create(
        cls, matchers: Sequence[str], *, author: str, reason: str, starts_at: float, ends_at: float, now: float,
        id: str | None = None,
    ) -> Silence:
        """A new silence, validated as Alertmanager validates them."""
        parsed = tuple(Matcher.parse(m, f"silence matcher {i + 1}") for i, m in enumerate(matchers))
        if not parsed:
            raise NotifyConfigError("a silence needs at least one matcher, e.g. partner=\"KG\"")
        if all(m.matches_empty() for m in parsed):
            raise NotifyConfigError(
                "a silence needs at least one matcher that does not match an empty label (it would mute everything)"
            )
        if not author.strip():
            raise NotifyConfigError("a silence needs an author (--author)")
        if not reason.strip():
            raise NotifyConfigError("a silence needs a reason (--reason)")
        if not ends_at > starts_at:
            raise NotifyConfigError("a silence must end after it starts")
        if not ends_at > now:
            raise NotifyConfigError("a silence must end in the future")
        return cls(id=id or uuid.uuid4().hex[:16], matchers=parsed, starts_at=starts_at, ends_at=ends_at,
                   author=author.strip(), reason=reason.strip(), updated_at=now)

    def state(self, now: float) -> str:
        """``pending``, ``active`` or ``expired``."""
        if now >= self.ends_at:
            return "expired"
        return "active" if now >= self.starts_at else "pending"

    def mutes(self, labels: Mapping[str, tuple[str, ...]], now: float) -> bool:
        return self.state(now) == "active" and matches_all(self.matchers, labels)

    def expired(self, now: float) -> Silence:
        """This silence ended now (unchanged if it has already ended)."""
        if now >= self.ends_at:
            return self
        return replace(self, ends_at=max(now, self.starts_at), updated_at=now)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "matchers": [str(m) for m in self.matchers], "starts_at": self.starts_at,
                "ends_at": self.ends_at, "author": self.author, "reason": self.reason, "updated_at": self.updated_at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Silence:
        return cls(
            id=str(data["id"]), matchers=tuple(Matcher.parse(m) for m in data["matchers"]),
            starts_at=float(data["starts_at"]), ends_at=float(data["ends_at"]), author=str(data["author"]),
            reason=str(data["reason"]), updated_at=float(data["updated_at"]),
        )


class Silences:
    """The current silences by id; the newest version of a silence wins.

    Examples
    --------
    >>> view = Silences()
    >>> s = Silence.create(['severity="low"'], author="a", reason="r", starts_at=0, ends_at=10, now=0)
    >>> view.apply(s)
    >>> view.muting({"severity": ("low",)}, 5).id == s.id
    True
    >>> view.apply(s.expired(6)); view.muting({"severity": ("low",)}, 7) is None
    True
    """

    def __init__(self) -> None:
        self._by_id: dict[str, Silence] = {}

    def apply(self, silence: Silence) -> None:
        current = self._by_id.get(silence.id)
        if current is None or silence.updated_at >= current.updated_at:
            self._by_id[silence.id] = silence

    def get(self, silence_id: str) -> Silence | None:
        return self._by_id.get(silence_id)

    def muting(self, labels: Mapping[str, tuple[str, ...]], now: float) -> Silence | None:
        """The first active silence that mutes these labels, if any."""
        for silence in self._by_id.values():
            if silence.mutes(labels, now):
                return silence
        return None

    def all(self) -> list[Silence]:
        return sorted(self._by_id.values(), key=lambda s: (s.starts_at, s.id))
