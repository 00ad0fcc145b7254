"""Reading input files: JSON Lines or CSV, gzip-compressed or not.

Compression is detected by the gzip magic bytes, never by the name (but a name
ending in ``.gz`` must hold gzip data). The format comes from the extension
(``.jsonl``, ``.ndjson``, ``.json`` or ``.csv``, each optionally followed by
``.gz``); any other name is sniffed: a first non-blank byte ``{`` means JSON
Lines, anything else CSV.

JSON Lines are parsed from bytes, without decoding, so the fast path of
:func:`transitwatch.detectors.contract.parse_json_line` stays fast; the text of a line is
only built when somebody asks for :attr:`Line.raw` (the rejects file does).

Every reader is bounded by :class:`~transitwatch.detectors.limits.InputLimits`: a file is read
in pieces, and a line longer than ``max_line_bytes`` is skipped to the next
newline without ever being held whole (a :class:`LongLine` keeps its size and
first bytes for the rejects file); a JSON line nested deeper than ``max_depth``
is rejected before any parser sees it. CSV is split into physical lines here,
and a row is handed to :mod:`csv` only once its quotes close within
``max_quoted_lines`` lines: a stray quote rejects its own line
(``unclosed_quote``) instead of silently merging the rows after it.

A file that cannot be read raises :class:`InputFileError` (an ``OSError``) with
one sentence naming the file; :func:`check_inputs` raises it before any work.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import stat
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal, NamedTuple

import numpy as np
import orjson

from transitwatch.detectors.contract import Record, parse_json_line, parse_mapping
from transitwatch.detectors.errors import RejectError, TransitwatchError
from transitwatch.detectors.limits import InputLimits, TimeDomain, line_too_long, screen_lines

__all__ = [
    "Chunk", "InputFileError", "Line", "LongLine", "check_inputs", "count_lines", "detect_format",
    "iter_jsonl_blocks", "iter_lines", "iter_messages", "iter_records",
]

Format = Literal["jsonl", "csv"]

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
_MAX_RAW = 2000
_HEAD = 4 * _MAX_RAW  # bytes kept of a line too long to read: enough for the rejects file's text
_SNIFF_BYTES = 64 * 1024
_CHUNK = 1 << 20
_LIMITS = InputLimits()
# A CSV line ends at \r\n, \n or a lone \r (Excel's "CSV (Macintosh)"), as csv's own reading does.
_EOL = re.compile(rb"\r\n?|\n")


class InputFileError(TransitwatchError, OSError):
    """An input file cannot be read: missing, a directory, unreadable, not gzip, damaged.

    The message is one sentence that starts with the file's name.

    Examples
    --------
    >>> str(InputFileError("in.jsonl.gz: the gzip stream ends early; the file is truncated."))
    'in.jsonl.gz: the gzip stream ends early; the file is truncated.'
    """


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
        if isinstance(content, bytes):  # a UTF-8 character is at most 4 bytes: decode no more than is shown
            text = content[: 4 * _MAX_RAW].decode("utf-8", errors="replace")
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
    with _reading(path) as stream:
        head = stream.read(_SNIFF_BYTES)
    head = head.removeprefix(_BOM).lstrip()
    return "jsonl" if head.startswith(b"{") else "csv"


@dataclass(frozen=True, slots=True)
class LongLine:
    """A line longer than ``max_line_bytes``, skipped unread: its number, size and first bytes.

    Examples
    --------
    >>> LongLine(7, 5_000_000, b'{"declaration_id": "A"').reject(4 << 20).reason
    'line_too_long'
    """

    number: int
    size: int
    head: bytes = field(repr=False)

    def reject(self, limit: int) -> RejectError:
        return line_too_long(self.size, limit)


class Chunk(NamedTuple):
    """A piece of a JSON Lines file from :func:`iter_jsonl_blocks`.

    ``data`` is whole lines (the last may lack its newline) and ``ends`` the
    positions of their newlines; or ``data`` is a :class:`LongLine` (``ends`` is
    None), numbered ``first``.
    """

    first: int
    data: bytes | LongLine
    ends: np.ndarray | None = None


def check_inputs(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Check that every input can be read, before a run does any work.

    Each must exist, be a file (or a pipe), be readable, and, when it is gzip
    data (or named ``.gz``), have a gzip header whose first bytes decompress.

    Raises
    ------
    InputFileError
        For the first input that fails, with one sentence that names it.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "in.jsonl.gz").write_bytes(b'{"period": "2024-01"}\\n')
    >>> check_inputs([folder / "in.jsonl.gz"])
    Traceback (most recent call last):
    ...
    transitwatch.streams.files.InputFileError: .../in.jsonl.gz is named .gz but is not gzip data (it does not start with the gzip bytes 1f 8b); if it holds plain text, remove .gz from its name.
    """
    for path in paths:
        source = os.fspath(path)
        with _file_errors(source):
            mode = os.stat(path).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(source)
            if not stat.S_ISREG(mode):
                continue  # a pipe (``<(zcat ...)``) can be read once only: reading it here would lose its start
            with _open_binary(path) as stream:
                stream.read(1)


