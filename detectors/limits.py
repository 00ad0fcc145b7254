"""What an input may be: the range of dates and the size and shape of one line.

The contract (:mod:`transitwatch.detectors.contract`) says what a line must say; this says what
a run is willing to read. A date of 9999-12-31 is a valid date, but no customs
record carries it, and a replay would walk month by month towards it; a line of a
gigabyte or nested 20,000 deep is valid JSON, but it would exhaust memory or a
parser's stack. Such lines are rejects with their own reason
(``date_out_of_range``, ``line_too_long``, ``too_deep``), on every path: replay,
worker and notifier read their limits from here (``[input]`` in ``watch.toml``).

The latest date accepted depends on the present, which this pure module never
reads: the caller passes ``today`` (the command line's or the worker's clock).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np

from transitwatch.detectors.alerts import period_of
from transitwatch.detectors.errors import InvalidParameterError, RejectError

__all__ = [
    "InputLimits", "TimeDomain", "deeper_than", "line_too_long", "nesting_depth", "screen_lines", "too_deep",
]

#: months since year 0 of 1990-01: the default earliest month
EARLIEST_DEFAULT = 1990 * 12
#: a year past the present, by default
AHEAD_DEFAULT = 12


@dataclass(frozen=True, slots=True)
class TimeDomain:
    """The months (inclusive, as month indices) a run accepts records of.

    Examples
    --------
    >>> d = TimeDomain(1990 * 12, 2027 * 12 + 11)
    >>> d.check(2024 * 12) is None
    True
    >>> d.check(9999 * 12 + 11).reason
    'date_out_of_range'
    >>> d.mask(np.array([0, 2024 * 12, 9999 * 12])).tolist()
    [False, True, False]
    """

    first: int
    last: int

    def __post_init__(self) -> None:
        if not 1 * 12 <= self.first <= self.last <= 9999 * 12 + 11:
            raise InvalidParameterError(
                "input.earliest/latest", (period_of(self.first), period_of(self.last)),
                "earliest <= latest, both between 0001-01 and 9999-12",
            )

    def __contains__(self, month: int) -> bool:
        return self.first <= month <= self.last

    def check(self, month: int) -> RejectError | None:
        """The reject of a record of ``month`` outside the domain, else ``None``."""
        if self.first <= month <= self.last:
            return None
        return self.reject(month)

    def reject(self, month: int) -> RejectError:
        """The reject of a record of ``month`` (which is outside the domain)."""
        when = "before" if month < self.first else "after"
        shown = period_of(month) if 0 <= month <= 9999 * 12 + 11 else str(month)
        return RejectError(
            "date_out_of_range",
            f"The record's month {shown} is {when} the range this run accepts "
            f"({period_of(self.first)} to {period_of(self.last)}); fix the date, or widen "
            "[input] earliest / latest in the configuration.",
        )

    def mask(self, months: np.ndarray) -> np.ndarray:
        """Where month indices are inside the domain."""
        return (months >= self.first) & (months <= self.last)


@dataclass(frozen=True, kw_only=True, slots=True)
class InputLimits:
    """The ``[input]`` section of the watch configuration.

    Parameters
    ----------
    earliest : int
        First month accepted (month index); default 1990-01.
    latest : int or None
        Last month accepted; ``None``: ``ahead_months`` past the present.
    ahead_months : int
        How far past the present ``latest`` lies when unset.
    max_line_bytes : int
        Longest line (or Kafka message) read; longer ones are rejected unread.
    max_depth : int
        Deepest nesting of JSON arrays and objects read.
    max_quoted_lines : int
        Lines one quoted CSV cell may span before the row is rejected.
    max_reject_share : float
        A run that rejects more than this share of its lines fails (exit code 4).

    Examples
    --------
    >>> limits = InputLimits()
    >>> d = limits.domain(dt.date(2026, 12, 6))
    >>> period_of(d.first), period_of(d.last)
    ('1990-01', '2027-12')
    >>> InputLimits(max_depth=0)
    Traceback (most recent call last):
    ...
    transitwatch.detectors.errors.InvalidParameterError: invalid parameter max_depth=0: expected an integer >= 2
    """

    earliest: int = EARLIEST_DEFAULT
    latest: int | None = None
    ahead_months: int = AHEAD_DEFAULT
    max_line_bytes: int = 1_000_000
    max_depth: int = 32
    max_quoted_lines: int = 1
    max_reject_share: float = 0.5

    def __post_init__(self) -> None:
        _integer("ahead_months", self.ahead_months, 0)
        _integer("max_line_bytes", self.max_line_bytes, 256)
        _integer("max_depth", self.max_depth, 2)
        _integer("max_quoted_lines", self.max_quoted_lines, 1)
        share = self.max_reject_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise InvalidParameterError("max_reject_share", share, "a number from 0 to 1")
        if self.latest is not None:
            TimeDomain(self.earliest, self.latest)

    def domain(self, today: dt.date) -> TimeDomain:
        """The months accepted when the present is ``today``."""
        last = self.latest if self.latest is not None else today.year * 12 + today.month - 1 + self.ahead_months
        return TimeDomain(self.earliest, max(last, self.earliest))


def _integer(name: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InvalidParameterError(name, value, f"an integer >= {least}")


# What can change the depth: quotes, backslashes (inside strings) and brackets.
_SIGNIFICANT = re.compile(rb'[\\"\[\]{}]')


def nesting_depth(data: bytes, limit: int) -> int:
    """How deep JSON arrays and objects nest in ``data``, counted up to ``limit + 1``.

    Brackets inside strings do not count. It visits only quotes, backslashes and
    brackets, one at a time: run it only on lines with more than ``limit`` opening
    brackets (no other line can be too deep), as :func:`screen_lines` does.

    Examples
    --------
    >>> nesting_depth(b'{"a": [1, {"b": "[[[["}]}', 10)
    3
    >>> nesting_depth(b'{"a": "\\\\\\\\", "b": [{"c": "\\\\"["}]}', 10)  # an escaped backslash, an escaped quote
    3
    >>> nesting_depth(b"[" * 1000, 5)
    6
    """
    depth = deepest = 0
    in_string = False
    escaped_at = -1  # the position of a byte a backslash escapes
    for match in _SIGNIFICANT.finditer(data):
        at = match.start()
        byte = data[at]
        if in_string:
            if at == escaped_at:
                continue
            if byte == 92:  # backslash
                escaped_at = at + 1
            elif byte == 34:  # quote
                in_string = False
        elif byte == 34:
            in_string = True
        elif byte in (91, 123):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif byte in (93, 125):  # ] }
            depth -= 1
    return deepest


def deeper_than(data: bytes, limit: int) -> bool:
    """Whether one JSON text nests arrays and objects deeper than ``limit``: the exact scan runs
    only when the text has more opening brackets than ``limit`` (no other text can be).

    >>> deeper_than(b'{"a": [[1]]}', 2), deeper_than(b'{"a": "[[[[[["}', 2)
    (True, False)
    """
    return data.count(b"[") + data.count(b"{") > limit and nesting_depth(data, limit) > limit


def line_too_long(size: int, limit: int) -> RejectError:
    """The reject of a line of ``size`` bytes (without its line break), over ``limit``.

    >>> line_too_long(5_000_000, 4 << 20).reason
    'line_too_long'
    """
    return RejectError(
        "line_too_long",
        f"Line is {size:,} bytes long, over the {limit:,} allowed ([input] max_line_bytes); it was "
        "skipped unread. One record is a few hundred bytes: look for a missing line break, "
        "or raise the limit.",
    )


def too_deep(limit: int) -> RejectError:
    """The reject of a line whose JSON nests deeper than ``limit``.

    >>> too_deep(32).reason
    'too_deep'
    """
    return RejectError(
        "too_deep",
        f"Line nests JSON arrays and objects more than {limit} deep ([input] max_depth); it was "
        "not parsed. A record is one flat object: flatten the nested values.",
    )


def screen_lines(data: bytes, limits: InputLimits, ends: np.ndarray | None = None) -> list[tuple[int, RejectError]]:
    """The lines of a chunk that are too long or too deep to be handed to a parser.

    Parameters
    ----------
    data : bytes
        Whole lines, each ended by ``\\n`` (the last may lack it).
    limits : InputLimits
        ``max_line_bytes`` and ``max_depth`` apply.
    ends : numpy.ndarray, optional
        The positions of the newlines in ``data``, if the caller has them.

    Returns
    -------
    list of (int, RejectError)
        The 0-based index of each such line in ``data``, in order, and its reject.

    Notes
    -----
    Vectorized, so normal data costs two passes over the bytes: only a line with
    more opening brackets than ``max_depth`` gets the exact, per-byte
    :func:`nesting_depth`, and when the chunk as a whole has few brackets to
    spare (one object a line, nothing nested), no line is even counted.

    Examples
    --------
    >>> limits = InputLimits(max_line_bytes=256, max_depth=3)
    >>> [(i, e.reason) for i, e in screen_lines(b'{"a": [1]}\\n' + b"x" * 300 + b'\\n{"b": [[[1]]]}', limits)]
    [(1, 'line_too_long'), (2, 'too_deep')]
    """
    buf = np.frombuffer(data, np.uint8)
    if ends is None:
        ends = np.flatnonzero(buf == 10)
    size = len(buf)
    if size == 0:
        return []
    partial = buf[-1] != 10  # a last line without its newline
    n = len(ends) + partial
    starts = np.empty(n, np.int64)
    starts[0] = 0
    starts[1:] = ends[: n - 1] + 1
    stops = np.append(ends, size) if partial else ends
    found: dict[int, RejectError] = {}
    if size > limits.max_line_bytes:
        lengths = stops - starts
        for i in np.flatnonzero(lengths > limits.max_line_bytes).tolist():
            found[i] = line_too_long(int(lengths[i]), limits.max_line_bytes)
    limit = limits.max_depth
    opens = np.count_nonzero(buf == 123) + np.count_nonzero(buf == 91)
    # When every line starts with "{", one line holds at most the others' brackets less n - 1.
    if opens > limit and (opens - (n - 1) > limit or not (buf[starts] == 123).all()):
        where = np.flatnonzero((buf == 123) | (buf == 91))
        per_line = np.bincount(np.searchsorted(stops, where), minlength=n)
        for i in np.flatnonzero(per_line > limit).tolist():
            if i not in found and nesting_depth(data[starts[i] : stops[i]], limit) > limit:
                found[i] = too_deep(limit)
    return sorted(found.items())
