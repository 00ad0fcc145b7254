"""The notifier's Prometheus metrics, in seconds, on a registry passed in.

Every counter with ``receiver_type`` counts alerts to a receiver (one alert in one message
to one receiver), not messages, so ratios such as failed / (delivered + failed) compare
like with like. Labels are bounded: the receiver type (slack, email, alertmanager) and the
outcome. Never alert ids, lanes, receiver names or URLs.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from transitwatch.streams.notify.config import RECEIVER_TYPES
from transitwatch.streams.notify.intake import REJECT_REASONS

#: From the alert's Kafka timestamp to delivered: group_wait (30 s by default) dominates.
LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 4 * 3600.0)


class NotifyMetrics:
    """Everything ``transitwatch notify`` exports.

    Examples
    --------
    >>> m = NotifyMetrics()
    >>> m.deliveries.labels(receiver_type="slack", outcome="delivered").inc(2)
    >>> m.registry.get_sample_value("transitwatch_notify_deliveries_total",
    ...                             {"receiver_type": "slack", "outcome": "delivered"})
    2.0
    >>> m.registry.get_sample_value("transitwatch_notify_undelivered_total", {"receiver_type": "email"})
    0.0
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.deliveries = Counter(
            "transitwatch_notify_deliveries",
            "Alerts delivered to a receiver, and alerts in an attempt that failed, by receiver type and outcome",
            ["receiver_type", "outcome"], registry=r,
        )
        self.retries = Counter(
            "transitwatch_notify_retries", "Alerts scheduled for another delivery attempt", ["receiver_type"],
            registry=r,
        )
        self.latency = Histogram(
            "transitwatch_notify_delivery_latency_seconds",
            "Seconds from the alert message's Kafka timestamp to its delivery", ["receiver_type"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.silenced = Counter("transitwatch_notify_silenced", "Alerts muted by a silence (counted, not sent)",
                                registry=r)
        self.undelivered = Counter(
            "transitwatch_notify_undelivered",
            "Alerts sent to the undelivered topic after their last attempt failed", ["receiver_type"], registry=r,
        )
        self.unknown_outcomes = Counter(
            "transitwatch_notify_unknown_outcomes",
            "Alerts whose send was recorded as intended but never as done (the notifier stopped in between): "
            "not sent again, put on the undelivered topic for an operator", ["receiver_type"], registry=r,
        )
        self.consumed = Counter("transitwatch_notify_alerts_consumed", "Alert messages read from the alerts topic",
                                registry=r)
        self.invalid = Counter(
            "transitwatch_notify_invalid_alerts",
            "Alert messages skipped as not alerts (sent to the dead-letter topic), by reason", ["reason"], registry=r,
        )
        self.case_updates = Counter(
            "transitwatch_notify_case_updates",
            "Case updates read and not notified (a case notifies when it opens or escalates), by event", ["event"],
            registry=r,
        )
        self.pending_groups = Gauge("transitwatch_notify_pending_groups",
                                    "Groups holding alerts that wait to be sent", registry=r)
        for kind in RECEIVER_TYPES:
            for outcome in ("delivered", "failed"):
                self.deliveries.labels(receiver_type=kind, outcome=outcome)
            self.retries.labels(receiver_type=kind)
            self.undelivered.labels(receiver_type=kind)
            self.unknown_outcomes.labels(receiver_type=kind)
            self.latency.labels(receiver_type=kind)
        for event in ("updated", "closed"):
            self.case_updates.labels(event=event)
        for reason in REJECT_REASONS:
            self.invalid.labels(reason=reason)
