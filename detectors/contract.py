"""The input contract: what one input line may say, and how it is read.

Two kinds of line share one stream: a customs *declaration* (one shipment,
keyed by ``declaration_id``) and a *monthly statistic* (Comtrade / Comext
style, keyed by ``period``). Both are frozen, slotted pydantic dataclasses
(small, since a replay may hold a million of them) whose values are normalised
(upper-case country and currency codes, digits-only HS codes, lower-case flow).
Every failure is a :class:`~transitwatch.detectors.errors.RejectError` with a stable
``reason`` code; see ``docs/input-format.md``.

Speed matters: a replay reads hundreds of thousands of lines a second. The
common, well-formed line is validated entirely inside pydantic-core (Rust):
each field is a left-to-right union whose first member is the strict,
already-normal form (an exact ``Literal`` of country codes, a digits-only
pattern ...), and only the lenient second member (lower case, aliases, dotted
HS codes, numeric strings) calls into Python. A line that fails takes a slow
path that decodes it with orjson to say precisely what was wrong.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Optional, Union

import orjson
import pycountry
from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)
from pydantic.dataclasses import dataclass
from pydantic.json_schema import models_json_schema
from pydantic_core import PydanticCustomError

from transitwatch.detectors.errors import RejectError

__all__ = [
    "COUNTRY_ALIASES",
    "COUNTRY_CODES",
    "CURRENCY_CODES",
    "FLOWS",
    "Declaration",
    "MonthlyStat",
    "Record",
    "json_schema",
    "parse_json_line",
    "parse_mapping",
    "rebuild",
]

COUNTRY_CODES: frozenset[str] = frozenset(c.alpha_2 for c in pycountry.countries)
#: Eurostat writes Greece as EL and the United Kingdom as UK.
COUNTRY_ALIASES: Mapping[str, str] = {"EL": "GR", "UK": "GB"}
CURRENCY_CODES: frozenset[str] = frozenset(c.alpha_3 for c in pycountry.currencies)
FLOWS: tuple[str, ...] = ("export", "import", "re-export", "re-import")

_NON_DIGIT = re.compile(r"[^0-9]")
_NUMERIC_PATTERN = r"^\s*\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*$"
_HS_LOOSE_PATTERN = r"^\s*(?:[0-9][. ]*){5,9}[0-9]\s*$"
_MAX_SHOWN = 60
# ECMA-262 has no inline (?i), so the schema spells the case out.
_FLOW_SCHEMA_PATTERN = r"^\s*(?:[Rr][Ee][-_])?(?:[Ee][Xx][Pp][Oo][Rr][Tt]|[Ii][Mm][Pp][Oo][Rr][Tt])\s*$"
_DESCRIPTIONS = {
    "Declaration": "One customs declaration (a shipment), identified by declaration_id.",
    "MonthlyStat": "One monthly trade statistic (Comtrade / Comext style), identified by "
    "(period, reporter, partner, flow, hs_code); a later line with the same identity revises it.",
}


# --- lenient (slow) members: reached only when the strict form did not match ---


def _country(value: str) -> str:
    code = value.upper()
    code = COUNTRY_ALIASES.get(code, code)
    if code not in COUNTRY_CODES:
        raise PydanticCustomError("unknown_country", "not an ISO 3166-1 alpha-2 code")
    return code


def _currency(value: str) -> str:
    code = value.upper()
    if code not in CURRENCY_CODES:
        raise PydanticCustomError("unknown_currency", "not an ISO 4217 code")
    return code


def _flow(value: str) -> str:
    return value.lower().replace("_", "-")


def _hs_digits(value: str) -> str:
    return _NON_DIGIT.sub("", value)


def _hs_from_int(value: int) -> str:
    digits = str(value)
    if not 6 <= len(digits) <= 10:
        raise PydanticCustomError("hs_length", "must have 6 to 10 digits")
    return digits


def _amount(value: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise PydanticCustomError("finite_number", "must be finite")
    return number


def _datetime_date(value: _dt.datetime) -> _dt.date:
    return value.date()


# --- field types: strict member first (pure Rust), lenient member second ---

_Country = Union[
    Literal[tuple(sorted(COUNTRY_CODES))],  # type: ignore[valid-type]
    Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z]{2}$"), AfterValidator(_country)],
]
_COUNTRY_SCHEMA = {"type": "string", "pattern": "^\\s*[A-Za-z]{2}\\s*$"}
_Currency = Union[
    Literal[tuple(sorted(CURRENCY_CODES))],  # type: ignore[valid-type]
    Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z]{3}$"), AfterValidator(_currency)],
]
_Flow = Union[
    Literal["export", "import", "re-export", "re-import"],
    Annotated[
        str,
        StringConstraints(strip_whitespace=True, pattern=r"^(?i:export|import|re[-_]export|re[-_]import)$"),
        AfterValidator(_flow),
    ],
]
_HsCode = Union[
    Annotated[str, StringConstraints(pattern=r"^[0-9]{6,10}$")],
    Annotated[str, StringConstraints(pattern=_HS_LOOSE_PATTERN), AfterValidator(_hs_digits)],
    Annotated[int, Strict(), Field(ge=0), AfterValidator(_hs_from_int)],
]
_Amount = Union[
    Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)],
    Annotated[str, StringConstraints(pattern=_NUMERIC_PATTERN), AfterValidator(_amount)],
]
_AMOUNT_SCHEMA = {
    "anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": _NUMERIC_PATTERN}]
}
_DeclarationId = Union[
    Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)],
    Annotated[int, Strict(), AfterValidator(str)],
]
_Date = Union[
    Annotated[_dt.date, Strict()],
    Annotated[_dt.datetime, Strict(), AfterValidator(_datetime_date)],
]
_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
_Period = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{4}-(?:0[1-9]|1[0-2])$")]


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_L2R = "left_to_right"
_COUNTRY_TEXT = "ISO 3166-1 alpha-2 code, any case; Eurostat's EL and UK are read as GR and GB"


def _country_field(what: str, default: Any = ...) -> Any:
    return Field(default, union_mode=_L2R, description=f"{what}: {_COUNTRY_TEXT}.")


# Slotted dataclasses, not BaseModel: a replay holds every record, and one takes about 250 bytes
# with its values instead of about 1,400 (no __dict__, no fields-set). Construction is by keyword.
@dataclass(frozen=True, slots=True, kw_only=True, config=ConfigDict(extra="ignore"))
class _Line:
    reporter: Annotated[_Country, WithJsonSchema(_COUNTRY_SCHEMA)] = _country_field(
        "The declaring (reporting) country"
    )
    partner: Annotated[_Country, WithJsonSchema(_COUNTRY_SCHEMA)] = _country_field(
        "The partner country (destination of an export)"
    )
    flow: Annotated[
        _Flow,
        WithJsonSchema(
            {"type": "string", "pattern": _FLOW_SCHEMA_PATTERN, "default": "export"}
        ),
    ] = Field(
        "export",
        union_mode=_L2R,
        description="Trade flow: export, import, re-export or re-import; any case, '_' is read as '-'.",
    )
    hs_code: Annotated[
        _HsCode,
        WithJsonSchema(
            {"anyOf": [{"type": "string", "pattern": _HS_LOOSE_PATTERN}, {"type": "integer", "minimum": 100000, "maximum": 9999999999}]}
        ),
    ] = Field(
        union_mode=_L2R,
        description="Harmonized System code, 6 to 10 digits; dots and spaces are removed; "
        "a JSON integer is read as its decimal digits.",
    )
    value: Annotated[_Amount, WithJsonSchema(_AMOUNT_SCHEMA)] = Field(
        union_mode=_L2R, description="Customs value, a finite number >= 0 (a numeric string is accepted)."
    )
    currency: Annotated[_Currency, WithJsonSchema({"type": "string", "pattern": "^\\s*[A-Za-z]{3}\\s*$"})] = Field(
        "USD", union_mode=_L2R, description="ISO 4217 alphabetic currency code of value, any case."
    )
    net_mass_kg: Annotated[Optional[_Amount], WithJsonSchema(_nullable(_AMOUNT_SCHEMA))] = Field(
        None, union_mode=_L2R, description="Net mass in kilograms, >= 0 (optional)."
    )
    quantity: Annotated[Optional[_Amount], WithJsonSchema(_nullable(_AMOUNT_SCHEMA))] = Field(
        None, union_mode=_L2R, description="Quantity in the supplementary unit, >= 0 (optional)."
    )

    @property
    def hs6(self) -> str:
        """The six-digit HS subheading: the first six digits of ``hs_code``."""
        return self.hs_code[:6]

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (dates as ISO strings).

        It reads back to an equal record through :func:`parse_mapping`, or
        through :func:`parse_json_line` once encoded as JSON, or, without
        validating it again, through :func:`rebuild`.
        """
        out = {}
        for name in _field_names(type(self)):
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, _dt.date) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _Line:
        """The record whose :meth:`to_dict` gave ``data``, rebuilt without validation.

        Only for dicts that ``to_dict`` produced (trusted: the service's own bundles
        and state logs); anything else goes through :func:`parse_mapping`. A missing
        field raises ``KeyError``.
        """
        self = object.__new__(cls)
        # the slots' own setters: the dataclass is frozen, and validating is what this skips
        for name, set_slot, is_date in _slot_setters(cls):
            value = data[name]
            set_slot(self, _dt.date.fromisoformat(value) if is_date else value)
        return self


