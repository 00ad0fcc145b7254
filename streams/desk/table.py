"""The case list as a query: filters, free-text search, sort and grouping, all from the URL.

A :class:`ListQuery` is parsed from (and written back to) a query string, so every view of the
list is a shareable URL; :func:`apply` runs it over the case rows in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from transitwatch.streams.feedback import SEVERITY_RANK

# Columns in display order: key, header.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("severity", "Severity"),
    ("confidence", "Confidence"),
    ("status", "Status"),
    ("lane", "Lane"),
    ("goods", "Goods"),
    ("tier", "Tier"),
    ("onset", "Onset"),
    ("months", "Months"),
    ("peak_ratio", "Peak ratio"),
    ("excess", "Excess"),
    ("detectors", "Detectors"),
    ("feedback", "Feedback"),
)
EXPORT_COLUMNS: tuple[str, ...] = (
    "case_id", "severity", "confidence", "status", "lane", "reporter", "partner", "hs6", "goods", "tier",
    "onset", "last_period", "months", "peak_ratio", "excess", "currency", "detectors", "feedback",
    "suppressed",
)
SORTABLE = frozenset(key for key, _ in COLUMNS) | {"reporter", "partner", "hs6", "last_period", "case_id"}
GROUPS: Mapping[str, str] = {"partner": "Hub", "reporter": "Reporter", "hs6": "Goods (HS6)"}
MULTI: tuple[str, ...] = ("severity", "partner", "reporter", "tier", "detector", "status", "feedback")
CONFIDENCE_RANK: Mapping[str, int] = {"low": 0, "medium": 1, "high": 2, "very high": 3}
_RANKS: Mapping[str, Mapping[str, int]] = {"severity": SEVERITY_RANK, "confidence": CONFIDENCE_RANK}
DEFAULT_SORT = "severity"
DEFAULT_PER_PAGE = 100
PER_PAGE: tuple[int, ...] = (50, 100, 250, 0)


@dataclass(frozen=True)
class ListQuery:
    """One view of the case list. Unknown or malformed parameters are ignored and reported in
    ``problems`` (the page says so) rather than failing the page."""

    severity: tuple[str, ...] = ()
    partner: tuple[str, ...] = ()
    reporter: tuple[str, ...] = ()
    tier: tuple[str, ...] = ()
    detector: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    feedback: tuple[str, ...] = ()
    hs: str = ""
    onset_from: str = ""
    onset_to: str = ""
    q: str = ""
    sort: str = DEFAULT_SORT
    desc: bool = True
    group: str = ""
    suppressed: bool = False
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE  # 0: every row on one page
    problems: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, params: Mapping[str, Sequence[str]]) -> ListQuery:
        """From a multi-valued query string (``{name: [values]}``)."""
        problems: list[str] = []

        def one(name: str) -> str:
            values = params.get(name) or [""]
            return values[-1].strip()[:200]

        def many(name: str) -> tuple[str, ...]:
            return tuple(sorted({v.strip() for v in params.get(name, []) if v.strip()}))

        sort = one("sort") or DEFAULT_SORT
        if sort not in SORTABLE:
            problems.append(f"cannot sort by {sort!r}; sorted by {DEFAULT_SORT}")
            sort = DEFAULT_SORT
        group = one("group")
        if group and group not in GROUPS:
            problems.append(f"cannot group by {group!r}")
            group = ""
        hs = "".join(ch for ch in one("hs") if ch.isdigit())
        def month(name: str) -> str:
            value = one(name)
            if value and not _is_month(value):
                problems.append(f"{name} {value!r} is not YYYY-MM; ignored")
                return ""
            return value

        onset_from, onset_to = month("onset_from"), month("onset_to")
        per_page_text = one("per_page") or str(DEFAULT_PER_PAGE)
        per_page = 0 if per_page_text == "all" else int(per_page_text) if per_page_text.isdigit() else -1
        if per_page not in PER_PAGE:
            problems.append(f"per_page {per_page_text!r} is not one of 50, 100, 250, all")
            per_page = DEFAULT_PER_PAGE
        page_text = one("page") or "1"
        page = int(page_text) if page_text.isdigit() and 0 < int(page_text) < 10**6 else 1
        direction = one("dir") or ("desc" if sort in {"severity", "confidence", "excess", "peak_ratio", "months"} else "asc")
        return cls(severity=many("severity"), partner=many("partner"), reporter=many("reporter"), tier=many("tier"),
                   detector=many("detector"), status=many("status"), feedback=many("feedback"), hs=hs,
                   onset_from=onset_from, onset_to=onset_to, q=one("q"), sort=sort, desc=direction == "desc",
                   group=group, suppressed=one("suppressed") in {"1", "on", "true"}, page=page, per_page=per_page,
                   problems=tuple(problems))

    def params(self) -> list[tuple[str, str]]:
        """The query string's pairs: only what differs from the default view."""
        pairs: list[tuple[str, str]] = []
        for name in MULTI:
            pairs += [(name, v) for v in getattr(self, name)]
        for name in ("hs", "onset_from", "onset_to", "q", "group"):
            if getattr(self, name):
                pairs.append((name, getattr(self, name)))
        if self.sort != DEFAULT_SORT:
            pairs.append(("sort", self.sort))
        pairs.append(("dir", "desc" if self.desc else "asc"))
        if self.suppressed:
            pairs.append(("suppressed", "1"))
        if self.per_page != DEFAULT_PER_PAGE:
            pairs.append(("per_page", str(self.per_page) if self.per_page else "all"))
        if self.page != 1:
            pairs.append(("page", str(self.page)))
        return pairs

    def url(self, path: str = "/", **changes: Any) -> str:
        query = replace(self, **changes) if changes else self
        return f"{path}?{urlencode(query.params())}"

    def sorted_by(self, column: str) -> str:
        """The URL that sorts by ``column`` (first page): the other direction when it is the current sort."""
        if column == self.sort:
            return self.url(desc=not self.desc, page=1)
        return self.url(sort=column, desc=column in {"severity", "confidence", "excess", "peak_ratio", "months"}, page=1)

    def drill(self, group: str, key: str) -> str:
        """The URL of one group's cases: the group's value as a filter, no grouping."""
        if group == "hs6":
            return self.url(hs=key, group="", page=1)
        if group == "partner":
            return self.url(partner=(key,), group="", page=1)
        return self.url(reporter=(key,), group="", page=1)


