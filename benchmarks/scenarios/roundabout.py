"""A second labelled scenario, built lane by lane: surges that keep going, one-buyer surges,
bigger shipments, ramps, and decoys that are not re-export (a reporter-wide level change,
alternate-month lanes, strong seasons).

:mod:`benchmarks.scenarios.labelled` draws every series-month at once from one global model
(twelve EU reporters, a pandemic dip, a macro shock, duplicates and revisions). This generator
is built the other way round, to measure what issue 14 is about (cases, warm-up, calibrated
severity) on data nobody tuned transitwatch for: each lane is a small spec (density, season,
currency, pattern) and its expected count and value per declaration are composed month by month
from named effects, then drawn. Both inputs of the contract (``docs/input-format.md``) come out
of the same draws, with a truth file.

- **Reporters and currencies**: EU reporters declare in EUR (DE, FR, IT) or in their own
  currency (PL in PLN, CZ in CZK, SE in SEK); US, CN and KR declare in USD. Local currencies
  drift against the dollar (a random walk, 1.5% a month), which transitwatch converts at fixed
  rates, so it sees that drift. Monthly statistics are in EUR for EU reporters (as Comext
  publishes them) and in USD for the others (as Comtrade does).
- **Density** from trace lanes (a declaration every two to seven months) to dense ones (30-120
  a month), log-uniform within each class; over-dispersed counts (gamma-Poisson).
- **Seasons**: flat, ``q4x3`` (October-December three times the other months), ``summer_dip``
  (July and August at 0.3), ``spring`` (a sinusoid peaking in April) and ``quarter_end``
  (March, June, September and December twice the rest); seasonal lanes are decoys of their own.
- **Control lanes** to RU for a quarter of the (reporter, HS6) pairs, collapsing to 10-30% from
  the sanctions month.

Labelled patterns, at most one per hub lane (``pattern`` in the truth):

- ``sustained``: a step of x5-x12 that lasts 6-18 months (or past the end of the window), carried
  by more declarations (``factor ** 0.7``) and larger ones (``factor ** 0.3``): the lane that
  "goes quiet" once transitwatch learns the new level.
- ``one_buyer``: one or two large declarations a month to one consignee the lane never had,
  each month's extra value ``(factor - 1)`` times the lane's usual month, for 3-12 months.
- ``moderate``: x2.5-x3.5 through bigger shipments only (the count does not move), 4-12 months.
- ``ramp``: linear in log from x1 to x4-x10 over 4-8 months, then held, 8-18 months in all.
- ``intermittent`` (a decoy): from its onset the lane ships in alternate months, twice as much
  in each; the yearly total does not change.
- ``reporter_level`` (a decoy): every lane of one reporter, hubs and RU alike, x2 from one month
  to the end (a new customs system, a currency re-basing, a big customer: not re-export).

Truth records (JSON Lines, ``kind`` first)
------------------------------------------
- ``{"kind": "scenario", "generator": "roundabout", "seed", "start", "months", "base_currency"}``
- ``{"kind": "sanctions", "month", "destinations": ["RU"]}``
- ``{"kind": "reporter_level", "reporter", "onset", "end": null, "factor": 2.0}``
- ``{"kind": "series", "reporter", "partner", "flow", "hs6", "density", "base_rate",
  "base_value", "season", "currency"}`` for every hub lane; ``base_value`` is the expected
  monthly value in USD before season, trend and events.
- ``{"kind": "surge", "reporter", "partner", "flow", "hs6", "pattern", "shape", "onset", "end",
  "factor", "density"}`` for the four surge patterns (``shape`` is ``ramp`` or ``step``, as in
  the labelled truth; ``end`` is the first month back at base, null when the surge lasts past
  the window; ``one_buyer`` also names its ``consignee``).
- ``{"kind": "intermittent", "reporter", "partner", "flow", "hs6", "onset", "end": null,
  "factor": 1.0, "density"}``.

Usage::

    python -m benchmarks.scenarios.roundabout --seed 1 --lanes 800 --out-dir /tmp/rb1

Examples
--------
>>> scn = generate(seed=1, lanes=40, months=30)
>>> sorted({t["kind"] for t in scn.truth})
['intermittent', 'reporter_level', 'sanctions', 'scenario', 'series', 'surge']
>>> scn.declarations[0]["currency"] in {"EUR", "USD", "PLN", "CZK", "SEK"}
True
"""

