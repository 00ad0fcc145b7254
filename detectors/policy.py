"""From scores to a verdict: which lanes alert, how severe, what is learned.

Scoring is not deciding. This module runs the detectors on a month's
:class:`~transitwatch.detectors.base.Window`, applies persistence (a surge that is not
overwhelming at once must be suspicious two months running), the cross-series
detectors (diversion, corroboration), severity (how sure and how material:
:mod:`transitwatch.detectors.severity`), and decides which months are
*protected*: any month a detector found suspicious is kept out of the
baseline, so a surge never becomes normal. A lane that stays suspicious for
``relearn_after`` months in a row is taken to have a new normal: those months
become its whole history (older months are forgotten) and detection goes on
from the new level.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import special

from transitwatch.detectors import severity as grading
from transitwatch.detectors.base import DETECTORS, Window
from transitwatch.detectors.consignees import ConsigneeParams, ConsigneeScores, NewConsigneeDetector
from transitwatch.detectors.corroboration import CorroborationDetector, CorroborationParams
from transitwatch.detectors.diversion import DiversionDetector, DiversionParams, DiversionScores
from transitwatch.detectors.errors import InvalidParameterError
from transitwatch.detectors.features import features
from transitwatch.detectors.hubshift import HubShiftDetector, HubShiftParams, HubShiftScores
from transitwatch.detectors.isolation import IsolationForestDetector, IsolationParams
from transitwatch.detectors.mirror import MirrorDetector, MirrorParams, MirrorScores
from transitwatch.detectors.novelty import NoveltyDetector, NoveltyParams, NoveltyScores
from transitwatch.detectors.numeric import nan_to_num
from transitwatch.detectors.params import check_positive, check_range
from transitwatch.detectors.ramp import RampDetector, RampParams, RampScores
from transitwatch.detectors.sanctions import SanctionsParams
from transitwatch.detectors.sanctions import evidence as sanctions_evidence
from transitwatch.detectors.seasonal import SeasonalSurgeDetector, SurgeParams, SurgeScores
from transitwatch.detectors.severity import CONFIDENCES, MATERIALITIES  # noqa: F401 (names of a Verdict's indices)

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
    transitwatch.detectors.errors.InvalidParameterError: invalid parameter relearn_after=0: expected a number in [2, 120]
    """

    relearn_after: int = 6
    min_history: int = 12
    warmup_protect_ratio: float = 10.0
    family_size: float = 0.0  # 0: derived from the watch (severity.watch_family)
    family_months: int = 120
    alpha_critical: float = 0.001
    alpha_high: float = 0.05
    minor_excess: float = 50_000.0
    large_excess: float = 250_000.0
    very_large_excess: float = 2_500_000.0
    detectors: tuple[str, ...] = DETECTORS

    def __post_init__(self) -> None:
        object.__setattr__(self, "detectors", tuple(self.detectors))
        unknown = set(self.detectors) - set(DETECTORS)
        if unknown or not self.detectors:
            raise InvalidParameterError("detectors", list(self.detectors), f"a non-empty list among {list(DETECTORS)}")
        check_range(self, "relearn_after", 2, 120)
        check_range(self, "min_history", 0, 36)
        check_range(self, "warmup_protect_ratio", 1.0, 1e6)
        if self.family_size != 0:
            check_range(self, "family_size", 1.0, 1e15)
        check_range(self, "family_months", 1, 1200)
        check_range(self, "alpha_critical", 1e-12, 0.5)
        check_range(self, "alpha_high", self.alpha_critical, 0.5)
        check_positive(self, "minor_excess", "large_excess", "very_large_excess")
        if not self.minor_excess <= self.large_excess <= self.very_large_excess:
            raise InvalidParameterError(
                "large_excess", self.large_excess, "minor_excess <= large_excess <= very_large_excess"
            )

    def for_watch(self, *, reporters: int, partners: int, flows: int, hs6: int) -> PolicyParams:
        """These parameters, with ``family_size`` derived from a watch's lists when it is 0.

        Examples
        --------
        >>> PolicyParams().for_watch(reporters=1, partners=1, flows=2, hs6=1).family_size
        240.0
        >>> PolicyParams(family_size=60_000).for_watch(reporters=1, partners=1, flows=2, hs6=1).family_size
        60000
        """
        if self.family_size:
            return self
        family = grading.watch_family(
            reporters=reporters, partners=partners, flows=flows, hs6=hs6, months=self.family_months
        )
        return replace(self, family_size=family)


