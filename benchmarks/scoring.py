"""Event scoring of alerts against a labelled scenario's truth.

Pure functions, no I/O. A *series* is a lane ``(reporter, partner, flow, hs6)``;
months are integers ``year * 12 + month - 1`` (the time axis of
:mod:`transitwatch.detectors.contract`).

Rules (issue "Detection quality"):

- Evaluation months are every month after the first ``warmup`` (24) months of
  the window. Only series listed as ``kind == "series"`` in the truth are
  scored; alerts on other lanes are counted apart (``unscored_alerts``).
- The surge window of a surged series runs from its onset to ``end - 1`` (or to
  the last month of the data when ``end`` is null). Each surged series is an
  event of its own, even when several share an ``event_id``; only events whose
  onset is an evaluation month at least ``MAX_DELAY`` months before the end of
  the data are scored (each gets its full three months to be found).
- An event is *found* when the series alerts 0, 1 or 2 months after its onset;
  its delay is the month of the first such alert minus the onset.
- A *false alarm* is a distinct (series, month) alert in an evaluation month,
  outside the series' surge window and outside the 2 months after the window
  (the *grace* months, neither true nor false). Two alerts on the same
  series and month are one false alarm. Rates are per 1,000 evaluated
  series-months outside surge windows and grace months.
- Precision is alerted (series, month) inside surge windows over alerted
  (series, month) in evaluation months outside the grace months; event F1 is
  ``2 P R / (P + R)`` with R the event recall.
- *Sparse* series have density ``low`` or ``sparse`` (under 3 declarations a
  month). A decoy counts as alerted when its series alerts in the decoy's month.

Examples
--------
>>> truth = Truth.from_rows([
...     {"kind": "series", "reporter": "DE", "partner": "KG", "flow": "export", "hs6": "854231",
...      "density": "dense", "base_rate": 40.0},
...     {"kind": "surge", "reporter": "DE", "partner": "KG", "flow": "export", "hs6": "854231",
...      "onset": "2022-03", "shape": "step", "factor": 5.0, "ramp_months": 0, "end": None,
...      "event_id": 1, "density": "dense"},
... ])
>>> key = ("DE", "KG", "export", "854231")
>>> s = score(truth, [(key, month_index("2022-04"))], first=month_index("2019-01"), last=month_index("2023-12"))
>>> s.recall, s.median_delay, s.false_alarms
(1.0, 1.0, 0)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Key = tuple[str, str, str, str]

WARMUP_MONTHS = 24
MAX_DELAY = 2  # found = an alert 0..MAX_DELAY months after onset ("within 3 months")
GRACE_MONTHS = 2  # months after a surge window that are neither true nor false alarms
SPARSE = frozenset({"low", "sparse"})


def month_index(period: str) -> int:
    """``YYYY-MM`` to the integer month axis.

    Examples
    --------
    >>> month_index("2022-03") - month_index("2021-12")
    3
    """
    year, month = int(period[:4]), int(period[5:7])
    if not 1 <= month <= 12:
        raise ValueError(f"month of {period!r} must be 01 to 12")
    return year * 12 + month - 1


def period_of(month: int) -> str:
    """The integer month axis back to ``YYYY-MM``.

    Examples
    --------
    >>> period_of(month_index("2019-12"))
    '2019-12'
    """
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


def key_of(row: Mapping[str, Any]) -> Key:
    return (str(row["reporter"]), str(row["partner"]), str(row.get("flow") or "export"), str(row["hs6"]))


@dataclass(frozen=True, slots=True)
class Surge:
    key: Key
    onset: int
    end: int | None  # first month back at base; None: lasts to the end of the data
    shape: str
    factor: float
    density: str
    event_id: Any = None


@dataclass(frozen=True, slots=True)
class Decoy:
    key: Key
    month: int
    factor: float
    density: str


@dataclass(frozen=True, slots=True)
class Truth:
    """The scored universe (series and their density), surges and decoys."""

    series: dict[Key, str]
    surges: tuple[Surge, ...]
    decoys: tuple[Decoy, ...]

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> Truth:
        """Read truth objects (``kind`` first); unknown kinds are informational and skipped."""
        series: dict[Key, str] = {}
        surges: list[Surge] = []
        decoys: list[Decoy] = []
        for row in rows:
            kind = row.get("kind")
            if kind == "series":
                series[key_of(row)] = str(row["density"])
            elif kind == "surge":
                end = row.get("end")
                surges.append(Surge(
                    key_of(row), month_index(row["onset"]), month_index(end) if end else None,
                    str(row.get("shape", "step")), float(row["factor"]), str(row.get("density", "")),
                    row.get("event_id"),
                ))
            elif kind == "decoy":
                decoys.append(Decoy(key_of(row), month_index(row["month"]), float(row.get("factor", 0.0)),
                                    str(row.get("density", ""))))
        # a surge or decoy takes the density of its series where the truth row omits it
        surges = [s if s.density else Surge(s.key, s.onset, s.end, s.shape, s.factor, series.get(s.key, ""), s.event_id)
                  for s in surges]
        decoys = [d if d.density else Decoy(d.key, d.month, d.factor, series.get(d.key, "")) for d in decoys]
        return cls(series, tuple(surges), tuple(decoys))


@dataclass(frozen=True)
class Score:
    """The metrics of one method on one input."""

    events: int
    found: int
    recall: float
    recall_x4: float
    precision: float
    f1: float
    false_alarms: int
    fa_per_1000: float
    sparse_fa_per_1000: float
    median_delay: float  # NaN when nothing was found
    decoy_share: float  # NaN when there are no scored decoys
    ramp_recall: float
    sparse_recall: float
    unscored_alerts: int
    delays: tuple[int, ...] = field(repr=False, default=())
    false_alarm_cells: frozenset[tuple[Key, int]] = field(repr=False, default=frozenset())

    def as_row(self) -> dict[str, float]:
        return {
            "recall": self.recall, "recall x4+": self.recall_x4, "precision": self.precision, "F1": self.f1,
            "FA/1000": self.fa_per_1000, "sparse FA/1000": self.sparse_fa_per_1000,
            "median delay": self.median_delay, "decoys alerted": self.decoy_share,
            "ramp recall": self.ramp_recall, "sparse recall": self.sparse_recall,
        }


def _scored_event(s: Surge, truth: Truth, eval_start: int, last: int) -> bool:
    return s.key in truth.series and eval_start <= s.onset <= last - MAX_DELAY


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def score(truth: Truth, alerts: Iterable[tuple[Key, int]], *, first: int, last: int,
          warmup: int = WARMUP_MONTHS) -> Score:
    """Score ``alerts`` (pairs of series key and integer month) against ``truth``
    over the data months ``first..last`` (inclusive)."""
    eval_start = first + warmup
    cells = {(k, m) for k, m in alerts if eval_start <= m <= last}
    unscored = sum(1 for k, _ in cells if k not in truth.series)
    by_series: dict[Key, list[int]] = {}
    for k, m in cells:
        if k in truth.series:
            by_series.setdefault(k, []).append(m)

    # months inside surge windows and grace months, per series
    inside: dict[Key, set[int]] = {}
    grace: dict[Key, set[int]] = {}
    for s in truth.surges:
        stop = last if s.end is None else min(s.end - 1, last)
        inside.setdefault(s.key, set()).update(range(s.onset, stop + 1))
        if s.end is not None:
            grace.setdefault(s.key, set()).update(range(s.end, s.end + GRACE_MONTHS))
    for k in grace:
        grace[k] -= inside.get(k, set())

    # events
    events = [s for s in truth.surges if _scored_event(s, truth, eval_start, last)]
    delays: dict[int, int] = {}
    for i, s in enumerate(events):
        hits = [m - s.onset for m in by_series.get(s.key, ()) if 0 <= m - s.onset <= MAX_DELAY]
        if hits:
            delays[i] = min(hits)

    def recall_of(pick) -> float:
        chosen = [i for i, s in enumerate(events) if pick(s)]
        return _ratio(sum(1 for i in chosen if i in delays), len(chosen))

    # false alarms and precision
    n_months = last - eval_start + 1
    true_cells = false_cells = 0
    fa: set[tuple[Key, int]] = set()
    for k, months in by_series.items():
        for m in months:
            if m in inside.get(k, ()):
                true_cells += 1
            elif m not in grace.get(k, ()):
                false_cells += 1
                fa.add((k, m))
    outside = {"all": 0, "sparse": 0}
    fa_sparse = sum(1 for k, _ in fa if truth.series[k] in SPARSE)
    for k, density in truth.series.items():
        excluded = {m for m in inside.get(k, set()) | grace.get(k, set()) if eval_start <= m <= last}
        n = n_months - len(excluded)
        outside["all"] += n
        if density in SPARSE:
            outside["sparse"] += n

    recall = recall_of(lambda s: True)
    precision = _ratio(true_cells, true_cells + false_cells)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    decoys = [d for d in truth.decoys
              if d.key in truth.series and eval_start <= d.month <= last
              and d.month not in inside.get(d.key, ()) and d.month not in grace.get(d.key, ())]
    decoy_hits = sum(1 for d in decoys if d.month in set(by_series.get(d.key, ())))
    return Score(
        events=len(events),
        found=len(delays),
        recall=recall,
        recall_x4=recall_of(lambda s: s.factor >= 4),
        precision=precision,
        f1=f1 if not math.isnan(f1) else 0.0,
        false_alarms=len(fa),
        fa_per_1000=1000 * _ratio(len(fa), outside["all"]),
        sparse_fa_per_1000=1000 * _ratio(fa_sparse, outside["sparse"]),
        median_delay=float(statistics.median(delays.values())) if delays else math.nan,
        decoy_share=_ratio(decoy_hits, len(decoys)),
        ramp_recall=recall_of(lambda s: s.shape == "ramp"),
        sparse_recall=recall_of(lambda s: s.density in SPARSE),
        unscored_alerts=unscored,
        delays=tuple(sorted(delays.values())),
        false_alarm_cells=frozenset(fa),
    )


def missed(truth: Truth, alerts: Iterable[tuple[Key, int]], *, first: int, last: int,
           warmup: int = WARMUP_MONTHS) -> list[Surge]:
    """The scored surge events with no alert 0..2 months after onset."""
    cells = {(k, m) for k, m in alerts}
    return [s for s in truth.surges
            if _scored_event(s, truth, first + warmup, last)
            and not any((s.key, s.onset + d) in cells for d in range(MAX_DELAY + 1))]


def operating_point(truth: Truth, scored: Iterable[tuple[Key, int, float]], *, fa_per_1000: float,
                    first: int, last: int, warmup: int = WARMUP_MONTHS) -> tuple[float, Score]:
    """The lowest score threshold whose false alarms stay at or under ``fa_per_1000``
    (alerting every ``(key, month)`` scored at or above it), and its score. The
    threshold is chosen with the truth: it gives a baseline its best operating
    point at a false-alarm rate comparable with transitwatch's.

    Examples
    --------
    >>> truth = Truth.from_rows([{"kind": "series", "reporter": "A", "partner": "B", "flow": "export",
    ...                           "hs6": "1", "density": "dense"}])
    >>> k = ("A", "B", "export", "1")
    >>> operating_point(truth, [(k, 30, 0.9), (k, 31, 0.5)], fa_per_1000=100, first=0, last=35)[0]
    0.9
    """
    ranked = sorted(((s, k, m) for k, m, s in scored if first + warmup <= m <= last), key=lambda r: -r[0])
    thresholds = sorted({s for s, _, _ in ranked}, reverse=True)

    def at(i: int) -> Score:
        cut = thresholds[i]
        return score(truth, [(k, m) for s, k, m in ranked if s >= cut], first=first, last=last, warmup=warmup)

    if not thresholds or at(0).fa_per_1000 > fa_per_1000:
        return math.inf, score(truth, [], first=first, last=last, warmup=warmup)
    lo, hi = 0, len(thresholds) - 1  # at(lo) is within the budget
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if at(mid).fa_per_1000 <= fa_per_1000:
            lo = mid
        else:
            hi = mid - 1
    return thresholds[lo], at(lo)


def curve(truth: Truth, scored: Iterable[tuple[Key, int, float]], *, first: int, last: int,
          points: int = 25, warmup: int = WARMUP_MONTHS) -> list[tuple[float, float]]:
    """``(FA per 1,000, recall)`` at thresholds spread over the top scores, for charts."""
    scored = list(scored)
    ranked = sorted((s for _, m, s in scored if first + warmup <= m <= last), reverse=True)
    out = []
    for q in np.geomspace(1, max(len(ranked), 1), points):
        cut = ranked[min(int(q) - 1, len(ranked) - 1)] if ranked else math.inf
        s = score(truth, [(k, m) for k, m, v in scored if v >= cut], first=first, last=last, warmup=warmup)
        out.append((s.fa_per_1000, s.recall))
    return out


def recall_by(truth: Truth, alerts: Iterable[tuple[Key, int]], group, *, first: int, last: int,
              warmup: int = WARMUP_MONTHS) -> dict[Any, tuple[int, int]]:
    """``{group(surge): (found, events)}`` over the scored events, to see which surges are missed.

    Examples
    --------
    >>> truth = Truth.from_rows([
    ...     {"kind": "series", "reporter": "A", "partner": "B", "flow": "export", "hs6": "1", "density": "sparse"},
    ...     {"kind": "surge", "reporter": "A", "partner": "B", "flow": "export", "hs6": "1", "onset": "2003-01",
    ...      "shape": "ramp", "factor": 3.0, "end": None}])
    >>> recall_by(truth, [], lambda s: s.shape, first=month_index("2000-01"), last=month_index("2004-12"))
    {'ramp': (0, 1)}
    """
    cells = set(alerts)
    missing = {id(s) for s in missed(truth, cells, first=first, last=last, warmup=warmup)}
    out: dict[Any, list[int]] = {}
    for s in truth.surges:
        if _scored_event(s, truth, first + warmup, last):
            tally = out.setdefault(group(s), [0, 0])
            tally[0] += id(s) not in missing
            tally[1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(out.items(), key=lambda kv: str(kv[0]))}
