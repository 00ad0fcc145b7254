"""Cases: one lane's episode, from the month its evidence passes the bar until it is over.

An analyst works lane by lane. A *case* opens on a lane the month a detector
alerts on it (or an early, in-month check does), and from then on every closed
month of the lane updates the same case (same ``case_id``) until it closes:

- its **pre-case level** is frozen at the onset: the lane's usual month before the
  case (the surge detector's level, or the near-empty baseline of a new lane), and
  the upper edge of its normal band. Nothing is relearned while the case is open:
  months above that level stay out of the lane's baseline, and the policy's
  ``relearn_after`` does not apply to a lane with an open case;
- a month keeps the case *hot* when a detector alerts, or when the lane is
  materially above the frozen level: at least ``min_excess`` above it and at
  least ``stay_ratio`` times it or above the band. A lane still at 3x its
  pre-case level is therefore never left without an update. On a lane with a
  learned season the level and band are the month's: times the surge test's
  seasonal factor of that calendar month (``season``), so a quarter-four peak that
  comes every year does not keep a case open that the quiet months opened;
- it **closes** after ``close_after`` months in a row that are not hot (the lane
  back within its normal band), and says so;
- a lane whose new level lasts may be **accepted as its new normal**, but only by
  the explicit rule ``accept_after`` (months open; 0, the default, never): the
  case then closes saying "new level accepted after N months" and the lane's
  history restarts from its recent months;
- it **escalates** when its severity rises above the last one notified, or when
  a month's excess over the pre-case level reaches ``escalate_excess`` times the
  excess last notified. A notifier sends a case's ``opened`` and ``escalated``
  updates, not its monthly ``updated`` ones.

Everything here is pure and per lane; :class:`~transitwatch.detectors.engine.Engine` calls
:func:`open_case` and :meth:`Case.advance` once per closed month, so replay,
the batch path and the service share it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from transitwatch.detectors.errors import StateError
from transitwatch.detectors.params import check_positive, check_range

CaseEvent = Literal["opened", "escalated", "updated", "closed", "reopened"]
CaseStatus = Literal["open", "escalated", "closed"]


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseParams:
    """Parameters of cases (``[cases]`` in the watch configuration).

    Examples
    --------
    >>> CaseParams(close_after=0)
    Traceback (most recent call last):
    ...
    transitwatch.detectors.errors.InvalidParameterError: invalid parameter close_after=0: expected a number in [1, 24]
    """

    close_after: int = 3
    stay_ratio: float = 2.0
    accept_after: int = 0
    escalate_excess: float = 2.0
    reopen_within: int = 12

    def __post_init__(self) -> None:
        check_range(self, "close_after", 1, 24)
        check_range(self, "reopen_within", 0, 120)
        check_range(self, "stay_ratio", 1.0, 100.0)
        check_range(self, "accept_after", 0, 240)
        check_range(self, "escalate_excess", 1.0, 100.0)
        check_positive(self, "stay_ratio", "escalate_excess")


def case_id(series_id: str, onset: str) -> str:
    """Deterministic id of the case of a lane that opened in ``onset``.

    Examples
    --------
    >>> case_id("DE>KG export 854231", "2022-03")
    'twc-...'
    >>> case_id("DE>KG export 854231", "2022-03") == case_id("DE>KG export 854231", "2022-03")
    True
    """
    digest = hashlib.blake2b(f"{series_id}|{onset}".encode(), digest_size=10).hexdigest()
    return "twc-" + digest


@dataclass(slots=True)
class Case:
    """An open case: what is frozen at the onset and what has happened since.

    Months are month indices (``year * 12 + month - 1``); money is in the base currency.
    """

    case_id: str
    onset: int
    level: float  # the lane's usual month before the case (frozen)
    band: float  # the upper edge of its normal month (frozen)
    months: int = 0  # closed months since the onset, this one included
    quiet: int = 0  # months in a row that were not hot
    peak_month: int = -1
    peak_value: float = 0.0
    excess: float = 0.0  # cumulative excess over the pre-case level since the onset
    detectors: tuple[str, ...] = ()  # every detector that fired during the case, in DETECTORS order
    severity: int = 0  # the highest severity so far (index into SEVERITIES)
    confidence: int = 0  # the confidence and materiality of the month that set it (indices)
    materiality: int = 0
    notified_severity: int = -1  # the severity and month excess last notified (opened or escalated)
    notified_excess: float = 0.0
    escalated: bool = False
    closed_at: int = -1  # the month it closed (it may reopen within ``reopen_within`` months); -1: open
    extra: dict[str, Any] = field(default_factory=dict)  # reserved: keeps the state format open

    # -- state -------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """A JSON-ready dict (floats as floats, tuples as lists)."""
        out = asdict(self)
        out["detectors"] = list(self.detectors)
        return out

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Case:
        """Restore :meth:`to_state`; raises :class:`StateError` on a foreign dict."""
        try:
            known = {f.name for f in fields(cls)}
            unknown = set(state) - known
            if unknown:
                raise StateError(f"case state has unknown fields {sorted(unknown)}")
            data = dict(state)
            data["detectors"] = tuple(str(d) for d in data.get("detectors", ()))
            case = cls(**data)
            for name in ("onset", "months", "quiet", "peak_month", "severity", "notified_severity", "confidence",
                         "materiality", "closed_at"):
                setattr(case, name, int(getattr(case, name)))
            for name in ("level", "band", "peak_value", "excess", "notified_excess"):
                setattr(case, name, float(getattr(case, name)))
            return case
        except StateError:
            raise
        except (TypeError, ValueError) as exc:
            raise StateError(f"cannot restore a case: {exc!r}") from exc

    # -- months ------------------------------------------------------------------------------

    def ratio(self, value: float) -> float:
        """The month's value against the frozen pre-case level (``inf`` over a zero level)."""
        return value / self.level if self.level > 0 else math.inf

    def hot(self, value: float, *, alerted: bool, floor: float, params: CaseParams, season: float = 1.0) -> bool:
        """Whether a month keeps the case hot: a detector alerted, or the lane is
        materially above its frozen level (``floor`` over it and ``stay_ratio``
        times it, or above its normal band), both times the month's ``season``.

        Examples
        --------
        >>> c = open_case("DE>KG export 854231", 24266, level=50_000.0, band=80_000.0, period="2022-03")
        >>> c.hot(120_000.0, alerted=False, floor=10_000.0, params=CaseParams())
        True
        >>> c.hot(120_000.0, alerted=False, floor=10_000.0, params=CaseParams(), season=2.0)
        False
        """
        if alerted:
            return True
        level = self.level * season
        if value - level < floor:
            return False
        return value >= params.stay_ratio * level or value > self.band * season

    def advance(
        self,
        month: int,
        value: float,
        *,
        alerted: bool,
        detectors: tuple[str, ...],
        severity: int,
        floor: float,
        params: CaseParams,
        order: tuple[str, ...],
        confidence: int = 0,
        materiality: int = 0,
        season: float = 1.0,
    ) -> tuple[CaseEvent, str]:
        """Take closed ``month`` of the lane: returns the update's event and, when the
        case closes, why (``""`` otherwise). A closed case (see :meth:`dormant`) takes
        only a hot month, which reopens it. ``season`` is the month's seasonal factor
        (:meth:`hot`); the excess is over the level times it."""
        first = self.months == 0
        hot = self.hot(value, alerted=alerted, floor=floor, params=params, season=season)
        reopened = self.closed_at >= 0
        if reopened:
            if not hot:
                raise ValueError("a closed case takes only a hot month (see Case.dormant)")
            self.closed_at = -1
        self.months += 1
        self.quiet = 0 if hot else self.quiet + 1
        over = max(value - self.level * season, 0.0)
        if hot:
            self.excess += over
        if value > self.peak_value or self.peak_month < 0:
            self.peak_month, self.peak_value = month, value
        if detectors:
            fired = set(self.detectors) | set(detectors)
            self.detectors = tuple(d for d in order if d in fired)
        if alerted and severity >= self.severity:
            self.confidence, self.materiality = confidence, materiality
        self.severity = max(self.severity, severity)
        if self.quiet >= params.close_after:
            months = "month" if params.close_after == 1 else f"{params.close_after} months"
            return "closed", f"closed: back within its normal band for {months}"
        if params.accept_after and self.months >= params.accept_after and hot:
            return "closed", f"closed: new level accepted after {self.months} months"
        if reopened:
            self.notified_severity, self.notified_excess = self.severity, over
            return "reopened", ""
        if first and self.severity <= self.notified_severity:
            return "opened", ""  # the month-end version of an early alert that opened the case
        if first and self.notified_severity < 0:
            self.notified_severity, self.notified_excess = self.severity, over
            return "opened", ""
        if self.severity > self.notified_severity or (
            hot and over >= params.escalate_excess * max(self.notified_excess, floor)
        ):
            self.notified_severity, self.notified_excess = self.severity, over
            self.escalated = True
            return "escalated", ""
        return "updated", ""

    def dormant(self, month: int, value: float, *, alerted: bool, floor: float, params: CaseParams,
                season: float = 1.0) -> bool | None:
        """For a closed case: ``True`` while it waits (no record), ``False`` when this month
        reopens it (then :meth:`advance` it), ``None`` when its time to reopen is over."""
        if self.hot(value, alerted=alerted, floor=floor, params=params, season=season):
            return False
        return True if month - self.closed_at < params.reopen_within else None

    def status(self, event: CaseEvent) -> CaseStatus:
        if event == "closed":
            return "closed"
        return "escalated" if self.escalated else "open"


