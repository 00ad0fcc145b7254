"""Seeded, labelled trade scenario for the detection-quality benchmark.

One call gives both kinds of input of the transitwatch contract (``docs/input-format.md``) for
the same simulated trade, and a truth file that says what was injected where.

- **Declarations**: one line per customs declaration (``declaration_id``, ``date``,
  ``reporter``, ``partner``, ``flow``, ``hs_code`` as CN8, ``value``, ``currency``,
  ``net_mass_kg``, ``exporter``, ``consignee``), in file order.
- **Monthly statistics**: per series-month with trade, one line per CN8 code with the value and
  net mass summed over that month's declarations (each declaration counted once). Values are in
  EUR, as Comext publishes them: declarations of USD reporters are converted with a monthly
  rate kept in :attr:`Scenario.eur_per_usd`.
- **Truth**: JSON Lines, ``kind`` first (see below).

A series is ``(reporter, partner, flow="export", hs6)``: twelve EU reporters, the 50 CHPL HS6
codes, partners the hubs next to Russia (AM, KZ, KG, GE, UZ, TR, AE) plus control series to RU
and BY for some of the same reporter and HS6 pairs. ``hub_series`` counts hub series only.

What makes it hard, and why
---------------------------
- **Density**: about 3.5% of hub series are dense (80-400 declarations a month), 23.5% medium
  (4-40), 36.5% low (1-4) and 36.5% sparse (0.1-1). Rates are skewed to the low end of each
  class (heavy-tailed, as real lanes are). A sparse lane is mostly zeros: a ratio test explodes
  on it and a z-score has no spread. (3.5% rather than 5% dense keeps the default size near
  1.4 million declaration lines: dense lanes are most of the lines.)
- **Noise**: monthly counts are gamma-Poisson (negative binomial, gamma shape 5-30 per series);
  declaration values are lognormal per series (median 2k-200k in the reporter's currency,
  sigma 0.7-1.3). One month can easily be twice the next without anything happening.
- **Seasonality** on 40% of series (a sinusoid of amplitude 10-40%, peak in December, summer,
  March or autumn) and **slow trends** (-15% to +25% a year, centred on the middle of the
  window): a detector with a flat baseline alarms every peak season and every growing lane.
- **Pandemic dip** (``dip``): every series x0.4-0.6 for 3-4 months (2020-04 when it fits),
  then back to the prior level. The rebound looks like a surge to anything that learned the dip.
- **Sanctions** (``sanctions``): from the sanctions month, about 85% of RU and BY series fall to
  5-30% of their level within 1-2 months (all dense and medium ones do); the rest, small
  lanes, keep 50-100%. A collapse, not a surge.
- **Macro shock** (``macro_shock``): one of the larger reporters x1.3 on every series (hubs, RU and BY) for
  three months inside the evaluation window. Dense lanes show it clearly; it is not re-export,
  and a detector without cross-series controls flags the whole reporter.
- **Decoys** (``decoy``): on about 2% of hub series (never surged ones) one extra declaration
  20-100x the series' median declaration, in a month of the evaluation window. One line moves
  a sparse month's value by orders of magnitude but its count by one.
- **Duplicates**: about 0.5% of declarations are re-sent later in the file with the same
  ``declaration_id`` and content; counting them twice inflates a month.
- **Late lines**: about 1% of declarations appear in the file 10-60 days after their date
  (they keep their true date), so a stream sees a month's lines after the month has closed.
- **Revisions**: about 2% of monthly lines are published first with a preliminary value
  (+-1-10% off) and revised 1-3 months later in the file (same identity, the final value).
  The last line of an identity wins; the truth and the declarations agree with the revised data.
- **Surges** (``surge``): about 4% of hub series get a x2.5-x20 (log-uniform) rise, a step
  (``ramp_months`` 1) or a ramp over 2-4 months linear in log, with onsets uniform over the last
  24 months of the window and at least 24 months after its start. About a third of surge
  events are co-ordinated: 2-4 reporters into the same hub and HS6, onsets within one month,
  sharing an ``event_id``. About 30% end after 3-12 months. The factor multiplies mostly the
  number of declarations (``factor ** (0.65..0.9)``) and partly the value of each; part of the
  extra declarations go to consignees the series has never used. Every density class gets
  surges, sparse ones included (there a x3 rise is a handful of declarations a year).

Truth records
-------------
- ``{"kind": "sanctions", "month", "destinations": ["RU", "BY"]}``
- ``{"kind": "dip", "start", "months", "factor"}``
- ``{"kind": "macro_shock", "reporter", "start", "months", "factor"}``
- ``{"kind": "series", "reporter", "partner", "flow", "hs6", "density", "base_rate"}`` for every
  hub series; ``base_rate`` is declarations a month before seasonality, trend and events.
- ``{"kind": "surge", "reporter", "partner", "flow", "hs6", "onset", "shape", "factor",
  "ramp_months", "end", "event_id", "density"}``; ``end`` is the first month back at base, or
  null when the surge lasts past the window.
- ``{"kind": "decoy", "reporter", "partner", "flow", "hs6", "month", "factor",
  "declaration_id", "density"}``; ``factor`` is the giant's value over the median of the
  series' other declarations.

Counts for every series-month are drawn with numpy in one go, then every line; only building
the output dicts is a Python loop. Same seed, same bytes.

Usage::

    python -m benchmarks.scenarios.labelled --seed 1 --hub-series 3000 --out-dir /tmp/scn

Examples
--------
>>> scn = generate(seed=1, hub_series=40, months=30)
>>> sorted(scn.declarations[0])[:4]
['consignee', 'currency', 'date', 'declaration_id']
>>> scn.monthly[0]["period"]
'2019-01'
>>> sorted({t["kind"] for t in scn.truth})
['decoy', 'dip', 'macro_shock', 'sanctions', 'series', 'surge']
"""

