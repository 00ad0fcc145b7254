"""Tests for the labelled scenario generator (benchmarks.scenarios.labelled)."""

from __future__ import annotations

import datetime as dt
import gzip
import statistics
from collections import Counter, defaultdict

import orjson
import pytest

from benchmarks.scenarios import labelled as gen
from transitwatch.detectors.contract import Declaration, MonthlyStat, parse_mapping
from transitwatch.detectors.errors import InvalidParameterError

SEED, HUB_SERIES, MONTHS = 1, 150, 48


@pytest.fixture(scope="module")
def scn() -> gen.Scenario:
    return gen.generate(seed=SEED, hub_series=HUB_SERIES, months=MONTHS)


@pytest.fixture(scope="module")
def unique(scn) -> list[dict]:
    """Declarations counted once per declaration_id (the first line wins)."""
    seen: set[str] = set()
    out = []
    for r in scn.declarations:
        if r["declaration_id"] not in seen:
            seen.add(r["declaration_id"])
            out.append(r)
    return out


@pytest.fixture(scope="module")
def lanes(unique) -> dict[tuple[str, str, str], list[dict]]:
    by_lane: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for r in unique:
        by_lane[(r["reporter"], r["partner"], r["hs_code"][:6])].append(r)
    return by_lane


def _add(period: str, k: int) -> str:
    y, m = divmod(int(period[:4]) * 12 + int(period[5:]) - 1 + k, 12)
    return f"{y:04d}-{m + 1:02d}"


def _truth(scn, kind: str) -> list[dict]:
    return [t for t in scn.truth if t["kind"] == kind]


def _lane(t: dict) -> tuple[str, str, str]:
    return (t["reporter"], t["partner"], t["hs6"])


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = gen.write(gen.generate(seed=5, hub_series=HUB_SERIES, months=MONTHS), tmp_path / "a")
    b = gen.write(gen.generate(seed=5, hub_series=HUB_SERIES, months=MONTHS), tmp_path / "b")
    c = gen.write(gen.generate(seed=6, hub_series=HUB_SERIES, months=MONTHS), tmp_path / "c")
    assert sorted(p.name for p in a.values()) == ["declarations.jsonl.gz", "monthly.jsonl.gz", "truth.jsonl"]
    for kind in a:
        assert a[kind].read_bytes() == b[kind].read_bytes()
        assert a[kind].read_bytes() != c[kind].read_bytes()
    lines = gzip.decompress(a["declarations"].read_bytes()).splitlines()
    assert orjson.loads(lines[0]) == gen.generate(seed=5, hub_series=HUB_SERIES, months=MONTHS).declarations[0]


def test_every_line_meets_the_input_contract(scn):
    decls = [parse_mapping(r) for r in scn.declarations]
    stats = [parse_mapping(r) for r in scn.monthly]
    assert all(isinstance(d, Declaration) for d in decls)
    assert all(isinstance(s, MonthlyStat) for s in stats)
    assert {d.currency for d in decls} == {"EUR", "USD"} and {s.currency for s in stats} == {"EUR"}
    assert all(len(d.hs_code) == 8 for d in decls)
    assert {d.partner for d in decls} == set(gen.HUBS) | set(gen.SANCTIONED)
    assert {d.reporter for d in decls} <= set(gen.REPORTERS)
    # A series may use several CN8 codes of its HS6.
    codes = defaultdict(set)
    for d in decls:
        codes[(d.reporter, d.partner, d.hs6)].add(d.hs_code)
    assert max(len(v) for v in codes.values()) >= 2


def test_monthly_statistics_after_revisions_equal_summed_declarations(scn, unique):
    final: dict[tuple, dict] = {}
    seen_twice = 0
    for r in scn.monthly:
        ident = (r["period"], r["reporter"], r["partner"], r["flow"], r["hs_code"])
        if ident in final:
            seen_twice += 1
            old = final[ident]["value"]
            assert 0.009 <= abs(old / r["value"] - 1) <= 0.12   # preliminary was 1-10% off
        final[ident] = r
    assert 0.01 * len(final) <= seen_twice <= 0.03 * len(final)
    stat = defaultdict(float)
    for (period, rep, par, _, code), r in final.items():
        stat[(period, rep, par, code[:6])] += r["value"]
    decl = defaultdict(float)
    currency = {}
    for r in unique:
        key = (r["date"][:7], r["reporter"], r["partner"], r["hs_code"][:6])
        decl[key] += r["value"]
        currency[key] = r["currency"]
    assert stat.keys() == decl.keys()
    n_usd = 0
    for key, total in decl.items():
        if currency[key] == "EUR":
            assert stat[key] == pytest.approx(total, rel=1e-6)
        else:   # USD declarations, EUR statistics: only the published rate separates them
            n_usd += 1
            assert stat[key] == pytest.approx(total * scn.eur_per_usd[key[0]], rel=1e-6, abs=0.02)
    assert 0 < n_usd < len(decl)