from __future__ import annotations

import argparse
import calendar
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from transitwatch.detectors.errors import InvalidParameterError
from transitwatch.detectors.reference import chpl
from benchmarks.scenarios import labelled
from transitwatch.detectors.alerts import period_of
from transitwatch.detectors.watch import WatchConfig

# reporter: (currency of its declarations, weight)
REPORTERS: dict[str, tuple[str, float]] = {
    "DE": ("EUR", 0.20), "FR": ("EUR", 0.08), "IT": ("EUR", 0.10), "PL": ("PLN", 0.10),
    "CZ": ("CZK", 0.07), "SE": ("SEK", 0.05), "US": ("USD", 0.14), "CN": ("USD", 0.18),
    "KR": ("USD", 0.08),
}
EU = frozenset({"DE", "FR", "IT", "PL", "CZ", "SE"})
HUBS: dict[str, float] = {"KZ": 0.24, "KG": 0.12, "AM": 0.15, "GE": 0.12, "UZ": 0.10, "AE": 0.14, "TR": 0.13}
DESTINATION = "RU"
FLOW = "export"
# (class, share of hub lanes, lowest, highest declarations a month)
DENSITY: tuple[tuple[str, float, float, float], ...] = (
    ("trace", 0.20, 0.15, 0.6), ("sparse", 0.25, 0.6, 2.0), ("regular", 0.30, 2.0, 8.0),
    ("busy", 0.18, 8.0, 30.0), ("dense", 0.07, 30.0, 120.0),
)
SEASONS: dict[str, float] = {"flat": 0.45, "q4x3": 0.15, "summer_dip": 0.15, "spring": 0.15, "quarter_end": 0.10}
# pattern: share of hub lanes
PATTERNS: dict[str, float] = {"sustained": 0.04, "one_buyer": 0.025, "moderate": 0.025, "ramp": 0.025,
                              "intermittent": 0.03}
SURGES = ("sustained", "one_buyer", "moderate", "ramp")
CONTROL_SHARE = 0.25
LEVEL_FACTOR = 2.0
FX_DRIFT = 0.015
CHURN = 0.02               # declarations to a one-off consignee, surge or not
MAX_LANES = len(REPORTERS) * len(HUBS) * 50


def season_profile(name: str) -> np.ndarray:
    """Twelve calendar-month multipliers (January first) with mean 1.

    Examples
    --------
    >>> p = season_profile("q4x3")
    >>> round(float(p[10] / p[4]), 6), round(float(p.mean()), 6)
    (3.0, 1.0)
    """
    p = np.ones(12)
    if name == "q4x3":
        p[9:12] = 3.0
    elif name == "summer_dip":
        p[6:8] = 0.3
    elif name == "spring":
        p = 1.0 + 0.5 * np.cos(2 * np.pi * (np.arange(12) - 3) / 12)
    elif name == "quarter_end":
        p[[2, 5, 8, 11]] = 2.0
    elif name != "flat":
        raise InvalidParameterError("season", name, f"one of {sorted(SEASONS)}")
    return p / p.mean()


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """Declarations and monthly statistics in file order, the truth, and the window's months."""

    declarations: list[dict]
    monthly: list[dict]
    truth: list[dict]
    periods: tuple[str, ...]


