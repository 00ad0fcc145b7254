"""Seeded generator of synthetic customs declaration lines with known surges.

The lines follow the transitwatch declaration input contract: one JSON object per line with
``declaration_id``, ``date``, ``reporter``, ``partner``, ``flow``, ``hs_code``, ``value``,
``currency``, ``net_mass_kg``, ``exporter`` and ``consignee``. A truth file lists every
injected surge and every decoy, so detection quality can be scored.

Why it is hard on purpose
-------------------------
- Series (reporter, partner, HS6) range from dense (about 100 declarations a month) to sparse
  (about 0.3 a month), with lognormal values, monthly over-dispersion, mild seasonality and
  slow trends.
- Decoys: one-off giant declarations (30-100x the series' mean declaration value).
- About 0.5% of lines are re-sent duplicates (same ``declaration_id``, same content).
- Exports to RU and BY collapse from 2022-03 for most series. This is real and is not a surge.
- Surges (x3 to x15, a step or a ramp over 2-3 months) hit about 3% of hub series. Onsets
  fall in the last 24 months. Some hit several reporters to the same hub and HS6 at once.
  Part of the extra volume goes to consignees the series has never used.

Truth file (JSON Lines): one object per surged series, ``{"reporter", "partner", "hs6",
"onset": "YYYY-MM", "kind": "step"|"ramp", "factor", "ramp_months", "end" (first month back
at base, or null), "event_id" (shared by co-ordinated surges), "base_rate" (declarations a
month just before the surge)}``, then one per decoy, ``{"kind": "decoy_giant", "reporter",
"partner", "hs6", "month", "factor" (x the series' mean declaration value),
"declaration_id", "value"}``.

Counts per series-month are drawn with numpy in one go. Lines are then emitted in date order
(shuffled within a day) and written with orjson. Same seed, same bytes.

Usage::

    python -m benchmarks.scenarios.declarations --lines 1000000 --seed 7 \
        --out /tmp/decl.jsonl.gz --truth /tmp/truth.jsonl

Examples
--------
>>> records, truth = generate(2000, seed=1)
>>> len(records)
2000
>>> sorted(records[0])[:3]
['consignee', 'currency', 'date']
>>> any(t["kind"] == "decoy_giant" for t in truth)
True
"""

from __future__ import annotations

import argparse
import calendar
import gzip
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import orjson

from transitwatch.detectors.errors import InvalidParameterError

# The 50 HS6 codes of the Common High Priority List (BIS/EU/UK/Japan, version of 2024-02-23)
# with their tier, copied from data/chpl_hs_codes.csv so the generator never reads shared files.
CHPL_HS6: tuple[tuple[str, str], ...] = (
    ("854231", "1"), ("854232", "1"), ("854233", "1"), ("854239", "1"),
    ("851762", "2"), ("852691", "2"), ("853221", "2"), ("853224", "2"), ("854800", "2"),
    ("847150", "3.A"), ("850440", "3.A"), ("851769", "3.A"), ("852589", "3.A"),
    ("852910", "3.A"), ("852990", "3.A"), ("853669", "3.A"), ("853690", "3.A"),
    ("854110", "3.A"), ("854121", "3.A"), ("854129", "3.A"), ("854130", "3.A"),
    ("854149", "3.A"), ("854151", "3.A"), ("854159", "3.A"), ("854160", "3.A"),
    ("848210", "3.B"), ("848220", "3.B"), ("848230", "3.B"), ("848250", "3.B"),
    ("880730", "3.B"), ("901310", "3.B"), ("901380", "3.B"), ("901420", "3.B"),
    ("901480", "3.B"),
    ("847180", "4.A"), ("848610", "4.A"), ("848620", "4.A"), ("848640", "4.A"),
    ("853400", "4.A"), ("854320", "4.A"), ("902750", "4.A"), ("903020", "4.A"),
    ("903032", "4.A"), ("903039", "4.A"), ("903082", "4.A"),
    ("845710", "4.B"), ("845811", "4.B"), ("845891", "4.B"), ("845961", "4.B"),
    ("846693", "4.B"),
)

