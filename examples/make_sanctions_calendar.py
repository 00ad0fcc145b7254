"""Build ``detectors/data/sanctions_calendar.csv`` (see ``detectors/data/SOURCES.md``).

    python examples/make_sanctions_calendar.py /work/shared/data/real > detectors/data/sanctions_calendar.csv

Inputs: RUIMPEKS's CN8 list of EU export-banned goods (consolidated Reg. 833/2014 of 2022-10-07)
and the HS4 headings of its Eurostat query list, both in ``data/real/``, and the shipped CHPL file.
The package of each code is assigned by the heading and chapter rules below (not per code from the
annexes); ``precision`` says which rule gave it.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

VERSION = ("# sanctions_calendar version 1 (2026-12-06): EU Reg. 833/2014 (RU) and 765/2006 (BY) export bans by "
           "package, and the CHPL; see detectors/data/SOURCES.md")
LATEST = "2022-10-07"  # every code of the RUIMPEKS list is in the consolidated text of this date
CONSOLIDATED = "https://eur-lex.europa.eu/legal-content/EN/TXT/?uri=CELEX:02014R0833-20221007"


def _act(celex: str) -> str:
    return f"https://eur-lex.europa.eu/legal-content/EN/TXT/?uri=CELEX:{celex}"


# measure, package, legal act, published, applies from, source
P2_VII = ("EU 833/2014 Annex VII (advanced technology)", "2nd package", "Council Regulation (EU) 2022/328",
          "2022-02-25", "2022-02-26", _act("32022R0328"))
P2_XI = ("EU 833/2014 Annex XI (aviation and space)", "2nd package", "Council Regulation (EU) 2022/328",
         "2022-02-25", "2022-02-26", _act("32022R0328"))
P4_XVIII = ("EU 833/2014 Annex XVIII (luxury goods)", "4th package", "Council Regulation (EU) 2022/428",
            "2022-03-15", "2022-03-16", _act("32022R0428"))
P5_XXIII = ("EU 833/2014 Annex XXIII (industrial goods)", "5th package", "Council Regulation (EU) 2022/576",
            "2022-04-08", "2022-04-09", _act("32022R0576"))
P10_VII = ("EU 833/2014 Annex VII (advanced technology)", "10th package", "Council Regulation (EU) 2023/427",
           "2023-02-25", "2023-02-26", _act("32023R0427"))
BY_2022 = ("Belarus 765/2006 advanced technology (mirror of 833/2014 Annex VII)", "Belarus March 2022",
           "Council Regulation (EU) 2022/355", "2022-03-02", "2022-03-03", _act("32022R0355"))
BY_2023 = ("Belarus 765/2006 advanced technology (alignment with 833/2014)", "Belarus August 2023",
           "Council Regulation (EU) 2023/1591", "2023-08-03", "2023-08-04", _act("32023R1591"))

ADVANCED_HEADINGS = {"8471", "8473", "8517", "8525", "8526", "8529", "8541", "8542", "8543", "9013", "9014"}
LUXURY_CHAPTERS = {"01", "20", "21", "22", "24", "33", "42", "43", "57", "61", "62", "63", "64", "65", "66", "67",
                   "71", "91", "92", "95", "96", "97"}
LUXURY_HEADINGS = {"6911", "6912", "6913", "6914", "7013", "7018", "8214", "8215", "8703", "8711", "8903"}

COLUMNS = ["hs_code", "destination", "kind", "measure", "package", "legal_act", "published", "applies_from",
           "latest_from", "precision", "source_url", "basis"]


def package(code: str) -> tuple[tuple[str, ...], str]:
    """The package a code of the October-2022 list is assigned to, and the rule that assigned it."""
    if code[:4] in ADVANCED_HEADINGS:
        return P2_VII, "heading"
    if code[:2] == "88":
        return P2_XI, "chapter"
    if code[:4] in LUXURY_HEADINGS:
        return P4_XVIII, "heading"
    if code[:2] in LUXURY_CHAPTERS:
        return P4_XVIII, "chapter"
    return P5_XXIII, "default"


def rows(real: Path, chpl_file: Path, hs6_file: Path) -> list[dict[str, str]]:
    known = {r["hs6"] for r in csv.DictReader(hs6_file.open(encoding="utf-8"))}
    with (real / "eu_export_sanctions_cn8_codes_ruimpeks_2023.csv").open(encoding="utf-8") as f:
        cn8 = [r["code"] for r in csv.DictReader(f)]
    with (real / "eurostat_comext_extract_input_codes_ruimpeks.csv").open(encoding="utf-8") as f:
        heads = sorted({r["code"] for r in csv.DictReader(f) if len(r["code"]) == 4})
    codes = {c[:6] for c in cn8 if c[:6] in known}
    chpl = list(csv.DictReader(chpl_file.open(encoding="utf-8")))
    out: list[dict[str, str]] = []

    def add(code: str, dest: str, kind: str, what: tuple[str, ...], latest: str, precision: str, basis: str,
            url: str | None = None) -> None:
        measure, pkg, act, published, applies, source = what
        out.append(dict(zip(COLUMNS, (code, dest, kind, measure, pkg, act, published, applies, latest, precision,
                                      url or source, basis))))

    list_basis = ("RUIMPEKS CN8 list (consolidated 833/2014 of 2022-10-07), CN8 truncated to HS6; package by "
                  "{rule} rule, not verified per code")
    head_basis = ("RUIMPEKS query list heading (a heading listed whole); package by {rule} rule, not verified "
                  "per code")
    for code, basis in [(c, list_basis) for c in sorted(codes)] + [(h, head_basis) for h in heads]:
        what, rule = package(code)
        add(code, "RU", "export_ban", what, LATEST, rule, basis.format(rule=rule))
        if what is P2_VII:
            add(code, "BY", "export_ban", BY_2022, LATEST, f"{rule}, mirror assumed",
                "Belarus mirror of the Annex VII row for RU: assumed, not verified per code")
    for r in chpl:
        if r["hs6"] in codes:
            continue
        add(r["hs6"], "RU", "export_ban", P10_VII, r["valid_from"], "assumed",
            "CHPL code not in the October-2022 list: assumed added with the 10th package (electronic components "
            "found in Russian weapons, published with the first CHPL); banned by the CHPL version of "
            f"{r['valid_from']} at the latest")
        add(r["hs6"], "BY", "export_ban", BY_2023, r["valid_from"], "assumed",
            "CHPL code not in the October-2022 list: Belarus alignment of August 2023 assumed")
    for r in chpl:
        for dest in ("RU", "BY"):
            add(r["hs6"], dest, "priority_list",
                (f"CHPL tier {r['tier']}", f"CHPL version of {r['valid_from']}",
                 "Common High Priority List (EU, US, UK, Japan)", r["valid_from"], r["valid_from"], ""),
                r["valid_from"], "code",
                "detectors/data/chpl_hs_codes.csv (tier as in that version; the list first appeared on "
                "2023-02-23, its earlier versions are not in this file)",
                url="https://www.bis.gov/licensing/country-guidance/common-high-priority-items-list-chpl")
    return out


def main() -> None:
    real = Path(sys.argv[1])
    data = Path(__file__).resolve().parents[1] / "detectors" / "data"
    out = rows(real, data / "chpl_hs_codes.csv", data / "hs6_codes.csv")
    sys.stdout.write(VERSION + "\n")
    w = csv.DictWriter(sys.stdout, COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(out)


if __name__ == "__main__":
    main()
