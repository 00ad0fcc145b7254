"""Tests for the synthetic declaration generator (benchmarks.scenarios.declarations)."""

from __future__ import annotations

import gzip
import re
import statistics
from collections import Counter, defaultdict

import orjson
import pytest

from benchmarks.scenarios import declarations as gen
from transitwatch.detectors.errors import InvalidParameterError

N = 20_000
SEED = 1


@pytest.fixture(scope="module")
def sample():
    return gen.generate(N, SEED)


def _month_add(month: str, k: int) -> str:
    y, m = int(month[:4]), int(month[5:])
    y, m = divmod(y * 12 + m - 1 + k, 12)
    return f"{y:04d}-{m + 1:02d}"


def _monthly_sums(records, reporter, partner, hs6):
    sums: dict[str, float] = defaultdict(float)
    seen = set()
    for r in records:
        if (r["reporter"], r["partner"], r["hs_code"][:6]) != (reporter, partner, hs6):
            continue
        if r["declaration_id"] in seen:      # re-sent duplicate: count once
            continue
        seen.add(r["declaration_id"])
        sums[r["date"][:7]] += r["value"]
    return sums


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz", tmp_path / "c.jsonl.gz"
    ta, tb = tmp_path / "ta.jsonl", tmp_path / "tb.jsonl"
    gen.write(a, 5_000, seed=3, truth=ta)
    gen.write(b, 5_000, seed=3, truth=tb)
    gen.write(c, 5_000, seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert ta.read_bytes() == tb.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    lines = gzip.decompress(a.read_bytes()).splitlines()
    assert len(lines) == 5_000
    assert [orjson.loads(x) for x in lines] == gen.generate(5_000, seed=3)[0]


def test_lines_parse_with_required_fields_in_contract_order(tmp_path, sample):
    out = tmp_path / "d.jsonl"
    gen.write(out, 2_000, seed=SEED)
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(rows) == 2_000
    chpl = {h for h, _ in gen.CHPL_HS6}
    assert len(chpl) == 50
    partners = set(gen.HUBS) | set(gen.SANCTIONED)
    for r in rows + sample[0][:2_000]:
        assert tuple(r) == gen.KEYS
        assert r["flow"] == "export" and r["currency"] == "EUR"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["date"])
        assert r["reporter"] in gen.REPORTERS and r["partner"] in partners
        assert re.fullmatch(r"\d{8}", r["hs_code"]) and r["hs_code"][:6] in chpl
        assert isinstance(r["value"], float) and r["value"] > 0
        assert round(r["value"], 2) == r["value"]
        assert isinstance(r["net_mass_kg"], float) and r["net_mass_kg"] > 0
        assert r["exporter"] and r["consignee"] and r["declaration_id"]


def test_exact_line_count_and_date_order(sample):
    records, _ = sample
    assert len(records) == N
    dates = [r["date"] for r in records]
    assert dates == sorted(dates)
    assert dates[0] >= "2020-01-01" and dates[-1] <= "2022-12-31"


def test_resent_duplicates_share_id_and_content(sample):
    records, _ = sample
    by_id = defaultdict(list)
    for r in records:
        by_id[r["declaration_id"]].append(r)
    dups = {k: v for k, v in by_id.items() if len(v) > 1}
    assert 0.003 * N <= len(dups) <= 0.007 * N
    assert all(len(v) == 2 and v[0] == v[1] for v in dups.values())


def test_declaration_ids_identify_content(sample):
    records, _ = sample
    first = {}
    for r in records:
        assert first.setdefault(r["declaration_id"], r) == r


def test_surge_months_show_the_multiplied_value(sample):
    records, truth = sample
    surges = [t for t in truth if t["kind"] in ("step", "ramp")]
    assert surges and all(3.0 <= t["factor"] <= 15.0 for t in surges)
    assert all(t["partner"] in gen.HUBS for t in surges)
    assert all("2021-01" <= t["onset"] <= "2022-12" for t in surges)
    # The densest step surge: its onset month must show the multiplied value.
    e = max((t for t in surges if t["kind"] == "step"), key=lambda t: t["base_rate"])
    assert e["base_rate"] >= 2.0
    sums = _monthly_sums(records, e["reporter"], e["partner"], e["hs6"])
    before = [sums.get(_month_add(e["onset"], -k), 0.0) for k in range(1, 13)]
    assert sums.get(e["onset"], 0.0) >= 2.0 * statistics.fmean(before)
    # And across all non-sparse surges, the month the full factor is reached mostly shows it.
    hits = total = 0
    for t in surges:
        full = _month_add(t["onset"], t["ramp_months"] - 1)
        if t["base_rate"] < 2.0 or full > "2022-12":
            continue
        sums = _monthly_sums(records, t["reporter"], t["partner"], t["hs6"])
        before = [sums.get(_month_add(t["onset"], -k), 0.0) for k in range(1, 13)]
        total += 1
        hits += sums.get(full, 0.0) >= 2.0 * statistics.fmean(before)
    assert hits >= 0.75 * total


def test_part_of_the_surge_goes_to_new_consignees(sample):
    records, truth = sample
    e = max((t for t in truth if t["kind"] in ("step", "ramp")), key=lambda t: t["base_rate"])
    key = (e["reporter"], e["partner"], e["hs6"])
    lane = [r for r in records if (r["reporter"], r["partner"], r["hs_code"][:6]) == key]
    known = {r["consignee"] for r in lane if r["date"][:7] < e["onset"]}
    after = [r for r in lane if r["date"][:7] >= e["onset"]]
    fresh = sum(r["consignee"] not in known for r in after)
    # Without new consignees only the 1% background churn would be unseen.
    assert fresh >= 0.10 * len(after)


def test_decoy_is_one_giant_declaration(sample):
    records, truth = sample
    decoys = [t for t in truth if t["kind"] == "decoy_giant"]
    assert decoys
    d = decoys[0]
    lane = [r for r in records
            if (r["reporter"], r["partner"], r["hs_code"][:6]) == (d["reporter"], d["partner"], d["hs6"])]
    giant = [r for r in lane if r["declaration_id"] == d["declaration_id"]]
    assert giant and giant[0]["date"][:7] == d["month"] and giant[0]["value"] == d["value"]
    others = [r["value"] for r in lane if r["declaration_id"] != d["declaration_id"]]
    assert giant[0]["value"] >= 30.0 * statistics.median(others)


def test_exports_to_russia_collapse_after_march_2022(sample):
    records, _ = sample
    total = Counter()
    for r in records:
        if r["partner"] == "RU":
            total["before" if r["date"] < "2022-03" else "after" if r["date"] >= "2022-04" else "mar"] += r["value"]
    # 26 months before vs 9 months after, compared per month.
    assert total["after"] / 9 < 0.4 * total["before"] / 26


@pytest.mark.parametrize("kwargs", [
    {"lines": 0, "seed": 1}, {"lines": 10, "seed": -1},
    {"lines": 10, "seed": 1, "months": 6}, {"lines": 10, "seed": 1, "start": "2020-13"},
])
def test_bad_parameters_fail_early(kwargs):
    with pytest.raises(InvalidParameterError):
        gen.generate(**kwargs)
