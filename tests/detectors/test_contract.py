"""The input contract: field rules, reject reasons, schema, and parser properties."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transitwatch.detectors import contract
from transitwatch.detectors.contract import Declaration, MonthlyStat, json_schema, parse_json_line, parse_mapping
from transitwatch.detectors.errors import RejectError

SCHEMA_FILE = Path(contract.__file__).parent / "data" / "input.schema.json"

DECL: dict[str, Any] = {
    "declaration_id": "DE-1",
    "date": "2024-03-05",
    "reporter": "DE",
    "partner": "KZ",
    "hs_code": "8542310000",
    "value": 1250.5,
}
STAT: dict[str, Any] = {
    "period": "2024-01",
    "reporter": "FR",
    "partner": "AM",
    "flow": "export",
    "hs_code": "854231",
    "value": 10,
    "currency": "EUR",
}


def both_ways(fields: dict[str, Any]) -> list[Any]:
    """Parse as a JSON line and as a mapping; return both outcomes (record or reason key)."""
    outcomes = []
    for parse, arg in ((parse_json_line, orjson.dumps(fields)), (parse_mapping, fields)):
        try:
            outcomes.append(parse(arg))
        except RejectError as exc:
            outcomes.append(exc.key)
    return outcomes


def parsed(base: dict[str, Any], **changes: Any) -> Declaration | MonthlyStat:
    record = {**base, **changes}
    json_result, mapping_result = both_ways(record)
    assert json_result == mapping_result
    assert not isinstance(json_result, str), json_result
    return json_result


def rejected(base: dict[str, Any], **changes: Any) -> RejectError:
    record = {k: v for k, v in {**base, **changes}.items() if v is not ...}
    with pytest.raises(RejectError) as from_json:
        parse_json_line(orjson.dumps(record))
    with pytest.raises(RejectError) as from_mapping:
        parse_mapping(record)
    assert from_json.value.key == from_mapping.value.key
    assert from_json.value.message == from_mapping.value.message
    return from_json.value


# --- kinds -------------------------------------------------------------------


def test_kind_follows_the_key():
    assert isinstance(parsed(DECL), Declaration)
    assert isinstance(parsed(STAT), MonthlyStat)


def test_both_keys_are_ambiguous_and_neither_is_unknown():
    assert rejected(DECL, period="2024-01").reason == "ambiguous_kind"
    assert rejected(DECL, declaration_id=...).reason == "unknown_kind"


def test_escaped_key_cannot_hide_the_other_kind():
    line = orjson.dumps(DECL)[:-1] + b', "p\\u0065riod": "2024-01"}'
    with pytest.raises(RejectError) as err:
        parse_json_line(line)
    assert err.value.reason == "ambiguous_kind"


def test_key_text_inside_a_value_does_not_confuse_the_kind():
    record = parse_json_line(orjson.dumps({**STAT, "exporter": 'x "declaration_id"'}))
    assert isinstance(record, MonthlyStat)


def test_blank_kind_key_is_absent_so_mixed_csv_files_work():
    assert isinstance(parse_mapping({**STAT, "declaration_id": ""}), MonthlyStat)
    assert isinstance(parse_mapping({**DECL, "period": "  "}), Declaration)


def test_extra_fields_are_ignored():
    record = parsed(DECL, future_field={"nested": [1, 2]}, comment="x")
    assert record == parsed(DECL)


# --- declaration fields ------------------------------------------------------


def test_declaration_id_int_becomes_string_and_blank_is_missing():
    assert parsed(DECL, declaration_id=1234).declaration_id == "1234"
    assert parsed(DECL, declaration_id=" A-7 ").declaration_id == "A-7"
    assert rejected(DECL, declaration_id=True).key == "invalid_field:declaration_id"
    assert rejected(DECL, declaration_id=1.5).key == "invalid_field:declaration_id"


@pytest.mark.parametrize(
    ("given_date", "expected"),
    [
        ("2024-03-05", dt.date(2024, 3, 5)),
        ("2024-03-05T23:59:59Z", dt.date(2024, 3, 5)),
        ("2024-03-05T10:00:00+05:00", dt.date(2024, 3, 5)),
    ],
)
def test_date_accepts_dates_and_datetimes(given_date, expected):
    record = parsed(DECL, date=given_date)
    assert record.date == expected
    assert record.month == expected.year * 12 + expected.month - 1


@pytest.mark.parametrize("bad", ["2024-13-01", "05/03/2024", "2024-3-5", 20240305, "yesterday"])
def test_date_rejects_non_iso(bad):
    error = rejected(DECL, date=bad)
    assert error.key == "invalid_field:date"
    assert "YYYY-MM-DD" in error.message


@pytest.mark.parametrize(("code", "expected"), [("kz", "KZ"), (" Ge ", "GE"), ("EL", "GR"), ("uk", "GB")])
def test_country_codes_are_upper_cased_and_aliased(code, expected):
    assert parsed(DECL, partner=code).partner == expected
    assert parsed(STAT, reporter=code).reporter == expected
    assert parsed(DECL, origin=code).origin == expected


def test_unknown_country_and_malformed_country_differ():
    unknown = rejected(DECL, partner="XX")
    assert unknown.key == "unknown_country:partner"
    assert "'XX'" in unknown.message
    assert rejected(DECL, origin="ZZ").key == "unknown_country:origin"
    assert rejected(DECL, reporter="DEU").key == "invalid_field:reporter"
    assert rejected(DECL, reporter=49).key == "invalid_field:reporter"


@pytest.mark.parametrize(
    ("flow", "expected"),
    [("export", "export"), ("IMPORT", "import"), ("Re_Export", "re-export"), ("re-import", "re-import")],
)
def test_flow_normalised(flow, expected):
    assert parsed(DECL, flow=flow).flow == expected


def test_flow_defaults_to_export_and_rejects_others():
    assert parsed(DECL).flow == "export"
    assert parsed(DECL, flow="").flow == "export"
    assert rejected(DECL, flow="transit").key == "invalid_field:flow"


@pytest.mark.parametrize(
    ("code", "digits"),
    [("854231", "854231"), ("8542.31.00", "85423100"), (" 8471 30 00 00 ", "8471300000"), (854231, "854231")],
)
def test_hs_code_normalised(code, digits):
    record = parsed(DECL, hs_code=code)
    assert record.hs_code == digits
    assert record.hs6 == digits[:6]


@pytest.mark.parametrize("bad", ["12a456", "12345", "12345678901", "", 12345, 85423.1, "8542-31", True])
def test_hs_code_rejects(bad):
    error = rejected(DECL, hs_code=bad)
    if bad == "":
        assert error.key == "missing_field:hs_code"
    else:
        assert error.key == "invalid_field:hs_code"
        assert "6 to 10 digits" in error.message


def test_hs_code_message_names_value_and_expectation():
    assert rejected(DECL, hs_code="12a456").message == (
        "hs_code '12a456' must have 6 to 10 digits (dots and spaces allowed)."
    )


@pytest.mark.parametrize(("value", "expected"), [(0, 0.0), (12.5, 12.5), ("12.5", 12.5), (" 1e3 ", 1000.0)])
def test_value_accepts_numbers_and_numeric_strings(value, expected):
    assert parsed(DECL, value=value).value == expected


@pytest.mark.parametrize("bad", [-1, "-1", "abc", "1e999", True, "nan", [1]])
def test_value_rejects_negative_non_finite_and_non_numbers(bad):
    assert rejected(DECL, value=bad).key == "invalid_field:value"


def test_value_rejects_infinity_in_a_mapping():
    with pytest.raises(RejectError) as err:
        parse_mapping({**DECL, "value": float("inf")})
    assert err.value.key == "invalid_field:value"


def test_currency_default_case_and_unknown():
    assert parsed(DECL).currency == "USD"
    assert parsed(DECL, currency="eur").currency == "EUR"
    assert rejected(DECL, currency="XYZ").key == "unknown_currency:currency"
    assert rejected(DECL, currency="EURO").key == "invalid_field:currency"


def test_optional_fields():
    record = parsed(DECL, net_mass_kg="3.5", quantity=2, unit=" kg ", exporter="ACME", consignee="Too LLP")
    assert (record.net_mass_kg, record.quantity, record.unit, record.exporter, record.consignee) == (
        3.5,
        2.0,
        "kg",
        "ACME",
        "Too LLP",
    )
    blank = parsed(DECL, net_mass_kg="", unit="", origin=None)
    assert (blank.net_mass_kg, blank.unit, blank.origin) == (None, None, None)
    assert rejected(DECL, net_mass_kg=-0.5).key == "invalid_field:net_mass_kg"
    assert rejected(DECL, exporter=5).key == "invalid_field:exporter"


def test_missing_required_field():
    error = rejected(DECL, partner=...)
    assert error.key == "missing_field:partner"
    assert "partner is missing" in error.message
    assert rejected(DECL, value=None).key == "missing_field:value"


def test_mapping_accepts_python_values():
    record = parse_mapping({**DECL, "date": dt.date(2024, 1, 2), "value": Decimal("7.25")})
    assert (record.date, record.value) == (dt.date(2024, 1, 2), 7.25)
    assert parse_mapping({**DECL, "date": dt.datetime(2024, 1, 2, 15, 0)}).date == dt.date(2024, 1, 2)


def test_mapping_reads_huge_integers_like_json_does():
    record = parse_mapping({**DECL, "declaration_id": 2**70, "value": 10**30})
    assert (record.declaration_id, record.value) == (str(2**70), 1e30)
    assert record == parse_json_line(f'{{"declaration_id": {2**70}, "date": "2024-03-05", "reporter": "DE",'
                                     f' "partner": "KZ", "hs_code": "8542310000", "value": {10**30}}}')
    with pytest.raises(RejectError) as err:
        parse_mapping({**DECL, "value": 10**400})
    assert err.value.key == "invalid_field:value"
    with pytest.raises(RejectError) as err:
        parse_mapping({**DECL, "value": {1, 2}})
    assert err.value.key == "invalid_field:value"


# --- monthly statistics ------------------------------------------------------


def test_monthly_identity_and_month():
    record = parsed(STAT, flow="RE_IMPORT", hs_code="8542.31")
    assert record.identity == ("2024-01", "FR", "AM", "re-import", "854231")
    assert record.month == 2024 * 12


@pytest.mark.parametrize("bad", ["2024-13", "2024-1", "2024-01-05", 202401])
def test_period_rejects(bad):
    assert rejected(STAT, period=bad).key == "invalid_field:period"


def test_records_are_frozen_and_hashable():
    record = parsed(STAT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.value = 5  # type: ignore[misc]
    assert hash(record) == hash(parsed(STAT))
    assert len({record, parsed(STAT), parsed(STAT, value=11)}) == 2


def test_records_hold_no_instance_dict():
    # A replay holds every record; __slots__ keeps one at a few hundred bytes.
    assert not hasattr(parsed(DECL), "__dict__")
    assert not hasattr(parsed(STAT), "__dict__")


def test_to_dict_is_json_ready():
    record = parsed(DECL, date="2024-03-05T10:00:00Z", origin="cn")
    fields = record.to_dict()
    assert fields["date"] == "2024-03-05"
    assert fields["origin"] == "CN"
    assert list(fields) == [f.name for f in dataclasses.fields(Declaration)]
    assert json.loads(json.dumps(fields)) == fields


# --- whole-line rejects ------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'"text"', "not_an_object"),
        (b'{"declaration_id": "caf\xe9"}', "encoding"),
        ('{"period": "\ud800"}', "invalid_json"),
    ],
)
def test_line_level_rejects(line, reason):
    with pytest.raises(RejectError) as err:
        parse_json_line(line)
    assert err.value.reason == reason
    assert err.value.message.endswith(".")


def test_non_mapping_given_to_parse_mapping():
    with pytest.raises(RejectError) as err:
        parse_mapping([("period", "2024-01")])  # type: ignore[arg-type]
    assert err.value.reason == "not_an_object"


# --- schema ------------------------------------------------------------------


def test_shipped_schema_is_generated():
    # Regenerate: python -c "import json; from transitwatch.detectors.contract import json_schema;
    #   print(json.dumps(json_schema(), sort_keys=True, indent=2))" > detectors/data/input.schema.json
    assert SCHEMA_FILE.read_text(encoding="utf-8") == json.dumps(json_schema(), sort_keys=True, indent=2) + "\n"


def test_schema_validates_examples():
    validator = jsonschema.Draft202012Validator(json_schema())
    validator.check_schema(json_schema())
    validator.validate(DECL)
    validator.validate({**STAT, "flow": "Re_Export", "net_mass_kg": "12.5"})
    for bad in ({**DECL, "value": -1}, {**STAT, "hs_code": "12a456"}, {**DECL, "period": "2024-01"}, {"x": 1}):
        assert not validator.is_valid(bad), bad


# --- properties --------------------------------------------------------------

countries = st.sampled_from(["DE", "kz", "EL", "UK", "Am", "XX", "DEU", "", " ge", 7])
field_values = {
    "declaration_id": st.one_of(st.text(max_size=5), st.integers(-5, 10**6), st.none(), st.booleans()),
    "period": st.one_of(st.sampled_from(["2024-01", "2023-12", "2024-13", "", "24-01"]), st.none()),
    "date": st.one_of(st.dates().map(str), st.datetimes().map(dt.datetime.isoformat), st.text(max_size=4)),
    "reporter": countries,
    "partner": countries,
    "origin": countries,
    "flow": st.sampled_from(["export", "IMPORT", "re_export", "transit", "", None]),
    "hs_code": st.one_of(
        st.from_regex(r"\A[0-9][0-9. ]{4,12}[0-9]\Z"), st.integers(0, 10**11), st.text(max_size=8)
    ),
    "value": st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(-10, 10**12),
        st.floats(0, 1e12).map(str),
        st.text(max_size=4),
    ),
    "currency": st.sampled_from(["USD", "eur", "XYZ", "", "EURO"]),
    "net_mass_kg": st.one_of(st.none(), st.floats(-1, 1e9), st.just("")),
    "unit": st.one_of(st.none(), st.text(max_size=5)),
    "exporter": st.one_of(st.none(), st.text(max_size=10), st.integers(-(2**63), 2**63 - 1)),
    "extra": st.one_of(st.none(), st.text(max_size=5), st.lists(st.integers(-(2**63), 2**63 - 1), max_size=2)),
}
objects = st.fixed_dictionaries({}, optional=field_values)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects)
def test_json_line_and_mapping_agree(obj):
    json_result, mapping_result = both_ways(obj)
    assert json_result == mapping_result


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), objects.map(orjson.dumps), st.text(max_size=100)))
def test_any_input_gives_a_record_or_a_reject(line):
    try:
        record = parse_json_line(line)
    except RejectError as exc:
        assert exc.reason in {
            "invalid_json",
            "not_an_object",
            "unknown_kind",
            "ambiguous_kind",
            "missing_field",
            "invalid_field",
            "unknown_country",
            "unknown_currency",
            "encoding",
        }
        assert exc.message
    else:
        assert isinstance(record, (Declaration, MonthlyStat))


valid_declarations = st.builds(
    dict,
    declaration_id=st.one_of(st.text(min_size=1, max_size=8).filter(str.strip).map(str.strip), st.integers(0)),
    date=st.dates(),
    reporter=st.sampled_from(sorted(contract.COUNTRY_CODES)),
    partner=st.sampled_from(sorted(contract.COUNTRY_CODES)),
    flow=st.sampled_from(contract.FLOWS),
    hs_code=st.from_regex(r"\A[0-9]{6,10}\Z"),
    value=st.floats(0, 1e15),
    currency=st.sampled_from(sorted(contract.CURRENCY_CODES)),
    net_mass_kg=st.one_of(st.none(), st.floats(0, 1e9)),
    exporter=st.one_of(st.none(), st.text(min_size=1, max_size=10).filter(str.strip).map(str.strip)),
    origin=st.one_of(st.none(), st.sampled_from(["CN", "US", "TW"])),
)
valid_stats = st.builds(
    dict,
    period=st.dates().map(lambda d: f"{d.year:04d}-{d.month:02d}"),
    reporter=st.sampled_from(["DE", "FR", "PL"]),
    partner=st.sampled_from(["KZ", "KG", "AM", "GE"]),
    flow=st.sampled_from(contract.FLOWS),
    hs_code=st.from_regex(r"\A[0-9]{6,10}\Z"),
    value=st.floats(0, 1e15),
    currency=st.sampled_from(["EUR", "USD"]),
    quantity=st.one_of(st.none(), st.floats(0, 1e9)),
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(valid_declarations, valid_stats))
def test_valid_records_round_trip(fields):
    record = parse_mapping(fields)
    assert parse_json_line(orjson.dumps(record.to_dict())) == record
    assert parse_json_line(json.dumps(record.to_dict())) == record
    assert parse_mapping(record.to_dict()) == record


def test_text_that_is_not_unicode_is_an_encoding_reject():
    """Found by hypothesis: a lone surrogate in a decoded mapping once escaped as a TypeError."""
    with pytest.raises(RejectError) as caught:
        parse_mapping({"declaration_id": "\ud800", "date": "2024-01-02", "reporter": "DE",
                       "partner": "KZ", "hs_code": "854231", "value": 1})
    assert caught.value.reason == "encoding" and caught.value.field == "declaration_id"
