"""Analysts' feedback on cases: what was decided, by whom, why; and the one suppression rule.

A :class:`Feedback` says of a case: ``confirmed`` (re-export, escalate), ``dismissed`` (checked,
legitimate) or ``known`` (already known to the analysts). A :class:`FeedbackStore` keeps them in
the order given; :class:`SqliteFeedbackStore` is the store of replays (a local file).
:func:`is_suppressed` is the one rule that says whether a lane's dismissal still holds: the desk
hides suppressed cases, and the notifier can use the same function.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from transitwatch.detectors.errors import TransitwatchError

VERDICTS: tuple[str, ...] = ("confirmed", "dismissed", "known")
SEVERITY_RANK: Mapping[str, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}
ESCALATING_EVENTS: frozenset[str] = frozenset({"escalated", "reopened"})
MAX_TEXT = 2000


class FeedbackError(TransitwatchError, ValueError):
    """Feedback that cannot be stored: an unknown verdict, no analyst, text too long."""


class FeedbackStoreError(TransitwatchError, OSError):
    """The feedback store cannot be opened, read or written (a path, permissions, a damaged file)."""


@dataclass(frozen=True, kw_only=True)
class Feedback:
    """One analyst's verdict on a case, with what the case showed when it was given.

    ``period`` and ``severity`` are the case's latest month and severity as the analyst saw
    them: the suppression rule measures time and escalation from them.

    Examples
    --------
    >>> f = Feedback(case_id="twc-1", series_id="DE>KG export 854231", verdict="dismissed",
    ...              reason="known distributor", analyst="ana", period="2022-05", severity="medium",
    ...              created_at="2026-01-02T03:04:05+00:00")
    >>> f.verdict
    'dismissed'
    >>> Feedback(case_id="twc-1", series_id="x", verdict="maybe", reason="", analyst="ana",
    ...          period="2022-05", severity="low", created_at="2026-01-02T03:04:05+00:00")
    Traceback (most recent call last):
    ...
    transitwatch.streams.feedback.FeedbackError: verdict 'maybe' is not one of confirmed, dismissed, known
    """

    case_id: str
    series_id: str
    verdict: str
    reason: str
    analyst: str
    period: str
    severity: str
    created_at: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise FeedbackError(f"verdict {self.verdict!r} is not one of {', '.join(VERDICTS)}")
        if not self.analyst.strip():
            raise FeedbackError("the analyst's name is empty: say who gives the feedback")
        if not self.case_id or not self.series_id:
            raise FeedbackError("feedback needs the case id and its lane")
        for name in ("reason", "analyst"):
            if len(getattr(self, name)) > MAX_TEXT:
                raise FeedbackError(f"{name} is longer than {MAX_TEXT} characters")
        if self.severity not in SEVERITY_RANK:
            raise FeedbackError(f"severity {self.severity!r} is not one of {', '.join(SEVERITY_RANK)}")
        _month_index(self.period)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _month_index(period: str) -> int:
    try:
        year, month = period.split("-")
        y, m = int(year), int(month)
    except ValueError:
        raise FeedbackError(f"period {period!r} is not YYYY-MM") from None
    if not 1 <= m <= 12:
        raise FeedbackError(f"period {period!r} is not YYYY-MM")
    return y * 12 + m - 1


def is_suppressed(feedback: Feedback | None, period: str, since: Iterable[Mapping[str, Any]], *,
                  suppress_months: int) -> bool:
    """Whether the lane's record of ``period`` is suppressed by the lane's latest ``feedback``.

    A dismissal suppresses its lane (every case of it) for ``suppress_months`` months after the
    month the analyst saw (``feedback.period``), unless the evidence escalated since: ``since``
    holds the lane's records after ``feedback.period`` up to ``period``, and one with a severity
    above the one dismissed, or a ``case_event`` of ``escalated`` or ``reopened``, lifts the
    suppression. Confirmed or known cases are never suppressed; neither is anything when the
    lane's latest feedback is not a dismissal.

    Examples
    --------
    >>> f = Feedback(case_id="twc-1", series_id="lane", verdict="dismissed", reason="", analyst="a",
    ...              period="2022-05", severity="medium", created_at="2026-01-01T00:00:00+00:00")
    >>> is_suppressed(f, "2022-08", [{"period": "2022-06", "severity": "low", "case_event": "updated"}],
    ...               suppress_months=6)
    True
    >>> is_suppressed(f, "2022-12", [], suppress_months=6)
    False
    >>> is_suppressed(f, "2022-08", [{"period": "2022-07", "severity": "high", "case_event": "updated"}],
    ...               suppress_months=6)
    False
    """
    if suppress_months < 0:
        raise FeedbackError(f"suppress_months must be >= 0, not {suppress_months}")
    if feedback is None or feedback.verdict != "dismissed":
        return False
    seen = _month_index(feedback.period)
    if _month_index(period) > seen + suppress_months:
        return False
    dismissed = SEVERITY_RANK[feedback.severity]
    for record in since:
        if _month_index(str(record["period"])) <= seen:
            continue
        if record.get("case_event") in ESCALATING_EVENTS:
            return False
        if SEVERITY_RANK.get(str(record.get("severity")), -1) > dismissed:
            return False
    return True


def record_suppressed(feedback: Feedback | None, *, case_id: str, period: str,
                      lane: Iterable[Mapping[str, Any]], suppress_months: int) -> bool:
    """Whether a record (of case ``case_id``, month ``period``) is suppressed by its lane's latest
    ``feedback``, given the lane's records ``lane`` (any months; those after the feedback's month
    up to ``period`` count as evidence). The desk's list and the notifier both ask this.

    A record of an older month than the one dismissed, of another case, is the lane's history,
    not what the dismissal was about: never suppressed.

    Examples
    --------
    >>> f = Feedback(case_id="twc-1", series_id="lane", verdict="dismissed", reason="", analyst="a",
    ...              period="2022-05", severity="medium", created_at="2026-01-01T00:00:00+00:00")
    >>> lane = [{"period": "2022-06", "severity": "medium", "case_event": "updated"},
    ...         {"period": "2022-07", "severity": "high", "case_event": "escalated"}]
    >>> record_suppressed(f, case_id="twc-1", period="2022-06", lane=lane, suppress_months=6)
    True
    >>> record_suppressed(f, case_id="twc-1", period="2022-07", lane=lane, suppress_months=6)
    False
    >>> record_suppressed(f, case_id="twc-0", period="2022-03", lane=[], suppress_months=6)
    False
    """
    if feedback is None:
        return False
    if period < feedback.period and case_id != feedback.case_id:
        return False
    since = [r for r in lane if feedback.period < str(r["period"]) <= period]
    return is_suppressed(feedback, period, since, suppress_months=suppress_months)


def latest(items: Iterable[Feedback], key: str) -> dict[str, Feedback]:
    """The latest feedback per ``key`` (``case_id`` or ``series_id``), in the order given."""
    out: dict[str, Feedback] = {}
    for item in items:
        out[getattr(item, key)] = item
    return out


def to_jsonl(items: Iterable[Feedback]) -> bytes:
    """Feedback as JSON Lines, one object a line, in the order given."""
    return b"".join(orjson.dumps(item.to_dict()) + b"\n" for item in items)


class FeedbackStore(Protocol):
    """Where feedback is kept: ``add`` is durable when it returns; ``all`` is in the order added."""

    def add(self, feedback: Feedback) -> None: ...

    def all(self) -> list[Feedback]: ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id TEXT NOT NULL,
    series_id TEXT NOT NULL,
    verdict TEXT NOT NULL,
    reason TEXT NOT NULL,
    analyst TEXT NOT NULL,
    period TEXT NOT NULL,
    severity TEXT NOT NULL,
    created_at TEXT NOT NULL
)
"""
_FIELDS: Sequence[str] = ("case_id", "series_id", "verdict", "reason", "analyst", "period", "severity", "created_at")


class SqliteFeedbackStore:
    """Feedback in a local SQLite file, committed on every ``add`` (survives a restart)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute(_SCHEMA)
            self._db.commit()
        except sqlite3.Error as exc:
            raise FeedbackStoreError(f"cannot open the feedback file {self.path}: {exc}") from exc

    def add(self, feedback: Feedback) -> None:
        values = tuple(getattr(feedback, name) for name in _FIELDS)
        try:
            with self._db:
                self._db.execute(f"INSERT INTO feedback ({', '.join(_FIELDS)}) VALUES ({', '.join('?' * len(_FIELDS))})",
                                 values)
        except sqlite3.Error as exc:
            raise FeedbackStoreError(f"cannot write the feedback file {self.path}: {exc}") from exc

    def all(self) -> list[Feedback]:
        try:
            rows = self._db.execute(f"SELECT {', '.join(_FIELDS)} FROM feedback ORDER BY seq").fetchall()
        except sqlite3.Error as exc:
            raise FeedbackStoreError(f"cannot read the feedback file {self.path}: {exc}") from exc
        return [Feedback(**dict(zip(_FIELDS, row, strict=True))) for row in rows]

    def close(self) -> None:
        self._db.close()
