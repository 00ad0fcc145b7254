"""The columnar fast path for JSON Lines, read by Arrow's C++ JSON reader.

:func:`split_lines` is :func:`transitwatch.detectors.frame.split_fast` for raw lines: it reads a
chunk of lines with ``pyarrow.json.read_json`` (one thread) into typed columns and
checks them with vectorized Arrow compute and numpy, so no Python object is built
per field. Like ``split_fast`` it never rejects anything: rows it cannot prove
normalised come back in the slow mask, for :func:`~transitwatch.detectors.contract.parse_json_line`
on the raw line. A property-based test holds it to the very Block that
``orjson.loads`` + ``split_fast`` build.

Where Arrow and ``orjson`` could read a line differently, the line is not Arrow's to
judge: the whole chunk goes back to the caller (``None``) when Arrow cannot read it
(a malformed line, duplicate keys, a known field whose JSON type changes between
lines, bytes that are not UTF-8, ...) or when lines and rows might not pair up one
to one; single rows go slow when an unknown field holds something ``orjson`` might
refuse (``NaN``, ``Infinity``, nested values). pyarrow is imported on first use,
so ``import transitwatch.detectors`` does not need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from transitwatch.detectors.contract import FLOWS
from transitwatch.detectors.frame import (
    _CURRENCY,
    _DATES,
    _FIELD_SET,
    _FLOW,
    _MAX_EXACT_INT,
    _PERIODS,
    COUNTRIES,
    CURRENCIES,
    FIELDS,
    HS_CODES,
    Block,
    _Vocab,
)

__all__ = ["plain_lines", "split_data", "split_lines", "split_table"]

_TEXT = ("declaration_id", "date", "period", "reporter", "partner", "flow", "hs_code", "currency",
         "unit", "exporter", "consignee", "origin")
_AMOUNTS = ("value", "net_mass_kg", "quantity")
# What str.strip() removes: the first or last byte of a normal text is none of these.
_ASCII_SPACE = np.zeros(256, bool)
_ASCII_SPACE[[ord(c) for c in map(chr, range(128)) if c.isspace()]] = True


@cache
def _arrow() -> Any:
    """pyarrow and what the reader needs, built once."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    # Only the dates are typed up front: left to inference, "2024-03-05" would become a timestamp.
    # The other fields are inferred (cheaper than converting to a given type) and checked in _split.
    schema = pa.schema([("date", pa.string()), ("period", pa.string())])
    parse = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    sets = {
        "country": pa.array(COUNTRIES), "flow": pa.array(FLOWS), "currency": pa.array(CURRENCIES),
    }
    return pa, pc, pj, parse, sets


def split_lines(lines: Sequence[bytes]) -> tuple[Block, np.ndarray] | None:
    """The lines already in normalised form, as a block, and a mask of the others.

    Parameters
    ----------
    lines : sequence of bytes
        Non-blank JSON Lines lines (a trailing newline is allowed).

    Returns
    -------
    (Block, numpy.ndarray of bool) or None
        As :func:`~transitwatch.detectors.frame.split_fast` returns for the decoded lines
        (``Block.index`` are positions in ``lines``); ``None`` when Arrow cannot
        read the chunk line for line, and the caller must decode it another way.

    Examples
    --------
    >>> block, slow = split_lines([
    ...     b'{"declaration_id": "a", "date": "2024-03-05", "reporter": "DE", "partner": "KZ",'
    ...     b' "hs_code": "854231", "value": 10.5}\\n',
    ...     b'{"declaration_id": "b", "date": "2024-03-05", "reporter": "de", "partner": "KZ",'
    ...     b' "hs_code": "854231", "value": 1}\\n'])
    >>> block.to_dicts()[0]["flow"], slow.tolist()
    ('export', [False, True])
    >>> split_lines([b'{"value": 1}\\n', b'{"value": "1"}\\n']) is None  # a type conflict
    True
    """
    n = len(lines)
    if n == 0:
        return Block.from_records([]), np.zeros(0, bool)
    data = b"".join(lines)
    if not (plain_lines(data) == n or _one_object_per_line(data, lines)):
        return None
    return _read(data, n)