def _counts_around(lanes, t: dict) -> tuple[Counter, float]:
    """Declarations per month of a surged lane, and its mean over the 12 months before onset."""
    counts = Counter(r["date"][:7] for r in lanes[_lane(t)])
    return counts, statistics.fmean(counts[_add(t["onset"], -k)] for k in range(1, 13))


def test_step_surge_shows_in_its_onset_month(scn, lanes):
    steps = [t for t in _truth(scn, "surge") if t["shape"] == "step" and t["density"] != "sparse"]
    assert steps
    # The strongest one: its onset month holds >= 2x the declarations of the 12 months before.
    strongest = max(steps, key=lambda t: t["factor"])
    counts, before = _counts_around(lanes, strongest)
    assert before > 0 and counts[strongest["onset"]] >= 2.0 * before


def test_surges_mostly_show_once_their_full_factor_is_reached(scn, lanes):
    # The count carries factor ** 0.65 or more, so from x4 on it should at least double.
    hits = total = 0
    for t in _truth(scn, "surge"):
        full = _add(t["onset"], t["ramp_months"] - 1)
        if (t["density"] == "sparse" or t["factor"] < 4.0 or full > scn.periods[-1]
                or (t["end"] and full >= t["end"])):
            continue
        counts, before = _counts_around(lanes, t)
        total += 1
        hits += counts[full] >= 2.0 * before
    assert total >= 2 and hits >= 0.6 * total


def test_surges_cover_the_promised_ranges(scn):
    surges = _truth(scn, "surge")
    hub_series = _truth(scn, "series")
    assert len(hub_series) == HUB_SERIES
    assert round(0.04 * HUB_SERIES) <= len(surges) <= round(0.04 * HUB_SERIES) + 3
    assert {t["density"] for t in surges} == {"dense", "medium", "low", "sparse"}
    first_onset, last = _add(scn.periods[0], 24), scn.periods[-1]
    for t in surges:
        assert list(t)[0] == "kind" and t["partner"] in gen.HUBS
        assert 2.5 <= t["factor"] <= 20.0
        assert first_onset <= t["onset"] <= last
        assert (t["shape"] == "step") == (t["ramp_months"] == 1) and 1 <= t["ramp_months"] <= 4
        assert t["end"] is None or 3 <= _months_between(t["onset"], t["end"]) <= 12
    events = defaultdict(list)
    for t in surges:
        events[t["event_id"]].append(t)
    for members in events.values():
        assert len({(t["partner"], t["hs6"]) for t in members}) == 1
        assert len({t["reporter"] for t in members}) == len(members) <= 4
        onsets = [_months_between(scn.periods[0], t["onset"]) for t in members]
        assert max(onsets) - min(onsets) <= 1


def _months_between(a: str, b: str) -> int:
    return (int(b[:4]) - int(a[:4])) * 12 + int(b[5:]) - int(a[5:])


def test_part_of_a_surge_goes_to_new_consignees(scn, lanes):
    t = max((t for t in _truth(scn, "surge") if t["density"] != "sparse"), key=lambda t: t["factor"])
    lane = lanes[_lane(t)]
    known = {r["consignee"] for r in lane if r["date"][:7] < t["onset"]}
    after = [r for r in lane if r["date"][:7] >= t["onset"] and (t["end"] is None or r["date"][:7] < t["end"])]
    assert after and sum(r["consignee"] not in known for r in after) >= 0.10 * len(after)


def test_decoy_is_one_giant_declaration_off_the_surges(scn, lanes):
    decoys = _truth(scn, "decoy")
    assert decoys
    surged = {_lane(t) for t in _truth(scn, "surge")}
    for d in decoys:
        assert _lane(d) not in surged and 20.0 <= d["factor"] <= 100.0
        lane = lanes[_lane(d)]
        (giant,) = [r for r in lane if r["declaration_id"] == d["declaration_id"]]
        assert giant["date"][:7] == d["month"]
        median = statistics.median(r["value"] for r in lane if r is not giant)
        assert giant["value"] == pytest.approx(d["factor"] * median, rel=1e-3)
        # (A dense lane may hold a natural 20x line of its own: lognormal values have tails.)
        largest = max(r["value"] for r in lane if r["date"][:7] == d["month"])
        assert largest >= giant["value"] >= 20.0 * median


def test_macro_shock_lifts_one_reporter_for_a_quarter(scn, unique, monkeypatch):
    (shock,) = _truth(scn, "macro_shock")
    assert shock["months"] == 3 and shock["factor"] == 1.3
    # The same quarter's expectation: the same seed without the shock. Every draw up to the
    # counts is shared, so only Poisson noise separates the two (a reporter's quarter taken
    # against other quarters or other reporters swings by +-0.3 at this size).
    monkeypatch.setattr(gen, "MACRO_FACTOR", 1.0)
    calm = gen.generate(seed=SEED, hub_series=HUB_SERIES, months=MONTHS)
    assert _truth(calm, "macro_shock") == [{**shock, "factor": 1.0}]
    quarter = {_add(shock["start"], k) for k in range(3)}

    def count(rows: list[dict]) -> Counter:
        seen: set[str] = set()
        n = Counter()
        for r in rows:
            if r["declaration_id"] not in seen and r["date"][:7] in quarter:
                seen.add(r["declaration_id"])
                n[r["reporter"] == shock["reporter"]] += 1
        return n

    shocked, expected = count(unique), count(calm.declarations)
    assert expected[True] >= 100
    assert 1.15 <= shocked[True] / expected[True] <= 1.45
    assert 0.9 <= shocked[False] / expected[False] <= 1.1


