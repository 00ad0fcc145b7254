"""examples/notebook.py runs start to end and draws its case."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_notebook_example_runs_and_plots_armenia_s_first_case(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "notebook.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    charts = list(tmp_path.glob("case-twc-*.png"))
    assert len(charts) == 1 and charts[0].stat().st_size > 10_000
    out = done.stdout
    assert "22,809 records" in out and "rejected rows: 0" in out
    assert "2022-03     opened" in out and "Armenia" in out
