"""Cases from alert records, and where the records come from (:class:`CaseSource`).

An alert record is one month of one lane's case (``docs/alerts.md``); a :class:`Case` is all the
records of one ``case_id``, oldest first, summarised by its latest record. A source loads every
alert record it can read and says which lines it could not read (never dropped silently).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from transitwatch.detectors.errors import TransitwatchError

# The fields a record needs to be placed in a case; the rest are shown when present.
REQUIRED: tuple[str, ...] = ("case_id", "series_id", "period", "reporter", "partner", "hs6", "severity")


class CaseSourceError(TransitwatchError, OSError):
    """The alert records cannot be read at all (a missing file, a directory, permissions)."""


@dataclass(frozen=True)
class BadRecord:
    """A line of the source that is not an alert record, with why."""

    where: str
    reason: str


@dataclass(frozen=True)
class Loaded:
    records: list[dict[str, Any]]
    bad: list[BadRecord] = field(default_factory=list)


class CaseSource(Protocol):
    """Where alert records come from: a replay's JSON Lines file now, the alerts topic later."""

    description: str

    def load(self) -> Loaded: ...


def read_record(raw: bytes | str, where: str, records: list[dict[str, Any]], bad: list[BadRecord]) -> None:
    """Decode one alert record (a line of a file, a message of the topic) into ``records``, or say
    in ``bad`` why it cannot be placed in a case (``where``: the file's line, the topic's offset)."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        bad.append(BadRecord(where, f"not JSON: {exc}"))
        return
    reason = check_record(record)
    if reason:
        bad.append(BadRecord(where, reason))
    else:
        records.append(record)


def check_record(record: Any) -> str | None:
    """Why ``record`` cannot be placed in a case, or None when it can."""
    if not isinstance(record, dict):
        return "not a JSON object"
    missing = [name for name in REQUIRED if not isinstance(record.get(name), str) or not record.get(name)]
    if missing:
        return f"missing or not text: {', '.join(missing)}"
    period = record["period"]
    if not (len(period) == 7 and period[4] == "-" and period[:4].isdigit() and period[5:].isdigit()
            and 1 <= int(period[5:]) <= 12):
        return f"period {period[:20]!r} is not YYYY-MM"
    return None


class JsonLinesCaseSource:
    """The alert records of ``transitwatch replay --alerts-out FILE`` (JSON Lines)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.description = str(self.path)

    def load(self) -> Loaded:
        records: list[dict[str, Any]] = []
        bad: list[BadRecord] = []
        try:
            with self.path.open("rb") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    read_record(line, f"{self.path.name}:{number}", records, bad)
        except OSError as exc:
            raise CaseSourceError(f"cannot read the alerts file {self.path}: {exc.strerror or exc}") from exc
        return Loaded(records, bad)


@dataclass(frozen=True)
class Case:
    """All the records of one case, oldest first; the latest one gives status and severity."""

    case_id: str
    records: tuple[dict[str, Any], ...]

    @property
    def latest(self) -> dict[str, Any]:
        return self.records[-1]

    @property
    def series_id(self) -> str:
        return str(self.latest["series_id"])

    @property
    def periods(self) -> list[str]:
        return [str(r["period"]) for r in self.records]

    def row(self) -> dict[str, Any]:
        """The case list's columns (feedback columns are added by the desk)."""
        last = self.latest
        detectors = sorted({str(d) for r in self.records for d in _list(r.get("detectors"))}
                           | {str(d) for d in _list(last.get("case_detectors"))})
        return {
            "case_id": self.case_id,
            "status": _text(last.get("case_status")) or "open",
            "severity": _text(last.get("case_severity")) or last["severity"],
            "confidence": _text(last.get("confidence")),
            "lane": self.series_id,
            "reporter": last["reporter"],
            "partner": last["partner"],
            "hs6": last["hs6"],
            "goods": _text(last.get("hs_description")),
            "tier": _text(last.get("chpl_tier")),
            "onset": _text(last.get("case_onset")) or self.records[0]["period"],
            "last_period": last["period"],
            "months": _int(last.get("case_months")) or len(self.records),
            "peak_ratio": _number(last.get("case_peak_ratio")),
            "excess": _number(last.get("case_excess")),
            "currency": _text(last.get("currency")),
            "detectors": ", ".join(detectors),
        }


def _text(value: Any) -> str:
    """Optional text fields of a record: anything but text counts as absent (records are input)."""
    return value if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def build_cases(records: Iterable[Mapping[str, Any]]) -> dict[str, Case]:
    """Group records by ``case_id``, each case's records in month order; of records sharing an
    ``alert_id`` (a month's early alert and its month-end update) the later one in the input."""
    grouped: dict[str, dict[str, dict[str, Any]]] = {}
    for record in records:
        # The early alert of a month and its month-end update share the alert id: keep the later.
        key = str(record.get("alert_id") or record["period"])
        grouped.setdefault(str(record["case_id"]), {})[key] = dict(record)
    return {case_id: Case(case_id, tuple(sorted(recs.values(), key=lambda r: str(r["period"]))))
            for case_id, recs in grouped.items()}


def lane_records(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Every record of each lane (``series_id``), in month order: a lane can have several cases."""
    lanes: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        lanes.setdefault(str(record["series_id"]), []).append(record)
    for recs in lanes.values():
        recs.sort(key=lambda r: str(r["period"]))
    return lanes
