"""Novelty: a watched HS code appearing on a lane that had (almost) none.

"Never-before" lanes are what analysts chase first: HS 854239 to Armenia went
from EUR 0.01m to 1.98m in 2022. A lane is new when all of the last
``lookback`` months are known and their mean value is under
``baseline_max`` or under ``baseline_share`` of the month's value; it alerts when the month reaches ``min_value``, from at
least ``min_count`` declarations. One shipment alone, or a monthly statistic
(which does not count declarations), is a candidate that needs a second
material month. With declarations, "several" means a Poisson tail under
the lane's past rate of at most ``count_alpha``.

**Pooled**: an intermittent lane (material in alternate months, or two of three) never has
two material months in a row, and each lone one is learned into its baseline when the next
month is quiet. So the test also pools: the month alerts when it is material, at least
``pool_min`` of the last ``pool_months`` months (this one included) were material, and the
lane was near empty in the rest of the ``lookback`` months (the pool's months left out of the
baseline), and the pool's material months are unlikely under the lane's whole history: with
``k`` material months among the ``n`` known ones before the pool, ``m`` of the pool's months
material has a chance of at most ``C(pool_months, m) * prod((k + 0.5 + i) / (n + 1 + i) for
i < m)``, which must be under ``pool_alpha`` (a trace lane with a spike now and then is not
new when two spikes fall in one pool). A steady lane that turns intermittent with the same
total is never near empty, so it does not pass; ``pool_months = 1`` switches pooling off.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import special

from transitwatch.detectors.base import Window
from transitwatch.detectors.numeric import nan_to_num
from transitwatch.detectors.params import check_positive, check_range


@dataclass(frozen=True, kw_only=True, slots=True)
class NoveltyParams:
    """Parameters of :class:`NoveltyDetector`.

    Examples
    --------
    >>> NoveltyParams(lookback=3)
    Traceback (most recent call last):
    ...
    transitwatch.detectors.errors.InvalidParameterError: invalid parameter lookback=3: expected a number in [6, 36]
    """

    lookback: int = 12
    baseline_max: float = 2_000.0
    min_value: float = 50_000.0
    min_count: int = 2
    baseline_share: float = 0.05
    count_alpha: float = 1e-4
    pool_months: int = 3
    pool_min: int = 2
    pool_alpha: float = 0.01

    def __post_init__(self) -> None:
        check_range(self, "lookback", 6, 36)
        check_positive(self, "baseline_max", allow_zero=True)
        check_positive(self, "min_value")
        check_range(self, "min_count", 1, 1000)
        check_range(self, "baseline_share", 0.0, 0.5)
        check_range(self, "count_alpha", 1e-12, 0.5)
        check_range(self, "pool_months", 1, self.lookback // 2)
        check_range(self, "pool_alpha", 1e-9, 0.5)
        if self.pool_months > 1:
            check_range(self, "pool_min", 2, self.pool_months)


@dataclass(frozen=True, slots=True)
class NoveltyScores:
    baseline: np.ndarray  # the near-empty level judged against (the pooled one where pooled fired)
    candidate: np.ndarray
    fired: np.ndarray
    pooled: np.ndarray  # fired by the pooled test: enough material months of the last pool_months


class NoveltyDetector:
    """Flags material trade on lanes with a near-empty, fully known baseline.

    Examples
    --------
    >>> from transitwatch.detectors.table import window_for
    >>> w = window_for([[0.0] * 36], value=[80_000.0], count=[3.0])
    >>> bool(NoveltyDetector().score_many(w).fired[0])
    True

    Monthly statistics, material in alternate months: the second material month alerts.

    >>> w = window_for([[0.0] * 33 + [1e6, 0.0]], value=[9e5], count=[float("nan")])
    >>> s = NoveltyDetector().score_many(w)
    >>> bool(s.fired[0]), bool(s.pooled[0])
    (True, True)
    """

    name = "novelty"

    def __init__(self, params: NoveltyParams | None = None) -> None:
        self.params = params or NoveltyParams()

    def score_many(self, window: Window) -> NoveltyScores:
        p = self.params
        recent = window.values[:, -p.lookback :]
        known = ~np.isnan(recent).any(axis=1)
        usable = np.where(window.protected[:, -p.lookback :], np.nan, recent)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            baseline = nan_to_num(np.nanmean(usable, axis=1))
        near_empty = baseline <= np.maximum(p.baseline_max, p.baseline_share * window.value)
        candidate = known & near_empty & (window.value >= p.min_value)
        # Several declarations where there were almost none is itself unlikely;
        # otherwise (one shipment, or monthly statistics) wait for a second month.
        past = np.where(np.isnan(window.counts[:, -p.lookback :]), 0.0, window.counts[:, -p.lookback :]).sum(axis=1)
        rate = (past + 0.5) / (p.lookback + 1.0)
        count = nan_to_num(window.count)
        unlikely = special.pdtrc(np.maximum(count - 1.0, 0.0), rate) <= p.count_alpha
        enough = ((count >= p.min_count) & unlikely) | window.protected[:, -1]
        pooled, pooled_baseline = self._pooled(window, known, usable)
        return NoveltyScores(
            baseline=np.where(pooled, pooled_baseline, baseline),
            candidate=candidate | pooled,
            fired=(candidate & enough) | pooled,
            pooled=pooled,
        )

    def _pooled(self, window: Window, known: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pooled test (module docstring) and its baseline: the ``lookback`` months
        without the pool's earlier months, which may have been learned (a lone material
        month followed by a quiet one is released into the baseline)."""
        p = self.params
        n = window.n
        if p.pool_months == 1:
            return np.zeros(n, dtype=bool), np.full(n, np.nan)
        earlier = p.pool_months - 1
        material = (nan_to_num(window.values[:, -earlier:]) >= p.min_value).sum(axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            baseline = nan_to_num(np.nanmean(usable[:, :-earlier], axis=1))
        near_empty = baseline <= np.maximum(p.baseline_max, p.baseline_share * window.value)
        before = window.values[:, :-earlier]
        n_before = (~np.isnan(before)).sum(axis=1)
        k_before = (nan_to_num(before) >= p.min_value).sum(axis=1)
        m = material + 1
        steps = np.arange(p.pool_months)[None, :]
        chance = special.comb(p.pool_months, m) * np.where(
            steps < m[:, None], (k_before[:, None] + 0.5 + steps) / (n_before[:, None] + 1.0 + steps), 1.0).prod(axis=1)
        pooled = (known & near_empty & (window.value >= p.min_value) & (m >= p.pool_min)
                  & (chance <= p.pool_alpha))
        return pooled, baseline
