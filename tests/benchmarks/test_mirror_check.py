"""benchmarks.mirror_check on small hand-made files in the real files' formats."""

from __future__ import annotations

import pytest

from benchmarks import mirror_check as mc

COMEXT_HEAD = "period,reporter_iso2,reporter,partner_iso2,partner,flow,product,value_eur,source_path\n"


def write_files(tmp_path):
    rows = []
    for year, eu, de in ((2021, 100e6, 40e6), (2022, 400e6, 160e6)):
        for m in range(1, 13):
            p = f"{year}-{m:02d}"
            rows.append(f"{p},EU27_2020,EU,KG,Kyrgyzstan,EXPORT,TOTAL,{eu / 12},x\n")
            rows.append(f"{p},DE,Germany,KG,Kyrgyzstan,EXPORT,TOTAL,{de / 12},x\n")
            rows.append(f"{p},DE,Germany,AM,Armenia,EXPORT,TOTAL,1000000,x\n")
            rows.append(f"{p},DE,Germany,KG,Kyrgyzstan,IMPORT,TOTAL,5,x\n")  # EU imports: not exports
    (tmp_path / mc.COMEXT).write_text(COMEXT_HEAD + "".join(rows))
    # Kyrgyz imports, thousand USD: 0.9 of the EU's exports in 2021, 0.43 in 2022 (at the ECB rates)
    nsc = ["year,reporter,partner_en,partner_ru,flow,value_thousand_usd,source_path\n"]
    for year, eu, de in ((2021, 0.9 * 100e6, 0.9 * 40e6), (2022, 0.43 * 400e6, 0.48 * 160e6)):
        rate = mc.USD_PER_EUR[year]
        nsc.append(f"{year},Kyrgyzstan,The EU,ЕС,IMPORT,{eu * rate / 1000},x\n")
        nsc.append(f"{year},Kyrgyzstan,Germany,Германия,IMPORT,{de * rate / 1000},x\n")
        nsc.append(f"{year},Kyrgyzstan,CIS,СНГ,IMPORT,1,x\n")
    (tmp_path / mc.NSC).write_text("".join(nsc))
    arm = ["country,year,month,export,import_origin,import_consignment,date\n"]
    for year in (2021, 2022):
        for m in range(1, 13):
            arm.append(f"Germany,{year},{m},1,900,1000,{year}-{m:02d}-01\n")
            arm.append(f"Czech Rep.,{year},{m},1,9,10,{year}-{m:02d}-01\n")
            arm.append(f"Georgia,{year},{m},1,9,10,{year}-{m:02d}-01\n")
    (tmp_path / mc.ARMSTAT).write_text("".join(arm))


def test_member_names_map_to_their_codes_and_others_to_none():
    assert [mc.iso2(n) for n in ("Germany", "Czech Rep.", "Czechia", "Greece", "Georgia", "The EU")] == [
        "DE", "CZ", "CZ", "GR", None, None]


def test_the_kyrgyz_ratio_is_imports_in_eur_over_the_eus_exports(tmp_path):
    write_files(tmp_path)
    exports = mc.comext_exports(tmp_path)
    assert set(exports["partner"]) == {"KG", "AM"}  # the EU's imports from Kyrgyzstan are left out
    res = mc.kyrgyz_annual(tmp_path, exports)
    assert res["eu"][2021]["ratio"] == pytest.approx(0.9)
    assert res["eu"][2022]["ratio"] == pytest.approx(0.43)
    assert res["eu"][2022]["exports"] == pytest.approx(400e6)
    assert res["members"]["DE"][2022] == pytest.approx(0.48)


def test_the_armenian_input_has_both_flows_in_eur(tmp_path):
    write_files(tmp_path)
    lines = mc.armenia_records(tmp_path, mc.comext_exports(tmp_path), "import_consignment")
    imports = [x for x in lines if x["flow"] == "import"]
    exports = [x for x in lines if x["flow"] == "export"]
    assert {(x["reporter"], x["partner"]) for x in imports} == {("AM", "DE"), ("AM", "CZ")}  # Georgia: not EU
    assert {(x["reporter"], x["partner"]) for x in exports} == {("DE", "AM")}
    jan22 = next(x for x in imports if x["period"] == "2022-01" and x["partner"] == "DE")
    assert jan22["value"] == pytest.approx(1_000_000 / mc.USD_PER_EUR[2022], abs=0.01)
    assert {x["currency"] for x in lines} == {"EUR"} and {x["hs_code"] for x in lines} == {mc.TOTAL}
