"""An oracle bound for the labelled scenario: how well could *any* per-month test do?

The oracle knows every hub series' true model without surges (``NullModel`` from
:mod:`benchmarks.scenarios.labelled`: the expected number of declarations of each month,
season, trend, the dip and the macro shock included, the over-dispersion, and the value
distribution of a declaration), but not which series surge or when. For each series-month
it computes

- the exact negative-binomial tail of the month's declaration count, as a z-score;
- the mean standardized log value of the month's declarations, a z-score under the null
  (a surge also raises the value of each declaration), leaving out the largest one when there
  are three or more (a one-off giant shipment);

combines the two (Stouffer), and pools the last one, two or three months (Stouffer again),
keeping the best: a surge is a step or a ramp. Its threshold is read off its own score curve
with the truth, at the false-alarm rate asked for: its best operating point. A detector that
must learn each lane's null from its past does worse; the gap between the two is what better
modelling could still win, and the oracle's own misses are what the data do not carry.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from benchmarks.scenarios.labelled import NullModel
from benchmarks.scoring import Key

WARMUP_MONTHS = 24
POOLED = (1, 2, 3)


def month_scores(null: NullModel) -> np.ndarray:
    """The oracle's score per hub series-month, ``(series, months)``; higher is more unusual.

    Examples
    --------
    >>> keys = (("DE", "KG", "export", "854231"),)
    >>> null = NullModel(keys=keys, expected=np.full((1, 3), 2.0), shape=np.array([20.0]),
    ...     count=np.array([[2.0, 2.0, 9.0]]), z_sum=np.array([[0.1, -0.3, 4.5]]),
    ...     z_max=np.array([[0.9, 0.2, 1.4]]))
    >>> s = month_scores(null)
    >>> bool(s[0, 2] > 3 > s[0, 0])
    True
    """
    n = null.count
    shape = null.shape[:, None] * np.ones_like(n)
    prob = shape / (shape + null.expected)
    # P(N >= n) for a negative binomial: the regularized incomplete beta I_{1-prob}(n, size)
    tail = np.where(n > 0, special.betainc(np.maximum(n, 1.0), shape, 1.0 - prob), 1.0)
    z_count = np.clip(-special.ndtri(np.clip(tail, 1e-300, 1.0)), -10.0, 40.0)
    kept = np.where(n >= 3, n - 1, n)
    z_sum = np.where(n >= 3, null.z_sum - null.z_max, null.z_sum)
    z_value = np.where(kept > 0, z_sum / np.sqrt(np.maximum(kept, 1.0)), 0.0)
    month = (z_count + z_value) / np.sqrt(2.0)
    best = month.copy()
    for w in POOLED[1:]:
        pooled = sum(np.roll(month, k, axis=1) for k in range(w)) / np.sqrt(w)
        pooled[:, : w - 1] = -np.inf
        best = np.maximum(best, pooled)
    return best


def scored(null: NullModel, first: int) -> list[tuple[Key, int, float]]:
    """``(series key, month, score)`` for every evaluated series-month (after the warm-up),
    months on :func:`benchmarks.scoring.month_index`'s axis with ``first`` the window's first."""
    scores = month_scores(null)
    return [(key, first + t, float(scores[s, t]))
            for s, key in enumerate(null.keys) for t in range(WARMUP_MONTHS, scores.shape[1])]
