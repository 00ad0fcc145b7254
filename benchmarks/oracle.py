"""An oracle bound for the labelled scenario: how well could *any* per-month test do?

The oracle knows every hub series' true model without surges (``NullModel`` from
:mod:`benchmarks.scenarios.labelled`: the expected number of declarations of each month,
season, trend, the dip and the macro shock included, the over-dispersion, the value
distribution of a declaration, and the rate of new consignees per declaration), but not which
series surge or when. For each series-month it computes

- the exact negative-binomial tail of the month's declaration count, as a z-score;
- the mean standardized log value of the month's declarations, a z-score under the null
  (a surge also raises the value of each declaration), leaving out the largest one when there
  are three or more (a one-off giant shipment);
- the Poisson tail of the month's new consignees (not seen on the series in 36 months) given
  its declarations, as a z-score (0 for none);

combines them (a weighted Stouffer sum: count 1, value 0.5, new consignees 1), and pools the
last one, two or three months (Stouffer again), keeping the best: a surge is a step or a ramp.
The weights are the best of those tried at seeds 1 and 2 (value 0, 0.25, 0.5, 0.75, 1 without
consignees, event F1 0.729, 0.741, 0.746, 0.729 and 0.716 at seed 1; then consignees 0.5, 1, 2:
0.775, 0.805, 0.794): surges multiply mostly the number of declarations, so the count carries
most of the evidence, and part of the new declarations go to new buyers. Like the threshold,
which is read off the oracle's own score curve with the truth at the false-alarm rate asked
for, they are chosen in the oracle's favour.

:func:`learned_scores` is the same test with the null *learned* from each series' own past, as
any real detector must: the gap between the two is what learning each lane's normal from 24
noisy months costs, and the oracle's own misses are what the data do not carry.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from benchmarks.scenarios.labelled import NullModel
from benchmarks.scoring import Key
from transitwatch.detectors.consignees import party_z

WARMUP_MONTHS = 24
POOLED = (1, 2, 3)
VALUE_WEIGHT = 0.5
PARTY_WEIGHT = 1.0


def _count_z(count: np.ndarray, expected: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """The exact negative-binomial tail ``P(N >= count)`` (mean ``expected``, size ``shape``) as
    a z-score: the regularized incomplete beta ``I_{1-prob}(count, size)``."""
    prob = shape / (shape + expected)
    tail = np.where(count > 0, special.betainc(np.maximum(count, 1.0), shape, 1.0 - prob), 1.0)
    return np.clip(-special.ndtri(np.clip(tail, 1e-300, 1.0)), -10.0, 40.0)


def _pooled(month: np.ndarray) -> np.ndarray:
    """The best of the month's score and its Stouffer pools with the one or two months before."""
    best = month.copy()
    for w in POOLED[1:]:
        pooled = sum(np.roll(month, k, axis=1) for k in range(w)) / np.sqrt(w)
        pooled[:, : w - 1] = -np.inf
        best = np.maximum(best, pooled)
    return best


def month_scores(null: NullModel, value_weight: float = VALUE_WEIGHT,
                 party_weight: float = PARTY_WEIGHT) -> np.ndarray:
    """The oracle's score per hub series-month, ``(series, months)``; higher is more unusual.
    A weight of 0 leaves that evidence out: ``value_weight=0, party_weight=0`` is the count
    alone. The new consignees' evidence needs ``null.new_parties``.

    Examples
    --------
    >>> keys = (("DE", "KG", "export", "854231"),)
    >>> null = NullModel(keys=keys, expected=np.full((1, 3), 2.0), shape=np.array([20.0]),
    ...     count=np.array([[2.0, 2.0, 9.0]]), z_sum=np.array([[0.1, -0.3, 4.5]]),
    ...     z_max=np.array([[0.9, 0.2, 1.4]]))
    >>> s = month_scores(null, party_weight=0.0)
    >>> bool(s[0, 2] > 3 > s[0, 0])
    True
    """
    n = null.count
    z_count = _count_z(n, null.expected, null.shape[:, None] * np.ones_like(n))
    kept = np.where(n >= 3, n - 1, n)
    z_sum = np.where(n >= 3, null.z_sum - null.z_max, null.z_sum)
    z_value = np.where(kept > 0, z_sum / np.sqrt(np.maximum(kept, 1.0)), 0.0)
    month = z_count + value_weight * z_value
    if party_weight:
        month = month + party_weight * party_z(null.new_parties, null.new_rate * n)
    return _pooled(month / np.sqrt(1.0 + value_weight**2 + party_weight**2))