from __future__ import annotations

import argparse
import calendar
import gzip
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from benchmarks.scenarios.declarations import _HS4_VALUE, CHPL_HS6, KNOWN_CN8, _company_pools
from transitwatch.detectors.errors import InvalidParameterError

# Relative weights of the reporters in these lanes (invented, not data).
REPORTERS: dict[str, float] = {
    "DE": 0.24, "IT": 0.10, "FR": 0.08, "NL": 0.09, "PL": 0.10, "CZ": 0.07,
    "AT": 0.06, "BE": 0.05, "ES": 0.04, "LT": 0.09, "SE": 0.04, "FI": 0.04,
}
USD_REPORTERS = frozenset({"PL", "SE"})   # declarations in USD; monthly statistics in EUR
HUBS: dict[str, float] = {
    "KZ": 0.22, "TR": 0.22, "AE": 0.18, "UZ": 0.10, "GE": 0.10, "AM": 0.10, "KG": 0.08,
}
SANCTIONED = ("RU", "BY")
CONTROL_SHARE = {"RU": 1 / 3, "BY": 1 / 6}   # of (reporter, hs6) pairs with a hub series
FLOW = "export"

# (class, share of hub series, lowest rate, highest rate), declarations a month.
DENSITY: tuple[tuple[str, float, float, float], ...] = (
    ("dense", 0.035, 80.0, 400.0),
    ("medium", 0.235, 4.0, 40.0),
    ("low", 0.365, 1.0, 4.0),
    ("sparse", 0.365, 0.1, 1.0),
)
RATE_SKEW = 4.0            # rate = lo * (hi / lo) ** (u ** RATE_SKEW): most lanes near lo
SEASONAL_SHARE = 0.40
SURGE_SHARE = 0.04
MACRO_FACTOR = 1.3
COORDINATED_SHARE = 1 / 3
ENDING_SHARE = 0.30
DECOY_SHARE = 0.02
DUPLICATE_SHARE = 0.005
LATE_SHARE = 0.01
REVISION_SHARE = 0.02
SURGE_CLASS_WEIGHT = {"dense": 0.10, "medium": 0.30, "low": 0.30, "sparse": 0.30}
_ESTABLISHED = 60          # consignees 0..59 of a partner's pool are regulars, the rest newcomers
MAX_HUB_SERIES = len(REPORTERS) * len(HUBS) * len(CHPL_HS6)


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """One generated scenario: both inputs, in file order, and the truth.

    Attributes
    ----------
    declarations : list of dict
        Declaration lines of the input contract, in file order (duplicates and late lines
        included).
    monthly : list of dict
        Monthly statistic lines in file order (preliminary lines and their revisions included).
    truth : list of dict
        Truth records, ``kind`` first.
    periods : tuple of str
        The months of the window, ``YYYY-MM``.
    eur_per_usd : dict
        Period to the rate used to put USD declarations into EUR monthly statistics.
    """

    declarations: list[dict]
    monthly: list[dict]
    truth: list[dict]
    periods: tuple[str, ...]
    eur_per_usd: dict[str, float]
    null: NullModel | None = None


@dataclass(frozen=True)
class NullModel:
    """What an oracle may know of the hub series (``benchmarks.oracle``): each one's true
    model without surges, and what its declarations were, per month. Rows follow ``keys``;
    columns the window's months.

    Attributes
    ----------
    keys : tuple of (reporter, partner, flow, hs6)
    expected : ndarray (series, months)
        Expected declarations before surges and noise: base rate, season, trend, the dip and
        the macro shock.
    shape : ndarray (series,)
        Gamma shape of the monthly over-dispersion: counts are negative binomial with mean
        ``expected`` and size ``shape``.
    count : ndarray (series, months)
        Declarations drawn (decoys included, re-sent duplicates not).
    z_sum, z_max : ndarray (series, months)
        Sum and largest of ``(log value - mu) / sigma`` over the month's declarations (values
        in USD, before surges a standard normal each); ``z_max`` is ``-inf`` for an empty month.
    new_parties : ndarray (series, months)
        Consignees of the month's declarations not seen on the series in the 36 months before
        (every one is new in the data's first month).
    new_rate : float
        New consignees per declaration without surges: measured on the hub series that never
        surge, from the 37th month on (the generator's churn of one-off buyers).
    """

    keys: tuple[tuple[str, str, str, str], ...]
    expected: np.ndarray
    shape: np.ndarray
    count: np.ndarray
    z_sum: np.ndarray
    z_max: np.ndarray
    new_parties: np.ndarray | None = None
    new_rate: float = 0.0