def split_data(data: bytes, lines: int | None = None) -> tuple[Block, np.ndarray] | None:
    """:func:`split_lines` for a chunk of a file as it is, when it has the usual layout.

    ``data`` is whole lines; ``None`` unless every line is exactly ``{...}`` followed by
    a newline (or the end), so no line is blank and row ``i`` is line ``i`` (0-based):
    then the chunk need not be split into lines at all. ``lines``: the count
    :func:`plain_lines` gave, if the caller has it.

    Examples
    --------
    >>> block, slow = split_data(b'{"period": "2024-01", "reporter": "DE", "partner": "KZ",'
    ...                          b' "hs_code": "854231", "value": 1}\\n{}\\n')
    >>> len(block), slow.tolist()
    (1, [False, True])
    >>> split_data(b'{"value": 1}\\n\\n{"value": 2}\\n') is None  # a blank line: use split_lines
    True
    """
    n = plain_lines(data) if lines is None else lines
    if n is None:
        return None
    return _read(data, n)


def plain_lines(data: bytes, ends: np.ndarray | None = None) -> int | None:
    """The number of lines if every one is ``{...}`` then a newline (the last may lack it), else None.

    :func:`split_data` takes such a chunk as it is (pass the count as ``lines`` to skip the check).
    ``ends``: the positions of the newlines in ``data``, if the caller has them.

    Examples
    --------
    >>> plain_lines(b'{"a": 1}\\n{"a": 2}'), plain_lines(b'{"a": 1}\\r\\n'), plain_lines(b'\\n{"a": 1}\\n')
    (2, None, None)
    """
    buf = np.frombuffer(data, np.uint8)  # numpy scans a chunk several times faster than bytes.count
    if not len(buf) or buf[0] != 123:
        return None
    if ends is None:
        ends = np.flatnonzero(buf == 10)
    inner = ends
    if buf[-1] == 10:
        inner = ends[:-1]
        if buf[ends[-1] - 1] != 125:
            return None
    elif buf[-1] != 125:
        return None
    if not ((buf[inner - 1] == 125).all() and (buf[inner + 1] == 123).all()):
        return None
    return len(inner) + 1


