"""The evasion generator: each family produces what its truth says."""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter, defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.cases import TruthView, lane_of, lane_values
from benchmarks.scenarios import evasion, roundabout
from benchmarks.scoring import month_index
from transitwatch.detectors.errors import InvalidParameterError
from transitwatch.detectors.watch import WatchConfig

SIZE = 8


@pytest.fixture(scope="module")
def scn():
    return evasion.generate(seed=11, size=SIZE)


@pytest.fixture(scope="module")
def values(scn):
    return lane_values(scn.monthly, WatchConfig.default())


@pytest.fixture(scope="module")
def series(scn):
    return {lane_of(t): t for t in scn.truth if t["kind"] == "series"}


def _surges(scn, family):
    return [t for t in scn.truth if t["kind"] == "surge" and t["pattern"] == family]


def _month(d):
    return month_index(d["date"][:7])


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = evasion.write(evasion.generate(seed=3, size=3), tmp_path / "a")
    b = evasion.write(evasion.generate(seed=3, size=3), tmp_path / "b")
    c = evasion.write(evasion.generate(seed=4, size=3), tmp_path / "c")
    for kind in ("declarations", "monthly", "truth"):
        assert a[kind].read_bytes() == b[kind].read_bytes()
    assert a["monthly"].read_bytes() != c["monthly"].read_bytes()


def test_roundabout_is_unchanged():
    # the digest of roundabout's bytes before the evasion generator reused its building blocks
    scn = roundabout.generate(seed=1, lanes=30, months=30)
    h = hashlib.sha256()
    for rows in (scn.declarations, scn.monthly, scn.truth):
        h.update(repr(rows).encode())
    assert h.hexdigest()[:16] == "b7b518a72332da50"


@settings(max_examples=5, deadline=None)
@given(st.sampled_from(evasion.FAMILIES), st.integers(0, 50))
def test_a_family_alone_has_the_same_lanes_and_monthly_values_as_together(family, seed):
    alone = evasion.generate(seed=seed, families=[family], size=3, months=36)
    together = evasion.generate(seed=seed, size=3, months=36)
    cfg = WatchConfig.default()
    va, vt = lane_values(alone.monthly, cfg), lane_values(together.monthly, cfg)
    assert va and all(vt[k] == pytest.approx(v) for k, v in va.items())
    rows = lambda s: sorted(map(str, (t for t in s.truth if t.get("family") == family or t.get("pattern") == family)))  # noqa: E731
    assert rows(alone) == rows(together)


def test_families_own_disjoint_lanes_and_every_role(scn, series):
    by_family = defaultdict(set)
    for key, t in series.items():
        by_family[t["family"]].add(key)
    assert set(by_family) == set(evasion.FAMILIES)
    assert sum(len(v) for v in by_family.values()) == len(series)
    for family in evasion.FAMILIES:
        roles = Counter(t["role"] for t in series.values() if t["family"] == family)
        assert roles["control"] >= SIZE
        assert roles["pattern" if family in evasion.TRUE_FAMILIES else "decoy"] >= SIZE


def test_one_buyer_surge_months_go_to_one_new_consignee(scn, values):
    rows = _surges(scn, "one_buyer")
    assert len(rows) == SIZE
    for t in rows:
        key, onset = lane_of(t), month_index(t["onset"])
        end = month_index(t["end"]) if t["end"] else 10 ** 9
        lane = [d for d in scn.declarations if lane_of(d) == key]
        mine = Counter(_month(d) for d in lane if d["consignee"] == t["consignee"])
        assert min(mine) == onset and all(onset <= m < end and 1 <= n <= 2 for m, n in mine.items())
        assert not any(d["consignee"] == t["consignee"] for d in lane if _month(d) < onset)
        assert 4.0 <= t["factor"] <= 8.0
        # the new buyer carries the surge: the months it buys in are several times the lane's usual
        before = statistics.fmean(values[key].get(m, 0.0) for m in range(onset - 12, onset))
        during = statistics.fmean(values[key].get(m, 0.0) for m in mine)
        assert during >= 2.5 * before