PARTY_MEMORY_MONTHS = 36


def new_parties(series: np.ndarray, month: np.ndarray, party: np.ndarray, shape: tuple[int, int],
                memory: int = PARTY_MEMORY_MONTHS) -> np.ndarray:
    """Per (series, month): the parties of the month not seen on the series in the ``memory``
    months before.

    Examples
    --------
    >>> new_parties(np.array([0, 0, 0, 0]), np.array([0, 0, 2, 40]), np.array([7, 8, 7, 7]), (1, 41))[0, [0, 2, 40]]
    array([2., 0., 1.])
    """
    triples = np.unique(np.stack([series, party, month]), axis=1)   # sorted by series, party, month
    s, p, m = triples
    first = np.ones(s.size, dtype=bool)
    first[1:] = (s[1:] != s[:-1]) | (p[1:] != p[:-1]) | (m[1:] - m[:-1] > memory)
    out = np.zeros(shape)
    np.add.at(out, (s[first], m[first]), 1.0)
    return out


def parse_month(name: str, text: str) -> int:
    """Month counter ``year * 12 + month - 1`` of ``YYYY-MM``."""
    try:
        year, month = (int(p) for p in str(text).split("-"))
    except ValueError:
        raise InvalidParameterError(name, text, "a month YYYY-MM") from None
    if len(str(text)) != 7 or not (1900 <= year <= 2999 and 1 <= month <= 12):
        raise InvalidParameterError(name, text, "a month YYYY-MM")
    return year * 12 + month - 1


