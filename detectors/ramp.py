"""Sustained-ramp detection: a one-sided CUSUM of the robust surge z-scores.

Surges that build over several months (x1.5, x2, x3 ...) may never pass the
one-month test; their accumulated evidence does. Each month adds
``min(z_robust, z_cap) - drift`` to a statistic floored at zero; the ramp fires
when it reaches ``threshold`` on a material, risen lane. Capping ``z`` keeps a
single giant month from firing it alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.base import Window
from detectors.params import check_positive
from detectors.seasonal import SurgeScores


@dataclass(frozen=True, kw_only=True, slots=True)
class RampParams:
    """Parameters of :class:`RampDetector`.

    Examples
    --------
    >>> RampParams(threshold=5.0).threshold
    5.0
    """

    drift: float = 1.0
    threshold: float = 7.0
    z_cap: float = 2.5
    min_ratio: float = 1.5
    min_excess: float = 10_000.0
    record_factor: float = 2.0

    def __post_init__(self) -> None:
        check_positive(self, "drift", "threshold", "z_cap", "min_ratio", "record_factor")
        check_positive(self, "min_excess", allow_zero=True)


@dataclass(frozen=True, slots=True)
class RampScores:
    statistic: np.ndarray
    fired: np.ndarray
    building: np.ndarray


class RampDetector:
    """CUSUM over the seasonal detector's robust z-scores.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.seasonal import SeasonalSurgeDetector, SurgeParams
    >>> from detectors.table import window_for
    >>> surge = SeasonalSurgeDetector(SurgeParams(min_excess=0))
    >>> ramp = RampDetector(RampParams(min_excess=0, threshold=5.0, z_cap=3.0))
    >>> history, stat, fired = [100.0, 110, 90, 105, 95, 100] * 4, np.zeros(1), []
    >>> for value in (150.0, 190.0, 240.0, 300.0):
    ...     w = window_for([history], value=[value], count=[float("nan")])
    ...     r = ramp.score_many(stat, surge.score_many(w))
    ...     stat, _ = r.statistic, fired.append(bool(r.fired[0]))
    >>> fired
    [False, False, False, True]
    """

    name = "ramp"

    def __init__(self, params: RampParams | None = None) -> None:
        self.params = params or RampParams()

    def score_many(self, statistic: np.ndarray, surge: SurgeScores, window: Window | None = None) -> RampScores:
        p = self.params
        # the month's stronger evidence: its value, or its number of declarations
        step = np.minimum(np.maximum(surge.z_robust, surge.z_count), p.z_cap) - p.drift
        new = np.where(surge.eligible, np.maximum(0.0, statistic + step), 0.0)
        record = self.quarter_record(window, surge) if window is not None else np.zeros_like(new, dtype=bool)
        fired = (
            ((new >= p.threshold) | surge.building | record)
            & surge.eligible
            & (np.nan_to_num(surge.ratio) >= p.min_ratio)
            & (np.nan_to_num(surge.excess) >= p.min_excess)
        )
        return RampScores(statistic=new, fired=fired, building=(new >= p.threshold / 2) | record)

    def quarter_record(self, window: Window, surge: SurgeScores) -> np.ndarray:
        """A quarter far above any quarter of the two years before, even without
        its largest month: a lumpy lane that starts trading every month at a
        higher level, where no single month stands out.

        The analyst's "never seen that much in a quarter": the last three months'
        value without the largest of them must pass ``record_factor`` times the
        largest three-month sum of the 24 months before, with a material excess.
        """
        p = self.params
        v = window.values
        h = v.shape[1]
        recent = np.stack([window.value, np.nan_to_num(v[:, -1]), np.nan_to_num(v[:, -2])], axis=1)
        without_top = recent.sum(axis=1) - recent.max(axis=1)
        past = v[:, h - 26 : h - 2]
        known = ~np.isnan(past)
        sums = np.nan_to_num(past[:, :-2]) + np.nan_to_num(past[:, 1:-1]) + np.nan_to_num(past[:, 2:])
        best = sums.max(axis=1)
        level = np.nan_to_num(surge.level)
        return (
            (known.sum(axis=1) >= 18)
            & (without_top >= p.record_factor * best)
            & (recent.sum(axis=1) - 3 * level >= 3 * p.min_excess)
            & (window.value >= level)
            & (best > 0)
        )