def learned_scores(null: NullModel, months: int = 24, keep_out: float = 3.0, relearn_after: int = 6,
                   party_weight: float = 0.0, party_prior: float = 50.0) -> np.ndarray:
    """The count-only oracle with its expected count *learned*: each month's expected count is
    the series' mean count over its ``months`` months before. After the warm-up, a month that
    scores ``keep_out`` or more is left out of later means (a surge is not learned as normal)
    until ``relearn_after`` such months in a row say the lane has a new level. The
    over-dispersion stays known. Set against ``month_scores(null, 0, 0)``, it measures what
    learning each lane's normal from its own short past costs, apart from any detector's design.

    ``party_weight`` above 0 adds the new consignees' evidence, also learned: the series' new
    consignees per declaration over the same months, shrunk towards the rate over all series
    (``party_prior`` declarations' worth).

    Examples
    --------
    >>> keys = (("DE", "KG", "export", "854231"),)
    >>> count = np.array([[2.0, 1, 3, 2, 2, 1, 3, 2, 9]])
    >>> null = NullModel(keys=keys, expected=np.full((1, 9), 2.0), shape=np.array([20.0]),
    ...     count=count, z_sum=np.zeros((1, 9)), z_max=np.zeros((1, 9)))
    >>> s = learned_scores(null, months=6)
    >>> bool(s[0, 8] > 3 > s[0, 7])
    True
    """
    n = null.count
    month = np.full(n.shape, -np.inf)
    usable = np.ones(n.shape, dtype=bool)
    streak = np.zeros(n.shape[0], dtype=int)
    for t in range(1, n.shape[1]):
        lo = max(0, t - months)
        k = usable[:, lo:t].sum(axis=1)
        mean = (np.where(usable[:, lo:t], n[:, lo:t], 0.0).sum(axis=1) + 0.5) / (k + 1.0)
        z = _count_z(n[:, t], mean, null.shape * 1.0)
        unusual = (z >= keep_out) & (t >= WARMUP_MONTHS)
        if party_weight:
            use = usable[:, lo:t]
            new = np.where(use, null.new_parties[:, lo:t], 0.0).sum(axis=1)
            decl = np.where(use, n[:, lo:t], 0.0).sum(axis=1)
            overall = new.sum() / max(decl.sum(), 1.0)
            rate = (new + party_prior * overall) / (decl + party_prior)
            z = (z + party_weight * party_z(null.new_parties[:, t], rate * n[:, t])) / np.sqrt(1.0 + party_weight**2)
        month[:, t] = z
        streak = np.where(unusual, streak + 1, 0)
        usable[:, t] = ~unusual | (streak >= relearn_after)
    return _pooled(month)


def scored(null: NullModel, first: int, scores: np.ndarray | None = None) -> list[tuple[Key, int, float]]:
    """``(series key, month, score)`` for every evaluated series-month (after the warm-up),
    months on :func:`benchmarks.scoring.month_index`'s axis with ``first`` the window's first;
    ``scores`` from :func:`month_scores` unless given."""
    scores = month_scores(null) if scores is None else scores
    return [(key, first + t, float(scores[s, t]))
            for s, key in enumerate(null.keys) for t in range(WARMUP_MONTHS, scores.shape[1])]