def _is_month(value: str) -> bool:
    parts = value.split("-")
    return (len(parts) == 2 and len(parts[0]) == 4 and parts[0].isdigit() and parts[1].isdigit()
            and 1 <= int(parts[1]) <= 12)


def matches(row: Mapping[str, Any], query: ListQuery) -> bool:
    for name in ("severity", "partner", "reporter", "tier", "status"):
        wanted = getattr(query, name)
        if wanted and str(row.get(name) or "") not in wanted:
            return False
    if query.feedback and (row.get("feedback") or "none") not in query.feedback:
        return False
    if query.detector and not set(query.detector) & set(str(row["detectors"]).split(", ")):
        return False
    if query.hs and not str(row["hs6"]).startswith(query.hs):
        return False
    if query.onset_from and str(row["onset"]) < query.onset_from:
        return False
    if query.onset_to and str(row["onset"]) > query.onset_to:
        return False
    if row.get("suppressed") and not query.suppressed:
        return False
    if query.q:
        needle = query.q.casefold()
        if needle not in str(row.get("search") or "").casefold():
            return False
    return True


def _key(column: str):
    ranks = _RANKS.get(column)

    def key(row: Mapping[str, Any]) -> tuple[int, Any]:
        value = row.get(column)
        if ranks is not None:
            return (0, ranks.get(str(value), -1))
        if value is None or value == "":
            return (1, 0)  # missing values sort last whatever the direction (see apply)
        return (0, value)

    return key


@dataclass(frozen=True)
class Group:
    key: str
    label: str
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class View:
    """``rows``: every row of the view (what the exports hold); ``page_rows`` and ``page_groups``:
    those of the page shown; ``groups``: the counts of the whole view."""

    query: ListQuery
    rows: list[dict[str, Any]]
    groups: list[Group]
    total: int
    hidden_suppressed: int
    page: int = 1
    pages: int = 1
    first: int = 0  # index of the page's first row in ``rows``
    page_rows: list[dict[str, Any]] = field(default_factory=list)
    page_groups: list[Group] = field(default_factory=list)


def apply(rows: Iterable[dict[str, Any]], query: ListQuery, labels: Mapping[str, str] | None = None) -> View:
    """The rows the query selects, sorted (then grouped: groups by size, largest first; the rows of
    a group keep the sort)."""
    all_rows = list(rows)
    selected = [row for row in all_rows if matches(row, query)]
    hidden = sum(1 for row in all_rows if row.get("suppressed") and not query.suppressed
                 and matches(row, replace(query, suppressed=True)))
    key = _key(query.sort)
    present = [r for r in selected if key(r)[0] == 0]
    missing = [r for r in selected if key(r)[0] == 1]
    present.sort(key=lambda r: (key(r), r["case_id"]), reverse=query.desc)
    selected = present + missing
    groups: list[Group] = []
    if query.group:
        by: dict[str, list[dict[str, Any]]] = {}
        for row in selected:
            by.setdefault(str(row[query.group]), []).append(row)
        names = labels or {}
        groups = [Group(k, names.get(k, k), v) for k, v in sorted(by.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
        selected = [row for group in groups for row in group.rows]
    size = query.per_page or max(len(selected), 1)
    pages = max(1, -(-len(selected) // size))
    page = min(query.page, pages)
    first = (page - 1) * size
    page_rows = selected[first:first + size]
    page_groups: list[Group] = []
    if query.group:
        on_page: dict[str, list[dict[str, Any]]] = {}
        for row in page_rows:
            on_page.setdefault(str(row[query.group]), []).append(row)
        page_groups = [Group(g.key, g.label, on_page[g.key]) for g in groups if g.key in on_page]
    return View(query, selected, groups, len(all_rows), hidden, page, pages, first, page_rows, page_groups)
