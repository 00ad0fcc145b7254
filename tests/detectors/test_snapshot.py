"""Engine snapshots: taken at a month boundary, cut into parts, restored, and the
restored engine goes on exactly as the uninterrupted one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.scenarios.declarations import generate
from transitwatch.detectors.contract import parse_mapping
from transitwatch.detectors.engine import Engine
from transitwatch.detectors.errors import InvalidParameterError, StateError
from transitwatch.detectors.snapshot import EngineSnapshot
from transitwatch.detectors.table import SeriesKey
from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.replay import _event_key

ISOLATION = WatchConfig.from_toml(
    "[isolation]\nin_alerting_path = true\nfit_months = 6\nn_estimators = 10\nmax_fit_rows = 2000\nthreshold = 0.6\n"
)


@pytest.fixture(scope="module")
def records():
    lines, _ = generate(30_000, 3)
    return sorted((parse_mapping(r) for r in lines), key=_event_key)


def _month(year, month):
    return year * 12 + month - 1


def _dicts(alerts):
    return [a.to_dict() for a in alerts]


@pytest.mark.parametrize(
    "config, until, cuts",
    [
        (WatchConfig.default(), None, [(2020, 4), (2020, 11), (2021, 6), (2022, 9)]),
        # the isolation model scores every check: a shorter stream, cut before and after the fit
        (ISOLATION, (2021, 10), [(2020, 4), (2020, 11), (2021, 6)]),
    ],
    ids=["default", "isolation"],
)
def test_restored_engines_go_on_exactly_as_the_uninterrupted_one(records, config, until, cuts):
    if until is not None:
        records = [r for r in records if r.month < _month(*until)]
    whole = Engine(config)
    for r in records:
        whole.add(r)
    expected = whole.drain()

    # each time into a fresh engine, restored from the parts alone
    cuts = {_month(*c) for c in cuts}
    restores_wanted = len(cuts)
    seen: set[str] = set()
    engine, got, restores, sizes, open_cases = Engine(config, seen=seen), [], 0, [], 0
    for r in records:
        if r.month in cuts:
            cuts.discard(r.month)
            engine.close_until(r.month)
            got += engine.drain()
            snap = engine.snapshot()
            open_cases += len(snap.cases)
            parts = snap.to_parts()
            sizes += [len(p) for p in parts]
            seen = set(seen)  # the service's own store of ids, carried over
            engine = Engine.from_snapshot(EngineSnapshot.from_parts(parts), config, seen=seen)
            restores += 1
        engine.add(r)
    got += engine.drain()

    assert restores == restores_wanted and not cuts
    assert _dicts(got) == _dicts(expected)
    assert engine.counts == whole.counts
    assert engine.counts["duplicate declarations ignored"] > 0
    assert max(sizes) < 1 << 20
    end = whole.open_month + 1
    for e in (whole, engine):
        e.close_until(end)
    last = whole.drain()
    assert _dicts(last) == _dicts(engine.drain())
    assert len(expected + last) >= 5
    assert open_cases or until is not None, "a case open across a cut goes on as the same case"
    assert engine.snapshot() == whole.snapshot(), "the same state, bit for bit"
    if config is ISOLATION:
        assert whole.policy.isolation.fitted and whole.snapshot().fitted_on is not None
        assert any(a.evidence["isolation_score"] is not None for a in expected)


def test_a_snapshot_needs_a_month_boundary(records):
    e = Engine()
    e.add(records[0])
    with pytest.raises(StateError, match="month boundary"):
        e.snapshot()
    e.close_until(records[0].month + 1)
    assert e.snapshot().open_month == records[0].month + 1


def test_an_engine_without_records_round_trips():
    e = Engine()
    e.add(parse_mapping({"period": "2022-01", "reporter": "DE", "partner": "FR", "hs_code": "854231", "value": 1}))
    snap = e.snapshot()
    again = Engine.from_snapshot(EngineSnapshot.from_parts(snap.to_parts()))
    assert again.table is None and again.counts == e.counts


# --- parts --------------------------------------------------------------------------------

_TEXT = st.text(min_size=1, max_size=8)
_FLOATS = st.binary(min_size=8, max_size=8).map(lambda b: float(np.frombuffer(b, "<f8")[0]))  # every bit pattern


@st.composite
def snapshots(draw):
    n = draw(st.integers(0, 40))
    history = draw(st.integers(1, 40))
    keys = draw(st.lists(st.tuples(_TEXT, _TEXT, _TEXT, _TEXT), min_size=n, max_size=n, unique=True))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)

    def bits(*shape):  # raw float64 bit patterns: NaN payloads, infinities, -0.0, subnormals
        return rng.integers(0, 2**64, size=shape, dtype=np.uint64).view(np.float64)

    width = draw(st.integers(0, 12))
    ref_rows = draw(st.integers(0, 600))
    fitted = draw(st.one_of(st.none(), st.integers(0, 900)))
    return EngineSnapshot(
        open_month=draw(st.integers(0, 30_000)),
        start=draw(st.integers(0, 30_000)),
        month=draw(st.integers(-1, 30_000)),
        keys=tuple(SeriesKey(*k) for k in keys),
        values=np.where(rng.random((n, history)) < 0.2, np.nan, bits(n, history)),
        counts=bits(n, history),
        protected=rng.random((n, history)) < 0.3,
        ramp=np.array([draw(_FLOATS) for _ in range(n)], dtype=np.float64),
        streak=rng.integers(-(2**62), 2**62, size=n),
        counted=rng.random(n) < 0.5,
        group_starts=draw(st.dictionaries(_TEXT, st.integers(0, 30_000), max_size=6)),
        outcomes=draw(st.dictionaries(_TEXT, st.integers(0, 2**53), max_size=6)),
        reference=bits(ref_rows, width),
        reference_months=draw(st.integers(1, 12)) if ref_rows else draw(st.integers(0, 12)),
        fitted_on=None if fitted is None else bits(fitted, width),
        parties=bits(n, history),
        known_parties=draw(st.dictionaries(st.integers(0, n - 1), st.dictionaries(_TEXT, st.integers(0, 30_000),
                                                                                max_size=4), max_size=n))
        if n else {},
    )


@given(snapshot=snapshots(), rows_per_part=st.integers(1, 50))
@settings(max_examples=150, deadline=None)
def test_parts_round_trip_bit_for_bit(snapshot, rows_per_part):
    parts = snapshot.to_parts(rows_per_part)
    again = EngineSnapshot.from_parts(parts)
    assert again == snapshot
    assert again.values.tobytes() == snapshot.values.tobytes()  # NaN payloads too
    assert again.keys == snapshot.keys and again.group_starts == snapshot.group_starts
    assert len(parts) >= 1 + -(-len(snapshot.keys) // rows_per_part)


def _real_parts():
    lines, _ = generate(6_000, 2)
    e = Engine()
    for r in sorted((parse_mapping(x) for x in lines), key=_event_key):
        e.add(r)
    e.close_until(e.open_month + 1)
    return e.snapshot().to_parts(rows_per_part=4)


def test_corrupt_foreign_missing_or_reordered_parts_are_state_errors():
    parts = _real_parts()
    other = EngineSnapshot.empty(outcomes={"x": 1}).to_parts() + parts[1:]
    assert len(parts) > 3 and EngineSnapshot.from_parts(parts).keys
    flipped = bytearray(parts[2])
    flipped[len(flipped) // 2] ^= 0x40
    bad = {
        "no parts": [],
        "a flipped byte": [parts[0], parts[1], bytes(flipped), *parts[3:]],
        "a flipped byte in the head": [bytes(bytearray(parts[0][:-3]) + b"\x00\x00\x00"), *parts[1:]],
        "a missing part": parts[:2] + parts[3:],
        "an extra part": parts + [parts[1]],
        "parts out of order": [parts[0], parts[2], parts[1], *parts[3:]],
        "the body first": parts[1:] + parts[:1],
        "another snapshot's head": other,
        "another snapshot's part": [parts[0], *_real_parts_other()[1:2], *parts[2:]],
        "not a part": [b"hello", *parts[1:]],
        "a truncated part": [parts[0], parts[1][:40], *parts[2:]],
        "not bytes": [None, *parts[1:]],
    }
    for name, broken in bad.items():
        with pytest.raises(StateError):
            EngineSnapshot.from_parts(broken)
            pytest.fail(name)


def _real_parts_other():
    e = Engine()
    e.add(parse_mapping({"period": "2022-01", "reporter": "DE", "partner": "KG", "hs_code": "854231", "value": 7}))
    e.close_until(2022 * 12 + 1)
    return e.snapshot().to_parts(rows_per_part=64)


def test_rows_per_part_is_checked():
    with pytest.raises(InvalidParameterError):
        EngineSnapshot.empty().to_parts(0)


def test_inconsistent_snapshots_are_refused():
    good = EngineSnapshot.from_parts(_real_parts())
    with pytest.raises(StateError):
        EngineSnapshot(**{**_fields(good), "ramp": good.ramp[:-1]})
    with pytest.raises(StateError):
        EngineSnapshot(**{**_fields(good), "keys": good.keys[:1] * len(good.keys)})
    with pytest.raises(StateError):
        EngineSnapshot(**{**_fields(good), "values": good.values.astype(np.float32)})


def _fields(snapshot):
    return {name: getattr(snapshot, name) for name in snapshot.__dataclass_fields__}


def test_a_part_of_256_series_stays_well_under_a_megabyte_even_incompressible():
    rng = np.random.default_rng(0)
    n, width = 1000, 9
    snap = EngineSnapshot(
        open_month=24_300, start=24_240, month=24_299,
        keys=tuple(SeriesKey(f"R{i}", "KG", "export", f"{i % 50:06d}") for i in range(n)),
        values=rng.random((n, 36)), counts=rng.random((n, 36)), protected=rng.random((n, 36)) < 0.5,
        ramp=rng.random(n), streak=rng.integers(0, 9, n), counted=rng.random(n) < 0.5,
        reference=rng.random((5000, width)), reference_months=3, fitted_on=rng.random((9000, width)),
    )
    parts = snap.to_parts()
    assert len(parts) == 1 + 4 + 2 + 3
    assert max(map(len, parts)) < 400_000
    assert EngineSnapshot.from_parts(parts) == snap


def test_a_version_1_snapshot_is_read_with_no_consignees_known():
    from transitwatch.detectors import snapshot as module

    snap = EngineSnapshot.from_parts(_real_parts())
    assert snap.known_parties, "the generated declarations name consignees"
    head, _ = module._unpack(snap.to_parts()[0])
    rows = [module._pack({"kind": "rows", "first": 0, "keys": [list(k) for k in snap.keys]},
                         [snap.values, snap.counts, snap.protected, snap.ramp, snap.streak, snap.counted])]
    head = dict(head, v=1, parts=[module._digest(p) for p in rows])
    old = EngineSnapshot.from_parts([module._pack(head, [])] + rows)
    assert old.known_parties == {} and np.isnan(old.parties).all()
    assert old.values.tobytes() == snap.values.tobytes() and old.keys == snap.keys
    Engine.from_snapshot(old)  # and an engine goes on from it


def test_a_version_3_snapshot_is_read_with_no_leads_known():
    from transitwatch.detectors import snapshot as module

    snap = EngineSnapshot.from_parts(_real_parts())
    assert (np.nan_to_num(snap.leads) > 0).any(), "the generated declarations have months led by new consignees"
    head, _ = module._unpack(snap.to_parts()[0])
    header = {"kind": "rows", "first": 0, "keys": [list(k) for k in snap.keys], "consignees": [
        [r, names] for r, names in snap.known_parties.items()]}
    rows = [module._pack(header, [snap.values, snap.counts, snap.protected, snap.ramp, snap.streak, snap.counted,
                                  snap.parties])]
    head = dict(head, v=3, parts=[module._digest(p) for p in rows])
    old = EngineSnapshot.from_parts([module._pack(head, [])] + rows)
    assert np.isnan(old.leads).all() and old.leads.shape == snap.leads.shape
    assert old.parties.tobytes() == snap.parties.tobytes() and old.known_parties == snap.known_parties
    engine = Engine.from_snapshot(old)  # and an engine goes on from it, its lanes with no record to beat yet
    assert np.isnan(engine.table.leads[:len(engine.table)]).all()
