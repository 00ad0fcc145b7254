"""Mirror statistics: a hub's reported imports against the exporter's reported exports to it.

The same goods crossing one border are declared twice: as exports by the exporter ``E`` (FOB)
and as imports by the hub ``H`` (CIF, a few per cent more). The *mirror ratio* of a pair
``(E, H, hs6)`` is ``H``'s imports from ``E`` over ``E``'s exports to ``H`` times ``cif_fob``;
each pair has its own usual ratio (partner attribution by origin or consignment, valuation,
coverage), so the test compares the period's ratio with the pair's history: the median and MAD of
the log ratio over the trailing ``history_months``. When the ratio *falls* far below it, goods
leave ``E`` for ``H`` but do not arrive in ``H``'s books: they went on (Kyrgyzstan's imports from
the EU over the EU's exports to Kyrgyzstan were 0.85-0.97 in 2019-2021 and 0.43 in 2022).

Timing: goods exported late in a month are imported in the next. With ``max_lag`` = 1 the ratio is
also formed with the exports of the month before the imports' month, and the pair fires only when
it breaks at *every* alignment (each alignment against its own history): the most charitable
alignment decides, and the record reports that one (``align = "every"``; ``align = "best"`` tests
only the alignment whose history has the smallest spread: more recall, far more false alarms). ``period = "quarter"`` compares sums of three
months, judged at quarter ends (March, June, September, December), for pairs too lumpy monthly.

Persistence: a pair fires when the period before broke the same way too (``persist = 2``), or when
this period alone is far out of line (its z at least ``z_strong``): a single month of imports
missing is usually a recording or timing accident, a gap that lasts is the roundabout.

Materiality: the exports of the period must reach ``min_exports`` a month (three times that for a
quarter), and the imports missing against the usual ratio (``shortfall``) ``min_gap``; the ratio must
also be at most ``gap_ratio`` in absolute terms (imports truly below what the exports imply, not a
hub that usually reports twice as much now reporting 1.1 times as much).

Protect the detector: a history period in which the export lane was protected (suspicious, or
alerted, a mirror alert included) is left out of the pair's usual ratio, so a gap that lasts does
not become the pair's normal. The state is the lanes' own history (the engine's table): the test
keeps nothing of its own.

The p-value is Student's t tail of the robust z with ``periods - 1`` degrees of freedom (a usual
ratio from a dozen periods is not known exactly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special

from transitwatch.detectors.errors import InvalidParameterError
from transitwatch.detectors.numeric import nan_to_num
from transitwatch.detectors.params import check_positive, check_range

PERIODS = ("month", "quarter")
ALIGNMENTS = ("best", "every")
RATIO_FLOOR = 0.01  # a period with (almost) no imports: its log ratio is log(0.01), not -inf
_MAD_SCALE = 1.4826


@dataclass(frozen=True, kw_only=True, slots=True)
class MirrorParams:
    """Parameters of :class:`MirrorDetector` (``[mirror]`` in the watch configuration).

    Examples
    --------
    >>> MirrorParams().period, MirrorParams().cif_fob
    ('month', 1.05)
    >>> MirrorParams(period="year")
    Traceback (most recent call last):
    ...
    transitwatch.detectors.errors.InvalidParameterError: invalid parameter period='year': expected one of ['month', 'quarter']
    >>> MirrorParams(period="quarter", min_history_months=30)
    Traceback (most recent call last):
    ...
    transitwatch.detectors.errors.InvalidParameterError: invalid parameter min_history_months=30: expected at most history_months (24)
    """

    enabled: bool = True
    period: Literal["month", "quarter"] = "month"
    cif_fob: float = 1.05
    max_lag: int = 1
    align: Literal["best", "every"] = "every"
    history_months: int = 24
    min_history_months: int = 12
    fall_ratio: float = 0.5
    gap_ratio: float = 0.8
    z_threshold: float = 3.0
    sigma_floor: float = 0.15
    min_exports: float = 50_000.0
    min_gap: float = 25_000.0
    rise: bool = False
    rise_ratio: float = 2.0
    persist: int = 2
    z_strong: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise InvalidParameterError("enabled", self.enabled, "true or false")
        if not isinstance(self.rise, bool):
            raise InvalidParameterError("rise", self.rise, "true or false")
        if self.period not in PERIODS:
            raise InvalidParameterError("period", self.period, f"one of {list(PERIODS)}")
        if self.align not in ALIGNMENTS:
            raise InvalidParameterError("align", self.align, f"one of {list(ALIGNMENTS)}")
        check_range(self, "cif_fob", 0.5, 2.0)
        check_range(self, "max_lag", 0, 2)
        if not isinstance(self.max_lag, int) or not isinstance(self.history_months, int):
            raise InvalidParameterError("max_lag", self.max_lag, "an integer")
        check_range(self, "history_months", 6, 33)
        check_range(self, "min_history_months", 3, 33)
        if self.min_history_months > self.history_months:
            raise InvalidParameterError(
                "min_history_months", self.min_history_months, f"at most history_months ({self.history_months})"
            )
        check_range(self, "fall_ratio", 0.01, 1.0)
        check_range(self, "gap_ratio", 0.01, 10.0)
        check_range(self, "z_threshold", 0.0, 20.0)
        check_range(self, "sigma_floor", 0.01, 5.0)
        check_range(self, "rise_ratio", 1.0, 100.0)
        check_range(self, "persist", 1, 2)
        check_range(self, "z_strong", self.z_threshold, 50.0)
        check_positive(self, "min_exports", "min_gap", allow_zero=True)

    @property
    def width(self) -> int:
        """Months in one period."""
        return 3 if self.period == "quarter" else 1

    @property
    def min_periods(self) -> int:
        """History periods a pair needs before it is judged."""
        return math.ceil(self.min_history_months / self.width)


@dataclass(frozen=True, slots=True)
class MirrorScores:
    """Per row (NaN, or False, except on the export rows of judged pairs)."""

    fired: np.ndarray
    judged: np.ndarray  # the pair was judged this period (enough history, material exports)
    z: np.ndarray  # the robust z of the break, in the direction tested (the least at any alignment)
    p_value: np.ndarray  # its Student t tail
    exports: np.ndarray  # the exporter's reported exports of the period (base currency, the alignment reported)
    imports: np.ndarray  # the hub's reported imports of the period
    ratio: np.ndarray  # imports / (exports x cif_fob)
    usual: np.ndarray  # the pair's usual ratio (median over its history)
    lag: np.ndarray  # months the exports were taken before the imports (the alignment reported)
    periods: np.ndarray  # history periods the usual ratio came from
    shortfall: np.ndarray  # imports missing against the usual ratio (negative: an excess)

    @classmethod
    def empty(cls, n: int) -> MirrorScores:
        nan = np.full(n, np.nan)
        return cls(np.zeros(n, bool), np.zeros(n, bool), nan, nan.copy(), nan.copy(), nan.copy(), nan.copy(),
                   nan.copy(), np.zeros(n, np.int64), np.zeros(n, np.int64), nan.copy())


class MirrorDetector:
    """Tests every (exporter, hub, hs6) pair whose both sides are rows of the window.

    ``pair`` is an int id of ``(exporter, hub, hs6)`` per row and ``side`` +1 for the exporter's
    export lane, -1 for the hub's import lane from the exporter, 0 for other rows. ``values`` is the
    rows' closed history (oldest first, last column last month), ``value`` this month, ``protected``
    the history months kept out of baselines. ``month`` (the month index) matters for quarters only.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> exports = 100_000 * np.exp(rng.normal(0, 0.1, 36))
    >>> imports = exports * 1.05 * 0.9 * np.exp(rng.normal(0, 0.05, 36))
    >>> exports[-1], imports[-1] = 300_000.0, 90_000.0  # last month's exports did not arrive either
    >>> d = MirrorDetector()
    >>> s = d.score_many(pair=np.array([0, 0]), side=np.array([1, -1]), values=np.stack([exports, imports]),
    ...                  value=np.array([300_000.0, 95_000.0]), protected=np.zeros((2, 36), bool))
    >>> bool(s.fired[0]), bool(s.fired[1]), round(float(s.usual[0]), 2), round(float(s.ratio[0]), 2), int(s.lag[0])
    (True, False, 0.91, 0.3, 1)
    >>> s = d.score_many(pair=np.array([0, 0]), side=np.array([1, -1]), values=np.stack([exports, imports]),
    ...                  value=np.array([300_000.0, 270_000.0]), protected=np.zeros((2, 36), bool))
    >>> bool(s.fired[0])  # imports of the month match last month's exports: a timing difference
    False
    """

    name = "mirror"

    def __init__(self, params: MirrorParams | None = None) -> None:
        self.params = params or MirrorParams()

    def score_many(self, *, pair: np.ndarray, side: np.ndarray, values: np.ndarray, value: np.ndarray,
                   protected: np.ndarray, month: int | None = None) -> MirrorScores:
        p = self.params
        n = pair.shape[0]
        out = MirrorScores.empty(n)
        w = p.width
        if n == 0 or (w > 1 and (month is None or month % 3 != 2)):
            return out
        exp_rows = np.flatnonzero(side > 0)
        imp_rows = np.flatnonzero(side < 0)
        if exp_rows.size == 0 or imp_rows.size == 0:
            return out
        n_pairs = int(pair.max()) + 1
        import_of = np.full(n_pairs, -1, dtype=np.int64)
        import_of[pair[imp_rows]] = imp_rows
        exp_rows = exp_rows[import_of[pair[exp_rows]] >= 0]
        if exp_rows.size == 0:
            return out
        imp_rows = import_of[pair[exp_rows]]
        x = np.concatenate([values[exp_rows], value[exp_rows, None]], axis=1)
        m = np.concatenate([values[imp_rows], value[imp_rows, None]], axis=1)
        guard = np.concatenate([protected[exp_rows], np.zeros((exp_rows.size, 1), bool)], axis=1)
        res = _judge(x, m, guard, p)
        for name, arr in res.items():
            getattr(out, name)[exp_rows] = arr
        return out


def _window_sums(a: np.ndarray, ends: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the sums of ``a`` over the ``width`` columns ending at each of ``ends`` (columns may be
    negative: unknown), and whether every month of each window is known (not NaN)."""
    k = a.shape[0]
    cs = np.concatenate([np.zeros((k, 1)), np.cumsum(nan_to_num(a), axis=1)], axis=1)
    unknown = np.concatenate([np.zeros((k, 1)), np.cumsum(np.isnan(a), axis=1)], axis=1)
    start = ends - width + 1
    ok = start >= 0
    s, e = np.clip(start, 0, None), np.clip(ends + 1, 0, None)
    total = cs[:, e] - cs[:, s]
    known = ok[None, :] & ((unknown[:, e] - unknown[:, s]) == 0)
    return total, known


