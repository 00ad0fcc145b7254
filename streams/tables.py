"""Reading CSV and Parquet files column-wise, with Arrow, a chunk of rows at a time.

A CSV file is cut into chunks of whole lines (about ``chunk_bytes``) and each chunk
read by ``pyarrow.csv`` into columns of strings, as long as the chunk is *plain*: valid
text, no blank lines, no line longer than ``[input] max_line_bytes``, no lone ``\\r``,
and the quotes of every line closed on that line. Then row ``i`` is line ``i`` of the
chunk, and Arrow reads it as :mod:`csv` would. From the first chunk that is not plain,
the file is read row by row by :func:`transitwatch.streams.files.csv_cells` (the same reader as
before Arrow, which says what is wrong with each line: ``invalid_csv_row``,
``unclosed_quote``, ``encoding``, ``line_too_long``), and its rows gathered into
tables of the same shape. Either way the caller gets :class:`TableChunk` s: string
columns named by the header, with a line number per row.

The delimiter and the decimal mark are found from the header and the first rows
(:func:`transitwatch.detectors.layouts.sniff_delimiter`, :func:`~transitwatch.detectors.layouts.sniff_decimal`)
unless ``[input]`` sets them; a file in another encoding than UTF-8 (``[input]
encoding``) is decoded as it is read. A Parquet file is read a row group's batch at a
time, its columns as they are typed (numbers stay numbers); its line numbers are row
numbers from 1.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, BinaryIO

import numpy as np
import orjson

from transitwatch.detectors.arrow import split_table
from transitwatch.detectors.contract import Record, parse_mapping
from transitwatch.detectors.errors import RejectError
from transitwatch.detectors.frame import Block, complete
from transitwatch.detectors.layouts import (
    LAYOUTS,
    Layout,
    MissingColumnsError,
    ReaderParams,
    add_up,
    detect_layout,
    prepare,
    resolve,
    sample_rows,
    set_aside_aggregates,
    sniff_decimal,
    sniff_delimiter,
)
from transitwatch.detectors.limits import InputLimits, TimeDomain
from transitwatch.streams.files import (
    InputFileError,
    _file_errors,
    _reading,
    csv_cells,
    detect_format,
)

__all__ = ["CsvDialect", "TableBlock", "TableChunk", "container", "iter_table_messages", "iter_tables", "read_table_blocks"]

CHUNK_BYTES = 8 << 20
ROWS = 65_536  # rows per table when reading row by row, or a Parquet batch
_PARQUET_MAGIC = b"PAR1"
_LIMITS = InputLimits()


@dataclass
class TableChunk:
    """Rows of a table file: ``table`` (columns as named by the header), ``numbers`` (the line
    of each row), ``content(i)`` (what the rejects file shows of row ``i``), and the lines set
    aside before the table's rows could be made (``rejects``: line number, content, reason)."""

    table: Any
    numbers: np.ndarray
    content: Callable[[int], bytes | str | list[str]]
    rejects: list[tuple[int, bytes | str | list[str], RejectError]] = field(default_factory=list)


@dataclass(frozen=True)
class CsvDialect:
    """What was found (or set) about a CSV file: its delimiter and decimal mark."""

    delimiter: str
    decimal: str


def container(path: str | os.PathLike[str], params: ReaderParams) -> str:
    """``jsonl``, ``csv`` or ``parquet``: what ``--format`` says, else the name, else the first bytes.

    Examples
    --------
    >>> container("x.parquet", ReaderParams()), container("x.csv.gz", ReaderParams(format="comext"))
    ('parquet', 'csv')
    """
    if params.format in ("jsonl", "csv", "parquet"):
        return params.format
    name = os.fspath(path).lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if os.path.isfile(path):
        with _file_errors(os.fspath(path)), open(path, "rb") as probe:
            if probe.read(4) == _PARQUET_MAGIC:
                return "parquet"
    kind = detect_format(path)
    return "csv" if params.format != "auto" else kind


