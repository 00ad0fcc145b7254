"""Tests for case-level scoring and the real-data converters (benchmarks.cases)."""

from __future__ import annotations

import math

import orjson
import pytest

from benchmarks import cases
from benchmarks.cases import Case, TruthView, group_cases, hot_months, lane_values, score_cases, silent_months
from benchmarks.scoring import month_index, period_of
from transitwatch.detectors.contract import MonthlyStat, parse_mapping
from transitwatch.detectors.watch import WatchConfig

SURGED = ("DE", "KG", "export", "854231")
QUIET = ("DE", "AM", "export", "854232")
FIRST, LAST = month_index("2020-01"), month_index("2022-12")


def alert(key, period, **kw) -> dict:
    return {"reporter": key[0], "partner": key[1], "flow": key[2], "hs6": key[3], "period": period, **kw}


def months(c: Case) -> list[str]:
    return [period_of(m) for m in c.months]


def test_gaps_of_up_to_two_months_continue_a_case_three_start_a_new_one():
    rows = [alert(SURGED, p) for p in ("2022-01", "2022-02", "2022-05", "2022-09")] + [alert(QUIET, "2022-02")]
    got = group_cases(rows)
    assert [(c.key, months(c)) for c in got] == [
        (QUIET, ["2022-02"]), (SURGED, ["2022-01", "2022-02", "2022-05"]), (SURGED, ["2022-09"])]


def test_notifications_count_records_and_case_id_groups_across_gaps():
    rows = [alert(SURGED, "2022-01", case_id="c1"), alert(SURGED, "2022-01", case_id="c1"),
            alert(SURGED, "2022-11", case_id="c1"), alert(SURGED, "2022-12", case_id="c2")]
    c1, c2 = group_cases(rows)
    assert (c1.case_id, c1.notifications, months(c1)) == ("c1", 3, ["2022-01", "2022-11"])
    assert c2.case_id == "c2" and c2.notifications == 1
    # a case the alerts name covers every month between its first and last record
    assert c1.covered() == set(range(month_index("2022-01"), month_index("2022-11") + 1))
    assert group_cases([alert(SURGED, "2022-01"), alert(SURGED, "2022-03")])[0].covered() == {
        month_index("2022-01"), month_index("2022-03")}


def test_hot_months_need_both_the_ratio_and_the_floor():
    values = {1: 29.0, 2: 30.0, 3: 3000.0, 4: 300.0}
    assert hot_months(values, start=1, stop=4, pre=10.0, floor=15.0) == [2, 3, 4]
    assert hot_months(values, start=1, stop=4, pre=10.0, floor=1000.0) == [3]
    assert hot_months(values, start=1, stop=4, pre=200.0, floor=0.0) == [3]


def test_silent_months_are_hot_months_no_alert_covers():
    values = {m: 100.0 for m in range(10, 20)}
    told = group_cases([alert(SURGED, period_of(m)) for m in (10, 11, 14)])
    assert silent_months(values, told, start=10, stop=19, pre=10.0, floor=50.0) == [12, 13, 15, 16, 17, 18, 19]
    named = group_cases([alert(SURGED, period_of(m), case_id="x") for m in (10, 14)])
    assert silent_months(values, named, start=10, stop=19, pre=10.0, floor=50.0) == [15, 16, 17, 18, 19]


def test_pre_level_is_the_mean_of_the_twelve_months_before_with_zeros():
    values = {m: 12.0 for m in range(0, 24)} | {23: 24.0}
    assert cases.pre_level(values, 24, first=0) == pytest.approx(13.0)
    assert cases.pre_level({5: 6.0}, 6, first=4) == pytest.approx(3.0)   # only two months of data before