def _open_binary(path: str | os.PathLike[str]) -> BinaryIO:
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == _GZIP_MAGIC
    if not gzipped and os.fspath(path).lower().endswith(".gz"):
        raise InputFileError(
            f"{os.fspath(path)} is named .gz but is not gzip data (it does not start with the gzip bytes "
            "1f 8b); if it holds plain text, remove .gz from its name."
        )
    return gzip.open(path, "rb") if gzipped else open(path, "rb")  # type: ignore[return-value]


@contextmanager
def _file_errors(source: str) -> Iterator[None]:
    """Turn whatever reading a file raises into one :class:`InputFileError` sentence naming it."""
    try:
        yield
    except InputFileError:
        raise
    except EOFError as exc:
        raise InputFileError(f"{source}: the gzip stream ends early; the file is truncated (copy it again).") from exc
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise InputFileError(
            f"{source}: the gzip data is damaged ({exc}); copy the file again, or check it with gzip -t."
        ) from exc
    except FileNotFoundError as exc:
        raise InputFileError(f"{source}: no such file.") from exc
    except IsADirectoryError as exc:
        raise InputFileError(f"{source} is a directory, not a file; give the files in it instead.") from exc
    except PermissionError as exc:
        raise InputFileError(f"{source}: permission denied; the file must be readable by this user.") from exc
    except OSError as exc:
        raise InputFileError(f"{source}: {exc.strerror or exc}.") from exc