def iter_tables(
    path: str | os.PathLike[str],
    params: ReaderParams,
    *,
    limits: InputLimits = _LIMITS,
    chunk_bytes: int = CHUNK_BYTES,
    dialect: list[CsvDialect] | None = None,
) -> Iterator[TableChunk]:
    """The rows of a CSV or Parquet file as tables, a chunk at a time, in file order.

    ``dialect``, if given, receives what was found of a CSV file's delimiter and decimal mark.

    Raises
    ------
    InputFileError
        If the file cannot be read (or is not Parquet when it should be).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "in.csv"
    >>> _ = p.write_text("period;reporter;value\\n2024-01;DE;1,5\\n\\n2024-02;DE;2\\n")
    >>> found = []
    >>> [(c.table.to_pylist(), c.numbers.tolist()) for c in iter_tables(p, ReaderParams(), dialect=found)]
    [([{'period': '2024-01', 'reporter': 'DE', 'value': '1,5'}, {'period': '2024-02', 'reporter': 'DE', 'value': '2'}], [2, 4])]
    >>> found
    [CsvDialect(delimiter=';', decimal=',')]
    """
    if container(path, params) == "parquet":
        yield from _parquet(path)
        return
    yield from _csv(path, params, limits, chunk_bytes, dialect)


# --- Parquet ---------------------------------------------------------------------------------


def _parquet(path: str | os.PathLike[str]) -> Iterator[TableChunk]:
    pa, _, pq = _arrow()
    source = os.fspath(path)
    with _file_errors(source):
        try:
            handle = pq.ParquetFile(source)
        except pa.ArrowException as exc:
            raise InputFileError(f"{source}: not a readable Parquet file ({exc}).") from exc
        first = 1
        for batch in handle.iter_batches(batch_size=ROWS):
            table = pa.Table.from_batches([batch])
            n = table.num_rows

            def content(i: int, table: Any = table) -> bytes:
                return orjson.dumps(table.slice(i, 1).to_pylist()[0], default=str)

            yield TableChunk(table, np.arange(first, first + n, dtype=np.int64), content)
            first += n


# --- CSV -------------------------------------------------------------------------------------


@cache
def _arrow() -> tuple[Any, Any, Any]:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    return pa, pcsv, pq


class _Decoded(io.RawIOBase):
    """A binary stream in another encoding, read as UTF-8 (bytes it cannot decode kept as they
    are, so the row holding them is an ``encoding`` reject)."""

    def __init__(self, stream: BinaryIO, encoding: str) -> None:
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder(encoding)("surrogateescape")
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            raw = self.stream.read(1 << 16)
            text = self.decoder.decode(raw, final=not raw)
            self.pending = text.encode("utf-8", "surrogateescape")
            if not raw:
                break
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


class _Joined(io.RawIOBase):
    """Bytes already read, then the rest of a stream."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self.head = head
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _csv(path: str | os.PathLike[str], params: ReaderParams, limits: InputLimits, size: int,
         dialect: list[CsvDialect] | None) -> Iterator[TableChunk]:
    source = os.fspath(path)
    with _reading(path) as raw:
        stream: BinaryIO = raw
        if codecs.lookup(params.encoding).name != "utf-8":
            stream = io.BufferedReader(_Decoded(raw, params.encoding), 1 << 16)
        with _file_errors(source):
            data = stream.read(size)
            head = data[: 1 << 16].decode("utf-8", "replace")
            first_line = next((line for line in head.splitlines() if line.strip()), "")
            delimiter = sniff_delimiter(first_line) if params.delimiter == "auto" else params.delimiter
            decimal = params.decimal
            if decimal == "auto":
                decimal = "," if delimiter != "," and sniff_decimal(sample_rows(head, delimiter)) == "," else "."
            if dialect is not None:
                dialect.append(CsvDialect(delimiter, decimal))
            yield from _csv_chunks(stream, data, delimiter, limits, size)


def _header(data: bytes, delimiter: str) -> tuple[list[str], int] | None:
    """The header's names and the number of lines up to it, when it is one plain line."""
    head = data[: 1 << 16]
    lines = head.split(b"\n")
    for i, line in enumerate(lines[:-1] if not head.endswith(b"\n") else lines):
        if line.strip():
            if line.count(b'"') % 2 or b"\r" in line.rstrip(b"\r") or not _utf8(line):
                return None
            names = next(csv.reader([line.rstrip(b"\r").decode()], delimiter=delimiter))
            return [name.strip() for name in names], i + 1
    return None


