"""The worker's Prometheus metrics, in seconds, with low-cardinality labels.

One :class:`WorkerMetrics` per worker, on its own registry (tests make as many
as they like); ``/metrics`` serves it. Labels are bounded sets: input kind,
reject reason codes, poison stages, severity, partner (the configured hubs and destinations),
CHPL tier and alert kind. Never lanes, ids or HS codes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: where a poison record can be met: routing an input message, reading a goods bundle, feeding a
#: group, moving a group to the watermark, publishing an alert
POISON_STAGES = ("ingest", "bundle", "detect", "advance", "publish")
#: where a batch can fail as a whole (the broker, not a record): reading input, detecting, the
#: watermark and adoption timers. The batch is tried again; nothing is acknowledged before it passes
RETRY_STAGES = ("ingest", "detect", "watermark", "adopt")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class WorkerMetrics:
    """Everything ``transitwatch worker`` exports.

    Examples
    --------
    >>> m = WorkerMetrics()
    >>> m.consumed.labels(kind="declarations").inc(3)
    >>> m.registry.get_sample_value("transitwatch_records_consumed_total", {"kind": "declarations"})
    3.0
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.consumed = Counter(
            "transitwatch_records_consumed", "Input messages consumed, by kind (declarations, monthly)",
            ["kind"], registry=r,
        )
        self.rejected = Counter(
            "transitwatch_records_rejected", "Input messages sent to the dead-letter topic, by reason code",
            ["reason"], registry=r,
        )
        self.duplicates = Counter(
            "transitwatch_duplicates_dropped", "Declarations dropped as re-sent (same declaration_id)", registry=r,
        )
        self.redelivered = Counter(
            "transitwatch_records_redelivered", "Records read again after a restart and dropped (already applied)",
            registry=r,
        )
        self.not_watched = Counter(
            "transitwatch_records_not_watched", "Valid records outside the watch configuration, by reason",
            ["reason"], registry=r,
        )
        self.poison = Counter(
            "transitwatch_poison_records",
            "Records (or goods bundles, or alerts) whose handling raised, sent to the dead-letter topic with the "
            "error, by stage (ingest, bundle, detect, advance, publish)", ["stage"], registry=r,
        )
        self.late = Counter(
            "transitwatch_late_records", "Records for a month already closed (folded into history or not applied)",
            registry=r,
        )
        self.latency = Histogram(
            "transitwatch_processing_latency_seconds",
            "From a record's Kafka timestamp to the end of the batch that processed it",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.batch_seconds = Histogram(
            "transitwatch_batch_duration_seconds", "Time to process one batch of records",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.event_time_lag = Gauge(
            "transitwatch_event_time_lag_seconds",
            "Now minus the newest event time processed (large during a backfill)", registry=r,
        )
        self.consumer_lag = Gauge(
            "transitwatch_consumer_lag_messages",
            "Messages on the assigned input partitions not yet processed, by topic kind",
            ["kind"], registry=r,
        )
        self.series = Gauge("transitwatch_series_in_state", "Series held in this worker's state", registry=r)
        self.open_month = Gauge(
            "transitwatch_open_month_timestamp_seconds",
            "Start of the oldest month still open on this worker (Unix time)", registry=r,
        )
        self.months_closed = Counter("transitwatch_months_closed", "Months closed (all partitions)", registry=r)
        self.alerts = Counter(
            "transitwatch_alerts_published", "Alerts published to the alerts topic",
            ["severity", "partner", "chpl_tier", "kind"], registry=r,
        )
        self.partitions = Gauge(
            "transitwatch_assigned_partitions", "Partitions of the internal goods topic assigned to this worker",
            registry=r,
        )
        self.ready = Gauge("transitwatch_worker_ready", "1 when the worker has restored its state and consumes",
                           registry=r)
        self.retries = Counter(
            "transitwatch_batch_retries",
            "Batches that failed as a whole (a broker or state-store error, not a record) and are tried again",
            ["stage"], registry=r,
        )
        self.restore_seconds = Gauge(
            "transitwatch_state_restore_seconds",
            "Time the last restore of goods groups from the state table took (start, crash, rebalance)",
            registry=r,
        )
        # Label sets known in advance exist from the start, so rates and increase() see the first event.
        for kind in ("declarations", "monthly"):
            self.consumed.labels(kind=kind)
        for stage in POISON_STAGES:
            self.poison.labels(stage=stage)
        for stage in RETRY_STAGES:
            self.retries.labels(stage=stage)
        for kind in ("declarations", "monthly", "goods"):
            self.consumer_lag.labels(kind=kind)

