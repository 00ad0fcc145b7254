"""From scores to a verdict: which lanes alert, how severe, what is learned.

Scoring is not deciding. This module runs the detectors on a month's
:class:`~detectors.base.Window`, applies persistence (a surge that is not
overwhelming at once must be suspicious two months running), the cross-series
detectors (diversion, corroboration), severity, and decides which months are
*protected*: any month a detector found suspicious is kept out of the
baseline, so a surge never becomes normal. A lane that stays suspicious for
``relearn_after`` months in a row is taken to have a new normal: those months
become its whole history (older months are forgotten) and detection goes on
from the new level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from detectors.base import DETECTORS, Window
from detectors.consignees import ConsigneeParams, ConsigneeScores, NewConsigneeDetector
from detectors.corroboration import CorroborationDetector, CorroborationParams
from detectors.diversion import DiversionDetector, DiversionParams, DiversionScores
from detectors.errors import InvalidParameterError
from detectors.features import features
from detectors.isolation import IsolationForestDetector, IsolationParams
from detectors.novelty import NoveltyDetector, NoveltyParams, NoveltyScores
from detectors.params import check_positive, check_range
from detectors.ramp import RampDetector, RampParams, RampScores
from detectors.seasonal import SeasonalSurgeDetector, SurgeParams, SurgeScores

SEVERITIES = ("low", "medium", "high", "critical")
_COL = {name: i for i, name in enumerate(DETECTORS)}


@dataclass(frozen=True, kw_only=True, slots=True)
class PolicyParams:
    """Parameters of :class:`AlertPolicy`.

    Examples
    --------
    >>> PolicyParams(relearn_after=0)
    Traceback (most recent call last):
    ...
    detectors.errors.InvalidParameterError: invalid parameter relearn_after=0: expected a number in [2, 120]
    """

    relearn_after: int = 6
    min_history: int = 12
    strong_score: float = 6.0
    strong_ratio: float = 5.0
    large_excess: float = 250_000.0
    minor_excess: float = 50_000.0
    detectors: tuple[str, ...] = DETECTORS

    def __post_init__(self) -> None:
        object.__setattr__(self, "detectors", tuple(self.detectors))
        unknown = set(self.detectors) - set(DETECTORS)
        if unknown or not self.detectors:
            raise InvalidParameterError("detectors", list(self.detectors), f"a non-empty list among {list(DETECTORS)}")
        check_range(self, "relearn_after", 2, 120)
        check_range(self, "min_history", 0, 36)
        check_positive(self, "strong_score", "strong_ratio", "large_excess", "minor_excess")


@dataclass(frozen=True, slots=True)
class Lanes:
    """Per-series facts the cross-series detectors and severity need."""

    source_group: np.ndarray  # int id of (reporter, flow, hs6)
    hub_group: np.ndarray  # int id of (partner, flow, hs6)
    is_hub: np.ndarray
    is_destination: np.ndarray
    priority: np.ndarray  # CHPL tier 1 or 2

    def take(self, rows: np.ndarray) -> Lanes:
        return Lanes(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))


@dataclass(frozen=True, slots=True)
class Verdict:
    """Everything decided for one month, per series."""

    surge: SurgeScores
    ramp: RampScores
    novelty: NoveltyScores
    consignees: ConsigneeScores
    diversion: DiversionScores | None
    fired: np.ndarray  # (n, len(DETECTORS)) bool
    alert: np.ndarray
    protect: np.ndarray
    streak: np.ndarray
    ramp_statistic: np.ndarray
    severity: np.ndarray  # index into SEVERITIES
    score: np.ndarray
    release: np.ndarray | None = None  # last month's protection lifted (a lone one-off)
    relearn: np.ndarray | None = None  # a new level: the streak becomes the whole history
    features: np.ndarray | None = None  # (n, len(FEATURES)) where the isolation model is on
    isolation: np.ndarray | None = None  # its scores, once fitted

    def detectors(self, row: int) -> tuple[str, ...]:
        return tuple(name for name, hit in zip(DETECTORS, self.fired[row]) if hit)


class AlertPolicy:
    """Runs every detector for one month and decides.

    Examples
    --------
    >>> from detectors.table import window_for
    >>> w = window_for([[100.0, 120, 90, 110] * 9], value=[900.0], count=[float("nan")])
    >>> v = AlertPolicy(surge=SurgeParams(min_excess=100, strong_excess=100), ramp=RampParams(min_excess=100)).decide(w)
    >>> bool(v.alert[0]), v.detectors(0), SEVERITIES[v.severity[0]]
    (True, ('seasonal_surge',), 'medium')
    """

    def __init__(
        self,
        *,
        surge: SurgeParams | None = None,
        ramp: RampParams | None = None,
        novelty: NoveltyParams | None = None,
        new_consignees: ConsigneeParams | None = None,
        diversion: DiversionParams | None = None,
        corroboration: CorroborationParams | None = None,
        isolation: IsolationParams | None = None,
        policy: PolicyParams | None = None,
    ) -> None:
        self.surge = SeasonalSurgeDetector(surge)
        self.ramp = RampDetector(ramp)
        self.novelty = NoveltyDetector(novelty)
        self.consignees = NewConsigneeDetector(new_consignees)
        self.diversion = DiversionDetector(diversion)
        self.corroboration = CorroborationDetector(corroboration)
        self.isolation = IsolationForestDetector(isolation)
        self.params = policy or PolicyParams()
        self._enabled = np.array([name in self.params.detectors for name in DETECTORS])

    @property
    def smallest_alert_value(self) -> float:
        """The smallest month value any single-lane detector can alert on: each
        needs its excess over the expected value, or the value itself, above a floor."""
        return min(
            self.surge.params.min_excess,
            self.ramp.params.min_excess,
            self.novelty.params.min_value,
            self.consignees.params.min_excess,
            self.isolation.params.min_excess,
        )

    def decide(self, window: Window, lanes: Lanes | None = None, *, cross: bool = True) -> Verdict:
        """Verdict for one month. Only hub lanes alert (every lane when
        ``lanes`` is not given); ``cross=False`` skips the cross-series
        detectors, as for early, in-month checks."""
        surge = self.surge.score_many(window)
        ramp = self.ramp.score_many(window.ramp, surge, window)
        novelty = self.novelty.score_many(window)
        consignees = self.consignees.score_many(window, surge)
        n = window.n
        fired = np.zeros((n, len(DETECTORS)), dtype=bool)
        persisted = window.protected[:, -1] if window.values.shape[1] else np.zeros(n, bool)
        hub = lanes.is_hub if lanes is not None else np.ones(n, dtype=bool)
        # warm-up: a baseline needs a year of known months before a rise against it means much
        # (a replay's first year, a lane first seen late); new lanes are novelty's, which has no baseline
        warm = (~np.isnan(window.values)).sum(axis=1) >= self.params.min_history
        fired[:, _COL["seasonal_surge"]] = hub & warm & (surge.immediate | (surge.candidate & persisted)
                                                         | surge.sustained)
        fired[:, _COL["ramp"]] = hub & warm & ramp.fired
        fired[:, _COL["novelty"]] = hub & novelty.fired
        fired[:, _COL["new_consignees"]] = hub & consignees.fired
        candidate = surge.soft | ramp.building | novelty.candidate
        x = iso = None
        if self.isolation.params.in_alerting_path:
            x = features(window, surge)
            if self.isolation.fitted:
                iso = self.isolation.score_many(x)
                big = np.nan_to_num(surge.excess) >= self.isolation.params.min_excess
                fired[:, _COL["isolation"]] = hub & surge.eligible & big & (iso >= self.isolation.params.threshold)
        fired &= self._enabled

        diversion = None
        corroborated = np.zeros(n, dtype=bool)
        if lanes is not None and cross:
            recent_past = np.nan_to_num(window.values[:, -(self.diversion.params.months - 1) :]).sum(axis=1)
            diversion = self.diversion.score_many(
                group=lanes.source_group,
                is_hub=lanes.is_hub,
                is_destination=lanes.is_destination,
                level=surge.level,
                recent=window.value + recent_past,
                z_robust=surge.z_robust,
                steady=(np.nan_to_num(window.values[:, -12:]) > 0).sum(axis=1) >= 10,
            )
            fired[:, _COL["diversion"]] = diversion.fired & self._enabled[_COL["diversion"]]
            if self._enabled[_COL["corroboration"]]:
                corroborated = self.corroboration.score_many(
                    group=lanes.hub_group, alert=fired.any(axis=1),
                    z=np.where(hub, np.maximum(surge.z_robust, surge.z_count), 0.0), ratio=surge.ratio,
                    excess=surge.excess,
                )
                fired[:, _COL["corroboration"]] = corroborated

        alert = fired.any(axis=1)
        protect_raw = candidate | alert
        streak = np.where(protect_raw, window.streak + 1, 0)
        relearn = streak >= self.params.relearn_after
        streak = np.where(relearn, 0, streak)
        protect = protect_raw
        # a lone suspicious month followed by a normal one was the lane's own
        # variability (a one-off shipment): learn it after all
        release = ~protect_raw & (window.streak == 1) & ~surge.elevated
        ramp_statistic = np.where(ramp.fired | relearn, 0.0, ramp.statistic)
        score = self._score(window, surge, ramp, consignees, fired)
        excess = np.where(surge.eligible, np.nan_to_num(surge.excess), window.value - novelty.baseline)
        severity = self._severity(surge, excess, fired, score, corroborated, lanes)
        return Verdict(
            surge=surge,
            ramp=ramp,
            novelty=novelty,
            consignees=consignees,
            diversion=diversion,
            fired=fired,
            alert=alert,
            protect=protect,
            streak=streak,
            ramp_statistic=ramp_statistic,
            severity=np.where(alert, severity, 0),
            score=np.where(alert, score, 0.0),
            release=release,
            relearn=relearn,
            features=x,
            isolation=iso,
        )

    def _score(self, window: Window, surge: SurgeScores, ramp: RampScores, consignees: ConsigneeScores,
               fired: np.ndarray) -> np.ndarray:
        """Higher is more anomalous: ``-log10 p`` of the surge test or of the new
        consignees' pooled evidence, or the ramp statistic, or for new lanes 3 plus
        the doublings above the floor."""
        floor = self.novelty.params.min_value
        novelty_score = np.where(
            fired[:, _COL["novelty"]], 3.0 + np.log2(np.maximum(window.value / floor, 1.0)), 0.0
        )
        party_score = np.where(
            fired[:, _COL["new_consignees"]],
            np.minimum(-np.log10(np.maximum(special.ndtr(-consignees.statistic), 1e-300)), 50.0), 0.0,
        )
        scores = np.stack(
            [surge.score, np.where(fired[:, _COL["ramp"]], ramp.statistic, 0.0), novelty_score, party_score], axis=1
        )
        return np.round(scores.max(axis=1), 6)

    def _severity(
        self,
        surge: SurgeScores,
        excess: np.ndarray,
        fired: np.ndarray,
        score: np.ndarray,
        corroborated: np.ndarray,
        lanes: Lanes | None,
    ) -> np.ndarray:
        p = self.params
        points = (score >= p.strong_score) | (np.nan_to_num(surge.ratio) >= p.strong_ratio)
        points = points.astype(int)
        points += excess >= p.large_excess
        points += corroborated
        points += fired[:, _COL["diversion"]]
        if lanes is not None:
            points += lanes.priority
        # a lane whose excess is small stays low or medium, however unusual
        cap = np.where(excess < p.minor_excess, 1, len(SEVERITIES) - 1)
        return np.minimum(points, cap)
