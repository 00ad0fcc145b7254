"""Validation helpers for frozen, keyword-only parameter dataclasses."""

from __future__ import annotations

import math
from typing import Any

from transitwatch.detectors.errors import InvalidParameterError


def check_positive(obj: Any, *names: str, allow_zero: bool = False) -> None:
    """Raise :class:`InvalidParameterError` unless each named field is a finite number > 0.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class P:
    ...     a: float = -1.0
    >>> check_positive(P(), "a")
    Traceback (most recent call last):
    ...
    transitwatch.detectors.errors.InvalidParameterError: invalid parameter a=-1.0: expected a finite number > 0
    """
    for name in names:
        value = getattr(obj, name)
        ok = isinstance(value, (int, float)) and math.isfinite(value)
        ok = ok and (value >= 0 if allow_zero else value > 0)
        if not ok:
            expected = "a finite number >= 0" if allow_zero else "a finite number > 0"
            raise InvalidParameterError(name, value, expected)


def check_range(obj: Any, name: str, low: float, high: float) -> None:
    """Raise unless ``low <= obj.name <= high``."""
    value = getattr(obj, name)
    if not (isinstance(value, (int, float)) and low <= value <= high):
        raise InvalidParameterError(name, value, f"a number in [{low}, {high}]")