def _judge(x: np.ndarray, m: np.ndarray, guard: np.ndarray, p: MirrorParams) -> dict[str, np.ndarray]:
    """The test on paired rows: ``x`` exports, ``m`` imports, ``guard`` export months kept out of the
    history; the last column is the period being judged."""
    w = p.width
    k, cols = x.shape
    current = cols - 1
    periods = p.history_months // w
    ends = current - w * np.arange(periods + 1)  # period 0 is the one judged
    imports, i_known = _window_sums(m, ends, w)
    lags = np.arange(p.max_lag + 1)
    z_all, cond_all = [], []
    figures = []
    for lag in lags.tolist():
        exports, e_known = _window_sums(x, ends - lag, w)
        guarded, _ = _window_sums(guard.astype(float), ends - lag, w)
        guarded_i, _ = _window_sums(guard.astype(float), ends, w)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(exports > 0, imports / (exports * p.cif_fob), np.nan)
        log_r = np.log(np.maximum(ratio, RATIO_FLOOR))
        hist = e_known & i_known & (exports > 0) & (guarded == 0) & (guarded_i == 0)
        hist[:, 0] = False
        h = np.where(hist, log_r, np.nan)
        count = hist.sum(axis=1)
        with np.errstate(all="ignore"):
            usual = _nanmedian(h)
            mad = _nanmedian(np.abs(h - usual[:, None])) * _MAD_SCALE
        sigma = np.maximum(nan_to_num(mad, nan=p.sigma_floor), p.sigma_floor)
        usual_ratio = np.exp(usual)

        sides = (exports, imports, e_known, i_known, ratio, log_r)
        fell, rose, down, shortfall = _breaks(0, sides, usual, sigma, p)
        judged = (count >= p.min_periods) & e_known[:, 0] & i_known[:, 0] & (exports[:, 0] >= p.min_exports * w)
        z = np.where(judged, np.abs(down) if p.rise else down, np.nan)
        if p.persist > 1:  # the period before broke the same way, or this one is far out of line
            fell_before, rose_before, _, _ = _breaks(1, sides, usual, sigma, p)
            strong = nan_to_num(z) >= p.z_strong
            fell &= fell_before | strong
            rose &= rose_before | strong
        cond_all.append(judged & (fell | rose))
        e0, i0, r0 = exports[:, 0], imports[:, 0], ratio[:, 0]
        z_all.append(np.where(judged, z, np.inf))
        figures.append((judged, e0, i0, r0, usual_ratio, count, shortfall,
                        np.where(judged, nan_to_num(mad, nan=np.inf), np.inf)))
    z_stack = np.stack(z_all, axis=1)
    rows = np.arange(k)
    if p.align == "best":  # the alignment whose history agrees best (smallest spread; ties: the shortest lag)
        best = np.argmin(np.stack([f[7] for f in figures], axis=1), axis=1)
        judged_any = np.stack([f[0] for f in figures], axis=1)[rows, best]
        fired = np.stack(cond_all, axis=1)[rows, best]
    else:  # every alignment must break; the most charitable one is reported
        best = np.argmin(z_stack, axis=1)
        judged_any = np.stack([f[0] for f in figures], axis=1).all(axis=1)
        fired = np.stack(cond_all, axis=1).all(axis=1)

    def pick(j: int) -> np.ndarray:
        return np.stack([f[j] for f in figures], axis=1)[rows, best]

    z_best = np.where(judged_any, z_stack[rows, best], np.nan)
    df = np.maximum(pick(5) - 1, 1).astype(float)
    with np.errstate(invalid="ignore"):
        p_value = np.where(judged_any, special.stdtr(df, -nan_to_num(z_best)), np.nan)
    return {
        "fired": fired,
        "judged": judged_any,
        "z": z_best,
        "p_value": p_value,
        "exports": np.where(judged_any, pick(1), np.nan),
        "imports": np.where(judged_any, pick(2), np.nan),
        "ratio": np.where(judged_any, pick(3), np.nan),
        "usual": np.where(judged_any, pick(4), np.nan),
        "lag": np.where(judged_any, lags[best], 0),
        "periods": np.where(judged_any, pick(5), 0).astype(np.int64),
        "shortfall": np.where(judged_any, pick(6), np.nan),
    }


