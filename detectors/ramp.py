"""Sustained rises: a one-sided CUSUM of the robust surge z-scores, a quarter
record and a rank test for a level shift.

Surges that build over several months (x1.5, x2, x3 ...) may never pass the
one-month test; their accumulated evidence does. Each month adds
``min(z_robust, z_cap) - drift`` to a statistic floored at zero; the ramp fires
when it reaches ``threshold`` on a material, risen lane. Capping ``z`` keeps a
single giant month from firing it alone.

On lumpy lanes (a shipment some months, none in others) no month stands out
and the z-scores stay small, yet a lane that has traded above its usual
highs month after month has shifted. The *level shift* test ranks the last
``shift_months`` months (six by default) among the 24 months before them: how unlikely is it, were
the months exchangeable, that this many of the recent ones exceed the
``shift_rank``-th largest of the earlier ones (a hypergeometric tail, exact,
conservative with ties)? It fires when that is below ``shift_alpha`` (with a
Bonferroni factor for the windows tried), the month itself is among them, and
the window's mean is ``shift_ratio`` times, and ``min_excess`` above, the mean
of the 12 months before it (the latest level, so that a slowly growing lane
is compared with where it has got to).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from transitwatch.detectors.base import Window
from transitwatch.detectors.errors import InvalidParameterError
from transitwatch.detectors.numeric import nan_to_num
from transitwatch.detectors.params import check_positive, check_range
from transitwatch.detectors.seasonal import SurgeScores

SHIFT_BASELINE = 24  # months the recent window is ranked among
SHIFT_LEVEL = 12  # months whose mean is the level the window is compared with
SHIFT_MIN_KNOWN = 18  # known months the ranking needs
SHIFT_MAX_MONTHS = 9  # longest window: with 36 months of history, 24 known before it


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
    shift_alpha: float = 1e-3
    shift_rank: int = 4
    shift_ratio: float = 3.0
    shift_months: tuple[int, ...] = (6,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shift_months", tuple(self.shift_months))
        check_positive(self, "drift", "threshold", "z_cap", "min_ratio", "record_factor", "shift_ratio")
        check_positive(self, "min_excess", allow_zero=True)
        check_range(self, "shift_alpha", 0.0, 0.5)
        check_range(self, "shift_rank", 1, 6)
        if not self.shift_months or any(not 2 <= k <= SHIFT_MAX_MONTHS for k in self.shift_months):
            raise InvalidParameterError("shift_months", list(self.shift_months),
                                        f"a non-empty list of numbers in [2, {SHIFT_MAX_MONTHS}]")


#: The ramp detector's tests, in the order of the bits of :attr:`RampScores.tests`.
RAMP_TESTS = ("cusum", "three_months_pooled", "quarter_record", "level_shift")


@dataclass(frozen=True, slots=True)
class RampScores:
    statistic: np.ndarray
    fired: np.ndarray
    building: np.ndarray
    tests: np.ndarray  # per series, bit i set when RAMP_TESTS[i] passed (whether or not the ramp fired)

    def passed(self, row: int) -> tuple[str, ...]:
        """Names of the tests that passed for ``row``."""
        bits = int(self.tests[row])
        return tuple(name for i, name in enumerate(RAMP_TESTS) if bits >> i & 1)


class RampDetector:
    """CUSUM over the seasonal detector's robust z-scores.

    Examples
    --------
    >>> import numpy as np
    >>> from transitwatch.detectors.seasonal import SeasonalSurgeDetector, SurgeParams
    >>> from transitwatch.detectors.table import window_for
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
        quarter = shift = np.zeros_like(new, dtype=bool)
        if window is not None:
            quarter, shift = self.quarter_record(window, surge), self.level_shift(window)
        record = quarter | shift
        cusum = new >= p.threshold
        fired = (
            (cusum | surge.building | record)
            & surge.eligible
            & (nan_to_num(surge.ratio) >= p.min_ratio)
            & (nan_to_num(surge.excess) >= p.min_excess)
        )
        tests = cusum.astype(np.int8) | surge.building << 1 | quarter << 2 | shift << 3
        return RampScores(statistic=new, fired=fired, building=(new >= p.threshold / 2) | record, tests=tests)

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
        recent = np.stack([window.value, nan_to_num(v[:, -1]), nan_to_num(v[:, -2])], axis=1)
        without_top = recent.sum(axis=1) - recent.max(axis=1)
        past = v[:, h - 26 : h - 2]
        known = ~np.isnan(past)
        sums = nan_to_num(past[:, :-2]) + nan_to_num(past[:, 1:-1]) + nan_to_num(past[:, 2:])
        best = sums.max(axis=1)
        level = nan_to_num(surge.level)
        return (
            (known.sum(axis=1) >= 18)
            & (without_top >= p.record_factor * best)
            & (recent.sum(axis=1) - 3 * level >= 3 * p.min_excess)
            & (window.value >= level)
            & (best > 0)
        )

    def level_shift(self, window: Window) -> np.ndarray:
        """The last months ranked high among the 24 before them (see the module's text)."""
        p = self.params
        out = np.zeros(window.n, dtype=bool)
        if p.shift_alpha == 0.0:
            return out
        v = window.values
        h = v.shape[1]
        j = p.shift_rank
        for k in p.shift_months:
            start = h - (k - 1)
            if start - SHIFT_BASELINE < 0:
                continue
            recent = np.concatenate([nan_to_num(v[:, start:]), window.value[:, None]], axis=1)
            base = v[:, start - SHIFT_BASELINE : start]
            known = ~np.isnan(base)
            m = known.sum(axis=1)
            top = np.sort(np.where(known, base, -np.inf), axis=1)[:, -j]
            above = (recent > top[:, None]).sum(axis=1)
            tail = _rank_tail(k, j)[np.minimum(m, SHIFT_BASELINE), above]
            latest = known[:, -SHIFT_LEVEL:]
            level = np.where(latest, base[:, -SHIFT_LEVEL:], 0.0).sum(axis=1) / np.maximum(latest.sum(axis=1), 1)
            mean = recent.mean(axis=1)
            out |= (
                (m >= SHIFT_MIN_KNOWN)
                & (tail * len(p.shift_months) <= p.shift_alpha)
                & (window.value > top)
                & (mean >= p.shift_ratio * level)
                & (mean - level >= p.min_excess)
            )
        return out


@cache
def _rank_tail(k: int, j: int) -> np.ndarray:
    """``P(at least x of k recent months exceed the j-th largest of m earlier ones)``
    for exchangeable months, indexed ``[m, x]``: among the top ``x + j - 1`` of all
    ``m + k`` months at least ``x`` are recent (a hypergeometric tail).

    Examples
    --------
    >>> float(_rank_tail(3, 1)[24, 3]) == 1 / math.comb(27, 3)
    True
    >>> float(_rank_tail(3, 2)[24, 0])
    1.0
    """
    table = np.ones((SHIFT_BASELINE + 1, k + 1))
    for m in range(SHIFT_BASELINE + 1):
        n = m + k
        for x in range(1, k + 1):
            draws = min(x + j - 1, n)
            total = math.comb(n, draws)
            table[m, x] = sum(math.comb(k, s) * math.comb(m, draws - s) for s in range(x, min(k, draws) + 1)) / total
    table.flags.writeable = False  # shared by every call (cached)
    return table
