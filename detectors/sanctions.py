"""The sanctions calendar: from when each HS code was banned for export to Russia and Belarus.

``detectors/data/sanctions_calendar.csv`` holds one row per code (an HS6, or an HS4 or HS2
prefix that stands for every HS6 under it), destination and measure: the EU's export bans of
Reg. 833/2014 (Russia) and 765/2006 (Belarus) by sanctions package, and the Common High Priority
List's tiers (a priority list, not a ban). ``detectors/data/SOURCES.md`` says where each part came
from and how precise it is. An alert says when its goods were banned and how many months before
its case's onset (:func:`months_since`); a case that opens a few months after its code's ban is
evidence severity uses (:class:`SanctionsParams`, :func:`evidence`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from transitwatch.detectors.errors import InvalidParameterError, ReferenceDataError

FILE = "sanctions_calendar.csv"
KINDS = ("export_ban", "priority_list")
DESTINATIONS = ("RU", "BY")
COLUMNS = ("hs_code", "destination", "kind", "measure", "package", "legal_act", "published", "applies_from",
           "latest_from", "precision", "source_url", "basis")
#: The month index of "never banned": later than any month a lane can have.
NO_BAN = np.iinfo(np.int64).max // 4


def month_index(day: dt.date) -> int:
    """``year * 12 + month - 1`` of a date (the month index of the rest of the package).

    >>> month_index(dt.date(2022, 2, 26))
    24265
    """
    return day.year * 12 + day.month - 1


def months_since(onset: int, ban: int) -> int:
    """Months from the ban's month to the onset month (negative: the onset came first).

    >>> months_since(month_index(dt.date(2022, 5, 1)), month_index(dt.date(2022, 2, 26)))
    3
    >>> months_since(month_index(dt.date(2021, 11, 1)), month_index(dt.date(2022, 2, 26)))
    -3
    """
    return int(onset) - int(ban)


@dataclass(frozen=True, slots=True)
class Measure:
    """One row of the calendar: a code's measure towards one destination."""

    hs_code: str  # 6 digits, or a 4- or 2-digit prefix of every HS6 under it
    destination: str
    kind: str  # export_ban | priority_list
    measure: str  # e.g. "EU 833/2014 Annex VII (advanced technology)", "CHPL tier 1"
    package: str  # e.g. "2nd package"
    legal_act: str  # e.g. "Council Regulation (EU) 2022/328"
    published: dt.date
    applies_from: dt.date
    latest_from: dt.date  # the date by which the code was certainly covered (see SOURCES.md)
    precision: str  # which rule dated it: code, heading, chapter, default, assumed
    source_url: str
    basis: str

    @property
    def month(self) -> int:
        """The month index of ``applies_from``."""
        return month_index(self.applies_from)

    @property
    def label(self) -> str:
        """What banned it, in words.

        >>> sanctions_calendar().ban("854231", ("RU",)).label
        'EU 833/2014 Annex VII (advanced technology), 2nd package (Council Regulation (EU) 2022/328)'
        """
        return f"{self.measure}, {self.package} ({self.legal_act})"


def _date(row: dict[str, str], name: str, line: int) -> dt.date:
    try:
        return dt.date.fromisoformat(row[name])
    except ValueError:
        raise ReferenceDataError(FILE, line, f"{name} {row[name]!r} is not a date written YYYY-MM-DD") from None


def parse(text: str) -> tuple[str, tuple[Measure, ...]]:
    """The version line and the rows of a calendar file; :class:`ReferenceDataError` on any bad row.

    >>> version, rows = parse(resources.files("transitwatch.detectors.data").joinpath(FILE).read_text("utf-8"))
    >>> version.startswith("sanctions_calendar version"), rows[0].hs_code
    (True, '010121')
    >>> parse("# v\\nhs_code\\n")
    Traceback (most recent call last):
    ...
    transitwatch.detectors.errors.ReferenceDataError: sanctions_calendar.csv:2: the columns must be hs_code, destination, ...
    """
    first, _, body = text.partition("\n")
    if not first.startswith("# "):
        raise ReferenceDataError(FILE, 1, "the first line must be the version line, starting '# '")
    reader = csv.DictReader(io.StringIO(body))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise ReferenceDataError(FILE, 2, f"the columns must be {', '.join(COLUMNS[:2])}, ...")
    out = []
    for line, row in enumerate(reader, start=3):
        code = row["hs_code"]
        if not (len(code) in (2, 4, 6) and code.isdigit()):
            raise ReferenceDataError(FILE, line, f"hs_code {code!r} must be 2, 4 or 6 digits")
        if row["destination"] not in DESTINATIONS:
            raise ReferenceDataError(FILE, line, f"destination {row['destination']!r} must be one of {DESTINATIONS}")
        if row["kind"] not in KINDS:
            raise ReferenceDataError(FILE, line, f"kind {row['kind']!r} must be one of {KINDS}")
        dates = {name: _date(row, name, line) for name in ("published", "applies_from", "latest_from")}
        if not dates["published"] <= dates["applies_from"] <= dates["latest_from"]:
            raise ReferenceDataError(FILE, line, "dates must be published <= applies_from <= latest_from")
        if not all(row[name] for name in ("measure", "package", "legal_act", "precision", "basis")):
            raise ReferenceDataError(FILE, line, "measure, package, legal_act, precision and basis must be given")
        out.append(Measure(**{**row, **dates}))
    return first[2:], tuple(out)


