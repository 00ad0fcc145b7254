"""``--final-month auto``: the input's last month is closed when it is complete or older than
the present (an injected clock), and the run says what it decided."""

from __future__ import annotations

import datetime as dt

import pytest

from transitwatch.detectors.columnar import ColumnarReplay, decide_final_month
from transitwatch.detectors.frame import parse_objects

TODAY = dt.date(2024, 6, 12)


@pytest.mark.parametrize("mode, statistic, last_day, today, closed, says", [
    ("closed", False, dt.date(2024, 6, 3), TODAY, True, "as asked: --final-month closed"),
    ("open", True, dt.date(2022, 11, 30), TODAY, False, "as asked: --final-month open"),
    ("auto", True, dt.date(2024, 6, 30), TODAY, True, "monthly statistics"),
    ("auto", False, dt.date(2024, 5, 31), TODAY, True, "reach its last day, 2024-05-31"),
    ("auto", False, dt.date(2024, 2, 29), None, True, "reach its last day, 2024-02-29"),
    ("auto", False, dt.date(2024, 5, 17), TODAY, True, "older than the present month, 2024-06"),
    ("auto", False, dt.date(2024, 6, 11), TODAY, False,
     "it is the present month and its declarations end on 2024-06-11"),
    ("auto", False, dt.date(2024, 7, 2), TODAY, False, "after the present month, 2024-06,"),
    ("auto", False, dt.date(2020, 5, 17), None, False, "before its last day"),
])
def test_decide_final_month(mode, statistic, last_day, today, closed, says):
    got, reason = decide_final_month(mode, statistic=statistic, last_day=last_day, today=today)
    assert got is closed
    assert reason.startswith("closed" if closed else "in progress") and says in reason


def _declarations(last: str) -> list[dict]:
    """A steady lane from 2021-01, a tenfold burst in the last month, which ends on ``last``."""
    end = dt.date.fromisoformat(last)
    rows, day, i = [], dt.date(2021, 1, 1), 0
    while day <= end:
        if day.day in (3, 17) or (day.year, day.month) == (end.year, end.month) and day.day < 8:
            i += 1
            burst = (day.year, day.month) == (end.year, end.month)
            rows.append({"declaration_id": f"d{i}", "date": day.isoformat(), "reporter": "DE", "partner": "KG",
                         "hs_code": "854231", "value": 400_000.0 if burst else 50_000.0 + 1_000 * (i % 5),
                         "currency": "USD"})
        day += dt.timedelta(days=1)
    rows.append(dict(rows[-1], declaration_id="last", date=last, value=50_000.0))
    return rows


def _run(rows, **kwargs):
    block, rejected = parse_objects(rows)
    assert not rejected
    run = ColumnarReplay()
    run.feed(block, source=0, lines=block.index + 1)
    return run.run(**kwargs)


def test_auto_leaves_the_present_month_in_progress_and_closes_it_once_it_is_past():
    rows = _declarations("2024-06-11")
    present = _run(rows, final_month="auto", today=TODAY)
    assert not present.last_month_closed and "the present month" in present.final_month
    assert present.engine.open_month == 2024 * 12 + 5
    assert {a.early for a in present.engine.drain() if a.period == "2024-06"} == {True}, "early checks only"

    past = _run(rows, final_month="auto", today=dt.date(2024, 7, 1))
    assert past.last_month_closed and "older than the present month, 2024-07" in past.final_month
    june = [a for a in past.engine.drain() if a.period == "2024-06"]
    assert june and not june[-1].early, "the month-end verdict of June"


def test_auto_closes_a_month_whose_declarations_reach_its_last_day_even_today():
    out = _run(_declarations("2024-05-31"), final_month="auto", today=dt.date(2024, 5, 31))
    assert out.last_month_closed and "reach its last day" in out.final_month


def test_auto_closes_monthly_statistics():
    rows = [{"period": f"{y}-{m:02d}", "reporter": "DE", "partner": "KG", "hs_code": "854231",
             "value": 50_000 + 1_000 * (m % 3), "currency": "USD"} for y in (2023, 2024) for m in range(1, 13)]
    out = _run(rows, final_month="auto", today=dt.date(2024, 12, 2))
    assert out.last_month_closed and "monthly statistics" in out.final_month