@contextmanager
def _reading(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """The file's bytes (decompressed if gzip), after a byte-order mark if it starts with one;
    any failure, opening or reading, is an InputFileError."""
    with _file_errors(os.fspath(path)), _open_binary(path) as stream:
        if stream.peek(len(_BOM))[: len(_BOM)] == _BOM:  # type: ignore[attr-defined]
            stream.read(len(_BOM))
        yield stream


def iter_lines(
    path: str | os.PathLike[str],
    *,
    format: Format | None = None,
    limits: InputLimits = _LIMITS,
    domain: TimeDomain | None = None,
) -> Iterator[tuple[Line, Record | RejectError]]:
    """Yield every non-blank line of an input file once, parsed.

    Parameters
    ----------
    path : str or PathLike
        A JSON Lines or CSV file, gzip-compressed or not.
    format : {'jsonl', 'csv'}, optional
        Overrides :func:`detect_format`.
    limits : InputLimits, optional
        The longest line, deepest nesting and quoted lines of a CSV row read.
    domain : TimeDomain, optional
        The months accepted; a record of another month is a ``date_out_of_range`` reject.

    Yields
    ------
    (Line, Record or RejectError)
        The rejected lines are yielded, not raised; a CSV row whose cell count
        differs from the header's is rejected as ``invalid_csv_row``. A CSV row
        that spans several lines (a quoted cell with a line break, when
        ``max_quoted_lines`` allows it) is yielded once, numbered by its first line.

    Raises
    ------
    InputFileError
        If the file cannot be opened or read (including a truncated gzip stream).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "in.csv"
    >>> _ = p.write_text("period,reporter,partner,hs_code,value\\n2024-01,DE,KZ,854231,5\\n")
    >>> [(line.number, rec.hs6) for line, rec in iter_lines(p)]
    [(2, '854231')]
    """
    source = os.fspath(path)
    for number, content, result in iter_records(path, format=format, limits=limits, domain=domain):
        yield Line(source, number, content), result


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
    with _file_errors(os.fspath(path)), open(path, "rb") as stream:
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


def _skip_line(stream: BinaryIO) -> int:
    """Read past the rest of a line, a piece at a time; returns its bytes before the newline."""
    size = 0
    while True:
        piece = stream.readline(_CHUNK)
        if piece.endswith(b"\n"):
            return size + len(piece) - 1
        size += len(piece)
        if not piece:
            return size


def _jsonl_lines(stream: BinaryIO, limits: InputLimits) -> Iterator[tuple[int, bytes, RejectError | None]]:
    """The non-blank lines of a JSON Lines stream as ``(1-based number, line without its \\n,
    reject)``: a line too long (only its first bytes are read) or too deep comes with its
    reject, found a chunk at a time (:func:`~transitwatch.detectors.limits.screen_lines`)."""
    limit = limits.max_line_bytes
    for first, data, ends in _chunks(stream, _CHUNK, limit):
        if isinstance(data, LongLine):
            yield first, data.head, data.reject(limit)
            continue
        screened = dict(screen_lines(data, limits, ends))
        lines = data.split(b"\n")
        if data.endswith(b"\n"):
            lines.pop()
        for i, content in enumerate(lines):
            if screened and i in screened:
                yield first + i, content[:_HEAD], screened[i]
            elif content and not content.isspace():
                yield first + i, content, None


def _parse_jsonl(
    path: str | os.PathLike[str], limits: InputLimits, domain: TimeDomain | None
) -> Iterator[tuple[int, bytes, Record | RejectError]]:
    with _reading(path) as stream:
        for number, content, error in _jsonl_lines(stream, limits):
            yield number, content, error or _admitted(parse_json_line, content, domain)


def _admitted(parse: Callable[[Any], Record], content: Any, domain: TimeDomain | None) -> Record | RejectError:
    """``content`` through the contract, then the domain of time: the record or why not."""
    try:
        rec = parse(content)
    except RejectError as exc:
        return exc
    error = domain.check(rec.month) if domain is not None else None
    return rec if error is None else error


def iter_jsonl_blocks(
    path: str | os.PathLike[str], size: int = 1 << 21, limits: InputLimits = _LIMITS
) -> Iterator[Chunk]:
    """A JSON Lines file about ``size`` bytes at a time, cut after a newline, as :class:`Chunk` s.

    Whole lines only (the last chunk may end without a newline); a byte-order mark at
    the start of the file is removed. A line that would stretch a chunk past
    ``limits.max_line_bytes`` comes alone, as a :class:`LongLine`, read past but never
    held; shorter lines over the limit stay in their chunk (:func:`transitwatch.detectors.limits.screen_lines`
    finds them). Memory stays bounded by ``size`` plus the limit, whatever the file.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "in.jsonl"
    >>> _ = p.write_bytes(b'\\xef\\xbb\\xbf{"a": 1}\\n\\n{"a": 2}\\n' + b"x" * 300 + b'\\n{"a": 3}')
    >>> [(c.first, c.data if isinstance(c.data, bytes) else c.data.size) for c in
    ...  iter_jsonl_blocks(p, size=4, limits=InputLimits(max_line_bytes=256))]
    [(1, b'{"a": 1}\\n'), (2, b'\\n{"a": 2}\\n'), (4, 300), (5, b'{"a": 3}')]
    """
    with _reading(path) as stream:
        yield from _chunks(stream, size, limits.max_line_bytes)


def _chunks(stream: BinaryIO, size: int, limit: int) -> Iterator[Chunk]:
    """:func:`iter_jsonl_blocks` over an open stream."""
    number = 1
    while True:
        data = stream.read(size)
        if not data:
            return
        long = None
        if not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1  # where the unfinished last line starts
            have = len(data) - cut
            tail = stream.readline(max(limit - have, 0) + 1)
            if tail.endswith(b"\n") or len(tail) <= limit - have:  # finished within the limit, or at the end
                data += tail
            else:
                rest = _skip_line(stream)
                long = (data[cut : cut + _HEAD] + tail)[:_HEAD], have + len(tail) + rest
                data = data[:cut]
        if data:
            ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
            yield Chunk(number, data, ends)
            number += len(ends)
        if long is not None:
            head, length = long
            yield Chunk(number, LongLine(number, length, head))
            number += 1


def iter_records(
    path: str | os.PathLike[str],
    *,
    format: Format | None = None,
    limits: InputLimits = _LIMITS,
    domain: TimeDomain | None = None,
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
        yield from _parse_jsonl(path, limits, domain)
        return
    for number, content, row in _iter_csv_rows(path, limits):
        yield number, content, row if isinstance(row, RejectError) else _admitted(parse_mapping, row, domain)


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


def iter_messages(
    path: str | os.PathLike[str], limits: InputLimits = _LIMITS
) -> Iterator[tuple[int, bytes, RejectError | None]]:
    """Every non-blank line as a JSON message for Kafka, without validating it.

    JSON Lines pass as they are; a CSV row becomes a JSON object of its
    non-empty cells (all strings: the consumer validates, as replay does). A
    line that cannot be a message comes with its reject and its text (a CSV row
    with the wrong number of cells or an unclosed quote; a line longer than
    ``limits.max_line_bytes``, of which only the first bytes are kept; JSON nested
    deeper than ``limits.max_depth``, which would stop a parser).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "in.csv"
    >>> _ = p.write_text("period,reporter,partner,hs_code,value,currency\\n2024-01,DE,KZ,854231,5,\\n")
    >>> [(n, m) for n, m, _ in iter_messages(p)]
    [(2, b'{"period":"2024-01","reporter":"DE","partner":"KZ","hs_code":"854231","value":"5"}')]
    """
    source = os.fspath(path)
    if detect_format(path) == "jsonl":
        with _reading(path) as stream:
            for number, content, error in _jsonl_lines(stream, limits):
                yield number, content.rstrip(b"\r\n"), error
        return
    for number, content, result in _iter_csv_rows(path, limits):
        if isinstance(result, RejectError):
            yield number, Line(source, number, content).raw.encode("utf-8", "replace"), result
        else:
            yield number, orjson.dumps(result), None


# -- CSV ---------------------------------------------------------------------------------------


def _physical_lines(stream: BinaryIO, limit: int) -> Iterator[tuple[int, bytes | LongLine]]:
    """Every line of a stream (blank ones too), numbered from 1, with its line ending. A line ends at ``\\r\\n``, ``\\n`` or a lone ``\\r``; one over ``limit`` bytes
    (without its ending) is a :class:`LongLine`, and no more than ``limit`` plus a piece is held."""
    number, carry = 0, b""
    skipping: tuple[bytes, int] | None = None  # (head, bytes so far) of a long line being read past
    while True:
        chunk = stream.read(_CHUNK)
        data = carry + chunk if carry else chunk
        done = not chunk
        start = 0
        for match in _EOL.finditer(data):
            end = match.end()
            if end == len(data) and not done and data[-1] == 13:
                break  # a \r at the end: a \n may follow in the next piece
            number += 1
            if skipping is not None:
                head, size = skipping
                yield number, LongLine(number, size + match.start() - start, head)
                skipping = None
            elif match.start() - start > limit:
                yield number, LongLine(number, match.start() - start, data[start : start + _HEAD])
            else:
                yield number, data[start:end]
            start = end
        rest = data[start:]
        if done:
            if skipping is not None or len(rest) > limit:
                head, size = skipping or (rest[:_HEAD], 0)
                yield number + 1, LongLine(number + 1, size + len(rest), head)
            elif rest:
                yield number + 1, rest
            return
        keep = 1 if rest.endswith(b"\r") else 0  # a \r that may start a \r\n
        if skipping is not None:
            skipping = (skipping[0], skipping[1] + len(rest) - keep)
            carry = rest[len(rest) - keep :]
        elif len(rest) - keep > limit:
            skipping = (rest[:_HEAD], len(rest) - keep)
            carry = rest[len(rest) - keep :]
        else:
            carry = rest


class _Feed:
    """The lines of one CSV row for a :func:`csv.reader`, which notes when the reader wants more
    (a quote is still open at the end of the last one)."""

    __slots__ = ("lines", "wanted")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.wanted = False

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        if self.lines:
            return self.lines.pop()
        self.wanted = True
        raise StopIteration


class _CsvRows:
    """Logical CSV rows from physical lines: ``(number of the first line, content, cells or reject)``.

    A row is parsed by :mod:`csv` only once its quotes close within ``max_quoted_lines``
    lines. When they do not, or when a row they close over several lines has not
    ``width`` cells (set once the header is known: a stray quote, not a cell with a
    line break), the row's first line is an ``unclosed_quote`` reject and reading goes
    on with the line after it: a row the quote would have swallowed is read on its own.
    Blank lines (outside a quoted cell) are skipped.
    """

    def __init__(self, lines: Iterator[tuple[int, bytes | LongLine]], limits: InputLimits) -> None:
        self.lines = lines
        self.limits = limits
        self.width: int | None = None
        self.ahead: list[tuple[int, bytes | LongLine]] = []  # lines to read again, the next one last
        self.feed = _Feed()
        self.reader = csv.reader(self.feed)

    def _pull(self) -> tuple[int, bytes | LongLine] | None:
        return self.ahead.pop() if self.ahead else next(self.lines, None)

    def __iter__(self) -> Iterator[tuple[int, str | bytes | list[str], list[str] | RejectError]]:
        limit = self.limits.max_line_bytes
        while (item := self._pull()) is not None:
            number, content = item
            if isinstance(content, LongLine):
                yield number, content.head, content.reject(limit)
            elif not content.isspace() and content:
                text = content.decode("utf-8", "surrogateescape")
                cells = self._row(text)
                yield number, (text if isinstance(cells, RejectError) else cells), cells

    def _row(self, text: str) -> list[str] | RejectError:
        span = self.limits.max_quoted_lines
        taken, more = [text], []
        feed = self.feed
        while True:
            feed.lines, feed.wanted = taken[::-1], False
            try:
                cells = next(self.reader)
            except csv.Error as exc:
                self.ahead.extend(reversed(more))
                return RejectError("invalid_csv_row", f"Row cannot be read as CSV ({exc}).")
            if not feed.wanted:
                if more and self.width is not None and len(cells) != self.width:
                    break  # closed by a quote of a later row: the first one was stray
                return cells
            following = self._pull() if len(taken) < span else None
            if following is None or isinstance(following[1], LongLine):
                if following is not None:
                    more.append(following)
                break
            more.append(following)
            taken.append(following[1].decode("utf-8", "surrogateescape"))
        self.ahead.extend(reversed(more))  # only the first line is at fault: read the others again
        return RejectError(
            "unclosed_quote",
            "A quoted cell opened on this line is not closed "
            + ("by the end of the line" if span == 1 else f"within {span} lines")
            + " ([input] max_quoted_lines); the line was rejected and the next line read as a row of "
            'its own. Close the quote, and write a quote inside a cell as two ("").',
        )


def _iter_csv_rows(
    path: str | os.PathLike[str], limits: InputLimits
) -> Iterator[tuple[int, str | bytes | list[str], dict[str, str] | RejectError]]:
    """CSV rows as ``(line number, content, mapping of the non-empty cells or the reason they cannot be)``.

    The header is the first row that is not blank; a line before it that cannot be
    read (too long, an unclosed quote) is a reject. A row whose cells are all empty
    (``,,,``) is blank, and skipped.
    """
    width = 0
    names: list[str] = []
    with _reading(path) as stream:
        rows = _CsvRows(_physical_lines(stream, limits.max_line_bytes), limits)
        for number, content, cells in rows:
            if isinstance(cells, RejectError):
                yield number, content, cells
                continue
            if not any(cell.strip() for cell in cells):
                continue
            if not names:
                names = [name.strip() for name in cells]
                width = rows.width = len(names)
            elif len(cells) != width:
                yield number, content, RejectError(
                    "invalid_csv_row",
                    f"Row has {len(cells)} cells but the header has {width}; quote cells that contain commas.",
                )
            elif not all(cell.isascii() for cell in cells) and _has_bad_bytes(cells):
                yield number, content, RejectError("encoding", "Row is not valid UTF-8; write the file as UTF-8.")
            else:
                yield number, content, {k: v for k, v in zip(names, cells) if v.strip()}