class SanctionsCalendar:
    """Look-ups of the calendar: the earliest ban of an HS6 to any of some destinations.

    Examples
    --------
    >>> cal = sanctions_calendar()
    >>> ban = cal.ban("854231", ("BY", "RU"))
    >>> ban.applies_from, ban.destination, ban.package
    (datetime.date(2022, 2, 26), 'RU', '2nd package')
    >>> cal.ban("854231", ("BY",)).legal_act
    'Council Regulation (EU) 2022/355'
    >>> cal.ban("010121", ("RU",)).package, cal.ban("010121", ("BY",))  # no Belarus row for it
    ('4th package', None)
    >>> cal.priority("854231", ("RU",)).measure
    'CHPL tier 1'
    >>> cal.ban_months(["854231", "999999"], ("RU",)).tolist() == [24265, NO_BAN]
    True
    """

    def __init__(self, measures: Iterable[Measure], version: str = "") -> None:
        self.version = version
        self.measures = tuple(measures)
        self._by: dict[tuple[str, str, str], list[Measure]] = {}
        for m in self.measures:
            self._by.setdefault((m.kind, m.destination, m.hs_code), []).append(m)
        self._cache: dict[tuple[str, str, tuple[str, ...]], Measure | None] = {}

    def _first(self, kind: str, hs6: str, destinations: Sequence[str]) -> Measure | None:
        key = (kind, hs6, tuple(sorted(destinations)))
        if key not in self._cache:
            found = [m for d in key[2] for code in (hs6, hs6[:4], hs6[:2])
                     for m in self._by.get((kind, d, code), ())]
            # earliest first; on a tie the most specific code, then the destination's order
            self._cache[key] = min(found, key=lambda m: (m.applies_from, -len(m.hs_code), m.destination),
                                   default=None)
        return self._cache[key]

    def ban(self, hs6: str, destinations: Sequence[str]) -> Measure | None:
        """The earliest export ban of ``hs6`` to any of ``destinations`` (its own row or a prefix's)."""
        return self._first("export_ban", hs6, destinations)

    def priority(self, hs6: str, destinations: Sequence[str]) -> Measure | None:
        """The code's priority-list row (CHPL tier), if any."""
        return self._first("priority_list", hs6, destinations)

    def ban_months(self, hs6s: Iterable[str], destinations: Sequence[str]) -> np.ndarray:
        """:meth:`ban`'s month index for each code, :data:`NO_BAN` where it has none."""
        out = [self.ban(h, destinations) for h in hs6s]
        return np.array([NO_BAN if m is None else m.month for m in out], dtype=np.int64)


@cache
def sanctions_calendar() -> SanctionsCalendar:
    """The shipped calendar, read once."""
    version, rows = parse(resources.files("transitwatch.detectors.data").joinpath(FILE).read_text(encoding="utf-8"))
    return SanctionsCalendar(rows, version)


@dataclass(frozen=True, kw_only=True, slots=True)
class SanctionsParams:
    """``[sanctions]``: whether a case opening soon after its code's ban is evidence, and how soon.

    Examples
    --------
    >>> SanctionsParams(evidence_months=(6, 1))
    Traceback (most recent call last):
    ...
    transitwatch.detectors.errors.InvalidParameterError: invalid parameter evidence_months=(6, 1): expected [first, last] months after the ban, 0 <= first <= last <= 36
    """

    enabled: bool = True
    evidence_months: tuple[int, int] = (1, 6)

    def __post_init__(self) -> None:
        months = tuple(self.evidence_months)
        object.__setattr__(self, "evidence_months", months)
        if not isinstance(self.enabled, bool):
            raise InvalidParameterError("enabled", self.enabled, "true or false")
        if (len(months) != 2 or not all(isinstance(m, int) and not isinstance(m, bool) for m in months)
                or not 0 <= months[0] <= months[1] <= 36):
            raise InvalidParameterError("evidence_months", months,
                                        "[first, last] months after the ban, 0 <= first <= last <= 36")


def evidence(onset: np.ndarray, banned_from: np.ndarray, params: SanctionsParams) -> np.ndarray:
    """Where a case's ``onset`` (month index) falls ``evidence_months`` after its code's ban.

    >>> p = SanctionsParams()
    >>> evidence(np.array([24265, 24266, 24271, 24272, 24266]), np.array([24265] * 4 + [NO_BAN]), p).tolist()
    [False, True, True, False, False]
    >>> evidence(np.array([24266]), np.array([24265]), SanctionsParams(enabled=False)).tolist()
    [False]
    """
    if not params.enabled:
        return np.zeros(np.shape(onset), dtype=bool)
    lo, hi = params.evidence_months
    known = banned_from != NO_BAN
    since = np.where(known, onset - np.where(known, banned_from, 0), -1)
    return known & (since >= lo) & (since <= hi)