def open_case(series_id: str, month: int, *, level: float, band: float, period: str) -> Case:
    """A case of lane ``series_id`` opening in ``month`` (``period`` its ``YYYY-MM``),
    with the pre-case level and band frozen now.

    Examples
    --------
    >>> c = open_case("DE>KG export 854231", 24266, level=50_000.0, band=80_000.0, period="2022-03")
    >>> params = CaseParams()
    >>> order = ("seasonal_surge", "ramp")
    >>> c.advance(24266, 400_000.0, alerted=True, detectors=("seasonal_surge",), severity=2,
    ...           floor=10_000.0, params=params, order=order)
    ('opened', '')
    >>> c.advance(24267, 450_000.0, alerted=False, detectors=(), severity=0, floor=10_000.0,
    ...           params=params, order=order)
    ('updated', '')
    >>> c.advance(24268, 1_000_000.0, alerted=True, detectors=("ramp",), severity=2, floor=10_000.0,
    ...           params=params, order=order)
    ('escalated', '')
    >>> [c.advance(m, 52_000.0, alerted=False, detectors=(), severity=0, floor=10_000.0,
    ...            params=params, order=order)[0] for m in (24269, 24270, 24271)]
    ['updated', 'updated', 'closed']
    >>> c.months, c.detectors, round(c.excess), c.peak_month
    (6, ('seasonal_surge', 'ramp'), 1700000, 24268)
    """
    level = max(float(level), 0.0) if math.isfinite(level) else 0.0
    band = float(band) if math.isfinite(band) and band > level else level
    return Case(case_id=case_id(series_id, period), onset=month, level=level, band=band)
