"""The columnar path must equal the record-by-record one: the contract's fast path
(``transitwatch.detectors.frame``) and the columnar replay (``transitwatch.detectors.columnar``)."""

from __future__ import annotations

import gzip
import random

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.scenarios import labelled
from benchmarks.scenarios.declarations import generate
from transitwatch.detectors.columnar import ColumnarReplay
from transitwatch.detectors.contract import CURRENCY_CODES, parse_json_line, parse_mapping
from transitwatch.detectors.engine import Engine
from transitwatch.detectors.errors import RejectError
from transitwatch.detectors.frame import Block, parse_objects, split_fast
from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.replay import _event_key, replay

CONFIG = WatchConfig.default()
NO_RATE = sorted(CURRENCY_CODES - set(CONFIG.rates))[0]


def engine_run(records, close):
    """The reference: records one by one through Engine.add, in event order."""
    engine = Engine(CONFIG)
    rejects = []
    for i, rec in sorted(enumerate(records), key=lambda ir: _event_key(ir[1])):
        try:
            engine.add(rec)
        except RejectError as error:
            rejects.append((i + 1, error.reason, error.message, rec.to_dict()))
    engine.finish(close_last=close)
    return [a.to_dict() for a in engine.drain()], engine.counts, rejects


def columnar_run(records, close, pieces=3):
    run = ColumnarReplay(CONFIG)
    step = max(1, len(records) // pieces)
    for a in range(0, len(records), step):  # several blocks, as the replay feeds them
        part = records[a:a + step]
        run.feed(Block.from_records(part), source=0, lines=[a + i + 1 for i in range(len(part))])
    out = run.run(final_month="closed" if close else "open")
    rejects = [(line, e.reason, e.message, rec) for _, line, rec, e in out.rejects]
    return [a.to_dict() for a in out.engine.drain()], out.engine.counts, rejects


def assert_same(records):
    for close in (True, False):
        expected = engine_run(records, close)
        got = columnar_run(records, close)
        assert got[1] == expected[1], f"counts, close_last={close}"
        assert got[2] == expected[2], "no_fx_rate rejects"
        assert got[0] == expected[0], f"alerts, close_last={close}"
    return expected


def test_generated_declarations():
    lines, _ = generate(30_000, 11)
    alerts, counts, _ = assert_same([parse_mapping(r) for r in lines])
    assert alerts and any(a["early"] for a in alerts), "the test must see month-end and early alerts"
    assert counts["duplicate declarations ignored"] and counts["series checked early"]


def test_monthly_statistics_with_revisions():
    scenario = labelled.generate(seed=3, hub_series=60, months=36)
    alerts, counts, _ = assert_same([parse_mapping(r) for r in scenario.monthly])
    assert alerts and counts["revisions applied"]
    assert counts["series checked early"] == 0, "statistics trigger no in-month checks, and the end of input none either"


def test_eurostat_sample():
    config = "examples/eurostat.toml"
    with gzip.open("examples/eurostat_chpl_exports_2020_2022.jsonl.gz", "rb") as f:
        records = [parse_json_line(line) for line in f]
    global CONFIG
    saved, CONFIG = CONFIG, WatchConfig.from_toml(open(config).read())
    try:
        alerts, _, _ = assert_same(records)
    finally:
        CONFIG = saved
    assert alerts


def test_a_mix_of_kinds_duplicates_unwatched_and_no_rate():
    scenario = labelled.generate(seed=5, hub_series=60, months=36)
    rows = scenario.declarations + scenario.monthly  # statistics and declarations share cells
    rng = random.Random(1)
    rng.shuffle(rows)
    changed = []
    for i, row in enumerate(rows[:4000]):
        row = dict(row)
        row[["currency", "partner", "flow", "hs_code", "reporter"][i % 5]] = [NO_RATE, "FR", "import", "01012100", "US"][i % 5]
        if "declaration_id" in row:
            row["declaration_id"] += "-changed"
        changed.append(row)
    records = [parse_mapping(r) for r in rows + changed + rows[:700]]  # the last: duplicates
    alerts, counts, rejects = assert_same(records)
    assert alerts and any(a["early"] for a in alerts)
    assert rejects and counts["not watched: partner"] and counts["not watched: hs6"] and counts["not watched: flow"]
    assert counts["revisions applied"] and counts["duplicate declarations ignored"]


BUSY_CHECKS = WatchConfig.from_toml(
    "[early]\ncheck_days = [2, 5, 9, 14, 20, 26]\n[novelty]\nmin_value = 2000.0\n"
    "[surge]\nmin_excess = 1000.0\n[ramp]\nmin_excess = 1000.0\n"
)


def _busy_month_records(seed):
    """A year of quiet lanes in four goods groups, then months where random lanes
    burst on random days: many groups, each with its own checks, alerting early."""
    rng = np.random.default_rng(seed)
    lanes = [(r, p, h) for r in ("DE", "PL") for p in ("KG", "AM") for h in ("85423190", "85176200", "90138000", "84713000")]
    rows = []
    for m in range(15):
        year, month = 2021 + m // 12, m % 12 + 1
        for li, (reporter, partner, hs) in enumerate(lanes):
            burst = m >= 12 and rng.random() < 0.4
            n = int(rng.poisson(8 if burst else 1.5))
            for k in range(n):
                day = int(rng.integers(1, 29))
                rows.append({"declaration_id": f"{m}-{li}-{k}", "date": f"{year}-{month:02d}-{day:02d}",
                             "reporter": reporter, "partner": partner, "hs_code": hs,
                             "value": float(rng.lognormal(7.5, 0.4)) * (6 if burst else 1), "currency": "USD",
                             "exporter": f"E{int(rng.integers(0, 4))}"})
            if li % 5 == 0:  # monthly statistics in some of the same cells
                rows.append({"period": f"{year}-{month:02d}", "reporter": reporter, "partner": partner,
                             "hs_code": hs[:6] + "11", "value": float(rng.lognormal(7, 0.3)), "currency": "USD"})
    rows += [dict(r) for r in rows[:: 37] if "declaration_id" in r]  # re-sent duplicates
    cut = int(rng.integers(3, 29))  # the last month ends on a random day
    return [parse_mapping(r) for r in rows if r.get("date", "9999") <= f"2022-03-{cut:02d}" or r.get("period", "") < "2022-03"]


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=10, deadline=None)
def test_per_group_checks_on_busy_months(seed):
    global CONFIG
    saved, CONFIG = CONFIG, BUSY_CHECKS
    try:
        alerts, counts, _ = assert_same(_busy_month_records(seed))
    finally:
        CONFIG = saved
    assert counts["series checked early"]


