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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.params import check_positive, check_range


@dataclass(frozen=True, kw_only=True, slots=True)
class DiversionParams:
    """Parameters of :class:`DiversionDetector`.

    Examples
    --------
    >>> DiversionParams(collapse_ratio=1.5)
    Traceback (most recent call last):
    ...
    detectors.errors.InvalidParameterError: invalid parameter collapse_ratio=1.5: expected a number in [0.0, 1.0]
    """

    months: int = 3
    collapse_ratio: float = 0.5
    rise_ratio: float = 1.5
    min_z: float = 3.0
    min_excess: float = 10_000.0

    def __post_init__(self) -> None:
        check_range(self, "months", 1, 12)
        check_range(self, "collapse_ratio", 0.0, 1.0)
        check_positive(self, "rise_ratio", "min_z")
        check_positive(self, "min_excess", allow_zero=True)


@dataclass(frozen=True, slots=True)
class DiversionScores:
    fired: np.ndarray
    hub_ratio: np.ndarray
    destination_ratio: np.ndarray
    substitution: np.ndarray


class DiversionDetector:
    """Cross-series substitution test for one month.

    Parameters of :meth:`score_many` are per-series arrays: ``group`` (an int
    id of (reporter, flow, hs6)), ``is_hub`` (the lane alerts on its rises),
    ``is_destination`` (its partner is a destination; both may hold), ``level``
    (the baseline level, NaN where none), ``recent`` (sum of the last
    ``months`` months including this one), ``z_robust`` and optionally
    ``steady`` (the lane traded in at least 10 of the last 12 months).

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
    ) -> DiversionScores:
        p = self.params
        n_groups = int(group.max()) + 1 if group.size else 0
        base = np.nan_to_num(level) * p.months
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(base > 0, recent / base, np.nan)
        dest = is_destination & (np.nan_to_num(level) >= p.min_excess)
        if steady is not None:  # a lumpy destination lane "collapses" every quiet quarter
            dest &= steady
        collapsed = dest & (np.nan_to_num(ratio, nan=np.inf) <= p.collapse_ratio)
        shortfall = np.where(collapsed, base - recent, 0.0)
        group_short = np.bincount(group, weights=shortfall, minlength=n_groups)
        group_dest = np.full(n_groups, np.inf)
        np.minimum.at(group_dest, group[dest], np.nan_to_num(ratio[dest], nan=np.inf))
        group_dest[np.isinf(group_dest)] = np.nan
        hub_excess = recent - base
        fired = (
            is_hub
            & (base > 0)
            & (group_short[group] > 0)
            & (np.nan_to_num(ratio) >= p.rise_ratio)
            & (hub_excess >= p.min_excess)
            & (z_robust >= p.min_z)
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            substitution = np.where(fired, hub_excess / group_short[group], np.nan)
        return DiversionScores(
            fired=fired,
            hub_ratio=np.where(is_hub, ratio, np.nan),
            destination_ratio=group_dest[group] if n_groups else np.full(group.shape, np.nan),
            substitution=substitution,
        )