def check_seed_and_months(seed: object, months: object) -> None:
    """The checks every scenario generator makes of its seed and length (at least 30 months)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise InvalidParameterError("seed", seed, "an integer >= 0")
    if not isinstance(months, (int, np.integer)) or months < 30:
        raise InvalidParameterError("months", months, "an integer >= 30")


def _label(counter: int) -> str:
    return f"{counter // 12:04d}-{counter % 12 + 1:02d}"


def _cn8_options(hs6: str) -> tuple[str, ...]:
    """CN8 codes under an HS6: real ones where known, else a fixed invented split."""
    if hs6 in KNOWN_CN8:
        return KNOWN_CN8[hs6]
    return ((hs6 + "00",), (hs6 + "10", hs6 + "90"), (hs6 + "10", hs6 + "30", hs6 + "90"))[int(hs6) % 3]


class _Builder:
    """Holds the random state and the per-series arrays while a scenario is drawn."""

    def __init__(self, *, seed: int, hub_series: int, start: str, months: int, sanctions: str):
        check_seed_and_months(seed, months)
        if not isinstance(hub_series, (int, np.integer)) or not 1 <= hub_series <= MAX_HUB_SERIES:
            raise InvalidParameterError("hub_series", hub_series, f"an integer in 1..{MAX_HUB_SERIES}")
        self.first = parse_month("start", start)
        self.sanctions = parse_month("sanctions", sanctions) - self.first
        self.m = int(months)
        self.periods = tuple(_label(self.first + k) for k in range(self.m))
        self.rng = np.random.default_rng(int(seed))
        self.pools = _company_pools()
        # Surge onsets: the last 24 months, and at least 24 months after the start.
        self.lo = max(self.m - 24, 24)
        self.truth: list[dict] = []
        self._series(int(hub_series))

    # -- series ---------------------------------------------------------------------------
    def _series(self, hub_series: int) -> None:
        rng = self.rng
        reps, hubs, hs6 = list(REPORTERS), list(HUBS), [h for h, _ in CHPL_HS6]
        hs_w = rng.lognormal(0.0, 0.6, len(hs6))
        w = (np.array(list(REPORTERS.values()))[:, None, None]
             * np.array(list(HUBS.values()))[None, :, None] * hs_w[None, None, :]).ravel()
        chosen = rng.choice(w.size, size=hub_series, replace=False, p=w / w.sum())
        # Heavier lanes tend to be denser, with plenty of noise.
        chosen = chosen[np.argsort(-w[chosen] * rng.lognormal(0.0, 1.0, hub_series), kind="stable")]
        r_idx, p_idx, h_idx = np.unravel_index(chosen, (len(reps), len(hubs), len(hs6)))
        bounds = np.round(np.cumsum([0.0] + [d[1] for d in DENSITY]) * hub_series).astype(int)
        density = np.empty(hub_series, dtype=np.int64)
        for c in range(len(DENSITY)):
            density[bounds[c]:bounds[c + 1]] = c
        reporter = [reps[i] for i in r_idx]
        partner = [hubs[i] for i in p_idx]
        code = [hs6[i] for i in h_idx]
        # Control series to RU and BY for part of the (reporter, hs6) pairs seen above.
        pairs = sorted(set(zip(reporter, code)), key=lambda p: (reps.index(p[0]), p[1]))
        probs = np.array([d[1] for d in DENSITY])
        for dest, share in CONTROL_SHARE.items():
            for (r, h), u in zip(pairs, rng.random(len(pairs))):
                if u < share:
                    reporter.append(r)
                    partner.append(dest)
                    code.append(h)
            extra = len(reporter) - density.size
            density = np.concatenate([density, rng.choice(len(DENSITY), size=extra, p=probs)])
        n = len(reporter)
        self.n, self.n_hub = n, hub_series
        self.reporter, self.partner, self.hs6 = reporter, partner, code
        self.rep_idx = np.array([reps.index(r) for r in reporter])
        self.density = density
        lo = np.array([DENSITY[c][2] for c in density])
        hi = np.array([DENSITY[c][3] for c in density])
        self.base_rate = lo * (hi / lo) ** (rng.random(n) ** RATE_SKEW)
        self.currency = ["USD" if r in USD_REPORTERS else "EUR" for r in reporter]

        hs4 = [_HS4_VALUE.get(h[:4], (5000.0, 100.0)) for h in code]
        median = np.clip(np.array([v for v, _ in hs4]) * rng.lognormal(0.0, 0.8, n), 2e3, 2e5)
        self.mu = np.log(median)
        self.sigma = rng.uniform(0.7, 1.3, n)
        self.log_unit = np.log([u for _, u in hs4]) + rng.normal(0.0, 0.4, n)
        self.shape = rng.uniform(5.0, 30.0, n)       # gamma shape: monthly over-dispersion

        # One to three CN8 codes per series, with uneven shares.
        self.cn8_codes = sorted({c for h in set(code) for c in _cn8_options(h)})
        pos = {c: i for i, c in enumerate(self.cn8_codes)}
        self.series_cn8 = np.zeros((n, 3), dtype=np.int64)
        self.cn8_cum = np.ones((n, 3))
        for s, h in enumerate(code):
            opts = _cn8_options(h)
            k = int(rng.integers(1, min(3, len(opts)) + 1))
            pick = np.sort(rng.choice(len(opts), size=k, replace=False))
            self.series_cn8[s, :k] = [pos[opts[i]] for i in pick]
            self.cn8_cum[s, :k] = np.cumsum(rng.dirichlet(np.full(k, 2.0)))
        self.cn8_cum[:, 2] = 1.0

        # Regular trading partners: denser series deal with more companies.
        self.n_exp = np.clip(np.round(1 + self.base_rate ** 0.5), 1, 12).astype(np.int64)
        self.n_con = np.clip(np.round(1 + 0.8 * self.base_rate ** 0.5), 1, 12).astype(np.int64)
        n_pool_exp = len(self.pools["DE"])
        n_pool_con = len(self.pools["KZ"])
        self.reg_exp = rng.permuted(np.tile(np.arange(n_pool_exp), (n, 1)), axis=1)[:, :12]
        self.reg_con = rng.permuted(np.tile(np.arange(_ESTABLISHED), (n, 1)), axis=1)[:, :12]
        self.new_con = rng.permuted(
            np.tile(np.arange(_ESTABLISHED, n_pool_con), (n, 1)), axis=1)[:, :3]

        for s in range(hub_series):
            self.truth.append({
                "kind": "series", "reporter": reporter[s], "partner": partner[s], "flow": FLOW,
                "hs6": code[s], "density": DENSITY[density[s]][0],
                "base_rate": round(float(self.base_rate[s]), 4),
            })

    # -- expected counts ------------------------------------------------------------------
    def intensity(self) -> np.ndarray:
        """Expected declarations per series-month, before surges and noise."""
        rng, n, m = self.rng, self.n, self.m
        t = np.arange(m)
        cal = (self.first + t) % 12 + 1
        seasonal = rng.random(n) < SEASONAL_SHARE
        amp = np.where(seasonal, rng.uniform(0.10, 0.40, n), 0.0)
        peak = rng.choice(np.array([12, 12, 6, 7, 3, 10]), size=n)
        season = 1.0 + amp[:, None] * np.cos(2 * np.pi * (cal[None, :] - peak[:, None]) / 12.0)
        growth = rng.uniform(-0.15, 0.25, n)
        trend = (1.0 + growth[:, None]) ** ((t[None, :] - (m - 1) / 2) / 12.0)
        lam = self.base_rate[:, None] * season * trend

        # Pandemic-like dip, before the surge window.
        dip_len = int(rng.integers(3, 5))
        dip_factor = float(rng.uniform(0.4, 0.6))
        dip = parse_month("start", "2020-04") - self.first
        if not (3 <= dip and dip + dip_len <= self.lo):
            dip = max(1, (self.lo - dip_len) // 2)
        lam[:, dip:dip + dip_len] *= dip_factor
        self.dip = (dip, dip_len)

        # Sanctions: most RU and BY lanes collapse within one or two months. Dense and medium
        # lanes always do (a large lane of banned goods cannot go on openly); some small ones
        # wind down slowly (exemptions, old contracts).
        k = self.sanctions
        if 0 <= k < m:
            for s in np.flatnonzero([p in SANCTIONED for p in self.partner]):
                if rng.random() < 0.8 or DENSITY[self.density[s]][0] in ("dense", "medium"):
                    floor = rng.uniform(0.05, 0.30)
                    lam[s, k:] *= floor
                    if rng.random() < 0.5:       # a two-month slide
                        lam[s, k] *= floor ** -0.5
                else:
                    lam[s, k:] *= rng.uniform(0.5, 1.0)

        # Macro shock: one of the larger reporters (in this scenario's lanes), every series,
        # three months inside the evaluation window.
        volume = np.bincount(self.rep_idx[: self.n_hub], weights=self.base_rate[: self.n_hub],
                             minlength=len(REPORTERS))
        volume = np.where(volume >= np.median(volume), volume, 0.0)
        rep = int(rng.choice(len(REPORTERS), p=volume / volume.sum()))
        start = int(rng.integers(self.lo, m - 2))
        lam[np.ix_(self.rep_idx == rep, np.arange(start, start + 3))] *= MACRO_FACTOR
        self.truth[:0] = [
            {"kind": "sanctions", "month": _label(self.first + k), "destinations": list(SANCTIONED)},
            {"kind": "dip", "start": self.periods[dip], "months": dip_len,
             "factor": round(dip_factor, 4)},
            {"kind": "macro_shock", "reporter": list(REPORTERS)[rep], "start": self.periods[start],
             "months": 3, "factor": MACRO_FACTOR},
        ]
        return lam

    # -- surges ---------------------------------------------------------------------------
    def surges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Count and value multipliers per series-month, and the new-consignee share."""
        rng, m = self.rng, self.m
        count_mult, value_mult = np.ones((self.n, m)), np.ones((self.n, m))
        new_share = np.zeros(self.n)
        names = [d[0] for d in DENSITY]
        free = {c: set(np.flatnonzero(self.density[: self.n_hub] == c).tolist()) for c in range(len(DENSITY))}
        lane: dict[tuple[str, str], list[int]] = {}
        for s in range(self.n_hub):
            lane.setdefault((self.partner[s], self.hs6[s]), []).append(s)
        target = max(3, round(SURGE_SHARE * self.n_hub))
        weights = np.array([SURGE_CLASS_WEIGHT[c] for c in names])
        forced = list(rng.permutation(len(DENSITY)))   # every class gets at least one surge
        used: set[int] = set()
        event_id = 0
        while len(used) < target and any(free.values()):
            in_forced_round = bool(forced)
            c = forced.pop() if forced else int(rng.choice(len(DENSITY), p=weights))
            if not free[c]:
                continue
            coordinated = rng.random() < COORDINATED_SHARE
            pool = sorted(free[c])
            if coordinated:
                with_peers = [s for s in pool if any(
                    p not in used and p != s for p in lane[(self.partner[s], self.hs6[s])])]
                pool = with_peers or pool
            primary = int(pool[rng.integers(len(pool))])
            members = [primary]
            peers = [p for p in lane[(self.partner[primary], self.hs6[primary])]
                     if p not in used and p != primary]
            if coordinated and peers:
                take = min(len(peers), int(rng.integers(1, 4)))
                members += [peers[i] for i in sorted(rng.choice(len(peers), take, replace=False))]
            onset = int(rng.integers(self.lo, m))
            # Steps and ramps alternate over the first round, so both reach non-sparse lanes.
            step = len(forced) % 2 == 1 if in_forced_round else rng.random() < 0.5
            ramp = 1 if step else int(rng.integers(2, 5))
            factor = float(np.exp(rng.uniform(np.log(2.5), np.log(20.0))))
            # An ending surge lasts 3-12 months, and past the end of its ramp.
            duration = int(rng.integers(max(3, ramp + 1), 13)) if rng.random() < ENDING_SHARE else None
            share_new = float(rng.uniform(0.3, 0.9))
            for j, s in enumerate(members):
                f = factor if j == 0 else float(np.clip(factor * rng.uniform(0.7, 1.3), 2.5, 20.0))
                on = onset if j == 0 else min(onset + int(rng.integers(0, 2)), m - 1)
                stop = m if duration is None else min(m, on + duration)
                t = np.arange(m)
                level = np.log(f) * np.clip((t - on + 1) / ramp, 0.0, 1.0)
                active = (t >= on) & (t < stop)
                w_val = float(rng.uniform(0.10, 0.35))   # share of the log-factor in value
                count_mult[s] = np.where(active, np.exp((1 - w_val) * level), 1.0)
                value_mult[s] = np.where(active, np.exp(w_val * level), 1.0)
                new_share[s] = share_new
                used.add(s)
                free[int(self.density[s])].discard(s)
                self.truth.append({
                    "kind": "surge", "reporter": self.reporter[s], "partner": self.partner[s],
                    "flow": FLOW, "hs6": self.hs6[s], "onset": self.periods[on],
                    "shape": "step" if ramp == 1 else "ramp", "factor": round(f, 4),
                    "ramp_months": ramp, "end": self.periods[stop] if stop < m else None,
                    "event_id": event_id, "density": names[self.density[s]],
                })
            event_id += 1
        self.surged = used
        return count_mult, value_mult, new_share

    # -- declarations ---------------------------------------------------------------------
    def draw_days(self, month: np.ndarray) -> np.ndarray:
        """Days since 1970-01-01; weekdays are about six times as likely as weekend days."""
        day = np.empty(month.size, dtype=np.int64)
        order = np.argsort(month, kind="stable")
        edges = np.searchsorted(month[order], np.arange(self.m + 1))
        for k in range(self.m):
            sel = order[edges[k]:edges[k + 1]]
            if sel.size == 0:
                continue
            y, mo = divmod(self.first + k, 12)
            first = np.datetime64(f"{y:04d}-{mo + 1:02d}-01", "D").astype(np.int64)
            ndays = calendar.monthrange(y, mo + 1)[1]
            weekday = (np.arange(ndays) + calendar.weekday(y, mo + 1, 1)) % 7
            w = np.where(weekday < 5, 1.0, 0.15)
            day[sel] = first + self.rng.choice(ndays, size=sel.size, p=w / w.sum())
        return day

    def lines(self, lam: np.ndarray, count_mult: np.ndarray, value_mult: np.ndarray,
              new_share: np.ndarray) -> dict[str, np.ndarray]:
        """Every unique declaration as columns (unordered), decoys included."""
        rng, n, m = self.rng, self.n, self.m
        noise = rng.gamma(self.shape[:, None], 1.0 / self.shape[:, None], (n, m))
        counts = rng.poisson(lam * count_mult * noise)
        series, month = np.divmod(np.repeat(np.arange(n * m), counts.ravel()), m)
        size = series.size
        value = np.exp(self.mu[series] + self.sigma[series] * rng.standard_normal(size))
        value = np.maximum(np.round(value * value_mult[series, month], 2), 1.0)
        excess = rng.random(size) < 1.0 - 1.0 / count_mult[series, month]
        to_new = excess & (rng.random(size) < new_share[series])
        exporter = self.reg_exp[series, (self.n_exp[series] * rng.random(size) ** 2).astype(np.int64)]
        consignee = self.reg_con[series, (self.n_con[series] * rng.random(size) ** 2).astype(np.int64)]
        consignee = np.where(to_new, self.new_con[series, rng.integers(0, 3, size)], consignee)
        churn = rng.random(size) < 0.01          # one-off buyers, unrelated to surges
        consignee = np.where(churn, rng.integers(0, len(self.pools["KZ"]), size), consignee)
        slot = (rng.random(size)[:, None] > self.cn8_cum[series]).sum(axis=1)
        cols = {"series": series, "month": month, "value": value, "exporter": exporter,
                "consignee": consignee, "cn8": self.series_cn8[series, np.minimum(slot, 2)]}
        cols = self._add_decoys(cols)
        cols["day"] = self.draw_days(cols["month"])
        unit = np.exp(self.log_unit[cols["series"]] + 0.3 * rng.standard_normal(cols["value"].size))
        cols["mass"] = np.maximum(np.round(cols["value"] / unit, 3), 0.001)
        return cols

    def _add_decoys(self, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rng, m = self.rng, self.m
        series = cols["series"]
        order = np.argsort(series, kind="stable")
        edges = np.searchsorted(series[order], np.arange(self.n + 1))
        candidates = [s for s in range(self.n_hub)
                      if s not in self.surged and edges[s + 1] - edges[s] >= 3]
        n_decoy = min(len(candidates), max(2, round(DECOY_SHARE * self.n_hub)))
        chosen = sorted(rng.choice(len(candidates), size=n_decoy, replace=False).tolist())
        extra: dict[str, list] = {k: [] for k in cols}
        self.decoys: list[tuple[int, int, float]] = []   # (line index, series, factor)
        names = [d[0] for d in DENSITY]
        for i in chosen:
            s = candidates[i]
            median = float(np.median(cols["value"][order[edges[s]:edges[s + 1]]]))
            factor = float(rng.uniform(20.0, 100.0))
            value = float(np.ceil(factor * median * 100.0) / 100.0)
            mo = int(rng.integers(self.lo, m))
            extra["series"].append(s)
            extra["month"].append(mo)
            extra["value"].append(value)
            extra["exporter"].append(self.reg_exp[s, 0])
            extra["consignee"].append(self.reg_con[s, 0])
            extra["cn8"].append(self.series_cn8[s, 0])
            line = series.size + len(self.decoys)
            self.decoys.append((line, s, value / median))
            self.truth.append({
                "kind": "decoy", "reporter": self.reporter[s], "partner": self.partner[s],
                "flow": FLOW, "hs6": self.hs6[s], "month": self.periods[mo],
                "factor": round(value / median, 4), "declaration_id": None,
                "density": names[self.density[s]],
            })
        return {k: np.concatenate([v, np.asarray(extra[k], dtype=v.dtype)]) for k, v in cols.items()}

    def declaration_ids(self, cols: dict[str, np.ndarray]) -> list[str]:
        """``YY`` + reporter + serial; serials run per reporter in date order."""
        rng = self.rng
        rep = self.rep_idx[cols["series"]]
        order = np.lexsort((rng.random(rep.size), cols["day"], rep))
        start = np.searchsorted(rep[order], rep[order])
        serial = np.empty(rep.size, dtype=np.int64)
        serial[order] = np.arange(rep.size) - start + 1
        reps = list(REPORTERS)
        yy = (cols["day"].astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970) % 100
        ids = [f"{y:02d}{reps[r]}{k:010d}" for y, r, k in zip(yy.tolist(), rep.tolist(), serial.tolist())]
        decoy_kinds = [t for t in self.truth if t["kind"] == "decoy"]
        for (line, _, _), t in zip(self.decoys, decoy_kinds):
            t["declaration_id"] = ids[line]
        return ids

    def file_order(self, day: np.ndarray) -> np.ndarray:
        """Line indices in file order: by day of arrival, duplicates and late lines later."""
        rng = self.rng
        size = day.size
        arrival = day.copy()
        late = rng.choice(size, size=round(LATE_SHARE * size), replace=False)
        arrival[late] += rng.integers(10, 61, late.size)
        dup = np.sort(rng.choice(size, size=round(DUPLICATE_SHARE * size), replace=False))
        idx = np.concatenate([np.arange(size), dup])
        arrival = np.concatenate([arrival, arrival[dup] + rng.integers(1, 31, dup.size)])
        return idx[np.lexsort((rng.random(idx.size), arrival))]

    def declarations(self, cols: dict[str, np.ndarray], ids: list[str], order: np.ndarray) -> list[dict]:
        first, last = int(cols["day"].min()), int(cols["day"].max())
        dates = [str(d) for d in np.arange(first, last + 1).astype("datetime64[D]")]
        reporter, partner, currency = self.reporter, self.partner, self.currency
        codes, pools = self.cn8_codes, self.pools
        out: list[dict] = []
        append = out.append
        for i, s, d, c, v, ms, ex, co in zip(
            order.tolist(), cols["series"][order].tolist(), cols["day"][order].tolist(),
            cols["cn8"][order].tolist(), cols["value"][order].tolist(),
            cols["mass"][order].tolist(), cols["exporter"][order].tolist(),
            cols["consignee"][order].tolist(),
        ):
            r, p = reporter[s], partner[s]
            append({
                "declaration_id": ids[i], "date": dates[d - first], "reporter": r, "partner": p,
                "flow": FLOW, "hs_code": codes[c], "value": v, "currency": currency[s],
                "net_mass_kg": ms, "exporter": pools[r][ex], "consignee": pools[p][co],
            })
        return out

    # -- monthly statistics ---------------------------------------------------------------
    def monthly(self, cols: dict[str, np.ndarray]) -> tuple[list[dict], dict[str, float]]:
        rng, m = self.rng, self.m
        rate = np.round(0.9 * np.exp(np.cumsum(rng.normal(0.0, 0.015, m))), 4)
        n_codes = len(self.cn8_codes)
        key = (cols["series"] * m + cols["month"]) * n_codes + cols["cn8"]
        usd = np.array([c == "USD" for c in self.currency])[cols["series"]]
        eur = np.where(usd, cols["value"] * rate[cols["month"]], cols["value"])
        uniq, inverse = np.unique(key, return_inverse=True)
        value = np.round(np.bincount(inverse, weights=eur), 2)
        mass = np.round(np.bincount(inverse, weights=cols["mass"]), 3)
        cell, code = np.divmod(uniq, n_codes)
        series, month = np.divmod(cell, m)
        reps, parts = list(REPORTERS), sorted(set(self.partner))
        # Publication order: by period, then reporter, partner and code.
        p_idx = np.array([parts.index(p) for p in self.partner])[series]
        order = np.lexsort((code, p_idx, self.rep_idx[series], month))
        rows = [(int(month[i]), int(series[i]), int(code[i]), float(value[i]), float(mass[i]))
                for i in order.tolist()]
        revised = set(rng.choice(len(rows), size=round(REVISION_SHARE * len(rows)), replace=False).tolist())
        keyed = []
        for j, (mo, s, c, v, ms) in enumerate(rows):
            if j in revised:
                off = rng.uniform(0.01, 0.10) * (1 if rng.random() < 0.5 else -1)
                keyed.append(((mo, 0, j), mo, s, c, round(v * (1 + off), 2), ms))
                keyed.append(((mo + int(rng.integers(1, 4)), 1, j), mo, s, c, v, ms))
            else:
                keyed.append(((mo, 0, j), mo, s, c, v, ms))
        keyed.sort(key=lambda r: r[0])
        out = [{
            "period": self.periods[mo], "reporter": self.reporter[s], "partner": self.partner[s],
            "flow": FLOW, "hs_code": self.cn8_codes[c], "value": v, "currency": "EUR",
            "net_mass_kg": ms,
        } for _, mo, s, c, v, ms in keyed]
        return out, {p: float(r) for p, r in zip(self.periods, rate)}

    def null_model(self, lam: np.ndarray, cols: dict[str, np.ndarray]) -> NullModel:
        """The hub series' true null model and their declarations' standardized log values."""
        n, m = self.n_hub, self.m
        hub = cols["series"] < n
        series, month = cols["series"][hub], cols["month"][hub]
        z = (np.log(cols["value"][hub]) - self.mu[series]) / self.sigma[series]
        count, z_sum, z_max = np.zeros((n, m)), np.zeros((n, m)), np.full((n, m), -np.inf)
        np.add.at(count, (series, month), 1.0)
        np.add.at(z_sum, (series, month), z)
        np.maximum.at(z_max, (series, month), z)
        keys = tuple((self.reporter[s], self.partner[s], FLOW, self.hs6[s]) for s in range(n))
        parties = new_parties(series, month, cols["consignee"][hub], (n, m))
        surged = {(t["reporter"], t["partner"], FLOW, t["hs6"]) for t in self.truth if t["kind"] == "surge"}
        quiet = np.array([key not in surged for key in keys])
        later = slice(PARTY_MEMORY_MONTHS, m)
        declarations = count[quiet, later].sum()
        rate = float(parties[quiet, later].sum() / declarations) if declarations else 0.0
        return NullModel(keys=keys, expected=lam[:n].copy(), shape=self.shape[:n].copy(), count=count,
                         z_sum=z_sum, z_max=z_max, new_parties=parties, new_rate=rate)

    def truth_sorted(self) -> list[dict]:
        rank = {"sanctions": 0, "dip": 1, "macro_shock": 2, "series": 3, "surge": 4, "decoy": 5}

        def key(t: dict) -> tuple:
            when = t.get("onset") or t.get("month") or ""
            return (rank[t["kind"]], when if t["kind"] in ("surge", "decoy") else "",
                    t.get("partner", ""), t.get("hs6", ""), t.get("reporter", ""))
        return sorted(self.truth, key=key)


def generate(*, seed: int, hub_series: int = 3000, start: str = "2019-01", months: int = 60,
             sanctions: str = "2022-03") -> Scenario:
    """Draw a labelled scenario.

    Parameters
    ----------
    seed : int
        Seed of every random draw; the same seed gives the same scenario.
    hub_series : int
        Number of (reporter, hub, HS6) export series, at most 4200. Control series to RU and
        BY come on top.
    start : str
        First month of the window, ``YYYY-MM``.
    months : int
        Length of the window, at least 30.
    sanctions : str
        Month from which exports to RU and BY collapse, ``YYYY-MM``.

    Returns
    -------
    Scenario

    Raises
    ------
    InvalidParameterError
        For a parameter out of range.

    Examples
    --------
    >>> a = generate(seed=3, hub_series=30, months=30)
    >>> b = generate(seed=3, hub_series=30, months=30)
    >>> a.declarations == b.declarations and a.truth == b.truth
    True
    """
    b = _Builder(seed=seed, hub_series=hub_series, start=start, months=months, sanctions=sanctions)
    lam = b.intensity()
    count_mult, value_mult, new_share = b.surges()
    cols = b.lines(lam, count_mult, value_mult, new_share)
    null = b.null_model(lam, cols)
    ids = b.declaration_ids(cols)
    order = b.file_order(cols["day"])
    declarations = b.declarations(cols, ids, order)
    monthly, rates = b.monthly(cols)
    return Scenario(declarations=declarations, monthly=monthly, truth=b.truth_sorted(),
                    periods=b.periods, eur_per_usd=rates, null=null)


def _write_gz(path: Path, rows: list[dict], chunk: int = 100_000) -> None:
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                               compresslevel=6, mtime=0) as fh:
        for a in range(0, len(rows), chunk):
            fh.write(b"".join([orjson.dumps(r) + b"\n" for r in rows[a:a + chunk]]))