def _read(data: bytes, n: int) -> tuple[Block, np.ndarray] | None:
    if not data.isascii():
        try:  # Arrow does not check that inferred strings are UTF-8; orjson does
            data.decode()
        except UnicodeDecodeError:
            return None
    pa, pc, pj, parse, sets = _arrow()
    try:
        table = pj.read_json(
            pa.py_buffer(data),
            read_options=pj.ReadOptions(use_threads=False, block_size=len(data) + 1),
            parse_options=parse,
        )
    except (pa.ArrowException, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    if table.num_rows != n:  # a line held two values after all: do not guess which is which
        return None
    try:
        return _split(table, n, pa, pc, sets)
    except (pa.ArrowException, ValueError, TypeError):
        return None  # an unexpected column type: the orjson path knows what to do


def _one_object_per_line(data: bytes, lines: Sequence[bytes]) -> bool:
    """Whether every line is one object, ``{`` to ``}`` (around JSON whitespace).

    A value that spans lines must break after ``{``, ``[``, ``:`` or ``,``, and the
    next line cannot then start a new object; so with this and one row per line,
    row ``i`` is line ``i``.
    """
    for line in lines:
        body = line.strip(b" \t\r\n")
        if body[:1] != b"{" or body[-1:] != b"}" or b"\n" in line.rstrip(b"\n"):
            return False
    return True


def _split(table: Any, n: int, pa: Any, pc: Any, sets: dict[str, Any]) -> tuple[Block, np.ndarray]:
    ok = np.ones(n, bool)
    col, null = {}, {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if name not in _FIELD_SET:  # unknown fields: only what orjson surely reads the same
            ok &= _harmless(column, pa)
            continue
        kind = column.type
        null[name] = column.is_null().to_numpy(zero_copy_only=False)
        if pa.types.is_null(kind):
            continue
        if not (pa.types.is_string(kind) if name in _TEXT else
                pa.types.is_floating(kind) or pa.types.is_integer(kind)):
            ok &= null[name]  # a number where text belongs, a bool, a list, ...: the slow path says what
            continue
        col[name] = column
    for name in FIELDS:
        if name not in col:
            col[name] = pa.nulls(n, pa.float64() if name in _AMOUNTS else pa.string())
            null.setdefault(name, np.ones(n, bool))

    has_id, has_period = ~null["declaration_id"], ~null["period"]
    ok &= has_id ^ has_period
    decl = has_id
    day = np.zeros(n, np.int64)
    month = np.zeros(n, np.int64)
    for name in ("declaration_id", "unit", "exporter", "consignee"):
        ok &= null[name] | _text_ok(col[name])
    code = _vocab_codes(_DATES, col["date"], pc)
    ok &= ~decl | (code >= 0)
    facts = np.array(_DATES.facts + [(0, 0)], dtype=np.int64)[code]
    day = np.where(decl, facts[:, 0], day)
    month = np.where(decl, facts[:, 1], month)
    code = _vocab_codes(_PERIODS, col["period"], pc)
    ok &= decl | (code >= 0)
    facts = np.array(_PERIODS.facts + [(0, 0)], dtype=np.int64)[code]
    day = np.where(decl, day, facts[:, 0])
    month = np.where(decl, month, facts[:, 1])
    for name in ("date", "unit", "exporter", "consignee", "origin"):  # none on a statistic
        ok &= decl | null[name]

    def coded(name: str, values: Any, default: int | None) -> np.ndarray:
        """Index in ``values`` (``default`` where null); rows with an unknown value are not ok."""
        out = pc.fill_null(pc.index_in(col[name], value_set=values), -1).to_numpy(zero_copy_only=False)
        out = out.astype(np.int32)
        ok[:] &= (out >= 0) | (null[name] & (default is not None))
        if default is not None:
            out[null[name]] = default
        return out

    reporter = coded("reporter", sets["country"], None)
    partner = coded("partner", sets["country"], None)
    flow = coded("flow", sets["flow"], _FLOW[None])
    currency = coded("currency", sets["currency"], _CURRENCY[None])
    origin = coded("origin", sets["country"], -1) + 1
    hs = _vocab_codes(HS_CODES, col["hs_code"], pc).astype(np.int32)
    ok &= hs >= 0
    amounts = {}
    for name in _AMOUNTS:
        values = col[name].to_numpy(zero_copy_only=False).astype(float, copy=False)  # nulls are NaN
        with np.errstate(invalid="ignore"):
            # finite, >= 0, and exact whatever the JSON text was (an int beyond 2**53 is not all floats;
            # "-0" reads as -0.0 here but as the int 0 in orjson)
            good = np.isfinite(values) & (values >= 0) & (values < _MAX_EXACT_INT) & ~np.signbit(values)
        ok &= good | (null[name] & (name != "value"))
        amounts[name] = values

    rows = np.flatnonzero(ok)
    ids = col["declaration_id"] if len(rows) == n else col["declaration_id"].take(pa.array(rows))
    block = Block(
        index=rows.astype(np.int64),
        declaration=decl[rows],
        declaration_id=ids.to_numpy(zero_copy_only=False),
        day=day[rows],
        month=month[rows],
        reporter=reporter[rows],
        partner=partner[rows],
        flow=flow[rows],
        hs_code=hs[rows],
        value=amounts["value"][rows],
        currency=currency[rows],
        net_mass_kg=amounts["net_mass_kg"][rows],
        quantity=amounts["quantity"][rows],
        unit=_objects(col["unit"], rows, pc),
        exporter=_objects(col["exporter"], rows, pc),
        consignee=_objects(col["consignee"], rows, pc),
        origin=origin[rows],
    )
    return block, ~ok


def _harmless(column: Any, pa: Any) -> np.ndarray:
    """Rows where an unknown field is surely read by orjson as Arrow read it (then ignored)."""
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_boolean(kind) or pa.types.is_null(kind) \
            or pa.types.is_integer(kind) or pa.types.is_timestamp(kind):
        return np.ones(len(column), bool)
    null = column.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_floating(kind):  # NaN and Infinity: Arrow reads them, orjson refuses
        return null | np.isfinite(column.to_numpy(zero_copy_only=False))
    return null  # nested values: leave them to the slow path (depth limits, ...)


def _text_ok(column: Any) -> np.ndarray:
    """Where a string is non-empty with nothing to strip (nulls: whatever; the caller masks them)."""
    n = len(column)
    if n == 0:
        return np.zeros(0, bool)
    _, offsets_buf, data_buf = column.buffers()
    offsets = np.frombuffer(offsets_buf, np.int32)[column.offset : column.offset + n + 1].astype(np.int64)
    if data_buf is None or offsets[-1] == offsets[0]:
        return np.zeros(n, bool)
    data = np.frombuffer(data_buf, np.uint8)
    size = offsets[1:] - offsets[:-1]
    first = data[np.minimum(offsets[:-1], len(data) - 1)]
    last = data[np.maximum(offsets[1:] - 1, 0)]
    ok = (size > 0) & ~_ASCII_SPACE[first] & ~_ASCII_SPACE[last]
    unsure = np.flatnonzero(ok & ((first >= 0x80) | (last >= 0x80)))  # could end in a Unicode space
    for i in unsure.tolist():
        text = column[i].as_py()
        ok[i] = text.strip() == text
    return ok


def _vocab_codes(vocab: _Vocab, column: Any, pc: Any) -> np.ndarray:
    """Codes of a column in a vocabulary; ``-1`` where null or not in normalised form."""
    encoded = pc.dictionary_encode(column)
    values = encoded.dictionary.to_pylist()
    table = np.append(vocab.encode(values, len(values)), -1).astype(np.int64)
    index = pc.fill_null(encoded.indices, len(values)).to_numpy(zero_copy_only=False)
    return table[index]


def _objects(column: Any, rows: np.ndarray, pc: Any) -> np.ndarray:
    """The strings of the given rows as Python objects (None for null), one object per distinct value."""
    encoded = pc.dictionary_encode(column)
    values = encoded.dictionary.to_pylist()
    table = np.empty(len(values) + 1, dtype=object)
    table[:-1] = values
    index = pc.fill_null(encoded.indices, len(values)).to_numpy(zero_copy_only=False)
    return table[index[rows]]


_STRICT_NUMBER = r"^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"


def split_table(columns: dict[str, Any], n: int) -> tuple[Block, np.ndarray]:
    """:func:`split_lines` for columns already read (a CSV or Parquet table in the contract's names).

    ``columns`` maps contract fields to Arrow arrays of ``n`` rows: strings as a CSV
    gives them (an empty string or null is an absent field), or typed (Parquet's
    numbers, dates). As in :func:`split_lines`, nothing is rejected here: the rows not
    provably normalised come back in the slow mask, for
    :func:`~transitwatch.detectors.contract.parse_mapping` on the row.

    Examples
    --------
    >>> import pyarrow as pa
    >>> block, slow = split_table({"period": pa.array(["2024-01", "2024-01"]), "reporter": pa.array(["DE", "el"]),
    ...     "partner": pa.array(["KZ", "KZ"]), "hs_code": pa.array(["854231", "854231"]),
    ...     "value": pa.array(["10.5", "1"]), "currency": pa.array(["", "EUR"])}, 2)
    >>> block.to_dicts()[0]["value"], block.to_dicts()[0]["currency"], slow.tolist()
    (10.5, 'USD', [False, True])
    """
    pa, pc, _, _, sets = _arrow()
    if n == 0:
        return Block.from_records([]), np.zeros(0, bool)
    ok = np.ones(n, bool)
    arrays, names = [], []
    for name, column in columns.items():
        if name not in _FIELD_SET:
            continue
        kind = column.type
        if pa.types.is_dictionary(kind):
            column = column.dictionary_decode()
            kind = column.type
        if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):  # Polars gives either
            column = pc.cast(column, pa.string())
            kind = column.type
        if pa.types.is_string(kind):
            # an empty cell is an absent field; a blank one (spaces) is left to the slow path
            column = pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
            if name in _AMOUNTS:
                number = pc.fill_null(pc.match_substring_regex(column, _STRICT_NUMBER), True)
                ok &= number.to_numpy(zero_copy_only=False)
                column = pc.cast(pc.if_else(number, column, pa.scalar(None, pa.string())), pa.float64())
        elif name in _AMOUNTS:
            if pa.types.is_decimal(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind):
                column = pc.cast(column, pa.float64(), safe=False)
        elif name == "hs_code" and pa.types.is_integer(kind):
            column = pc.cast(column, pa.string())  # as the contract reads an integer: its decimal digits
        elif name in ("date", "period") and (pa.types.is_date(kind) or pa.types.is_timestamp(kind)):
            column = pc.strftime(column, "%Y-%m-%d" if name == "date" else "%Y-%m")
        arrays.append(column)
        names.append(name)
    table = pa.table(arrays, names=names) if arrays else pa.table({"_": pa.nulls(n)})
    try:
        block, slow = _split(table, n, pa, pc, sets)
    except (pa.ArrowException, ValueError, TypeError):
        return Block.from_records([]), np.ones(n, bool)
    if not ok.all():  # an amount written another way: the contract decides, row by row
        keep = ok[block.index]
        block = block.take(np.flatnonzero(keep))
        slow = slow | ~ok
    return block, slow