def _breaks(j: int, sides: tuple[np.ndarray, ...], usual: np.ndarray, sigma: np.ndarray,
            p: MirrorParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Period ``j`` (0: the one judged, 1: the one before) against the usual log ratio: whether it
    fell, whether it rose (with ``rise``), the fall's z, and the imports missing."""
    exports, imports, e_known, i_known, ratio, log_r = sides
    e, i, r = exports[:, j], imports[:, j], ratio[:, j]
    usual_ratio = np.exp(usual)
    material = e_known[:, j] & i_known[:, j] & (e >= p.min_exports * p.width)
    short = e * p.cif_fob * usual_ratio - i
    down = nan_to_num((usual - log_r[:, j]) / sigma, nan=0.0)
    fell = material & (r <= p.fall_ratio * usual_ratio) & (r <= p.gap_ratio) & (short >= p.min_gap)
    fell &= down >= p.z_threshold
    rose = np.zeros(e.shape[0], bool)
    if p.rise:
        rose = material & (r >= p.rise_ratio * usual_ratio) & (-short >= p.min_gap) & (-down >= p.z_threshold)
    return fell, rose, down, short


def _nanmedian(a: np.ndarray) -> np.ndarray:
    """Row medians ignoring NaN (NaN for a row without a number), without numpy's all-NaN warning."""
    out = np.full(a.shape[0], np.nan)
    some = ~np.isnan(a).all(axis=1)
    if some.any():
        out[some] = np.nanmedian(a[some], axis=1)
    return out
