"""A scenario generator with one family per detection blind spot of issue 15 (evasion patterns).

Each family is a set of lanes showing one pattern, plus plain *control* lanes drawn the same way
without it, so that a family's figures (recall, false alarms) can be read against its own
controls in the same run. Families are selectable (``families=[...]``, ``--families``) and
independent: every family draws from its own random stream (``seed``, family), and the lanes of
all families are allocated once per seed from disjoint (reporter, HS6) pairs, so a family's lanes
are the same whether it runs alone or with the others (only the order of the lines differs).

Lanes are built as :mod:`benchmarks.scenarios.roundabout` builds them (its reporters,
currencies, densities, value model, gamma-Poisson counts, one-off consignees and output
writer): declarations JSON Lines, monthly statistics and a truth file of the same row shapes, so
:mod:`benchmarks.cases` and :mod:`benchmarks.scoring` score it unchanged. Lanes of the surge
families, their controls and the RU/BY lanes of ``diversion`` are *material*: their expected
month is USD 30k-1.5m (RU/BY lanes USD 50k-3m, two or more declarations a month), so that a surge moves the lane by more than the
detectors' floors; ``q4_seasonal`` and ``reporter_level`` lanes take every density, as
roundabout's do. Every lane is flat (no season) but for ``q4_seasonal``'s pattern lanes.

Families
--------
- ``one_buyer``: a surge x4-x8 carried by 1-2 large declarations a month to one consignee the
  lane never had (a shell company), for 4-12 months; the month's extra value is ``factor - 1``
  times the lane's usual month.
- ``intermittent``: a CHPL lane going from nothing (a third of them) or a trace (a declaration
  every 2-7 months, USD 500-8,000 a month on average) to USD 1-1.7m
  a month, in alternate months, in 2 of every 3 months, or with irregular gaps of 0-2 months,
  to the end of the window; controls are trace lanes.
- ``moderate``: x2.5-x3.5 through bigger shipments (the same number of declarations, larger
  values), 4-12 months.
- ``reporter_level`` (a decoy): every lane of one reporter (``LEVEL_REPORTER``), across many
  HS6 codes and hubs and its RU lanes too, x2 from one month to the end (counts ``x2**0.7``,
  values ``x2**0.3``): a new declaration system, not re-export. Controls: other reporters' lanes.
- ``q4_seasonal`` (a decoy): lanes at x3 in every October-December, every year (roundabout's
  ``q4x3`` season); controls are flat.
- ``diversion``: pairs: a reporter's lane of an HS6 to RU (a quarter to BY) halves (x0.2-0.5)
  or collapses (x0-0.1) while the same reporter's lane of the HS6 to a hub rises x1.5-x4 in the
  same month or up to 3 months later, for 6-18 months or to the end; decoys where the
  destination falls and the hub does not rise (``fall_only``), and where the hub rises
  x1.5-x2 with no fall (``rise_only``); controls: plain hub lanes with plain destination lanes.
- ``hub_shift``: the 2022 pattern: many reporters' lanes into one hub (``SHIFT_HUB``) x1.6-x2
  from the same month (the sanctions month) to the end: a true surge of the hub. Controls:
  lanes into other hubs.

Truth records (JSON Lines, ``kind`` first)
------------------------------------------
- ``{"kind": "scenario", "generator": "evasion", "seed", "start", "months", "base_currency",
  "families"}`` and ``{"kind": "sanctions", "month", "destinations": ["RU", "BY"]}``
- ``{"kind": "series", "reporter", "partner", "flow", "hs6", "density", "base_rate",
  "base_value", "season", "currency", "family", "role", "variant"}`` for every scored hub lane;
  ``role`` is ``pattern``, ``decoy`` or ``control``; ``base_value`` the expected month in USD.
- ``{"kind": "surge", ..., "pattern", "shape": "step", "onset", "end", "factor", "density"}`` for
  the true families (``pattern`` is the family); ``end`` is the first month back at base, null
  when the surge lasts past the window. ``one_buyer`` adds its ``consignee``; ``intermittent``
  its ``variant``, ``months`` (the shipping months), ``on_value`` (USD a shipping month) and ``factor`` (``on_value`` over the
  lane's usual month, at least USD 1,000); ``diversion`` its ``destination`` and ``lag``.
- ``{"kind": "reporter_level", "reporter", "onset", "end": null, "factor": 2.0, "lanes"}``.
- ``{"kind": "hub_shift", "partner", "onset", "end": null, "lanes", "reporters"}``.
- ``{"kind": "diversion", "reporter", "partner", "flow", "hs6", "variant", "destination",
  "collapse", "destination_before", "destination_after", "onset", "lag", "factor"}``: the
  destination lane's month of collapse (null for ``rise_only``) and its expected month before
  and after (USD), the hub rise's month and factor (null and 1.0 for ``fall_only``).

Usage::

    python -m benchmarks.scenarios.evasion --seed 1 --families one_buyer,diversion --out-dir /tmp/ev1

Examples
--------
>>> scn = generate(seed=1, families=["one_buyer"], size=4, months=36)
>>> sorted({t["kind"] for t in scn.truth}), sorted({t["role"] for t in scn.truth if t["kind"] == "series"})
(['sanctions', 'scenario', 'series', 'surge'], ['control', 'pattern'])
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from benchmarks.scenarios import labelled, roundabout
from benchmarks.scenarios.roundabout import DENSITY, FLOW, HUBS, REPORTERS, Scenario, season_profile
from transitwatch.detectors.alerts import period_of
from transitwatch.detectors.errors import InvalidParameterError
from transitwatch.detectors.reference import chpl
from transitwatch.detectors.watch import WatchConfig

FAMILIES = ("one_buyer", "intermittent", "moderate", "reporter_level", "q4_seasonal", "diversion", "hub_shift")
TRUE_FAMILIES = ("one_buyer", "intermittent", "moderate", "diversion", "hub_shift")
DECOY_FAMILIES = ("reporter_level", "q4_seasonal")
LEVEL_REPORTER = "CZ"      # reporter_level's shifted reporter: no other family has its lanes
LEVEL_FACTOR = 2.0
SHIFT_HUB = "KG"
DESTINATIONS = ("RU", "BY")
MATERIAL = (30_000.0, 1_500_000.0)         # expected USD a month of surge lanes and their controls
DESTINATION_SIZE = (50_000.0, 3_000_000.0)
DESTINATION_DENSITY = ("regular", "busy", "dense")      # a lane to Russia worth diverting ships every month
TRACE = (500.0, 8_000.0)                    # expected USD a month of an intermittent family's trace lanes
ON_VALUE = (1_000_000.0, 1_700_000.0)       # an intermittent lane's shipping month, USD
DEFAULT_SIZE = 40
MAX_SIZE = 60
CHURN = roundabout.CHURN


@dataclass
class _Lane(roundabout._Lane):
    family: str = ""
    role: str = "control"    # pattern, decoy or control; "destination" for unscored RU/BY lanes
    variant: str = ""
    extra_on: tuple[int, ...] = ()   # intermittent: the shipping months
    on_value: float = 0.0
    silent_before: bool = False      # intermittent "nothing": no trade before the onset
    dest: int = -1                   # diversion: index of the paired destination lane
    lag: int = 0                     # diversion: months from the destination's collapse to the hub's rise


def _counts(size: int) -> dict[str, dict[str, int]]:
    """Lanes per family and role for ``size`` pattern lanes a family."""
    half = max(1, size // 2)
    return {
        "one_buyer": {"pattern": size, "control": size},
        "intermittent": {"pattern": size, "control": size},
        "moderate": {"pattern": size, "control": size},
        "reporter_level": {"pattern": round(2.5 * size), "control": round(2.5 * size), "destination": half},
        "q4_seasonal": {"pattern": round(2.5 * size), "control": round(2.5 * size)},
        "diversion": {"pattern": size, "fall_only": half, "rise_only": half, "control": size},
        "hub_shift": {"pattern": size, "control": size},
    }


class _Builder:
    def __init__(self, *, seed: int, families: Sequence[str], size: int, start: str, months: int, sanctions: str):
        labelled.check_seed_and_months(seed, months)
        if isinstance(families, str) or not families or any(f not in FAMILIES for f in families):
            raise InvalidParameterError("families", families, f"a non-empty list of {list(FAMILIES)}")
        if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or not 2 <= size <= MAX_SIZE:
            raise InvalidParameterError("size", size, f"an integer in 2..{MAX_SIZE}")
        self.seed, self.m, self.size = int(seed), int(months), int(size)
        self.families = tuple(f for f in FAMILIES if f in set(families))
        self.first = labelled.parse_month("start", start)
        self.sanctions = labelled.parse_month("sanctions", sanctions) - self.first
        if not 18 <= self.sanctions <= self.m - 6:
            raise InvalidParameterError("sanctions", sanctions, "a month 18 months after start or more, 6 before the end")
        self.periods = tuple(period_of(self.first + k) for k in range(self.m))
        self.rates = WatchConfig.default().rates
        self.truth: list[dict] = [
            {"kind": "scenario", "generator": "evasion", "seed": self.seed, "start": start, "months": self.m,
             "base_currency": "USD", "families": list(self.families)},
            {"kind": "sanctions", "month": self.periods[self.sanctions], "destinations": list(DESTINATIONS)}]
        self.keys = self._allocate()
        self.lanes: list[_Lane] = []
        self.rng_of: dict[str, np.random.Generator] = {}
        for f in self.families:
            self.rng_of[f] = rng = np.random.default_rng([self.seed, 1 + FAMILIES.index(f)])
            getattr(self, f"_build_{f}")(rng, self.keys[f])

    # -- which lanes belong to which family: once per seed, whatever families are drawn --------
    def _allocate(self) -> dict[str, dict[str, list[tuple[str, str, str]]]]:
        rng = np.random.default_rng([self.seed, 0])
        counts, codes, hubs = _counts(self.size), sorted(chpl()), list(HUBS)
        others = [r for r in REPORTERS if r != LEVEL_REPORTER]
        pairs = [(r, h) for r in others for h in codes]
        rng.shuffle(pairs)
        out: dict[str, dict[str, list[tuple[str, str, str]]]] = {f: {} for f in FAMILIES}
        at = 0
        for role in ("pattern", "fall_only", "rise_only", "control"):     # diversion: one pair, one hub lane
            n = counts["diversion"][role]
            out["diversion"][role] = [(r, str(rng.choice(hubs)), h) for r, h in pairs[at:at + n]]
            at += n
        keys = [(r, p, h) for r, h in pairs[at:] for p in hubs]
        rng.shuffle(keys)
        out["hub_shift"]["pattern"] = [k for k in keys if k[1] == SHIFT_HUB][:counts["hub_shift"]["pattern"]]
        out["hub_shift"]["control"] = [k for k in keys if k[1] != SHIFT_HUB][:counts["hub_shift"]["control"]]
        taken = set(out["hub_shift"]["pattern"]) | set(out["hub_shift"]["control"])
        rest = [k for k in keys if k not in taken]
        at = 0
        for f, role in (("one_buyer", "pattern"), ("one_buyer", "control"), ("intermittent", "pattern"),
                        ("intermittent", "control"), ("moderate", "pattern"), ("moderate", "control"),
                        ("q4_seasonal", "pattern"), ("q4_seasonal", "control"), ("reporter_level", "control")):
            out[f][role] = rest[at:at + counts[f][role]]
            at += counts[f][role]
        if at > len(rest):
            raise InvalidParameterError("size", self.size, "fewer lanes a family (the lane space is exhausted)")
        level = [(LEVEL_REPORTER, p, h) for h in codes for p in hubs]
        rng.shuffle(level)
        out["reporter_level"]["pattern"] = level[:counts["reporter_level"]["pattern"]]
        dest_codes = rng.permutation(codes)[:counts["reporter_level"]["destination"]]
        out["reporter_level"]["destination"] = [(LEVEL_REPORTER, "RU", str(h)) for h in dest_codes]
        return out

    # -- lane specs ---------------------------------------------------------------------------
    def _spec(self, rng: np.random.Generator, key: tuple[str, str, str], *, family: str, role: str,
              within: tuple[float, float] | None, density: tuple[str, ...] = (), season: str = "flat") -> _Lane:
        """A lane drawn as roundabout draws one; ``within``: keep drawing until its expected month
        (USD) falls in that range; ``density``: these classes only (their shares renormalised)."""
        probs = np.array([d[1] if not density or d[0] in density else 0.0 for d in DENSITY])
        probs /= probs.sum()
        for _ in range(10_000):
            c = int(rng.choice(len(DENSITY), p=probs))
            name, _, lo, hi = DENSITY[c]
            rate = float(lo * (hi / lo) ** rng.random())
            mu, sigma = float(np.log(3_000 * 40 ** rng.random())), float(rng.uniform(0.5, 1.2))
            month = rate * float(np.exp(mu + sigma ** 2 / 2))
            if within is None or within[0] <= month <= within[1]:
                break
        else:  # pragma: no cover - the ranges above are reachable with high probability
            raise InvalidParameterError("within", within, "a range of monthly values the densities can reach")
        lane = _Lane(key[0], key[1], key[2], name, rate, mu, sigma, season, float(rng.uniform(8, 40)),
                     float(rng.normal(0.0, 0.05)))
        lane.family, lane.role = family, role
        self.lanes.append(lane)
        return lane

    def _onset(self, rng: np.random.Generator, *, tail: int = 4) -> int:
        return int(rng.integers(18, self.m - tail))

    def _build_one_buyer(self, rng: np.random.Generator, keys: dict) -> None:
        for k in keys["control"]:
            self._spec(rng, k, family="one_buyer", role="control", within=MATERIAL)
        for k in keys["pattern"]:
            lane = self._spec(rng, k, family="one_buyer", role="pattern", within=MATERIAL)
            lane.pattern, lane.onset, lane.factor = "one_buyer", self._onset(rng), float(4 * 2 ** rng.random())
            lane.stop = min(lane.onset + int(rng.integers(4, 13)), self.m)

    def _build_moderate(self, rng: np.random.Generator, keys: dict) -> None:
        for k in keys["control"]:
            self._spec(rng, k, family="moderate", role="control", within=MATERIAL)
        for k in keys["pattern"]:
            lane = self._spec(rng, k, family="moderate", role="pattern", within=MATERIAL)
            lane.pattern, lane.onset, lane.factor = "moderate", self._onset(rng), float(rng.uniform(2.5, 3.5))
            lane.stop = min(lane.onset + int(rng.integers(4, 13)), self.m)

    def _build_intermittent(self, rng: np.random.Generator, keys: dict) -> None:
        for k in keys["control"]:
            self._spec(rng, k, family="intermittent", role="control", within=TRACE, density=("trace",))
        variants = ("alternate", "two_of_three", "irregular")
        for i, k in enumerate(keys["pattern"]):
            lane = self._spec(rng, k, family="intermittent", role="pattern", within=TRACE, density=("trace",))
            lane.pattern, lane.variant = "intermittent", variants[i % 3]
            lane.silent_before = bool(rng.random() < 1 / 3)
            lane.onset, lane.stop = self._onset(rng, tail=6), self.m
            if lane.variant == "alternate":
                on = list(range(lane.onset, self.m, 2))
            elif lane.variant == "two_of_three":
                on = [t for t in range(lane.onset, self.m) if (t - lane.onset) % 3 != 2]
            else:
                on = [lane.onset]
                while (t := on[-1] + 1 + int(rng.integers(0, 3))) < self.m:
                    on.append(t)
            lane.extra_on = tuple(on)
            lane.on_value = float(rng.uniform(*ON_VALUE))
            usual = 0.0 if lane.silent_before else lane.rate * float(np.exp(lane.mu + lane.sigma ** 2 / 2))
            lane.factor = lane.on_value / max(usual, 1_000.0)

    def _build_reporter_level(self, rng: np.random.Generator, keys: dict) -> None:
        self.level_onset = self._onset(rng, tail=8)
        for k in keys["control"]:
            self._spec(rng, k, family="reporter_level", role="control", within=None)
        for role in ("pattern", "destination"):
            for k in keys[role]:
                lane = self._spec(rng, k, family="reporter_level", role="decoy" if role == "pattern" else role,
                                  within=None)
                lane.pattern, lane.onset, lane.stop, lane.factor = "level", self.level_onset, self.m, LEVEL_FACTOR
        self.truth.append({"kind": "reporter_level", "reporter": LEVEL_REPORTER, "onset": self.periods[self.level_onset],
                           "end": None, "factor": LEVEL_FACTOR, "lanes": len(keys["pattern"])})

    def _build_q4_seasonal(self, rng: np.random.Generator, keys: dict) -> None:
        for k in keys["control"]:
            self._spec(rng, k, family="q4_seasonal", role="control", within=None)
        for k in keys["pattern"]:
            self._spec(rng, k, family="q4_seasonal", role="decoy", within=None, season="q4x3")

    def _build_diversion(self, rng: np.random.Generator, keys: dict) -> None:
        for role in ("control", "pattern", "fall_only", "rise_only"):
            for r, hub, h in keys[role]:
                dest = str(rng.choice(DESTINATIONS, p=[0.75, 0.25]))
                d = self._spec(rng, (r, dest, h), family="diversion", role="destination", within=DESTINATION_SIZE,
                               density=DESTINATION_DENSITY)
                d.variant = role
                lane = self._spec(rng, (r, hub, h), family="diversion",
                                  role={"pattern": "pattern", "control": "control"}.get(role, "decoy"), within=MATERIAL)
                lane.variant, lane.dest = role, len(self.lanes) - 2
                if role in ("pattern", "fall_only"):
                    d.pattern, d.onset, d.stop = "collapse", self._onset(rng, tail=8), self.m
                    d.factor = float(rng.uniform(0.0, 0.1) if rng.random() < 0.4 else rng.uniform(0.2, 0.5))
                if role in ("pattern", "rise_only"):
                    lag = int(rng.integers(0, 4)) if role == "pattern" else 0
                    lane.pattern = "rise"
                    lane.onset = d.onset + lag if role == "pattern" else self._onset(rng, tail=8)
                    lane.factor = float(1.5 * (4 / 1.5) ** rng.random()) if role == "pattern" else float(rng.uniform(1.5, 2.0))
                    lane.stop = self.m if rng.random() < 0.5 else min(lane.onset + int(rng.integers(6, 19)), self.m)
                    lane.lag = lag

    def _build_hub_shift(self, rng: np.random.Generator, keys: dict) -> None:
        for k in keys["control"]:
            self._spec(rng, k, family="hub_shift", role="control", within=MATERIAL)
        for k in keys["pattern"]:
            lane = self._spec(rng, k, family="hub_shift", role="pattern", within=MATERIAL)
            lane.pattern, lane.onset, lane.stop = "hub_shift", self.sanctions, self.m
            lane.factor = float(rng.uniform(1.6, 2.0))
        self.truth.append({"kind": "hub_shift", "partner": SHIFT_HUB, "onset": self.periods[self.sanctions], "end": None,
                           "lanes": len(keys["pattern"]), "reporters": sorted({k[0] for k in keys["pattern"]})})

    # -- per lane: expected count and value multiplier by month ---------------------------------
    def paths(self, lane: _Lane) -> tuple[np.ndarray, np.ndarray]:
        months = np.arange(self.m)
        cal = (self.first + months) % 12
        count = lane.rate * season_profile(lane.season)[cal] * np.exp(lane.trend * (months - self.m / 2) / 12)
        value = np.ones(self.m)
        on = (months >= lane.onset) & (months < lane.stop)
        f = lane.factor
        if lane.pattern in ("level", "rise", "hub_shift"):
            count, value = np.where(on, count * f ** 0.7, count), np.where(on, value * f ** 0.3, value)
        elif lane.pattern == "moderate":
            value = np.where(on, value * f, value)
        elif lane.pattern == "collapse":
            count = np.where(on, count * f, count)
        if lane.silent_before:
            count = np.zeros(self.m)
        return count, value

    def _extra(self, rng: np.random.Generator, i: int, lane: _Lane) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Declarations added on top of the lane's own: one_buyer's shell company, intermittent
        shipments."""
        base_month = lane.rate * float(np.exp(lane.mu + lane.sigma ** 2 / 2))
        if lane.pattern == "one_buyer":
            parts = rng.integers(1, 3, lane.stop - lane.onset)
            month = np.repeat(np.arange(lane.onset, lane.stop), parts)
            usd = (lane.factor - 1) * base_month / np.repeat(parts, parts) * rng.lognormal(0, 0.2, month.size)
            return month, usd, [self.new_buyer(i, lane)] * month.size
        if lane.pattern == "intermittent":
            on = np.array(lane.extra_on)
            parts = rng.integers(1, 4, on.size)
            month = np.repeat(on, parts)
            share = rng.dirichlet(np.ones(3), on.size)
            usd = np.concatenate([lane.on_value * rng.uniform(0.9, 1.1) * s[:p] / s[:p].sum()
                                  for s, p in zip(share, parts.tolist())])
            buyers = [f"{lane.partner} importer {i}-{b}" for b in rng.integers(0, 2, month.size).tolist()]
            return month, usd, buyers
        return np.zeros(0, dtype=int), np.zeros(0), []

    @staticmethod
    def new_buyer(i: int, lane: _Lane) -> str:
        return f"{lane.partner} new trading house {i}"

    def draw(self) -> tuple[list[dict], list[dict]]:
        m = self.m
        out_rng = np.random.default_rng([self.seed, 100])
        fx = {c: np.exp(np.cumsum(out_rng.normal(0, roundabout.FX_DRIFT, m))) if c not in ("USD", "EUR") else np.ones(m)
              for c in sorted({v[0] for v in REPORTERS.values()})}
        lane_of, month_of, usd_of, cn8_of, unit_of = [], [], [], [], []
        exporter_of: list[str] = []
        consignee_of: list[str] = []
        for i, lane in enumerate(self.lanes):
            rng = self.rng_of[lane.family]
            count, vmult = self.paths(lane)
            month = np.repeat(np.arange(m), rng.poisson(count * rng.gamma(lane.shape, 1.0 / lane.shape, m)))
            usd = np.exp(lane.mu + lane.sigma * rng.standard_normal(month.size)) * vmult[month]
            n_exp, n_con = int(rng.integers(2, 15)), int(rng.integers(2, 25))
            regular = (n_con * rng.random(month.size) ** 2).astype(int)
            one_off = np.where(rng.random(month.size) < CHURN, rng.integers(0, 1_000_000, month.size), -1)
            consignee = [f"{lane.partner} buyer {i}-{c}" if o < 0 else f"{lane.partner} one-off {o:06d}"
                         for c, o in zip(regular.tolist(), one_off.tolist())]
            exporter = (n_exp * rng.random(month.size) ** 2).astype(int).tolist()
            x_month, x_usd, x_buyers = self._extra(rng, i, lane)
            month, usd = np.concatenate([month, x_month]).astype(int), np.concatenate([usd, x_usd])
            consignee += x_buyers
            exporter += [0] * x_month.size
            lane_of.append(np.full(month.size, i))
            month_of.append(month)
            usd_of.append(usd)
            exporter_of += [f"{lane.reporter} exporter {i}-{e}" for e in exporter]
            consignee_of += consignee
            cn8_of.append(rng.integers(0, 2, month.size))
            unit_of.append(np.full(month.size, np.exp(rng.uniform(2, 8))))
            self._truth_lane(i, lane)
        cols = {"lane": np.concatenate(lane_of), "month": np.concatenate(month_of), "usd": np.concatenate(usd_of),
                "cn8": np.concatenate(cn8_of), "unit": np.concatenate(unit_of)}
        writer = roundabout._Builder.__new__(roundabout._Builder)   # its output step only, on these lanes
        writer.rng, writer.periods, writer.lanes, writer.rates, writer.seed = out_rng, self.periods, self.lanes, self.rates, self.seed
        decl, monthly = writer._outputs(cols, exporter_of, consignee_of, fx)
        for d in decl:
            d["declaration_id"] = "EV" + d["declaration_id"][2:]
        return decl, monthly

    def _truth_lane(self, i: int, lane: _Lane) -> None:
        base = round(lane.rate * float(np.exp(lane.mu + lane.sigma ** 2 / 2)) * (not lane.silent_before), 2)
        key = {"reporter": lane.reporter, "partner": lane.partner, "flow": FLOW, "hs6": lane.hs6}
        if lane.role == "destination":
            return
        self.truth.append({"kind": "series", **key, "density": lane.density, "base_rate": round(lane.rate, 4),
                           "base_value": base, "season": lane.season, "currency": REPORTERS[lane.reporter][0],
                           "family": lane.family, "role": lane.role, "variant": lane.variant})
        end = self.periods[lane.stop] if 0 <= lane.stop < self.m else None
        surge = {"kind": "surge", **key, "pattern": lane.family, "shape": "step", "onset": self.periods[lane.onset]
                 if lane.onset >= 0 else None, "end": end, "factor": round(lane.factor, 4), "density": lane.density}
        if lane.family == "diversion":
            d = self.lanes[lane.dest]
            d_base = d.rate * float(np.exp(d.mu + d.sigma ** 2 / 2))
            collapsed = d.pattern == "collapse"
            self.truth.append({"kind": "diversion", **key, "variant": lane.variant, "destination": d.partner,
                               "collapse": self.periods[d.onset] if collapsed else None,
                               "destination_before": round(d_base, 2),
                               "destination_after": round(d_base * (d.factor if collapsed else 1.0), 2),
                               "onset": self.periods[lane.onset] if lane.pattern == "rise" else None,
                               "lag": lane.lag if lane.variant == "pattern" else None,
                               "factor": round(lane.factor, 4)})
            if lane.role == "pattern":
                self.truth.append({**surge, "destination": d.partner, "lag": lane.lag})
        elif lane.role == "pattern" and lane.family in TRUE_FAMILIES:
            if lane.family == "one_buyer":
                surge["consignee"] = self.new_buyer(i, lane)
            if lane.family == "intermittent":
                surge.update(variant=lane.variant, on_value=round(lane.on_value, 2), from_nothing=lane.silent_before,
                             months=[self.periods[t] for t in lane.extra_on])
            self.truth.append(surge)


