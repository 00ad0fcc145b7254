"""Which offsets may be committed: up to, not past, the first alert still being handled.

Alerts of one partition finish out of order (a group waits, another goes at once), so a
partition's commit point is its lowest unfinished offset, or one past the highest seen when
all are finished. After a crash the notifier re-reads from there; alerts it had already
delivered are found in the delivery log and skipped.
"""

from __future__ import annotations

from transitwatch.streams.notify.sinks import Source

TP = tuple[str, int]


class OffsetTracker:
    """Commit points per (topic, partition).

    Examples
    --------
    >>> t = OffsetTracker()
    >>> for o in (5, 6, 7):
    ...     t.seen(Source("a", 0, o))
    >>> t.done(Source("a", 0, 6)); t.committable()
    {}
    >>> t.done(Source("a", 0, 5)); t.committable()
    {('a', 0): 7}
    >>> t.committed({("a", 0): 7}); t.done(Source("a", 0, 7)); t.committable()
    {('a', 0): 8}
    """

    def __init__(self) -> None:
        self._pending: dict[TP, set[int]] = {}
        self._next: dict[TP, int] = {}
        self._committed: dict[TP, int] = {}

    def seen(self, source: Source) -> None:
        tp = (source.topic, source.partition)
        # The first offset read is where the group's last commit left off: nothing to commit yet.
        self._committed.setdefault(tp, source.offset)
        self._pending.setdefault(tp, set()).add(source.offset)
        self._next[tp] = max(self._next.get(tp, 0), source.offset + 1)

    def done(self, source: Source) -> None:
        pending = self._pending.get((source.topic, source.partition))
        if pending is not None:
            pending.discard(source.offset)

    def committable(self) -> dict[TP, int]:
        """Commit points that moved since the last :meth:`committed`."""
        out = {}
        for tp, nxt in self._next.items():
            pending = self._pending.get(tp)
            point = min(pending) if pending else nxt
            if point > self._committed.get(tp, -1):
                out[tp] = point
        return out

    def committed(self, offsets: dict[TP, int]) -> None:
        for tp, offset in offsets.items():
            self._committed[tp] = max(self._committed.get(tp, -1), offset)

    def forget(self, partitions: set[TP] | list[TP]) -> None:
        """Drop partitions this instance no longer owns."""
        for tp in partitions:
            self._pending.pop(tp, None)
            self._next.pop(tp, None)
            self._committed.pop(tp, None)

    def unfinished(self) -> int:
        return sum(len(p) for p in self._pending.values())
