"""Tests for the roundabout scenario generator (benchmarks.scenarios.roundabout)."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path

import jsonschema
import pytest

from benchmarks.cases import TruthView, lane_values, pre_level, read_jsonl, run_scenario
from benchmarks.scenarios import roundabout as gen
from benchmarks.scoring import month_index
from transitwatch.detectors.contract import Declaration, MonthlyStat, parse_mapping
from transitwatch.detectors.errors import InvalidParameterError
from transitwatch.detectors.watch import WatchConfig

SCHEMA = Path(__file__).resolve().parents[2] / "detectors" / "data" / "input.schema.json"
SEED, LANES, MONTHS = 3, 300, 40


@pytest.fixture(scope="module")
def scn() -> gen.Scenario:
    return gen.generate(seed=SEED, lanes=LANES, months=MONTHS)


@pytest.fixture(scope="module")
def truth(scn) -> TruthView:
    return TruthView.from_rows(scn.truth, last=month_index(scn.periods[-1]))


@pytest.fixture(scope="module")
def values(scn):
    return lane_values(scn.declarations, WatchConfig.default())


def _events(truth: TruthView, pattern: str):
    return [e for e in truth.events if e.pattern == pattern]


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = gen.write(gen.generate(seed=5, lanes=40, months=30), tmp_path / "a")
    b = gen.write(gen.generate(seed=5, lanes=40, months=30), tmp_path / "b")
    c = gen.write(gen.generate(seed=6, lanes=40, months=30), tmp_path / "c")
    for kind in ("declarations", "monthly", "truth"):
        assert a[kind].read_bytes() == b[kind].read_bytes()
        assert a[kind].read_bytes() != c[kind].read_bytes()


def test_written_lines_follow_the_input_schema_and_the_contract(tmp_path):
    paths = gen.write(gen.generate(seed=7, lanes=30, months=30), tmp_path)
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    for kind, cls in (("declarations", Declaration), ("monthly", MonthlyStat)):
        rows = read_jsonl(paths[kind])
        assert rows
        for row in rows:
            validator.validate(row)
            assert type(parse_mapping(row)) is cls


def test_every_pattern_density_season_and_currency_is_drawn(scn, truth):
    lanes = [t for t in scn.truth if t["kind"] == "series"]
    assert len(lanes) == LANES
    assert {t["density"] for t in lanes} == {d[0] for d in gen.DENSITY}
    assert {t["season"] for t in lanes} == set(gen.SEASONS)
    assert {e.pattern for e in truth.events} == set(gen.SURGES)
    assert {d["currency"] for d in scn.declarations} == {"EUR", "USD", "PLN", "CZK", "SEK"}
    assert {m["currency"] for m in scn.monthly} == {"EUR", "USD"}
    assert sum(t["kind"] == "intermittent" for t in scn.truth) == round(gen.PATTERNS["intermittent"] * LANES)
    onsets = [e.onset - month_index(scn.periods[0]) for e in truth.events]
    assert min(onsets) >= 18


def test_sustained_surges_stay_at_least_three_times_their_level(scn, truth, values):
    first = month_index(scn.periods[0])
    checked = 0
    for e in _events(truth, "sustained"):
        if truth.lanes[e.key]["density"] in ("trace", "sparse"):
            continue
        lane = values[e.key]
        pre = pre_level(lane, e.onset, first=first)
        ratios = [lane.get(m, 0.0) / pre for m in range(e.onset, e.stop + 1)]
        assert statistics.fmean(ratios) >= 3.0, (e, ratios)
        assert sum(r >= 3.0 for r in ratios) >= len(ratios) / 2, (e, ratios)
        checked += 1
    assert checked >= 3


def test_one_buyer_surges_ship_to_a_consignee_never_seen_before(scn, truth):
    rows = [t for t in scn.truth if t.get("pattern") == "one_buyer"]
    assert rows
    for t in rows:
        onset, end = month_index(t["onset"]), month_index(t["end"]) if t["end"] else 10 ** 9
        per_month = Counter(month_index(d["date"][:7]) for d in scn.declarations if d["consignee"] == t["consignee"])
        assert min(per_month) == onset
        assert all(onset <= m < end and 1 <= n <= 2 for m, n in per_month.items())


def test_moderate_surges_come_from_bigger_shipments_not_more(scn, truth):
    first = month_index(scn.periods[0])
    by_lane = defaultdict(list)
    for d in scn.declarations:
        by_lane[(d["reporter"], d["partner"], "export", d["hs_code"][:6])].append(d)
    per_decl_ratio, count_ratio = [], []
    for e in _events(truth, "moderate"):
        rows = by_lane[e.key]
        before = [d for d in rows if first <= month_index(d["date"][:7]) < e.onset]
        during = [d for d in rows if e.onset <= month_index(d["date"][:7]) <= e.stop]
        if len(before) < 20 or len(during) < 10:
            continue
        per_decl_ratio.append(statistics.median(d["value"] for d in during) / statistics.median(d["value"] for d in before))
        count_ratio.append((len(during) / (e.stop - e.onset + 1)) / (len(before) / (e.onset - first)))
    assert per_decl_ratio
    assert statistics.median(per_decl_ratio) >= 2.0
    assert 0.5 <= statistics.median(count_ratio) <= 1.6


def test_intermittent_lanes_ship_in_alternate_months_only(scn, values):
    for t in (t for t in scn.truth if t["kind"] == "intermittent"):
        lane = values.get((t["reporter"], t["partner"], "export", t["hs6"]), {})
        onset = month_index(t["onset"])
        assert all((m - onset) % 2 == 0 for m in lane if m >= onset), t


def test_reporter_wide_level_change_doubles_every_lane_of_the_reporter(scn, truth, values):
    (level,) = [t for t in scn.truth if t["kind"] == "reporter_level"]
    onset = month_index(level["onset"])
    quiet = {k for k in truth.lanes if k[0] == level["reporter"]} - {e.key for e in truth.events}
    before = sum(v for k in quiet for m, v in values.get(k, {}).items() if onset - 12 <= m < onset)
    after = sum(v for k in quiet for m, v in values.get(k, {}).items() if onset <= m < onset + 12)
    assert 1.6 <= after / before <= 2.5


def test_q4x3_lanes_triple_in_the_fourth_quarter(scn, truth, values):
    q4 = other = 0.0
    for key, row in truth.lanes.items():
        if row["season"] == "q4x3" and key not in {e.key for e in truth.events}:
            for m, v in values.get(key, {}).items():
                if m % 12 >= 9:
                    q4 += v / 3
                else:
                    other += v / 9
    assert 2.2 <= q4 / other <= 4.0


def test_monthly_statistics_sum_the_declarations(scn):
    cfg = WatchConfig.default()
    assert lane_values(scn.monthly, cfg).keys() == lane_values(scn.declarations, cfg).keys()
    a, b = lane_values(scn.monthly, cfg), lane_values(scn.declarations, cfg)
    for key in list(a)[:50]:
        for m, v in a[key].items():
            assert v == pytest.approx(b[key][m], rel=1e-3, abs=0.05)


@pytest.mark.parametrize("kw", [{"seed": -1}, {"lanes": 5}, {"months": 12}, {"start": "2020-13"}])
def test_bad_parameters_raise(kw):
    with pytest.raises(InvalidParameterError):
        gen.generate(**{"seed": 1, "lanes": 40, **kw})


def test_season_profile_rejects_an_unknown_shape():
    with pytest.raises(InvalidParameterError):
        gen.season_profile("monsoon")


def test_end_to_end_replay_and_case_scores(tmp_path):
    run = run_scenario("roundabout", 11, tmp_path, size=120)
    truth = TruthView.from_rows(read_jsonl(tmp_path / "roundabout-11" / "truth.jsonl"), last=month_index("2023-12"))
    scored = [e for e in truth.events if e.onset <= month_index("2023-10")]
    for kind in ("declarations", "monthly"):
        alerts = read_jsonl(tmp_path / "roundabout-11" / f"alerts-{kind}.jsonl")
        s = run["scores"][kind].summary()
        assert alerts and s["events"] == len(scored) > 0
        assert 0 < s["recall"] <= 1
        assert s["notifications per true case"] >= 1
        assert sum(c.notifications for c in run["scores"][kind].true_cases + run["scores"][kind].false_cases) <= len(alerts)