# Real CN8 subdivisions seen in Eurostat Comext for some CHPL HS6 codes. Codes not listed
# here get "<hs6>00" (undivided) or "<hs6>10"/"<hs6>90".
KNOWN_CN8: dict[str, tuple[str, ...]] = {
    "854231": ("85423111", "85423119", "85423190"),
    "854232": ("85423211", "85423219", "85423231", "85423239", "85423245", "85423290"),
    "854233": ("85423310", "85423390"),
    "854239": ("85423911", "85423919", "85423990"),
    "851769": ("85176910", "85176920", "85176930", "85176990"),
    "852691": ("85269120", "85269180"),
    "852910": ("85291065", "85291069"),
    "901310": ("90131090",),
    "901380": ("90138090",),
}

# Rough shares of each member state in these lanes (relative weights, not data).
REPORTERS: dict[str, float] = {
    "DE": 0.22, "IT": 0.09, "PL": 0.09, "LT": 0.08, "NL": 0.08, "FR": 0.07, "CZ": 0.06,
    "AT": 0.05, "BE": 0.04, "FI": 0.04, "ES": 0.03, "LV": 0.03, "EE": 0.03, "SE": 0.03,
    "SK": 0.02, "HU": 0.02, "DK": 0.02,
}
HUBS: tuple[str, ...] = ("AM", "KZ", "KG", "GE", "UZ", "TR", "AE")
SANCTIONED: tuple[str, ...] = ("RU", "BY")
PARTNERS: dict[str, float] = {
    "RU": 0.30, "KZ": 0.15, "TR": 0.15, "AE": 0.12, "BY": 0.08, "UZ": 0.06,
    "GE": 0.05, "AM": 0.05, "KG": 0.04,
}
LEGAL_FORMS: dict[str, str] = {
    "DE": "GmbH", "IT": "S.r.l.", "PL": "Sp. z o.o.", "LT": "UAB", "NL": "B.V.", "FR": "SAS",
    "CZ": "s.r.o.", "AT": "GmbH", "BE": "BV", "FI": "Oy", "ES": "S.L.", "LV": "SIA",
    "EE": "OU", "SE": "AB", "SK": "s.r.o.", "HU": "Kft.", "DK": "ApS",
    "AM": "LLC", "KZ": "TOO", "KG": "OsOO", "GE": "LLC", "UZ": "MChJ", "TR": "Ltd. Sti.",
    "AE": "FZE", "RU": "OOO", "BY": "OOO",
}
# Median declaration value (EUR) and unit value (EUR/kg) by HS4 heading: coarse, invented.
_HS4_VALUE: dict[str, tuple[float, float]] = {
    "8542": (6000.0, 900.0), "8541": (3000.0, 300.0), "8517": (9000.0, 150.0),
    "8526": (12000.0, 300.0), "8529": (4000.0, 60.0), "8525": (7000.0, 250.0),
    "8532": (2500.0, 200.0), "8534": (5000.0, 100.0), "8536": (2000.0, 40.0),
    "8504": (5000.0, 30.0), "8543": (8000.0, 200.0), "8548": (2000.0, 80.0),
    "8471": (10000.0, 120.0), "8482": (3000.0, 12.0), "8486": (60000.0, 150.0),
    "8457": (90000.0, 25.0), "8458": (70000.0, 25.0), "8459": (60000.0, 25.0),
    "8466": (4000.0, 30.0), "8807": (15000.0, 150.0), "9013": (5000.0, 400.0),
    "9014": (9000.0, 300.0), "9027": (20000.0, 300.0), "9030": (6000.0, 400.0),
}
KEYS = (
    "declaration_id", "date", "reporter", "partner", "flow", "hs_code", "value",
    "currency", "net_mass_kg", "exporter", "consignee",
)

RATE_MIN, RATE_MAX = 0.3, 100.0      # declarations per month, sparse to dense
SURGE_SHARE = 0.03                   # share of hub series that get a surge
DUPLICATE_SHARE = 0.005              # re-sent lines
SANCTIONS_MONTH = "2022-03"          # RU/BY collapse starts here
MAX_REGULARS = 12                    # regular exporters/consignees per series (upper bound)
_POOL_EXPORTERS, _POOL_CONSIGNEES = 60, 90
_NAME_SEED = 20240223                # company pools are the same for every seed


@dataclass(frozen=True, kw_only=True)
class Columns:
    """Generated lines in columnar form, already in output order."""

    day: np.ndarray        # int64 days since 1970-01-01
    series: np.ndarray     # series index
    cn8: np.ndarray        # index into Scenario.cn8_codes
    value: np.ndarray
    mass: np.ndarray
    exporter: np.ndarray   # index into the reporter's pool
    consignee: np.ndarray  # index into the partner's pool
    serial: np.ndarray     # declaration serial (shared by duplicates)


