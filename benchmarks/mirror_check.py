"""The mirror test on real data (issue 16, item 3): what hubs report importing from the EU
against what the EU reports exporting to them.

Three checks, from the files of ``../shared/data/real`` (README there for provenance):

1. **Kyrgyzstan, annual** (the issue's figure): Kyrgyz-reported imports from the EU (NSC table
   4.03.00.20, thousand USD) over EU27-reported exports to Kyrgyzstan (Comext, EUR; the monthly
   file summed per year), the imports converted to EUR at the ECB's annual average USD per EUR
   (:data:`USD_PER_EUR`), and the same for single member states.
2. **Four hubs, annual**: Armenia's, Kazakhstan's, Kyrgyzstan's and Uzbekistan's reported imports
   from the EU27 (national statistics, already in EUR) over the EU27's reported exports to them.
3. **Armenia, monthly, through the detector**: Armstat's imports by partner (thousand USD, by
   country of consignment, and by origin for comparison) against each member state's Comext
   exports to Armenia (EUR), 2019-01 to 2024-03, written as one JSON Lines input of both flows
   (exports ``reporter=DE partner=AM flow=export``, imports ``reporter=AM partner=DE flow=import``,
   the total as HS code 999999, both in EUR) and run through ``transitwatch.streams.replay.replay`` with every
   detector on: which lanes the mirror test flags, and when.

Run: ``PYTHONPATH=. python -m benchmarks.mirror_check [--real-dir DIR] [--workdir DIR]
[--write-doc docs/mirror.md]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pycountry

from transitwatch.detectors.contract import COUNTRY_ALIASES
from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.replay import replay

#: ECB euro foreign exchange reference rates, annual averages, USD per EUR (from general knowledge of
#: the published series, not read from a file here; the data README gives 1.1827 for 2021 and 1.0530
#: for 2022, the same).
USD_PER_EUR = {2017: 1.1297, 2018: 1.1810, 2019: 1.1195, 2020: 1.1422, 2021: 1.1827, 2022: 1.0530,
               2023: 1.0813, 2024: 1.0824}
EU27 = ("AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT",
        "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE")
_NAMES = {"Czech Rep.": "CZ", "Czech Republic": "CZ", "Czechia": "CZ", "Great Britain": "GB"}
COMEXT = "eurostat_comext_monthly_total_eu_members_hubs_2019_2024.csv"
NSC = "nsc_kyrgyzstan_imports_by_partner_annual_thousand_usd.csv"
ARMSTAT = "armstat_armenia_trade_by_partner_monthly.csv"
NATIONAL = {"AM": "armenia", "KZ": "kazakhstan", "KG": "kyrgyz", "UZ": "uzbek"}
EU_LABEL = "European Union - 27 countries (from 2020)"
TOTAL = "999999"
FIRST, LAST = "2019-01", "2024-03"  # the months both monthly files cover


def iso2(name: str) -> str | None:
    """An EU member's ISO code from a statistics office's English name (None: not a member)."""
    code = _NAMES.get(name)
    if code is None:
        try:
            code = pycountry.countries.lookup(name).alpha_2
        except LookupError:
            return None
    code = COUNTRY_ALIASES.get(code, code)
    return code if code in EU27 else None


def comext_exports(real: Path) -> pd.DataFrame:
    """Member states' (and EU27's) monthly exports, EUR: period, year, reporter, partner, value."""
    c = pd.read_csv(real / COMEXT)
    c = c[c["flow"] == "EXPORT"]
    return pd.DataFrame({"period": c["period"], "year": c["period"].str[:4].astype(int),
                         "reporter": c["reporter_iso2"], "partner": c["partner_iso2"],
                         "value": c["value_eur"].astype(float)})


def kyrgyz_annual(real: Path, exports: pd.DataFrame) -> dict[str, Any]:
    """Check 1: the Kyrgyz mirror ratio per year, the EU as a whole and member by member."""
    nsc = pd.read_csv(real / NSC)
    nsc = nsc[nsc["year"].between(2019, 2023)]
    rate = nsc["year"].map(USD_PER_EUR)
    nsc = nsc.assign(eur=nsc["value_thousand_usd"] * 1000.0 / rate)
    to_kg = exports[(exports["partner"] == "KG") & (exports["year"] <= 2023)]
    eu_x = to_kg[to_kg["reporter"] == "EU27_2020"].groupby("year")["value"].sum()
    eu_m = nsc[nsc["partner_en"] == "The EU"].set_index("year")["eur"]
    years = sorted(set(eu_x.index) & set(eu_m.index))
    whole = {y: {"imports": eu_m[y], "exports": eu_x[y], "ratio": eu_m[y] / eu_x[y]} for y in years}
    nsc = nsc.assign(code=nsc["partner_en"].map(iso2)).dropna(subset=["code"])
    members: dict[str, dict[int, float]] = defaultdict(dict)
    member_x = to_kg[to_kg["reporter"].isin(EU27)].groupby(["reporter", "year"])["value"].sum()
    for (code, year), value in nsc.groupby(["code", "year"])["eur"].sum().items():
        x = member_x.get((code, year))
        if x and x >= 5e6:  # ratios of small flows say little
            members[code][year] = value / x
    return {"eu": whole, "members": dict(members)}


def hubs_annual(real: Path, exports: pd.DataFrame) -> dict[str, dict[int, dict[str, float]]]:
    """Check 2: each hub's reported imports from the EU27 (EUR, national statistics) over the EU27's exports."""
    out = {}
    eu = exports[exports["reporter"] == "EU27_2020"].groupby(["partner", "year"])["value"].sum()
    for hub, stem in NATIONAL.items():
        d = pd.read_csv(real / f"national_stats_{stem}_imports_by_partner_yearly_eur_2019_2023.csv")
        d = d[d["PARTNER"] == EU_LABEL]
        rows = {}
        for period, value in zip(d["PERIOD"], d["VALUE_IN_EUR"].astype(float)):
            year = int(period[1:])
            x = eu.get((hub, year))
            if x:
                rows[year] = {"imports": value, "exports": x, "ratio": value / x}
        out[hub] = rows
    a = pd.read_csv(real / ARMSTAT)
    a = a[a["country"].map(iso2).notna()]
    for basis in ("import_consignment", "import_origin"):
        eur = a[basis].astype(float) * 1000.0 / a["year"].map(USD_PER_EUR)
        rows = {}
        for year, value in eur.groupby(a["year"]).sum().items():
            x = eu.get(("AM", int(year)))
            if x and 2019 <= year <= 2023:
                rows[int(year)] = {"imports": value, "exports": x, "ratio": value / x}
        out[f"AM (Armstat monthly, by {basis.split('_')[1]}, summed over the 27 members)"] = rows
    return out


def armenia_records(real: Path, exports: pd.DataFrame, basis: str) -> list[dict[str, Any]]:
    """Check 3's input: member states' exports to Armenia and Armenia's imports from them (``basis``:
    ``import_consignment`` or ``import_origin``), monthly, EUR, as input lines of both flows."""
    a = pd.read_csv(real / ARMSTAT)
    a = a.assign(code=a["country"].map(iso2), period=a["date"].str[:7]).dropna(subset=["code"])
    a = a[a["period"].between(FIRST, LAST)]
    lines = []
    for code, period, value in zip(a["code"], a["period"], a[basis].astype(float)):
        eur = value * 1000.0 / USD_PER_EUR[int(period[:4])]
        lines.append({"period": period, "reporter": "AM", "partner": code, "flow": "import",
                      "hs_code": TOTAL, "value": round(eur, 2), "currency": "EUR"})
    x = exports[(exports["partner"] == "AM") & exports["reporter"].isin(EU27)
                & exports["period"].between(FIRST, LAST)]
    for reporter, period, value in zip(x["reporter"], x["period"], x["value"]):
        lines.append({"period": period, "reporter": reporter, "partner": "AM", "flow": "export",
                      "hs_code": TOTAL, "value": value, "currency": "EUR"})
    return lines


ARMENIA_CONFIG = f"""
[watch]
reporters = {list(EU27)!r}
hubs = ["AM"]
hs6 = ["{TOTAL}"]
hs6_unlisted = ["{TOTAL}"]
history_start = "{FIRST}"
""".replace("'", '"')


def armenia_monthly(real: Path, exports: pd.DataFrame, work: Path, basis: str) -> dict[str, Any]:
    """Check 3: the replay's mirror findings on Armenia, and the pairs' yearly ratios for context."""
    lines = armenia_records(real, exports, basis)
    path = work / f"armenia_mirror_{basis}.jsonl"
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    config = WatchConfig.from_toml(ARMENIA_CONFIG)
    result = replay([path], config=config, final_month="closed", today=dt.date(2026, 1, 1))
    mirror = [a for a in result.alerts if "mirror" in a.detectors]
    lanes: dict[str, list] = defaultdict(list)
    for a in mirror:
        lanes[a.reporter].append(a)
    by_year: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    for line in lines:
        year = int(line["period"][:4])
        member = line["reporter"] if line["flow"] == "export" else line["partner"]
        by_year[member][year][0 if line["flow"] == "export" else 1] += line["value"]
    ratios = {m: {y: (v[1] / v[0] if v[0] else None, v[0]) for y, v in sorted(years.items())}
              for m, years in by_year.items()}
    return {
        "basis": basis, "lines": len(lines), "alerts": len(result.alerts), "mirror alerts": len(mirror),
        "other alerts": sum(1 for a in result.alerts if "mirror" not in a.detectors),
        "mirror before 2022-03": sum(1 for a in mirror if a.period < "2022-03"),
        "mirror only": sum(1 for a in mirror if a.detectors == ("mirror",)),
        "export lane-months": sum(1 for line in lines if line["flow"] == "export" and line["period"] < "2022-03"
                                  and line["value"] >= config.params["mirror"].min_exports * config.rates["EUR"]),
        "lanes": {m: [(a.period, a.evidence["mirror_exports"], a.evidence["mirror_imports"],
                       a.evidence["mirror_ratio"], a.evidence["mirror_usual_ratio"], a.evidence["mirror_lag"],
                       a.severity) for a in sorted(v, key=lambda a: a.period)] for m, v in sorted(lanes.items())},
        "ratios": ratios,
        "counts": dict(result.engine_counts),
    }


def _m(x: float) -> str:
    return f"{x / 1e6:,.1f}"


def report(res: dict[str, Any]) -> str:
    kg, hubs, arm = res["kyrgyz"], res["hubs"], res["armenia"]
    out = ["# Mirror statistics on real data", "",
           "What hubs report importing from the EU against what the EU reports exporting to them",
           "(`detectors/mirror.py`, docs/detectors.md, Mirror). Written by", "",
           "    PYTHONPATH=. python -m benchmarks.mirror_check --write-doc docs/mirror.md", "",
           "from the files of `../shared/data/real/` (their README gives provenance). USD figures are",
           "converted to EUR at the ECB's annual average USD per EUR "
           + ", ".join(f"{y} {r}" for y, r in USD_PER_EUR.items())
           + " (from general knowledge of the published series; the data README gives the same 2021 and 2022"
             " rates). Ratios here are imports over exports as reported, without the CIF/FOB factor; the"
             " detector divides by it (`[mirror] cif_fob`, 1.05).", "",
           "## 1. Kyrgyzstan, annual (the issue's figure)", "",
           "Kyrgyz-reported imports from the EU (NSC table 4.03.00.20, row \"The EU\", thousand USD) over",
           "EU27-reported exports to Kyrgyzstan (Comext monthly file, EU27_2020, summed per year), EUR m:", "",
           "| year | KG imports from the EU | EU27 exports to KG | ratio |", "|---|---:|---:|---:|"]
    for y, r in kg["eu"].items():
        out.append(f"| {y} | {_m(r['imports'])} | {_m(r['exports'])} | {r['ratio']:.2f} |")
    out += ["", "Member states (exports to Kyrgyzstan of EUR 5m or more in the year):", "",
            "| member | " + " | ".join(str(y) for y in range(2019, 2023)) + " |", "|---|" + "---:|" * 4]
    for code, years in sorted(kg["members"].items(), key=lambda kv: -len(kv[1])):
        out.append(f"| {code} | " + " | ".join(f"{years[y]:.2f}" if y in years else "" for y in range(2019, 2023)) + " |")
    out += ["", "## 2. Four hubs, annual", "",
            "Each hub's reported imports from the EU27 (national statistics as converted to EUR by the source",
            "repository) over the EU27's reported exports to it (Comext):", "",
            "| hub | " + " | ".join(str(y) for y in range(2019, 2024)) + " |", "|---|" + "---:|" * 5]
    for hub, rows in hubs.items():
        out.append(f"| {hub} | " + " | ".join(f"{rows[y]['ratio']:.2f}" if y in rows else "" for y in range(2019, 2024)) + " |")
    am = hubs.get("AM", {})
    arm_sum = next((v for k, v in hubs.items() if k.startswith("AM (Armstat monthly, by consignment")), {})
    if 2023 in am and 2023 in arm_sum:
        out += ["", (f"The national-statistics row for Armenia in 2023 (EUR {_m(am[2023]['imports'])}m) is "
                     f"{am[2023]['imports'] / arm_sum[2023]['imports']:.0%} of what Armstat's own monthly file sums "
                     f"to (EUR {_m(arm_sum[2023]['imports'])}m by consignment): a partial year in the source "
                     "repository, not a gap.")]
    out += ["", "## 3. Armenia, monthly, through the detector", "",
            "Input: every member state's monthly exports to Armenia (Comext, `flow: export`) and Armenia's",
            "imports from it (Armstat, `reporter: AM, flow: import`), HS code 999999 standing for the total,",
            f"{FIRST} to {LAST}; watch: the 27 members as reporters, Armenia as the hub, `history_start = \"{FIRST}\"`,",
            "every detector on with its default parameters. The mirror test's records (its figures are those",
            "of the lane's first flagged month; lag 1: the exports of the month before):", ""]
    for run in arm:
        c = run["counts"]
        out += [f"### Armenia's imports by country of {run['basis'].split('_')[1]}", "",
                (f"{run['lines']:,} input lines (both flows, {FIRST} to {LAST}); records used "
                 f"{c.get('records used', 0):,}; {run['alerts']} alert records, {run['mirror alerts']} of them by the "
                 f"mirror test ({run['other alerts']} by other detectors only; {run['mirror only']} by the mirror test "
                 f"alone). Before 2022-03: {run['mirror before 2022-03']} mirror records over "
                 f"{run['export lane-months']:,} material export lane-months (2019-01 to 2022-02, the first year "
                 "being history only)."), ""]
        if run["lanes"]:
            out += ["| lane | months flagged | first | EU exports (EUR m) | AM imports (EUR m) | ratio | usual | lag |",
                    "|---|---:|---|---:|---:|---:|---:|---:|"]
            for member, rows in run["lanes"].items():
                first = rows[0]
                out.append(f"| {member}>AM | {len(rows)} | {first[0]} | {_m(first[1])} | {_m(first[2])} | "
                           f"{first[3]:.2f} | {first[4]:.2f} | {first[5]} |")
                out.append(f"| | | months: {', '.join(r[0] for r in rows)} | | | | | |")
            out.append("")
        big = sorted(run["ratios"].items(), key=lambda kv: -sum(v[1] for v in kv[1].values()))[:8]
        out += ["Yearly ratio (Armenian imports / member's exports) of the eight largest exporters:", "",
                "| member | " + " | ".join(str(y) for y in range(2019, 2025)) + " |", "|---|" + "---:|" * 6]
        for member, years in big:
            out.append(f"| {member} | " + " | ".join(
                f"{years[y][0]:.2f}" if y in years and years[y][0] is not None else "" for y in range(2019, 2025)) + " |")
        out.append("")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real-dir", type=Path, default=here.parent / "shared" / "data" / "real")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--write-doc", type=Path, default=None)
    args = parser.parse_args(argv)
    real = args.real_dir
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        exports = comext_exports(real)
        res = {
            "kyrgyz": kyrgyz_annual(real, exports),
            "hubs": hubs_annual(real, exports),
            "armenia": [armenia_monthly(real, exports, work, basis)
                        for basis in ("import_consignment", "import_origin")],
        }
    text = report(res)
    if args.write_doc:
        args.write_doc.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