def test_busy_months_alert_early_in_several_groups_and_checks():
    global CONFIG
    saved, CONFIG = CONFIG, BUSY_CHECKS
    try:
        alerts, counts, _ = assert_same(_busy_month_records(1))
    finally:
        CONFIG = saved
    early = [a for a in alerts if a["early"]]
    assert len({a["hs6"] for a in early}) >= 3 and len({a["as_of"] for a in early}) >= 3


def test_replay_file_matches_engine(tmp_path):
    """End to end: the file reader, the fast path, bad lines and the rejects file."""
    lines, _ = generate(8_000, 4)
    lines[10] = dict(lines[10], currency=NO_RATE)
    lines[11] = dict(lines[11], reporter="de", value="12.5")  # slow path, accepted
    body = [orjson.dumps(r) for r in lines]
    body[20:20] = [b"not json", b"", b'{"declaration_id": "x", "date": "2022-02-30"}', b"[1]"]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(body) + b"\n")
    rejects = tmp_path / "rejects.jsonl"
    result = replay([path], config=CONFIG, rejects_out=rejects, final_month="closed")
    records = [parse_json_line(b) for b in body if b.strip() and _ok(b)]
    alerts, counts, no_fx = engine_run(records, True)
    assert result.engine_counts == counts
    by_id = {}
    for a in alerts:
        by_id.pop(a["alert_id"], None)
        by_id[a["alert_id"]] = a
    assert [a.to_dict() for a in result.alerts] == sorted(by_id.values(), key=lambda a: (a["period"], a["series_id"]))
    rows = [orjson.loads(x) for x in rejects.read_bytes().splitlines()]
    assert [(r["line"], r["reason"]) for r in rows] == [(21, "invalid_json"), (23, "missing_field"),
                                                        (24, "not_an_object"), (11, "no_fx_rate")]
    assert rows[-1]["raw"] == orjson.dumps(no_fx[0][3]).decode()
    assert result.lines == len(body) - 1 and result.accepted == len(records) - 1


def _ok(line):
    try:
        parse_json_line(line)
    except RejectError:
        return False
    return True


# --- the fast path of the contract --------------------------------------------------------

_COUNTRY = st.sampled_from(["DE", "KG", "de", "EL", "XX", "D", " DE", "", None, 7, True])
_TEXT = st.one_of(st.none(), st.sampled_from(["Acme", " Acme", "Acme ", "", " ", "A\u00a0", "Ок", "\ud800"]),
                  st.text(max_size=6), st.integers(-5, 5))
_NUMBER = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**60, 2**70), st.booleans(),
                    st.none(), st.sampled_from(["1.5", " 2", "-1", "", "1e3", "nan"]))
