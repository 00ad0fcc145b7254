"""Records carried in goods bundles are rebuilt without a second validation
(``transitwatch.detectors.contract.rebuild``): the rebuilt record equals what ``parse_mapping`` gives,
for every valid record, after the JSON round trip a bundle makes."""

from __future__ import annotations

import dataclasses
import datetime as dt

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transitwatch.detectors.contract import COUNTRY_ALIASES, COUNTRY_CODES, CURRENCY_CODES, Declaration, MonthlyStat
from transitwatch.detectors.contract import parse_json_line, parse_mapping, rebuild
from transitwatch.detectors.errors import RejectError

COUNTRIES = sorted(COUNTRY_CODES | set(COUNTRY_ALIASES))
CURRENCIES = sorted(CURRENCY_CODES)


def any_case(codes: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(codes).flatmap(
        lambda code: st.tuples(*[st.sampled_from([c.lower(), c.upper()]) for c in code]).map("".join))


def padded(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(["", " "]), text, st.sampled_from(["", " "])).map("".join)


hs_codes = st.one_of(
    st.from_regex(r"\A[0-9]{6,10}\Z"),
    st.from_regex(r"\A[0-9]{4}\.[0-9]{2}( [0-9]{2})?\Z"),
    st.integers(min_value=100_000, max_value=9_999_999_999),
)
amounts = st.one_of(
    st.floats(min_value=0, max_value=1e15, allow_nan=False, allow_infinity=False),
    st.integers(min_value=0, max_value=10**12),
    st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False).map(str),
)
texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
optional = {
    "flow": padded(st.sampled_from(["export", "Import", "re-export", "RE_IMPORT"])),
    "currency": any_case(CURRENCIES),
    "net_mass_kg": st.one_of(st.none(), amounts),
    "quantity": st.one_of(st.none(), amounts),
}
common = {"reporter": padded(any_case(COUNTRIES)), "partner": any_case(COUNTRIES), "hs_code": hs_codes,
          "value": amounts}
declarations = st.fixed_dictionaries(
    {**common, "declaration_id": st.one_of(padded(st.from_regex(r"\A[A-Za-z0-9-]{1,12}\Z")), st.integers()),
     "date": st.one_of(st.dates(dt.date(1990, 1, 1), dt.date(2040, 12, 31)).map(str),
                       st.datetimes(dt.datetime(1990, 1, 1), dt.datetime(2040, 12, 31)).map(dt.datetime.isoformat))},
    optional={**optional, "unit": texts, "exporter": texts, "consignee": texts, "origin": any_case(COUNTRIES)},
)
statistics = st.fixed_dictionaries(
    {**common, "period": st.tuples(st.integers(1990, 2040), st.integers(1, 12)).map(lambda t: f"{t[0]}-{t[1]:02d}")},
    optional=optional,
)


def valid(row: dict) -> Declaration | MonthlyStat:
    try:
        return parse_mapping(row)
    except RejectError as exc:  # the strategies aim at valid rows; a miss is a strategy bug
        pytest.fail(f"strategy produced an invalid row {row!r}: {exc}")


@settings(max_examples=400, deadline=None)
@given(st.one_of(declarations, statistics))
def test_trusted_rebuild_equals_parse_mapping_for_every_valid_record(row):
    rec = valid(row)
    carried = orjson.loads(orjson.dumps(rec.to_dict()))  # as in a goods bundle or a state log
    again = rebuild(carried)
    assert again == parse_mapping(carried) == rec
    assert type(again) is type(rec)
    for f in dataclasses.fields(rec):  # equal and of the same type, field by field (1 == 1.0 would hide it)
        assert type(getattr(again, f.name)) is type(getattr(rec, f.name)), f.name
    assert again.to_dict() == rec.to_dict() and hash(again) == hash(rec)


def test_to_dict_names_every_field_in_declaration_order():
    rec = parse_json_line(b'{"declaration_id": "a", "date": "2024-02-29", "reporter": "DE", "partner": "KG",'
                          b' "hs_code": "854231", "value": 1, "origin": "cn"}')
    assert list(rec.to_dict()) == [f.name for f in dataclasses.fields(Declaration)]
    assert rec.to_dict()["date"] == "2024-02-29" and rec.to_dict()["origin"] == "CN"


def test_rebuild_reads_a_monthly_statistic_and_says_which_field_is_missing():
    stat = parse_mapping({"period": "2022-03", "reporter": "DE", "partner": "AM", "hs_code": "854232", "value": 5})
    assert rebuild(stat.to_dict()) == stat and isinstance(rebuild(stat.to_dict()), MonthlyStat)
    broken = {k: v for k, v in stat.to_dict().items() if k != "hs_code"}
    with pytest.raises(KeyError, match="hs_code"):
        rebuild(broken)