def test_intermittent_lanes_ship_over_a_million_in_their_variant_months(scn, values):
    rows = _surges(scn, "intermittent")
    assert {t["variant"] for t in rows} == {"alternate", "two_of_three", "irregular"}
    assert any(t["from_nothing"] for t in rows) and not all(t["from_nothing"] for t in rows)
    for t in rows:
        lane, onset = values[lane_of(t)], month_index(t["onset"])
        on = [month_index(p) for p in t["months"]]
        assert on[0] == onset and on[-1] >= month_index(scn.periods[-1]) - 3
        gaps = {b - a for a, b in zip(on, on[1:])}
        if t["variant"] == "alternate":
            assert gaps == {2}
        elif t["variant"] == "two_of_three":
            assert gaps == {1, 2} and all((m - onset) % 3 != 2 for m in on)
        else:
            assert gaps <= {1, 2, 3}
        # USD 1-1.7m a shipping month, give or take the local currency's drift against the dollar
        assert all(0.6 <= lane[m] / t["on_value"] <= 1.6 for m in on)
        before = [lane.get(m, 0.0) for m in range(month_index(scn.periods[0]), onset)]
        if t["from_nothing"]:
            assert not any(before)
        assert sum(before) / len(before) < 30_000          # a trace, at most, before


def test_moderate_surges_are_bigger_shipments_not_more(scn):
    ratios, counts = [], []
    for t in _surges(scn, "moderate"):
        key, onset = lane_of(t), month_index(t["onset"])
        stop = month_index(t["end"]) if t["end"] else 10 ** 9
        lane = [d for d in scn.declarations if lane_of(d) == key]
        before = [d["value"] for d in lane if onset - 18 <= _month(d) < onset]
        during = [d["value"] for d in lane if onset <= _month(d) < stop]
        if len(before) >= 20 and len(during) >= 10:
            ratios.append(statistics.median(during) / statistics.median(before))
            counts.append((len(during) / len({_month(d) for d in lane if onset <= _month(d) < stop}))
                          / (len(before) / len({_month(d) for d in lane if onset - 18 <= _month(d) < onset})))
        assert 2.5 <= t["factor"] <= 3.5
    assert len(ratios) >= 3
    assert statistics.median(ratios) >= 2.0
    assert 0.6 <= statistics.median(counts) <= 1.5


def test_reporter_level_lanes_are_all_x2_from_the_onset(scn, values, series):
    (row,) = [t for t in scn.truth if t["kind"] == "reporter_level"]
    onset, reporter = month_index(row["onset"]), row["reporter"]
    shifted = {k for k, t in series.items() if t["family"] == "reporter_level" and t["role"] == "decoy"}
    assert {k[0] for k in shifted} == {reporter} and len({k[3] for k in shifted}) >= 5 and len({k[1] for k in shifted}) >= 4
    assert all(k[0] != reporter for k, t in series.items() if k not in shifted)
    assert any(k[0] == reporter and k[1] == "RU" for k in values)          # its RU lanes too
    total = lambda keys, a, b: sum(v for k in keys for m, v in values.get(k, {}).items() if a <= m < b)  # noqa: E731
    assert 1.6 <= total(shifted, onset, onset + 12) / total(shifted, onset - 12, onset) <= 2.5
    controls = {k for k, t in series.items() if t["family"] == "reporter_level" and t["role"] == "control"}
    assert 0.7 <= total(controls, onset, onset + 12) / total(controls, onset - 12, onset) <= 1.4


def test_q4_lanes_triple_every_fourth_quarter(scn, values, series):
    for role, lo, hi in (("decoy", 2.3, 4.0), ("control", 0.7, 1.4)):
        keys = [k for k, t in series.items() if t["family"] == "q4_seasonal" and t["role"] == role]
        for year in (2020, 2021, 2022, 2023):
            ratios = []
            for k in keys:
                q4 = sum(values.get(k, {}).get(month_index(f"{year}-{m:02d}"), 0.0) for m in (10, 11, 12))
                rest = sum(values.get(k, {}).get(month_index(f"{year}-{m:02d}"), 0.0) for m in range(1, 10))
                if rest > 0:
                    ratios.append((q4 / 3) / (rest / 9))
            assert lo <= statistics.median(ratios) <= hi, (role, year)


