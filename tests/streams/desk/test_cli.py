"""``transitwatch desk``: cannot-start errors are one line and exit code 2; feedback export."""

from __future__ import annotations

import orjson
import pytest

from transitwatch.streams.cli import main
from transitwatch.streams.desk.cli import feedback_path
from transitwatch.streams.feedback import Feedback, SqliteFeedbackStore


def test_missing_alerts_file_exits_2(tmp_path, capsys):
    code = main(["desk", "--alerts", str(tmp_path / "none.jsonl"), "--feedback", str(tmp_path / "fb.sqlite")])
    assert code == 2
    assert "cannot read the alerts file" in capsys.readouterr().err


def test_feedback_file_in_a_missing_folder_exits_2(tmp_path, capsys):
    (tmp_path / "a.jsonl").write_text("")
    code = main(["desk", "--alerts", str(tmp_path / "a.jsonl"), "--feedback", str(tmp_path / "no" / "fb.sqlite")])
    assert code == 2
    assert "cannot open the feedback file" in capsys.readouterr().err


def test_negative_suppression_exits_2(tmp_path, capsys):
    (tmp_path / "a.jsonl").write_text("")
    assert main(["desk", "--alerts", str(tmp_path / "a.jsonl"), "--suppress-months", "-1"]) == 2
    assert "suppress-months" in capsys.readouterr().err


def test_export_feedback_writes_json_lines_from_the_default_file(tmp_path):
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text("")
    assert feedback_path(str(alerts), None) == tmp_path / "alerts.jsonl.feedback.sqlite"
    store = SqliteFeedbackStore(feedback_path(str(alerts), None))
    item = Feedback(case_id="twc-1", series_id="DE>KG export 854231", verdict="confirmed", reason="new buyers",
                    analyst="Ana", period="2022-05", severity="high", created_at="2026-01-02T03:04:05+00:00")
    store.add(item)
    store.close()
    out = tmp_path / "feedback.jsonl"
    assert main(["desk", "--alerts", str(alerts), "--export-feedback", str(out)]) == 0
    assert [orjson.loads(line) for line in out.read_bytes().splitlines()] == [item.to_dict()]


def test_a_bad_broker_url_exits_2(tmp_path, capsys):
    assert main(["desk", "--broker", "http://nowhere", "--feedback", str(tmp_path / "fb.sqlite")]) == 2
    assert "kafka://" in capsys.readouterr().err


def test_a_refresh_that_is_not_a_sane_number_of_seconds_exits_2(tmp_path, capsys):
    (tmp_path / "a.jsonl").write_text("")
    for bad in ("-1", "0.5", "nan", "inf", "1e9", "soon"):
        with pytest.raises(SystemExit) as exited:  # argparse's usage error
            main(["desk", "--alerts", str(tmp_path / "a.jsonl"), "--refresh", bad])
        assert exited.value.code == 2, bad
        assert "argument --refresh" in capsys.readouterr().err
