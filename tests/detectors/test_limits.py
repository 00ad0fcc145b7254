"""The input limits of ``transitwatch.detectors.limits``: the exact depth scan, the vectorized screen of a chunk,
and the month arithmetic that must hold for every month a record can carry (years 0 to 9999)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transitwatch.detectors.frame import month_end, month_end_ordinal
from transitwatch.detectors.limits import InputLimits, TimeDomain, nesting_depth, screen_lines


def _depth_by_bytes(data: bytes) -> int:
    """The reference: a plain byte loop over every byte (what nesting_depth computed before)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 92:
                escaped = True
            elif byte == 34:
                in_string = False
        elif byte == 34:
            in_string = True
        elif byte in (91, 123):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (93, 125):
            depth -= 1
    return deepest


def _depth_of_value(value) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth_of_value(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth_of_value(v) for v in value), default=0)
    return 0


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab"\\[]{}\n', max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='k"[{\\', max_size=3), inner, max_size=3),
    max_leaves=20,
)


@given(_JSON, st.integers(1, 12))
@settings(max_examples=400, deadline=None)
def test_nesting_depth_of_json_is_its_depth_capped_past_the_limit(value, limit):
    data = json.dumps(value).encode()
    assert nesting_depth(data, limit) == min(_depth_of_value(value), limit + 1)


@given(st.binary(max_size=60) | st.text(alphabet='"\\[]{}x ', max_size=60).map(str.encode))
@settings(max_examples=400, deadline=None)
def test_nesting_depth_of_any_bytes_is_the_byte_loop(data):
    assert nesting_depth(data, 1000) == _depth_by_bytes(data)


def test_nesting_depth_stops_early_on_a_huge_nesting():
    assert nesting_depth(b"[" * 10_000_000, 32) == 33  # a full scan of 10 MB in Python would take seconds


_LINE = st.one_of(
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
    st.integers(0, 40).map(lambda k: b'{"a": ' + b"[" * k + b"]" * k + b"}"),
    st.integers(0, 40).map(lambda k: b'{"s": "' + b"[" * k + b'"}'),  # brackets in a string: not deep
    st.integers(0, 600).map(lambda k: b'{"x": "' + b"y" * k + b'"}'),
    st.just(b""),
)


@given(st.lists(_LINE, max_size=12), st.booleans(), st.integers(2, 12), st.integers(256, 700))
@settings(max_examples=400, deadline=None)
def test_screen_lines_finds_exactly_the_lines_too_long_or_too_deep(lines, final_newline, depth, size):
    limits = InputLimits(max_line_bytes=size, max_depth=depth)
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    expected = []
    for i, line in enumerate(data.split(b"\n")[: len(lines)] if data else []):
        if len(line) > size:
            expected.append((i, "line_too_long"))
        elif _depth_by_bytes(line) > depth:
            expected.append((i, "too_deep"))
    assert [(i, e.reason) for i, e in screen_lines(data, limits)] == expected
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    assert [(i, e.reason) for i, e in screen_lines(data, limits, ends)] == expected


def test_screen_lines_messages_say_the_size_and_the_setting():
    [(i, error)] = screen_lines(b'{"a": 1}\n' + b"x" * 5000 + b"\n", InputLimits(max_line_bytes=4096))
    assert i == 1 and "5,000 bytes" in error.message and "max_line_bytes" in error.message
    [(_, error)] = screen_lines(b"[" * 40, InputLimits(max_depth=32))
    assert error.reason == "too_deep" and "32" in error.message and "max_depth" in error.message


def test_screen_lines_looks_at_a_line_without_a_leading_brace_even_when_the_total_is_small():
    """The shortcut (n lines starting with "{" hold >= n brackets) must not hide a deep line
    among lines without any bracket."""
    data = b"1\n2\n3\n" + b"[" * 5 + b"\n"
    assert [(i, e.reason) for i, e in screen_lines(data, InputLimits(max_depth=4))] == [(3, "too_deep")]


# --- months -------------------------------------------------------------------------------------

def test_month_end_ordinal_is_exact_for_every_month_of_years_0_to_9999():
    months = range(0, 9999 * 12 + 12)
    ordinals = np.array([month_end_ordinal(m) for m in months])
    lengths = np.diff(ordinals)
    assert set(lengths.tolist()) <= {28, 29, 30, 31}
    assert ordinals[-1] == dt.date(9999, 12, 31).toordinal()
    assert ordinals[11] == 0, "year 0 (a leap year in the proleptic calendar) ends the day before 0001-01-01"
    assert ordinals[1] == 29 + 31 - 366, "0000-02 has 29 days"
    for m in (12, 13, 2023 * 12 + 1, 2024 * 12 + 1, 9999 * 12 + 10):
        assert dt.date.fromordinal(int(ordinals[m])) == (
            dt.date(m // 12 + (m % 12 == 11), (m + 1) % 12 + 1, 1) - dt.timedelta(days=1)
        )


@pytest.mark.parametrize(("month", "expected"), [
    (0, dt.date(1, 1, 1)),  # year 0: before any datetime.date
    (11, dt.date(1, 1, 1)),
    (12, dt.date(1, 1, 31)),
    (9999 * 12 + 11, dt.date(9999, 12, 31)),
    (2024 * 12 + 1, dt.date(2024, 2, 29)),
])
def test_month_end_never_raises_for_a_month_a_record_can_carry(month, expected):
    assert month_end(month) == expected


def test_a_month_no_record_can_carry_is_an_error():
    with pytest.raises(ValueError, match="outside years 0 to 9999"):
        month_end_ordinal(10_000 * 12)


def test_time_domain_of_the_default_limits():
    domain = InputLimits().domain(dt.date(2026, 12, 6))
    assert domain == TimeDomain(1990 * 12, 2027 * 12 + 11)
    assert domain.check(0).message.startswith("The record's month 0000-01 is before")
    assert "9999-12 is after" in domain.check(9999 * 12 + 11).message
