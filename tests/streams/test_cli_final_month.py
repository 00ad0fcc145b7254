"""``transitwatch replay`` decides the input's last month by default (``--final-month auto``)
and prints what it decided; ``replay()`` records it in the run summary."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from transitwatch.streams.cli import main
from transitwatch.streams.replay import replay


def _write(path, rows):
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return str(path)


def _statistics(last_year=2022):
    return [{"period": f"{y}-{m:02d}", "reporter": "DE", "partner": "KG", "hs_code": "854231",
             "value": 50_000 + 1_000 * (m % 3), "currency": "USD"}
            for y in range(2020, last_year + 1) for m in range(1, 13)]


def _declarations(first_of_last_month: dt.date):
    """Declarations on the 3rd of each month of the year before, then one on the 1st of the last month."""
    rows = [{"declaration_id": f"d{m}", "date": f"{first_of_last_month.year - 1}-{m:02d}-03", "reporter": "DE",
             "partner": "KG", "hs_code": "854231", "value": 50_000.0, "currency": "USD"} for m in range(1, 13)]
    rows.append(dict(rows[-1], declaration_id="last", date=first_of_last_month.isoformat()))
    return rows


def _printed(capsys) -> str:
    """The summary as one line of words (table borders and wrapping removed)."""
    out = capsys.readouterr().out
    return " ".join(out.replace("│", " ").replace("┃", " ").split())


@pytest.fixture(autouse=True)
def _wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")


def test_cli_closes_monthly_statistics_and_says_why(tmp_path, capsys):
    path = _write(tmp_path / "stats.jsonl", _statistics())
    assert main(["replay", path, "--quiet"]) == 0
    out = _printed(capsys)
    assert "final month 2022-12 closed (auto: its last records are monthly statistics, which cover whole months)" in out
    assert "in progress" not in out


def test_cli_closes_a_past_month_of_declarations_and_says_why(tmp_path, capsys):
    path = _write(tmp_path / "decl.jsonl", _declarations(dt.date(2023, 3, 1)))
    assert main(["replay", path, "--quiet"]) == 0
    assert "final month 2023-03 closed (auto: it is older than the present month," in _printed(capsys)


def test_cli_leaves_the_present_month_in_progress_and_says_why(tmp_path, capsys):
    this_month = dt.date.today().replace(day=1)
    path = _write(tmp_path / "now.jsonl", _declarations(this_month))
    assert main(["replay", path, "--quiet"]) == 0
    out = _printed(capsys)
    period = this_month.isoformat()[:7]
    assert f"({period} in progress: early checks only)" in out
    assert f"final month {period} in progress (auto: it is the present month and its declarations end on " \
           f"{this_month.isoformat()})" in out


def test_cli_says_when_the_final_month_was_asked_for(tmp_path, capsys):
    path = _write(tmp_path / "stats.jsonl", _statistics())
    assert main(["replay", path, "--quiet", "--final-month", "open"]) == 0
    assert "final month 2022-12 in progress (as asked: --final-month open)" in _printed(capsys)


def test_replay_records_the_decision_in_its_summary_with_an_injected_clock(tmp_path):
    path = _write(tmp_path / "decl.jsonl", _declarations(dt.date(2024, 6, 1)))
    now = replay([path], today=dt.date(2024, 6, 20), keep_snapshots=False)
    later = replay([path], today=dt.date(2024, 7, 2), keep_snapshots=False)
    assert not now.last_month_closed and later.last_month_closed
    assert now.summary([path])["final month"].startswith("2024-06 in progress (auto: it is the present month")
    assert later.summary([path])["final month"] == "2024-06 closed (auto: it is older than the present month, 2024-07)"
    assert later.summary([path])["months"] == "2023-01 to 2024-06"
