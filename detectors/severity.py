"""Severity: how sure an alert is, how much it matters, and the two combined.

A run tests every lane every month: tens of thousands of lane-months on the
Eurostat sample, millions on a world-wide feed. A month with ``p = 0.001`` on its
own lane is then expected dozens of times by chance, so an alert's
*confidence* is graded on the **family** of lane-months a run may test
(``[policy] family_size``, by default :func:`watch_family` of the watch's lists:
an engine holding some HS6 codes must grade exactly as one holding all of them,
so it cannot be "rows in this engine"). Its *materiality* is the money and the
goods. ``severity`` combines the two (:data:`SEVERITY_TABLE`);
``docs/alerts.md`` has the rule with worked examples.

Lines of evidence, each a p-value for the lane-month under the lane's own past:

* **month**: the seasonal surge test of the month (``SurgeScores.p_value``, the
  alert record's ``p_value``; value, count and frequency tests, Bonferroni);
* **months pooled**: the month with the one or two before it (Stouffer sum of
  their value z-scores against this month's baseline), the evidence of a rise
  that lasts;
* **new consignees**: the new-consignee detector's pooled statistic (count,
  value and new buyers), deflated as if count and value were perfectly
  correlated (they come from the same shipments);
* **new lane**: where novelty fired, the chance of this many material months in
  a row given how few the lane had in its known months (the hurdle probability
  of the surge test, with a Jeffreys prior), or the Poisson tail of its
  declarations.

The lane's evidence ``p_evidence`` is the smallest line times the number of
lines (Bonferroni: valid whatever their dependence). *Agreeing lines* are not
p-values for the lane, so they only lift medium confidence to high: diversion
(the same goods to Russia collapsing) and a peer (another reporter's lane into
the same hub and HS6 alerting alone with high confidence, :func:`best_peer`).
The value and count tests of one month are not agreement: same shipments.

A case that opens 1-6 months after its goods were banned for export to Russia or
Belarus (:mod:`transitwatch.detectors.sanctions`, ``[sanctions]``) is the pattern of re-export
through a hub: :func:`sanctions_step` raises confidence one grade, to *high* at
most, so it can never by itself make an alert *critical* (which needs *very high*:
the month's own test, family-wise, at most ``alpha_critical``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from transitwatch.detectors.numeric import nan_to_num

CONFIDENCES = ("low", "medium", "high", "very high")
MATERIALITIES = ("low", "medium", "high", "very high")

#: ``SEVERITY_TABLE[confidence, materiality]``: an index into ``SEVERITIES``
#: (low, medium, high, critical). Rows and columns never decrease.
SEVERITY_TABLE = np.array(
    [
        # materiality: low, medium, high, very high
        [0, 0, 0, 1],  # confidence low: weak evidence is medium only for very large money
        [0, 1, 1, 2],  # medium: at most one chance alert this strong in the family; high for very large money
        [1, 2, 2, 2],  # high: family-wise p <= alpha_high
        [1, 2, 3, 3],  # very high: the month alone, family-wise p <= alpha_critical
    ],
    dtype=np.int64,
)

_TINY = 1e-300

#: Reporters of a watch that names none ("every reporter"): the ISO 3166-1 countries.
ALL_REPORTERS = 249
#: Lanes of the shipped watch: every reporter, 22 transit hubs and Russia and Belarus, two
#: flows, the 50 CHPL codes. A policy built without a watch grades on these.
SHIPPED_LANES = ALL_REPORTERS * 24 * 2 * 50


def watch_family(*, reporters: int, partners: int, flows: int, hs6: int, months: int) -> float:
    """The lane-months a watch may test: reporters (:data:`ALL_REPORTERS` for none
    named) x partners (hubs and destinations) x flows x HS6 codes x ``months``.

    Every lane an engine can hold is in it, so an engine holding some of the HS6
    codes grades as one holding all of them, and a run of up to ``months`` months
    tests no more lane-months than this.

    Examples
    --------
    >>> watch_family(reporters=1, partners=1, flows=2, hs6=1, months=120)  # one lane, e.g. AM>RU gold
    240.0
    >>> watch_family(reporters=0, partners=24, flows=2, hs6=50, months=120) == SHIPPED_LANES * 120
    True
    """
    return float((reporters or ALL_REPORTERS) * partners * flows * hs6 * months)


def family_p(p: np.ndarray, family_size: float) -> np.ndarray:
    """Bonferroni over the family: ``min(1, p * family_size)``.

    Examples
    --------
    >>> family_p(np.array([1e-9, 1e-6, 0.5]), 57_000).round(6).tolist()
    [5.7e-05, 0.057, 1.0]
    """
    return np.minimum(1.0, np.asarray(p, dtype=float) * family_size)


def pooled_months_p(z: np.ndarray, z_prev: np.ndarray, z_prev2: np.ndarray) -> np.ndarray:
    """The month with the one or two before it: the better of the two Stouffer
    sums of value z-scores, times 2 for the choice.

    Examples
    --------
    >>> p = pooled_months_p(np.array([4.0, 4.0]), np.array([4.0, -2.0]), np.array([4.0, 0.0]))
    >>> [f"{x:.1e}" for x in p]
    ['4.3e-12', '1.6e-01']
    """
    z2 = (z + z_prev) / np.sqrt(2.0)
    z3 = (z + z_prev + z_prev2) / np.sqrt(3.0)
    return np.minimum(1.0, 2.0 * np.maximum(special.ndtr(-np.maximum(z2, z3)), _TINY))


def combined_z_p(statistic: np.ndarray, *, value_weight: float, party_weight: float, pools: int = 3) -> np.ndarray:
    """The new-consignee detector's best pooled statistic as a p-value.

    It is a weighted Stouffer sum of the count, value and new-consignee z-scores
    scaled for independence; count and value come from the same shipments, so it
    is rescaled to the spread it would have were they perfectly correlated, and
    multiplied by the ``pools`` (1 to 3 months) it chose from.

    Examples
    --------
    >>> float(combined_z_p(np.array([0.0]), value_weight=0.5, party_weight=1.0)[0])
    1.0
    >>> f"{combined_z_p(np.array([8.0]), value_weight=0.5, party_weight=1.0)[0]:.1e}"
    '4.2e-11'
    """
    independent = np.sqrt(1.0 + value_weight**2 + party_weight**2)
    correlated = np.sqrt((1.0 + value_weight) ** 2 + party_weight**2)
    z = np.asarray(statistic, dtype=float) * independent / correlated
    return np.where(z > 0, np.minimum(1.0, pools * np.maximum(special.ndtr(-z), _TINY)), 1.0)


def new_lane_p(
    values: np.ndarray, value: np.ndarray, *, min_value: float, count: np.ndarray, counts: np.ndarray, lookback: int,
    pool: int = 1,
) -> np.ndarray:
    """A p-value for material trade on a lane that had little: the smaller of two, times 2.

    *Months*: the month and the run of material months (at least ``min_value``)
    just before it make ``m`` months in a row; in the ``n`` known months before
    them the lane had ``k`` material ones. Were months exchangeable with an
    unknown chance of being material (Jeffreys prior, as the surge test's
    hurdle), the chance of ``m`` in a row is
    ``prod((k + 0.5 + i) / (n + 1 + i) for i < m)``. *Pooled* (``pool > 1``, the novelty
    test's ``pool_months``): ``m`` material months among the last ``pool`` (this one
    included), not necessarily in a row, with ``n`` and ``k`` counted before them: the same
    product times the ``C(pool, m)`` ways to place them; the smaller of the run's and the
    pool's is the months' p-value. *Declarations*: the month's
    count against the lane's rate over ``lookback`` months (the novelty
    detector's Poisson test). 1 where the month is under ``min_value``.

    Examples
    --------
    >>> h = np.zeros((1, 36))
    >>> f"{new_lane_p(h, np.array([80e3]), min_value=50e3, count=np.array([np.nan]), counts=h * np.nan, lookback=12)[0]:.3f}"
    '0.027'
    >>> h[0, -1] = 90e3  # a second material month in a row
    >>> f"{new_lane_p(h, np.array([80e3]), min_value=50e3, count=np.array([np.nan]), counts=h * np.nan, lookback=12)[0]:.4f}"
    '0.0011'
    >>> h[0, -2:] = [90e3, 0.0]  # material two months ago, not last month
    >>> f"{new_lane_p(h, np.array([80e3]), min_value=50e3, count=np.array([np.nan]), counts=h * np.nan, lookback=12, pool=3)[0]:.4f}"
    '0.0036'
    """
    known = ~np.isnan(values)
    material = known & (values >= min_value)
    h = values.shape[1]
    # the run of material months that ends last month
    run = np.zeros(values.shape[0], dtype=np.int64)
    going = np.ones(values.shape[0], dtype=bool)
    for j in range(h - 1, -1, -1):
        going &= material[:, j]
        run += going
    n = known.sum(axis=1) - run
    k = material.sum(axis=1) - run
    m = run + 1
    steps = np.arange(h + 1)[None, :]
    factors = np.where(steps < m[:, None], (k[:, None] + 0.5 + steps) / (n[:, None] + 1.0 + steps), 1.0)
    p_months = factors.prod(axis=1)
    if pool > 1:
        m_pool = material[:, h - (pool - 1):].sum(axis=1) + 1
        n_pool = known[:, : h - (pool - 1)].sum(axis=1)
        k_pool = material[:, : h - (pool - 1)].sum(axis=1)
        pooled = np.where(steps < m_pool[:, None],
                          (k_pool[:, None] + 0.5 + steps) / (n_pool[:, None] + 1.0 + steps), 1.0).prod(axis=1)
        p_months = np.minimum(p_months, special.comb(pool, m_pool) * pooled)
    past = nan_to_num(counts[:, -lookback:]).sum(axis=1)
    rate = (past + 0.5) / (lookback + 1.0)
    c = nan_to_num(count)
    p_count = np.where(c > 0, special.pdtrc(np.maximum(c - 1.0, 0.0), rate), 1.0)
    p = np.minimum(1.0, 2.0 * np.maximum(np.minimum(p_months, p_count), _TINY))
    return np.where(value >= min_value, p, 1.0)


def best_peer(p: np.ndarray, group: np.ndarray, alone: np.ndarray) -> np.ndarray:
    """The smallest ``p`` among the *other* lanes of each lane's group (hub, flow and
    HS6) that alert on their own (``alone``); ``inf`` where there is none.

    Examples
    --------
    >>> best_peer(np.array([1e-4, 1e-5, 0.5, 1e-3]), np.array([0, 0, 0, 1]),
    ...           np.array([True, True, False, True])).tolist()
    [1e-05, 0.0001, 1e-05, inf]
    """
    n = p.shape[0]
    if n == 0:
        return np.full(0, np.inf)
    groups = int(group.max()) + 1
    own = np.where(alone, p, np.inf)
    best = np.full(groups, np.inf)
    np.minimum.at(best, group, own)
    holder = np.full(groups, n)  # the first row holding its group's best
    rows = np.flatnonzero(alone & (own == best[group]))
    np.minimum.at(holder, group[rows], rows)
    is_holder = holder[group] == np.arange(n)
    second = np.full(groups, np.inf)
    np.minimum.at(second, group, np.where(is_holder, np.inf, own))
    return np.where(is_holder, second[group], best[group])


def union_p(*lines: np.ndarray, count: int | None = None) -> np.ndarray:
    """The smallest p-value times the number of lines (Bonferroni; ``count`` overrides it).

    Examples
    --------
    >>> union_p(np.array([1e-6, 0.2]), np.array([1e-3, 0.3])).tolist()
    [2e-06, 0.4]
    """
    k = len(lines) if count is None else count
    return np.minimum(1.0, k * np.minimum.reduce([np.asarray(x, dtype=float) for x in lines]))


def confidence(
    p_month: np.ndarray,
    p_evidence: np.ndarray,
    agree: np.ndarray,
    *,
    family_size: float,
    alpha_critical: float,
    alpha_high: float,
) -> np.ndarray:
    """Index into :data:`CONFIDENCES`.

    *very high*: the month's own test, family-wise, at most ``alpha_critical``
    (``p_month`` is NaN where the surge test cannot score the lane: then at most
    high); *high*: the lane's evidence, family-wise, at most ``alpha_high``, or
    *medium* evidence with an independent line agreeing (``agree``); *medium*: at
    most one alert this strong expected by chance in ``family_size`` lane-months
    (``p_evidence * family_size <= 1``); *low*: the rest.

    Examples
    --------
    >>> confidence(np.array([1e-12, 1e-8, np.nan, 1e-7, 1e-7, 1e-3]), np.array([1e-12, 1e-8, 1e-8, 1e-7, 1e-7, 1e-3]),
    ...            np.array([False, False, False, False, True, True]),
    ...            family_size=1e6, alpha_critical=1e-3, alpha_high=0.05).tolist()
    [3, 2, 2, 1, 2, 0]
    """
    month = np.where(np.isnan(p_month), np.inf, p_month) * family_size
    expected = np.asarray(p_evidence, dtype=float) * family_size
    level = np.select([month <= alpha_critical, expected <= alpha_high, expected <= 1.0], [3, 2, 1], default=0)
    return np.where(agree & (level == 1), 2, level).astype(np.int64)


def sanctions_step(confidence_index: np.ndarray, evidence: np.ndarray) -> np.ndarray:
    """Confidence one grade up where the sanctions calendar is evidence (``evidence``), to
    *high* at most: *very high* stays the month's own test's alone.

    Examples
    --------
    >>> sanctions_step(np.array([0, 1, 2, 3, 1]), np.array([True, True, True, True, False])).tolist()
    [1, 2, 2, 3, 1]
    """
    level = np.asarray(confidence_index, dtype=np.int64)
    return np.where(evidence & (level < 2), level + 1, level).astype(np.int64)


def materiality(
    excess: np.ndarray, priority: np.ndarray, *, minor: float, large: float, very_large: float
) -> np.ndarray:
    """Index into :data:`MATERIALITIES`: the month's excess over its expected value
    (under ``minor``: low; ``minor``: medium; ``large``: high; ``very_large``: very
    high), one step up for CHPL tier 1 or 2 goods (``priority``) once the excess
    reaches ``minor``.

    Examples
    --------
    >>> materiality(np.array([10e3, 60e3, 60e3, 300e3, 3e6]), np.array([True, False, True, False, False]),
    ...             minor=50e3, large=250e3, very_large=2.5e6).tolist()
    [0, 1, 2, 2, 3]
    """
    x = nan_to_num(np.asarray(excess, dtype=float), nan=0.0)
    level = (x >= minor).astype(np.int64) + (x >= large) + (x >= very_large) + ((x >= minor) & priority)
    return np.minimum(level, len(MATERIALITIES) - 1)


def severity(confidence_index: np.ndarray, materiality_index: np.ndarray) -> np.ndarray:
    """Index into ``SEVERITIES``: :data:`SEVERITY_TABLE` at (confidence, materiality).

    Examples
    --------
    >>> severity(np.array([3, 3, 2, 0]), np.array([2, 1, 3, 3])).tolist()
    [3, 2, 2, 1]
    """
    return SEVERITY_TABLE[confidence_index, materiality_index]


@dataclass(frozen=True, slots=True)
class Grades:
    """Per-series grading of one month (arrays of length n)."""

    p_family: np.ndarray  # the month's own test, family-wise (NaN where the surge test cannot score)
    p_evidence: np.ndarray  # every line of evidence, for the lane-month (before the family)
    confidence: np.ndarray  # index into CONFIDENCES
    materiality: np.ndarray  # index into MATERIALITIES
    severity: np.ndarray  # index into SEVERITIES
