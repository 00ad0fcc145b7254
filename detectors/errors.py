"""One error tree for transitwatch.

Every error carries the data an operator needs, and also subclasses the
builtin it behaves like, so callers may catch either.
"""

from __future__ import annotations

from typing import Any


class TransitwatchError(Exception):
    """Root of every error transitwatch raises on purpose."""


class InvalidParameterError(TransitwatchError, ValueError):
    """A configuration or detector parameter is out of range.

    Raised at start-up, never on the first record.

    Examples
    --------
    >>> str(InvalidParameterError("z_threshold", -1, "a number > 0"))
    'invalid parameter z_threshold=-1: expected a number > 0'
    """

    def __init__(self, name: str, value: Any, expected: str) -> None:
        self.name = name
        self.value = value
        self.expected = expected
        super().__init__(f"invalid parameter {name}={value!r}: expected {expected}")


class ConfigError(TransitwatchError, ValueError):
    """The watch configuration file cannot be read or is inconsistent."""


class RejectError(TransitwatchError, ValueError):
    """An input line does not meet the input contract.

    ``reason`` is a short stable code used for counting (``invalid_json``,
    ``missing_field``, ``invalid_field`` ...); ``field`` names the offending
    field where there is one; ``message`` is a sentence for the operator.

    Examples
    --------
    >>> e = RejectError("invalid_field", "value must be >= 0", field="value")
    >>> e.key
    'invalid_field:value'
    """

    def __init__(self, reason: str, message: str, *, field: str | None = None) -> None:
        self.reason = reason
        self.field = field
        self.message = message
        super().__init__(message)

    @property
    def key(self) -> str:
        """The counting key: the reason, and the field where there is one."""
        return f"{self.reason}:{self.field}" if self.field else self.reason


class StrictModeError(TransitwatchError, ValueError):
    """``--strict`` was given and a line was rejected."""

    def __init__(self, source: str, line: int, error: RejectError) -> None:
        self.source = source
        self.line = line
        self.error = error
        super().__init__(f"{source}:{line}: {error.key}: {error.message}")


class StateError(TransitwatchError, ValueError):
    """A stored detector state cannot be restored (wrong version or shape)."""


class ReferenceDataError(TransitwatchError, ValueError):
    """A shipped reference data file (``detectors/data/``) is malformed.

    Examples
    --------
    >>> str(ReferenceDataError("sanctions_calendar.csv", 3, "applies_from '2022-13-01' is not a date"))
    "sanctions_calendar.csv:3: applies_from '2022-13-01' is not a date; fix the file (see detectors/data/SOURCES.md)"
    """

    def __init__(self, file: str, line: int, message: str) -> None:
        self.file = file
        self.line = line
        self.message = message
        super().__init__(f"{file}:{line}: {message}; fix the file (see detectors/data/SOURCES.md)")