_DATE = st.one_of(st.dates().map(lambda d: d.isoformat()),
                  st.sampled_from(["2024-02-30", "2024-2-03", "2024-03-05T10:00:00", " 2024-03-05", "2024-03-05 ",
                                   "0000-01-01", "٢٠٢٤-٠٣-٠٥", 20240305, None, ""]))
_PERIOD = st.one_of(st.sampled_from(["2024-01", "2024-12", "2024-13", "2024-1", " 2024-01", "0999-05", None, "", 202401]),
                    st.dates().map(lambda d: d.isoformat()[:7]))
_HS = st.one_of(st.sampled_from(["854231", "8542319000", "8542.31", "85423", "85423190001", "８５４２３１", 854231, None]),
                st.text("0123456789", min_size=5, max_size=11))
_VALID = st.fixed_dictionaries(
    {"reporter": st.sampled_from(["DE", "PL", "FR"]), "partner": st.sampled_from(["KG", "AM", "RU"]),
     "hs_code": st.sampled_from(["854231", "85423190", "8471300000"]), "value": st.floats(0, 1e9)},
    optional={"flow": st.sampled_from(["export", "import", "re-export", "re-import"]),
              "currency": st.sampled_from(["USD", "EUR", "JPY"]), "net_mass_kg": st.floats(0, 1e6),
              "quantity": st.integers(0, 1000), "exporter": st.sampled_from(["Acme GmbH", "Beta"]),
              "consignee": st.sampled_from(["Gamma", "Delta LLC"]), "unit": st.sampled_from(["kg", "p/st"]),
              "origin": st.sampled_from(["CN", "TW", None]), "extra": st.integers()},
)
_DECLARATION = st.builds(lambda d, i, date: {**d, "declaration_id": i, "date": date}, _VALID,
                         st.sampled_from(["a", "b-1", "20DE0001"]), st.dates().map(lambda d: d.isoformat()))
_STATISTIC = st.builds(lambda d, p: {**d, "period": p}, _VALID, _PERIOD)
_FIELD = st.sampled_from(["declaration_id", "date", "period", "reporter", "partner", "flow", "hs_code", "value",
                          "currency", "net_mass_kg", "quantity", "unit", "exporter", "consignee", "origin"])
_ANY = st.one_of(_COUNTRY, _TEXT, _NUMBER, _DATE, _HS, _PERIOD)


@st.composite
def _rows(draw):
    base = draw(st.one_of(_DECLARATION, _STATISTIC, st.just({})))
    for _ in range(draw(st.integers(0, 3))):  # slightly off: change or drop a field
        name = draw(_FIELD)
        if draw(st.booleans()):
            base[name] = draw(_ANY)
        else:
            base.pop(name, None)
    return draw(st.one_of(st.just(base), st.just(base), st.just(base), st.sampled_from([[1], "x", 3, None])))


def _slow(obj):
    try:
        return parse_mapping(obj).to_dict()
    except RejectError as error:
        return error.key


@given(st.lists(_rows(), max_size=30), st.booleans())
@settings(max_examples=400, deadline=None)
def test_fast_path_plus_slow_path_equals_slow_path(rows, uniform):
    if uniform and rows:  # also the one-layout transposition
        rows = [dict(rows[0]) for _ in rows] if isinstance(rows[0], dict) else rows
    block, rejects = parse_objects(rows)
    expected = [_slow(r) for r in rows]
    got: list = [None] * len(rows)
    for i, rec in zip(block.index.tolist(), block.to_dicts()):
        got[i] = rec
    for i, error in rejects:
        got[i] = error.key
    assert got == expected


def test_fast_path_takes_normal_rows_and_leaves_the_rest():
    rows = [
        {"declaration_id": "a", "date": "2024-03-05", "reporter": "DE", "partner": "KG", "hs_code": "854231", "value": 1.5},
        {"declaration_id": "a", "date": "2024-03-05", "reporter": "DE", "partner": "KG", "hs_code": "8542.31", "value": 1.5},
        {"period": "2024-03", "reporter": "DE", "partner": "KG", "hs_code": "854231", "value": 2, "currency": "EUR"},
        {"period": "2024-03", "declaration_id": "a", "reporter": "DE", "partner": "KG", "hs_code": "854231", "value": 2},
    ]
    block, slow = split_fast(rows)
    assert slow.tolist() == [False, True, False, True]
    assert block.to_dicts() == [parse_mapping(rows[0]).to_dict(), parse_mapping(rows[2]).to_dict()]


@pytest.mark.parametrize("bad", [b"not json", b"[1, 2]", b'{"declaration_id": 1e999}', b"\xff\xfe"])
def test_undecodable_lines_take_parse_json_line(bad):
    _, rejects = parse_objects([None], [bad])
    with pytest.raises(RejectError) as expected:
        parse_json_line(bad)
    assert [e.key for _, e in rejects] == [expected.value.key]
