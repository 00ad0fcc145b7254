"""``watch.history_start``: every series' history known from one configured month,
the same in the record-by-record engine, the columnar replay, the batch path,
through snapshots and in engines split by goods group."""

from __future__ import annotations

import zlib

import numpy as np
import orjson
import pytest

from benchmarks import batch
from benchmarks.scenarios.declarations import generate
from transitwatch.detectors.columnar import ColumnarReplay
from transitwatch.detectors.contract import parse_mapping
from transitwatch.detectors.engine import Engine
from transitwatch.detectors.errors import ConfigError
from transitwatch.detectors.frame import Block
from transitwatch.detectors.snapshot import EngineSnapshot
from transitwatch.detectors.table import SeriesKey
from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.replay import _event_key

DEFAULT = WatchConfig.default()
FROM_2020 = WatchConfig.from_toml('[watch]\nhistory_start = "2020-01"\n')


def _month(year, month):
    return year * 12 + month - 1


def _period(m):
    return f"{m // 12}-{m % 12 + 1:02d}"


def _stat(period, value, reporter="DE", partner="KG", hs="85423190"):
    return parse_mapping({"period": period, "reporter": reporter, "partner": partner, "flow": "export",
                          "hs_code": hs, "value": value, "currency": "USD"})


def _row(engine, reporter, partner, hs6):
    t = engine.table
    return t.values[t.index[SeriesKey(reporter, partner, "export", hs6)]]


# --- configuration ---------------------------------------------------------------------------


def test_history_start_is_a_month_or_unset():
    assert DEFAULT.history_start is None and DEFAULT.describe()["history start"] == "per goods group"
    assert WatchConfig.from_toml('[watch]\nhistory_start = ""\n').history_start is None
    assert FROM_2020.history_start == _month(2020, 1) and FROM_2020.describe()["history start"] == "2020-01"
    assert WatchConfig.from_toml('[watch]\nhistory_start = "1999-12"\n').history_start == _month(1999, 12)


@pytest.mark.parametrize("bad", ['"2020-13"', '"2020-00"', '"2020-1"', '"20-01"', '"2020-01-01"', '"2020/01"',
                                 '"abcd-ef"', '"0999-01"', '" 2020-01"', "2020", "2020-01-01", "[]"])
def test_a_bad_history_start_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="watch.history_start must be a month written"):
        WatchConfig.from_toml(f"[watch]\nhistory_start = {bad}\n")


# --- the known history of a new series -------------------------------------------------------


def _two_groups(config):
    """A group trading from 2020-01 and a code first seen in 2022-01 (as HS 2022 codes were)."""
    e = Engine(config)
    for m in range(_month(2020, 1), _month(2022, 1)):
        e.add(_stat(_period(m), 50_000.0))
    e.add(_stat("2022-01", 80_000.0, partner="KZ", hs="88073000"))
    e.add(_stat("2022-01", 80_000.0, partner="KZ"))  # a new series of the old group
    return e


def test_history_start_gives_zeros_back_to_it_for_a_lane_first_seen_later():
    per_group, configured = _two_groups(DEFAULT), _two_groups(FROM_2020)
    known = 24  # 2020-01 to 2021-12, the months before 2022-01 in the 36-month window
    new_code = _row(per_group, "DE", "KZ", "880730")
    assert np.isnan(new_code).all(), "per goods group: the new code has no history before 2022-01"
    for e in (per_group, configured):
        old_group = _row(e, "DE", "KZ", "854231")
        assert (old_group[-known:] == 0).all() and np.isnan(old_group[:-known]).all()
    new_code = _row(configured, "DE", "KZ", "880730")
    assert (new_code[-known:] == 0).all() and np.isnan(new_code[:-known]).all(), "zeros back to 2020-01"
    # the group starts are kept either way: they are state, history_start is configuration
    assert per_group.table.starts == configured.table.starts == {"854231": _month(2020, 1), "880730": _month(2022, 1)}