def test_diversion_pairs_fall_and_rise_decoys_do_one_only(scn, values):
    rows = [t for t in scn.truth if t["kind"] == "diversion"]
    assert Counter(t["variant"] for t in rows) == {"pattern": SIZE, "control": SIZE, "fall_only": SIZE // 2,
                                                   "rise_only": SIZE // 2}
    cfg = WatchConfig.default()
    surges = {lane_of(t): t for t in _surges(scn, "diversion")}
    before = after = dest_before = dest_after = 0.0
    for t in rows:
        hub, dest = lane_of(t), (t["reporter"], t["destination"], "export", t["hs6"])
        assert t["destination"] in cfg.destinations and dest in values and t["partner"] in cfg.hubs
        mean = lambda v, a, b: sum(v.get(m, 0.0) for m in range(a, b)) / (b - a)  # noqa: E731
        if t["collapse"]:
            c = month_index(t["collapse"])
            assert mean(values[dest], c, c + 6) <= 0.8 * mean(values[dest], c - 12, c)
            dest_before += mean(values[dest], c - 12, c)
            dest_after += mean(values[dest], c, c + 6)
        if t["variant"] == "pattern":
            onset = month_index(t["onset"])
            assert 0 <= onset - month_index(t["collapse"]) <= 3 and surges[hub]["onset"] == t["onset"]
            before += mean(values[hub], onset - 12, onset)
            after += mean(values[hub], onset, onset + 6)
        else:
            assert hub not in surges
        assert (t["collapse"] is None) == (t["variant"] in ("rise_only", "control"))
        assert (t["onset"] is None) == (t["variant"] in ("fall_only", "control"))
    assert dest_after <= 0.5 * dest_before
    assert after >= 1.5 * before     # the hub lanes of the pairs rise x1.5-x4 (pooled: single lanes are lumpy)


def test_hub_shift_lifts_many_reporters_into_one_hub_from_one_month(scn, values):
    (row,) = [t for t in scn.truth if t["kind"] == "hub_shift"]
    rows = _surges(scn, "hub_shift")
    assert {t["partner"] for t in rows} == {row["partner"]} and {t["onset"] for t in rows} == {row["onset"]}
    assert len({t["reporter"] for t in rows}) >= 3 and all(1.6 <= t["factor"] <= 2.0 for t in rows)
    onset = month_index(row["onset"])
    total = lambda a, b: sum(values[lane_of(t)].get(m, 0.0) for t in rows for m in range(a, b))  # noqa: E731
    assert 1.4 <= total(onset, onset + 12) / total(onset - 12, onset) <= 2.3


def test_truth_reads_as_case_truth(scn):
    tv = TruthView.from_rows(scn.truth, last=month_index(scn.periods[-1]))
    assert {e.pattern for e in tv.events} == set(evasion.TRUE_FAMILIES)
    assert all(e.key in tv.lanes for e in tv.events)
    assert tv.context["level"] == {evasion.LEVEL_REPORTER: month_index(
        next(t["onset"] for t in scn.truth if t["kind"] == "reporter_level"))}


@pytest.mark.parametrize("kw", [{"families": ["nope"]}, {"families": []}, {"families": "one_buyer"}, {"size": 1},
                                {"size": evasion.MAX_SIZE + 1}, {"months": 20}, {"seed": -1},
                                {"sanctions": "2020-03"}])
def test_bad_parameters_raise(kw):
    with pytest.raises(InvalidParameterError):
        evasion.generate(**{"seed": 1, "size": 3, **kw})


def test_cli_writes_the_three_files(tmp_path, capsys):
    assert evasion.main(["--seed", "2", "--families", "moderate,q4_seasonal", "--size", "3", "--out-dir", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"declarations.jsonl.gz", "monthly.jsonl.gz", "truth.jsonl"}
    assert "series:q4_seasonal" in capsys.readouterr().out
