"""Full series from the replay's input (``--input``): revisions, re-sent declarations, currencies,
and the sample's values equal to its alert records'."""

from __future__ import annotations

import orjson

from transitwatch.streams.desk.inputs import InputSeries


def write(path, rows):
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def test_monthly_revisions_replace_and_cn8_lines_add_up(tmp_path):
    base = {"reporter": "DE", "partner": "KG", "flow": "export", "currency": "EUR"}
    path = write(tmp_path / "m.jsonl", [
        {**base, "period": "2022-01", "hs_code": "85423110", "value": 100.0},
        {**base, "period": "2022-01", "hs_code": "85423190", "value": 50.0},
        {**base, "period": "2022-01", "hs_code": "85423110", "value": 120.0},  # a revision of the first
        {**base, "period": "2022-03", "hs_code": "85423110", "value": 7.0},
        {**base, "period": "2022-03", "hs_code": "85423110", "value": 7.0, "partner": "RU"},
        {**base, "period": "2022-02", "hs_code": "85423110", "value": 1.0, "reporter": "PL"},  # not kept
        {"period": "2022-02", "reporter": "DE"},  # rejected
    ])
    series = InputSeries.read([path], reporters={"DE"}, codes={"854231"})
    assert series.rejected == 1
    assert series.months("DE", "KG", "export", "854231", "EUR") == {
        "2022-01": (170.0, None), "2022-02": (0.0, None), "2022-03": (7.0, None)}
    assert series.months("DE", "RU", "export", "854231", "EUR")["2022-03"] == (7.0, None)
    assert series.months("DE", "KG", "export", "854231", "USD") is None  # another currency: not drawn
    assert series.months("PL", "KG", "export", "854231", "EUR") is None


def test_declarations_count_once_per_id(tmp_path):
    base = {"reporter": "DE", "partner": "KG", "flow": "export", "hs_code": "854231", "currency": "EUR"}
    path = write(tmp_path / "d.jsonl", [
        {**base, "declaration_id": "a", "date": "2022-01-05", "value": 10.0},
        {**base, "declaration_id": "a", "date": "2022-01-05", "value": 10.0},
        {**base, "declaration_id": "b", "date": "2022-01-20", "value": 5.0},
        {**base, "declaration_id": "c", "date": "2022-02-01", "value": 1.0},
    ])
    series = InputSeries.read([path], reporters={"DE"}, codes={"854231"})
    assert series.months("DE", "KG", "export", "854231", "EUR") == {"2022-01": (15.0, 2), "2022-02": (1.0, 1)}