@dataclass
class _Lane:
    reporter: str
    partner: str
    hs6: str
    density: str
    rate: float
    mu: float            # log of the median declaration value, USD
    sigma: float
    season: str
    shape: float         # gamma shape of the monthly count noise
    trend: float         # log growth a year
    pattern: str = ""
    onset: int = -1
    stop: int = -1       # first month after the event (== months: lasts past the window)
    factor: float = 1.0
    ramp_len: int = 1


class _Builder:
    def __init__(self, *, seed: int, lanes: int, start: str, months: int, sanctions: str):
        labelled.check_seed_and_months(seed, months)
        if not isinstance(lanes, (int, np.integer)) or not 10 <= lanes <= MAX_LANES:
            raise InvalidParameterError("lanes", lanes, f"an integer in 10..{MAX_LANES}")
        self.seed, self.m, self.start = int(seed), int(months), start
        self.first = labelled.parse_month("start", start)
        self.sanctions = labelled.parse_month("sanctions", sanctions) - self.first
        self.periods = tuple(period_of(self.first + k) for k in range(self.m))
        self.rng = np.random.default_rng(self.seed)
        self.rates = WatchConfig.default().rates          # units of a currency per USD
        self.truth: list[dict] = [{"kind": "scenario", "generator": "roundabout", "seed": self.seed,
                                   "start": start, "months": self.m, "base_currency": "USD"}]
        self.lanes = self._hub_lanes(int(lanes))
        self.n_hub = len(self.lanes)
        self._controls()
        self._events()

    def _hub_lanes(self, n: int) -> list[_Lane]:
        rng = self.rng
        reps, hubs, codes = list(REPORTERS), list(HUBS), sorted(chpl())
        w = (np.array([v[1] for v in REPORTERS.values()])[:, None, None]
             * np.array(list(HUBS.values()))[None, :, None] * rng.lognormal(0, 0.7, len(codes))[None, None, :]).ravel()
        picked = rng.choice(w.size, size=n, replace=False, p=w / w.sum())
        classes = rng.choice(len(DENSITY), size=n, p=[d[1] for d in DENSITY])
        out = []
        for idx, c in zip(picked.tolist(), classes.tolist()):
            r, p, h = np.unravel_index(idx, (len(reps), len(hubs), len(codes)))
            out.append(self._lane(reps[r], hubs[p], codes[h], c))
        return out

    def _lane(self, reporter: str, partner: str, hs6: str, c: int) -> _Lane:
        rng = self.rng
        name, _, lo, hi = DENSITY[c]
        season = str(rng.choice(list(SEASONS), p=list(SEASONS.values())))
        return _Lane(reporter, partner, hs6, name, float(lo * (hi / lo) ** rng.random()),
                     float(np.log(3_000 * 40 ** rng.random())), float(rng.uniform(0.5, 1.2)), season,
                     float(rng.uniform(8, 40)), float(rng.normal(0.0, 0.08)))

    def _controls(self) -> None:
        pairs = sorted({(ln.reporter, ln.hs6) for ln in self.lanes})
        for (r, h), u in zip(pairs, self.rng.random(len(pairs))):
            if u < CONTROL_SHARE:
                lane = self._lane(r, DESTINATION, h, int(self.rng.choice(len(DENSITY), p=[d[1] for d in DENSITY])))
                lane.pattern, lane.onset, lane.stop = "collapse", self.sanctions, self.m
                lane.factor = float(self.rng.uniform(0.1, 0.3))
                self.lanes.append(lane)
        self.truth.append({"kind": "sanctions", "month": self.periods[self.sanctions], "destinations": [DESTINATION]})

    def _events(self) -> None:
        rng, m = self.rng, self.m
        hub = list(range(self.n_hub))
        rng.shuffle(hub)
        at = 0
        for pattern, share in PATTERNS.items():
            for i in hub[at:at + max(1, round(share * self.n_hub))]:
                lane = self.lanes[i]
                lane.pattern = pattern
                lane.onset = int(rng.integers(18, m - 3))
                if pattern == "sustained":
                    lane.factor, length = float(5 * 2.4 ** rng.random()), int(rng.integers(6, 19))
                elif pattern == "one_buyer":
                    lane.factor, length = float(3 * (10 / 3) ** rng.random()), int(rng.integers(3, 13))
                elif pattern == "moderate":
                    lane.factor, length = float(rng.uniform(2.5, 3.5)), int(rng.integers(4, 13))
                elif pattern == "ramp":
                    lane.factor, length = float(4 * 2.5 ** rng.random()), int(rng.integers(8, 19))
                    lane.ramp_len = int(rng.integers(4, 9))
                else:
                    lane.factor, length = 1.0, m
                lane.stop = min(lane.onset + length, m)
            at += max(1, round(share * self.n_hub))
        # the reporter-wide level change: the reporter with the second most hub lanes
        counts = {r: sum(ln.reporter == r for ln in self.lanes[:self.n_hub]) for r in REPORTERS}
        self.level_reporter = sorted(counts, key=lambda r: (-counts[r], r))[1]
        self.level_onset = int(rng.integers(20, min(37, m - 3)))
        self.truth.append({"kind": "reporter_level", "reporter": self.level_reporter,
                           "onset": self.periods[self.level_onset], "end": None, "factor": LEVEL_FACTOR})

    # -- per lane: expected count and value multiplier by month ---------------------------
    def paths(self, lane: _Lane) -> tuple[np.ndarray, np.ndarray]:
        months = np.arange(self.m)
        cal = (self.first + months) % 12
        count = lane.rate * season_profile(lane.season)[cal] * np.exp(lane.trend * (months - self.m / 2) / 12)
        value = np.ones(self.m)
        if lane.reporter == self.level_reporter:
            level = np.where(months >= self.level_onset, LEVEL_FACTOR, 1.0)
            count, value = count * level ** 0.7, value * level ** 0.3
        on = (months >= lane.onset) & (months < lane.stop)
        f = lane.factor
        if lane.pattern == "sustained":
            count, value = np.where(on, count * f ** 0.7, count), np.where(on, value * f ** 0.3, value)
        elif lane.pattern == "moderate":
            value = np.where(on, value * f, value)
        elif lane.pattern == "ramp":
            step = np.exp(np.log(f) * np.clip((months - lane.onset + 1) / lane.ramp_len, 0, 1))
            count, value = np.where(on, count * step ** 0.7, count), np.where(on, value * step ** 0.3, value)
        elif lane.pattern == "intermittent":
            count = np.where(on, count * 2 * ((months - lane.onset) % 2 == 0), count)
        elif lane.pattern == "collapse":
            count = np.where(on, count * f, count)
        return count, value

    def draw(self) -> tuple[list[dict], list[dict]]:
        rng, m = self.rng, self.m
        fx = {c: np.exp(np.cumsum(rng.normal(0, FX_DRIFT, m))) if c not in ("USD", "EUR") else np.ones(m)
              for c in sorted({v[0] for v in REPORTERS.values()})}
        lane_of, month_of, usd_of, exporter_of, consignee_of, cn8_of, unit_of = [], [], [], [], [], [], []
        for i, lane in enumerate(self.lanes):
            count, vmult = self.paths(lane)
            month = np.repeat(np.arange(m), rng.poisson(count * rng.gamma(lane.shape, 1.0 / lane.shape, m)))
            size = month.size
            usd = np.exp(lane.mu + lane.sigma * rng.standard_normal(size)) * vmult[month]
            n_exp, n_con = int(rng.integers(2, 15)), int(rng.integers(2, 25))
            regular = (n_con * rng.random(size) ** 2).astype(int)
            one_off = np.where(rng.random(size) < CHURN, rng.integers(0, 1_000_000, size), -1)
            consignee = [f"{lane.partner} buyer {i}-{c}" if o < 0 else f"{lane.partner} one-off {o:06d}"
                         for c, o in zip(regular.tolist(), one_off.tolist())]
            exporter = (n_exp * rng.random(size) ** 2).astype(int).tolist()
            base_month = lane.rate * float(np.exp(lane.mu + lane.sigma ** 2 / 2))
            if lane.pattern == "one_buyer":
                parts = rng.integers(1, 3, lane.stop - lane.onset)
                extra = np.repeat(np.arange(lane.onset, lane.stop), parts)
                month = np.concatenate([month, extra])
                usd = np.concatenate([usd, (lane.factor - 1) * base_month / np.repeat(parts, parts)
                                      * rng.lognormal(0, 0.2, extra.size)])
                consignee += [self.new_buyer(i, lane)] * extra.size
                exporter += [0] * extra.size
            lane_of.append(np.full(month.size, i))
            month_of.append(month)
            usd_of.append(usd)
            exporter_of += [f"{lane.reporter} exporter {i}-{e}" for e in exporter]
            consignee_of += consignee
            cn8_of.append(rng.integers(0, 2, month.size))
            unit_of.append(np.full(month.size, np.exp(rng.uniform(2, 8))))   # USD per kg, per lane
            self._truth_lane(i, lane, base_month)
        lane = np.concatenate(lane_of)
        month = np.concatenate(month_of)
        cols = {"lane": lane, "month": month, "usd": np.concatenate(usd_of), "cn8": np.concatenate(cn8_of),
                "unit": np.concatenate(unit_of)}
        return self._outputs(cols, exporter_of, consignee_of, fx)

    def new_buyer(self, i: int, lane: _Lane) -> str:
        return f"{lane.partner} new trading house {i}"

    def _truth_lane(self, i: int, lane: _Lane, base_month: float) -> None:
        if i >= self.n_hub:
            return
        key = {"reporter": lane.reporter, "partner": lane.partner, "flow": FLOW, "hs6": lane.hs6}
        self.truth.append({"kind": "series", **key, "density": lane.density, "base_rate": round(lane.rate, 4),
                           "base_value": round(base_month, 2), "season": lane.season,
                           "currency": REPORTERS[lane.reporter][0]})
        if lane.pattern in SURGES:
            row = {"kind": "surge", **key, "pattern": lane.pattern,
                   "shape": "ramp" if lane.pattern == "ramp" else "step",
                   "onset": self.periods[lane.onset], "end": self.periods[lane.stop] if lane.stop < self.m else None,
                   "factor": round(lane.factor, 4), "density": lane.density}
            if lane.pattern == "one_buyer":
                row["consignee"] = self.new_buyer(i, lane)
            self.truth.append(row)
        elif lane.pattern == "intermittent":
            self.truth.append({"kind": "intermittent", **key, "onset": self.periods[lane.onset], "end": None,
                               "factor": 1.0, "density": lane.density})

    def _outputs(self, cols: dict[str, np.ndarray], exporter: list[str], consignee: list[str],
                 fx: dict[str, np.ndarray]) -> tuple[list[dict], list[dict]]:
        rng = self.rng
        month = cols["month"]
        first = np.array([np.datetime64(f"{p}-01", "D").astype(np.int64) for p in self.periods])
        ndays = np.array([calendar.monthrange(int(p[:4]), int(p[5:]))[1] for p in self.periods])
        day = first[month] + (rng.random(month.size) * ndays[month]).astype(np.int64)
        order = np.lexsort((rng.random(month.size), day))
        dates = np.arange(first[0], first[-1] + 32).astype("datetime64[D]").astype(str).tolist()
        currency = [REPORTERS[ln.reporter][0] for ln in self.lanes]
        cn8 = [(ln.hs6 + "00", ln.hs6 + "00") if int(ln.hs6) % 2 else (ln.hs6 + "10", ln.hs6 + "90")
               for ln in self.lanes]
        decl, stats = [], {}
        serial: dict[str, int] = {}
        for j in order.tolist():
            i, k = int(cols["lane"][j]), int(month[j])
            ln, cur = self.lanes[i], currency[i]
            usd = float(cols["usd"][j])
            local = max(round(usd * self.rates[cur] * float(fx[cur][k]), 2), 1.0)
            mass = round(max(usd / float(cols["unit"][j]), 0.001), 3)
            code = cn8[i][int(cols["cn8"][j])]
            serial[ln.reporter] = serial.get(ln.reporter, 0) + 1
            decl.append({"declaration_id": f"RB{self.seed}{ln.reporter}{serial[ln.reporter]:09d}",
                         "date": dates[int(day[j] - first[0])], "reporter": ln.reporter, "partner": ln.partner,
                         "flow": FLOW, "hs_code": code, "value": local, "currency": cur, "net_mass_kg": mass,
                         "exporter": exporter[j], "consignee": consignee[j]})
            stat_cur = "EUR" if ln.reporter in EU else "USD"
            cell = stats.setdefault((k, ln.reporter, ln.partner, code), [0.0, 0.0, stat_cur])
            cell[0] += local / self.rates[cur] * self.rates[stat_cur]
            cell[1] += mass
        monthly = [{"period": self.periods[k], "reporter": r, "partner": p, "flow": FLOW, "hs_code": c,
                    "value": round(v, 2), "currency": cur, "net_mass_kg": round(ms, 3)}
                   for (k, r, p, c), (v, ms, cur) in sorted(stats.items())]
        return decl, monthly


