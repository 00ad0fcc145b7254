"""Diversion: a reporter's exports of an HS6 to Russia or Belarus collapse
while its exports of the same HS6 to hubs rise.

"Hub" lanes here are the lanes that alert on their own rises (``is_hub``: a
partner in ``[watch] hubs``, or a lane named in ``[watch] lanes``) and
destination lanes those into ``[watch] destinations``; a lane may be both (a
destination named as a hub, Armenia's exports to Russia named as a lane), and
cannot collapse and rise in the same month, so it never diverts from itself.

This is signal 3 of the field notes (substitution). It is evaluated across the
series of one month: for every (reporter, flow, hs6), destination lanes (RU,
BY) that were material and fell to ``collapse_ratio`` of their level over the
last ``months`` months mark the group (only steady lanes, trading nearly every
month, can collapse: a lumpy lane falls quiet for a quarter all the time); hub lanes of a marked group whose last
``months`` months rose to ``rise_ratio`` of their level, with a material excess
and an unusual current month, fire.

A deep collapse is evidence in its own right: when a destination lane of the
group is still down (its last ``months`` months at most ``collapse_ratio`` of
its level) and at some point in the last ``lag`` months (or now) fell to
``deep_ratio`` or less, a hub rise needs only ``deep_min_z`` (weaker than
``min_z``) to fire, so a hub rise that follows the collapse by up to ``lag``
months counts. The collapse must be fresh: the destination lane was still above
``collapse_ratio`` of its level in the ``months`` months ending ``lag + months``
months ago, before any month the hub rise counts; a lane that collapsed long ago
(Russia after 2022) does not lower the bar of every later hub rise. The record then carries the Russian lane's before (its level)
and after (its mean month over the last ``months`` months).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transitwatch.detectors.numeric import nan_to_num
from transitwatch.detectors.params import check_positive, check_range


@dataclass(frozen=True, kw_only=True, slots=True)
class DiversionParams:
    """Parameters of :class:`DiversionDetector`.

    Examples
    --------
    >>> DiversionParams(collapse_ratio=1.5)
    Traceback (most recent call last):
    ...
    transitwatch.detectors.errors.InvalidParameterError: invalid parameter collapse_ratio=1.5: expected a number in [0.0, 1.0]
    """

    months: int = 3
    collapse_ratio: float = 0.5
    rise_ratio: float = 1.5
    min_z: float = 3.0
    min_excess: float = 10_000.0
    lag: int = 3
    deep_ratio: float = 0.05
    deep_min_z: float = 1.0

    def __post_init__(self) -> None:
        check_range(self, "months", 1, 12)
        check_range(self, "collapse_ratio", 0.0, 1.0)
        check_range(self, "lag", 0, 12)
        check_range(self, "deep_ratio", 0.0, self.collapse_ratio)
        check_positive(self, "rise_ratio", "min_z", "deep_min_z")
        check_positive(self, "min_excess", allow_zero=True)


@dataclass(frozen=True, slots=True)
class DiversionScores:
    fired: np.ndarray
    hub_ratio: np.ndarray
    destination_ratio: np.ndarray
    substitution: np.ndarray
    deep: np.ndarray | None = None  # the group's destination lane collapsed deeply (the weaker hub bar)
    destination_before: np.ndarray | None = None  # that lane's level, a month (NaN: no collapsed lane)
    destination_after: np.ndarray | None = None  # its mean month over the last ``months`` months


class DiversionDetector:
    """Cross-series substitution test for one month.

    Parameters of :meth:`score_many` are per-series arrays: ``group`` (an int
    id of (reporter, flow, hs6)), ``is_hub`` (the lane alerts on its rises),
    ``is_destination`` (its partner is a destination; both may hold), ``level``
    (the baseline level, NaN where none), ``recent`` (sum of the last
    ``months`` months including this one), ``z_robust`` and optionally
    ``steady`` (the lane traded in at least 10 of the last 12 months) and
    ``recent_lagged`` (n, k): the same sums ending 1..k months ago, for the
    deep collapse up to ``lag`` months back (only the first ``lag`` columns count).

    Examples
    --------
    >>> import numpy as np
    >>> d = DiversionDetector(DiversionParams(min_excess=0))
    >>> s = d.score_many(group=np.array([0, 0]), is_hub=np.array([True, False]),
    ...     is_destination=np.array([False, True]), level=np.array([10.0, 100.0]),
    ...     recent=np.array([60.0, 30.0]), z_robust=np.array([3.5, -3.0]))
    >>> s.fired.tolist(), round(float(s.substitution[0]), 2)
    ([True, False], 0.11)
    """

    name = "diversion"

    def __init__(self, params: DiversionParams | None = None) -> None:
        self.params = params or DiversionParams()

    def score_many(
        self,
        *,
        group: np.ndarray,
        is_hub: np.ndarray,
        is_destination: np.ndarray,
        level: np.ndarray,
        recent: np.ndarray,
        z_robust: np.ndarray,
        steady: np.ndarray | None = None,
        recent_lagged: np.ndarray | None = None,
        recent_before: np.ndarray | None = None,
    ) -> DiversionScores:
        p = self.params
        n_groups = int(group.max()) + 1 if group.size else 0
        base = nan_to_num(level) * p.months
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = np.where(base > 0, recent / base, np.nan)
        dest = is_destination & (nan_to_num(level) >= p.min_excess)
        if steady is not None:  # a lumpy destination lane "collapses" every quiet quarter
            dest &= steady
        collapsed = dest & (nan_to_num(ratio, nan=np.inf) <= p.collapse_ratio)
        shortfall = np.where(collapsed, base - recent, 0.0)
        group_short = np.bincount(group, weights=shortfall, minlength=n_groups)
        group_dest = np.full(n_groups, np.inf)
        np.minimum.at(group_dest, group[dest], nan_to_num(ratio[dest], nan=np.inf))
        group_dest[np.isinf(group_dest)] = np.nan
        lowest = nan_to_num(ratio, nan=np.inf)
        if recent_lagged is not None and p.lag:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                lagged = np.where(base[:, None] > 0, recent_lagged[:, : p.lag] / base[:, None], np.inf)
            lowest = np.minimum(lowest, nan_to_num(lagged, nan=np.inf).min(axis=1, initial=np.inf))
        deep_lane = collapsed & (lowest <= p.deep_ratio)
        if recent_before is not None:  # a fresh collapse: the lane was not yet down before the rise could start
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                was = np.where(base > 0, recent_before / base, np.nan)
            deep_lane &= nan_to_num(was, nan=0.0) > p.collapse_ratio
        group_deep = np.bincount(group, weights=deep_lane, minlength=n_groups) > 0
        # the collapsed lane a record names: the group's largest shortfall
        named = np.full(n_groups, -1)
        order = np.flatnonzero(collapsed)
        order = order[np.argsort(shortfall[order], kind="stable")]
        named[group[order]] = order  # the last write per group is its largest shortfall
        hub_excess = recent - base
        rose = (
            is_hub
            & (base > 0)
            & (group_short[group] > 0)
            & (nan_to_num(ratio) >= p.rise_ratio)
            & (hub_excess >= p.min_excess)
        )
        deep = group_deep[group] if n_groups else np.zeros(group.shape, dtype=bool)
        fired = rose & ((z_robust >= p.min_z) | (deep & (z_robust >= p.deep_min_z)))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            substitution = np.where(fired, hub_excess / group_short[group], np.nan)
        which = named[group] if n_groups else np.full(group.shape, -1)
        has = which >= 0
        before = np.where(has, nan_to_num(level)[which], np.nan)
        after = np.where(has, recent[which] / p.months, np.nan)
        return DiversionScores(
            fired=fired,
            hub_ratio=np.where(is_hub, ratio, np.nan),
            destination_ratio=group_dest[group] if n_groups else np.full(group.shape, np.nan),
            substitution=substitution,
            deep=deep,
            destination_before=before,
            destination_after=after,
        )