def _utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _csv_chunks(stream: BinaryIO, pending: bytes, delimiter: str, limits: InputLimits,
                size: int) -> Iterator[TableChunk]:
    header = _header(pending, delimiter)
    if header is None:  # no plain header line in the first piece: row by row from the start
        yield from _row_by_row(_Joined(pending, stream), limits, delimiter, None, 1)
        return
    names, skip = header
    cut = 0
    for _ in range(skip):
        cut = pending.index(b"\n", cut) + 1
    number = skip + 1
    pending = pending[cut:]
    eof = False
    while True:
        while not eof and len(pending) < size:
            more = stream.read(size)
            eof = not more
            pending += more
        if not pending:
            return
        cut = len(pending) if eof else pending.rfind(b"\n") + 1
        if cut == 0:  # a piece without a line break: the row reader reads past what is too long
            yield from _row_by_row(_Joined(pending, stream), limits, delimiter, names, number)
            return
        data, pending = pending[:cut], pending[cut:]
        chunk = _plain_table(data, names, delimiter, limits)
        if chunk is None:
            yield from _row_by_row(_Joined(data + pending, stream), limits, delimiter, names, number)
            return
        table, ends = chunk
        count = len(ends) + (0 if data.endswith(b"\n") else 1)
        numbers = np.arange(number, number + count, dtype=np.int64)
        keep = _not_blank(table)
        rows = None
        if keep is not None:
            table, numbers, rows = table.filter(keep), numbers[keep], np.flatnonzero(keep)
        yield TableChunk(table, numbers, _line_content(data, ends, rows))
        number += count


def _plain_table(data: bytes, names: list[str], delimiter: str, limits: InputLimits) -> tuple[Any, np.ndarray] | None:
    """The chunk read by Arrow, when row ``i`` is surely line ``i``; else None."""
    buf = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(buf == 10)
    count = len(ends) + (0 if data.endswith(b"\n") else 1)
    starts = np.concatenate(([0], ends + 1))[:count]
    stops = np.concatenate((ends, [len(data)]))[:count]
    if count == 0 or (stops - starts).max() > limits.max_line_bytes:
        return None
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return None
    size = stops - starts
    if (size == 0).any() or ((size == 1) & (buf[np.minimum(starts, len(buf) - 1)] == 13)).any():
        return None  # a blank line: Arrow would skip it, and line numbers would shift
    if not _utf8(data):
        return None
    quotes = np.flatnonzero(buf == 34)
    if len(quotes) and (np.bincount(np.searchsorted(ends, quotes), minlength=count + 1) % 2).any():
        return None
    pa, pcsv, _ = _arrow()
    width = len(names)
    fields = [f"c{i}" for i in range(width)]
    try:
        table = pcsv.read_csv(
            pa.py_buffer(data),
            read_options=pcsv.ReadOptions(column_names=fields, use_threads=False, block_size=len(data) + 1),
            parse_options=pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=False, ignore_empty_lines=False),
            convert_options=pcsv.ConvertOptions(column_types={f: pa.string() for f in fields},
                                                strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowException, ValueError):
        return None  # a row with another number of cells, ...: the row reader says which
    if table.num_rows != count:
        return None
    return table.rename_columns(names), ends


def _not_blank(table: Any) -> np.ndarray | None:
    """Rows that have a non-blank cell (None: all of them); a row of empty cells is skipped."""
    import pyarrow.compute as pc

    blank = None
    for column in table.columns:
        empty = pc.equal(pc.utf8_trim_whitespace(column), "")
        blank = empty if blank is None else pc.and_(blank, empty)
    if blank is None:
        return None
    mask = ~pc.fill_null(blank, True).to_numpy(zero_copy_only=False)
    return None if mask.all() else mask


def _line_content(data: bytes, ends: np.ndarray, rows: np.ndarray | None) -> Callable[[int], bytes]:
    def content(i: int) -> bytes:
        j = int(rows[i]) if rows is not None else i
        start = int(ends[j - 1]) + 1 if j else 0
        stop = int(ends[j]) if j < len(ends) else len(data)
        return data[start:stop]
    return content


def _row_by_row(stream: Any, limits: InputLimits, delimiter: str, names: list[str] | None,
                first: int) -> Iterator[TableChunk]:
    """Rows read one by one (:func:`transitwatch.streams.files.csv_cells`), gathered into tables."""
    pa, _, _ = _arrow()
    reader = io.BufferedReader(stream, 1 << 16)
    header: list[str] | None = list(names) if names else None
    cells: list[list[tuple[str, str]]] = []
    numbers: list[int] = []
    contents: list[list[str]] = []
    rejects: list[tuple[int, bytes | str | list[str], RejectError]] = []

    def flush() -> TableChunk:
        columns = {}
        names_now = header or []
        for j, name in enumerate(names_now):
            if name not in columns:
                columns[name] = pa.array([row[j][1] for row in cells], pa.string())
        table = pa.table(columns) if columns else pa.table({"_": pa.nulls(len(cells))})
        kept = list(contents)
        return TableChunk(table, np.array(numbers, dtype=np.int64), lambda i: kept[i], list(rejects))

    for number, content, row in csv_cells(reader, limits, delimiter, names, first):
        if isinstance(row, RejectError):
            rejects.append((number, content, row))
            continue
        if header is None:
            header = [name for name, _ in row]
        cells.append(row)
        numbers.append(number)
        contents.append(content if isinstance(content, list) else [c for _, c in row])
        if len(cells) >= ROWS:
            yield flush()
            cells, numbers, contents, rejects = [], [], [], []
    if cells or rejects:
        yield flush()


