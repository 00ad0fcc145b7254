"""The replay's input as full monthly series of lanes, for the case page's charts (``--input``).

An alerts file holds only the months that are part of a case; the input holds every month. The
lanes kept are those of the alerts' reporters and codes (every partner, so the lanes to Russia
and Belarus too), read with the replay's own reader (:func:`transitwatch.streams.files.iter_records`):
a monthly statistics line that repeats an earlier one's identity replaces it (a revision), a
re-sent declaration id counts once, as in the replay. Lines the reader rejects are counted.
Values are in the input's currency: a lane whose currency differs from the alerts' is not drawn.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from transitwatch.detectors.contract import Declaration, MonthlyStat
from transitwatch.detectors.errors import RejectError
from transitwatch.streams.desk.cases import CaseSourceError

Lane = tuple[str, str, str, str]  # reporter, partner, flow, hs6


def period_of(month: int) -> str:
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


@dataclass
class LaneMonths:
    value: dict[int, float] = field(default_factory=dict)
    count: dict[int, int] = field(default_factory=dict)
    currencies: set[str] = field(default_factory=set)


@dataclass
class InputSeries:
    """Monthly value (and declarations, where the input has them) of the lanes kept."""

    lanes: dict[Lane, LaneMonths]
    rejected: int
    first: int | None
    last: int | None

    @classmethod
    def read(cls, paths: Iterable[str | Path], reporters: set[str], codes: set[str]) -> InputSeries:
        from transitwatch.streams.files import iter_records

        lanes: dict[Lane, LaneMonths] = {}
        stats: dict[tuple[Lane, int, tuple[str, ...]], float] = {}
        seen_ids: set[str] = set()
        rejected = 0
        months: set[int] = set()
        for path in paths:
            try:
                for _number, _content, result in iter_records(path):
                    if isinstance(result, RejectError):
                        rejected += 1
                        continue
                    months.add(result.month)
                    if result.reporter not in reporters or result.hs6 not in codes:
                        continue
                    lane = (result.reporter, result.partner, result.flow, result.hs6)
                    series = lanes.setdefault(lane, LaneMonths())
                    series.currencies.add(result.currency)
                    if isinstance(result, MonthlyStat):
                        stats[(lane, result.month, tuple(map(str, result.identity)))] = float(result.value)
                    elif isinstance(result, Declaration):
                        key = str(result.declaration_id)
                        if key in seen_ids:
                            continue
                        seen_ids.add(key)
                        series.value[result.month] = series.value.get(result.month, 0.0) + float(result.value)
                        series.count[result.month] = series.count.get(result.month, 0) + 1
            except OSError as exc:
                raise CaseSourceError(f"cannot read the input {path}: {exc}") from exc
        for (lane, month, _identity), value in stats.items():
            series = lanes[lane]
            series.value[month] = series.value.get(month, 0.0) + value
        return cls(lanes, rejected, min(months) if months else None, max(months) if months else None)

    def months(self, reporter: str, partner: str, flow: str, hs6: str,
               currency: str) -> dict[str, tuple[float, int | None]] | None:
        """``{period: (value, declarations or None)}`` for every month of the input (0 where the
        lane had nothing); None when the lane is not in the input or not in ``currency``."""
        series = self.lanes.get((reporter, partner, flow, hs6))
        if series is None or self.first is None or self.last is None or series.currencies != {currency}:
            return None
        has_counts = bool(series.count)
        return {period_of(m): (series.value.get(m, 0.0), series.count.get(m, 0) if has_counts else None)
                for m in range(self.first, self.last + 1)}
