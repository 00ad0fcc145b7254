"""Cut the small real samples of ``examples/samples/`` from the shared real data files.

Each sample is a slice of a real file (values unchanged), written either in its own
layout or re-laid into the documented layout of a file the shared data does not hold
(Eurostat Comext bulk, UN Comtrade API v1, a European spreadsheet's CSV, Parquet).
``examples/samples/README.md`` says which is which and where each comes from.

Usage::

    python examples/make_reader_samples.py ../shared/data/real examples/samples
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

CN8 = "eurostat_comext_cn8_chpl_exports_eu_members_to_ru_and_neighbours_2020_2022.csv"
TOTALS = "eurostat_comext_monthly_total_eu_members_hubs_2019_2024.csv"
VEHICLES = "comtrade_armenia_vehicle_trade_monthly_hs4_hs6_2017_2023.csv"
PHONES = "comtrade_armenia_smartphones_851713_monthly_2022_2024.csv"
# Eurostat's own codes in its files: Greece is EL (the extract above writes GR).
TO_EUROSTAT = {"GR": "EL", "GB": "UK"}


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write(path: Path, names: list[str], rows: list[list[object]], delimiter: str = ",") -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        out.writerow(names)
        out.writerows(rows)


def _german(value: float) -> str:
    """A number as German spreadsheets write it: 1.234,50."""
    return f"{value:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".")


def cn8_slice(real: Path) -> list[dict[str, str]]:
    """Exports of HS 854232 and 854239 (integrated circuits) to Armenia and Kyrgyzstan, all months."""
    rows = [r for r in _read(real / CN8) if r["partner_iso2"] in ("AM", "KG") and r["hs6"] in ("854232", "854239")]
    return sorted(rows, key=lambda r: (r["period"], r["reporter_iso2"], r["partner_iso2"], r["cn8"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("real", type=Path, help="the folder of the shared real data")
    parser.add_argument("out", type=Path, help="where the samples go (examples/samples)")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rows = cn8_slice(args.real)

    # 1. the extract as it is (its own layout: comext-extract)
    names = ["period", "reporter_iso2", "partner_iso2", "cn8", "hs6", "chpl_tier", "flow", "value_eur"]
    _write(out / "comext_extract_ic_am_kg.csv", names, [[r[n] for n in names] for r in rows])

    # 2. the same rows re-laid as a Comext bulk file, with Eurostat's country codes and its FLOW code
    #    (2 = export); plus the real all-products totals of the same reporters, partners and months
    #    (PRODUCT_NC "TOTAL"), which the reader must set aside.
    bulk = ["DECLARANT_ISO", "PARTNER_ISO", "TRADE_TYPE", "PRODUCT_NC", "FLOW", "PERIOD", "VALUE_IN_EUROS",
            "QUANTITY_IN_KG"]
    relaid = [[TO_EUROSTAT.get(r["reporter_iso2"], r["reporter_iso2"]), r["partner_iso2"], "E", r["cn8"], "2",
               r["period"].replace("-", ""), r["value_eur"], ""] for r in rows]
    lanes = {(r["reporter_iso2"], r["partner_iso2"], r["period"]) for r in rows if r["period"].startswith("2022-0")}
    totals = [t for t in _read(args.real / TOTALS)
              if (t["reporter_iso2"], t["partner_iso2"], t["period"]) in lanes and t["flow"] == "EXPORT"]
    relaid += [[TO_EUROSTAT.get(t["reporter_iso2"], t["reporter_iso2"]), t["partner_iso2"], "E", "TOTAL", "2",
                t["period"].replace("-", ""), t["value_eur"], ""] for t in totals[:40]]
    _write(out / "comext_bulk_ic_am_kg.csv", bulk, relaid)

    # 3. the same rows as a European spreadsheet saves them: semicolons, decimal commas and points
    #    between thousands (German number format), the file's own column names (mapped in spreadsheet.toml)
    sheet = ["Zeitraum", "Meldeland", "Partnerland", "Warencode", "Wert (EUR)"]
    _write(out / "spreadsheet_ic_am_kg.csv", sheet,
           [[r["period"], r["reporter_iso2"], r["partner_iso2"], r["cn8"], _german(float(r["value_eur"]))]
            for r in rows], delimiter=";")

    # 4. Comtrade's older column names, as they are: Armenia's vehicle trade in 2022 (HS4 and HS6 rows,
    #    one row per mode of transport)
    vehicles = [r for r in _read(args.real / VEHICLES) if r["period"].startswith("2022-0") and r["trade_code"] == "X"]
    legacy = list(vehicles[0].keys())
    _write(out / "comtrade_legacy_armenia_vehicles_2022.csv", legacy, [[r[n] for n in legacy] for r in vehicles[:300]])

    # 5. Armenia's smartphone trade re-laid into the Comtrade API v1 columns
    phones = [r for r in _read(args.real / PHONES) if r["partner_iso"] in ("RUS", "CHN", "ARE", "VNM", "KOR")]
    v1 = ["typeCode", "freqCode", "refYear", "refMonth", "period", "reporterCode", "reporterISO", "reporterDesc",
          "flowCode", "flowDesc", "partnerCode", "partnerISO", "partnerDesc", "partner2Code", "partner2ISO",
          "classificationCode", "cmdCode", "cmdDesc", "aggrLevel", "isLeaf", "customsCode", "motCode", "motDesc",
          "qtyUnitCode", "qtyUnitAbbr", "qty", "netWgt", "cifvalue", "fobvalue", "primaryValue", "isAggregate"]
    relaid = [["C", "M", r["year"], r["month"], r["period_desc"], r["reporter_code"], "ARM", r["reporter"],
               r["trade_code"], r["trade_flow"], r["partner_code"], r["partner_iso"], r["partner"], "0", "W00",
               "HS", r["commodity_code"], r["commodity"], r["aggregate_level"], r["is_leaf_code"], "C00",
               r["mot_code"], r["mot_desc"], r["QtyUnitCode"], r["QtyUnitAbbr"], r["Qty"], r["netweight_kg"],
               r["cifvalue"], r["fobvalue"], r["trade_value_us"], r["IsAggregate"]] for r in phones[:200]]
    _write(out / "comtrade_v1_armenia_smartphones.csv", v1, relaid)

    # 6. the extract's rows with transitwatch's columns, as Parquet
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "period": [r["period"] for r in rows], "reporter": [r["reporter_iso2"] for r in rows],
        "partner": [r["partner_iso2"] for r in rows], "hs_code": [r["cn8"] for r in rows],
        "value": [float(r["value_eur"]) for r in rows], "currency": ["EUR"] * len(rows),
    })
    pq.write_table(table, out / "transitwatch_ic_am_kg.parquet", compression="zstd")
    return 0


if __name__ == "__main__":
    sys.exit(main())