def write(scenario: Scenario, out_dir: str | Path) -> dict[str, Path]:
    """Write ``declarations.jsonl.gz``, ``monthly.jsonl.gz`` and ``truth.jsonl`` to ``out_dir``.

    The bytes depend only on the scenario (gzip without name or time stamp).

    Returns
    -------
    dict
        File kind to path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"declarations": out / "declarations.jsonl.gz", "monthly": out / "monthly.jsonl.gz",
             "truth": out / "truth.jsonl"}
    _write_gz(paths["declarations"], scenario.declarations)
    _write_gz(paths["monthly"], scenario.monthly)
    paths["truth"].write_bytes(b"".join(orjson.dumps(t) + b"\n" for t in scenario.truth))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scenarios.labelled",
        description="Write a seeded labelled scenario: declarations, monthly statistics, truth.",
    )
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--hub-series", type=int, default=3000)
    parser.add_argument("--start", default="2019-01", help="first month, YYYY-MM")
    parser.add_argument("--months", type=int, default=60)
    parser.add_argument("--sanctions", default="2022-03", help="sanctions month, YYYY-MM")
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    scn = generate(seed=args.seed, hub_series=args.hub_series, start=args.start,
                   months=args.months, sanctions=args.sanctions)
    t1 = time.perf_counter()
    write(scn, args.out_dir)
    t2 = time.perf_counter()
    kinds: dict[str, int] = {}
    for t in scn.truth:
        kinds[t["kind"]] = kinds.get(t["kind"], 0) + 1
    print(orjson.dumps({
        "declaration_lines": len(scn.declarations), "monthly_lines": len(scn.monthly),
        "truth": kinds, "generate_seconds": round(t1 - t0, 2), "write_seconds": round(t2 - t1, 2),
    }).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
