"""The case list's current view as CSV or XLSX: one row per case shown, the same order."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from transitwatch.streams.desk.table import EXPORT_COLUMNS

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula is quoted (CSV/formula injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _values(row: Mapping[str, Any]) -> list[Any]:
    return [_cell(row.get(name)) for name in EXPORT_COLUMNS]


def to_csv(rows: Iterable[Mapping[str, Any]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow(["" if v is None else v for v in _values(row)])
    return out.getvalue().encode("utf-8")


def to_xlsx(rows: Iterable[Mapping[str, Any]]) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("cases")
    sheet.append(list(EXPORT_COLUMNS))
    for row in rows:
        # Control characters cannot be stored in a worksheet: they are dropped from the cell.
        sheet.append([ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v for v in _values(row)])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