def _month_index(start: str, months: int) -> list[str]:
    year, month = _parse_month(start)
    out = []
    for k in range(months):
        y, m = divmod(month - 1 + k, 12)
        out.append(f"{year + y:04d}-{m + 1:02d}")
    return out


def _parse_month(text: str) -> tuple[int, int]:
    try:
        year, month = (int(p) for p in text.split("-"))
    except ValueError:
        raise InvalidParameterError("start", text, "a month YYYY-MM") from None
    if not (1900 <= year <= 2999 and 1 <= month <= 12) or len(text) != 7:
        raise InvalidParameterError("start", text, "a month YYYY-MM")
    return year, month


def _company_pools() -> dict[str, list[str]]:
    """Synthetic company names per country, fixed for all seeds."""
    rng = np.random.default_rng(_NAME_SEED)
    onsets = ["Al", "Bar", "Cor", "Del", "Ele", "Fin", "Gal", "Hel", "Ist", "Kor", "Lum",
              "Mar", "Nor", "Orb", "Pol", "Quan", "Ros", "Sil", "Tek", "Ura", "Vel", "Zen"]
    codas = ["tra", "nex", "tek", "via", "lon", "mar", "ion", "dor", "sys", "tron", "vis",
             "gard", "lex", "nova", "port", "tal"]
    tails = ["Trade", "Electronics", "Components", "Logistics", "Systems", "Technics",
             "Industrial", "Supply", "Import", "Export", "Engineering", "Group", "Distribution"]
    pools: dict[str, list[str]] = {}
    for country, form in LEGAL_FORMS.items():
        size = _POOL_EXPORTERS if country in REPORTERS else _POOL_CONSIGNEES
        names: list[str] = []
        seen: set[str] = set()
        while len(names) < size:
            stem = str(rng.choice(onsets)) + str(rng.choice(codas))
            name = f"{stem} {rng.choice(tails)} {form}"
            if name not in seen:
                seen.add(name)
                names.append(name)
        pools[country] = names
    return pools


def _cn8_for(hs6: str, rng: np.random.Generator) -> tuple[str, ...]:
    if hs6 in KNOWN_CN8:
        return KNOWN_CN8[hs6]
    return (hs6 + "00",) if rng.random() < 0.6 else (hs6 + "10", hs6 + "90")


