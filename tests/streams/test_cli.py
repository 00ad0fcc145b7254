"""``transitwatch replay`` end to end on a generated file."""

from __future__ import annotations

import gzip

import orjson
import pytest

from benchmarks.scenarios.declarations import write
from transitwatch.streams.cli import main

REQUIRED = {
    "alert_id", "reporter", "partner", "flow", "hs6", "hs_description", "chpl_tier", "period", "detectors",
    "score", "severity", "observed_value", "baseline_value", "observed_count", "baseline_count", "ratio",
    "p_value", "top_exporters", "top_consignees", "corroborating_reporters", "early", "explanation",
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    d = tmp_path_factory.mktemp("gen")
    path = d / "decl.jsonl.gz"
    write(str(path), 40_000, 5, "2020-01", 36, str(d / "truth.jsonl"))
    # add two bad lines to a copy
    with gzip.open(path, "rb") as f:
        body = f.read()
    bad = d / "with_bad.jsonl.gz"
    with gzip.open(bad, "wb") as f:
        f.write(body + b'{"declaration_id": "x1", "date": "2022-13-01", "reporter": "DE", "partner": "KG", "hs_code": "854231", "value": 1}\nnot json\n')
    return path, bad


def test_replay_end_to_end(generated, tmp_path, capsys):
    _, path = generated
    alerts, report, rejects = tmp_path / "a.jsonl", tmp_path / "r.html", tmp_path / "rej.jsonl"
    code = main(["replay", str(path), "--alerts-out", str(alerts), "--report", str(report),
                 "--rejects-out", str(rejects), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "records accepted" in out and "duplicate declarations ignored" in out
    rows = [orjson.loads(line) for line in alerts.read_bytes().splitlines()]
    assert rows
    for row in rows:
        assert REQUIRED <= set(row)
        assert row["severity"] in {"low", "medium", "high", "critical"}
        assert row["explanation"]
    assert len({r["alert_id"] for r in rows}) == len(rows)
    bad = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert [b["reason"] for b in bad] == ["invalid_field", "invalid_json"]
    assert bad[1]["line"] == bad[0]["line"] + 1 and bad[1]["raw"] == "not json"
    html = report.read_text()
    assert "<img" in html and rows[0]["alert_id"] in html

    # a re-run gives the same alerts with the same ids
    again = tmp_path / "b.jsonl"
    assert main(["replay", str(path), "--alerts-out", str(again), "--quiet"]) == 0
    assert again.read_bytes() == alerts.read_bytes()


def test_strict_stops_at_the_first_bad_line(generated, capsys):
    _, path = generated
    assert main(["replay", str(path), "--strict", "--quiet"]) == 3
    assert "invalid_field:date" in capsys.readouterr().err.replace("\n", "")


def test_bad_config_is_an_error_at_start(tmp_path, generated, capsys):
    cfg = tmp_path / "w.toml"
    cfg.write_text("[surge]\nz_threshold = -1\n")
    assert main(["replay", str(generated[0]), "--config", str(cfg), "--quiet"]) == 2
    assert "z_threshold" in capsys.readouterr().err


def test_eurostat_sample_alerts_on_2022_hub_lanes(tmp_path):
    alerts = tmp_path / "a.jsonl"
    assert main(["replay", "examples/eurostat_chpl_exports_2020_2022.jsonl.gz", "--config",
                 "examples/eurostat.toml", "--alerts-out", str(alerts), "--quiet"]) == 0
    rows = [orjson.loads(line) for line in alerts.read_bytes().splitlines()]
    by_year = {}
    for r in rows:
        by_year[r["period"][:4]] = by_year.get(r["period"][:4], 0) + 1
    assert by_year["2022"] > 3 * by_year.get("2021", 0)
    assert {r["partner"] for r in rows} <= {"AM", "GE", "KG", "KZ", "UZ"}