@dataclass(frozen=True, slots=True)
class Lanes:
    """Per-series facts the cross-series detectors and severity need."""

    source_group: np.ndarray  # int id of (reporter, flow, hs6)
    hub_group: np.ndarray  # int id of (partner, flow, hs6)
    is_hub: np.ndarray
    is_destination: np.ndarray
    priority: np.ndarray  # CHPL tier 1 or 2
    banned_from: np.ndarray | None = None  # month index of the goods' earliest ban to a destination (NO_BAN: none)
    mirror_pair: np.ndarray | None = None  # int id of (exporter, hub, hs6) for the mirror test (-1: none)
    mirror_side: np.ndarray | None = None  # +1 the exporter's export lane, -1 the hub's import lane from it, 0 neither

    def take(self, rows: np.ndarray) -> Lanes:
        return Lanes(*(None if getattr(self, f) is None else getattr(self, f)[rows] for f in self.__dataclass_fields__))


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
    confidence: np.ndarray | None = None  # index into severity.CONFIDENCES
    materiality: np.ndarray | None = None  # index into severity.MATERIALITIES
    p_family: np.ndarray | None = None  # the month's own test, family-wise (NaN: no surge test)
    p_evidence: np.ndarray | None = None  # every line of evidence for the lane-month
    hub_shift: HubShiftScores | None = None  # most lanes of the hub and HS6 up together
    sanctioned: np.ndarray | None = None  # the case's onset falls [sanctions] evidence_months after its goods' ban
    mirror: MirrorScores | None = None  # the hub's reported imports against the lane's exports

    def detectors(self, row: int) -> tuple[str, ...]:
        return tuple(name for name, hit in zip(DETECTORS, self.fired[row]) if hit)