class Scenario:
    """Series definitions, monthly intensities, surges and decoys for one seed."""

    def __init__(self, *, lines: int, seed: int, start: str, months: int) -> None:
        if not isinstance(lines, (int, np.integer)) or lines < 1:
            raise InvalidParameterError("lines", lines, "an integer >= 1")
        if not isinstance(months, (int, np.integer)) or months < 13:
            raise InvalidParameterError("months", months, "an integer >= 13")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InvalidParameterError("seed", seed, "an integer >= 0")
        self.lines, self.seed, self.months = int(lines), int(seed), int(months)
        self.month_labels = _month_index(start, months)
        self.rng = np.random.default_rng(seed)
        self.pools = _company_pools()
        self._build_series()
        self._build_intensity()
        self._inject_surges()

    # -- series ---------------------------------------------------------------------------
    def _build_series(self) -> None:
        rng = self.rng
        reps, parts = list(REPORTERS), list(PARTNERS)
        hs6 = [h for h, _ in CHPL_HS6]
        hs_w = rng.lognormal(0.0, 0.6, len(hs6))
        w = (np.array(list(REPORTERS.values()))[:, None, None]
             * np.array(list(PARTNERS.values()))[None, :, None]
             * hs_w[None, None, :]).ravel()
        mean_rate = (RATE_MAX - RATE_MIN) / np.log(RATE_MAX / RATE_MIN)
        wanted = int(np.ceil(1.1 * self.lines / (self.months * mean_rate)))
        n = int(min(max(wanted, 12), w.size))
        chosen = rng.choice(w.size, size=n, replace=False, p=w / w.sum())
        # Heavier lanes tend to get higher rates, with plenty of noise.
        order = np.argsort(-(w[chosen] * rng.lognormal(0.0, 1.0, n)), kind="stable")
        chosen = chosen[order]
        rates = np.sort(np.exp(rng.uniform(np.log(RATE_MIN), np.log(RATE_MAX), n)))[::-1]
        r_idx, p_idx, h_idx = np.unravel_index(chosen, (len(reps), len(parts), len(hs6)))
        self.n_series = n
        self.reporter = [reps[i] for i in r_idx]
        self.partner = [parts[i] for i in p_idx]
        self.hs6 = [hs6[i] for i in h_idx]
        self.base_rate = rates

        cn8_by_hs6 = {h: _cn8_for(h, rng) for h in hs6}
        self.cn8_codes: list[str] = sorted({c for v in cn8_by_hs6.values() for c in v})
        code_pos = {c: i for i, c in enumerate(self.cn8_codes)}
        # Each series uses one or two of the CN8 lines of its HS6.
        self.series_cn8 = np.zeros((n, 2), dtype=np.int64)
        for s, h in enumerate(self.hs6):
            opts = cn8_by_hs6[h]
            pick = rng.choice(len(opts), size=min(2, len(opts)), replace=False)
            self.series_cn8[s] = [code_pos[opts[pick[0]]], code_pos[opts[pick[-1]]]]

        med_val = np.array([_HS4_VALUE.get(h[:4], (5000.0, 100.0))[0] for h in self.hs6])
        unit_val = np.array([_HS4_VALUE.get(h[:4], (5000.0, 100.0))[1] for h in self.hs6])
        self.mu = np.log(med_val) + rng.normal(0.0, 0.7, n)
        self.sigma = rng.uniform(0.9, 1.5, n)
        self.mean_value = np.exp(self.mu + self.sigma**2 / 2)
        self.log_unit_value = np.log(unit_val) + rng.normal(0.0, 0.4, n)

        # Regular counterparties: denser series trade with more companies.
        self.n_exp = np.clip(np.round(1 + rates**0.5), 1, MAX_REGULARS).astype(np.int64)
        self.n_con = np.clip(np.round(1 + 0.8 * rates**0.5), 1, MAX_REGULARS).astype(np.int64)
        established = int(_POOL_CONSIGNEES * 2 / 3)   # the rest is reserved for newcomers
        self.reg_exp = np.stack([rng.permutation(_POOL_EXPORTERS)[:MAX_REGULARS] for _ in range(n)])
        self.reg_con = np.stack([rng.permutation(established)[:MAX_REGULARS] for _ in range(n)])
        self.new_con = np.stack([established + rng.permutation(_POOL_CONSIGNEES - established)[:3]
                                 for _ in range(n)])
        self.new_con_share = np.zeros(n)

    # -- monthly intensity ----------------------------------------------------------------
    def _build_intensity(self) -> None:
        rng, n, m = self.rng, self.n_series, self.months
        t = np.arange(m)
        cal = np.array([int(lbl[5:]) for lbl in self.month_labels])
        amp = rng.uniform(0.0, 0.25, n)[:, None]
        phase = rng.uniform(0.0, 12.0, n)[:, None]
        season = 1.0 + amp * np.sin(2 * np.pi * (cal[None, :] - phase) / 12.0)
        season = season * np.where(cal == 8, 0.8, 1.0)[None, :] * np.where(cal == 12, 0.9, 1.0)
        trend = np.exp(rng.normal(0.0, 0.08, n)[:, None] * t[None, :] / 12.0)
        self.base = self.base_rate[:, None] * season * trend
        # RU/BY: most lanes collapse after the sanctions month; a few keep going.
        if SANCTIONS_MONTH in self.month_labels:
            k = self.month_labels.index(SANCTIONS_MONTH)
            sanct = np.array([p in SANCTIONED for p in self.partner])
            collapse = sanct & (rng.random(n) < 0.85)
            after = np.where(t >= k + 1, 1.0, 0.0)
            floor = rng.uniform(0.02, 0.2, n)[:, None]
            keep = rng.uniform(0.5, 1.0, n)[:, None]
            mult = np.ones((n, m))
            mult[:, k] = np.where(collapse, 0.4, np.where(sanct, keep[:, 0], 1.0))
            mult = np.where(after[None, :] > 0,
                            np.where(collapse[:, None], floor, np.where(sanct[:, None], keep, 1.0)),
                            mult)
            self.base = self.base * mult
        self.noise = rng.lognormal(-0.25**2 / 2, 0.25, (n, m))
        self.surge_mult = np.ones((n, m))

    # -- surges ---------------------------------------------------------------------------
    def _inject_surges(self) -> None:
        rng, m = self.rng, self.months
        hub = np.array([p in HUBS for p in self.partner])
        hub_idx = np.flatnonzero(hub)
        self.events: list[dict] = []
        if hub_idx.size == 0:
            return
        target = min(hub_idx.size, max(3, int(round(SURGE_SHARE * hub_idx.size))))
        # Stratify by density so sparse, medium and dense lanes all carry surges.
        strata = np.array_split(hub_idx[np.argsort(-self.base_rate[hub_idx], kind="stable")], 3)
        strata = [rng.permutation(s).tolist() for s in strata if s.size]
        lo = max(m - 24, min(12, m // 2))
        used: set[int] = set()
        event_id, k = 0, 0
        while len(used) < target and any(strata):
            stratum = strata[k % len(strata)]
            k += 1
            if not stratum:
                continue
            primary = stratum.pop()
            if primary in used:
                continue
            onset = int(rng.integers(lo, m))
            kind = "step" if rng.random() < 0.5 else "ramp"
            ramp = 1 if kind == "step" else int(rng.integers(2, 4))
            factor = float(np.exp(rng.uniform(np.log(3.0), np.log(15.0))))
            end = None if rng.random() < 0.7 else onset + int(rng.integers(4, 10))
            members = [primary]
            if rng.random() < 0.35:   # several reporters to the same hub and HS6 at once
                peers = [s for s in hub_idx.tolist() if s not in used and s != primary
                         and self.partner[s] == self.partner[primary]
                         and self.hs6[s] == self.hs6[primary]]
                take = min(len(peers), int(rng.integers(1, 4)))
                if take:
                    members += [peers[i] for i in rng.choice(len(peers), take, replace=False)]
            share_new = float(rng.uniform(0.3, 0.9))
            for j, s in enumerate(members):
                f = factor if j == 0 else float(factor * rng.uniform(0.7, 1.3))
                f = float(np.clip(f, 3.0, 15.0))
                on = onset if j == 0 else min(m - 1, onset + int(rng.integers(0, 2)))
                stop = m if end is None else min(m, end + (on - onset))
                t = np.arange(m)
                ramp_mult = 1.0 + (f - 1.0) * np.minimum(1.0, (t - on + 1) / ramp)
                self.surge_mult[s] = np.where((t >= on) & (t < stop), ramp_mult, 1.0)
                self.new_con_share[s] = share_new
                used.add(s)
                self.events.append({
                    "reporter": self.reporter[s], "partner": self.partner[s],
                    "hs6": self.hs6[s], "onset": self.month_labels[on], "kind": kind,
                    "factor": round(f, 3), "ramp_months": ramp,
                    "end": None if stop >= m else self.month_labels[stop],
                    "event_id": event_id, "base_rate": 0.0, "_series": s, "_onset": on,
                })
            event_id += 1

    # -- lines ----------------------------------------------------------------------------
    def columns(self) -> tuple[Columns, list[dict]]:
        """Draw every line; return them in output order with the truth records."""
        rng, n, m = self.rng, self.n_series, self.months
        n_dup = int(round(DUPLICATE_SHARE * self.lines))
        n_base = self.lines - n_dup
        lam = self.base * self.surge_mult * self.noise
        counts = rng.multinomial(n_base, (lam / lam.sum()).ravel()).reshape(n, m)
        scale = n_base / lam.sum()            # rates as realised after fixing the total
        cell = np.repeat(np.arange(n * m), counts.ravel())
        series, month = np.divmod(cell, m)
        size = series.size

        # Share of each cell's lines that is surge excess (goes partly to new consignees).
        excess_p = (1.0 - 1.0 / self.surge_mult)[series, month]
        is_excess = rng.random(size) < excess_p
        to_new = is_excess & (rng.random(size) < self.new_con_share[series])

        value = np.exp(self.mu[series] + self.sigma[series] * rng.standard_normal(size))
        unit = np.exp(self.log_unit_value[series] + 0.3 * rng.standard_normal(size))

        # Decoys: one giant declaration in a hub series-month inside the surge window, never
        # on a surged series, so a detector that reacts to one line gets a false alarm.
        surged = {e["_series"] for e in self.events}
        candidates = [s for s in range(n) if s not in surged and self.base_rate[s] >= 1.0
                      and self.partner[s] in HUBS]
        lo = max(m - 24, min(12, m // 2))
        n_decoy = min(len(candidates), max(2, int(round(n / 100))))
        decoys: list[dict] = []
        starts = np.concatenate([[0], np.cumsum(counts.ravel())])
        for s in rng.permutation(candidates)[:n_decoy].tolist():
            months_with = np.flatnonzero(counts[s, lo:] > 0) + lo
            if months_with.size == 0:
                continue
            mo = int(rng.choice(months_with))
            line = int(starts[s * m + mo] + rng.integers(0, counts[s, mo]))
            factor = float(rng.uniform(30.0, 100.0))
            value[line] = self.mean_value[s] * factor
            decoys.append({"kind": "decoy_giant", "reporter": self.reporter[s],
                           "partner": self.partner[s], "hs6": self.hs6[s],
                           "month": self.month_labels[mo], "factor": round(factor, 3),
                           "_line": line})

        value = np.maximum(np.round(value, 2), 1.0)
        mass = np.maximum(np.round(value / unit, 3), 0.001)
        u = rng.random(size)
        exporter = self.reg_exp[series, (self.n_exp[series] * u**2).astype(np.int64)]
        u = rng.random(size)
        consignee = self.reg_con[series, (self.n_con[series] * u**2).astype(np.int64)]
        newcomer = self.new_con[series, rng.integers(0, 3, size)]
        consignee = np.where(to_new, newcomer, consignee)
        churn = rng.random(size) < 0.01       # occasional one-off buyers, not surge related
        consignee = np.where(churn, rng.integers(0, _POOL_CONSIGNEES, size), consignee)
        cn8 = self.series_cn8[series, rng.integers(0, 2, size)]
        day = self._draw_days(month)

        # Serials in date order (per reporter), then re-sent copies, then shuffle within day.
        order = np.lexsort((rng.random(size), day))
        rep_code = np.array([list(REPORTERS).index(r) for r in self.reporter])[series]
        serial = np.empty(size, dtype=np.int64)
        for r in np.unique(rep_code):
            sel = order[rep_code[order] == r]
            serial[sel] = int(r) * 10**9 + np.arange(1, sel.size + 1)
        dup = np.sort(rng.choice(size, size=min(n_dup, size), replace=False))
        idx = np.concatenate([np.arange(size), dup])
        final = idx[np.lexsort((rng.random(idx.size), day[idx]))]

        for d in decoys:
            d["declaration_id"] = None
            d["_serial"] = int(serial[d.pop("_line")])
        for e in self.events:
            s, on = e.pop("_series"), e.pop("_onset")
            e["base_rate"] = round(float(self.base[s, on] * scale), 3)
        cols = Columns(day=day[final], series=series[final], cn8=cn8[final],
                       value=value[final], mass=mass[final], exporter=exporter[final],
                       consignee=consignee[final], serial=serial[final])
        truth = sorted(self.events, key=lambda e: (e["onset"], e["partner"], e["hs6"], e["reporter"]))
        truth += sorted(decoys, key=lambda d: (d["month"], d["partner"], d["hs6"], d["reporter"]))
        return cols, truth

    def _draw_days(self, month: np.ndarray) -> np.ndarray:
        """Days since epoch; weekdays are about six times as likely as weekend days."""
        day = np.empty(month.size, dtype=np.int64)
        for k, label in enumerate(self.month_labels):
            sel = np.flatnonzero(month == k)
            if sel.size == 0:
                continue
            y, mo = int(label[:4]), int(label[5:])
            first = np.datetime64(f"{label}-01", "D").astype(np.int64)
            ndays = calendar.monthrange(y, mo)[1]
            wd = (np.arange(ndays) + calendar.weekday(y, mo, 1)) % 7
            w = np.where(wd < 5, 1.0, 0.15)
            day[sel] = first + self.rng.choice(ndays, size=sel.size, p=w / w.sum())
        return day


def _decl_id(serial: int, day: int, reporter: str) -> str:
    year = str(np.datetime64(int(day), "D"))[2:4]
    return f"{year}{reporter}{serial % 10**9:012d}"


def _iter_records(scn: Scenario, cols: Columns, chunk: int = 100_000) -> Iterator[list[dict]]:
    """Yield lists of record dicts, in output order, ``chunk`` at a time."""
    first = int(cols.day.min()) if cols.day.size else 0
    last = int(cols.day.max()) if cols.day.size else 0
    dates = {d: str(np.datetime64(d, "D")) for d in range(first, last + 1)}
    yy = {d: s[2:4] for d, s in dates.items()}
    rep, par, hs6 = scn.reporter, scn.partner, scn.hs6
    exp_pool = {c: scn.pools[c] for c in REPORTERS}
    con_pool = {c: scn.pools[c] for c in PARTNERS}
    codes = scn.cn8_codes
    for a in range(0, cols.day.size, chunk):
        b = a + chunk
        out = []
        for d, s, c, v, ms, ex, co, se in zip(
            cols.day[a:b].tolist(), cols.series[a:b].tolist(), cols.cn8[a:b].tolist(),
            cols.value[a:b].tolist(), cols.mass[a:b].tolist(), cols.exporter[a:b].tolist(),
            cols.consignee[a:b].tolist(), cols.serial[a:b].tolist(),
        ):
            r, p = rep[s], par[s]
            out.append({
                "declaration_id": f"{yy[d]}{r}{se % 10**9:012d}",
                "date": dates[d], "reporter": r, "partner": p, "flow": "export",
                "hs_code": codes[c], "value": v, "currency": "EUR", "net_mass_kg": ms,
                "exporter": exp_pool[r][ex], "consignee": con_pool[p][co],
            })
        yield out


def _finish_truth(cols: Columns, truth: list[dict]) -> list[dict]:
    """Fill decoy declaration ids (needs the date of the decoy line)."""
    if not any(t["kind"] == "decoy_giant" for t in truth):
        return truth
    pos = {int(se): i for i, se in enumerate(cols.serial.tolist())}
    for t in truth:
        if t["kind"] == "decoy_giant":
            i = pos[t.pop("_serial")]
            t["declaration_id"] = _decl_id(int(cols.serial[i]), int(cols.day[i]), t["reporter"])
            t["value"] = float(cols.value[i])
    return truth


def _simulate(lines: int, seed: int, start: str, months: int) -> tuple[Scenario, Columns, list[dict]]:
    scn = Scenario(lines=lines, seed=seed, start=start, months=months)
    cols, truth = scn.columns()
    return scn, cols, _finish_truth(cols, truth)


def generate(lines: int, seed: int, start: str = "2020-01",
             months: int = 36) -> tuple[list[dict], list[dict]]:
    """Return ``(records, truth)``: declaration lines in output order and injected events.

    Meant for small files (tests); ``write`` streams large ones without holding every dict.
    """
    scn, cols, truth = _simulate(lines, seed, start, months)
    records = [r for chunk in _iter_records(scn, cols) for r in chunk]
    return records, truth


def _open_out(path: Path):
    if path.suffix == ".gz":
        raw = path.open("wb")
        return raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0)
    fh = path.open("wb")
    return None, fh


def write(out: str | Path, lines: int, seed: int, start: str = "2020-01", months: int = 36,
          truth: str | Path | None = None) -> dict:
    """Generate and write ``lines`` JSON lines to ``out`` (gzip if it ends in .gz).

    Returns a small summary: line count, surge and decoy counts, series count.
    """
    out = Path(out)
    scn, cols, truth_rows = _simulate(lines, seed, start, months)
    out.parent.mkdir(parents=True, exist_ok=True)
    raw, fh = _open_out(out)
    try:
        for chunk in _iter_records(scn, cols):
            fh.write(b"".join(orjson.dumps(r) + b"\n" for r in chunk))
    finally:
        fh.close()
        if raw is not None:
            raw.close()
    if truth is not None:
        tpath = Path(truth)
        tpath.parent.mkdir(parents=True, exist_ok=True)
        tpath.write_bytes(b"".join(orjson.dumps(t) + b"\n" for t in truth_rows))
    return {
        "lines": int(cols.day.size),
        "series": scn.n_series,
        "surges": sum(t["kind"] != "decoy_giant" for t in truth_rows),
        "decoys": sum(t["kind"] == "decoy_giant" for t in truth_rows),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scenarios.declarations",
        description="Write seeded synthetic declaration lines (JSONL, gzip if .gz) and a truth file.",
    )
    parser.add_argument("--lines", type=int, required=True, help="number of lines to write")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="FILE.jsonl or FILE.jsonl.gz")
    parser.add_argument("--truth", type=Path, default=None, help="truth JSONL (events, decoys)")
    parser.add_argument("--start", default="2020-01", help="first month, YYYY-MM")
    parser.add_argument("--months", type=int, default=36)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    summary = write(args.out, args.lines, args.seed, args.start, args.months, args.truth)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    print(orjson.dumps(summary).decode(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