def test_exports_to_russia_collapse_after_sanctions(scn, unique):
    (sanctions,) = _truth(scn, "sanctions")
    assert sanctions["destinations"] == ["RU", "BY"]
    month = sanctions["month"]
    before = {_add(month, -k) for k in range(1, 13)}
    after = {_add(month, k) for k in range(2, 8)}
    value, count = Counter(), Counter()
    per_lane: dict[tuple, Counter] = defaultdict(Counter)
    for r in unique:
        when = "before" if r["date"][:7] in before else "after" if r["date"][:7] in after else ""
        if r["partner"] == "RU":
            value[when] += r["value"]
            count[when] += 1
        if r["partner"] in gen.SANCTIONED:
            per_lane[(r["reporter"], r["partner"], r["hs_code"][:6])][when] += 1
    assert value["after"] / 6 < 0.7 * value["before"] / 12
    assert count["after"] / 6 < 0.5 * count["before"] / 12
    # Most lanes (to RU and BY) with some trade before fall under 40% of their monthly rate.
    busy = [c for c in per_lane.values() if c["before"] >= 24]
    collapsed = sum(c["after"] / 6 < 0.4 * c["before"] / 12 for c in busy)
    assert len(busy) >= 5 and collapsed >= 0.6 * len(busy)


def test_pandemic_dip_and_rebound(scn, unique):
    (dip,) = _truth(scn, "dip")
    assert 0.4 <= dip["factor"] <= 0.6 and dip["months"] in (3, 4)
    per_month = Counter(r["date"][:7] for r in unique if r["partner"] in gen.HUBS)

    def against_a_year_before(months: range) -> float:   # same calendar months: no seasonality
        now = sum(per_month[_add(dip["start"], k)] for k in months)
        return now / sum(per_month[_add(dip["start"], k - 12)] for k in months)

    assert against_a_year_before(range(dip["months"])) < 0.7
    assert against_a_year_before(range(dip["months"], dip["months"] + 3)) > 0.85


def test_resent_duplicates_are_identical_and_later(scn):
    first: dict[str, tuple[int, dict]] = {}
    dups = 0
    for i, r in enumerate(scn.declarations):
        if r["declaration_id"] in first:
            j, original = first[r["declaration_id"]]
            assert r == original and j < i
            dups += 1
        else:
            first[r["declaration_id"]] = (i, r)
    assert 0.003 * len(first) <= dups <= 0.007 * len(first)


def test_late_lines_appear_after_later_dates(scn):
    dates = [dt.date.fromisoformat(r["date"]) for r in scn.declarations]
    jumps = sum((a - b).days > 10 for a, b in zip(dates, dates[1:]))
    high, late = dates[0], 0
    for d in dates:
        late += (high - d).days >= 10
        high = max(high, d)
    assert jumps > 0
    assert 0.005 * len(dates) <= late <= 0.03 * len(dates)


def test_density_classes_and_truth_records(scn):
    series = _truth(scn, "series")
    assert {t["density"] for t in series} == {"dense", "medium", "low", "sparse"}
    bounds = {name: (lo, hi) for name, _, lo, hi in gen.DENSITY}
    for t in series:
        lo, hi = bounds[t["density"]]
        assert lo <= t["base_rate"] <= hi and t["flow"] == "export"
    assert len({_lane(t) for t in series}) == len(series)
    assert all(list(t)[0] == "kind" for t in scn.truth)
    kinds = Counter(t["kind"] for t in scn.truth)
    assert kinds["sanctions"] == kinds["dip"] == kinds["macro_shock"] == 1


@pytest.mark.parametrize("kwargs", [
    {"seed": -1}, {"seed": 1, "hub_series": 0}, {"seed": 1, "hub_series": 5000},
    {"seed": 1, "months": 12}, {"seed": 1, "start": "2019-13"}, {"seed": 1, "sanctions": "March"},
])
def test_bad_parameters_fail_early(kwargs):
    with pytest.raises(InvalidParameterError):
        gen.generate(**kwargs)


def test_cli_writes_the_three_files(tmp_path, capsys):
    assert gen.main(["--seed", "2", "--hub-series", "30", "--months", "30", "--out-dir", str(tmp_path)]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    lines = gzip.decompress((tmp_path / "declarations.jsonl.gz").read_bytes()).splitlines()
    assert summary["declaration_lines"] == len(lines) > 0
    truth = [orjson.loads(x) for x in (tmp_path / "truth.jsonl").read_bytes().splitlines()]
    assert summary["truth"]["series"] == 30 == sum(t["kind"] == "series" for t in truth)
