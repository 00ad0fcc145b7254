"""The command line on input and settings it cannot use: one clear line and an exit code, never a
traceback, never an exit 0 that a scheduled job would read as "no surges"."""

from __future__ import annotations

import gzip
from collections import Counter

import pytest

from transitwatch.streams.cli import main
from transitwatch.streams.diagnose import verdict

HEADER = "period,reporter,partner,hs_code,value\n"
GOOD_ROWS = "".join(f"20{y}-{m:02d},DE,KZ,854231,{1000 + m}\n" for y in (21, 22) for m in range(1, 13))


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["replay", *argv, "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("name", "body", "reason", "hint"),
    [
        ("empty.jsonl", "", None, "empty"),
        ("blank.csv", HEADER + "\n\n", None, "empty"),
        ("semicolons.csv", HEADER.replace(",", ";") + "2024-01;DE;KZ;854231;1234,5\n", "invalid_csv_row",
         "separated by semicolons"),
        ("decimal.csv", HEADER + '2024-01,DE,KZ,854231,"1234,5"\n2024-02,DE,KZ,854231,"99,75"\n',
         "invalid_field:value", "decimal commas"),
        ("header.csv", "when,from,to,code,amount\n2024-01,DE,KZ,854231,5\n", "unknown_kind", "names neither"),
        ("document.jsonl", '[{"period": "2024-01"},\n{"period": "2024-02"}]\n', "invalid_json", "one JSON object"),
    ],
)
def test_unusable_input_fails_with_the_reason_and_a_hint(tmp_path, capsys, name, body, reason, hint):
    path = tmp_path / name
    path.write_text(body)
    alerts = tmp_path / "alerts.jsonl"
    code, _, err = _run(capsys, str(path), "--alerts-out", str(alerts))
    assert code == 4
    assert "unusable input" in err and hint in err
    if reason:
        assert reason in err
    assert not alerts.exists()


def test_a_minority_of_rejects_is_not_an_error(tmp_path, capsys):
    path = tmp_path / "in.csv"
    path.write_text(HEADER + GOOD_ROWS + "2024-01,DE,KZ,854231,-1\n")
    code, out, _ = _run(capsys, str(path))
    assert code == 0 and "invalid_field:value: 1" in out


def test_the_share_of_rejects_that_fails_a_run_is_configurable(tmp_path, capsys):
    path = tmp_path / "in.csv"
    path.write_text(HEADER + GOOD_ROWS + "2024-01,DE,KZ,854231,-1\n" * 30)  # 30 of 54 lines rejected
    assert _run(capsys, str(path))[0] == 4
    lenient = tmp_path / "lenient.toml"
    lenient.write_text("[input]\nmax_reject_share = 0.9\n")
    assert _run(capsys, str(path), "--config", str(lenient))[0] == 0


@pytest.mark.parametrize("option", ["--alerts-out", "--report", "--rejects-out"])
def test_an_output_into_a_missing_folder_fails_before_the_run(tmp_path, capsys, option):
    path = tmp_path / "in.csv"
    path.write_text(HEADER + GOOD_ROWS)
    code, out, err = _run(capsys, str(path), option, str(tmp_path / "missing" / "out.file"))
    assert code == 2
    assert f"cannot write {option}" in err and "does not exist" in err
    assert "records accepted" not in out  # nothing ran


def test_an_output_that_is_a_directory_fails_before_the_run(tmp_path, capsys):
    path = tmp_path / "in.csv"
    path.write_text(HEADER + GOOD_ROWS)
    code, _, err = _run(capsys, str(path), "--alerts-out", str(tmp_path))
    assert code == 2 and "is a directory" in err


def test_a_directory_as_input_is_one_clear_line(tmp_path, capsys):
    code, _, err = _run(capsys, str(tmp_path))
    assert code == 2 and "cannot read input" in err and "directory" in err and "Traceback" not in err


def test_a_gz_that_is_not_gzip_is_one_clear_line(tmp_path, capsys):
    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(b'{"period": "2024-01"}\n')
    code, out, err = _run(capsys, str(path))
    assert code == 2 and "is named .gz but is not gzip data" in err and "Traceback" not in err
    assert "records accepted" not in out  # found before the run
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(gzip.compress(b'{"period": "2024-01"}\n' * 100)[:40])
    code, _, err = _run(capsys, str(broken))
    assert code == 2 and "cannot read input" in err and "Traceback" not in err


@pytest.mark.parametrize("command", [["produce", "x.jsonl"], ["worker"], ["alerts"], ["notify"], ["redeliver"]])
@pytest.mark.parametrize("broker", ["http://x", "kafka://host", "kafka://host:99999", "kafka://a:1;b"])
def test_a_bad_broker_url_is_a_settings_error(capsys, command, broker):
    code = main([*command, "--broker", broker])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("settings error: broker:") and "kafka://host:port" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("toml", "message"),
    [('[watch]\nhubs = "KG"\n', "watch.hubs must be a list"),
     ('[input]\nmax_depth = "3"\n', "input.max_depth must be a number"),
     ('[input]\nlatest = "9999-99"\n', "input.latest must be a month")],
)
def test_a_configuration_value_of_the_wrong_shape_is_a_configuration_error(tmp_path, capsys, toml, message):
    config = tmp_path / "watch.toml"
    config.write_text(toml)
    path = tmp_path / "in.csv"
    path.write_text(HEADER + GOOD_ROWS)
    code, _, err = _run(capsys, str(path), "--config", str(config))
    assert code == 2 and "configuration error" in err and message in err


def test_verdict_names_the_dominant_reason():
    v = verdict([], 100, 10, Counter({"invalid_json": 60, "encoding": 30}), 0.5)
    assert v is not None and v.reason == "invalid_json" and "90 of 100" in v.message
    assert verdict([], 100, 60, Counter({"invalid_json": 40}), 0.5) is None
    assert verdict([], 100, 50, Counter({"invalid_json": 50}), 0.5) is None  # exactly the share: allowed
