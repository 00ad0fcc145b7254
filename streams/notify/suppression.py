"""The analysts' feedback in the notifier: no message for a lane they dismissed.

The desk writes each verdict to the feedback topic (``transitwatch.streams.feedback_topic``); the
notifier follows that topic (:class:`LaneFeedback`: the latest verdict per lane) and the alerts
it reads (:class:`LaneHistory`: per lane, a bounded history of months with their severity and
case event). Before an alert record is routed, :class:`Suppression` asks the one rule the desk
asks, :func:`transitwatch.streams.feedback.record_suppressed`: a dismissal holds
``suppress_months`` months after the month the analyst saw, unless the lane's evidence escalated
since (a higher severity, or an ``escalated`` or ``reopened`` record). A suppressed record goes
to no receiver (like a silence), is counted in ``transitwatch_notify_suppressed_total`` and
logged once per case. Feedback given after a record was sent changes only later records.

Nothing here does I/O: the service feeds the topics' messages in (``kafkastate.TopicTail``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson

from transitwatch.streams.feedback import SEVERITY_RANK, Feedback, FeedbackError, record_suppressed
from transitwatch.streams.notify.metrics import NotifyMetrics

log = logging.getLogger("transitwatch.notify")

#: Months of history kept per lane (at least ``suppress_months + 1``, see :class:`Suppression`).
HISTORY_MONTHS = 24
#: Lanes kept; past this, the lane updated longest ago is forgotten (a bound on memory).
MAX_LANES = 100_000
_ESCALATING = ("escalated", "reopened")


class LaneHistory:
    """Per lane (``series_id``), its last ``months`` months: the highest severity seen and
    whether any record of the month escalated or reopened its case.

    Observing the same record twice changes nothing (the notifier reads a record both from the
    alerts topic's history and from its consumer group).

    Examples
    --------
    >>> h = LaneHistory(months=2)
    >>> for period, severity, event in [("2022-01", "low", "opened"), ("2022-02", "high", "escalated"),
    ...                                 ("2022-02", "medium", "updated"), ("2022-03", "high", "updated")]:
    ...     h.observe({"series_id": "lane", "period": period, "severity": severity, "case_event": event})
    >>> [(r["period"], r["severity"], r["case_event"]) for r in h.records("lane")]
    [('2022-02', 'high', 'escalated'), ('2022-03', 'high', 'updated')]
    """

    def __init__(self, *, months: int = HISTORY_MONTHS, max_lanes: int = MAX_LANES) -> None:
        self.months, self.max_lanes = months, max_lanes
        self._lanes: OrderedDict[str, dict[str, tuple[int, str]]] = OrderedDict()

    def observe(self, alert: Mapping[str, Any]) -> None:
        lane, period = alert.get("series_id"), alert.get("period")
        if not isinstance(lane, str) or not isinstance(period, str):
            return  # not a lane's record: nothing to remember (intake has checked what is routed)
        rank = SEVERITY_RANK.get(str(alert.get("severity")), -1)
        event = str(alert.get("case_event") or "")
        months = self._lanes.get(lane)
        if months is None:
            months = self._lanes[lane] = {}
            if len(self._lanes) > self.max_lanes:
                self._lanes.popitem(last=False)
        else:
            self._lanes.move_to_end(lane)
        old = months.get(period)
        if old is not None:
            rank = max(rank, old[0])
            event = old[1] if old[1] in _ESCALATING or event not in _ESCALATING else event
        months[period] = (rank, event)
        if len(months) > self.months:
            for gone in sorted(months)[: len(months) - self.months]:
                del months[gone]

    def records(self, lane: str) -> list[dict[str, str]]:
        """The lane's months, oldest first, shaped like alert records for the suppression rule."""
        names = {rank: name for name, rank in SEVERITY_RANK.items()}
        return [{"period": period, "severity": names.get(rank, ""), "case_event": event}
                for period, (rank, event) in sorted(self._lanes.get(lane, {}).items())]

    def __len__(self) -> int:
        return len(self._lanes)


class LaneFeedback:
    """The latest verdict per lane, from the feedback topic's messages (``apply``); the latest
    is the one given last (``created_at``), as on the desk. A message that is not feedback is
    logged and counted in ``transitwatch_notify_feedback_invalid_total``, never raised.

    Examples
    --------
    >>> view = LaneFeedback(NotifyMetrics())
    >>> view.apply(b'{"case_id": "twc-1", "series_id": "lane", "verdict": "dismissed", "reason": "", '
    ...            b'"analyst": "ana", "period": "2022-05", "severity": "low", "created_at": "2026-01-01T00:00:00+00:00"}')
    >>> view.apply(b'{"verdict": "maybe"}', where="feedback[0]@1")
    >>> view.get("lane").verdict, view.invalid
    ('dismissed', 1)
    """

    def __init__(self, metrics: NotifyMetrics) -> None:
        self.metrics = metrics
        self.invalid = 0
        self._latest: dict[str, Feedback] = {}

    def apply(self, value: bytes | None, *, where: str = "the feedback topic") -> None:
        if value is None:
            return  # a tombstone: the desk never writes one, and it takes no verdict back
        try:
            data = orjson.loads(value)
            if not isinstance(data, dict):
                raise FeedbackError(f"a JSON {type(data).__name__}, not an object")
            item = Feedback(**data)
        except (orjson.JSONDecodeError, TypeError, FeedbackError) as exc:
            self.invalid += 1
            self.metrics.feedback_invalid.inc()
            log.error("%s: not feedback, ignored (%s)", where, str(exc)[:300])
            return
        current = self._latest.get(item.series_id)
        if current is None or item.created_at >= current.created_at:
            self._latest[item.series_id] = item
            if current is not None:
                self.metrics.feedback_lanes.labels(verdict=current.verdict).dec()
            self.metrics.feedback_lanes.labels(verdict=item.verdict).inc()

    def get(self, lane: str) -> Feedback | None:
        return self._latest.get(lane)

    def __len__(self) -> int:
        return len(self._latest)


class Suppression:
    """Decides whether the analysts' feedback suppresses an alert record; see the module docstring.

    Examples
    --------
    >>> m = NotifyMetrics()
    >>> s = Suppression(LaneFeedback(m), LaneHistory(), suppress_months=6, metrics=m)
    >>> s.feedback.apply(b'{"case_id": "twc-1", "series_id": "lane", "verdict": "dismissed", "reason": "", '
    ...                  b'"analyst": "ana", "period": "2022-05", "severity": "medium", '
    ...                  b'"created_at": "2026-01-01T00:00:00+00:00"}')
    >>> record = {"alert_id": "tw-2", "case_id": "twc-1", "series_id": "lane", "period": "2022-06",
    ...           "severity": "medium", "case_event": "updated", "early": False}
    >>> s.observe(record); s.suppresses(record)
    True
    >>> later = dict(record, alert_id="tw-3", period="2022-07", severity="high", case_event="escalated")
    >>> s.observe(later); s.suppresses(later)
    False
    >>> m.registry.get_sample_value("transitwatch_notify_suppressed_total", {"verdict": "dismissed"})
    1.0
    """

    def __init__(self, feedback: LaneFeedback, history: LaneHistory, *, suppress_months: int,
                 metrics: NotifyMetrics) -> None:
        if history.months <= suppress_months:
            raise ValueError(f"the lane history ({history.months} months) must be longer than suppress_months "
                             f"({suppress_months}) to see every escalation within it")
        self.feedback, self.history = feedback, history
        self.suppress_months, self.metrics = suppress_months, metrics
        self._counted: set[tuple[str, bool]] = set()
        self._logged: set[str] = set()

    def observe(self, alert: Mapping[str, Any]) -> None:
        self.history.observe(alert)

    def suppresses(self, alert: Mapping[str, Any]) -> bool:
        """True if the lane's latest feedback suppresses ``alert`` (counted once per alert version,
        logged once per case)."""
        lane = alert.get("series_id")
        found = self.feedback.get(lane) if isinstance(lane, str) else None
        if found is None:
            return False
        case_id = str(alert.get("case_id") or alert.get("alert_id"))
        if not record_suppressed(found, case_id=case_id, period=str(alert.get("period")),
                                 lane=self.history.records(found.series_id), suppress_months=self.suppress_months):
            return False
        version = (str(alert.get("alert_id")), bool(alert.get("early")))
        if version not in self._counted:
            if len(self._counted) >= 100_000:  # a bound on memory; at worst an alert is counted twice
                self._counted.clear()
            self._counted.add(version)
            self.metrics.suppressed.labels(verdict=found.verdict).inc()
        if case_id not in self._logged:
            if len(self._logged) >= 100_000:
                self._logged.clear()
            self._logged.add(case_id)
            log.info("case %s (%s, %s): not notified; the lane was dismissed by %r for %r (case %s, seen %s); "
                     "suppressed up to %d months unless it escalates", case_id, lane, alert.get("period"),
                     found.analyst, found.reason[:200] or "no reason given", found.case_id, found.period,
                     self.suppress_months)
        return True
