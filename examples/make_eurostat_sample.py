"""Turn the Eurostat Comext CN8 CHPL extract into transitwatch monthly statistics lines.

The source is ``eurostat_comext_cn8_chpl_exports_eu_members_to_ru_and_neighbours_2020_2022.csv``
(columns: period, reporter_iso2, partner_iso2, cn8, hs6, chpl_tier, flow, value_eur,
source_path). Every row becomes one JSON object, keys in the order of ``KEYS``, sorted by
period, reporter, partner, hs_code. The gzip header carries no file name and mtime 0, so the
same input always gives the same bytes.

Usage::

    python examples/make_eurostat_sample.py SOURCE.csv transitwatch/data/eurostat_chpl_exports_2020_2022.jsonl.gz
"""

from __future__ import annotations

import argparse
import csv
import gzip
import re
import sys
from pathlib import Path

import orjson

KEYS = ("period", "reporter", "partner", "flow", "hs_code", "value", "currency")
SOURCE_COLUMNS = ("period", "reporter_iso2", "partner_iso2", "cn8", "flow", "value_eur")
_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_ISO2 = re.compile(r"^[A-Z]{2}$")
_CN8 = re.compile(r"^\d{8}$")


def convert_row(row: dict[str, str], line_no: int) -> dict[str, object]:
    """Map one source row to a statistics line, failing loudly on anything unexpected."""
    period = row["period"]
    reporter = row["reporter_iso2"]
    partner = row["partner_iso2"]
    cn8 = row["cn8"]
    flow = row["flow"].strip().lower()
    if not _PERIOD.match(period):
        raise ValueError(f"line {line_no}: period {period!r} is not YYYY-MM")
    if not (_ISO2.match(reporter) and _ISO2.match(partner)):
        raise ValueError(f"line {line_no}: reporter/partner {reporter!r}/{partner!r} are not ISO2")
    if not _CN8.match(cn8):
        raise ValueError(f"line {line_no}: cn8 {cn8!r} is not 8 digits")
    if flow != "export":
        raise ValueError(f"line {line_no}: flow {row['flow']!r}, expected EXPORT")
    value = float(row["value_eur"])
    if not value >= 0:
        raise ValueError(f"line {line_no}: value_eur {row['value_eur']!r} is negative or NaN")
    return {
        "period": period,
        "reporter": reporter,
        "partner": partner,
        "flow": flow,
        "hs_code": cn8,
        "value": value,
        "currency": "EUR",
    }


def read_source(path: Path) -> list[dict[str, object]]:
    """Read the source CSV and return the statistics lines in output order."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in SOURCE_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}")
        records = [convert_row(row, i) for i, row in enumerate(reader, start=2)]
    records.sort(key=lambda r: (r["period"], r["reporter"], r["partner"], r["hs_code"]))
    keys = [(r["period"], r["reporter"], r["partner"], r["hs_code"]) for r in records]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{path}: duplicate (period, reporter, partner, cn8) rows")
    return records


def write_jsonl_gz(records: list[dict[str, object]], out: Path) -> None:
    """Write JSON Lines through gzip with a fixed header (no name, mtime 0)."""
    payload = b"".join(orjson.dumps(r) + b"\n" for r in records)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as raw, gzip.GzipFile(
        filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0
    ) as gz:
        gz.write(payload)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the Eurostat Comext CN8 CHPL CSV")
    parser.add_argument("out", type=Path, help="output .jsonl.gz path")
    args = parser.parse_args(argv)
    records = read_source(args.source)
    write_jsonl_gz(records, args.out)
    size = args.out.stat().st_size
    print(f"wrote {len(records)} lines to {args.out} ({size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