@dataclass(frozen=True, slots=True, kw_only=True, config=ConfigDict(extra="ignore", title="Declaration"))
class Declaration(_Line):
    """One customs declaration (a shipment), normalised.

    Examples
    --------
    >>> d = parse_json_line(b'{"declaration_id": 17, "date": "2024-03-05", "reporter": "de",'
    ...                     b' "partner": "KZ", "hs_code": "8542.31", "value": "1200.5"}')
    >>> d.declaration_id, d.reporter, d.flow, d.hs_code, d.hs6, d.value, d.currency
    ('17', 'DE', 'export', '854231', '854231', 1200.5, 'USD')
    >>> d.month == 2024 * 12 + 2
    True
    >>> d.to_dict()["date"]
    '2024-03-05'
    """

    declaration_id: Annotated[
        _DeclarationId,
        WithJsonSchema({"anyOf": [{"type": "string", "pattern": "\\S"}, {"type": "integer"}]}),
    ] = Field(union_mode=_L2R, description="Identifier of the declaration; an integer is turned into a string.")
    date: Annotated[
        _Date, WithJsonSchema({"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]})
    ] = Field(
        union_mode=_L2R,
        description="Date of export clearance, ISO YYYY-MM-DD; an ISO datetime is accepted and its date kept.",
    )
    unit: Optional[_Text] = Field(None, description="Supplementary unit of quantity, free text (optional).")
    exporter: Optional[_Text] = Field(None, description="Exporter name or identifier (optional).")
    consignee: Optional[_Text] = Field(None, description="Consignee name or identifier (optional).")
    origin: Annotated[Optional[_Country], WithJsonSchema(_nullable(_COUNTRY_SCHEMA))] = _country_field(
        "Country of origin of the goods (optional)", None
    )

    @property
    def month(self) -> int:
        """Months since year 0: ``year * 12 + month - 1`` of ``date``."""
        return self.date.year * 12 + self.date.month - 1


@dataclass(frozen=True, slots=True, kw_only=True, config=ConfigDict(extra="ignore", title="MonthlyStat"))
class MonthlyStat(_Line):
    """One monthly trade statistic (Comtrade / Comext style), normalised.

    Examples
    --------
    >>> s = parse_mapping({"period": "2024-01", "reporter": "EL", "partner": "am",
    ...                    "flow": "Re_Export", "hs_code": "854231", "value": "10",
    ...                    "currency": "eur", "net_mass_kg": ""})
    >>> s.identity
    ('2024-01', 'GR', 'AM', 're-export', '854231')
    >>> s.currency, s.net_mass_kg, s.month == 2024 * 12
    ('EUR', None, True)
    """

    period: _Period = Field(description="Reference month, YYYY-MM.")

    @property
    def month(self) -> int:
        """Months since year 0: ``year * 12 + month - 1`` of ``period``."""
        return int(self.period[:4]) * 12 + int(self.period[5:7]) - 1

    @property
    def identity(self) -> tuple[str, str, str, str, str]:
        """``(period, reporter, partner, flow, hs_code)``: a later line with it revises an earlier one."""
        return (self.period, self.reporter, self.partner, self.flow, self.hs_code)


Record = Union[Declaration, MonthlyStat]


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


@functools.cache
def _slot_setters(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    """(name, the slot's ``__set__``, whether ``to_dict`` writes it as an ISO date) per field."""
    return tuple((name, getattr(cls, name).__set__, name == "date") for name in _field_names(cls))


def rebuild(data: Mapping[str, Any]) -> Record:
    """A record from its own ``to_dict()`` output (JSON round trips allowed), not validated again.

    The service validates each input line once, at ingest, and carries the
    normalised record on as ``to_dict()``; this reads it back at a fraction of
    :func:`parse_mapping`'s cost and gives an equal record. Never use it on
    input from outside.

    Examples
    --------
    >>> rec = parse_json_line(b'{"declaration_id": 7, "date": "2024-03-05", "reporter": "de",'
    ...                       b' "partner": "KZ", "hs_code": "8542.31", "value": "12.5"}')
    >>> rebuild(orjson.loads(orjson.dumps(rec.to_dict()))) == rec
    True
    """
    return (Declaration if "declaration_id" in data else MonthlyStat).from_dict(data)

# --- parsing -----------------------------------------------------------------

_DECL_VALIDATE = Declaration.__pydantic_validator__.validate_json
_STAT_VALIDATE = MonthlyStat.__pydantic_validator__.validate_json
_DECL_KEY, _STAT_KEY = '"declaration_id"', '"period"'
_DECL_FIELDS = tuple(f.name for f in dataclasses.fields(Declaration))
_STAT_FIELDS = tuple(f.name for f in dataclasses.fields(MonthlyStat))

_COUNTRY_FIELDS = frozenset({"reporter", "partner", "origin"})
_EXPECTED = {
    "declaration_id": "must be a non-empty string or an integer",
    "date": "must be an ISO date YYYY-MM-DD (an ISO datetime is accepted)",
    "period": "must be a month written YYYY-MM, e.g. '2024-03'",
    "reporter": "must be a two-letter ISO 3166-1 alpha-2 country code, e.g. 'KZ'",
    "flow": "must be one of export, import, re-export, re-import",
    "hs_code": "must have 6 to 10 digits (dots and spaces allowed)",
    "value": "must be a finite number >= 0 (a numeric string is accepted)",
    "currency": "must be a three-letter ISO 4217 currency code, e.g. 'USD'",
    "unit": "must be a string",
}
for _name in ("partner", "origin"):
    _EXPECTED[_name] = _EXPECTED["reporter"]
for _name in ("net_mass_kg", "quantity"):
    _EXPECTED[_name] = _EXPECTED["value"]
for _name in ("exporter", "consignee"):
    _EXPECTED[_name] = _EXPECTED["unit"]


def parse_json_line(line: bytes | str) -> Record:
    """Parse one JSON Lines line into a :data:`Record`.

    Parameters
    ----------
    line : bytes or str
        One JSON object, UTF-8 encoded when bytes. Surrounding whitespace
        (the trailing newline) is allowed.

    Returns
    -------
    Declaration or MonthlyStat
        The normalised record; the kind follows from ``declaration_id`` or
        ``period``.

    Raises
    ------
    RejectError
        For any line that breaks the contract; ``reason`` says why.

    Examples
    --------
    >>> parse_json_line('{"period": "2024-01", "reporter": "DE", "partner": "KZ",'
    ...                 ' "hs_code": 854231, "value": 10}').identity
    ('2024-01', 'DE', 'KZ', 'export', '854231')
    >>> parse_json_line(b'{"declaration_id": "a", "date": "2024-01-02", "reporter": "DE",'
    ...                 b' "partner": "KZ", "hs_code": "12a456", "value": 1}')
    Traceback (most recent call last):
    ...
    transitwatch.detectors.errors.RejectError: hs_code '12a456' must have 6 to 10 digits (dots and spaces allowed).
    """
    if not isinstance(line, str):
        # Decoding once and searching the str is several times cheaper than
        # searching bytes: `needle in bytes` first tries the needle as an int
        # and swallows the TypeError, about 150 ns a test.
        try:
            line = line.decode() if isinstance(line, bytes) else str(line, "utf-8")
        except UnicodeDecodeError:
            return _parse_slowly(line)  # which says where the bad byte is
    is_decl, is_stat = _DECL_KEY in line, _STAT_KEY in line
    # The substring test is only a hint; a key spelled with \u escapes could hide
    # the other kind, so such lines are checked properly below. (A one-character
    # search is a fast scan; most lines have no backslash at all.)
    if is_decl is not is_stat and not ("\\" in line and "\\u" in line):
        try:
            return _DECL_VALIDATE(line) if is_decl else _STAT_VALIDATE(line)
        except ValueError:  # ValidationError, or a str pydantic cannot encode
            pass
    return _parse_slowly(line)


def parse_mapping(row: Mapping[str, Any]) -> Record:
    """Parse a CSV row or an already-decoded object into a :data:`Record`.

    ``None`` and blank strings mean "absent" (a CSV empty cell), so defaults
    apply. The values go through the same validator as :func:`parse_json_line`,
    so a mapping and its JSON text give the same outcome.

    Parameters
    ----------
    row : Mapping[str, Any]
        Field name to value; unknown fields are ignored.

    Returns
    -------
    Declaration or MonthlyStat

    Raises
    ------
    RejectError
        For any row that breaks the contract.

    Examples
    --------
    >>> parse_mapping({"declaration_id": "X1", "date": "2024-05-31T23:10:00Z", "reporter": "uk",
    ...                "partner": "GE", "hs_code": "8471 30 00", "value": "7", "unit": ""}).date
    datetime.date(2024, 5, 31)
    >>> parse_mapping({"declaration_id": "", "period": "2024-01"})
    Traceback (most recent call last):
    ...
    transitwatch.detectors.errors.RejectError: period is present, so this is a monthly statistic line, but reporter is missing.
    """
    if not isinstance(row, Mapping):
        raise RejectError("not_an_object", f"A line must be a JSON object, not {type(row).__name__}.")
    present = {k: v for k, v in row.items() if v is not None and not (isinstance(v, str) and not v.strip())}
    has_decl, has_stat = "declaration_id" in present, "period" in present
    if has_decl and has_stat:
        raise RejectError(
            "ambiguous_kind",
            "Line has both declaration_id and period; give declaration_id for a declaration "
            "or period for a monthly statistic, not both.",
        )
    if not (has_decl or has_stat):
        raise RejectError(
            "unknown_kind",
            "Line has neither declaration_id (a declaration) nor period (a monthly statistic).",
        )
    fields, validate = (_DECL_FIELDS, _DECL_VALIDATE) if has_decl else (_STAT_FIELDS, _STAT_VALIDATE)
    data = {name: present[name] for name in fields if name in present}
    try:
        payload = orjson.dumps(data, default=str)
    except (TypeError, orjson.JSONEncodeError):
        payload = _dump_or_reject(data)
    try:
        return validate(payload)
    except ValidationError as exc:
        raise _reject(exc, data, "declaration" if has_decl else "monthly statistic") from None


def _parse_slowly(line: bytes | str) -> Record:
    if isinstance(line, (bytes, bytearray, memoryview)):
        try:
            line = bytes(line).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RejectError(
                "encoding",
                f"Line is not valid UTF-8 (bad byte at offset {exc.start}); write the file as UTF-8.",
            ) from None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise RejectError("invalid_json", f"Line is not valid JSON ({exc}); each line must be one JSON object.") from None
    if not isinstance(obj, dict):
        raise RejectError("not_an_object", f"A line must be a JSON object, not a JSON {_json_type(obj)}.")
    return parse_mapping(obj)


def _dump_or_reject(data: dict[str, Any]) -> bytes:
    """Encode a mapping orjson could not: integers beyond 64 bits, or values of no JSON type."""
    fixed = {}
    for name, value in data.items():
        try:
            orjson.dumps(value, default=str)
        except (TypeError, orjson.JSONEncodeError):
            if isinstance(value, str):  # lone surrogates: text that is not Unicode
                raise RejectError(
                    "encoding", f"{name} is not valid Unicode text; write the file as UTF-8.", field=name
                ) from None
            try:
                # A JSON parser gives a huge integer exactly, so read it as the validator would.
                value = str(value) if name == "declaration_id" else float(value)
            except (TypeError, ValueError, OverflowError):
                raise RejectError(
                    "invalid_field", f"{name} {_show(value)} {_EXPECTED[name]}.", field=name
                ) from None
        fixed[name] = value
    return orjson.dumps(fixed, default=str)


def _reject(exc: ValidationError, data: Mapping[str, Any], kind: str) -> RejectError:
    error = exc.errors(include_url=False, include_context=False, include_input=False)[0]
    name = str(error["loc"][0])
    if error["type"] == "missing":
        key = "declaration_id" if kind == "declaration" else "period"
        return RejectError(
            "missing_field", f"{key} is present, so this is a {kind} line, but {name} is missing.", field=name
        )
    value = data[name]
    text = value.strip().upper() if isinstance(value, str) else None
    if name in _COUNTRY_FIELDS and text is not None and len(text) == 2 and text.isalpha():
        return RejectError(
            "unknown_country",
            f"{name} {_show(value)} is not an ISO 3166-1 alpha-2 country code; "
            "use one such as 'KZ' (EL and UK are read as GR and GB).",
            field=name,
        )
    if name == "currency" and text is not None and len(text) == 3 and text.isalpha():
        return RejectError(
            "unknown_currency",
            f"currency {_show(value)} is not an ISO 4217 currency code; use one such as 'USD' or 'EUR'.",
            field=name,
        )
    return RejectError("invalid_field", f"{name} {_show(value)} {_EXPECTED[name]}.", field=name)


def _show(value: Any) -> str:
    try:
        text = repr(value) if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _json_type(obj: Any) -> str:
    if isinstance(obj, list):
        return "array"
    if isinstance(obj, str):
        return "string"
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "boolean"
    return "number"


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one input line, either kind.

    The shipped ``detectors/data/input.schema.json`` is this, written with
    sorted keys and an indent of 2.

    Returns
    -------
    dict
        A schema whose top level is ``oneOf`` a declaration and a monthly
        statistic.

    Examples
    --------
    >>> schema = json_schema()
    >>> [ref["$ref"] for ref in schema["oneOf"]]
    ['#/$defs/Declaration', '#/$defs/MonthlyStat']
    >>> schema["$defs"]["MonthlyStat"]["required"]
    ['reporter', 'partner', 'hs_code', 'value', 'period']
    """
    _, defs = models_json_schema(
        [(Declaration, "validation"), (MonthlyStat, "validation")], ref_template="#/$defs/{model}"
    )
    for name, text in _DESCRIPTIONS.items():
        defs["$defs"][name]["description"] = text
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "transitwatch input line",
        "description": "One JSON Lines line (or CSV row): a customs declaration (has declaration_id) "
        "or a monthly trade statistic (has period), never both. Unknown fields are ignored. "
        "See docs/input-format.md.",
        "oneOf": [{"$ref": "#/$defs/Declaration"}, {"$ref": "#/$defs/MonthlyStat"}],
        **defs,
    }
