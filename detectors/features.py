"""Engineered features of a lane-month, for learned detectors and baselines.

Every feature is a ratio or a test statistic, so it does not depend on the
currency or the size of the lane: a model trained on many lanes compares like
with like.
"""

from __future__ import annotations

import numpy as np

from transitwatch.detectors.base import Window
from transitwatch.detectors.numeric import nan_to_num
from transitwatch.detectors.seasonal import SurgeScores

FEATURES = (
    "z",  # hurdle z of the month's value
    "z_robust",  # the same with the largest declaration replaced by a typical one
    "log_ratio",  # log of observed / expected value
    "log_record",  # log of observed / largest of the last 12 usable months
    "count_z",  # -log10 of the count test's tail probability (0 where counts are unknown)
    "trading_share",  # share of the last 24 months with trade
    "sigma",  # the lane's log spread
    "log_ratio_prev",  # last month's log ratio against this month's expected value
    "top_share",  # share of the month's value in its largest declaration (0 where unknown)
)


def features(window: Window, surge: SurgeScores) -> np.ndarray:
    """A ``(n, len(FEATURES))`` float matrix, finite everywhere.

    Examples
    --------
    >>> from transitwatch.detectors.seasonal import SeasonalSurgeDetector
    >>> from transitwatch.detectors.table import window_for
    >>> w = window_for([[100.0, 120, 90, 110] * 9], value=[900.0], count=[float("nan")])
    >>> x = features(w, SeasonalSurgeDetector().score_many(w))
    >>> x.shape, bool(np.isfinite(x).all())
    ((1, 9), True)
    """
    v = window.value
    hist = window.values
    usable = ~np.isnan(hist) & ~window.protected
    expected = nan_to_num(surge.expected)
    last12 = np.where(usable[:, -12:], hist[:, -12:], 0.0).max(axis=1, initial=0.0)
    known24 = (~np.isnan(hist[:, -24:])).sum(axis=1)
    trading = ((hist[:, -24:] > 0) & usable[:, -24:]).sum(axis=1) / np.maximum(known24, 1)
    prev = nan_to_num(hist[:, -1])
    with np.errstate(divide="ignore", invalid="ignore"):
        top = np.where(np.isnan(window.max_item) | (v <= 0), 0.0, window.max_item / v)
        cols = [
            surge.z,
            surge.z_robust,
            np.log1p(v) - np.log1p(expected),
            np.log1p(v) - np.log1p(last12),
            -np.log10(np.clip(surge.p_count, 1e-300, 1.0)),
            trading,
            surge.sigma,
            np.log1p(prev) - np.log1p(expected),
            top,
        ]
    x = np.stack(cols, axis=1)
    return nan_to_num(x, nan=0.0, posinf=50.0, neginf=-50.0)
