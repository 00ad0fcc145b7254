"""Is a run's input usable? And if not, what the operator should look at.

A replay that accepted no record, or rejected most of its lines, must not end
like a quiet month ("no surges"): a scheduled job would read it as good news.
:func:`verdict` says whether the run's input was unusable, with the dominant
reject reason and a hint read from the files themselves (a semicolon-separated
CSV, decimal commas, header names that are not the contract's, a file that is
not JSON Lines).
"""

from __future__ import annotations

import csv
import gzip
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Unusable", "verdict"]

_SNIFF = 64 * 1024
_CONTRACT = ("declaration_id", "date", "period", "reporter", "partner", "flow", "hs_code", "value", "currency")
_DECIMAL_COMMA = re.compile(r"^\s*-?[0-9]{1,3}(?:[. ][0-9]{3})*,[0-9]+\s*$|^\s*-?[0-9]+,[0-9]+\s*$")


@dataclass(frozen=True)
class Unusable:
    """Why a run's input was unusable: a sentence, the dominant reason and a hint."""

    message: str
    reason: str | None
    hint: str

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


def verdict(
    inputs: Sequence[str | os.PathLike[str]], lines: int, accepted: int, rejected: Counter[str], max_share: float
) -> Unusable | None:
    """``None`` when the input was usable, else why not.

    Unusable: no line at all, no line accepted, or more than ``max_share`` of the
    lines rejected.

    Examples
    --------
    >>> verdict([], 10, 9, Counter({"invalid_json": 1}), 0.5) is None
    True
    >>> v = verdict([], 10, 2, Counter({"invalid_json": 8}), 0.5)
    >>> v.reason, v.message
    ('invalid_json', '8 of 10 lines (80%) were rejected, more than the 50% allowed ([input] max_reject_share); most for invalid_json (8).')
    """
    total_rejected = sum(rejected.values())
    reason, most = rejected.most_common(1)[0] if rejected else (None, 0)
    if lines == 0:
        message = "The input holds no lines: nothing was checked."
    elif accepted == 0:
        message = (f"None of the {lines:,} line{'s' * (lines != 1)} was accepted; most were rejected for {reason} "
                   f"({most:,}).")
    elif total_rejected > max_share * lines:
        message = (
            f"{total_rejected:,} of {lines:,} lines ({total_rejected / lines:.0%}) were rejected, more than the "
            f"{max_share:.0%} allowed ([input] max_reject_share); most for {reason} ({most:,})."
        )
    else:
        return None
    if lines == 0:
        return Unusable(message, None, "The files are empty, or hold only a header and blank lines: check the "
                        "export that wrote them.")
    return Unusable(message, reason, _hint(inputs, reason))


def _hint(inputs: Sequence[str | os.PathLike[str]], reason: str | None) -> str:
    for path in inputs:
        head = _head(path)
        if head is None:
            continue
        if reason and reason.startswith("encoding"):
            found = _encoding(head)
            if found:
                return (f"{os.fspath(path)} is not UTF-8 but reads as {found}: set [input] encoding = \"{found}\" "
                        "in the configuration (--config), or save the file as UTF-8.")
        text = head.decode("utf-8", "replace").lstrip("\ufeff")
        first = next((line for line in text.splitlines() if line.strip()), "")
        if not first:
            continue
        if first.lstrip().startswith(("{", "[")):
            if reason and reason.startswith(("invalid_json", "not_an_object")):
                return f"{os.fspath(path)}: each line must be one JSON object (JSON Lines), not a JSON document."
            continue
        hint = _csv_hint(os.fspath(path), text, first)
        if hint:
            return hint
    if reason and reason.startswith("date_out_of_range"):
        return "Check the dates, or widen [input] earliest / latest in the configuration (--config)."
    if reason == "no_fx_rate":
        return "Add the currency's rate to [currency.rates] in the configuration (--config)."
    return "Run again with --rejects-out FILE to see each rejected line and its reason (docs/input-format.md)."


def _encoding(head: bytes) -> str | None:
    """The likely encoding of bytes that are not UTF-8: cp1252 (Windows' Western European), else latin-1."""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:  # cut inside a character at the end of the sample
            return None
    else:
        return None
    try:
        head.decode("cp1252")
    except UnicodeDecodeError:
        return "latin-1"
    return "cp1252"


def _csv_hint(path: str, text: str, first: str) -> str | None:
    delimiter = max((";", "\t", "|", ","), key=first.count)
    names = [n.strip().strip('"').lower() for n in first.split(delimiter)]
    if delimiter != "," and first.count(delimiter) > first.count(","):
        shown = {";": "semicolons", "\t": "tabs", "|": "'|'"}[delimiter]
        setting = {";": '";"', "\t": '"\\t"', "|": '"|"'}[delimiter]
        hint = (f"{path} looks separated by {shown}, not commas: set [input] delimiter = {setting} (or \"auto\", "
                "the default, which finds it)")
        if _has_decimal_commas(text, delimiter):
            hint += ' and decimal = "," (it writes numbers with decimal commas, e.g. \'1234,5\')'
        return hint + "."
    if _has_decimal_commas(text, ","):
        return (f"{path} writes numbers with decimal commas (e.g. \"1234,5\") in a comma-separated file: write "
                "them with a decimal point, or save the file separated by semicolons (then [input] decimal = \"auto\" "
                "reads the commas).")
    if not {"declaration_id", "period"} & set(names):
        return (f"{path}: the header ({', '.join(names[:8])}{' ...' if len(names) > 8 else ''}) names neither "
                f"declaration_id nor period; the contract's columns are {', '.join(_CONTRACT)} "
                "(docs/input-format.md).")
    return None


def _has_decimal_commas(text: str, delimiter: str) -> bool:
    rows = list(csv.reader(text.splitlines()[1:20], delimiter=delimiter))
    return any(_DECIMAL_COMMA.match(cell) for row in rows for cell in row)


def _head(path: str | os.PathLike[str]) -> bytes | None:
    """The first bytes of a file (decompressed when gzip), ``None`` if it cannot be read."""
    try:
        with open(path, "rb") as raw:
            start = raw.read(2)
            raw.seek(0)
            if start == b"\x1f\x8b":
                with gzip.open(raw) as unzipped:
                    return unzipped.read(_SNIFF)
            return raw.read(_SNIFF)
    except (OSError, EOFError):
        return None
