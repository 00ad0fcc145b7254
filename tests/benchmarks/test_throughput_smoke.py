"""Smoke test of the throughput benchmark: it runs end to end and reports every field.

Speed is never asserted here; the numbers live in docs/benchmarks.md.
"""

from __future__ import annotations

import pytest

from benchmarks import throughput


@pytest.mark.slow  # spawns six interpreters: about 7 s
def test_small_run_reports_every_step_and_rewrites_only_the_results(tmp_path):
    res = throughput.run(lines=2000, seed=3, repeat=1, workdir=tmp_path / "work")

    for step in throughput.STEPS:
        s = res["steps"][step]
        assert s["lines"] == 2000
        assert s["median_seconds"] > 0 and s["peak_rss_mib"] > 0
    state = res["state"]
    assert state["series"] > 0
    h = state["history_months"]  # float64 values and counts, bool protected; ramp, streak, counted
    assert state["array_bytes_per_series"] == (8 + 8 + 1) * h + 8 + 8 + 1
    assert 0 < state["state_json_bytes_median"] <= state["state_json_bytes_max"]
    top = res["profile"]["top"]
    assert 0 < len(top) <= throughput.TOP_FUNCTIONS
    assert top == sorted(top, key=lambda r: r["tottime"], reverse=True)

    # the cached input is reused by a second call
    assert throughput.prepare_input(tmp_path / "work", 2000, 3)[1] is True

    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nHand-written notes.\n")
    throughput.write_doc(doc, throughput.render(res))
    throughput.write_doc(doc, throughput.render(res))
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nHand-written notes.\n")
    assert text.count(throughput.MARKER) == 1
    assert text.count("### Where the time goes") == 1
    assert res["command"] in text
