"""The scale benchmark's plumbing: a child's own rusage, the table, the page it rewrites.

Speed is never asserted here; the figures live in docs/performance.md."""

from __future__ import annotations

import sys

import pytest

from benchmarks import scale


def test_measure_reports_the_child_own_cpu_and_peak():
    r = scale.measure([sys.executable, "-c", "x = bytearray(200 * 2**20); x[::4096] = b'1' * len(x[::4096]); print(len(x))"])
    assert r["stdout"].strip() == str(200 * 2**20)
    assert r["peak_mib"] >= 200 and r["cpu"] > 0 and r["wall"] >= r["cpu"] * 0.1


def test_measure_raises_on_failure():
    with pytest.raises(RuntimeError, match="exited 3"):
        scale.measure([sys.executable, "-c", "import sys; sys.exit(3)"])


def _result(lines):
    med = {"replay": {"cpu": 10.0, "wall": 12.0, "peak_mib": 300.0}, "orjson": {"cpu": 2.0, "wall": 2.5, "peak_mib": 40.0},
           "duckdb": {"cpu": 4.0, "wall": 4.0, "peak_mib": 100.0}}
    return {"lines": lines, "repeat": 1, "median": med, "runs": {}, "alerts_identical": {"before": True}}


def test_render_gives_ratios_to_the_yardsticks_of_the_same_run():
    import datetime as dt

    md = scale.render([_result(1_000_000)], "python -m benchmarks.scale", dt.datetime(2026, 12, 7), 1.0)
    row = next(line for line in md.splitlines() if "replay (this)" in line)
    assert "| 1,000,000 | replay (this) | 10.0 | 12.0 | 83,333 | 300 | 5.00 | 2.50 |" == row
    assert md.startswith(scale.BEGIN) and md.endswith(scale.END)
    assert "replay (before) yes" in md


def test_write_doc_replaces_or_adds_between_the_markers_only(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(f"above\n{scale.BEGIN}\nold\n{scale.END}\nbelow\n")
    scale.write_doc(page, f"{scale.BEGIN}\nnew\n{scale.END}")
    assert page.read_text() == f"above\n{scale.BEGIN}\nnew\n{scale.END}\nbelow\n"
    scale.write_doc(page, f"{scale.BEGIN}\nmore\n{scale.END}", add=True)
    text = page.read_text()
    assert text.index("new") < text.index("more") < text.index(scale.END) < text.index("below")
    assert text.count(scale.BEGIN) == 1