def generate(*, seed: int, lanes: int = 800, start: str = "2020-01", months: int = 48,
             sanctions: str = "2022-03") -> Scenario:
    """Draw a roundabout scenario.

    Parameters
    ----------
    seed : int
        Seed of every draw: the same seed gives the same scenario.
    lanes : int
        Hub lanes (reporter, hub, HS6); RU control lanes come on top.
    start, months : str, int
        First month (``YYYY-MM``) and length of the window (at least 30). Events start from the
        19th month, so every lane has at least 18 months of history before an onset.
    sanctions : str
        Month from which the RU control lanes collapse.

    Raises
    ------
    InvalidParameterError
        For a parameter out of range.

    Examples
    --------
    >>> a, b = generate(seed=4, lanes=30, months=30), generate(seed=4, lanes=30, months=30)
    >>> a.declarations == b.declarations and a.monthly == b.monthly and a.truth == b.truth
    True
    """
    b = _Builder(seed=seed, lanes=lanes, start=start, months=months, sanctions=sanctions)
    declarations, monthly = b.draw()
    return Scenario(declarations=declarations, monthly=monthly, truth=b.truth, periods=b.periods)


def write(scenario: Scenario, out_dir: str | Path) -> dict[str, Path]:
    """Write ``declarations.jsonl.gz``, ``monthly.jsonl.gz`` and ``truth.jsonl``, as
    :func:`benchmarks.scenarios.labelled.write` does (the same files, layout and bytes rule)."""
    return labelled.write(scenario, out_dir)  # type: ignore[arg-type]  # it reads the same three fields


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scenarios.roundabout",
                                     description="Write a seeded roundabout scenario: declarations, monthly statistics, truth.")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--lanes", type=int, default=800)
    parser.add_argument("--start", default="2020-01")
    parser.add_argument("--months", type=int, default=48)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    scn = generate(seed=args.seed, lanes=args.lanes, start=args.start, months=args.months)
    write(scn, args.out_dir)
    kinds: dict[str, int] = {}
    for t in scn.truth:
        kinds[t.get("pattern", t["kind"])] = kinds.get(t.get("pattern", t["kind"]), 0) + 1
    print(orjson.dumps({"declarations": len(scn.declarations), "monthly": len(scn.monthly), "truth": kinds}).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
