"""Reading input files: JSON Lines or CSV, gzip-compressed or not.

Compression is detected by the gzip magic bytes, never by the name. The format
comes from the extension (``.jsonl``, ``.ndjson``, ``.json`` or ``.csv``, each
optionally followed by ``.gz``); any other name is sniffed: a first non-blank
byte ``{`` means JSON Lines, anything else CSV.

JSON Lines are parsed from bytes, without decoding, so the fast path of
:func:`detectors.contract.parse_json_line` stays fast; the text of a line is
only built when somebody asks for :attr:`Line.raw` (the rejects file does).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import BinaryIO, Literal

import numpy as np
import orjson

from detectors.contract import Record, parse_json_line, parse_mapping
from detectors.errors import RejectError

__all__ = [
    "Line", "count_lines", "detect_format", "iter_jsonl_blocks", "iter_jsonl_chunks", "iter_lines", "iter_records",
]

Format = Literal["jsonl", "csv"]

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
_MAX_RAW = 2000
_SNIFF_BYTES = 64 * 1024
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Line:
    """Where a record came from: file, 1-based line number and the line itself.

    ``content`` is what was read (bytes for JSON Lines, the cells for CSV, or
    text); :attr:`raw` turns it into text lazily.

    Examples
    --------
    >>> Line("in.jsonl", 3, b'{"period": "2024-01"}\\n').raw
    '{"period": "2024-01"}'
    >>> Line("in.csv", 2, ["a", "b,c"]).raw
    'a,"b,c"'
    """

    source: str
    number: int
    content: bytes | str | list[str] = field(repr=False)

    @property
    def raw(self) -> str:
        """The line as text, for the rejects file: at most 2,000 characters."""
        content = self.content
        if isinstance(content, bytes):
            text = content.decode("utf-8", errors="replace")
        elif isinstance(content, list):
            buffer = io.StringIO()
            csv.writer(buffer).writerow(content)
            text = buffer.getvalue()
        else:
            text = content
        if not text.isascii():  # CSV cells keep undecodable bytes as surrogates
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace") if _escapable(text) else text
        return text.rstrip("\r\n")[:_MAX_RAW]


def detect_format(path: str | os.PathLike[str]) -> Format:
    """Tell JSON Lines from CSV by the extension, else by the first non-blank byte.

    Parameters
    ----------
    path : str or PathLike
        The input file.

    Returns
    -------
    {'jsonl', 'csv'}

    Examples
    --------
    >>> detect_format("exports-2024.ndjson.gz"), detect_format("comext.CSV")
    ('jsonl', 'csv')
    """
    name = os.fspath(path).lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith(_JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(".csv"):
        return "csv"
    with _open_binary(path) as stream:
        head = stream.read(_SNIFF_BYTES)
    head = head.removeprefix(_BOM).lstrip()
    return "jsonl" if head.startswith(b"{") else "csv"


def iter_lines(
    path: str | os.PathLike[str], *, format: Format | None = None
) -> Iterator[tuple[Line, Record | RejectError]]:
    """Yield every non-blank line of an input file once, parsed.

    Parameters
    ----------
    path : str or PathLike
        A JSON Lines or CSV file, gzip-compressed or not.
    format : {'jsonl', 'csv'}, optional
        Overrides :func:`detect_format`.

    Yields
    ------
    (Line, Record or RejectError)
        The rejected lines are yielded, not raised; a CSV row whose cell count
        differs from the header's is rejected as ``invalid_csv_row``.

    Raises
    ------
    OSError
        If the file cannot be opened or read (including a truncated gzip stream).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "in.csv"
    >>> _ = p.write_text("period,reporter,partner,hs_code,value\\n2024-01,DE,KZ,854231,5\\n")
    >>> [(line.number, rec.hs6) for line, rec in iter_lines(p)]
    [(2, '854231')]
    """
    fmt = format or detect_format(path)
    source = os.fspath(path)
    try:
        if fmt == "jsonl":
            yield from _iter_jsonl(path, source)
        else:
            yield from _iter_csv(path, source)
    except EOFError as exc:
        raise OSError(f"{source}: the gzip stream ends early ({exc}); the file is truncated.") from exc


def count_lines(path: str | os.PathLike[str]) -> int | None:
    """Count the lines of a file cheaply, as a progress-bar total.

    An upper bound of what :func:`iter_lines` yields (blank lines are
    counted; a CSV header is not). ``None`` for a gzip file, which would have
    to be decompressed to be counted.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "in.jsonl"
    >>> _ = p.write_bytes(b'{"a": 1}\\n{"a": 2}')
    >>> count_lines(p)
    2
    """
    with open(path, "rb") as stream:
        first = stream.read(_CHUNK)
        if first.startswith(_GZIP_MAGIC):
            return None
        count, last = 0, b""
        chunk = first
        while chunk:
            count += chunk.count(b"\n")
            last = chunk
            chunk = stream.read(_CHUNK)
    if last and not last.endswith(b"\n"):
        count += 1
    if count and detect_format(path) == "csv":
        count -= 1
    return count


def _open_binary(path: str | os.PathLike[str]) -> BinaryIO:
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if gzipped else open(path, "rb")  # type: ignore[return-value]


def _iter_jsonl(path: str | os.PathLike[str], source: str) -> Iterator[tuple[Line, Record | RejectError]]:
    for number, content, result in _parse_jsonl(path):
        yield Line(source, number, content), result


def _jsonl_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes]]:
    """The non-blank lines of a JSON Lines file with their 1-based numbers, BOM removed."""
    with _open_binary(path) as stream:
        for number, content in enumerate(stream, 1):
            if content.isspace():
                continue
            if number == 1 and content.startswith(_BOM):
                content = content[len(_BOM) :]
            yield number, content


def _parse_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes, Record | RejectError]]:
    for number, content in _jsonl_lines(path):
        try:
            yield number, content, parse_json_line(content)
        except RejectError as exc:
            yield number, content, exc


def iter_jsonl_chunks(path: str | os.PathLike[str], size: int = 65_536) -> Iterator[tuple[int, list[bytes]]]:
    """The raw lines of a JSON Lines file, ``size`` at a time, as ``(number of the first, lines)``.

    Blank lines are included (the caller skips them, keeping the numbering); a
    byte-order mark at the start of the file is removed. Memory stays bounded by
    the chunk, not the file.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "in.jsonl"
    >>> _ = p.write_bytes(b'\\xef\\xbb\\xbf{"a": 1}\\n\\n{"a": 2}\\n')
    >>> list(iter_jsonl_chunks(p, size=2))
    [(1, [b'{"a": 1}\\n', b'\\n']), (3, [b'{"a": 2}\\n'])]
    """
    try:
        with _open_binary(path) as stream:
            number = 1
            while True:
                lines = list(islice(stream, size))
                if not lines:
                    return
                if number == 1 and lines[0].startswith(_BOM):
                    lines[0] = lines[0][len(_BOM) :]
                yield number, lines
                number += len(lines)
    except EOFError as exc:
        raise OSError(f"{os.fspath(path)}: the gzip stream ends early ({exc}); the file is truncated.") from exc


def iter_jsonl_blocks(path: str | os.PathLike[str], size: int = 1 << 21) -> Iterator[tuple[int, bytes]]:
    """A JSON Lines file about ``size`` bytes at a time, cut after a newline, as
    ``(number of the first line, bytes)``.

    Whole lines only (the last block may end without a newline); a byte-order mark at
    the start of the file is removed. Cheaper than :func:`iter_jsonl_chunks` when the
    reader takes a chunk as it is: no object per line.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "in.jsonl"
    >>> _ = p.write_bytes(b'\\xef\\xbb\\xbf{"a": 1}\\n\\n{"a": 2}\\n{"a": 3}')
    >>> list(iter_jsonl_blocks(p, size=4))
    [(1, b'{"a": 1}\\n'), (2, b'\\n{"a": 2}\\n'), (4, b'{"a": 3}')]
    """
    try:
        with _open_binary(path) as stream:
            number = 1
            while True:
                data = stream.read(size)
                if not data:
                    return
                if not data.endswith(b"\n"):
                    data += stream.readline()
                if number == 1 and data.startswith(_BOM):
                    data = data[len(_BOM) :]
                yield number, data
                number += int(np.count_nonzero(np.frombuffer(data, np.uint8) == 10))  # bytes.count is slower
    except EOFError as exc:
        raise OSError(f"{os.fspath(path)}: the gzip stream ends early ({exc}); the file is truncated.") from exc


def iter_records(
    path: str | os.PathLike[str], *, format: Format | None = None
) -> Iterator[tuple[int, bytes | str | list[str], Record | RejectError]]:
    """Like :func:`iter_lines`, but ``(line number, content, result)`` without a
    :class:`Line` per line: the replay's hot path builds one only for rejects.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "in.jsonl"
    >>> _ = p.write_bytes(b'{"period": "2024-01", "reporter": "DE", "partner": "KZ", "hs_code": 854231, "value": 1}\\n')
    >>> [(n, r.hs6) for n, _, r in iter_records(p)]
    [(1, '854231')]
    """
    if (format or detect_format(path)) == "jsonl":
        try:
            yield from _parse_jsonl(path)
        except EOFError as exc:
            raise OSError(f"{os.fspath(path)}: the gzip stream ends early ({exc}); the file is truncated.") from exc
    else:
        for line, result in iter_lines(path, format="csv"):
            yield line.number, line.content, result


def _iter_csv(path: str | os.PathLike[str], source: str) -> Iterator[tuple[Line, Record | RejectError]]:
    for line, row in _iter_csv_rows(path, source):
        if isinstance(row, RejectError):
            yield line, row
        else:
            try:
                yield line, parse_mapping(row)
            except RejectError as exc:
                yield line, exc


def _escapable(text: str) -> bool:
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


def _has_bad_bytes(cells: list[str]) -> bool:
    try:
        for cell in cells:
            cell.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def iter_messages(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes, RejectError | None]]:
    """Every non-blank line as a JSON message for Kafka, without validating it.

    JSON Lines pass as they are; a CSV row becomes a JSON object of its
    non-empty cells (all strings: the consumer validates, as replay does). A
    CSV row that cannot be a JSON object comes with its reject and its text.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "in.csv"
    >>> _ = p.write_text("period,reporter,partner,hs_code,value,currency\\n2024-01,DE,KZ,854231,5,\\n")
    >>> [(n, m) for n, m, _ in iter_messages(p)]
    [(2, b'{"period":"2024-01","reporter":"DE","partner":"KZ","hs_code":"854231","value":"5"}')]
    """
    if detect_format(path) == "jsonl":
        for number, content in _jsonl_lines(path):
            yield number, content.rstrip(b"\r\n"), None
        return
    for line, result in _iter_csv_rows(path, os.fspath(path)):
        if isinstance(result, RejectError):
            yield line.number, line.raw.encode("utf-8", "replace"), result
        else:
            yield line.number, orjson.dumps(result), None


def _iter_csv_rows(path: str | os.PathLike[str], source: str) -> Iterator[tuple[Line, dict[str, str] | RejectError]]:
    """CSV rows as mappings of their non-empty cells, or the reason they cannot be."""
    with _open_binary(path) as binary, io.TextIOWrapper(
        binary, encoding="utf-8-sig", errors="surrogateescape", newline=""
    ) as text:
        reader = csv.reader(text)
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)  # leading blank lines
        if header is None:
            return
        names = [name.strip() for name in header]
        width = len(names)
        ended = reader.line_num
        for cells in reader:
            number, ended = ended + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            line = Line(source, number, cells)
            if len(cells) != width:
                yield line, RejectError(
                    "invalid_csv_row",
                    f"Row has {len(cells)} cells but the header has {width}; "
                    "quote cells that contain commas.",
                )
            elif not all(cell.isascii() for cell in cells) and _has_bad_bytes(cells):
                yield line, RejectError("encoding", "Row is not valid UTF-8; write the file as UTF-8.")
            else:
                yield line, {k: v for k, v in zip(names, cells) if v.strip()}