def test_lane_values_count_a_declaration_once_and_the_last_revision():
    rows = [
        {"declaration_id": "a", "date": "2022-03-01", "reporter": "DE", "partner": "KG", "hs_code": "85423190",
         "value": 100.0, "currency": "USD"},
        {"declaration_id": "a", "date": "2022-03-01", "reporter": "DE", "partner": "KG", "hs_code": "85423190",
         "value": 100.0, "currency": "USD"},
        {"declaration_id": "b", "date": "2022-03-09", "reporter": "DE", "partner": "KG", "hs_code": "85423110",
         "value": 92.5, "currency": "EUR"},
        {"period": "2022-03", "reporter": "DE", "partner": "AM", "hs_code": "85423200", "value": 1.0, "currency": "USD"},
        {"period": "2022-03", "reporter": "DE", "partner": "AM", "hs_code": "85423200", "value": 7.0, "currency": "USD"},
    ]
    got = lane_values(rows, WatchConfig.default())
    assert got[SURGED] == {month_index("2022-03"): pytest.approx(200.0)}
    assert got[QUIET] == {month_index("2022-03"): 7.0}


def _truth() -> TruthView:
    rows = [{"kind": "series", "reporter": k[0], "partner": k[1], "flow": "export", "hs6": k[3], "density": "busy"}
            for k in (SURGED, QUIET)]
    rows.append({"kind": "surge", "reporter": "DE", "partner": "KG", "flow": "export", "hs6": "854231",
                 "pattern": "sustained", "onset": "2022-01", "end": "2022-07", "factor": 10.0})
    rows.append({"kind": "reporter_level", "reporter": "FR", "onset": "2021-01"})
    return TruthView.from_rows(rows, last=LAST)


def test_score_cases_on_a_hand_built_run():
    onset = month_index("2022-01")
    values = {SURGED: {m: 1_000.0 for m in range(FIRST, onset)} | {m: 50_000.0 for m in range(onset, onset + 6)},
              QUIET: {m: 1_000.0 for m in range(FIRST, LAST + 1)}}
    alerts = [alert(SURGED, "2022-02", severity="critical", p_value=1e-6),
              alert(SURGED, "2022-03", severity="critical", p_value=0.01),
              alert(QUIET, "2020-05", severity="high", p_value=0.0001),            # false, first year
              alert(QUIET, "2021-06", severity="medium", p_value=0.002),           # false, later
              alert(QUIET, "2021-07", severity="medium", p_value=0.002),           # same case
              alert(SURGED, "2022-08", severity="low", p_value=0.002),             # grace month: not false
              alert(("DE", "UZ", "export", "854233"), "2021-01", severity="low")]  # lane not scored
    sc = score_cases(alerts, _truth(), values, first=FIRST, last=LAST, floor=10_000.0)
    (e,) = sc.events
    assert (e.found, e.delay, e.cases, e.notifications) == (True, 1, 2, 3)   # 2022-08 is a case of its own
    assert e.hot == 6 and e.silent_before == 1 and e.silent_after == 3       # 2022-01; 2022-04..06
    s = sc.summary()
    assert s["recall"] == 1.0 and s["events gone quiet"] == 1 and s["silent share after first alert"] == 0.5
    assert s["false cases"] == 2 and sc.unscored_cases == 1
    assert s["notifications per false case"] == 1.5
    # lane-months outside windows: 36 per lane, minus 2022-01..06 and two grace months on the surged lane
    assert sc.lane_months["all"] == 72 - 8
    assert s["false cases / 1000"] == pytest.approx(1000 * 2 / 64)
    assert s["false cases / 1000, first year"] == pytest.approx(1000 / 24)
    assert s["false cases / 1000, later"] == pytest.approx(1000 / 40)
    assert sc.false_context == {"first year of the run": 1, "other": 1}
    assert sc.critical["alerts"] == 2 and sc.critical["p > 0.001"] == 0.5
    assert sc.critical["Bonferroni p > 0.05"] == 0.5                          # 1e-6 * 72 < 0.05, 0.01 * 72 is not
    assert sc.severity["medium"]["in event windows"] == 0.0 and sc.severity["low"]["in event windows"] == 0.5


def test_bonferroni_view_multiplies_by_the_lane_months_tested():
    rows = [alert(SURGED, "2022-01", severity="critical", p_value=1e-6),
            alert(SURGED, "2022-02", severity="critical", p_value=1e-3)]
    _, few = cases.severity_view(rows, None, 100)
    _, many = cases.severity_view(rows, None, 1_000_000)
    assert few["Bonferroni p > 0.05"] == 0.5 and many["Bonferroni p > 0.05"] == 1.0
    assert many["median Bonferroni p"] == 1.0 and math.isnan(many["in event windows"])


