"""Seasonal surge and level-shift detection that holds up on sparse flows.

Two pieces of evidence are weighed for each series and month:

* **value**: a hurdle model. A month trades with probability ``q`` (from the
  last 24 months) and a trading month's value is log-normal around the median
  of past trading months (times a shrunk seasonal factor) with a robust (MAD)
  spread, shrunk towards a wide prior when there are few trading months. The
  month's tail probability ``q * P(value or more)`` is reported as a z-score,
  so lumpy lanes are judged against their own spikes and dense lanes against
  their usual level. The *robust* value replaces the month's largest
  declaration by a typical one, so a single giant shipment cannot carry the
  evidence. The expected value ``E`` shown to analysts is a trimmed 12-month
  mean (robust to one giant month, neutral to seasonality) times the factor.
* **count**: the number of declarations against a negative-binomial tail
  whose mean and over-dispersion come from the same months. On lanes with a
  few declarations a month this is the evidence that holds.
* **size** (``size_test``): the month's robust value per declaration against
  the lane's past values per declaration. The same number of declarations,
  each three times its usual size, is rare on a lane whose sizes are stable
  even when the month's total is within the lane's swings (which carry the
  count's too).

A month is a *candidate* when it is material (excess value above a floor),
large (ratio above a floor) and either test passes. It alerts at once when the
robust value test passes together with the count test, or when the robust
value alone is overwhelming and the excess large (or the size test is, with a
raised value); otherwise it alerts only if the month before was suspicious
too, or (``sustained_lookback`` 2) the month two back, pooled with this one
(persistence); or, on declarations, when this month's bigger declarations
follow two more months of them (each month's size z at least 1, the three
pooled past ``z_threshold``). Months past the candidate bar are protected from
the baseline by the policy, so a surge is never learned as normal.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import special

from transitwatch.detectors.base import Window
from transitwatch.detectors.errors import InvalidParameterError
from transitwatch.detectors.numeric import nan_to_num
from transitwatch.detectors.params import check_positive, check_range


@dataclass(frozen=True, kw_only=True, slots=True)
class SurgeParams:
    """Parameters of :class:`SeasonalSurgeDetector`.

    Examples
    --------
    >>> SurgeParams(z_threshold=0)
    Traceback (most recent call last):
    ...
    transitwatch.detectors.errors.InvalidParameterError: invalid parameter z_threshold=0: expected a finite number > 0
    """

    z_threshold: float = 3.0
    z_soft: float = 2.0
    z_strong: float = 5.0
    z_pooled: float = 4.0
    count_alpha: float = 1e-3
    count_alpha_soft: float = 0.01
    count_alpha_strong: float = 1e-5
    min_ratio: float = 2.0
    min_excess: float = 10_000.0
    strong_excess: float = 50_000.0
    sigma_floor: float = 0.2
    sigma_prior: float = 1.0
    sigma_prior_months: float = 1.0
    dispersion_prior: float = 0.2
    dispersion_prior_months: float = 24.0
    min_nonzero_months: int = 1
    learn_season: bool = False
    seasonal_shrink: float = 4.0
    seasonal_prior_shrink: float = 2.0
    seasonal_min_share: float = 0.75
    size_test: bool = True
    size_min_months: int = 6
    size_min_ratio: float = 1.5
    sustained_lookback: int = 2
    seasonal_min_years: int = 2
    seasonal_max_factor: float = 4.0

    def __post_init__(self) -> None:
        check_positive(self, "z_threshold", "z_soft", "z_strong", "z_pooled", "min_ratio", "sigma_floor", "seasonal_shrink",
                       "seasonal_prior_shrink")
        check_range(self, "count_alpha_soft", 1e-12, 0.5)
        check_range(self, "count_alpha_strong", 1e-15, 0.5)
        check_positive(self, "sigma_prior", "sigma_prior_months", "dispersion_prior_months")
        check_range(self, "dispersion_prior", 0.0, 3.0)
        check_positive(self, "min_excess", "strong_excess", allow_zero=True)
        check_range(self, "count_alpha", 1e-12, 0.5)
        check_range(self, "min_nonzero_months", 1, 24)
        check_range(self, "seasonal_min_share", 0.0, 1.0)
        if type(self.size_test) is not bool:
            raise InvalidParameterError("size_test", self.size_test, "true or false")
        check_range(self, "size_min_months", 2, 24)
        check_range(self, "size_min_ratio", 1.0, self.min_ratio)
        check_range(self, "sustained_lookback", 1, 2)
        check_range(self, "seasonal_min_years", 2, 3)
        check_range(self, "seasonal_max_factor", 1.0, 20.0)


@dataclass(frozen=True, slots=True)
class SurgeScores:
    """Per-series outputs of one month's surge test (all arrays of length n)."""

    level: np.ndarray
    expected: np.ndarray
    band_low: np.ndarray
    band_high: np.ndarray
    sigma: np.ndarray
    z: np.ndarray
    z_robust: np.ndarray
    expected_count: np.ndarray
    p_count: np.ndarray
    z_count: np.ndarray
    p_freq: np.ndarray
    p_value: np.ndarray
    score: np.ndarray
    ratio: np.ndarray
    excess: np.ndarray
    eligible: np.ndarray
    candidate: np.ndarray
    soft: np.ndarray
    immediate: np.ndarray
    sustained: np.ndarray
    elevated: np.ndarray
    building: np.ndarray  # three months pooled pass: a rise that builds
    z_prev: np.ndarray  # the value test of the month before, against this month's baseline
    z_prev2: np.ndarray  # ... and of the month before that
    count_size: np.ndarray  # the count test's negative binomial: size and probability
    count_prob: np.ndarray
    z_size: np.ndarray  # the shipment-size test: the month's robust value per declaration (0: no test)
    season: np.ndarray  # the month's seasonal factor: expected = level * season
    learned_season: np.ndarray  # the same where the lane's season is learned (learn_season), else 1: cases judge by it


