"""Learned per-series state, stored as rows of a few arrays.

Every series (reporter, partner, flow, hs6) owns one row: the last
``HISTORY_MONTHS`` closed months of value and declaration count, which of
them are protected from the baseline, the ramp statistic and the protected
streak. All rows are aligned on the same last closed month, so one month is
closed for every series with a handful of vectorized operations.

A series' history is known (zero, not unknown) from the month its goods group
(its hs6) first had a record: that start is kept per group, not per table, so
a table holding only some hs6 codes (one partition of the service) gives each
series the same history as a table holding them all. A table given a
``history_start`` (the configuration's ``watch.history_start``) knows every
series' history from that month instead, whatever its group: configuration
too, so equally the same in every partition.

:class:`SeriesState` is one row on its own: it round-trips through
``to_state()`` / ``from_state()`` so a key-value store (a Faust table) can hold
it and a restart restores it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from transitwatch.detectors.base import HISTORY_MONTHS, Window
from transitwatch.detectors.errors import StateError

STATE_VERSION = 1


class SeriesKey(NamedTuple):
    """A trade lane: who declares, to whom, which direction, which goods."""

    reporter: str
    partner: str
    flow: str
    hs6: str

    @property
    def series_id(self) -> str:
        """A readable, stable id, e.g. ``DE>AM export 854231``."""
        return f"{self.reporter}>{self.partner} {self.flow} {self.hs6}"


@dataclass(slots=True)
class SeriesState:
    """The learned state of one series, as of the end of ``month``.

    Examples
    --------
    >>> s = SeriesState(SeriesKey("DE", "AM", "export", "854231"), month=24290)
    >>> SeriesState.from_state(s.to_state()) == s
    True
    """

    key: SeriesKey
    month: int
    values_: np.ndarray | None = None
    counts_: np.ndarray | None = None
    protected_: np.ndarray | None = None
    ramp_: float = 0.0
    streak_: int = 0
    counted_: bool = False
    parties_: np.ndarray | None = None
    leads_: np.ndarray | None = None

    def __post_init__(self) -> None:
        h = HISTORY_MONTHS
        if self.values_ is None:
            self.values_ = np.full(h, np.nan)
        if self.counts_ is None:
            self.counts_ = np.full(h, np.nan)
        if self.parties_ is None:
            self.parties_ = np.full(h, np.nan)
        if self.leads_ is None:
            self.leads_ = np.full(h, np.nan)
        if self.protected_ is None:
            self.protected_ = np.zeros(h, dtype=bool)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SeriesState):
            return NotImplemented
        return self.to_state() == other.to_state()

    def to_state(self) -> dict[str, Any]:
        """A small JSON-ready dict: history as lists, ``None`` for unknown."""

        def floats(a: np.ndarray) -> list[float | None]:
            return [None if math.isnan(x) else float(x) for x in a.tolist()]

        return {
            "v": STATE_VERSION,
            "key": list(self.key),
            "month": self.month,
            "values": floats(self.values_),
            "counts": floats(self.counts_),
            "protected": sum(1 << i for i, bit in enumerate(self.protected_.tolist()) if bit),
            "ramp": float(self.ramp_),
            "streak": int(self.streak_),
            "counted": bool(self.counted_),
            "parties": floats(self.parties_),
            "leads": floats(self.leads_),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SeriesState:
        """Restore from :meth:`to_state`; raises :class:`StateError` on a foreign dict."""
        try:
            if state["v"] != STATE_VERSION:
                raise StateError(f"state version {state['v']!r} is not {STATE_VERSION}; rebuild the state by replay")
            values = np.array([np.nan if x is None else x for x in state["values"]], dtype=float)
            counts = np.array([np.nan if x is None else x for x in state["counts"]], dtype=float)
            parties = np.array([np.nan if x is None else x for x in state.get("parties", [None] * HISTORY_MONTHS)],
                               dtype=float)
            leads = np.array([np.nan if x is None else x for x in state.get("leads", [None] * HISTORY_MONTHS)],
                             dtype=float)
            bits = int(state["protected"])
            protected = np.array([(bits >> i) & 1 for i in range(HISTORY_MONTHS)], dtype=bool)
            if {values.shape, counts.shape, parties.shape, leads.shape} != {(HISTORY_MONTHS,)}:
                raise StateError(f"state history must hold {HISTORY_MONTHS} months")
            return cls(
                key=SeriesKey(*state["key"]),
                month=int(state["month"]),
                values_=values,
                counts_=counts,
                protected_=protected,
                ramp_=float(state["ramp"]),
                streak_=int(state["streak"]),
                counted_=bool(state["counted"]),
                parties_=parties,
                leads_=leads,
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, StateError):
                raise
            raise StateError(f"cannot restore series state: {exc!r}") from exc


class StateTable:
    """Rows of series state aligned on one last closed month.

    Examples
    --------
    >>> t = StateTable(start=24240)
    >>> row = t.row(SeriesKey("DE", "AM", "export", "854231"), counted=True)
    >>> t.commit(24240, np.array([5.0]), np.array([2.0]), np.array([False]))
    >>> t.values[row, -1], t.month
    (np.float64(5.0), 24240)
    """

    def __init__(self, *, start: int, history: int = HISTORY_MONTHS, history_start: int | None = None) -> None:
        self.start = start  # the first month of the data, for reports
        self.month = start - 1
        self.starts: dict[str, int] = {}  # hs6 -> the first month its goods group had a record
        self.history_start = history_start  # when set, every new row's history is known from it
        self.history = history
        self.keys: list[SeriesKey] = []
        self.index: dict[SeriesKey, int] = {}
        self._cap = 0
        self.values = np.empty((0, history))
        self.counts = np.empty((0, history))
        self.parties = np.empty((0, history))  # new consignees per month
        self.leads = np.empty((0, history))  # value to a new consignee that took the month's largest declaration
        self.protected = np.empty((0, history), dtype=bool)
        self.ramp = np.empty(0)
        self.streak = np.empty(0, dtype=np.int64)
        self.counted = np.empty(0, dtype=bool)

    def __len__(self) -> int:
        return len(self.keys)

    def _grow(self) -> None:
        cap = max(64, self._cap * 2)
        n = len(self.keys)

        def grow(a: np.ndarray, fill: Any) -> np.ndarray:
            out = np.full((cap,) + a.shape[1:], fill, dtype=a.dtype)
            out[:n] = a[:n]
            return out

        self.values = grow(self.values, np.nan)
        self.counts = grow(self.counts, np.nan)
        self.parties = grow(self.parties, np.nan)
        self.leads = grow(self.leads, np.nan)
        self.protected = grow(self.protected, False)
        self.ramp = grow(self.ramp, 0.0)
        self.streak = grow(self.streak, 0)
        self.counted = grow(self.counted, False)
        self._cap = cap

    def known_months(self, start: int | None = None) -> np.ndarray:
        """Which history columns lie at or after ``start`` (default: the start of the data)."""
        months = self.month - self.history + 1 + np.arange(self.history)
        return months >= (self.start if start is None else start)

    def row(self, key: SeriesKey, *, counted: bool, month: int | None = None) -> int:
        """The row of ``key``, created with a zero history since its goods group
        started (or since ``history_start``, when the table has one). A key of a
        new group starts the group in ``month``, the month of the record that
        makes the row (default: the month in progress)."""
        found = self.index.get(key)
        if found is not None:
            if counted and not self.counted[found]:
                self.counted[found] = True
            return found
        if len(self.keys) == self._cap:
            self._grow()
        r = len(self.keys)
        self.keys.append(key)
        self.index[key] = r
        start = self.starts.get(key.hs6)
        if start is None:
            start = self.starts[key.hs6] = self.month + 1 if month is None else month
        if self.history_start is not None:
            start = self.history_start  # group starts are still kept: they are state, not configuration
        known = self.known_months(start)
        self.values[r] = np.where(known, 0.0, np.nan)
        self.counts[r] = np.where(known & counted, 0.0, np.nan)
        self.parties[r] = self.counts[r]
        self.leads[r] = self.counts[r]
        self.protected[r] = False
        self.ramp[r] = 0.0
        self.streak[r] = 0
        self.counted[r] = counted
        return r

    def window(self, rows: np.ndarray | slice, value: np.ndarray, count: np.ndarray, max_item: np.ndarray,
               party: np.ndarray | None = None, new_top: np.ndarray | None = None) -> Window:
        """The detectors' view of ``rows`` with this month's totals (``party``: its new
        consignees, unknown when not given)."""
        return Window(
            values=self.values[rows],
            counts=self.counts[rows],
            protected=self.protected[rows],
            value=value,
            count=count,
            max_item=max_item,
            ramp=self.ramp[rows],
            streak=self.streak[rows],
            parties=self.parties[rows],
            party=np.full(value.shape, np.nan) if party is None else party,
            new_top=np.full(value.shape, np.nan) if new_top is None else new_top,
            leads=self.leads[rows],
        )

    def commit(
        self,
        month: int,
        value: np.ndarray,
        count: np.ndarray,
        protect: np.ndarray,
        *,
        ramp: np.ndarray | None = None,
        streak: np.ndarray | None = None,
        release: np.ndarray | None = None,
        relearn: np.ndarray | None = None,
        relearn_months: int = 0,
        party: np.ndarray | None = None,
        lead: np.ndarray | None = None,
    ) -> None:
        """Append closed ``month`` for every row (arrays cover all rows); ``party``
        its new consignees and ``lead`` the value to a new consignee that took its largest
        declaration (both unknown when not given).

        ``release`` lifts the protection of the month before; ``relearn``
        rows keep only their last ``relearn_months`` months, unprotected."""
        if month != self.month + 1:
            raise StateError(f"months close in order: expected {self.month + 1}, got {month}")
        n = len(self.keys)
        if release is not None:
            self.protected[:n, -1] &= ~release
        if party is None:
            party = np.full(n, np.nan)
        if lead is None:
            lead = np.full(n, np.nan)
        for a, new in ((self.values, value), (self.counts, count), (self.parties, party), (self.leads, lead),
                       (self.protected, protect)):
            a[:n, :-1] = a[:n, 1:]
            a[:n, -1] = new
        if relearn is not None and relearn_months and relearn.any():
            rows = np.flatnonzero(relearn)
            self.protected[rows, -relearn_months:] = False
            self.values[rows, :-relearn_months] = np.nan
            self.counts[rows, :-relearn_months] = np.nan
            self.parties[rows, :-relearn_months] = np.nan
            self.leads[rows, :-relearn_months] = np.nan
        if ramp is not None:
            self.ramp[:n] = ramp
        if streak is not None:
            self.streak[:n] = streak
        self.month = month

    def forget(self, rows: np.ndarray, *, keep: int) -> None:
        """Restart the history of ``rows`` from their last ``keep`` months, unprotected:
        a new level accepted as the lane's normal (an explicit rule of the cases)."""
        keep = max(1, min(int(keep), self.history))
        self.protected[rows, -keep:] = False
        if keep < self.history:
            self.values[rows, :-keep] = np.nan
            self.counts[rows, :-keep] = np.nan
            self.parties[rows, :-keep] = np.nan
            self.leads[rows, :-keep] = np.nan
        self.ramp[rows] = 0.0
        self.streak[rows] = 0

    def state(self, key: SeriesKey) -> SeriesState:
        r = self.index[key]
        return SeriesState(
            key=key,
            month=self.month,
            values_=self.values[r].copy(),
            counts_=self.counts[r].copy(),
            protected_=self.protected[r].copy(),
            ramp_=float(self.ramp[r]),
            streak_=int(self.streak[r]),
            counted_=bool(self.counted[r]),
            parties_=self.parties[r].copy(),
            leads_=self.leads[r].copy(),
        )

    def restore(self, state: SeriesState) -> None:
        """Load one series' state into its row (the table must be at ``state.month``)."""
        if state.month != self.month:
            raise StateError(f"state is as of month {state.month}, the table of {self.month}")
        r = self.row(state.key, counted=state.counted_)
        self.values[r] = state.values_
        self.counts[r] = state.counts_
        self.protected[r] = state.protected_
        self.ramp[r] = state.ramp_
        self.streak[r] = state.streak_
        self.counted[r] = state.counted_
        self.parties[r] = state.parties_
        self.leads[r] = state.leads_

    @classmethod
    def from_arrays(
        cls,
        *,
        start: int,
        month: int,
        keys: Sequence[SeriesKey],
        values: np.ndarray,
        counts: np.ndarray,
        protected: np.ndarray,
        ramp: np.ndarray,
        streak: np.ndarray,
        counted: np.ndarray,
        starts: dict[str, int],
        history_start: int | None = None,
        parties: np.ndarray | None = None,
        leads: np.ndarray | None = None,
    ) -> StateTable:
        """A table holding these rows (arrays over ``keys``, in row order), as of ``month``."""
        table = cls(start=start, history=values.shape[1], history_start=history_start)
        table.month = month
        table.starts = dict(starts)
        n = len(keys)
        while table._cap < n:
            table._grow()
        table.keys = list(keys)
        table.index = {key: r for r, key in enumerate(table.keys)}
        for name, a in (("values", values), ("counts", counts), ("protected", protected), ("ramp", ramp),
                        ("streak", streak), ("counted", counted),
                        ("parties", np.full(values.shape, np.nan) if parties is None else parties),
                        ("leads", np.full(values.shape, np.nan) if leads is None else leads)):
            getattr(table, name)[:n] = a
        return table


