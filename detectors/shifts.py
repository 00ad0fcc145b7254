"""Common shifts: when many lanes of one reporter (or into one hub) move together, across goods.

A reporter whose every lane doubles from one month (a new declaration system, a currency
re-basing) makes a trickle of lane alerts over months and nothing says "all of this reporter
moved"; a hub whose lanes from every reporter rise together (the 2022 pattern) is the opposite
signal. Both span goods groups, which one engine does not see together (the worker holds one
engine per HS6 group), so this module does not change any lane's verdict: it reads the month
values and expected values of every lane of a run (a replay's month snapshots) and reports each
common shift **once**, as a finding of its own, with the lanes it covers.

A shift of a *side* (a reporter, or a hub) starts in month ``m`` (at least ``min_history`` months
into the run, so expected values rest on a year) when, over its lanes with an expected value of at
least ``min_expected``:

- at least ``min_lanes`` lanes are judged, from at least ``min_others`` distinct counterparts
  (hubs for a reporter, reporters for a hub, so one big partner is not a shift of the side);
- their median ratio (value over expected) over the ``months`` months from ``m`` is at least
  ``min_ratio``, and at least ``min_share`` of them are ``rise_ratio`` times up;
- the month before was not (median below ``calm_ratio``) and ``m`` itself is (median at least
  ``calm_ratio``): a step that starts in ``m``, not a drift;
- the *other* sides' lanes of the same counterparts did not move (their median below
  ``calm_ratio``): a reporter's shift is not a hub's, and the other way round.

Examples
--------
>>> import numpy as np
>>> keys = [("CZ", h, f"85{i:04d}") for i in range(8) for h in ("KG", "KZ", "AM")] + [("DE", "KG", "850000")] * 4
>>> expected = np.full((len(keys), 24), 50_000.0)
>>> value = expected.copy(); value[:24, 12:] *= 2.0     # CZ's 24 lanes x2 from month 12, DE's not
>>> f = common_shifts(keys, first=24_240, value=value, expected=expected, side="reporter")
>>> [(s.side, s.period, s.lanes, round(s.ratio, 1)) for s in f]
[('CZ', '2021-01', 24, 2.0)]
>>> f[0].describe()
"CZ's 24 of 24 lanes (from 3 hubs) moved x2.0 from 2021-01, the others of the same hubs x1.0"
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from transitwatch.detectors.alerts import period_of
from transitwatch.detectors.numeric import nan_to_num
from transitwatch.detectors.params import check_positive, check_range

Side = Literal["reporter", "partner"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ShiftParams:
    """Parameters of :func:`common_shifts`.

    >>> ShiftParams(min_lanes=1)
    Traceback (most recent call last):
    ...
    transitwatch.detectors.errors.InvalidParameterError: invalid parameter min_lanes=1: expected a number in [3, 100000]
    """

    min_lanes: int = 10
    min_others: int = 3
    months: int = 3
    min_ratio: float = 1.5
    rise_ratio: float = 1.3
    min_share: float = 0.6
    calm_ratio: float = 1.2
    min_expected: float = 1_000.0
    min_history: int = 12

    def __post_init__(self) -> None:
        check_range(self, "min_lanes", 3, 100_000)
        check_range(self, "min_others", 1, 1_000)
        check_range(self, "months", 1, 12)
        check_range(self, "min_share", 0.0, 1.0)
        check_range(self, "calm_ratio", 1.0, self.min_ratio)
        check_range(self, "rise_ratio", 1.0, 100.0)
        check_positive(self, "min_expected", allow_zero=True)
        check_range(self, "min_history", 1, 120)


@dataclass(frozen=True, slots=True)
class Shift:
    """One common shift: a reporter's (``kind`` "reporter") or a hub's ("partner") lanes up together."""

    kind: str
    side: str
    period: str  # its first month
    lanes: int  # lanes judged in that month
    rising: int  # of which rose rise_ratio times or more
    counterparts: int  # distinct hubs (reporter shift) or reporters (hub shift) among them
    ratio: float  # the median ratio of its lanes over ``months`` months
    others_ratio: float  # the median ratio of the other sides' lanes of the same counterparts
    members: tuple[tuple[str, str, str], ...]  # (reporter, partner, hs6) of the lanes that rose

    def describe(self) -> str:
        who = f"{self.side}'s" if self.kind == "reporter" else f"exports into {self.side}:"
        what = "hubs" if self.kind == "reporter" else "reporters"
        return (f"{who} {self.rising} of {self.lanes} lanes (from {self.counterparts} {what}) moved "
                f"x{self.ratio:.1f} from {self.period}, the others of the same {what} x{self.others_ratio:.1f}")


def common_shifts(keys: Sequence[tuple[str, str, str]], *, first: int, value: np.ndarray, expected: np.ndarray,
                  side: Side, params: ShiftParams | None = None) -> list[Shift]:
    """Common shifts of every reporter (``side="reporter"``) or hub (``"partner"``).

    ``keys`` are the lanes' (reporter, partner, hs6), ``value`` and ``expected`` their months
    (lanes x months from month index ``first``; NaN where unknown). A side is reported once, at
    its first shift.
    """
    p = params or ShiftParams()
    n, t = value.shape
    if n == 0 or t <= p.months:
        return []
    mine = np.array([k[0] if side == "reporter" else k[1] for k in keys])
    other = np.array([k[1] if side == "reporter" else k[0] for k in keys])
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = nan_to_num(expected) >= p.min_expected
        ratio = np.where(ok, nan_to_num(value) / np.where(ok, expected, 1.0), np.nan)
    # the ratio over `months` months from each month (value and expected summed over the window),
    # the same for every side: computed once
    months = range(p.min_history, t - p.months + 1)
    pooled_at = {m: _pooled(value, expected, ok, m, p.months) for m in months}
    out: list[Shift] = []
    for name in sorted(set(mine.tolist())):
        rows = mine == name
        rest = ~rows & np.isin(other, np.unique(other[rows]))
        for m in months:
            pooled = pooled_at[m]
            judged = rows & ~np.isnan(pooled)
            if judged.sum() < p.min_lanes or len(set(other[judged].tolist())) < p.min_others:
                continue
            mid = float(np.median(pooled[judged]))
            before = ratio[rows, m - 1]
            before = before[~np.isnan(before)]
            calm_before = before.size == 0 or float(np.median(before)) < p.calm_ratio
            now = ratio[judged, m]
            if not calm_before or float(np.median(now[~np.isnan(now)])) < p.calm_ratio:
                continue  # a step that starts this month: calm before, up now
            up = judged & (pooled >= p.rise_ratio)
            others = pooled[rest & ~np.isnan(pooled)]
            others_mid = float(np.median(others)) if others.size else 1.0
            if mid >= p.min_ratio and up.sum() >= p.min_share * judged.sum() and others_mid < p.calm_ratio:
                out.append(Shift(kind=side, side=name, period=period_of(first + m), lanes=int(judged.sum()),
                                 rising=int(up.sum()), counterparts=len(set(other[judged].tolist())), ratio=mid,
                                 others_ratio=others_mid,
                                 members=tuple(sorted(tuple(keys[i]) for i in np.flatnonzero(up)))))
                break
    return out


def _pooled(value: np.ndarray, expected: np.ndarray, ok: np.ndarray, m: int, months: int) -> np.ndarray:
    """Each lane's value over expected summed over ``months`` months from ``m`` (NaN unless every
    month of the window has a usable expected value)."""
    window = slice(m, m + months)
    good = ok[:, window].all(axis=1)
    v = nan_to_num(value[:, window]).sum(axis=1)
    e = np.where(ok[:, window], expected[:, window], 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(good & (e > 0), v / np.where(e > 0, e, 1.0), np.nan)