def trimmed_mean(x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row means of ``x`` over ``mask``, dropping the largest and smallest when
    there are six or more, the largest when three to five.

    Returns the means (``NaN`` where the mask is empty) and the counts.

    Examples
    --------
    >>> m, n = trimmed_mean(np.array([[1.0, 2, 3, 100, 2, 2]]), np.ones((1, 6), bool))
    >>> float(m[0]), int(n[0])
    (2.25, 6)
    """
    n = mask.sum(axis=1)
    xz = np.where(mask, x, 0.0)
    total = xz.sum(axis=1)
    top = np.where(mask, x, -np.inf).max(axis=1, initial=-np.inf)
    low = np.where(mask, x, np.inf).min(axis=1, initial=np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(
            n >= 6,
            (total - top - low) / (n - 2),
            np.where(n >= 3, (total - top) / (n - 1), total / n),
        )
    return np.where(n > 0, mean, np.nan), n


def _norm_sf(x: np.ndarray) -> np.ndarray:
    return special.ndtr(-x)


def _norm_isf(p: np.ndarray) -> np.ndarray:
    return -special.ndtri(p)


def _hurdle_z(
    value: np.ndarray, centre: np.ndarray, sigma: np.ndarray, q: np.ndarray, k: np.ndarray
) -> np.ndarray:
    """The normal quantile of ``P(month >= value) = q * P(trading month >= value)``.

    A trading month's log value has a Student-t predictive distribution around
    the median of the ``k`` past trading months (``k - 1`` degrees of freedom,
    scale widened by ``sqrt(1 + 1/k)``): with few past trades the tails are
    heavy, so a lumpy lane's next spike is not a surprise.
    """
    df = np.clip(k - 1.0, 1.0, 30.0)
    t = (np.log(np.maximum(value, 1e-300)) - centre) / (sigma * np.sqrt(1.0 + 1.0 / np.maximum(k, 1.0)))
    tail = q * special.stdtr(df, -t)
    return np.where(value > 0, _norm_isf(np.clip(tail, 1e-300, 1.0)), -10.0).clip(-10.0, 40.0)


def _year_before(x: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Trimmed mean of months 13 to 24 back, NaN where fewer than 6 are usable."""
    h = x.shape[1]
    window = usable.copy()
    window[:, h - 12 :] = False
    window[:, : max(h - 24, 0)] = False
    mean, n = trimmed_mean(x, window)
    return np.where(n >= 6, mean, np.nan)


def _row_median(x: np.ndarray) -> np.ndarray:
    """Row medians ignoring NaN (NaN for an empty row); faster than nanmedian on short rows."""
    s = np.sort(x, axis=1)
    n = (~np.isnan(x)).sum(axis=1)
    lo = np.take_along_axis(s, np.maximum((n - 1) // 2, 0)[:, None], axis=1)[:, 0]
    hi = np.take_along_axis(s, np.maximum(n // 2, 0)[:, None], axis=1)[:, 0]
    return np.where(n > 0, (lo + hi) / 2, np.nan)


#: The smallest variance of a calendar month's log ratio between years assumed (a spread of 0.1):
#: a synthetic lane that repeats its year exactly must not make the season test divide by zero.
_WITHIN_FLOOR = 0.01
#: Medians of chi-square / df with 1 and 2 degrees of freedom (a month's variance over 2 or 3 years).
_CHI2_MEDIAN = (0.4549, 0.6931)


def season_profile(
    values: np.ndarray, *, min_share: float, min_years: int, shrink: float, max_factor: float
) -> tuple[np.ndarray, np.ndarray]:
    """Log seasonal factors of each series' calendar months, learned from its own past years,
    and which of them are learned (0 where not: too few years, or no season at all).

    ``values`` is ``(n, h)`` history, oldest first (``NaN``: unknown). Column ``r`` of the
    ``(n, 12)`` log factors is the calendar month ``r`` months after the one ``12`` columns back,
    so column 0 is the month being judged and column 11 last month. Each past year (a block
    of 12 months, one of each calendar month) says how far a month stood from that year's
    centre (its median month); a lane that trades in fewer than ``min_share`` of its months
    learns nothing (its quiet months are chance, and with a few years so are its busy ones).
    A factor is learned
    only from ``min_years`` or more years, and only as far as every year agrees: with two
    years the one nearer 1 (none when they disagree in direction), with three the median. So
    one year's surge is never learned as a season, while a peak that came every year is.
    The factors are kept only as far as the months differ by more than the years' disagreement
    explains: ``1 - shrink / F`` of their log, with ``F`` the one-way analysis of variance of
    the log ratios (months against years), nothing while ``F <= shrink``; a flat noisy lane
    learns no season. Each factor stays within ``max_factor``.

    Examples
    --------
    >>> opts = dict(min_share=0.75, min_years=2, shrink=4.0, max_factor=4.0)
    >>> year = np.array([1.0] * 9 + [3.0] * 3)  # a Q4 at x3, the month judged a January
    >>> f, learned = season_profile(np.tile(year, (1, 3)), **opts)
    >>> [round(float(np.exp(x)), 2) for x in f[0, [0, 9]]], bool(learned.all())
    ([1.0, 2.83], True)
    >>> bool(season_profile(np.tile(year, (1, 1)), **opts)[0].any())  # one year teaches nothing
    False
    >>> flat = np.random.default_rng(0).lognormal(0, 0.5, (1, 36))
    >>> bool(season_profile(flat, **opts)[0].any())  # nor does a flat lane's noise
    False
    """
    n, h = values.shape
    years = h // 12
    if years < min_years:
        return np.zeros((n, 12)), np.zeros((n, 12), dtype=bool)
    x = values[:, h - 12 * years:]
    known = ~np.isnan(x)
    share = (nan_to_num(x) > 0).sum(axis=1) / np.maximum(known.sum(axis=1), 1)
    # three-month windows (the month and its neighbours, where known) for sparse lanes
    month = x.reshape(n, years, 12)
    blocks = x.reshape(n, years, 12)
    n_known = (~np.isnan(blocks)).sum(axis=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # a year's centre: its median month (a surge of a few months in that year does not move
        # it; a scale common to a year's months cancels in level x factor)
        mean = np.nanmedian(blocks, axis=2)
    ok_year = (n_known >= 10) & (nan_to_num(mean) > 0)
    cap = np.log(max_factor)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.clip(np.log(month / mean[:, :, None]), -cap, cap)
    valid = ok_year[:, :, None] & ~np.isnan(month)
    logs = np.where(valid, logs, np.nan)
    k = valid.sum(axis=1)  # (n, 12): years that say something about each calendar month
    s = np.sort(logs, axis=1)  # NaN last
    if years >= 3:
        med3 = s[:, 1]
    else:
        med3 = np.zeros((n, 12))
    lo, hi = s[:, 0], np.take_along_axis(s, np.maximum(k - 1, 0)[:, None, :], axis=1)[:, 0]
    agree2 = np.where(lo > 0, lo, np.where(hi < 0, hi, 0.0))
    est = np.where(k >= 3, med3, agree2)
    est = np.where(k >= min_years, nan_to_num(est), 0.0)
    # a sparse lane (one that ships now and then) learns no season: its quiet months are
    # chance, and so, with two or three years, are its busy ones
    est = np.where((share >= min_share)[:, None], est, 0.0)
    # Is there a season at all? The months' spread of their mean log ratios against the spread
    # that the years' disagreement alone would give (a one-way analysis of variance, F): a flat
    # noisy lane's months differ by chance, and learning that noise as a season would lower some
    # months' expectation as surely as it raises others'. The factors keep 1 - shrink / F of
    # their log (James-Stein), nothing while F <= shrink.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mbar = np.nanmean(logs, axis=1)
        # each month's variance between years, scaled by the median of its chi-square (1 or 2
        # degrees of freedom), and the median over months: a surge of a few months in one year
        # (or a level shift) makes a few months disagree, not the whole year
        var_m = np.nansum((logs - mbar[:, None, :]) ** 2, axis=1) / np.maximum(k - 1, 1)
        scaled = np.where(k >= 2, var_m / np.where(k >= 3, _CHI2_MEDIAN[1], _CHI2_MEDIAN[0]), np.nan)
        dfw = np.maximum(k - 1, 0).sum(axis=1)
        within = np.maximum(np.nanmedian(scaled, axis=1), _WITHIN_FLOOR)
        learned = k >= min_years
        between = np.nanvar(np.where(learned, mbar, np.nan), axis=1, ddof=1)
        f_ratio = np.where(learned.sum(axis=1) >= 6, np.nanmean(np.where(learned, k, np.nan), axis=1)
                           * between / within, 0.0)
    weight = np.clip(1.0 - shrink / np.maximum(nan_to_num(f_ratio), 1e-12), 0.0, 1.0)
    dense = (share >= min_share)[:, None]
    return np.where(dfw[:, None] > 0, est * weight[:, None], 0.0), learned & (weight > 0)[:, None] & dense


class SeasonalSurgeDetector:
    """Seasonal surge / level-shift test over a :class:`~transitwatch.detectors.base.Window`.

    Examples
    --------
    >>> from transitwatch.detectors.table import window_for
    >>> history = [100.0, 120, 90, 110] * 9
    >>> w = window_for([history], value=[900.0], count=[float("nan")])
    >>> s = SeasonalSurgeDetector(SurgeParams(min_excess=100, strong_excess=100)).score_many(w)
    >>> bool(s.candidate[0]), bool(s.immediate[0]), round(float(s.ratio[0]), 1)
    (True, True, 8.8)
    """

    name = "seasonal_surge"

    def __init__(self, params: SurgeParams | None = None) -> None:
        self.params = params or SurgeParams()

    def score_many(self, window: Window) -> SurgeScores:
        p = self.params
        v_raw, c_raw = window.values, window.counts
        h = v_raw.shape[1]
        usable = ~np.isnan(v_raw) & ~window.protected
        # the lane's learned year: its history is read deseasonalized, the month against its
        # level times its own month's factor (protected months count here: a peak must recur)
        if p.learn_season:
            profile, learned_month = season_profile(
                v_raw, min_share=p.seasonal_min_share, min_years=p.seasonal_min_years, shrink=p.seasonal_shrink,
                max_factor=p.seasonal_max_factor,
            )
        else:
            profile, learned_month = np.zeros((v_raw.shape[0], 12)), np.zeros((v_raw.shape[0], 12), dtype=bool)
        # only where this calendar month's factor is learned: its factors are on the scale of
        # the lane's median month, and a half-learned year must not mix two scales
        learned = learned_month[:, 0]
        profile = np.where(learned[:, None], profile, 0.0)
        learned_month = learned_month & learned[:, None]
        of_column = np.exp(profile[:, (np.arange(h) - h) % 12])
        v_hist, c_hist = v_raw / of_column, c_raw / of_column
        last12 = usable.copy()
        last12[:, : h - 12] = False
        last24 = usable.copy()
        last24[:, : h - 24] = False

        level12, n12 = trimmed_mean(v_hist, last12)
        level24, n24 = trimmed_mean(v_hist, last24)
        level = np.where(n12 >= 6, level12, level24)
        # A dip (a pandemic, a strike) must not make the rebound look like a
        # surge: the level is never below that of the year before.
        level = np.fmax(level, _year_before(v_hist, usable))
        # a lane with a trade or two in two years: trimming leaves nothing, take the plain mean
        plain = np.where(last24, nan_to_num(v_hist), 0.0).sum(axis=1) / np.maximum(n24, 1)
        level = np.where(nan_to_num(level) > 0, level, plain)
        nonzero = (last24 & (v_hist > 0)).sum(axis=1)
        n_use = np.maximum(n24, 1)
        # a lane with no learned season yet (a year of history, or a season too noisy to tell)
        # keeps the month's own shrunk ratio of the years before
        # keeps the month's own shrunk ratio of the years before; a learned one is never taken
        # below it (on a noisy lane the learned season is shrunk hard, and a peak a past year
        # showed should not become a surprise for that)
        prior_factor = self._seasonal_factor(v_raw, usable, nonzero / n_use)
        factor = np.where(learned, np.maximum(np.exp(profile[:, 0]), prior_factor), prior_factor)
        expected = level * factor

        value = window.value
        typical = self._typical_item(v_hist, c_hist, last24, level)
        big = window.max_item
        robust_value = np.where(np.isnan(big), value, value - big + np.minimum(big, typical))

        # Hurdle model: a month trades with probability q, and a trading month's
        # value is log-normal around the median of past trading months. Lumpy
        # lanes (a shipment now and then) are judged against their own spikes.
        trading = last24 & (v_hist > 0)
        logs = np.where(trading, np.log(np.where(trading, v_hist, 1.0)), np.nan)
        centre = _row_median(logs)
        mad = _row_median(np.abs(logs - centre[:, None]))
        k = nonzero.astype(float)
        prior = p.sigma_prior_months
        spread = np.sqrt((k * (1.4826 * nan_to_num(mad)) ** 2 + prior * p.sigma_prior**2) / (k + prior))
        sigma = np.maximum(p.sigma_floor, spread)
        q = (k + 0.5) / (n_use + 1.0)
        centre = nan_to_num(centre) + np.log(factor)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = _hurdle_z(value, centre, sigma, q, k)
            z_robust = _hurdle_z(np.maximum(robust_value, 0.0), centre, sigma, q, k)
            ratio = np.where(expected > 0, value / expected, np.inf)

        expected_count, p_count, size, prob = self._count_test(
            c_hist, last12, last24, factor, window.count, p.dispersion_prior, p.dispersion_prior_months
        )
        p_freq = self._frequency_test(v_hist, usable, value)
        z_size = z_size1 = z_size2 = np.zeros(window.n)
        if p.size_test:
            z_size, (z_size1, z_size2) = self._size_test(
                v_hist, c_hist, last24, np.maximum(robust_value, 0.0), window.count, p.size_min_months,
                p.sigma_floor, previous=((nan_to_num(v_raw[:, -1]), c_raw[:, -1]),
                                         (nan_to_num(v_raw[:, -2]), c_raw[:, -2])))
        # the size test reads the same value as the robust value test: one line, two views (Bonferroni 2)
        p_value_line = np.minimum(_norm_sf(z_robust), 2.0 * _norm_sf(z_size))
        p_value = np.minimum(1.0, 3.0 * np.minimum(np.minimum(p_value_line, p_count), p_freq))
        score = np.minimum(-np.log10(np.maximum(p_value, 1e-300)), 50.0)

        band_high = np.exp(centre + sigma * _norm_isf(np.minimum(_norm_sf(p.z_threshold) / q, 0.5)))
        band_low = np.where(q > 0.9, np.exp(centre - p.z_threshold * sigma), 0.0)
        excess = value - expected

        eligible = (nonzero >= p.min_nonzero_months) & (level > 0)
        count_sig = p_count <= p.count_alpha
        freq_sig = (p_freq <= p.count_alpha) & (z_robust >= 0.0)
        value_sig = z_robust >= p.z_threshold
        large = eligible & (excess >= p.min_excess) & (ratio >= p.min_ratio)
        # bigger shipments: sizes min_ratio times the lane's usual, the month's value size_min_ratio times
        # its expected (the count's own swings may hide part of the rise in the total)
        with np.errstate(divide="ignore", invalid="ignore"):
            size_ratio = np.where(typical > 0, robust_value / np.maximum(nan_to_num(window.count), 1.0) / typical, 0.0)
        # ... and no fewer declarations than 1 / min_ratio of the usual count: half the declarations at twice
        # the size is the same month (a consolidation), and a month in progress has yet to count its
        # declarations (its early checks judge sizes once half the usual count is in)
        sized = (eligible & (z_size != 0) & (excess >= p.min_excess) & (ratio >= p.size_min_ratio)
                 & (size_ratio >= p.min_ratio) & (nan_to_num(window.count) >= expected_count / p.min_ratio))
        candidate = (large & ((z >= p.z_threshold) | count_sig | freq_sig)) | (sized & (z_size >= p.z_threshold))
        soft = (large & ((z >= p.z_soft) | (p_count <= p.count_alpha_soft) | freq_sig)) | (sized & (z_size >= p.z_soft))
        immediate = candidate & (
            (value_sig & count_sig)
            | ((p_count <= p.count_alpha_strong) & (z_robust >= p.z_soft))
            | freq_sig
            | ((z_robust >= p.z_strong) & (excess >= p.strong_excess))
            # every declaration far bigger than the lane's, with a raised value: alerts at once
            | ((z_size >= p.z_strong) & (z_robust >= p.z_soft) & (excess >= p.strong_excess))
        )
        # Two suspicious months in a row, pooled: each may fall short alone.
        prev = nan_to_num(v_raw[:, -1])
        centre_ds = centre - np.log(factor)
        with np.errstate(divide="ignore", invalid="ignore"):
            z_prev = _hurdle_z(prev, np.where(learned_month[:, 11], centre_ds + profile[:, 11], centre), sigma, q, k)
        pair_z = (z_robust + z_prev) / np.sqrt(2.0)
        pair_count = nan_to_num(window.count) + nan_to_num(c_raw[:, -1])
        counted = ~np.isnan(window.count) & ~np.isnan(c_raw[:, -1]) & ~np.isnan(expected_count)
        p_pair = np.where(counted & (pair_count > 0),
                          special.betainc(np.maximum(pair_count, 1.0), 2 * size, 1.0 - prob), 1.0)
        z_count = np.where(p_count < 1.0, _norm_isf(np.clip(p_count, 1e-300, 1.0)).clip(-10, 40), 0.0)
        elevated = (z_robust >= 1.0) | (z_count >= 1.0) | (z_size >= 1.0)
        sustained = soft & window.protected[:, -1] & (prev > 0) & (
            (pair_z >= p.z_threshold) | (p_pair <= p.count_alpha)
        )
        # Three months pooled, for rises that build: each month may be modest.
        prev2 = nan_to_num(v_raw[:, -2])
        with np.errstate(divide="ignore", invalid="ignore"):
            z_prev2 = _hurdle_z(prev2, np.where(learned_month[:, 10], centre_ds + profile[:, 10], centre), sigma, q, k)
        triple_z = (z_robust + z_prev + z_prev2) / np.sqrt(3.0)
        triple_count = pair_count + nan_to_num(c_raw[:, -2])
        counted3 = counted & ~np.isnan(c_raw[:, -2])
        p_triple = np.where(counted3 & (triple_count > 0),
                            special.betainc(np.maximum(triple_count, 1.0), 3 * size, 1.0 - prob), 1.0)
        if p.sustained_lookback >= 2:
            # a suspicious month two back and one between that fell short (a lumpy lane's lull, its
            # count dipping): the pair of suspicious months pooled
            gap_z = (z_robust + z_prev2) / np.sqrt(2.0)
            sustained |= soft & window.protected[:, -2] & (prev2 > 0) & (gap_z >= p.z_threshold)
        # bigger shipments three months running, each month's sizes up (z >= 1) but short of the bar
        # alone: the three sizes pooled (Stouffer). A x3 in size on a lane whose declarations vary
        # widely is a z of 1.5-2 a month, and the unprotected months are learned meanwhile
        sustained |= sized & (np.minimum(np.minimum(z_size, z_size1), z_size2) >= 1.0) & (
            (z_size + z_size1 + z_size2) / np.sqrt(3.0) >= p.z_threshold)
        building = large & elevated & (z_prev > 0) & (
            (triple_z >= p.z_pooled) | (p_triple <= p.count_alpha_strong)
        )
        nan_to = np.nan
        return SurgeScores(
            level=np.where(eligible, level, nan_to),
            expected=np.where(eligible, expected, nan_to),
            band_low=np.where(eligible, band_low, nan_to),
            band_high=np.where(eligible, band_high, nan_to),
            sigma=sigma,
            z=np.where(eligible, z, 0.0),
            z_robust=np.where(eligible, z_robust, 0.0),
            expected_count=expected_count,
            p_count=p_count,
            z_count=np.where(eligible, z_count, 0.0),
            p_freq=p_freq,
            p_value=np.where(eligible, p_value, 1.0),
            score=np.where(eligible, score, 0.0),
            ratio=np.where(eligible, ratio, np.nan),
            excess=np.where(eligible, excess, np.nan),
            eligible=eligible,
            candidate=candidate,
            soft=soft,
            immediate=immediate,
            sustained=sustained,
            elevated=elevated,
            building=building,
            z_prev=np.where(eligible, z_prev, 0.0),
            z_prev2=np.where(eligible, z_prev2, 0.0),
            count_size=size,
            count_prob=prob,
            z_size=np.where(eligible, z_size, 0.0),
            season=factor,
            learned_season=np.where(learned, factor, 1.0),
        )

    def _seasonal_factor(self, v_hist: np.ndarray, usable: np.ndarray, share: np.ndarray) -> np.ndarray:
        """Before a season is learned (:func:`season_profile`): the shrunk ratio of the same month in
        past years to its centred 12-month mean, for the month alone, within 0.5 .. 2."""
        h = v_hist.shape[1]
        total = np.zeros(v_hist.shape[0])
        seen = np.zeros(v_hist.shape[0])
        for k in (1, 2, 3):
            pos = h - 12 * k
            if pos < 0:
                break
            lo, hi = max(pos - 5, 0), min(pos + 7, h)
            local, n_local = trimmed_mean(v_hist[:, lo:hi], usable[:, lo:hi])
            ok = usable[:, pos] & (n_local >= 8) & (local > 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                total += np.where(ok, v_hist[:, pos] / local, 0.0)
            seen += ok
        shrink = self.params.seasonal_prior_shrink
        factor = np.clip((total + shrink) / (seen + shrink), 0.5, 2.0)
        return np.where(share >= self.params.seasonal_min_share, factor, 1.0)

    @staticmethod
    def _frequency_test(v_hist: np.ndarray, usable: np.ndarray, value: np.ndarray) -> np.ndarray:
        """``P(at least this many of the last 3 months trade)`` under the share of
        trading months before them: a lane that used to trade now and then and
        now trades month after month. The count evidence of monthly statistics."""
        h = v_hist.shape[1]
        before = usable.copy()
        before[:, : h - 24] = False
        before[:, h - 2 :] = False
        n = before.sum(axis=1)
        q = ((before & (v_hist > 0)).sum(axis=1) + 0.5) / (n + 1.0)
        recent = (nan_to_num(v_hist[:, -2:]) > 0).sum(axis=1) + (value > 0)
        tail = np.select(
            [recent >= 3, recent == 2, recent == 1],
            [q**3, 3 * q**2 * (1 - q) + q**3, 1 - (1 - q) ** 3],
            default=1.0,
        )
        return np.where((value > 0) & (n >= 12), tail, 1.0)

    @staticmethod
    def _size_test(
        v_hist: np.ndarray, c_hist: np.ndarray, mask: np.ndarray, value: np.ndarray, count: np.ndarray,
        min_months: int, floor: float, previous: tuple[tuple[np.ndarray, np.ndarray], ...] = (),
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Shipment size: z of the month's value per declaration against the lane's past months'
        value per declaration (``mask``'s months with declarations): 0 where the count is unknown or
        0, or the lane has fewer than ``min_months`` such months; and the same z of each
        ``previous`` (value, count) pair (earlier months, judged against the same past).

        The caller passes the month's robust value, so one giant declaration is not a size. A month's log mean size varies
        about ``tau / sqrt(count)`` around the lane's median (``tau``: a robust spread of one
        declaration, from the past months' deviations times ``sqrt(count)``), with Student-t tails
        of the past months' number less one. The same number of declarations, each three times its
        usual size, is rare on a lane whose sizes are stable, even when the month's total is within
        the lane's usual swings (which also carry the count's).
        """
        sized = mask & (nan_to_num(c_hist) > 0) & (nan_to_num(v_hist) > 0)
        c = np.where(sized, c_hist, 1.0)
        logs = np.where(sized, np.log(np.where(sized, v_hist, 1.0) / c), np.nan)
        centre = _row_median(logs)
        tau = np.maximum(1.4826 * nan_to_num(_row_median(np.sqrt(c) * np.abs(logs - centre[:, None]))), floor)
        k = sized.sum(axis=1)
        total = np.where(sized, c_hist, 0.0).sum(axis=1)
        df = np.clip(k - 1.0, 1.0, 30.0)

        def z_of(value: np.ndarray, count: np.ndarray) -> np.ndarray:
            ok = (k >= min_months) & (nan_to_num(count) > 0) & (nan_to_num(value) > 0)
            n = np.where(ok, count, 1.0)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # subnormal sizes: -inf, a tiny z
                t = (np.log(np.where(ok, value, 1.0) / n) - nan_to_num(centre)) / (
                    tau * np.sqrt(1.0 / n + 1.0 / np.maximum(total, 1.0)))
            return np.where(ok, _norm_isf(np.clip(special.stdtr(df, -t), 1e-300, 1.0)).clip(-10.0, 40.0), 0.0)

        return z_of(value, count), [z_of(v, n) for v, n in previous]

    @staticmethod
    def _typical_item(v_hist: np.ndarray, c_hist: np.ndarray, mask: np.ndarray, level: np.ndarray) -> np.ndarray:
        """Typical declaration value: past value per past declaration."""
        counted = mask & ~np.isnan(c_hist)
        values = np.where(counted, v_hist, 0.0).sum(axis=1)
        counts = np.where(counted, c_hist, 0.0).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(counts > 0, values / counts, level)

    @staticmethod
    def _count_test(
        c_hist: np.ndarray, last12: np.ndarray, last24: np.ndarray, factor: np.ndarray, count: np.ndarray,
        dispersion: float = 0.2, dispersion_months: float = 12.0,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Negative-binomial upper tail ``P(N >= count)`` (1 where counts are unknown),
        with the expected count and the distribution's size and probability."""
        known12 = last12 & ~np.isnan(c_hist)
        known24 = last24 & ~np.isnan(c_hist)
        mean12, n12 = trimmed_mean(c_hist, known12)
        mean24, n24 = trimmed_mean(c_hist, known24)
        mean = np.where(n12 >= 6, mean12, mean24)
        mean = np.fmax(mean, _year_before(c_hist, last24 & ~np.isnan(c_hist)))
        n = np.maximum(n24, 0)
        prior = 0.5 / (n + 1.0)
        mu = np.maximum(nan_to_num(mean) * factor, prior)
        cz = np.where(known24, c_hist, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m = np.nanmean(cz, axis=1)
            var = np.nanvar(cz, axis=1)
            # over-dispersion, shrunk towards a prior: a few counts say little about it
            raw = np.clip(nan_to_num((var - m) / (m * m)), 0.0, 3.0)
            alpha = np.maximum((n * raw + dispersion_months * dispersion) / (n + dispersion_months), 0.02)
        size = 1.0 / alpha
        prob = 1.0 / (1.0 + alpha * mu)
        known = ~np.isnan(count) & (n > 0)
        c = np.where(known, count, 0.0)
        # P(N >= c) = P(N > c - 1) = I_{1-prob}(c, size) for a negative binomial
        p = np.where(known & (c > 0), special.betainc(np.maximum(c, 1.0), size, 1.0 - prob), 1.0)
        return np.where(known, mu, np.nan), p, size, prob