def test_a_later_history_start_leaves_earlier_months_unknown_and_a_lane_keeps_its_own_past():
    e = Engine(WatchConfig.from_toml('[watch]\nhistory_start = "2021-01"\n'))
    for m in range(_month(2020, 1), _month(2021, 6)):
        e.add(_stat(_period(m), 50_000.0))
    e.add(_stat("2021-06", 70_000.0, partner="AM"))  # first seen after history_start
    own = _row(e, "DE", "KG", "854231")
    assert (own[-17:] == 50_000.0).all() and np.isnan(own[:-17]).all(), "its own months from 2020-01"
    later = _row(e, "DE", "AM", "854231")
    assert (later[-5:] == 0).all() and np.isnan(later[:-5]).all(), "zeros from 2021-01 only, NaN before"


def test_an_earlier_history_start_reaches_back_as_far_as_the_history_window():
    e = Engine(WatchConfig.from_toml('[watch]\nhistory_start = "2015-01"\n'))
    e.add(_stat("2020-01", 50_000.0))
    e.add(_stat("2020-03", 50_000.0, partner="AM"))
    assert not np.isnan(_row(e, "DE", "KG", "854231")).any(), "every month of the window is known"
    assert (_row(e, "DE", "AM", "854231") == 0).all()
    e = Engine(WatchConfig.from_toml('[watch]\nhistory_start = "2019-07"\n'))
    e.add(_stat("2020-01", 50_000.0))
    assert (_row(e, "DE", "KG", "854231")[-6:] == 0).all() and np.isnan(_row(e, "DE", "KG", "854231")[:-6]).all()


# --- the same alerts on every path -----------------------------------------------------------


def _new_group_records():
    """Lanes of codes the generated declarations never use: one first seen in 2022-01
    (declarations: DE>KZ from 2022-01, then a second lane, LT>KG, from 2022-06) and
    one first seen in 2021-07 (monthly statistics: FR>AM, eight times up from 2022-09)."""
    rows, i = [], 0
    for m in range(_month(2022, 1), _month(2023, 1)):
        for reporter, partner, since in (("DE", "KZ", _month(2022, 1)), ("LT", "KG", _month(2022, 6))):
            if m < since:
                continue
            for d in (4, 11, 18, 25):
                i += 1
                rows.append({"declaration_id": f"n{i}", "date": f"{_period(m)}-{d:02d}", "reporter": reporter,
                             "partner": partner, "hs_code": "85416000", "value": 40_000.0 + 500 * (i % 7),
                             "currency": "EUR", "exporter": f"Drone {i % 3}", "consignee": "Steppe Aero"})
    for m in range(_month(2021, 7), _month(2023, 1)):
        rows.append({"period": _period(m), "reporter": "FR", "partner": "AM", "hs_code": "85414900",
                     "value": 20_000.0 * (8 if m >= _month(2022, 9) else 1), "currency": "EUR"})
    return [parse_mapping(r) for r in rows]


@pytest.fixture(scope="module")
def records():
    lines, _ = generate(30_000, 11)
    return sorted([parse_mapping(r) for r in lines] + _new_group_records(), key=_event_key)


CONFIGS = {
    "earlier": WatchConfig.from_toml('[watch]\nhistory_start = "2019-04"\n'),
    "first month": FROM_2020,
    "later": WatchConfig.from_toml('[watch]\nhistory_start = "2021-03"\n'),
}


def _engine(config, records, close=True):
    e = Engine(config)
    for r in records:
        e.add(r)
    e.finish(close_last=close)
    return e, e.drain()


def _dicts(alerts):
    return [a.to_dict() for a in alerts]


def _month_end(alerts):
    return sorted((a.alert_id, a.detectors, a.severity, a.score, a.observed_value, a.baseline_value)
                  for a in alerts if not a.early)


@pytest.fixture(scope="module")
def engine_runs(records):
    return {name: _engine(config, records) for name, config in {"per group": DEFAULT, **CONFIGS}.items()}


