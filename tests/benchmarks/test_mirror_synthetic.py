"""benchmarks.mirror_synthetic: the generated pairs and the scoring of a small run."""

from __future__ import annotations

from benchmarks import mirror_synthetic as ms


def test_pairs_have_both_flows_and_half_of_them_a_gap():
    lines, truth = ms.generate(40, seed=3)
    assert 10 <= sum(onset is not None for onset in truth.values()) <= 30
    flows = {(d["reporter"], d["partner"], d["flow"]) for d in lines}
    for reporter, hub, _ in truth:
        assert (reporter, hub, "export") in flows and (hub, reporter, "import") in flows
    assert [d["period"] for d in lines] == sorted(d["period"] for d in lines)
    assert all(24 <= onset < ms.MONTHS - 3 for onset in truth.values() if onset is not None)


def test_a_run_reports_rates_and_recall_within_their_ranges():
    r = ms.run(30, seed=5)
    assert r["null pairs"] + r["gap pairs"] == 30
    assert 0.0 <= r["gap pairs found within 3 months"] <= 1.0
    assert r["null cases / 1000 lane-months"] <= r["null records / 1000 lane-months"]