def test_a_missed_event_counts_all_its_hot_months_as_silent_before():
    onset = month_index("2022-01")
    values = {SURGED: {m: 50_000.0 for m in range(onset, onset + 6)}, QUIET: {}}
    sc = score_cases([], _truth(), values, first=FIRST, last=LAST, floor=10_000.0)
    (e,) = sc.events
    assert (e.found, e.delay, e.silent_before, e.silent_after) == (False, None, 6, 0)
    assert sc.summary()["recall"] == 0.0 and sc.summary()["events gone quiet"] == 0


def test_comtrade_rows_sum_over_modes_of_transport_and_pass_the_contract(tmp_path):
    src = tmp_path / "c.csv"
    src.write_text(
        "period,aggregate_level,trade_code,partner_iso,commodity_code,trade_value_us\n"
        "2022-11-01,6,X,RUS,870323,100.5\n2022-11-01,6,X,RUS,870323,200\n"
        "2022-11-01,4,X,RUS,8703,300.5\n2022-11-01,6,M,RUS,870323,9\n2022-11-01,6,X,W00,870323,9\n")
    (row,) = cases.comtrade_records(src)
    assert row == {"period": "2022-11", "reporter": "AM", "partner": "RU", "flow": "export", "hs_code": "870323",
                   "value": 300.5, "currency": "USD"}
    assert type(parse_mapping(row)) is MonthlyStat


def test_eurostat_totals_drop_aggregates_and_map_total_to_the_placeholder(tmp_path):
    src = tmp_path / "t.csv"
    src.write_text("period,reporter_iso2,partner_iso2,flow,value_eur\n2022-06,DE,KG,EXPORT,15\n"
                   "2022-06,EU27_2020,KG,EXPORT,99\n2022-06,EL,KG,EXPORT,3\n2022-06,DE,KG,IMPORT,4\n")
    rows = cases.totals_records(src)
    assert [(r["reporter"], r["hs_code"], r["value"]) for r in rows] == [("DE", cases.TOTAL_HS6, 15.0),
                                                                        ("GR", cases.TOTAL_HS6, 3.0)]
    assert cases.TOTAL_HS6 in WatchConfig.from_toml(cases.TOTALS_CONFIG).hs6
    assert all(type(parse_mapping(r)) is MonthlyStat for r in rows)


def test_the_armenia_config_watches_armenia_into_russia():
    cfg = WatchConfig.from_toml(cases.AM_CONFIG)
    assert cfg.reporters == {"AM"} and cfg.role("AM", "RU") == (True, True), "alerts, and still a destination"
    assert cfg.hs6 == set(cases.CARS)


def test_cli_scores_one_replay(tmp_path, capsys):
    truth = tmp_path / "truth.jsonl"
    truth.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in [
        {"kind": "series", "reporter": "DE", "partner": "KG", "flow": "export", "hs6": "854231", "density": "busy"},
        {"kind": "surge", "reporter": "DE", "partner": "KG", "flow": "export", "hs6": "854231", "onset": "2021-01",
         "end": None, "factor": 5.0}]))
    inputs = tmp_path / "in.jsonl"
    inputs.write_bytes(b"".join(orjson.dumps({"period": f"{y}-{m:02d}", "reporter": "DE", "partner": "KG",
                                              "hs_code": "854231", "value": 1e3 if y == 2020 else 1e5})
                                + b"\n" for y in (2020, 2021) for m in range(1, 13)))
    alerts = tmp_path / "a.jsonl"
    alerts.write_bytes(orjson.dumps(alert(SURGED, "2021-02", severity="high", p_value=1e-5)) + b"\n")
    assert cases.main(["--alerts", str(alerts), "--truth", str(truth), "--input", str(inputs)]) == 0
    out = orjson.loads(capsys.readouterr().out)
    assert out["recall"] == 1.0 and out["hot months"] == 12 and out["silent after first alert"] == 10
