"""An engine's whole state at a month boundary, and its compact binary form.

:meth:`Engine.snapshot() <transitwatch.detectors.engine.Engine.snapshot>` takes an
:class:`EngineSnapshot` when the month in progress has no records yet (right
after a month closed); :meth:`Engine.from_snapshot()
<transitwatch.detectors.engine.Engine.from_snapshot>` builds an engine that goes on exactly as
the first would. Derived things (lane facts, group ids, routes) are rebuilt, not
stored.

For a key-value store (a Faust table, a changelog topic) the snapshot is cut into
parts of at most ``rows_per_part`` series: each part is a magic number and a
zlib-compressed frame of a small JSON header and raw little-endian arrays, so
floats round-trip bit for bit (NaN included). The first part, the head, holds
the scalars and a digest of every other part: a part of another snapshot, a
corrupt part or parts out of order raise :class:`~transitwatch.detectors.errors.StateError`.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import orjson

from transitwatch.detectors.cases import Case
from transitwatch.detectors.errors import InvalidParameterError, StateError
from transitwatch.detectors.table import SeriesKey

SNAPSHOT_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)  # version 1 had no consignees, 1 and 2 no cases, 1-3 no leads: read with none
MAGIC = b"TWs\x01"
_DTYPES = ("<f8", "<i8", "|b1")
_KINDS = ("<f8", "<f8", "|b1", "<f8", "<i8", "|b1", "<f8", "<f8")  # values, counts, protected, ramp, streak, counted,
# parties, leads
_FEATURE_CHUNK = 16  # feature rows per part, per series row of ``rows_per_part``


@dataclass(frozen=True, eq=False, slots=True)
class EngineSnapshot:
    """The state of an :class:`~transitwatch.detectors.engine.Engine` between two months.

    ``open_month`` is the month about to begin (``None``: the engine had no
    used record yet); ``start`` the first month of its data and ``month`` the
    table's last closed month. The arrays are the state table's rows, in row
    order of ``keys``; ``group_starts`` is each hs6 group's first month (the
    configuration's ``watch.history_start`` is not part of it: like every
    setting it comes with the configuration passed on restore);
    ``outcomes`` are :attr:`Engine.counts <transitwatch.detectors.engine.Engine.counts>`;
    ``reference`` the isolation model's reference rows collected over
    ``reference_months`` months, and ``fitted_on`` the rows it was fitted on
    (``None``: not fitted). ``parties`` is each row's history of new consignees
    (``NaN``: unknown), ``leads`` its history of months led by a new consignee (the value to
    it, :func:`~transitwatch.detectors.engine.lead_of`; unknown in snapshots written before
    it) and ``known_parties`` the consignees each row has seen
    (row -> consignee -> last month, those still within the memory); ``cases`` the
    open case of each row that has one (row -> :meth:`Case.to_state()
    <transitwatch.detectors.cases.Case.to_state>`); ``named_parties`` the new consignees of each
    row's last two closed months as its records name them (row -> month ->
    ``[{name, value, first_seen}]``; snapshots written before it have none, and the
    records of the next two months then count those months' new consignees without
    naming them). Equality is bit for bit.

    Examples
    --------
    >>> s = EngineSnapshot.empty(outcomes={"not watched: hs6": 2})
    >>> EngineSnapshot.from_parts(s.to_parts()) == s
    True
    """

    open_month: int | None
    start: int | None
    month: int | None
    keys: tuple[SeriesKey, ...]
    values: np.ndarray
    counts: np.ndarray
    protected: np.ndarray
    ramp: np.ndarray
    streak: np.ndarray
    counted: np.ndarray
    group_starts: Mapping[str, int] = field(default_factory=dict)
    outcomes: Mapping[str, int] = field(default_factory=dict)
    reference: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    reference_months: int = 0
    fitted_on: np.ndarray | None = None
    parties: np.ndarray | None = None
    leads: np.ndarray | None = None
    known_parties: Mapping[int, Mapping[str, int]] = field(default_factory=dict)
    cases: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    named_parties: Mapping[int, Mapping[int, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.keys)
        if self.parties is None and isinstance(self.values, np.ndarray):
            object.__setattr__(self, "parties", np.full(self.values.shape, np.nan))
        if self.leads is None and isinstance(self.values, np.ndarray):
            object.__setattr__(self, "leads", np.full(self.values.shape, np.nan))
        try:
            keys = tuple(SeriesKey(*map(str, k)) for k in self.keys)
        except TypeError as exc:
            raise StateError(f"snapshot keys must be (reporter, partner, flow, hs6): {exc}") from exc
        object.__setattr__(self, "keys", keys)
        if len(set(keys)) != n:
            raise StateError("snapshot keys repeat a series")
        if self.open_month is None and (n or self.group_starts):
            raise StateError("a snapshot without a month in progress holds no series")
        if self.open_month is not None and (self.start is None or self.month is None):
            raise StateError("a snapshot with a month in progress needs the table's start and month")
        matrices = [self.values, self.counts, self.protected]
        vectors = [self.ramp, self.streak, self.counted]
        for a, kind in zip(matrices + vectors + [self.parties, self.leads], _KINDS):
            if not isinstance(a, np.ndarray) or a.dtype != np.dtype(kind):
                raise StateError(f"snapshot arrays must be numpy {kind}")
        history = self.values.shape[1] if self.values.ndim == 2 else -1
        if any(a.shape != (n, history) for a in matrices + [self.parties, self.leads]) or any(a.shape != (n,) for a in vectors):
            raise StateError(f"snapshot arrays must cover {n} series with one history length")
        for a in (self.reference, self.fitted_on):
            if a is not None and (not isinstance(a, np.ndarray) or a.ndim != 2 or a.dtype != np.dtype("<f8")):
                raise StateError("snapshot feature rows must be a 2-d float64 array")
        if self.reference_months < 0 or (self.reference.shape[0] and not self.reference_months):
            raise StateError("snapshot reference rows need the count of months they came from")
        try:
            known = {int(r): {str(c): int(m) for c, m in names.items()} for r, names in self.known_parties.items()}
        except (AttributeError, TypeError, ValueError) as exc:
            raise StateError(f"snapshot consignees must map rows to {{consignee: month}}: {exc}") from exc
        if any(not 0 <= r < n for r in known):
            raise StateError("snapshot consignees name a row it does not hold")
        object.__setattr__(self, "known_parties", {r: names for r, names in sorted(known.items()) if names})
        try:
            cases = {int(r): Case.from_state(dict(state)).to_state() for r, state in self.cases.items()}
        except (AttributeError, TypeError, ValueError) as exc:
            raise StateError(f"snapshot cases must map rows to case states: {exc}") from exc
        if any(not 0 <= r < n for r in cases):
            raise StateError("snapshot cases name a row it does not hold")
        object.__setattr__(self, "cases", dict(sorted(cases.items())))
        try:
            named = {
                int(r): {int(m): tuple({"name": str(p["name"]), "value": float(p["value"]),
                                        "first_seen": str(p["first_seen"])} for p in parties)
                         for m, parties in months.items()}
                for r, months in self.named_parties.items()
            }
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise StateError(f"snapshot new consignees must map rows to {{month: [{{name, value, first_seen}}]}}: "
                             f"{exc!r}") from exc
        if any(not 0 <= r < n for r in named):
            raise StateError("snapshot new consignees name a row it does not hold")
        named = {r: {m: p for m, p in sorted(months.items()) if p} for r, months in sorted(named.items())}
        object.__setattr__(self, "named_parties", {r: months for r, months in named.items() if months})
        object.__setattr__(self, "group_starts", {str(k): int(v) for k, v in self.group_starts.items()})
        object.__setattr__(self, "outcomes", {str(k): int(v) for k, v in self.outcomes.items()})

    @classmethod
    def empty(cls, **kw: Any) -> EngineSnapshot:
        """The snapshot of an engine that has used no record yet."""
        return cls(open_month=None, start=None, month=None, keys=(), values=np.empty((0, 0)),
                   counts=np.empty((0, 0)), protected=np.empty((0, 0), dtype=bool), ramp=np.empty(0),
                   streak=np.empty(0, dtype=np.int64), counted=np.empty(0, dtype=bool), **kw)

    @property
    def history(self) -> int:
        return self.values.shape[1]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EngineSnapshot):
            return NotImplemented
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if not (_same_array(a, b)):
                    return False
            elif a != b:
                return False
        return True

    __hash__ = None  # type: ignore[assignment]

    # -- parts ---------------------------------------------------------------------------------

    def to_parts(self, rows_per_part: int = 256) -> list[bytes]:
        """The snapshot as compressed binary parts: a head, then the series
        ``rows_per_part`` at a time, then the isolation model's rows."""
        if isinstance(rows_per_part, bool) or not isinstance(rows_per_part, int) or rows_per_part < 1:
            raise InvalidParameterError("rows_per_part", rows_per_part, "an integer >= 1")
        body = []
        n = len(self.keys)
        for a in range(0, n, rows_per_part):
            b = min(n, a + rows_per_part)
            known = [[r - a, self.known_parties[r]] for r in range(a, b) if r in self.known_parties]
            cases = [[r - a, self.cases[r]] for r in range(a, b) if r in self.cases]
            named = [[r - a, [[m, list(p)] for m, p in self.named_parties[r].items()]]
                     for r in range(a, b) if r in self.named_parties]
            body.append(_pack(
                {"kind": "rows", "first": a, "keys": [list(k) for k in self.keys[a:b]], "consignees": known,
                 "cases": cases, "named": named},
                [self.values[a:b], self.counts[a:b], self.protected[a:b], self.ramp[a:b], self.streak[a:b],
                 self.counted[a:b], self.parties[a:b], self.leads[a:b]],
            ))
        chunk = rows_per_part * _FEATURE_CHUNK
        for kind, rows in (("reference", self.reference), ("fitted", self.fitted_on)):
            if rows is None:
                continue
            for a in range(0, rows.shape[0], chunk):
                body.append(_pack({"kind": kind, "first": a}, [rows[a:a + chunk]]))
        head = {
            "kind": "head",
            "v": SNAPSHOT_VERSION,
            "open_month": self.open_month,
            "start": self.start,
            "month": self.month,
            "series": n,
            "history": self.history,
            "group_starts": self.group_starts,
            "outcomes": self.outcomes,
            "features": self.reference.shape[1],
            "reference": self.reference.shape[0],
            "reference_months": self.reference_months,
            "fitted": None if self.fitted_on is None else list(self.fitted_on.shape),
            "parts": [_digest(p) for p in body],
        }
        return [_pack(head, [])] + body

    @classmethod
    def from_parts(cls, parts: list[bytes]) -> EngineSnapshot:
        """Rebuild from :meth:`to_parts` (all parts, in order); raises
        :class:`StateError` on a foreign, corrupt, missing or extra part."""
        if not parts:
            raise StateError("no snapshot parts: restore needs the head part and every other part")
        head, _ = _unpack(parts[0])
        try:
            if head.get("kind") != "head":
                raise StateError("the first snapshot part is not a head: parts are out of order")
            version = head["v"]
            if version not in READABLE_VERSIONS:
                raise StateError(f"snapshot version {version!r} is not one of {READABLE_VERSIONS}; "
                                 "rebuild the state by replay")
            digests = head["parts"]
            if len(parts) - 1 != len(digests):
                raise StateError(f"the snapshot has {len(digests) + 1} parts, got {len(parts)}")
            n, history, width = int(head["series"]), int(head["history"]), int(head["features"])
            fitted_shape = head["fitted"]
            keys: list[SeriesKey] = []
            rows: list[list[np.ndarray]] = [[] for _ in range(len(_KINDS))]
            known_parties: dict[int, dict[str, int]] = {}
            cases: dict[int, dict[str, Any]] = {}
            named_parties: dict[int, dict[int, Any]] = {}
            features: dict[str, list[np.ndarray]] = {"reference": [], "fitted": []}
            taken = {"rows": 0, "reference": 0, "fitted": 0}
            for i, (part, digest) in enumerate(zip(parts[1:], digests), start=1):
                if _digest(part) != digest:
                    raise StateError(f"snapshot part {i} does not belong to this snapshot (or is corrupt)")
                header, arrays = _unpack(part)
                kind = header["kind"]
                if kind not in taken or header["first"] != taken[kind]:
                    raise StateError(f"snapshot part {i} is out of place")
                if kind == "rows":
                    first = len(keys)
                    keys.extend(SeriesKey(*k) for k in header["keys"])
                    if version == 1:
                        arrays.append(np.full((len(keys) - first, history), np.nan))
                    if version <= 3:
                        arrays.append(np.full((len(keys) - first, history), np.nan))
                    for out, a in zip(rows, arrays, strict=True):
                        out.append(a)
                    for r, names in header.get("consignees", ()):
                        known_parties[first + int(r)] = names
                    for r, state in header.get("cases", ()):
                        cases[first + int(r)] = state
                    for r, months in header.get("named", ()):  # absent before: no names kept
                        named_parties[first + int(r)] = {int(m): parties for m, parties in months}
                    taken[kind] = len(keys)
                else:
                    (a,) = arrays
                    features[kind].append(a)
                    taken[kind] += a.shape[0]
            if taken["rows"] != n or taken["reference"] != int(head["reference"]):
                raise StateError("snapshot parts are missing")
            values, counts, protected, ramp, streak, counted, parties, leads = (
                np.concatenate(r) if r else np.empty((0, history)[:1 + (j < 3 or j >= 6)], dtype=_KINDS[j])
                for j, r in enumerate(rows)
            )
            reference = np.concatenate(features["reference"]) if features["reference"] else np.empty((0, width))
            fitted_on = None
            if fitted_shape is not None:
                fitted_on = np.concatenate(features["fitted"]) if features["fitted"] else np.empty((0, width))
                if list(fitted_on.shape) != fitted_shape:
                    raise StateError("snapshot parts of the isolation model are missing")
            elif features["fitted"]:
                raise StateError("snapshot parts of an isolation model the head does not know")
            if reference.shape[1] != width or (fitted_on is not None and fitted_on.shape[1] != width):
                raise StateError(f"snapshot feature rows must have {width} columns")
            return cls(
                open_month=head["open_month"],
                start=head["start"],
                month=head["month"],
                keys=tuple(keys),
                values=values,
                counts=counts,
                protected=protected,
                ramp=ramp,
                streak=streak,
                counted=counted,
                group_starts=head["group_starts"],
                outcomes=head["outcomes"],
                reference=reference,
                reference_months=int(head["reference_months"]),
                fitted_on=fitted_on,
                parties=parties,
                leads=leads,
                known_parties=known_parties,
                cases=cases,
                named_parties=named_parties,
            )
        except StateError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"cannot restore the engine snapshot: {exc!r}") from exc


