"""The layouts of statistics files, their sniffers and the [input] reading keys."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transitwatch.detectors.contract import parse_mapping
from transitwatch.detectors.errors import ConfigError, InvalidParameterError
from transitwatch.detectors.frame import Block
from transitwatch.detectors.layouts import (
    LAYOUTS,
    MissingColumnsError,
    ReaderParams,
    _decimal_comma,
    add_up,
    detect_layout,
    prepare,
    resolve,
    set_aside_aggregates,
    sniff_decimal,
    sniff_delimiter,
)
from transitwatch.detectors.watch import WatchConfig

# --- [input] reading keys ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[input]\nformat = "xlsx"', "input.format"),
        ('[input]\ndelimiter = "::"', "input.delimiter"),
        ('[input]\ndecimal = "x"', "input.decimal"),
        ('[input]\ndelimiter = ","\ndecimal = ","', "input.decimal"),
        ('[input]\nencoding = "no-such-codec"', "input.encoding"),
        ('[input]\ncurrency = "XYZ"', "input.currency"),
        ('[input.columns]\namount = "Wert"', "input.columns.amount"),
        ('[input.columns]\nvalue = ""', "input.columns.value"),
        ('[input.columns]\nvalue = "A"\nquantity = "A"', "input.columns.quantity"),
        ('[input.columns]\nvalue = 3', "input.columns.value"),
    ],
)
def test_a_bad_reading_key_stops_the_configuration_naming_it(toml, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        WatchConfig.from_toml(toml)


def test_the_reading_keys_reach_the_configuration():
    cfg = WatchConfig.from_toml('[input]\nformat = "csv"\ndelimiter = ";"\ncurrency = "eur"\nmax_depth = 8\n'
                                '[input.columns]\nvalue = "Wert (EUR)"\nreporter = "Meldeland"')
    assert cfg.reader.format == "csv" and cfg.reader.delimiter == ";"
    assert dict(cfg.reader.columns) == {"value": "Wert (EUR)", "reporter": "Meldeland"}
    assert cfg.input.max_depth == 8  # the limits are still the limits
    assert WatchConfig.default().reader == ReaderParams()


def test_a_mapped_column_must_be_in_the_file():
    layout = resolve(LAYOUTS["transitwatch"], ReaderParams(columns={"value": "Wert"}))
    with pytest.raises(MissingColumnsError, match="'Wert'"):
        prepare(pa.table({"value": ["1"]}), layout)
    with pytest.raises(InvalidParameterError):
        ReaderParams(add_up="yes")  # type: ignore[arg-type]


# --- sniffing -----------------------------------------------------------------------------------

_NAME = st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd"), whitelist_characters="_ "),
                min_size=1, max_size=12)


@given(st.lists(_NAME, min_size=2, max_size=12), st.sampled_from([",", ";", "\t", "|"]))
def test_the_delimiter_of_a_header_is_found(names, delimiter):
    assert sniff_delimiter(delimiter.join(names)) == delimiter


@given(st.lists(st.floats(min_value=0, max_value=1e9, allow_nan=False).filter(lambda x: x != int(x)),
                min_size=1, max_size=20))
def test_decimal_commas_are_found_and_read_back(values):
    german = [f"{v:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".") for v in values]
    assert sniff_decimal([["2024-01", "DE", g] for g in german]) == ","
    assert sniff_decimal([["2024-01", "DE", f"{v:.2f}"] for v in values]) == "."
    read = _decimal_comma(pa.array(german), pa, pc).to_pylist()
    assert [float(x) for x in read] == pytest.approx([round(v, 2) for v in values])


def test_a_number_with_a_point_in_a_decimal_comma_file_is_left_to_the_contract():
    assert _decimal_comma(pa.array(["1.5", "abc", "1 234,5", None]), pa, pc).to_pylist() == ["1.5", "abc", "1234.5", None]


def test_layouts_are_known_by_their_header():
    assert detect_layout(["period", "reporter_iso2", "partner_iso2", "cn8", "value_eur"]) == "comext-extract"
    assert detect_layout(["year", "commodity_code", "trade_value_us"]) == "comtrade-legacy"
    assert detect_layout(["declant_iso", "product"]) == "transitwatch"


# --- the Comext and Comtrade conversions ---------------------------------------------------------


def _comext(**cols):
    base = {"DECLARANT_ISO": ["DE"], "PARTNER_ISO": ["AM"], "PRODUCT_NC": ["85423190"], "FLOW": ["2"],
            "PERIOD": ["202203"], "VALUE_IN_EUROS": ["10"]}
    n = max(len(v) for v in cols.values()) if cols else 1
    table = {k: (cols.get(k) or v * n) for k, v in base.items()}
    return prepare(pa.table(table), LAYOUTS["comext"])


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("DECLARANT_ISO", "EL", "GR"), ("DECLARANT_ISO", "XI", "GB"), ("DECLARANT_ISO", "UK", "GB"),
        ("PARTNER_ISO", "QZ", "confidential_partner"), ("PARTNER_ISO", "EU27_2020", "aggregate_partner"),
        ("PRODUCT_NC", "TOTAL", "aggregate_code"), ("PRODUCT_NC", "85SSS000", "confidential_code"),
        ("FLOW", "1", "import"), ("FLOW", "3", "unsupported_flow"),
        ("PERIOD", "202252", "not_monthly"), ("PERIOD", "202212", "2022-12"),
    ],
)
def test_comext_codes_are_read_or_set_aside_with_their_reason(column, value, expected):
    p = _comext(**{column: [value]})
    field = {"DECLARANT_ISO": "reporter", "PARTNER_ISO": "partner", "PRODUCT_NC": "hs_code", "FLOW": "flow",
             "PERIOD": "period"}[column]
    if p.rejects:
        assert p.rejects[0].reason == expected and p.rows.tolist() == []
    else:
        assert p.columns[field].to_pylist() == [expected] and p.columns["currency"].to_pylist() == ["EUR"]


def test_comtrade_iso3_and_m49_codes_become_iso2():
    legacy = resolve(LAYOUTS["comtrade-legacy"], ReaderParams())
    p = prepare(pa.table({"period": ["2022-01-01"] * 3, "reporter_code": ["51", "842", "51"],
                          "partner_iso": ["RUS", "KAZ", "WLD"], "trade_code": ["X", "RX", "X"],
                          "commodity_code": ["870323"] * 3, "trade_value_us": ["5", "NA", "1"],
                          "netweight_kg": ["NA", "3", ""]}), legacy)
    assert p.columns["reporter"].to_pylist() == ["AM", "US", "AM"]
    assert p.columns["partner"].to_pylist()[:2] == ["RU", "KZ"] and p.rejects[2].reason == "aggregate_partner"
    assert p.columns["flow"].to_pylist()[:2] == ["export", "re-export"]
    assert p.columns["net_mass_kg"].to_pylist()[:2] == [None, "3"]  # R's NA: not available
    assert p.columns["value"].to_pylist()[1] is None  # a missing value: the contract rejects it as missing


# --- aggregates and adding up ----------------------------------------------------------------------


def test_aggregates_are_set_aside_not_added():
    keys = [np.array(["2022-01"] * 6), np.array(["AM", "AM", "AM", "GE", "AM", "AM"])]
    codes = ["8703", "870323", "870324", "8704", "854231", "85423190"]
    found = {i: e.reason for i, e in set_aside_aggregates(keys, codes).items()}
    assert found == {0: "aggregate_code", 3: "aggregate_only", 4: "aggregate_code"}


def test_a_breakdown_row_gives_way_to_its_total():
    keys = [np.array(["2022-01"] * 3)]
    found = set_aside_aggregates(keys, ["870323"] * 3, np.array([True, False, False]))
    assert {i: e.reason for i, e in found.items()} == {1: "breakdown_of_total", 2: "breakdown_of_total"}
    assert set_aside_aggregates(keys, ["870323"] * 3, np.array([False, False, False])) == {}


_STAT = st.fixed_dictionaries({
    "period": st.sampled_from(["2022-01", "2022-02"]), "reporter": st.sampled_from(["AM", "DE"]),
    "partner": st.sampled_from(["RU", "KG"]), "hs_code": st.sampled_from(["870323", "85423190"]),
    "value": st.integers(0, 10**9), "net_mass_kg": st.one_of(st.none(), st.integers(0, 10**6)),
})


@settings(max_examples=60, deadline=None)
@given(st.lists(_STAT, min_size=1, max_size=30))
def test_adding_up_keeps_every_value_and_one_record_per_identity(rows):
    records = [parse_mapping(r) for r in rows]
    block, lines, merged = add_up(Block.from_records(records), np.arange(2, 2 + len(rows)))
    identities = {r.identity for r in records}
    assert len(block) == len(identities) and merged == len(rows) - len(identities)
    assert block.value.sum() == pytest.approx(sum(r["value"] for r in rows))
    by_identity: dict = {}
    for line, r in zip(range(2, 2 + len(rows)), records):
        by_identity.setdefault(r.identity, []).append((line, r))
    firsts = sorted(group[0][0] for group in by_identity.values())
    assert lines.tolist() == firsts
    for i, line in enumerate(lines.tolist()):
        group = next(g for g in by_identity.values() if g[0][0] == line)
        masses = [r.net_mass_kg for _, r in group]
        assert block.value[i] == pytest.approx(sum(r.value for _, r in group))
        if None in masses:
            assert np.isnan(block.net_mass_kg[i])
        else:
            assert block.net_mass_kg[i] == pytest.approx(sum(masses))


@given(st.dictionaries(st.sampled_from(["value", "reporter", "period", "amount", "hs", "partner"]),
                       st.one_of(st.sampled_from(["A", "B", "", " "]), st.integers(0, 3))))
def test_a_column_mapping_is_accepted_only_when_it_is_right(mapping):
    from transitwatch.detectors.layouts import CONTRACT_FIELDS

    try:
        params = ReaderParams(columns=mapping)
    except InvalidParameterError as exc:
        assert exc.name.startswith("input.columns.") and exc.name.split(".")[-1] in mapping
        bad = exc.name.split(".")[-1]
        assert (bad not in CONTRACT_FIELDS or not isinstance(mapping[bad], str) or not mapping[bad].strip()
                or list(mapping.values()).count(mapping[bad]) > 1)
    else:
        assert set(params.columns) <= set(CONTRACT_FIELDS)
        assert all(isinstance(v, str) and v.strip() for v in params.columns.values())
        assert len(set(params.columns.values())) == len(params.columns)


def test_every_format_the_command_line_offers_is_a_container_or_a_layout():
    from transitwatch.detectors.formats import CONTAINERS, FORMATS, LAYOUT_NAMES
    from transitwatch.detectors.layouts import LAYOUTS

    assert set(LAYOUT_NAMES) <= set(LAYOUTS) and set(FORMATS) == {"auto", *CONTAINERS, *LAYOUT_NAMES}