def merge(chunks: Sequence[TableChunk]) -> TableChunk:
    """One chunk of several (a file read whole), rows and rejects in file order."""
    pa, _, _ = _arrow()
    if not chunks:
        return TableChunk(pa.table({}), np.zeros(0, np.int64), lambda i: b"")
    if len(chunks) == 1:
        return chunks[0]
    tables = [c.table for c in chunks]
    table = pa.concat_tables(tables, promote_options="permissive")
    offsets = np.cumsum([0] + [t.num_rows for t in tables])

    def content(i: int) -> bytes | str | list[str]:
        k = int(np.searchsorted(offsets, i, side="right")) - 1
        return chunks[k].content(i - int(offsets[k]))

    return TableChunk(table, np.concatenate([c.numbers for c in chunks]), content,
                      [r for c in chunks for r in c.rejects])


# --- through the layout and the contract -----------------------------------------------------


@dataclass
class TableBlock:
    """What a piece of a CSV or Parquet file gave: the accepted records (``block``, numbered
    ``lines``), the rejects in file order (line number, content, reason), the rows read
    (``rows``: accepted, added up and rejected), the rows added into another (``added``),
    and how the file was read (``layout``, for the summary)."""

    block: Block
    lines: np.ndarray
    rejects: list[tuple[int, bytes | str | list[str], RejectError]]
    rows: int
    added: int
    layout: str