def _same_array(a: Any, b: Any) -> bool:
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
        return False
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _digest(part: bytes) -> str:
    return hashlib.blake2b(part, digest_size=16).hexdigest()


def _pack(header: dict[str, Any], arrays: list[np.ndarray]) -> bytes:
    arrays = [np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")) for a in arrays]
    header = dict(header, arrays=[[a.dtype.str, list(a.shape)] for a in arrays])
    text = orjson.dumps(header)
    frame = b"".join([struct.pack("<I", len(text)), text, *(a.tobytes() for a in arrays)])
    return MAGIC + zlib.compress(frame, 6)


def _unpack(part: bytes) -> tuple[dict[str, Any], list[np.ndarray]]:
    if not isinstance(part, (bytes, bytearray, memoryview)) or bytes(part[:len(MAGIC)]) != MAGIC:
        raise StateError("not a transitwatch engine snapshot part (wrong magic number)")
    try:
        frame = zlib.decompress(bytes(part[len(MAGIC):]))
        (size,) = struct.unpack_from("<I", frame)
        header = orjson.loads(frame[4:4 + size])
        if not isinstance(header, dict):
            raise ValueError("the part header is not an object")
        at = 4 + size
        arrays = []
        for kind, shape in header.pop("arrays"):
            if kind not in _DTYPES or not all(isinstance(d, int) and d >= 0 for d in shape):
                raise ValueError(f"array {kind!r} {shape!r}")
            dtype = np.dtype(kind)
            count = int(np.prod(shape, dtype=np.int64))
            end = at + count * dtype.itemsize
            if end > len(frame):
                raise ValueError("the part is truncated")
            arrays.append(np.frombuffer(frame, dtype=dtype, count=count, offset=at).reshape(shape).copy())
            at = end
        if at != len(frame):
            raise ValueError("the part has trailing bytes")
    except (zlib.error, struct.error, orjson.JSONDecodeError, ValueError, TypeError, KeyError) as exc:
        raise StateError(f"corrupt engine snapshot part: {exc}") from exc
    return header, arrays