def test_history_start_changes_what_a_new_code_alerts(engine_runs):
    new = {name: {(a.reporter, a.partner, a.hs6, a.period) for a in alerts if a.hs6 in ("854160", "854149")}
           for name, (_, alerts) in engine_runs.items()}
    assert ("DE", "KZ", "854160", "2022-01") in new["first month"], "a new lane after two years of zeros"
    assert ("DE", "KZ", "854160", "2022-01") not in new["per group"], "no history before 2022-01: nothing to compare"
    assert len({frozenset(v) for v in new.values()}) > 1


@pytest.mark.parametrize("name", list(CONFIGS))
def test_engine_columnar_and_batch_agree_with_history_start(records, engine_runs, name):
    config = CONFIGS[name]
    engine, expected = engine_runs[name]
    assert expected and any(a.early for a in expected) and any(a.hs6 == "854160" for a in expected)

    run = ColumnarReplay(config)
    third = len(records) // 3
    for a in range(0, len(records), third):
        part = records[a:a + third]
        run.feed(Block.from_records(part), source=0, lines=np.arange(a + 1, a + len(part) + 1))
    columnar = run.run(final_month="closed").engine
    assert _dicts(columnar.drain()) == _dicts(expected)
    assert columnar.counts == engine.counts
    assert columnar.table.starts == engine.table.starts
    assert columnar.snapshot() == engine.snapshot(), "the same state, bit for bit"

    vectorized = batch.detect(batch.monthly_cells(batch.records_frame(records), config), config)
    assert _month_end(vectorized) == _month_end(expected)


def test_a_snapshot_restored_with_the_config_goes_on_as_the_uninterrupted_engine(records, engine_runs):
    config = FROM_2020
    whole, _ = engine_runs["first month"]
    expected = whole.snapshot()
    # cut before the new codes appear, so lanes created after each restore depend on history_start
    cuts = {_month(2020, 9), _month(2021, 5), _month(2021, 12), _month(2022, 4)}
    seen: set[str] = set()
    engine, got, restores = Engine(config, seen=seen), [], 0
    for r in records:
        if r.month in cuts:
            cuts.discard(r.month)
            engine.close_until(r.month)
            got += engine.drain()
            before = engine.table
            seen = set(seen)
            engine = Engine.from_snapshot(EngineSnapshot.from_parts(engine.snapshot().to_parts()), config, seen=seen)
            assert engine.table.starts == before.starts and engine.table.history_start == config.history_start
            restores += 1
        engine.add(r)
    engine.finish(close_last=True)
    got += engine.drain()
    assert restores == 4
    assert _dicts(got) == _dicts(engine_runs["first month"][1])
    assert engine.snapshot() == expected and engine.table.starts == whole.table.starts


def _key(alert):
    return orjson.dumps(alert.to_dict(), option=orjson.OPT_SORT_KEYS)


@pytest.mark.parametrize("parts", [2, None])  # None: one engine per hs6, as the service runs
def test_engines_split_by_hs6_give_the_alerts_of_one_engine_with_history_start(records, engine_runs, parts):
    whole, expected = engine_runs["later"]
    config = CONFIGS["later"]
    by_part: dict[object, list] = {}
    for r in records:
        hs6 = r.hs_code[:6]
        by_part.setdefault(hs6 if parts is None else zlib.crc32(hs6.encode()) % parts, []).append(r)
    got, firsts = [], set()
    for part in by_part.values():
        e = Engine(config)
        for r in part:
            e.add(r)
        if e.table is not None:
            firsts.add(e.table.start)
            e.close_until(whole.open_month)  # the service's clock closes a part's months
        e.finish(close_last=False)
        got += e.drain()
    assert sorted(map(_key, got)) == sorted(map(_key, expected))
    if parts is None:
        assert len(firsts) > 1, "some goods groups start after the first month"
