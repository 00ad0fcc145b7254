"""The delivery log: which alert went to which receiver, in which message, and when.

It is what makes delivery exactly-once from a user's point of view: an alert already
delivered to a receiver is never delivered to it again, and the month-end version of an
early alert is sent as an update that threads to the early one's message. The notifier
writes a record *before* it commits the alert's Kafka offset, so after a crash the
re-read alert is found here and skipped. :class:`DeliveryLog` is the in-memory view;
``kafkastate.KafkaDeliveryLog`` persists it on a compacted topic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


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

    @property
    def key(self) -> str:
        return f"{self.receiver}|{self.alert_id}|{'early' if self.early else 'final'}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeliveryRecord:
        return cls(
            receiver=str(data["receiver"]), receiver_type=str(data["receiver_type"]), alert_id=str(data["alert_id"]),
            early=bool(data["early"]), severity=str(data.get("severity", "")), group_key=str(data["group_key"]),
            message_id=str(data["message_id"]), delivered_at=float(data["delivered_at"]),
            via=str(data.get("via", "notify")),
        )


@dataclass(frozen=True, slots=True)
class Delivered:
    """What a receiver already got of one alert id."""

    early: DeliveryRecord | None = None
    final: DeliveryRecord | None = None

    def covers(self, early: bool) -> bool:
        """Whether this version of the alert would add nothing: already sent, or superseded."""
        return self.final is not None or (early and self.early is not None)


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
        """Add a record read back or just written (idempotent)."""
        key = (record.receiver, record.alert_id)
        current = self._by_alert.get(key, Delivered())
        if record.early:
            if current.early is None:
                current = Delivered(record, current.final)
        elif current.final is None:
            current = Delivered(current.early, record)
        self._by_alert[key] = current
        group = (record.receiver, record.group_key)
        if record.delivered_at >= self._groups.get(group, (float("-inf"), ""))[0]:
            self._groups[group] = (record.delivered_at, record.message_id)

    def get(self, receiver: str, alert_id: str) -> Delivered:
        return self._by_alert.get((receiver, alert_id), Delivered())

    def last_notified(self, receiver: str, group_key: str) -> tuple[float, str] | None:
        """When this receiver last got a message for this group, and its Message-ID."""
        return self._groups.get((receiver, group_key))

    async def record(self, records: Sequence[DeliveryRecord]) -> None:
        """Persist the records, then apply them; raises if they could not be persisted."""
        for r in records:
            self.apply(r)
