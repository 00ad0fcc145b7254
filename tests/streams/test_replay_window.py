"""``transitwatch replay --window``: the streamed replay from the command line, and the service's
lateness and de-duplication horizon that it repeats."""

from __future__ import annotations

import orjson
import pytest

from benchmarks.scenarios.declarations import write
from transitwatch.detectors import columnar
from transitwatch.streams.cli import main
from transitwatch.streams.replay import replay
from transitwatch.streams.settings import Settings


def test_the_replay_window_is_the_service_lateness_and_horizon():
    defaults = Settings.model_fields
    assert columnar.LATENESS_DAYS == defaults["lateness_days"].default
    assert columnar.DEDUP_MONTHS == defaults["dedup_months"].default


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    d = tmp_path_factory.mktemp("gen")
    path = d / "decl.jsonl"
    write(str(path), 30_000, 5, "2020-01", 36, str(d / "truth.jsonl"))
    lines = path.read_bytes().splitlines(keepends=True)
    late = d / "late.jsonl"  # a second input: every fifth line of the first months again, renamed
    old = [orjson.loads(line) for line in lines[:len(lines) // 15]]
    late.write_bytes(b"".join(orjson.dumps({**r, "declaration_id": r["declaration_id"] + "-late"}) + b"\n"
                              for r in old[::5]))
    return path, late, len(old[::5])


@pytest.mark.parametrize("window", ["stream", "auto"])
def test_streamed_alerts_are_the_held_ones_byte_for_byte(generated, tmp_path, capsys, window):
    path, _, _ = generated
    held, streamed = tmp_path / "all.jsonl", tmp_path / f"{window}.jsonl"
    assert main(["replay", str(path), "--quiet", "--final-month", "closed", "--window", "all", "--alerts-out", str(held)]) == 0
    assert main(["replay", str(path), "--quiet", "--final-month", "closed", "--window", window,
                 "--alerts-out", str(streamed)]) == 0
    assert held.read_bytes() and held.read_bytes() == streamed.read_bytes()
    assert "input order" not in capsys.readouterr().out


def test_late_lines_are_counted_and_said(generated, capsys):
    path, late, n = generated
    assert main(["replay", str(path), str(late), "--quiet", "--final-month", "closed", "--window", "stream"]) == 0
    out = capsys.readouterr().out
    assert "late records folded into history" in out and "input order" in out
    summary = replay([path, late], final_month="closed", window="stream").summary([str(path), str(late)])
    assert summary["late records folded into history"] == n
    assert f"{n:,} records came after their month had run" in summary["input order"]
    assert main(["replay", str(path), str(late), "--quiet", "--final-month", "closed", "--window", "all"]) == 0
    assert "late records" not in capsys.readouterr().out


def test_quiet_does_not_count_lines(generated, monkeypatch, capsys):
    path, _, _ = generated
    import transitwatch.streams.replay as replay_module

    def count(_inputs):
        raise AssertionError("--quiet must not count the input's lines")

    monkeypatch.setattr(replay_module, "input_size", count)
    assert main(["replay", str(path), "--quiet"]) == 0
