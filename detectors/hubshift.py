"""Hub shift: most reporters' lanes of one HS6 into one hub move up in the same month.

Corroboration needs one lane of a hub and HS6 to alert on its own before the others count. A
*hub shift* needs none: when, within one (partner, flow, hs6) group, at least ``min_reporters``
lanes have a baseline, at least ``min_share`` of them are ``rise_ratio`` times their expected
value or more, and their median ratio is at least ``min_median``, the whole hub moved. That is
the pattern of 2022 (EU members' exports to Armenia 1.6x the month a year before, in March 2022,
from most member states at once): no single lane is out of line, every lane is up. A rise common
to many reporters into one hub is not explained away by its breadth; it *raises* the hub's lanes:
the hub's month over its expected value, all judged lanes together, must be ``min_total_ratio``
times or more (so small lanes alone do not make a shift), and the group must have been calm the
month before (the median of last month's values over their expected values under ``calm_ratio``:
a shift is a step; a group whose lanes are long up, in cases, is not shifting again every month);
each lane of a shifted group that rose ``rise_ratio`` times its expected value, by at least
``min_excess`` and with its own robust evidence at least ``up_z`` fires, provided so many lanes up at
once is unlikely by chance (each is up ``null_share`` of the time: a binomial tail at most
``alpha``) and the rising lanes' excesses add up to ``min_total_excess``.

A level change of one reporter across its lanes (a new declaration system) is the opposite case
and is not this detector's: it spans goods groups, which one engine does not see together.

The records of a shift carry its breadth (``hub_shift_reporters``, ``hub_shift_rising``) and size
(``hub_shift_ratio``, the median ratio), so an analyst reads "12 of 16 reporters' exports of the
code into Armenia rose, median x1.6" once per lane of the finding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from transitwatch.detectors.numeric import nan_to_num
from transitwatch.detectors.params import check_positive, check_range


@dataclass(frozen=True, kw_only=True, slots=True)
class HubShiftParams:
    """Parameters of :class:`HubShiftDetector`.

    Examples
    --------
    >>> HubShiftParams().min_reporters
    10
    >>> HubShiftParams(min_share=1.5)
    Traceback (most recent call last):
    ...
    transitwatch.detectors.errors.InvalidParameterError: invalid parameter min_share=1.5: expected a number in [0.0, 1.0]
    """

    min_reporters: int = 10
    min_share: float = 0.5
    rise_ratio: float = 1.3
    min_median: float = 1.3
    min_total_ratio: float = 1.4
    calm_ratio: float = 1.2
    up_z: float = 1.0
    null_share: float = 0.16
    alpha: float = 1e-4
    min_excess: float = 10_000.0
    min_total_excess: float = 250_000.0

    def __post_init__(self) -> None:
        check_range(self, "min_reporters", 2, 1000)
        check_range(self, "min_share", 0.0, 1.0)
        check_range(self, "rise_ratio", 1.0, 100.0)
        check_range(self, "min_median", 1.0, 100.0)
        check_range(self, "min_total_ratio", 1.0, 100.0)
        check_range(self, "calm_ratio", 1.0, self.min_median)
        check_range(self, "null_share", 1e-6, 0.999)
        check_range(self, "alpha", 1e-15, 0.5)
        check_positive(self, "up_z", allow_zero=True)
        check_positive(self, "min_excess", "min_total_excess", allow_zero=True)


@dataclass(frozen=True, slots=True)
class HubShiftScores:
    fired: np.ndarray
    reporters: np.ndarray  # lanes of the lane's group with a baseline this month
    rising: np.ndarray  # of which rose rise_ratio times or more
    median_ratio: np.ndarray  # their median ratio (NaN: no lane with a baseline)
    shifted: np.ndarray  # the lane's group shifted this month


class HubShiftDetector:
    """Marks the rising lanes of hub x HS6 groups that moved up together.

    ``group`` is an int id of (partner, flow, hs6); ``eligible`` the lanes that may be judged (an
    alerting lane with a warm baseline); ``ratio`` and ``excess`` each lane's month against its
    expected value.

    Examples
    --------
    >>> import numpy as np
    >>> d = HubShiftDetector(HubShiftParams(min_total_excess=0, min_reporters=5, alpha=1e-3))
    >>> ratio = np.array([1.6, 1.5, 1.7, 1.2, 1.8, 1.6, 1.1])
    >>> s = d.score_many(group=np.array([0, 0, 0, 0, 0, 0, 1]), eligible=np.ones(7, bool),
    ...     ratio=ratio, excess=np.full(7, 50e3))
    >>> s.fired.tolist(), int(s.rising[0]), float(s.median_ratio[0])
    ([True, True, True, False, True, True, False], 5, 1.6)
    """

    name = "hub_shift"

    def __init__(self, params: HubShiftParams | None = None) -> None:
        self.params = params or HubShiftParams()

    def score_many(self, *, group: np.ndarray, eligible: np.ndarray, ratio: np.ndarray,
                   excess: np.ndarray, value: np.ndarray | None = None,
                   expected: np.ndarray | None = None, previous: np.ndarray | None = None,
                   z: np.ndarray | None = None) -> HubShiftScores:
        p = self.params
        n = group.shape[0]
        if n == 0:
            empty = np.zeros(0)
            return HubShiftScores(np.zeros(0, bool), empty, empty, empty, np.zeros(0, bool))
        n_groups = int(group.max()) + 1
        r = nan_to_num(ratio, nan=np.nan, posinf=np.nan)
        judged = eligible & np.isfinite(r)
        rising = judged & (r >= p.rise_ratio) & (nan_to_num(excess) >= p.min_excess)
        if z is not None:  # up on the lane's own evidence, not only by its ratio (lumpy lanes swing)
            rising &= nan_to_num(z) >= p.up_z
        n_judged = np.bincount(group, weights=judged, minlength=n_groups)
        n_rising = np.bincount(group, weights=rising, minlength=n_groups)
        total = np.bincount(group, weights=np.where(rising, nan_to_num(excess), 0.0), minlength=n_groups)
        median = _group_median(group, judged, r, n_groups)
        if previous is not None:  # a step: the group was calm the month before (not lanes long up, in cases)
            before = _group_median(group, judged & np.isfinite(previous), nan_to_num(previous), n_groups)
            calm = nan_to_num(before, nan=0.0) < p.calm_ratio
        else:
            calm = np.ones(n_groups, dtype=bool)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(n_judged > 0, n_rising / np.maximum(n_judged, 1), 0.0)
        if value is not None and expected is not None:  # the hub's month over its expected, all judged lanes
            num = np.bincount(group, weights=np.where(judged, nan_to_num(value), 0.0), minlength=n_groups)
            den = np.bincount(group, weights=np.where(judged, nan_to_num(expected), 0.0), minlength=n_groups)
            with np.errstate(invalid="ignore", divide="ignore"):
                whole = np.where(den > 0, num / den, 0.0)
        else:
            whole = np.full(n_groups, np.inf)
        # so many lanes up at once is unlikely by chance: each is up with null_share under its null
        k, m = np.maximum(n_rising - 1, 0).astype(np.int64), n_judged.astype(np.int64)
        unlikely = special.bdtrc(k, m, p.null_share) <= p.alpha
        shifted = ((n_judged >= p.min_reporters) & calm & unlikely & (whole >= p.min_total_ratio) & (share >= p.min_share)
                   & (nan_to_num(median) >= p.min_median) & (total >= p.min_total_excess))
        return HubShiftScores(
            fired=rising & shifted[group],
            reporters=n_judged[group],
            rising=n_rising[group],
            median_ratio=median[group],
            shifted=shifted[group],
        )


def _group_median(group: np.ndarray, rows_mask: np.ndarray, x: np.ndarray, n_groups: int) -> np.ndarray:
    """The median of ``x`` over the masked rows of each group (NaN: no row)."""
    median = np.full(n_groups, np.nan)
    rows = np.flatnonzero(rows_mask)
    if rows.size:
        order = rows[np.lexsort((x[rows], group[rows]))]
        g = group[order]
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        ends = np.r_[starts[1:], order.size]
        vals = x[order]
        lo, hi = (starts + ends - 1) // 2, (starts + ends) // 2
        median[g[starts]] = (vals[lo] + vals[hi]) / 2
    return median
