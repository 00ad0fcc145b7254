"""The delivery log: which alert went to which receiver, in which message, and when.

It is what makes delivery exactly-once from a user's point of view: an alert already
delivered to a receiver is never delivered to it again, and the month-end version of an
early alert is sent as an update that threads to the early one's message.

One record per alert version and receiver (its :attr:`DeliveryRecord.key`), rewritten as
the delivery goes on, so the newest record is the state (a compacted topic keeps only it):

- ``sending``: the intent, written (and awaited) once the message is prepared and *before*
  it is transmitted to the receiver;
- ``delivered``: the receiver accepted it (final: never overwritten);
- ``failed``: an attempt failed, the receiver did not take it (it may be tried again);
- ``unknown``: an intent was found without an outcome (the notifier stopped between the
  two): the receiver may or may not have it. It is not sent again; it went to the
  undelivered topic with the reason ``unknown_outcome`` for an operator to decide.

The notifier commits an alert's Kafka offset only after its outcome is recorded, so after
a crash the re-read alert is found here: skipped if delivered, tried again if failed or
never started, surfaced as an unknown outcome if only the intent is there.
:class:`DeliveryLog` is the in-memory view; ``kafkastate.KafkaDeliveryLog`` persists it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

SENDING, DELIVERED, FAILED, UNKNOWN = "sending", "delivered", "failed", "unknown"
STATES = (SENDING, DELIVERED, FAILED, UNKNOWN)


def version_key(receiver: str, alert_id: str, early: bool) -> str:
    """The key of one alert version to one receiver: delivery log and undelivered topic alike.

    Examples
    --------
    >>> version_key("desk", "tw-1", True)
    'desk|tw-1|early'
    """
    return f"{receiver}|{alert_id}|{'early' if early else 'final'}"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryRecord:
    """One alert (early or month-end version) delivered to one receiver.

    Examples
    --------
    >>> r = DeliveryRecord(receiver="desk", receiver_type="slack", alert_id="tw-1", early=True,
    ...                    severity="high", group_key="0|desk|partner=AM", message_id="<m1@x>",
    ...                    delivered_at=10.0)
    >>> r.key, DeliveryRecord.from_dict(r.to_dict()) == r
    ('desk|tw-1|early', True)
    """

    receiver: str
    receiver_type: str
    alert_id: str
    early: bool
    severity: str
    group_key: str
    message_id: str
    delivered_at: float
    via: str = "notify"
    state: str = DELIVERED

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"delivery record state {self.state!r}: expected one of {', '.join(STATES)}")

    @property
    def key(self) -> str:
        return version_key(self.receiver, self.alert_id, self.early)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeliveryRecord:
        return cls(
            receiver=str(data["receiver"]), receiver_type=str(data["receiver_type"]), alert_id=str(data["alert_id"]),
            early=bool(data["early"]), severity=str(data.get("severity", "")), group_key=str(data["group_key"]),
            message_id=str(data["message_id"]), delivered_at=float(data["delivered_at"]),
            via=str(data.get("via", "notify")), state=str(data.get("state", DELIVERED)),
        )


@dataclass(frozen=True, slots=True)
class Delivered:
    """The newest record of each version of one alert id to one receiver.

    ``undelivered`` holds the versions already on the undelivered topic.

    Examples
    --------
    >>> r = DeliveryRecord(receiver="d", receiver_type="slack", alert_id="a", early=True, severity="",
    ...                    group_key="g", message_id="<m@x>", delivered_at=1.0, state="sending")
    >>> d = Delivered(early=r)
    >>> d.covers(early=True), d.has(early=True), d.intent(early=True) is r, d.covers(early=False)
    (True, False, True, False)
    """

    early: DeliveryRecord | None = None
    final: DeliveryRecord | None = None
    undelivered: frozenset[bool] = frozenset()

    def _record(self, early: bool) -> DeliveryRecord | None:
        return self.early if early else self.final

    def _handled(self, early: bool) -> bool:
        r = self._record(early)
        return early in self.undelivered or (r is not None and r.state != FAILED)

    def covers(self, early: bool) -> bool:
        """Whether the notifier must not send this version: the receiver has it or may have it
        (an intent, an unknown outcome), it is on the undelivered topic, or it is superseded
        by the month-end version."""
        return self._handled(False) or (early and self._handled(True))

    def has(self, early: bool) -> bool:
        """Whether the receiver is known to have this version (or the month-end one)."""
        return any(r is not None and r.state == DELIVERED for r in (self.final, self.early if early else None))

    def intent(self, early: bool) -> DeliveryRecord | None:
        """The intent of this version when it has no outcome (``sending``), else None."""
        r = self._record(early)
        return r if r is not None and r.state == SENDING else None

    def delivered_early(self) -> DeliveryRecord | None:
        """The early version's record if the receiver accepted it (an update threads to it)."""
        return self.early if self.early is not None and self.early.state == DELIVERED else None