def window_for(
    history: Sequence[Sequence[float]],
    *,
    value: Sequence[float],
    count: Sequence[float],
    counts: Sequence[Sequence[float]] | None = None,
    max_item: Sequence[float] | None = None,
    parties: Sequence[Sequence[float]] | None = None,
    party: Sequence[float] | None = None,
    new_top: Sequence[float] | None = None,
    leads: Sequence[Sequence[float]] | None = None,
) -> Window:
    """A :class:`Window` from plain lists, left-padded with unknown months.

    Examples
    --------
    >>> window_for([[1.0, 2.0]], value=[3.0], count=[1.0]).values.shape
    (1, 36)
    """
    h = HISTORY_MONTHS

    def pad(rows: Sequence[Sequence[float]]) -> np.ndarray:
        out = np.full((len(rows), h), np.nan)
        for i, r in enumerate(rows):
            r = list(r)[-h:]
            out[i, h - len(r) :] = r
        return out

    values = pad(history)
    n = len(value)
    return Window(
        values=values,
        counts=pad(counts) if counts is not None else np.full((n, h), np.nan),
        protected=np.zeros((n, h), dtype=bool),
        value=np.asarray(value, dtype=float),
        count=np.asarray(count, dtype=float),
        max_item=np.asarray(max_item if max_item is not None else [np.nan] * n, dtype=float),
        ramp=np.zeros(n),
        streak=np.zeros(n, dtype=np.int64),
        parties=pad(parties) if parties is not None else np.full((n, h), np.nan),
        party=np.asarray(party if party is not None else [np.nan] * n, dtype=float),
        new_top=np.asarray(new_top if new_top is not None else [np.nan] * n, dtype=float),
        leads=pad(leads) if leads is not None else np.full((n, h), np.nan),
    )
