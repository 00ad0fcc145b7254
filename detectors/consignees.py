"""New consignees: a surge carried by buyers the lane has never used.

Re-export through a hub runs through new buyers: shell companies registered in
Bishkek or Yerevan months before, which start receiving goods the lane already
carried. The declarations say so: a month's *new consignees* are those the
series (reporter, partner, flow, hs6) had not seen in
:data:`~transitwatch.detectors.base.PARTY_MEMORY_MONTHS` months. A lane has its own churn of
one-off buyers, so the test is against the lane's own rate of new consignees
per declaration, learned from its last 24 unprotected months and shrunk towards
``prior_rate`` (``prior_declarations`` declarations' worth), which is generous:
a lane must show a low churn before one new buyer says anything.

The evidence of a month is three z-scores combined (a weighted Stouffer sum):
the declaration count's negative-binomial tail and the robust value test of the
seasonal detector, and the Poisson tail of the new consignees given the month's
declarations. Months pool as the surge detector's do (the month alone, with the
month before, with the two before: a surge steps or builds), and the detector
fires when the best pool passes ``threshold``, the month itself is up, new
consignees are part of the evidence and the month is material. Monthly
statistics carry no consignees: this detector is silent on them.

A second route fires on *one-buyer* surges (a shell company taking one or two
large declarations a month), which the pooled test misses: the robust value
drops the month's largest declaration, and one new name is not unusual. It
reads the month's value to its largest new consignee (``Window.new_top``). Under
the lane's own null a declaration goes to a new consignee at the lane's learned
rate ``r`` (new consignees per declaration), whatever its size, so the chance
that a month is this far out of line on its *full* value (the seasonal test's
plain ``z``, the large declaration kept) *and* that its largest declaration went
to a new consignee is ``r * P(value or more)``: that joint tail, as a z-score,
is the route's evidence. It fires when that z reaches ``one_buyer_z``, the new
consignee took the largest declaration, ``one_buyer_share`` of the month and
``one_buyer_item_ratio`` times the lane's typical declaration, on a lane whose
churn is low (``r <= one_buyer_max_rate``) and a month that is material (see
:meth:`NewConsigneeDetector._one_buyer`). A giant declaration to a known buyer
(the decoy every robust test must ignore) never passes.

The shell company's second and third months are no longer new, and its first may fall
short (a partial month, or declarations not large against the lane's own), so the route
also looks back: where a new consignee *led* one of the last ``one_buyer_recent_months``
months (took its largest declaration and ``one_buyer_share`` of it: the table keeps each
month's value to such a consignee, ``Window.leads``, the lane's own history of new-buyer
values), more than any new consignee led a month of the lane's 24 before, and the lane has
stayed up since, the joint tail is ``r * P(pooled value or more)``, the plain value tests of
that month and the ones since pooled as the surge detector pools them, against the route's bar
corrected for the months one lead is tested in. Against the lane's
own record of new-buyer values, rather than against its typical declaration: a lane whose
one-off buyers take large declarations has a high record to beat (see
:meth:`NewConsigneeDetector._recent_buyer`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from transitwatch.detectors.base import Window
from transitwatch.detectors.numeric import nan_to_num
from transitwatch.detectors.params import check_positive, check_range
from transitwatch.detectors.seasonal import SurgeScores

LEARN_MONTHS = 24


@dataclass(frozen=True, kw_only=True, slots=True)
class ConsigneeParams:
    """Parameters of :class:`NewConsigneeDetector`.

    Examples
    --------
    >>> ConsigneeParams(prior_rate=0)
    Traceback (most recent call last):
    ...
    transitwatch.detectors.errors.InvalidParameterError: invalid parameter prior_rate=0: expected a number in [0.001, 1.0]
    """

    threshold: float = 3.5
    value_weight: float = 0.5
    party_weight: float = 1.0
    min_party_z: float = 1.5
    prior_rate: float = 0.05
    prior_declarations: float = 20.0
    min_months: int = 12
    min_excess: float = 10_000.0
    min_ratio: float = 1.5
    one_buyer_z: float = 2.5
    one_buyer_share: float = 0.5
    one_buyer_item_ratio: float = 12.0
    one_buyer_ratio: float = 2.0
    one_buyer_max_rate: float = 0.2
    one_buyer_recent_months: int = 2

    def __post_init__(self) -> None:
        check_positive(self, "threshold", "min_party_z", "prior_declarations", "min_ratio")
        check_positive(self, "one_buyer_z", "one_buyer_item_ratio", "one_buyer_ratio")
        check_range(self, "one_buyer_share", 0.0, 1.0)
        check_range(self, "one_buyer_max_rate", 0.0, 1.0)
        check_positive(self, "value_weight", "party_weight", "min_excess", allow_zero=True)
        check_range(self, "prior_rate", 0.001, 1.0)
        check_range(self, "min_months", 1, LEARN_MONTHS)
        check_range(self, "one_buyer_recent_months", 0, 2)


@dataclass(frozen=True, slots=True)
class ConsigneeScores:
    """Per-series outputs (arrays of length n)."""

    rate: np.ndarray  # new consignees per declaration, learned (NaN without a new one in three months)
    z_party: np.ndarray  # this month's new consignees as a z-score (0 for none)
    statistic: np.ndarray  # the best pooled combined z (0 without a new consignee in three months)
    months: np.ndarray  # months in that pool (1-3), this month and the ones before
    new: np.ndarray  # new consignees over those months
    expected: np.ndarray  # ... and how many their declarations would bring at the lane's rate (NaN: none new)
    z_one_buyer: np.ndarray  # the one-buyer route's joint z (0 where the largest declaration did not go to a new buyer)
    one_buyer: np.ndarray  # fired on the one-buyer route: a new buyer took the month's (or a recent month's) largest declaration
    fired: np.ndarray


def _z(tail: np.ndarray) -> np.ndarray:
    return np.clip(-special.ndtri(np.clip(tail, 1e-300, 1.0)), -10.0, 40.0)


def party_z(new: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """``P(N >= new)`` for a Poisson count of mean ``expected``, as a z-score; 0 for a month
    with no new consignee (no evidence either way) or unknown ones.

    Examples
    --------
    >>> [round(float(z), 2) for z in party_z(np.array([0.0, 1.0, 3.0, np.nan]), np.array([0.1, 0.1, 0.1, 0.1]))]
    [0.0, 1.31, 3.61, 0.0]
    """
    new = nan_to_num(new)
    tail = special.pdtrc(np.maximum(new - 1.0, 0.0), np.maximum(expected, 1e-12))
    return np.where(new > 0, np.maximum(_z(tail), 0.0), 0.0)


class NewConsigneeDetector:
    """Surges carried by consignees new to the lane.

    Examples
    --------
    >>> from transitwatch.detectors.seasonal import SeasonalSurgeDetector
    >>> from transitwatch.detectors.table import window_for
    >>> past = [[20_000.0] * 36]
    >>> w = window_for(past, value=[90_000.0], count=[9.0], counts=[[2.0] * 36],
    ...                parties=[[0.0] * 36], party=[4.0])
    >>> s = NewConsigneeDetector().score_many(w, SeasonalSurgeDetector().score_many(w))
    >>> bool(s.fired[0]), int(s.months[0])
    (True, 1)
    """

    name = "new_consignees"

    def __init__(self, params: ConsigneeParams | None = None) -> None:
        self.params = params or ConsigneeParams()

    def score_many(self, window: Window, surge: SurgeScores) -> ConsigneeScores:
        p = self.params
        n = window.n
        months = [
            (window.count, window.party, surge.z_robust),
            (window.counts[:, -1], window.parties[:, -1], surge.z_prev),
            (window.counts[:, -2], window.parties[:, -2], surge.z_prev2),
        ]
        # Only rows with a new consignee in the three months can fire: score those alone (most
        # rows of an early check have none). The others have no rate or expectation to report.
        z_party, best, span = np.zeros(n), np.zeros(n), np.ones(n, dtype=np.int64)
        new, expected, rate = nan_to_num(window.party), np.full(n, np.nan), np.full(n, np.nan)
        fired, one_buyer, z_one = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), np.zeros(n)
        rows = np.flatnonzero(nan_to_num(window.party) + nan_to_num(window.parties[:, -1])
                              + nan_to_num(window.parties[:, -2]) > 0)
        if rows.size:
            counts = window.counts[rows, -LEARN_MONTHS:]
            parties = window.parties[rows, -LEARN_MONTHS:]
            usable = ~np.isnan(counts) & ~np.isnan(parties) & ~window.protected[rows, -LEARN_MONTHS:]
            known = usable.sum(axis=1)
            seen = np.where(usable, parties, 0.0).sum(axis=1)
            declared = np.where(usable, counts, 0.0).sum(axis=1)
            r = rate[rows] = (seen + p.prior_declarations * p.prior_rate) / (declared + p.prior_declarations)
            size, prob = surge.count_size[rows], surge.count_prob[rows]
            norm = np.sqrt(1.0 + p.value_weight**2 + p.party_weight**2)
            combined, by_party, new_in, expected_in = [], [], [], []
            for count, party, z_value in months:
                c = nan_to_num(count[rows])
                z_count = np.where(c > 0, _z(special.betainc(np.maximum(c, 1.0), size, 1.0 - prob)), 0.0)
                zp = party_z(party[rows], r * c)
                combined.append((z_count + p.value_weight * z_value[rows] + p.party_weight * zp) / norm)
                by_party.append(zp)
                new_in.append(nan_to_num(party[rows]))
                expected_in.append(r * c)
            top, k_top, party_top = combined[0].copy(), np.ones(rows.size, dtype=np.int64), by_party[0].copy()
            new_top, expected_top = new_in[0].copy(), expected_in[0].copy()
            for k in (2, 3):
                pooled = sum(combined[:k]) / np.sqrt(k)
                better = pooled > top
                top = np.where(better, pooled, top)
                k_top = np.where(better, k, k_top)
                party_top = np.where(better, np.maximum.reduce(by_party[:k]), party_top)
                new_top = np.where(better, sum(new_in[:k]), new_top)
                expected_top = np.where(better, sum(expected_in[:k]), expected_top)
            z_party[rows], best[rows], span[rows] = by_party[0], top, k_top
            new[rows], expected[rows] = new_top, expected_top
            counted = ~np.isnan(window.count[rows]) & ~np.isnan(window.party[rows])
            material = ((nan_to_num(surge.excess[rows]) >= p.min_excess)
                        & (nan_to_num(surge.ratio[rows]) >= p.min_ratio))
            fired[rows] = (
                counted & surge.eligible[rows] & material & (known >= p.min_months)
                & (top >= p.threshold) & (combined[0] >= 1.0) & (party_top >= p.min_party_z)
            )
            z_one[rows], route = self._one_buyer(window, surge, rows, r, counts, usable)
            z_recent, led, lag = self._recent_buyer(window, surge, rows, r)
            # the month's own route first; the look-back where it did not pass
            later = led & ~route
            z_one[rows] = np.where(later, z_recent, z_one[rows])
            one_buyer[rows] = counted & surge.eligible[rows] & (known >= p.min_months) & (route | led)
            # a record fired by the look-back alone names the new consignees of the months since the lead
            only = one_buyer[rows] & later & ~fired[rows]
            for j in (2, 3):
                at = only & (lag + 1 == j)
                span[rows[at]] = j
                new[rows[at]] = sum(new_in[:j])[at]
                expected[rows[at]] = sum(expected_in[:j])[at]
            fired[rows] |= one_buyer[rows]
        return ConsigneeScores(
            rate=rate,
            z_party=z_party,
            statistic=best,
            months=span,
            new=new,
            expected=expected,
            z_one_buyer=z_one,
            one_buyer=one_buyer,
            fired=fired,
        )

    def _one_buyer(self, window: Window, surge: SurgeScores, rows: np.ndarray, rate: np.ndarray,
                   counts: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The one-buyer route for ``rows`` (``rate``: their learned new consignees per
        declaration): its joint z and where it passes. A month's largest declaration went to a
        new consignee when the value to the largest new one covers it; then ``rate * P(full value
        or more)`` is the chance, under the lane's null, of a month this far out of line whose
        largest declaration went to someone new. Silent where the new consignees' values are unknown."""
        p = self.params
        value, top = nan_to_num(window.value[rows]), nan_to_num(window.new_top[rows])
        big = window.max_item[rows]
        took_largest = (top > 0) & ~np.isnan(big) & (top >= big)
        past_v = np.where(usable, nan_to_num(window.values[rows, -LEARN_MONTHS:]), 0.0).sum(axis=1)
        past_c = np.where(usable, nan_to_num(counts), 0.0).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            typical = np.where(past_c > 0, past_v / past_c, np.inf)
            share = np.where(value > 0, top / value, 0.0)
        z_one = np.where(took_largest, _z(rate * special.ndtr(-surge.z[rows])), 0.0)
        material = ((nan_to_num(surge.excess[rows]) >= p.min_excess)
                    & (nan_to_num(surge.ratio[rows]) >= p.one_buyer_ratio))
        passes = (took_largest & material & (z_one >= p.one_buyer_z) & (rate <= p.one_buyer_max_rate)
                  & (share >= p.one_buyer_share) & (top >= p.one_buyer_item_ratio * typical))
        return z_one, passes

    def _recent_buyer(self, window: Window, surge: SurgeScores, rows: np.ndarray,
                      rate: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The one-buyer route's look-back for ``rows``: a new consignee led month ``t - k``
        (``k`` = 1 .. ``one_buyer_recent_months``: its value covered the month's largest
        declaration and ``one_buyer_share`` of the month, ``one_buyer_ratio`` times the lane's
        usual month and ``min_excess``) with more than any new consignee led a month of the
        lane's :data:`LEARN_MONTHS` before, on a lane that trades in at least half its months;
        the plain value tests of ``t - k``
        .. ``t`` pooled (Stouffer), and ``rate * P(pooled or more)`` as a z. Returns that z
        (the best ``k``), where it passes ``one_buyer_z`` on a material month of a lane
        whose churn is at most ``one_buyer_max_rate``, and the ``k`` (0 where none)."""
        p = self.params
        n = rows.size
        best, lag = np.zeros(n), np.zeros(n, dtype=np.int64)
        tests = (surge.z[rows], surge.z_prev[rows], surge.z_prev2[rows])
        leads, values = window.leads[rows], window.values[rows]
        level = nan_to_num(surge.level[rows], nan=np.inf)
        # a lane that trades in fewer than half its months has one declaration in most of those it
        # trades in: whoever bought it led the month, and its trading months come in lumps that a
        # pooled test takes for a rise. The look-back is for lanes that trade most months.
        counts = window.counts[rows, -LEARN_MONTHS:]
        known = ~np.isnan(counts)
        regular = (counts > 0).sum(axis=1) >= 0.5 * np.maximum(known.sum(axis=1), 1)
        for k in range(1, p.one_buyer_recent_months + 1):
            lead, value = nan_to_num(leads[:, -k]), nan_to_num(values[:, -k])
            past = leads[:, -(k + LEARN_MONTHS):-k]
            usable = ~np.isnan(past) & ~window.protected[rows, -(k + LEARN_MONTHS):-k]
            record = np.where(usable, nan_to_num(past), 0.0).max(axis=1, initial=0.0)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                share = np.where(value > 0, lead / value, 0.0)
            # the lead alone brought one_buyer_ratio times the lane's usual month: a material share
            led = (regular & (lead > record) & (share >= p.one_buyer_share) & (lead >= p.one_buyer_ratio * level)
                   & (lead >= p.min_excess))
            pooled = sum(tests[:k + 1]) / np.sqrt(k + 1)
            z = np.where(led, _z(rate * special.ndtr(-pooled)), 0.0)
            better = z > best
            best, lag = np.where(better, z, best), np.where(better, k, lag)
        material = ((nan_to_num(surge.excess[rows]) >= p.min_excess)
                    & (nan_to_num(surge.ratio[rows]) >= p.one_buyer_ratio))
        # one lead is tested in its own month and in each of the months it is looked back at: the
        # route's bar, Bonferroni-corrected for those 1 + one_buyer_recent_months chances
        bar = -special.ndtri(special.ndtr(-p.one_buyer_z) / (1 + p.one_buyer_recent_months))
        passes = (lag > 0) & material & (best >= bar) & (rate <= p.one_buyer_max_rate)
        return best, passes, lag
