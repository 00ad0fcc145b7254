"""What a streamed replay keeps between months: the de-duplication horizon and the consignee memory.

:class:`~transitwatch.detectors.columnar.ColumnarReplay` in ``stream`` mode closes a month
once the input has moved past it by the service's lateness, and forgets the month's records.
What it must still know is small and bounded:

- :class:`IdHorizon`: the declaration ids of the last ``months`` months (the service's
  ``TRANSITWATCH_DEDUP_MONTHS``), as Arrow string arrays, checked by hashing in C++
  (``pyarrow.compute.is_in``, an exact set membership, not a hash-only test);
- :class:`PartyMemory`: per series and consignee, the last closed month it was seen, as two
  sorted integer arrays, for the months the engine's new-consignee test looks back
  (``PARTY_MEMORY_MONTHS``).

Neither holds a Python object per record.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["IdHorizon", "PartyMemory", "first_occurrences", "month_of_day"]

_EPOCH = dt.date(1970, 1, 1).toordinal()
_NEVER = np.iinfo(np.int64).min // 4  # "never seen": older than any month test


def month_of_day(day: np.ndarray | int) -> np.ndarray:
    """The month index (``year * 12 + month - 1``) of proleptic ordinal days.

    >>> month_of_day(np.array([dt.date(2024, 1, 31).toordinal(), dt.date(2024, 2, 1).toordinal()])).tolist()
    [24288, 24289]
    """
    days = (np.asarray(day, dtype=np.int64) - _EPOCH).astype("datetime64[D]")
    return days.astype("datetime64[M]").astype(np.int64) + 1970 * 12


def first_occurrences(ids: np.ndarray) -> np.ndarray:
    """Which of ``ids`` repeat an earlier one (the first wins), by hashing with exact equality.

    >>> first_occurrences(np.array(["a", "b", "a"], dtype=object)).tolist()
    [False, False, True]
    """
    if len(ids) == 0:
        return np.zeros(0, dtype=bool)
    return pd.Series(ids, dtype=object, copy=False).duplicated(keep="first").to_numpy()


class IdHorizon:
    """Declaration ids seen, bucketed by the month of their record, kept for ``months`` closed months.

    Examples
    --------
    >>> seen = IdHorizon(months=1)
    >>> seen.duplicates(np.array(["a", "b", "a"], dtype=object), np.array([10, 11, 11])).tolist()
    [False, False, True]
    >>> seen.expire(closed=11)  # keeps month 11 only
    >>> seen.duplicates(np.array(["a", "b"], dtype=object), np.array([12, 12])).tolist()
    [False, True]
    """

    def __init__(self, months: int) -> None:
        self.months = months
        self.buckets: dict[int, pa.Array] = {}

    def __len__(self) -> int:
        return sum(len(b) for b in self.buckets.values())

    def duplicates(self, ids: np.ndarray, months: np.ndarray) -> np.ndarray:
        """Which of ``ids`` (in event order, of records of ``months``) were seen before:
        earlier in ``ids`` or within the horizon. The others are remembered."""
        dup = first_occurrences(ids)
        if len(ids) == 0:
            return dup
        arr = pa.array(ids, type=pa.string())
        if self.buckets:
            known = pa.concat_arrays(list(self.buckets.values()))
            dup = dup | pc.is_in(arr, value_set=known).to_numpy(zero_copy_only=False)
        keep = np.flatnonzero(~dup)
        kept_months = months[keep]
        for month in np.unique(kept_months).tolist():
            new = arr.take(pa.array(keep[kept_months == month]))
            old = self.buckets.get(month)
            self.buckets[month] = new if old is None else pa.concat_arrays([old, new])
        return dup

    def expire(self, closed: int) -> None:
        """Month ``closed`` has closed: forget the ids of months beyond the horizon."""
        for month in [m for m in self.buckets if m <= closed - self.months]:
            del self.buckets[month]


class PartyMemory:
    """Per (series row, consignee) the last closed month it was seen, in sorted arrays.

    Consignees are numbered by their :func:`~transitwatch.detectors.base.party_key` once each
    (``ids``); pairs are ``row << 32 | consignee``.

    Examples
    --------
    >>> memory = PartyMemory()
    >>> a, b = memory.ids(["acme", "bolt"]).tolist()
    >>> memory.merge(np.array([0, 1]), np.array([a, b]), np.array([5, 7]))
    >>> memory.last(np.array([0, 1, 1]), np.array([a, b, a])).tolist()[:2]
    [5, 7]
    >>> memory.to_dict()
    {0: {'acme': 5}, 1: {'bolt': 7}}
    """

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self.keys: list[str] = []
        self.pairs = np.zeros(0, np.int64)
        self.months = np.zeros(0, np.int64)

    def ids(self, keys: list[str]) -> np.ndarray:
        """The number of each consignee key (``""``: -1, no consignee)."""
        out = np.empty(len(keys), np.int64)
        table = self._ids
        for i, key in enumerate(keys):
            if not key:
                out[i] = -1
                continue
            found = table.get(key)
            if found is None:
                found = table[key] = len(self.keys)
                self.keys.append(key)
            out[i] = found
        return out

    def last(self, rows: np.ndarray, parties: np.ndarray) -> np.ndarray:
        """The last month each (row, consignee) was seen, or a month older than any test."""
        pairs = (rows.astype(np.int64) << 32) | parties
        at = np.searchsorted(self.pairs, pairs)
        found = at < len(self.pairs)
        found[found] = self.pairs[at[found]] == pairs[found]
        return np.where(found, self.months[np.minimum(at, len(self.months) - 1)] if len(self.months) else _NEVER, _NEVER)

    def merge(self, rows: np.ndarray, parties: np.ndarray, months: np.ndarray) -> None:
        """Remember that these pairs were seen in these (closed) months; the latest month wins."""
        if len(rows) == 0:
            return
        pairs = np.concatenate([self.pairs, (rows.astype(np.int64) << 32) | parties])
        months = np.concatenate([self.months, months.astype(np.int64)])
        order = np.lexsort((months, pairs))
        pairs, months = pairs[order], months[order]
        last = np.r_[pairs[1:] != pairs[:-1], True]
        self.pairs, self.months = pairs[last], months[last]

    def prune(self, oldest: int) -> None:
        """Forget pairs last seen before ``oldest``: no later month's test can tell them from unseen ones."""
        keep = self.months >= oldest
        if not keep.all():
            self.pairs, self.months = self.pairs[keep], self.months[keep]

    def to_dict(self) -> dict[int, dict[str, int]]:
        """The engine's form of the memory, ``row -> consignee key -> month``."""
        out: dict[int, dict[str, int]] = {}
        keys = self.keys
        for pair, month in zip(self.pairs.tolist(), self.months.tolist()):
            out.setdefault(pair >> 32, {})[keys[pair & 0xFFFFFFFF]] = month
        return out
