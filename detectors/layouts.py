"""The layouts of the files analysts have, turned into the input contract's columns.

A *layout* names the columns of a table (Eurostat Comext bulk files, UN Comtrade
exports, transitwatch's own columns, or any table with a column mapping in ``[input]``)
and how their values become the contract's (:mod:`transitwatch.detectors.contract`): Eurostat's
country codes, Comtrade's ISO3 codes, flow codes, ``YYYYMM`` periods, decimal commas.
It works on whole Arrow columns of strings at once (a few hundred distinct values per
column, each looked at once), never row by row, and returns the contract's columns
for :func:`transitwatch.detectors.arrow.split_table` and the rows it sets aside, each with a
:class:`~transitwatch.detectors.errors.RejectError` whose reason says why (a confidential product
code, an aggregate partner, a period that is a year): nothing is dropped silently.

Statistics tables are not declarations: a Comtrade or Comext file can hold several
rows of one lane and month (one per mode of transport, customs procedure, statistical
regime) and aggregate rows (HS4 totals above their HS6 rows). The contract treats two
statistics of one identity as a revision (the later replaces the earlier), so a layout
that ``adds_up`` is read whole: :func:`set_aside_aggregates` rejects the aggregate rows
whose finer rows are there (and aggregate rows that have none: transitwatch watches HS6
subheadings), and :func:`add_up` sums the remaining rows of one identity into one record
before the records go on.

Also here, pure and property-tested: :func:`sniff_delimiter` and :func:`sniff_decimal`,
and :class:`ReaderParams`, the reading keys of ``[input]``. pyarrow is imported on first
use, so ``import detectors`` does not need it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from transitwatch.detectors.contract import COUNTRY_ALIASES, COUNTRY_CODES, CURRENCY_CODES
from transitwatch.detectors.errors import InvalidParameterError, RejectError
from transitwatch.detectors.formats import CONTAINERS, FORMATS

__all__ = [
    "CONTAINERS", "FORMATS", "LAYOUTS", "Layout", "MissingColumnsError", "Prepared", "ReaderParams",
    "add_up", "detect_layout", "prepare", "set_aside_aggregates", "sniff_decimal", "sniff_delimiter",
]

DELIMITERS = (",", ";", "\t", "|")
CONTRACT_FIELDS = (
    "declaration_id", "date", "period", "reporter", "partner", "flow", "hs_code", "value", "currency",
    "net_mass_kg", "quantity", "unit", "exporter", "consignee", "origin",
)
AMOUNTS = ("value", "net_mass_kg", "quantity")


class MissingColumnsError(RejectError):
    """A file read with a layout lacks columns the layout needs: the whole file is unreadable."""


# --- [input] reading keys -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ReaderParams:
    """How input files are read: the reading keys of ``[input]``.

    Parameters
    ----------
    format : str
        ``auto`` (detect the container from the name or first bytes, the layout from the
        header), ``jsonl``, ``csv`` or ``parquet`` (transitwatch's columns, or those of
        ``columns``), or a layout: ``comext``, ``comext-extract``, ``comtrade``,
        ``comtrade-legacy``.
    columns : mapping of str to str
        Contract field -> the file's column (``[input.columns]``); fields not named keep
        their own name.
    delimiter : str
        ``auto`` (the most frequent of ``, ; TAB |`` in the header) or one of them.
    decimal : str
        ``auto`` (``,`` when the first rows' amounts are written with decimal commas and
        none with a point), ``.`` or ``,``.
    encoding : str
        A Python codec name; the file is read as UTF-8 after decoding with it.
    currency : str
        The currency of ``value`` where the file has no currency column ("" : the
        layout's, EUR for Comext, USD for Comtrade and the contract's default).
    add_up : bool
        Whether rows of one lane and month add up (one per transport mode, say) instead
        of revising each other, for the ``csv`` / ``parquet`` formats; the Comext and
        Comtrade layouts always add up.

    Examples
    --------
    >>> ReaderParams(delimiter=";", decimal=",").delimiter
    ';'
    >>> ReaderParams(columns={"value": "Wert"}).columns["value"]
    'Wert'
    >>> ReaderParams(columns={"amount": "Wert"})
    Traceback (most recent call last):
    ...
    transitwatch.detectors.errors.InvalidParameterError: invalid parameter input.columns.amount='Wert': expected a
    contract field: declaration_id, date, period, reporter, partner, flow, hs_code, value, currency, net_mass_kg,
    quantity, unit, exporter, consignee, origin
    """

    format: str = "auto"
    columns: Mapping[str, str] = field(default_factory=dict)
    delimiter: str = "auto"
    decimal: str = "auto"
    encoding: str = "utf-8"
    currency: str = ""
    add_up: bool = False

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise InvalidParameterError("input.format", self.format, f"one of {', '.join(FORMATS)}")
        if not isinstance(self.columns, Mapping):
            raise InvalidParameterError("input.columns", self.columns, "a table of field = \"column\"")
        seen: dict[str, str] = {}
        for name, column in self.columns.items():
            if name not in CONTRACT_FIELDS:
                raise InvalidParameterError(f"input.columns.{name}", column,
                                            f"a contract field: {', '.join(CONTRACT_FIELDS)}")
            if not isinstance(column, str) or not column.strip():
                raise InvalidParameterError(f"input.columns.{name}", column, "the name of a column of the file")
            if column in seen:
                raise InvalidParameterError(f"input.columns.{name}", column,
                                            f"a column not already given to {seen[column]}")
            seen[column] = name
        if self.delimiter != "auto" and self.delimiter not in DELIMITERS:
            raise InvalidParameterError("input.delimiter", self.delimiter, '"auto", ",", ";", "\\t" or "|"')
        if self.decimal not in ("auto", ".", ","):
            raise InvalidParameterError("input.decimal", self.decimal, '"auto", "." or ","')
        if self.decimal == "," and self.delimiter == ",":
            raise InvalidParameterError("input.decimal", self.decimal,
                                        'a decimal mark other than the delimiter: set delimiter = ";" as well')
        try:
            "".encode(self.encoding)
        except (LookupError, TypeError):
            raise InvalidParameterError("input.encoding", self.encoding,
                                        'a Python codec name, e.g. "utf-8", "cp1252" or "latin-1"') from None
        if self.currency and self.currency.upper() not in CURRENCY_CODES:
            raise InvalidParameterError("input.currency", self.currency, 'an ISO 4217 code such as "EUR", or ""')
        if not isinstance(self.add_up, bool):
            raise InvalidParameterError("input.add_up", self.add_up, "true or false")


# --- sniffing --------------------------------------------------------------------------------

_COMMA_NUMBER = re.compile(r"^\s*[0-9]{1,3}(?:[.\u00a0 ][0-9]{3})*,[0-9]+\s*$|^\s*[0-9]+,[0-9]+\s*$")
_POINT_NUMBER = re.compile(r"^\s*[0-9]+\.[0-9]+\s*$|^\s*[0-9]{1,3}(?:,[0-9]{3})+\.[0-9]+\s*$")


def sniff_delimiter(header: str) -> str:
    """The delimiter of a CSV header line: the most frequent of ``, ; TAB |`` outside
    quotes (``,`` when none is there, or on a tie with it).

    Examples
    --------
    >>> sniff_delimiter("period;reporter;partner;hs_code;value"), sniff_delimiter('"a;b",c')
    (';', ',')
    >>> sniff_delimiter("value")
    ','
    """
    outside = re.sub(r'"[^"]*"', "", header)
    counts = {d: outside.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] > counts[","] else ","


def sniff_decimal(rows: Sequence[Sequence[str]]) -> str:
    """``,`` when some cell of the sample is a number with a decimal comma (``1234,5``,
    ``1.234,5``) and none a number with a decimal point; else ``.``.

    Examples
    --------
    >>> sniff_decimal([["2024-01", "DE", "1234,50"], ["2024-02", "DE", "7"]])
    ','
    >>> sniff_decimal([["1234,50", "1.5"]]), sniff_decimal([["7", "DE"]])
    ('.', '.')
    """
    comma = point = False
    for row in rows:
        for cell in row:
            comma = comma or bool(_COMMA_NUMBER.match(cell))
            point = point or bool(_POINT_NUMBER.match(cell))
    return "," if comma and not point else "."


def sample_rows(text: str, delimiter: str, limit: int = 50) -> list[list[str]]:
    """The first rows after the header of a CSV text, for :func:`sniff_decimal`."""
    lines = [line for line in text.splitlines() if line.strip()][1 : limit + 1]
    try:
        return list(csv.reader(lines, delimiter=delimiter))
    except csv.Error:
        return []


# --- layouts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """A table layout: its columns, how they are read, and whether its rows add up.

    ``columns``: contract field -> source column (found whatever its case);
    ``required``: the source columns a file must have; ``signature``: the columns that
    identify the layout in a header; ``convert``: field -> a function of one distinct
    value giving the contract's value or a :class:`RejectError`; ``currency``: the
    currency of the values; ``adds_up``: rows of one identity add up (read whole).
    ``breakdowns``: (source column, the value of its total) pairs: a row is a breakdown
    when one of these columns holds another value.
    """

    name: str
    columns: Mapping[str, str]
    required: tuple[str, ...]
    signature: tuple[str, ...] = ()
    convert: Mapping[str, Callable[[str], str | RejectError]] = field(default_factory=dict)
    currency: str | None = None
    adds_up: bool = False
    breakdowns: tuple[tuple[str, str], ...] = ()
    missing: tuple[str, ...] = ()  # cells that mean "not available" in amounts (R's NA, Eurostat's ":")


#: what statistics files write for an amount that is not available
MISSING = ("NA", "N/A", "NaN", "nan", "null", "NULL", ":", "-")
_CONFIDENTIAL_PARTNERS = {"QP", "QQ", "QR", "QS", "QT", "QU", "QV", "QW", "QX", "QY", "QZ"}
# Eurostat writes GR as EL and GB as UK; XI is Northern Ireland (United Kingdom, since 2021).
_EUROSTAT = {**COUNTRY_ALIASES, "XI": "GB"}
# Comtrade's M49 codes where they differ from ISO 3166-1 numeric (reporters "incl." territories)
_M49 = {"842": "US", "251": "FR", "699": "IN", "757": "CH", "579": "NO", "490": "TW"}


@cache
def _iso3() -> dict[str, str]:
    import pycountry

    return {c.alpha_3: c.alpha_2 for c in pycountry.countries}


@cache
def _numeric() -> dict[str, str]:
    import pycountry

    return {c.numeric: c.alpha_2 for c in pycountry.countries} | _M49


def _eurostat_country(what: str) -> Callable[[str], str | RejectError]:
    def convert(value: str) -> str | RejectError:
        code = value.strip().upper()
        code = _EUROSTAT.get(code, code)
        if code in COUNTRY_CODES:
            return code
        if code in _CONFIDENTIAL_PARTNERS:
            return RejectError(
                "confidential_partner", f"{what} {value!r} is one of Eurostat's codes for countries not "
                "specified (confidential or for commercial or military reasons); the country is not known.",
                field=what)
        if len(code) > 2 or not code.isalpha():  # EU27_2020, EXTRA_EU27_2020, WORLD, ...
            return RejectError(
                "aggregate_partner", f"{what} {value!r} is a group of countries, not one country; "
                "transitwatch reads one country's trade with another.", field=what)
        return code  # the contract says why not
    return convert


def _iso3_country(what: str) -> Callable[[str], str | RejectError]:
    def convert(value: str) -> str | RejectError:
        code = value.strip().upper()
        if code in ("W00", "WLD", "0"):
            return RejectError("aggregate_partner", f"{what} {value!r} is the World, not one country.", field=what)
        found = _iso3().get(code) or _numeric().get(code.zfill(3) if code.isdigit() else "")
        if found:
            return found
        if len(code) == 2 and code.isalpha():
            return code
        return RejectError(
            "aggregate_partner" if code[:1] in ("_", "X", "R") or code.startswith("E19") else "unknown_country",
            f"{what} {value!r} is not the ISO 3166-1 alpha-3 code of a country (Comtrade's areas not elsewhere "
            "specified, special categories and groups are not one country).", field=what)
    return convert


def _m49_country(what: str) -> Callable[[str], str | RejectError]:
    iso3 = _iso3_country(what)

    def convert(value: str) -> str | RejectError:
        text = value.strip()
        if text.isdigit():
            found = _numeric().get(text.zfill(3))
            if found:
                return found
        return iso3(text)
    return convert


def _flow_codes(codes: Mapping[str, str], column: str) -> Callable[[str], str | RejectError]:
    def convert(value: str) -> str | RejectError:
        found = codes.get(value.strip().upper())
        if found is not None:
            return found
        return RejectError("unsupported_flow", f"{column} {value!r} is not one of "
                           f"{', '.join(sorted(codes))} ({', '.join(sorted(set(codes.values())))}).", field="flow")
    return convert


def _yyyymm(value: str) -> str | RejectError:
    text = value.strip()
    if len(text) == 6 and text.isdigit():
        month = int(text[4:])
        if 1 <= month <= 12:
            return f"{text[:4]}-{text[4:]}"
        if month in (0, 52):
            return RejectError("not_monthly", f"period {value!r} is a year, not a month; transitwatch "
                               "reads monthly statistics (download the monthly file).", field="period")
    if len(text) == 4 and text.isdigit():
        return RejectError("not_monthly", f"period {value!r} is a year, not a month; transitwatch reads "
                           "monthly statistics (ask Comtrade for freqCode M).", field="period")
    return text  # the contract says why not


def _iso_day_period(value: str) -> str | RejectError:
    text = value.strip()
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        return text[:7]
    return _yyyymm(text)


def _product(value: str) -> str | RejectError:
    """A product code: digits; a chapter or heading total is left to :func:`set_aside_aggregates`;
    letters mean a confidential or an aggregate code."""
    text = value.strip()
    if text.isdigit() or not text:
        return text
    if text.upper() in ("TOTAL", "TO", "ALL", "AG2", "AG4", "AG6"):
        return RejectError("aggregate_code", f"hs_code {value!r} is a total over products, not one product; "
                           "transitwatch reads HS6 (or finer) codes.", field="hs_code")
    if text[:2].isdigit():
        return RejectError("confidential_code", f"hs_code {value!r} is a confidential code: the statistics "
                           f"office hides the product, and only its chapter {text[:2]} is known.", field="hs_code")
    return text  # the contract says why not


def _comtrade_product(value: str) -> str | RejectError:
    return _product(value)


#: Comtrade's flow codes, in both its current and its older files
_COMTRADE_FLOWS = {"X": "export", "M": "import", "RX": "re-export", "RM": "re-import"}

LAYOUTS: dict[str, Layout] = {
    "transitwatch": Layout("transitwatch", {name: name for name in CONTRACT_FIELDS}, ()),
    "comext": Layout(
        "comext",
        {"reporter": "DECLARANT_ISO", "partner": "PARTNER_ISO", "hs_code": "PRODUCT_NC", "flow": "FLOW",
         "period": "PERIOD", "value": "VALUE_IN_EUROS", "net_mass_kg": "QUANTITY_IN_KG",
         "quantity": "SUP_QUANTITY"},
        required=("DECLARANT_ISO", "PARTNER_ISO", "PRODUCT_NC", "FLOW", "PERIOD", "VALUE_IN_EUROS"),
        signature=("DECLARANT_ISO", "PRODUCT_NC"),
        convert={"reporter": _eurostat_country("reporter"), "partner": _eurostat_country("partner"),
                 "hs_code": _product, "flow": _flow_codes({"1": "import", "2": "export"}, "FLOW"),
                 "period": _yyyymm},
        currency="EUR", adds_up=True, missing=MISSING,
        breakdowns=(("STAT_REGIME", "4"),),  # 1 normal, 2 inward, 3 outward processing; 4 their total
    ),
    "comext-extract": Layout(
        "comext-extract",
        {"period": "period", "reporter": "reporter_iso2", "partner": "partner_iso2", "hs_code": "cn8",
         "flow": "flow", "value": "value_eur"},
        required=("period", "reporter_iso2", "partner_iso2", "cn8", "value_eur"),
        signature=("reporter_iso2", "cn8", "value_eur"),
        convert={"reporter": _eurostat_country("reporter"), "partner": _eurostat_country("partner"),
                 "hs_code": _product},
        currency="EUR", missing=MISSING,
    ),
    "comtrade": Layout(
        "comtrade",
        {"period": "period", "reporter": "reporterISO", "partner": "partnerISO", "flow": "flowCode",
         "hs_code": "cmdCode", "value": "primaryValue", "net_mass_kg": "netWgt", "quantity": "qty"},
        required=("period", "reporterISO", "partnerISO", "flowCode", "cmdCode", "primaryValue"),
        signature=("cmdCode", "primaryValue"),
        convert={"period": _yyyymm, "reporter": _iso3_country("reporter"), "partner": _iso3_country("partner"),
                 "flow": _flow_codes(_COMTRADE_FLOWS,
                                     "flowCode"),
                 "hs_code": _comtrade_product},
        currency="USD", adds_up=True,
        breakdowns=(("motCode", "0"), ("customsCode", "C00"), ("partner2Code", "0")), missing=MISSING,
    ),
    "comtrade-legacy": Layout(
        "comtrade-legacy",
        {"period": "period", "reporter": "reporter_code", "partner": "partner_iso", "flow": "trade_code",
         "hs_code": "commodity_code", "value": "trade_value_us", "net_mass_kg": "netweight_kg",
         "quantity": "Qty"},
        required=("period", "reporter_code", "partner_iso", "trade_code", "commodity_code", "trade_value_us"),
        signature=("commodity_code", "trade_value_us"),
        convert={"period": _iso_day_period, "reporter": _m49_country("reporter"),
                 "partner": _iso3_country("partner"),
                 "flow": _flow_codes(_COMTRADE_FLOWS,
                                     "trade_code"),
                 "hs_code": _comtrade_product},
        currency="USD", adds_up=True,
        breakdowns=(("mot_code", "0"),), missing=MISSING,
    ),
}


def detect_layout(names: Sequence[str]) -> str:
    """The layout a header's column names belong to; ``transitwatch`` when no other's.

    Examples
    --------
    >>> detect_layout(["DECLARANT", "DECLARANT_ISO", "PARTNER_ISO", "PRODUCT_NC", "FLOW", "PERIOD"])
    'comext'
    >>> detect_layout(["period", "reporterISO", "cmdCode", "primaryValue"]), detect_layout(["period", "value"])
    ('comtrade', 'transitwatch')
    """
    lower = {name.strip().lower() for name in names}
    for name, layout in LAYOUTS.items():
        if layout.signature and all(col.lower() in lower for col in layout.signature):
            return name
    return "transitwatch"


def resolve(layout: Layout, params: ReaderParams) -> Layout:
    """``layout`` with ``[input] columns`` and ``currency`` applied (``add_up`` too, for the plain formats)."""
    columns = dict(layout.columns) | dict(params.columns)
    required = tuple(params.columns.get(name, source) for name, source in layout.columns.items()
                     if source in layout.required)
    required += tuple(c for c in params.columns.values() if c not in required)  # a mapped column must be there
    return Layout(
        layout.name, columns, required, layout.signature, layout.convert,
        params.currency.upper() or layout.currency, layout.adds_up or params.add_up, layout.breakdowns,
        layout.missing,
    )


# --- preparing a table -------------------------------------------------------------------------


@dataclass
class Prepared:
    """The contract's columns of a table (``columns``: field -> Arrow array, strings where the
    file had text), the rows kept (``rows``: positions in the table), the rows set aside with
    why (``rejects``: position -> RejectError), and per kept row whether it is a total
    (``total``: None when the layout has no breakdown columns)."""

    columns: dict[str, Any]
    rows: np.ndarray
    rejects: dict[int, RejectError]
    total: np.ndarray | None = None


@cache
def _arrow() -> tuple[Any, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pa, pc


def _find(names: Sequence[str]) -> dict[str, str]:
    """Lower-cased, stripped column name -> the name as written (the first one of a duplicate)."""
    out: dict[str, str] = {}
    for name in names:
        out.setdefault(name.strip().lower(), name)
    return out


def prepare(table: Any, layout: Layout, *, decimal: str = ".") -> Prepared:
    """The contract's columns of an Arrow table read with ``layout``.

    Parameters
    ----------
    table : pyarrow.Table
        Columns as read (strings from CSV; any type from Parquet).
    layout : Layout
        As :func:`resolve` gave it.
    decimal : {'.', ','}
        The decimal mark of the amounts written as text.

    Raises
    ------
    MissingColumnsError
        When the table lacks a column the layout needs.

    Examples
    --------
    >>> import pyarrow as pa
    >>> t = pa.table({"DECLARANT_ISO": ["EL", "DE"], "PARTNER_ISO": ["AM", "QZ"],
    ...               "PRODUCT_NC": ["85423190", "85SSS000"], "FLOW": ["2", "2"],
    ...               "PERIOD": ["202203", "202203"], "VALUE_IN_EUROS": ["1200", "7"]})
    >>> p = prepare(t, LAYOUTS["comext"])
    >>> p.columns["reporter"].to_pylist(), p.columns["period"].to_pylist(), p.rows.tolist()
    (['GR', 'DE'], ['2022-03', '2022-03'], [0])
    >>> sorted((i, e.reason) for i, e in p.rejects.items())
    [(1, 'confidential_partner')]
    """
    pa, pc = _arrow()
    n = table.num_rows
    where = _find(table.column_names)
    missing = [c for c in layout.required if c.strip().lower() not in where]
    if missing:
        raise MissingColumnsError(
            "missing_columns",
            f"the file has no column {', '.join(repr(c) for c in missing)}, which the {layout.name} layout needs "
            f"(its columns are {', '.join(table.column_names[:12])}{' ...' if table.num_columns > 12 else ''}); "
            "choose another --format, or map the columns in [input.columns] of the configuration.",
        )
    errors: dict[int, RejectError] = {}
    columns: dict[str, Any] = {}
    for name, source in layout.columns.items():
        found = where.get(source.strip().lower())
        if found is None:
            continue
        column = table.column(found).combine_chunks() if table.num_rows else pa.array([], pa.string())
        if name in layout.convert:
            if not pa.types.is_string(column.type):
                column = pc.cast(column, pa.string())
            column = _recode(column, layout.convert[name], errors, pa, pc)
        elif name in AMOUNTS and pa.types.is_string(column.type):
            if layout.missing:
                gone = pc.is_in(pc.utf8_trim_whitespace(column), pa.array(layout.missing))
                column = pc.if_else(gone, pa.scalar(None, pa.string()), column)
            if decimal == ",":
                column = _decimal_comma(column, pa, pc)
        columns[name] = column
    if layout.currency and "currency" not in columns:
        columns["currency"] = pa.array(np.full(n, layout.currency, dtype=object), pa.string())
    total = None
    if layout.breakdowns:
        total = np.ones(n, bool)
        for source, value in layout.breakdowns:
            found = where.get(source.lower())
            if found is not None:
                text = pc.utf8_trim_whitespace(pc.cast(table.column(found), pa.string()))
                total &= pc.fill_null(pc.is_in(text, pa.array([value, ""])), True).to_numpy(zero_copy_only=False)
    keep = np.ones(n, bool)
    keep[list(errors)] = False
    rows = np.flatnonzero(keep)
    return Prepared(columns, rows, errors, total)


def _recode(column: Any, convert: Callable[[str], str | RejectError], errors: dict[int, RejectError],
            pa: Any, pc: Any) -> Any:
    """``convert`` on each distinct value of a string column; rows whose value it rejects go to ``errors``."""
    encoded = pc.dictionary_encode(column).combine_chunks() if hasattr(column, "chunks") else pc.dictionary_encode(column)
    values = encoded.dictionary.to_pylist()
    out: list[str | None] = []
    bad = np.zeros(len(values) + 1, bool)
    found: list[RejectError | None] = []
    for i, value in enumerate(values):
        result = convert(value) if value is not None else None
        if isinstance(result, RejectError):
            bad[i] = True
            found.append(result)
            out.append(None)
        else:
            found.append(None)
            out.append(result if result != "" else None)
    index = pc.fill_null(encoded.indices, len(values)).to_numpy(zero_copy_only=False)
    for row in np.flatnonzero(bad[index]).tolist():
        errors.setdefault(row, found[index[row]])
    return pc.take(pa.array(out + [None], pa.string()), pa.array(index))


def _decimal_comma(column: Any, pa: Any, pc: Any) -> Any:
    """Amounts written with a decimal comma (``1.234,5``, ``1 234,5``) as ``1234.5``; other text
    is left for the contract to judge."""
    grouped = pc.match_substring_regex(column, r"^\s*[0-9]{1,3}(?:[. \x{00a0}][0-9]{3})+(?:,[0-9]+)?\s*$")
    plain = pc.match_substring_regex(column, r"^\s*[0-9]+(?:,[0-9]+)?\s*$")
    converted = pc.replace_substring(pc.replace_substring_regex(column, r"[. \x{00a0}]", ""), ",", ".")
    mask = pc.fill_null(pc.or_(grouped, plain), False)
    return pc.if_else(mask, converted, column)


# --- whole-file steps of the layouts that add up ---------------------------------------------


def set_aside_aggregates(keys: Sequence[np.ndarray], codes: Sequence[str | None],
                         total: np.ndarray | None = None) -> dict[int, RejectError]:
    """The rows of a statistics table that would count twice, or that are not one HS6 product.

    ``keys`` are the columns of a row's lane-month (period, reporter, partner, flow),
    ``codes`` its product code (digits), ``total`` whether a row is a total over the
    breakdown columns (transport mode, customs procedure, ...). Set aside:

    - a code shorter than 6 digits (an HS2 or HS4 total): ``aggregate_code`` when rows
      of finer codes under it are in the lane-month (they are used: never add HS4 to
      HS6), else ``aggregate_only``;
    - a 6-digit code over finer codes (CN8) of the same lane-month: ``aggregate_code``;
    - a breakdown row when its lane-month and code also has a total row: ``breakdown_of_total``.

    Examples
    --------
    >>> k = [np.array(["2024-01"] * 4), np.array(["AM"] * 4)]
    >>> found = set_aside_aggregates(k, ["8703", "870323", "8704", "870421"])
    >>> sorted((i, e.reason) for i, e in found.items())
    [(0, 'aggregate_code'), (2, 'aggregate_code')]
    >>> found = set_aside_aggregates(k[:1] + [np.array(["AM", "AM", "GE", "AM"])], ["8703", "870323", "8704", "870421"])
    >>> sorted((i, e.reason) for i, e in found.items())
    [(0, 'aggregate_code'), (2, 'aggregate_only')]
    """
    import pandas as pd

    n = len(codes)
    if n == 0:
        return {}
    lane = pd.DataFrame({str(j): pd.Series(np.asarray(k), dtype=object).astype(str) for j, k in enumerate(keys)})
    lane_id = (lane.groupby(list(lane.columns), sort=False).ngroup() if len(lane.columns)
               else pd.Series(np.zeros(n, np.int64))).astype(str).to_numpy(dtype=object) + "|"
    code = pd.Series(codes, dtype=object)
    digits = code.str.fullmatch(r"[0-9]+").fillna(False).to_numpy(dtype=bool)
    size = code.str.len().fillna(0).to_numpy(dtype=np.int64)
    text = code.fillna("").to_numpy(dtype=object)
    key = lane_id + text  # the lane-month and its code

    def under(cut: int, least: int) -> np.ndarray:
        """Rows of ``cut`` digits with finer rows of at least ``least`` digits under them in the lane-month."""
        finer = digits & (size > cut) & (size >= least)
        prefixes = set((lane_id[finer] + code[finer].str[:cut].to_numpy(dtype=object)).tolist())
        return digits & (size == cut) & pd.Series(key).isin(prefixes).to_numpy(dtype=bool)

    out: dict[int, RejectError] = {}
    covered = np.zeros(n, bool)
    for cut in range(1, 6):
        covered |= under(cut, 6)
    for i in np.flatnonzero(digits & (size < 6)).tolist():
        c = text[i]
        if covered[i]:
            out[i] = RejectError("aggregate_code", f"hs_code {c!r} is an HS{len(c)} total; the file's "
                                 "finer rows of the same lane and month are used (never both).", field="hs_code")
        else:
            out[i] = RejectError("aggregate_only", f"hs_code {c!r} is an HS{len(c)} total and the file "
                                 "has no HS6 rows under it for this lane and month; transitwatch watches "
                                 "HS6 subheadings: download the HS6 (or CN8) rows.", field="hs_code")
    for i in np.flatnonzero(under(6, 7)).tolist():
        out[i] = RejectError("aggregate_code", f"hs_code {text[i]!r} is the total of the file's finer (CN8) rows "
                             "of the same lane and month, which are used (never both).", field="hs_code")
    if total is not None and not total.all():
        kept = total.copy()
        kept[list(out)] = False
        with_total = set(key[kept].tolist())
        breakdown = ~total & pd.Series(key).isin(with_total).to_numpy(dtype=bool)
        for i in np.flatnonzero(breakdown).tolist():
            if i not in out:
                out[i] = RejectError("breakdown_of_total", "a breakdown row (by transport mode, customs "
                                     "procedure, statistical regime or second partner) of a lane, month and code "
                                     "whose total row is in the file: the total is used.")
    return out


def add_up(block: Any, lines: np.ndarray) -> tuple[Any, np.ndarray, int]:
    """Sum the statistics of one identity (month, reporter, partner, flow, HS code, currency)
    into one, numbered by its first line; declarations pass as they are.

    Returns the block, the line numbers and how many rows were added into others. A mass
    or quantity is the sum where every row has it, else unknown (NaN).

    Examples
    --------
    >>> from transitwatch.detectors.frame import Block
    >>> from transitwatch.detectors.contract import parse_mapping
    >>> rows = [parse_mapping({"period": "2024-01", "reporter": "AM", "partner": "RU", "hs_code": "870323",
    ...                        "value": v, "net_mass_kg": m}) for v, m in ((5, 1), (7, None), (1, 2))]
    >>> rows[2] = parse_mapping({**rows[2].to_dict(), "partner": "GE"})
    >>> block, lines, merged = add_up(Block.from_records(rows), np.array([2, 3, 4]))
    >>> block.value.tolist(), lines.tolist(), merged, np.isnan(block.net_mass_kg).tolist()
    ([12.0, 1.0], [2, 4], 1, [True, False])
    """
    stat = ~block.declaration
    if not stat.any():
        return block, lines, 0
    key = np.stack([block.month, block.reporter, block.partner, block.flow, block.hs_code, block.currency], 1)
    key = np.where(stat[:, None], key, -1 - np.arange(len(block))[:, None])  # declarations: their own groups
    _, first, group = np.unique(key, axis=0, return_index=True, return_inverse=True)
    group = group.ravel()
    if len(first) == len(block):
        return block, lines, 0
    order = np.sort(first)  # the groups in the order of their first row
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    slot = rank[group]
    out = block.take(order)
    for name in AMOUNTS:
        values = getattr(block, name)
        sums = np.zeros(len(order))
        np.add.at(sums, slot, values)  # NaN anywhere in a group makes its sum NaN
        getattr(out, name)[:] = sums
    out.index[:] = block.index[order]
    return out, lines[order], len(block) - len(order)