class DeliveryLog:
    """The in-memory delivery log; :meth:`record` persists (here: nowhere) then applies.

    Examples
    --------
    >>> import asyncio
    >>> log = DeliveryLog()
    >>> r = DeliveryRecord(receiver="desk", receiver_type="slack", alert_id="tw-1", early=False,
    ...                    severity="low", group_key="g", message_id="<m@x>", delivered_at=5.0)
    >>> asyncio.run(log.record([r]))
    >>> log.get("desk", "tw-1").covers(early=True), log.get("mail", "tw-1").covers(early=False)
    (True, False)
    >>> log.last_notified("desk", "g")
    (5.0, '<m@x>')
    """

    def __init__(self) -> None:
        self._by_alert: dict[tuple[str, str], Delivered] = {}
        self._groups: dict[tuple[str, str], tuple[float, str]] = {}

    def __len__(self) -> int:
        return sum((d.early is not None) + (d.final is not None) for d in self._by_alert.values())

    def apply(self, record: DeliveryRecord) -> None:
        """Add a record read back or just written: the newest state wins, except that
        ``delivered`` is final (a replayed or late record never undoes a delivery)."""
        key = (record.receiver, record.alert_id)
        current = self._by_alert.get(key, Delivered())
        old = current.early if record.early else current.final
        if old is not None and old.state == DELIVERED:
            return
        if record.early:
            current = Delivered(record, current.final, current.undelivered)
        else:
            current = Delivered(current.early, record, current.undelivered)
        self._by_alert[key] = current
        if record.state != DELIVERED:
            return
        group = (record.receiver, record.group_key)
        if record.delivered_at >= self._groups.get(group, (float("-inf"), ""))[0]:
            self._groups[group] = (record.delivered_at, record.message_id)

    def mark_undelivered(self, receiver: str, alert_id: str, early: bool) -> None:
        """This version is on the undelivered topic (read back, or just written)."""
        key = (receiver, alert_id)
        current = self._by_alert.get(key, Delivered())
        self._by_alert[key] = Delivered(current.early, current.final, current.undelivered | {early})

    def is_undelivered(self, receiver: str, alert_id: str, early: bool) -> bool:
        return early in self._by_alert.get((receiver, alert_id), Delivered()).undelivered

    def intents(self) -> list[DeliveryRecord]:
        """Every intent without an outcome (``sending``)."""
        return [r for d in self._by_alert.values() for r in (d.early, d.final) if r is not None and r.state == SENDING]

    def get(self, receiver: str, alert_id: str) -> Delivered:
        return self._by_alert.get((receiver, alert_id), Delivered())

    def last_notified(self, receiver: str, group_key: str) -> tuple[float, str] | None:
        """When this receiver last got a message for this group, and its Message-ID."""
        return self._groups.get((receiver, group_key))

    async def record(self, records: Sequence[DeliveryRecord]) -> None:
        """Persist the records, then apply them; raises if they could not be persisted."""
        for r in records:
            self.apply(r)
