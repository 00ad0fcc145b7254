"""The input contract over a whole chunk of rows at once: the columnar fast path.

:func:`transitwatch.detectors.contract.parse_mapping` validates one row in about 2 µs; a
replay of a million lines cannot afford that per line. Most lines, though, are
already in normalised form (upper-case codes, digits-only HS codes, ISO dates,
JSON numbers), and for those validation is a set lookup per field. This module
checks whole columns of decoded objects at once and lets through only the rows
it can prove normalised; every other row goes to the authoritative slow path
(:func:`~transitwatch.detectors.contract.parse_mapping` on the object, or
:func:`~transitwatch.detectors.contract.parse_json_line` on the raw line), which returns a
record or a :class:`~transitwatch.detectors.errors.RejectError` exactly as before. The fast
path never rejects anything itself, and a property-based test holds the two
paths to the same records and the same reject reasons.

Accepted rows come out as a :class:`Block`: typed numpy columns, with
low-cardinality strings as codes into the tables below (countries, flows,
currencies) or into process-wide vocabularies of the valid values seen
(HS codes, dates, periods).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np

from transitwatch.detectors.contract import (
    COUNTRY_CODES,
    CURRENCY_CODES,
    FLOWS,
    Declaration,
    MonthlyStat,
    Record,
    parse_json_line,
    parse_mapping,
)
from transitwatch.detectors.errors import RejectError
from transitwatch.detectors.limits import TimeDomain

__all__ = [
    "COUNTRIES", "CURRENCIES", "Block", "HS_CODES", "complete", "month_end", "month_end_ordinal", "parse_objects",
    "split_fast",
]

COUNTRIES: tuple[str, ...] = tuple(sorted(COUNTRY_CODES))
CURRENCIES: tuple[str, ...] = tuple(sorted(CURRENCY_CODES))
FIELDS = (
    "declaration_id", "date", "period", "reporter", "partner", "flow", "hs_code", "value", "currency",
    "net_mass_kg", "quantity", "unit", "exporter", "consignee", "origin",
)
_FIELD_SET = frozenset(FIELDS)
_DECL_FIELDS = tuple(f.name for f in dataclasses.fields(Declaration))
_STAT_FIELDS = tuple(f.name for f in dataclasses.fields(MonthlyStat))
_INVALID = -1
_UNSEEN = -2
# Ints beyond 2**53 are not all floats; the validator reads them through JSON text, so leave them slow.
_MAX_EXACT_INT = 2**53
_NONE = type(None)

# code tables: a value's code is its index; None (absent) maps to the contract's default or to 0
_COUNTRY = {c: i for i, c in enumerate(COUNTRIES)}
_ORIGIN = {None: 0} | {c: i + 1 for i, c in enumerate(COUNTRIES)}
_FLOW = {f: i for i, f in enumerate(FLOWS)} | {None: FLOWS.index("export")}
_CURRENCY = {c: i for i, c in enumerate(CURRENCIES)} | {None: CURRENCIES.index("USD")}


class _Vocab:
    """Valid values of one open-ended field (HS codes, dates, periods), coded in order of first sight.

    Only values the check accepts are stored, so garbage cannot grow it.
    """

    def __init__(self, check: Any) -> None:
        self.codes: dict[str, int] = {}
        self.values: list[str] = []
        self.facts: list[Any] = []
        self.check = check

    def code(self, value: str, facts: Any = None) -> int:
        """The code of a value known to be valid (a record's field)."""
        found = self.codes.get(value)
        if found is None:
            found = self.codes[value] = len(self.values)
            self.values.append(value)
            self.facts.append(self.check(value) if facts is None else facts)
        return found

    def encode(self, column: list[Any], n: int) -> np.ndarray:
        """Codes of a column; ``-1`` where the value is not in normalised form."""
        out = _lookup(self.codes, column, n, _UNSEEN)
        missing = np.flatnonzero(out == _UNSEEN)
        if missing.size:  # learn each new value once, then look the column up again
            for value in set(map(column.__getitem__, missing.tolist())):
                facts = self.check(value) if type(value) is str else None
                if facts is not None:
                    self.code(value, facts)
            out = _lookup(self.codes, column, n)
        return out


def _check_hs(value: str) -> str | None:
    """The HS6 of a digits-only code of 6 to 10 ASCII digits."""
    if 6 <= len(value) <= 10 and value.isascii() and value.isdigit():
        return value[:6]
    return None


def _check_date(value: str) -> tuple[int, int] | None:
    """(ordinal, month index) of an exact ``YYYY-MM-DD`` date."""
    if len(value) != 10 or value[4] != "-" or value[7] != "-" or not value.isascii():
        return None
    y, m, d = value[:4], value[5:7], value[8:]
    if not (y.isdigit() and m.isdigit() and d.isdigit()) or not 1000 <= int(y) <= 9999:
        return None
    try:
        day = dt.date(int(y), int(m), int(d))
    except ValueError:
        return None
    return day.toordinal(), day.year * 12 + day.month - 1


def _check_period(value: str) -> tuple[int, int] | None:
    """(ordinal of the month's last day, month index) of an exact ``YYYY-MM``."""
    if len(value) != 7 or value[4] != "-" or not value.isascii():
        return None
    y, m = value[:4], value[5:]
    if not (y.isdigit() and m.isdigit()) or not 1000 <= int(y) <= 9999 or not 1 <= int(m) <= 12:
        return None
    month = int(y) * 12 + int(m) - 1
    return month_end_ordinal(month), month


HS_CODES = _Vocab(_check_hs)
_DATES = _Vocab(_check_date)
_PERIODS = _Vocab(_check_period)


# The last month a record can carry (9999-12) and the days of 400 Gregorian years, by which a
# month of year 0 (a valid period "0000-01", but no datetime.date) is moved into range.
_LAST_MONTH = 9999 * 12 + 11
_DAYS_400_YEARS = 146_097


def month_end_ordinal(month: int) -> int:
    """The proleptic Gregorian ordinal of the last day of a month index (``year * 12 + month - 1``).

    Exact for every month a record can carry, years 0 to 9999: 9999-12 ends on
    ``datetime.date.max``, and a month of year 0 ends on an ordinal <= 0.

    Raises
    ------
    ValueError
        For a month before year 0 or after 9999.

    Examples
    --------
    >>> dt.date.fromordinal(month_end_ordinal(2024 * 12 + 1))
    datetime.date(2024, 2, 29)
    >>> month_end_ordinal(9999 * 12 + 11) == dt.date.max.toordinal(), month_end_ordinal(11)
    (True, 0)
    """
    if not 0 <= month <= _LAST_MONTH:
        raise ValueError(f"month index {month} is outside years 0 to 9999")
    if month == _LAST_MONTH:
        return dt.date.max.toordinal()
    year, shift = month // 12, 0
    if year == 0:
        year, shift = 400, _DAYS_400_YEARS
    after = dt.date(year + (month % 12 == 11), (month + 1) % 12 + 1, 1)
    return after.toordinal() - 1 - shift


def month_end(month: int) -> dt.date:
    """The last day of a month index (``year * 12 + month - 1``).

    Never raises for a month of years 0 to 9999; a month of year 0, before the
    first ``datetime.date``, gives ``datetime.date.min`` (such a record is outside
    every run's time domain: see :class:`transitwatch.detectors.limits.TimeDomain`).

    Examples
    --------
    >>> month_end(2023 * 12 + 1), month_end(9999 * 12 + 11), month_end(0)
    (datetime.date(2023, 2, 28), datetime.date(9999, 12, 31), datetime.date(1, 1, 1))
    """
    return dt.date.fromordinal(max(1, month_end_ordinal(month)))


def _hashable(x: Any) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


def _lookup(table: Mapping[Any, int], column: list[Any], n: int, missing: int = _INVALID) -> np.ndarray:
    get = table.get
    try:
        return np.fromiter(map(get, column, repeat(missing)), np.int32, n)
    except TypeError:  # an unhashable value (a list, an object)
        return np.fromiter((get(x, missing) if _hashable(x) else _INVALID for x in column), np.int32, n)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the slow path rejects it
        return False
    return True


def _text_ok(column: list[Any], n: int, optional: bool) -> np.ndarray:
    """Where a text field is already normal: a non-empty str with nothing to strip (or None)."""
    types = set(map(type, column))
    if types == {str}:
        joined = "".join(column)
        if (joined.isascii() or _encodable(joined)) and "" not in column:
            # No character at all is whitespace, or no value changes when stripped.
            if joined.isalnum() or list(map(str.strip, column)) == column:
                return np.ones(n, bool)
    elif optional and types == {_NONE}:
        return np.ones(n, bool)
    return np.fromiter(
        (
            (optional and x is None) or (type(x) is str and x != "" and x.strip() == x and _encodable(x))
            for x in column
        ),
        bool, n,
    )


def _amounts(column: list[Any], n: int, optional: bool) -> tuple[np.ndarray, np.ndarray]:
    """(values as float, NaN for None; where already normal: a finite JSON number >= 0, not bool)."""
    types = set(map(type, column))
    if types <= ({float, int, _NONE} if optional else {float, int}):
        try:
            values = np.array(column, dtype=float) if n else np.empty(0)
        except (OverflowError, TypeError, ValueError):
            pass
        else:
            ok = np.ones(n, bool) if optional else ~np.isnan(values)
            if int in types:
                ok &= np.fromiter((type(x) is not int or -_MAX_EXACT_INT < x < _MAX_EXACT_INT for x in column), bool, n)
            with np.errstate(invalid="ignore"):
                ok &= np.isnan(values) | (np.isfinite(values) & (values >= 0))
            return values, ok
    fine = [type(x) in (float, int) and -_MAX_EXACT_INT < x < _MAX_EXACT_INT for x in column]
    values = np.fromiter((x if good else math.nan for x, good in zip(column, fine)), float, n)
    ok = np.array(fine, dtype=bool).reshape(n)
    with np.errstate(invalid="ignore"):
        ok &= np.isfinite(values) & (values >= 0)
    if optional:
        ok |= np.fromiter((x is None for x in column), bool, n)
    return values, ok


@dataclass
class Block:
    """Accepted rows as typed columns (one entry per row, in input order).

    Codes: ``reporter``, ``partner`` index :data:`COUNTRIES`; ``origin`` is 0 for none, else
    1 + its index; ``flow`` indexes :data:`~transitwatch.detectors.contract.FLOWS`; ``currency`` indexes
    :data:`CURRENCIES`; ``hs_code`` indexes ``HS_CODES.values``. ``day`` is the event day (the
    declaration date, or a statistic's month-end) as an ordinal; amounts are NaN when absent.
    """

    index: np.ndarray
    declaration: np.ndarray
    declaration_id: np.ndarray
    day: np.ndarray
    month: np.ndarray
    reporter: np.ndarray
    partner: np.ndarray
    flow: np.ndarray
    hs_code: np.ndarray
    value: np.ndarray
    currency: np.ndarray
    net_mass_kg: np.ndarray
    quantity: np.ndarray
    unit: np.ndarray
    exporter: np.ndarray
    consignee: np.ndarray
    origin: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def take(self, rows: np.ndarray) -> Block:
        return Block(**{f.name: getattr(self, f.name)[rows] for f in dataclasses.fields(self)})

    @classmethod
    def concat(cls, blocks: Sequence[Block]) -> Block:
        if not blocks:
            return cls.from_records([])
        return cls(**{f.name: np.concatenate([getattr(b, f.name) for b in blocks]) for f in dataclasses.fields(cls)})

    @classmethod
    def from_records(cls, records: Sequence[Record], index: Sequence[int] | None = None) -> Block:
        """The columns of already-parsed records (the slow path's output)."""
        n = len(records)
        cols: dict[str, list[Any]] = {name: [] for name in FIELDS}
        decl, day, month, hs = [], [], [], []
        for rec in records:
            is_decl = type(rec) is Declaration
            decl.append(is_decl)
            cols["declaration_id"].append(rec.declaration_id if is_decl else None)
            if is_decl:
                day.append(rec.date.toordinal())
            else:
                day.append(month_end_ordinal(rec.month))
            month.append(rec.month)
            for name in ("reporter", "partner", "flow", "currency", "value", "net_mass_kg", "quantity"):
                cols[name].append(getattr(rec, name))
            for name in ("unit", "exporter", "consignee", "origin"):
                cols[name].append(getattr(rec, name) if is_decl else None)
            hs.append(HS_CODES.code(rec.hs_code))
        return cls(
            index=np.arange(n, dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64),
            declaration=np.array(decl, dtype=bool),
            declaration_id=_objects(cols["declaration_id"]),
            day=np.array(day, dtype=np.int64),
            month=np.array(month, dtype=np.int64),
            reporter=_lookup(_COUNTRY, cols["reporter"], n),
            partner=_lookup(_COUNTRY, cols["partner"], n),
            flow=_lookup(_FLOW, cols["flow"], n),
            hs_code=np.array(hs, dtype=np.int32),
            value=np.array(cols["value"], dtype=float),
            currency=_lookup(_CURRENCY, cols["currency"], n),
            net_mass_kg=np.array(cols["net_mass_kg"], dtype=float),
            quantity=np.array(cols["quantity"], dtype=float),
            unit=_objects(cols["unit"]),
            exporter=_objects(cols["exporter"]),
            consignee=_objects(cols["consignee"]),
            origin=_lookup(_ORIGIN, cols["origin"], n),
        )

    def to_dict(self, i: int) -> dict[str, Any]:
        """Row ``i`` as ``Record.to_dict()`` gives it (same keys, order and values)."""
        is_decl = bool(self.declaration[i])
        values = {
            "reporter": COUNTRIES[self.reporter[i]],
            "partner": COUNTRIES[self.partner[i]],
            "flow": FLOWS[self.flow[i]],
            "hs_code": HS_CODES.values[self.hs_code[i]],
            "value": float(self.value[i]),
            "currency": CURRENCIES[self.currency[i]],
            "net_mass_kg": _opt(self.net_mass_kg[i]),
            "quantity": _opt(self.quantity[i]),
        }
        month = int(self.month[i])
        if is_decl:
            origin = int(self.origin[i])
            values |= {
                "declaration_id": self.declaration_id[i],
                "date": dt.date.fromordinal(int(self.day[i])).isoformat(),
                "unit": self.unit[i],
                "exporter": self.exporter[i],
                "consignee": self.consignee[i],
                "origin": COUNTRIES[origin - 1] if origin else None,
            }
            return {name: values[name] for name in _DECL_FIELDS}
        values["period"] = f"{month // 12:04d}-{month % 12 + 1:02d}"
        return {name: values[name] for name in _STAT_FIELDS}

    def to_dicts(self) -> list[dict[str, Any]]:
        return [self.to_dict(i) for i in range(len(self))]


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _objects(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _columns(objs: list[Any], n: int) -> dict[str, list[Any] | None]:
    """The contract's fields of the objects as lists (None: absent from every row).

    When every row has the first row's keys and no others, and those are all
    contract fields (the usual case: one writer, one layout), rows are read with
    one ``itemgetter`` call each and transposed in C; otherwise field by field.
    (A first row with a key outside the contract could hide, in a row of the
    same length, a contract field the first row lacks.)
    """
    keys = [k for k in objs[0] if k in _FIELD_SET]
    if 1 < len(keys) == len(objs[0]) and set(map(len, objs)) == {len(objs[0])}:
        try:
            columns = dict(zip(keys, map(list, zip(*map(itemgetter(*keys), objs)))))
        except KeyError:
            pass
        else:
            return {name: columns.get(name) for name in FIELDS}
    return {name: [o.get(name) for o in objs] for name in FIELDS}


def split_fast(objs: list[Any]) -> tuple[Block, np.ndarray]:
    """The rows already in normalised form, as a block, and a mask of the others.

    Parameters
    ----------
    objs : list
        Decoded JSON values (or CSV rows as dicts); anything that is not a dict
        is left to the slow path.

    Returns
    -------
    (Block, numpy.ndarray of bool)
        The fast rows (``Block.index`` their positions) and where the slow path must run.

    Examples
    --------
    >>> block, slow = split_fast([
    ...     {"declaration_id": "a", "date": "2024-03-05", "reporter": "DE", "partner": "KZ",
    ...      "hs_code": "854231", "value": 10.5},
    ...     {"declaration_id": "b", "date": "2024-03-05", "reporter": "de", "partner": "KZ",
    ...      "hs_code": "854231", "value": 1}])
    >>> block.to_dicts()[0]["flow"], block.to_dicts()[0]["currency"], slow.tolist()
    ('export', 'USD', [False, True])
    """
    n = len(objs)
    if n == 0:
        return Block.from_records([]), np.zeros(0, bool)
    if set(map(type, objs)) == {dict}:
        is_dict = np.ones(n, bool)
    else:
        is_dict = np.fromiter((type(o) is dict for o in objs), bool, n)
        objs = [o if type(o) is dict else {} for o in objs]
    cols = _columns(objs, n)
    ok = is_dict.copy()

    ids, periods = cols["declaration_id"], cols["period"]
    none_ids = n if ids is None else ids.count(None)
    none_periods = n if periods is None else periods.count(None)
    if none_ids == 0 and none_periods == n:
        decl = np.ones(n, bool)
    elif none_ids == n and none_periods == 0:
        decl = np.zeros(n, bool)
    else:
        has_id = np.fromiter((x is not None for x in ids), bool, n) if ids is not None else np.zeros(n, bool)
        has_period = (np.fromiter((x is not None for x in periods), bool, n) if periods is not None
                      else np.zeros(n, bool))
        ok &= has_id ^ has_period
        decl = has_id
    day = np.zeros(n, np.int64)
    month = np.zeros(n, np.int64)
    if decl.any():
        if ids is not None:
            ok &= ~decl | _text_ok(ids, n, optional=True)
        dates = cols["date"]
        if dates is None:
            ok &= ~decl
        else:
            code = _DATES.encode(dates, n)
            ok &= ~decl | (code >= 0)
            facts = np.array(_DATES.facts + [(0, 0)], dtype=np.int64)[np.where(code >= 0, code, -1)]
            day = np.where(decl, facts[:, 0], day)
            month = np.where(decl, facts[:, 1], month)
        for name in ("unit", "exporter", "consignee"):
            if cols[name] is not None:
                ok &= _text_ok(cols[name], n, optional=True)
    if not decl.all():
        if periods is None:
            ok &= decl
        else:
            code = _PERIODS.encode(periods, n)
            ok &= decl | (code >= 0)
            facts = np.array(_PERIODS.facts + [(0, 0)], dtype=np.int64)[np.where(code >= 0, code, -1)]
            day = np.where(decl, day, facts[:, 0])
            month = np.where(decl, month, facts[:, 1])
        # a statistic has none of the declaration-only fields to speak of
        for name in ("date", "unit", "exporter", "consignee", "origin"):
            if cols[name] is not None:
                ok &= decl | np.fromiter((x is None for x in cols[name]), bool, n)

    def coded(name: str, table: Mapping[Any, int], required: bool) -> np.ndarray:
        column = cols[name]
        if column is None:
            if required:
                ok[:] = False
            return np.full(n, table.get(None, 0), np.int32)
        code = _lookup(table, column, n)
        ok[:] &= code >= 0
        return code

    reporter = coded("reporter", _COUNTRY, True)
    partner = coded("partner", _COUNTRY, True)
    flow = coded("flow", _FLOW, False)
    currency = coded("currency", _CURRENCY, False)
    origin = coded("origin", _ORIGIN, False)
    if cols["hs_code"] is None:
        ok[:] = False
        hs = np.zeros(n, np.int32)
    else:
        hs = HS_CODES.encode(cols["hs_code"], n)
        ok &= hs >= 0
    if cols["value"] is None:
        ok[:] = False
        value = np.zeros(n)
    else:
        value, good = _amounts(cols["value"], n, optional=False)
        ok &= good
    amounts = {}
    for name in ("net_mass_kg", "quantity"):
        if cols[name] is None:
            amounts[name] = np.full(n, math.nan)
        else:
            amounts[name], good = _amounts(cols[name], n, optional=True)
            ok &= good

    rows = np.flatnonzero(ok)
    every = len(rows) == n

    def objects(name: str) -> np.ndarray:
        column = cols[name]
        if column is None:
            return np.full(len(rows), None, dtype=object)
        out = _objects(column)
        return out if every else out[rows]

    def pick(a: np.ndarray) -> np.ndarray:
        return a if every else a[rows]

    block = Block(
        index=rows.astype(np.int64),
        declaration=pick(decl),
        declaration_id=objects("declaration_id"),
        day=pick(day),
        month=pick(month),
        reporter=pick(reporter),
        partner=pick(partner),
        flow=pick(flow),
        hs_code=pick(hs),
        value=pick(value),
        currency=pick(currency),
        net_mass_kg=pick(amounts["net_mass_kg"]),
        quantity=pick(amounts["quantity"]),
        unit=objects("unit"),
        exporter=objects("exporter"),
        consignee=objects("consignee"),
        origin=pick(origin),
    )
    return block, ~ok


def parse_objects(
    objs: list[Any], raws: Sequence[bytes | str | None] | None = None, *, domain: TimeDomain | None = None
) -> tuple[Block, list[tuple[int, RejectError]]]:
    """Every row through the contract: the fast path, then the slow path for the rest.

    Parameters
    ----------
    objs : list
        Decoded rows (dicts; anything else is read from ``raws`` or rejected).
    raws : sequence, optional
        The raw JSON line of each row. Where given (not None), a slow row is
        parsed from it with :func:`~transitwatch.detectors.contract.parse_json_line`, as a
        line-by-line read would; else the object goes to
        :func:`~transitwatch.detectors.contract.parse_mapping`.
    domain : TimeDomain, optional
        The months accepted; a row of another month is a ``date_out_of_range`` reject.

    Returns
    -------
    (Block, list of (position, RejectError))
        Accepted rows in input order, and the rejected ones.

    Examples
    --------
    >>> block, rejects = parse_objects([{"period": "2024-01", "reporter": "de", "partner": "KZ",
    ...     "hs_code": "854231", "value": 1}, {"period": "2024-13"}])
    >>> block.to_dicts()[0]["reporter"], [(i, e.reason) for i, e in rejects]
    ('DE', [(1, 'missing_field')])
    """
    fast, slow = split_fast(objs)

    def parse(i: int) -> Record:
        raw = raws[i] if raws is not None else None
        return parse_json_line(raw) if raw is not None else parse_mapping(objs[i])

    return complete(fast, slow, parse, domain=domain)


def complete(
    fast: Block, slow: np.ndarray, parse: Callable[[int], Record], *, domain: TimeDomain | None = None
) -> tuple[Block, list[tuple[int, RejectError]]]:
    """The fast rows plus the slow rows through ``parse`` (the authoritative path), in input order.

    Parameters
    ----------
    fast : Block
        What a fast path accepted (``Block.index`` their positions).
    slow : numpy.ndarray of bool
        Where the fast path left a row to ``parse``.
    parse : callable
        Position -> record, or raises :class:`~transitwatch.detectors.errors.RejectError`.
    domain : TimeDomain, optional
        The months accepted. A row of another month, fast or slow, is rejected
        (``date_out_of_range``) before its event day is computed, so a month no
        date can end (year 0) never reaches :class:`Block`, and no replay walks
        month by month to the year 9999.

    Returns
    -------
    (Block, list of (position, RejectError))
        The rejects in input order.

    Examples
    --------
    >>> import numpy as np
    >>> fast, slow = split_fast([{"period": "2024-01", "reporter": "DE", "partner": "KZ",
    ...                           "hs_code": "854231", "value": 1}, None])
    >>> block, rejects = complete(fast, slow, lambda i: parse_json_line(b"[]"))
    >>> len(block), [(i, e.reason) for i, e in rejects]
    (1, [(1, 'not_an_object')])
    >>> from transitwatch.detectors.limits import TimeDomain
    >>> block, rejects = complete(fast, slow, lambda i: parse_json_line(b"[]"), domain=TimeDomain(2025 * 12, 2026 * 12))
    >>> len(block), [(i, e.reason) for i, e in rejects]
    (0, [(0, 'date_out_of_range'), (1, 'not_an_object')])
    """
    rejects: list[tuple[int, RejectError]] = []
    if domain is not None and len(fast):
        inside = domain.mask(fast.month)
        if not inside.all():
            for i in np.flatnonzero(~inside).tolist():
                rejects.append((int(fast.index[i]), domain.reject(int(fast.month[i]))))
            fast = fast.take(np.flatnonzero(inside))
    records, where = [], []
    for i in np.flatnonzero(slow).tolist():
        try:
            rec = parse(i)
        except RejectError as exc:
            rejects.append((i, exc))
            continue
        if domain is not None and rec.month not in domain:
            rejects.append((i, domain.reject(rec.month)))
            continue
        records.append(rec)
        where.append(i)
    if len(rejects) > 1:
        rejects.sort(key=lambda pair: pair[0])
    if not records:
        return fast, rejects
    both = Block.concat([fast, Block.from_records(records, where)])
    return both.take(np.argsort(both.index, kind="stable")), rejects