class AlertPolicy:
    """Runs every detector for one month and decides.

    Examples
    --------
    >>> from transitwatch.detectors.table import window_for
    >>> w = window_for([[100.0, 120, 90, 110] * 9], value=[900.0], count=[float("nan")])
    >>> policy = AlertPolicy(surge=SurgeParams(min_excess=100, strong_excess=100), ramp=RampParams(min_excess=100),
    ...                      policy=PolicyParams(family_size=60_000))
    >>> v = policy.decide(w)
    >>> bool(v.alert[0]), v.detectors(0), f"{v.surge.p_value[0]:.0e}", f"{v.p_family[0]:.0e}"
    (True, ('seasonal_surge',), '1e-08', '6e-04')
    >>> CONFIDENCES[v.confidence[0]], MATERIALITIES[v.materiality[0]], SEVERITIES[v.severity[0]]  # certain, but 800 of excess
    ('very high', 'low', 'medium')
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
        hub_shift: HubShiftParams | None = None,
        isolation: IsolationParams | None = None,
        policy: PolicyParams | None = None,
        sanctions: SanctionsParams | None = None,
        mirror: MirrorParams | None = None,
    ) -> None:
        self.surge = SeasonalSurgeDetector(surge)
        self.ramp = RampDetector(ramp)
        self.novelty = NoveltyDetector(novelty)
        self.consignees = NewConsigneeDetector(new_consignees)
        self.diversion = DiversionDetector(diversion)
        self.corroboration = CorroborationDetector(corroboration)
        self.hub_shift = HubShiftDetector(hub_shift)
        self.isolation = IsolationForestDetector(isolation)
        self.mirror = MirrorDetector(mirror)
        self.params = policy or PolicyParams()
        self.sanctions = sanctions or SanctionsParams()
        self._enabled = np.array([name in self.params.detectors for name in DETECTORS])

    @property
    def family_size(self) -> float:
        """The lane-months severity grades on: ``[policy] family_size``, derived from the
        watch by :class:`~transitwatch.detectors.watch.WatchConfig`, or the shipped watch's without one."""
        return self.params.family_size or float(grading.SHIPPED_LANES * self.params.family_months)

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

    def decide(self, window: Window, lanes: Lanes | None = None, *, cross: bool = True,
               onset: np.ndarray | None = None, month: int | None = None) -> Verdict:
        """Verdict for one month. Only hub lanes alert (every lane when
        ``lanes`` is not given); ``cross=False`` skips the cross-series
        detectors, as for early, in-month checks. ``onset``: per lane, the month
        index its case opened (this month for a lane without one), for the
        sanctions calendar's evidence (none when not given); it changes
        confidence only, never which lanes alert. ``month``: the month index
        judged (the mirror test's quarters need it)."""
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
        # a young baseline holds back only what is far out of line (warmup_protect_ratio): the
        # first year's seasons are learned (a Q4 at x3 in year one is the lane's Q4, not a surge
        # to keep out of its baseline for ever); new lanes are novelty's
        young = ~warm & (nan_to_num(surge.ratio) >= self.params.warmup_protect_ratio)
        candidate = ((surge.soft | ramp.building) & (warm | young)) | novelty.candidate
        x = iso = None
        if self.isolation.params.in_alerting_path:
            x = features(window, surge)
            if self.isolation.fitted:
                iso = self.isolation.score_many(x)
                big = nan_to_num(surge.excess) >= self.isolation.params.min_excess
                fired[:, _COL["isolation"]] = hub & surge.eligible & big & (iso >= self.isolation.params.threshold)
        fired &= self._enabled

        diversion = shift = mirror = None
        corroborated = np.zeros(n, dtype=bool)
        if lanes is not None and cross:
            dp = self.diversion.params
            past = nan_to_num(window.values)
            # sums of `months` months ending now (value + the months - 1 before it) and 1..lag months ago
            recent_past = _past_sum(past, dp.months - 1, ago=1)
            recent_lagged = np.stack([_past_sum(past, dp.months, ago=k + 1) for k in range(dp.lag)],
                                     axis=1) if dp.lag else None
            diversion = self.diversion.score_many(
                group=lanes.source_group,
                is_hub=lanes.is_hub,
                is_destination=lanes.is_destination,
                level=surge.level,
                recent=window.value + recent_past,
                z_robust=surge.z_robust,
                # steady in the year before the last `months` months: a collapse to zero must not
                # make its own lane unsteady (else a Russian lane stops counting after two months at 0)
                steady=_past_sum(past > 0, 12, ago=dp.months) >= 10,
                recent_lagged=recent_lagged,
                # the same sum ending lag + months months ago: was the destination lane still up then?
                recent_before=_past_sum(past, dp.months, ago=dp.lag + dp.months),
            )
            fired[:, _COL["diversion"]] = diversion.fired & self._enabled[_COL["diversion"]]
            shift = self.hub_shift.score_many(group=lanes.hub_group, eligible=hub & warm & surge.eligible,
                                              ratio=surge.ratio, excess=surge.excess, value=window.value,
                                              expected=surge.expected, previous=_previous_ratio(window, surge),
                                              z=np.maximum(surge.z_robust, surge.z_count))
            fired[:, _COL["hub_shift"]] = shift.fired & self._enabled[_COL["hub_shift"]]
            if self._enabled[_COL["corroboration"]]:
                corroborated = self.corroboration.score_many(
                    group=lanes.hub_group, alert=fired.any(axis=1),
                    z=np.where(hub, np.maximum(surge.z_robust, surge.z_count), 0.0), ratio=surge.ratio,
                    excess=surge.excess,
                )
                fired[:, _COL["corroboration"]] = corroborated
            if lanes.mirror_side is not None and self._enabled[_COL["mirror"]]:
                mirror = self.mirror.score_many(pair=lanes.mirror_pair, side=lanes.mirror_side, values=window.values,
                                                value=window.value, protected=window.protected, month=month)
                fired[:, _COL["mirror"]] = mirror.fired & hub

        alert = fired.any(axis=1)
        protect_raw = candidate | alert
        streak = np.where(protect_raw, window.streak + 1, 0)
        relearn = streak >= self.params.relearn_after
        streak = np.where(relearn, 0, streak)
        if lanes is not None and lanes.mirror_side is not None:
            # a hub's import lane kept only as the mirror test's evidence keeps its whole history
            evidence = (lanes.mirror_side < 0) & ~lanes.is_hub & ~lanes.is_destination
            relearn &= ~evidence
            streak = np.where(evidence, 0, streak)
        protect = protect_raw
        # a lone suspicious month followed by a normal one was the lane's own
        # variability (a one-off shipment): learn it after all
        release = ~protect_raw & (window.streak == 1) & ~surge.elevated
        ramp_statistic = np.where(ramp.fired | relearn, 0.0, ramp.statistic)
        score = self._score(window, surge, ramp, consignees, fired, mirror)
        excess = np.where(surge.eligible, nan_to_num(surge.excess), window.value - novelty.baseline)
        if mirror is not None:  # a mirror gap's money is the imports missing
            excess = np.where(fired[:, _COL["mirror"]], np.maximum(excess, nan_to_num(mirror.shortfall)), excess)
        sanctioned = np.zeros(n, dtype=bool)
        if onset is not None and lanes is not None and lanes.banned_from is not None:
            sanctioned = sanctions_evidence(np.asarray(onset, dtype=np.int64), lanes.banned_from, self.sanctions)
        grades = self._grade(window, surge, novelty, consignees, excess, fired, lanes, cross=cross,
                             sanctioned=sanctioned, mirror=mirror)
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
            severity=np.where(alert, grades.severity, 0),
            score=np.where(alert, score, 0.0),
            release=release,
            relearn=relearn,
            features=x,
            isolation=iso,
            confidence=np.where(alert, grades.confidence, 0),
            materiality=np.where(alert, grades.materiality, 0),
            p_family=grades.p_family,
            p_evidence=grades.p_evidence,
            hub_shift=shift,
            sanctioned=sanctioned & alert,
            mirror=mirror,
        )

    def _score(self, window: Window, surge: SurgeScores, ramp: RampScores, consignees: ConsigneeScores,
               fired: np.ndarray, mirror: MirrorScores | None = None) -> np.ndarray:
        """Higher is more anomalous: ``-log10 p`` of the surge test, of the new
        consignees' pooled evidence or of the mirror test, or the ramp statistic, or for
        new lanes 3 plus the doublings above the floor."""
        floor = self.novelty.params.min_value
        novelty_score = np.where(
            fired[:, _COL["novelty"]], 3.0 + np.log2(np.maximum(window.value / floor, 1.0)), 0.0
        )
        party_score = np.where(
            fired[:, _COL["new_consignees"]],
            np.minimum(-np.log10(np.maximum(special.ndtr(-consignees.statistic), 1e-300)), 50.0), 0.0,
        )
        lines = [surge.score, np.where(fired[:, _COL["ramp"]], ramp.statistic, 0.0), novelty_score, party_score]
        if mirror is not None:
            lines.append(np.where(fired[:, _COL["mirror"]],
                                  np.minimum(-np.log10(np.maximum(nan_to_num(mirror.p_value, nan=1.0), 1e-300)), 50.0),
                                  0.0))
        scores = np.stack(lines, axis=1)
        return np.round(scores.max(axis=1), 6)

    def _grade(
        self,
        window: Window,
        surge: SurgeScores,
        novelty: NoveltyScores,
        consignees: ConsigneeScores,
        excess: np.ndarray,
        fired: np.ndarray,
        lanes: Lanes | None,
        *,
        cross: bool,
        sanctioned: np.ndarray,
        mirror: MirrorScores | None = None,
    ) -> grading.Grades:
        """Confidence, materiality and severity (:mod:`transitwatch.detectors.severity`). Each
        depends on the lane's own rows and, for peers, on its hub group (one HS6), so
        a partition of the HS6 codes grades every lane as the whole would."""
        p = self.params
        family = self.family_size
        eligible = surge.eligible
        p_month = np.where(eligible, surge.p_value, np.nan)
        c, nov = self.consignees.params, self.novelty.params
        new_lane = np.ones(window.n)
        rows = np.flatnonzero(fired[:, _COL["novelty"]])
        if rows.size:
            new_lane[rows] = grading.new_lane_p(
                window.values[rows], window.value[rows], min_value=nov.min_value, count=window.count[rows],
                counts=window.counts[rows], lookback=nov.lookback, pool=nov.pool_months,
            )
        own = grading.union_p(
            np.where(eligible, surge.p_value, 1.0),
            np.where(eligible, grading.pooled_months_p(surge.z_robust, surge.z_prev, surge.z_prev2), 1.0),
            grading.combined_z_p(consignees.statistic, value_weight=c.value_weight, party_weight=c.party_weight),
            new_lane,
        )
        if mirror is not None and mirror.judged.any():  # a fifth line where the mirror test judged the lane
            five = grading.union_p(
                np.where(eligible, surge.p_value, 1.0),
                np.where(eligible, grading.pooled_months_p(surge.z_robust, surge.z_prev, surge.z_prev2), 1.0),
                grading.combined_z_p(consignees.statistic, value_weight=c.value_weight, party_weight=c.party_weight),
                new_lane, nan_to_num(mirror.p_value, nan=1.0),
            )
            own = np.where(mirror.judged, five, own)
        # agreement: lines that are not this lane's own months (so not a p-value for it), which
        # lift medium evidence to high, never further: the goods' Russia lane collapsing
        # (diversion), most reporters' lanes into the hub up together (hub_shift), or a peer lane of
        # the same hub and HS6 alerting alone with high confidence
        agree = fired[:, _COL["diversion"]] | fired[:, _COL["hub_shift"]]
        priority = np.zeros(window.n, dtype=bool)
        if lanes is not None:
            priority = lanes.priority
            if cross:
                alone = np.delete(fired, _COL["corroboration"], axis=1).any(axis=1) & lanes.is_hub
                peer = grading.best_peer(own, lanes.hub_group, alone)
                agree |= peer * family <= p.alpha_high
        confidence = grading.confidence(
            p_month, own, agree, family_size=family, alpha_critical=p.alpha_critical,
            alpha_high=p.alpha_high,
        )
        # a case opening soon after its goods' ban: one grade up, never to very high
        confidence = grading.sanctions_step(confidence, sanctioned)
        materiality = grading.materiality(
            excess, priority, minor=p.minor_excess, large=p.large_excess, very_large=p.very_large_excess
        )
        return grading.Grades(
            p_family=grading.family_p(p_month, family),
            p_evidence=own,
            confidence=confidence,
            materiality=materiality,
            severity=grading.severity(confidence, materiality),
        )


def _previous_ratio(window: Window, surge: SurgeScores) -> np.ndarray:
    """Last month's value over this month's expected value (NaN where either is unknown)."""
    last = window.values[:, -1] if window.values.shape[1] else np.full(window.n, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(nan_to_num(surge.expected) > 0, last / surge.expected, np.nan)


def _past_sum(past: np.ndarray, months: int, *, ago: int) -> np.ndarray:
    """Per row, the sum of the ``months`` closed months ending ``ago`` months before this one
    (``ago=1``: last month; months before the history count as 0).

    >>> _past_sum(np.array([[1.0, 2.0, 3.0, 4.0]]), 2, ago=1).tolist(), _past_sum(np.array([[1.0, 2.0, 3.0, 4.0]]), 2, ago=3).tolist()
    ([7.0], [3.0])
    """
    cols = past.shape[1]
    end = max(cols - ago + 1, 0)
    return past[:, max(end - months, 0): end].sum(axis=1) if months > 0 else np.zeros(past.shape[0])