def generate(*, seed: int, families: Iterable[str] = FAMILIES, size: int = DEFAULT_SIZE, start: str = "2020-01",
             months: int = 48, sanctions: str = "2022-03") -> Scenario:
    """Draw an evasion scenario of the chosen families.

    Parameters
    ----------
    seed : int
        Seed of every draw: the same seed and families give the same scenario, and a family's
        lanes do not depend on which other families are drawn.
    families : iterable of str
        Any of :data:`FAMILIES` (order does not matter).
    size : int
        Pattern lanes a family (2-60): controls as many; ``reporter_level`` and ``q4_seasonal``
        get 2.5 times as many, ``diversion`` half as many of each decoy.
    start, months : str, int
        First month and length of the window (at least 30): onsets fall from its 19th month.
    sanctions : str
        ``hub_shift``'s month (the sanctions month of the truth).

    Raises
    ------
    InvalidParameterError
        For a parameter out of range or an unknown family.

    Examples
    --------
    >>> a = generate(seed=3, families=["moderate", "one_buyer"], size=3, months=36)
    >>> b = generate(seed=3, families=["one_buyer"], size=3, months=36)
    >>> key = lambda r: (r["reporter"], r["partner"], r["hs_code"], r["period"], r["value"])
    >>> ob = {(t["reporter"], t["partner"]) for t in b.truth if t["kind"] == "series"}
    >>> sorted(map(key, b.monthly)) == sorted(key(r) for r in a.monthly if (r["reporter"], r["partner"]) in ob)
    True
    """
    b = _Builder(seed=seed, families=list(families), size=size, start=start, months=months, sanctions=sanctions)
    declarations, monthly = b.draw()
    return Scenario(declarations=declarations, monthly=monthly, truth=b.truth, periods=b.periods)


def write(scenario: Scenario, out_dir: str | Path) -> dict[str, Path]:
    """Write ``declarations.jsonl.gz``, ``monthly.jsonl.gz`` and ``truth.jsonl`` as
    :func:`benchmarks.scenarios.labelled.write` does."""
    return labelled.write(scenario, out_dir)  # type: ignore[arg-type]  # it reads the same three fields


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scenarios.evasion",
                                     description="Write a seeded evasion scenario: declarations, monthly statistics, truth.")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--families", default=",".join(FAMILIES), help=f"comma-separated, of {','.join(FAMILIES)}")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="pattern lanes a family")
    parser.add_argument("--start", default="2020-01")
    parser.add_argument("--months", type=int, default=48)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    scn = generate(seed=args.seed, families=[f for f in args.families.split(",") if f], size=args.size,
                   start=args.start, months=args.months)
    write(scn, args.out_dir)
    kinds: dict[str, int] = {}
    for t in scn.truth:
        name = f"{t['kind']}:{t.get('family') or t.get('pattern') or ''}".rstrip(":")
        kinds[name] = kinds.get(name, 0) + 1
    print(orjson.dumps({"declarations": len(scn.declarations), "monthly": len(scn.monthly), "truth": kinds}).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
