"""`transitwatch replay --format ...` on the real samples of examples/samples (README there)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from transitwatch.streams.cli import main

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "samples"
EUROSTAT = Path(__file__).resolve().parents[2] / "transitwatch" / "data" / "eurostat.toml"


def _replay(tmp_path, capsys, *argv: str) -> tuple[int, list[dict], list[dict], str]:
    alerts, rejects = tmp_path / "alerts.jsonl", tmp_path / "rejects.jsonl"
    code = main(["replay", *argv, "--alerts-out", str(alerts), "--rejects-out", str(rejects), "--quiet"])
    out = capsys.readouterr()
    return code, _lines(alerts), _lines(rejects), out.out + out.err


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


@pytest.mark.parametrize(
    ("sample", "fmt", "accepted", "reasons"),
    [
        ("comext_extract_ic_am_kg.csv", "comext-extract", 131, set()),
        ("comext_bulk_ic_am_kg.csv", "comext", 131, {"aggregate_code"}),
        ("transitwatch_ic_am_kg.parquet", "parquet", 131, set()),
        ("comtrade_legacy_armenia_vehicles_2022.csv", "comtrade-legacy", 218, {"aggregate_code"}),
        ("comtrade_v1_armenia_smartphones.csv", "comtrade", 113, set()),
    ],
)
@pytest.mark.parametrize("given", [True, False], ids=["--format", "auto"])
def test_each_sample_is_read_with_its_format(tmp_path, capsys, sample, fmt, accepted, reasons, given):
    argv = [str(SAMPLES / sample), "--config", str(EUROSTAT)] + (["--format", fmt] if given else [])
    code, _, rejects, said = _replay(tmp_path, capsys, *argv)
    assert code == 0, said
    assert f"{accepted:,}" in said.split("records accepted")[1].split("\n")[0]
    assert {r["reason"] for r in rejects} == reasons
    assert fmt in said.split("read as")[1]


def test_the_same_rows_in_every_layout_give_the_same_alerts(tmp_path, capsys):
    runs = {
        "extract": [str(SAMPLES / "comext_extract_ic_am_kg.csv"), "--config", str(EUROSTAT)],
        "bulk": [str(SAMPLES / "comext_bulk_ic_am_kg.csv"), "--config", str(EUROSTAT)],
        "parquet": [str(SAMPLES / "transitwatch_ic_am_kg.parquet"), "--config", str(EUROSTAT)],
        "spreadsheet": [str(SAMPLES / "spreadsheet_ic_am_kg.csv"), "--config", str(SAMPLES / "spreadsheet.toml")],
    }
    alerts = {}
    for name, argv in runs.items():
        code, found, _, said = _replay(tmp_path, capsys, *argv)
        assert code == 0, said
        alerts[name] = found
    assert alerts["extract"], "the sample raises alerts"
    assert all(found == alerts["extract"] for found in alerts.values())


def test_a_file_whose_rows_are_all_rejected_fails_and_says_why(tmp_path, capsys):
    path = tmp_path / "sheet.csv"
    path.write_text("Zeitraum;Meldeland;Partnerland;Warencode;Wert\n2022-01;DE;AM;85423190;1.234,50\n")
    code, alerts, rejects, said = _replay(tmp_path, capsys, str(path))
    assert code == 4 and "None of the 1 line was accepted" in said and "unknown_kind" in said
    assert alerts == [] and rejects[0]["reason"] == "unknown_kind"


def test_a_layout_that_does_not_fit_the_file_is_an_input_error(tmp_path, capsys):
    code, _, _, said = _replay(tmp_path, capsys, str(SAMPLES / "comext_extract_ic_am_kg.csv"), "--format", "comtrade")
    assert code == 2 and "cannot read input" in said and "reporterISO" in said