def read_table_blocks(
    path: str | os.PathLike[str],
    reader: ReaderParams,
    *,
    limits: InputLimits = _LIMITS,
    domain: TimeDomain | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[TableBlock]:
    """A CSV or Parquet file through its layout (:mod:`transitwatch.detectors.layouts`: ``reader``'s format,
    or the one the header shows) and the contract, a table at a time, or whole for a layout
    whose rows add up. The replay feeds the blocks to the detectors; ``produce`` publishes them.

    Raises
    ------
    InputFileError
        The file cannot be read, or lacks a column its layout needs.
    """
    source = os.fspath(path)
    dialect: list[CsvDialect] = []
    chunks = iter_tables(path, reader, limits=limits, chunk_bytes=chunk_bytes, dialect=dialect)
    first = next(chunks, None)
    if first is None:
        return
    name = reader.format if reader.format in LAYOUTS else detect_layout(first.table.column_names)
    layout = resolve(LAYOUTS[name], reader)
    decimal = dialect[0].decimal if dialect else "."
    shown = name if name != "transitwatch" else container(path, reader)
    if dialect:
        shown += f" (delimiter {dialect[0].delimiter!r}, decimal {dialect[0].decimal!r})"
    pieces: Iterator[TableChunk] | list[TableChunk]
    pieces = [merge([first, *chunks])] if layout.adds_up else _chain(first, chunks)
    for piece in pieces:
        try:
            yield _through(piece, layout, decimal, domain, shown)
        except MissingColumnsError as exc:
            raise InputFileError(f"{source}: {exc.message}") from None


def _chain(first: TableChunk, rest: Iterator[TableChunk]) -> Iterator[TableChunk]:
    yield first
    yield from rest


def _through(chunk: TableChunk, layout: Layout, decimal: str, domain: TimeDomain | None, shown: str) -> TableBlock:
    """One table: the layout's columns, the aggregates set aside, the fast rows checked column-wise
    and the others by :func:`~transitwatch.detectors.contract.parse_mapping`."""
    pa, _, _ = _arrow()
    n = chunk.table.num_rows
    prepared = prepare(chunk.table, layout, decimal=decimal)
    rejects = dict(prepared.rejects)
    rows = prepared.rows
    columns = prepared.columns
    if layout.adds_up and len(rows):
        picked = {k: c.take(pa.array(rows)) for k, c in columns.items()}
        keys = [picked[f].to_numpy(zero_copy_only=False) if f in picked else np.zeros(len(rows))
                for f in ("period", "reporter", "partner", "flow")]
        codes = [c if isinstance(c, str) else None
                 for c in (picked["hs_code"].to_pylist() if "hs_code" in picked else [None] * len(rows))]
        total = prepared.total[rows] if prepared.total is not None else None
        more = set_aside_aggregates(keys, codes, total)
        for j, error in more.items():
            rejects[int(rows[j])] = error
        if more:
            rows = np.delete(rows, list(more))
    if len(rows) != n:
        columns = {k: c.take(pa.array(rows)) for k, c in columns.items()}

    def parse(i: int) -> Record:
        return parse_mapping({k: c[i].as_py() for k, c in columns.items()})

    block, slow = split_table(columns, len(rows))
    block, rejected = complete(block, slow, parse, domain=domain)
    for i, error in rejected:
        rejects[int(rows[i])] = error
    lines = chunk.numbers[rows[block.index]]
    found = [(int(chunk.numbers[p]), chunk.content(p), e) for p, e in rejects.items()] + chunk.rejects
    found.sort(key=lambda item: item[0])
    added = 0
    if layout.adds_up:
        block, lines, added = add_up(block, lines)
    return TableBlock(block, lines, found, n + len(chunk.rejects), added, shown)


def iter_table_messages(
    path: str | os.PathLike[str], reader: ReaderParams, limits: InputLimits = _LIMITS,
) -> Iterator[tuple[int, bytes, RejectError | None]]:
    """Every row of a CSV or Parquet file as a JSON message for Kafka, in file order: ``(line
    number, message, None)``, or ``(line number, the row's text, reject)`` for a row that cannot
    be one.

    The row is the layout's contract columns (Comext and Comtrade codes read, decimal commas
    turned to points), not validated: the consumer validates, as it does JSON Lines. A row a
    layout sets aside (a confidential code, an aggregate) and a line the CSV reader cannot read
    come with their reject. A layout whose rows add up is summed first, so its rows are
    validated here and published as records (``to_dict``).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "in.csv"
    >>> _ = p.write_text("period;reporter;partner;hs_code;value;note\\n2024-01;DE;KZ;854231;1,5;x\\n")
    >>> [(n, m) for n, m, _ in iter_table_messages(p, ReaderParams())]
    [(2, b'{"period":"2024-01","reporter":"DE","partner":"KZ","hs_code":"854231","value":"1.5"}')]
    """
    from transitwatch.streams.files import Line

    source = os.fspath(path)

    def text(number: int, content: Any) -> bytes:
        return Line(source, number, content).raw.encode("utf-8", "replace")

    dialect: list[CsvDialect] = []
    chunks = iter_tables(path, reader, limits=limits, dialect=dialect)
    first = next(chunks, None)
    if first is None:
        return
    name = reader.format if reader.format in LAYOUTS else detect_layout(first.table.column_names)
    layout = resolve(LAYOUTS[name], reader)
    if layout.adds_up:
        for piece in read_table_blocks(path, reader, limits=limits):
            records: list[tuple[int, bytes, RejectError | None]] = [
                (int(piece.lines[i]), orjson.dumps(piece.block.to_dict(i)), None) for i in range(len(piece.block))]
            records += [(number, text(number, content), error) for number, content, error in piece.rejects]
            yield from sorted(records, key=lambda item: item[0])
        return
    decimal = dialect[0].decimal if dialect else "."
    for chunk in _chain(first, chunks):
        try:
            prepared = prepare(chunk.table, layout, decimal=decimal)
        except MissingColumnsError as exc:
            raise InputFileError(f"{source}: {exc.message}") from None
        out: list[tuple[int, bytes, RejectError | None]] = [
            (number, text(number, content), error) for number, content, error in chunk.rejects]
        out += [(int(chunk.numbers[p]), text(int(chunk.numbers[p]), chunk.content(p)), e)
                for p, e in prepared.rejects.items()]
        rows = {name: column.to_pylist() for name, column in prepared.columns.items()}
        for p in prepared.rows.tolist():
            row = {k: v[p] for k, v in rows.items() if v[p] is not None and not (isinstance(v[p], str) and not v[p].strip())}
            out.append((int(chunk.numbers[p]), orjson.dumps(row, default=str), None))
        out.sort(key=lambda item: item[0])
        yield from out
