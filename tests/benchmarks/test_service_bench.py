"""The service benchmark's pure helpers (no broker): scrapes, throughput, latency attribution,
state lanes, profile shares and the report."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from benchmarks import service, service_report
from benchmarks.service_analysis import (
    EARLY_RULE,
    MONTH_END_RULE,
    AlertMessage,
    InputMessage,
    Progress,
    attribute,
    lanes,
    latency_summary,
    parse_metrics,
    percentiles,
    profile_summary,
    state_lines,
    throughput,
)

D = dt.date

SCRAPE = """\
# HELP transitwatch_records_consumed_total Input messages consumed, by kind
# TYPE transitwatch_records_consumed_total counter
transitwatch_records_consumed_total{kind="declarations"} 900.0
transitwatch_records_consumed_total{kind="monthly"} 100.0
transitwatch_records_rejected_total{reason="bad_date"} 3.0
transitwatch_records_not_watched_total{reason="partner"} 7.0
# TYPE transitwatch_processing_latency_seconds histogram
transitwatch_processing_latency_seconds_bucket{le="+Inf"} 990.0
transitwatch_processing_latency_seconds_count 990.0
transitwatch_processing_latency_seconds_sum 12.0
transitwatch_consumer_lag_messages{kind="declarations"} 0.0
transitwatch_consumer_lag_messages{kind="goods"} 2.0
transitwatch_series_in_state 40.0
transitwatch_alerts_published_total{chpl_tier="1",kind="early",partner="KZ",severity="high"} 2.0
transitwatch_alerts_published_total{chpl_tier="2",kind="final",partner="AM",severity="low"} 1.0
"""


def test_a_scrape_gives_the_counters_the_benchmark_reads():
    p = Progress.of(5.0, parse_metrics(SCRAPE))
    assert (p.consumed, p.processed, p.forwarded) == (1000.0, 990.0, 990.0)
    assert p.series == 40.0 and p.alerts == 3.0 and p.restore_seconds is None
    assert p.done(1000) and not p.done(1001)
    assert not p.lag_zero, "one kind still lags"
    assert Progress.of(0.0, parse_metrics(SCRAPE.replace('kind="goods"} 2.0', 'kind="goods"} 0.0'))).lag_zero
    assert not Progress.of(0.0, {}).lag_zero, "no gauge yet is not no lag"


def _run(points):
    return [Progress(t, c, p, c, 0) for t, c, p in points]


def test_throughput_counts_from_the_last_idle_scrape_to_the_first_complete_one():
    runs = _run([(0.0, 0, 0), (0.5, 0, 0), (1.0, 300, 0), (2.0, 700, 300), (3.0, 1000, 900), (3.5, 1000, 1000),
                 (4.0, 1000, 1000)])
    r = throughput(runs, 1000)
    assert (r["start"], r["end"], r["seconds"]) == (0.5, 3.5, 3.0)
    assert r["per_s"] == pytest.approx(1000 / 3.0)
    # ingest: 100 consumed at 0.5 + 100/300 * 0.5, 900 at 2 + 200/300
    assert r["ingest_per_s"] == pytest.approx(800 / ((2 + 2 / 3) - (0.5 + 1 / 6)))


def test_throughput_refuses_runs_it_cannot_time():
    with pytest.raises(ValueError, match="before anything is consumed"):
        throughput(_run([(0.0, 10, 0), (1.0, 100, 100)]), 100)
    with pytest.raises(ValueError, match="no scrape saw all"):
        throughput(_run([(0.0, 0, 0), (1.0, 100, 50)]), 100)


def _in(ts, partition, offset, hs6, date):
    return InputMessage(ts, partition, offset, hs6, date)


INPUTS = [
    _in(1.00, 0, 0, "854231", D(2024, 1, 6)),
    _in(1.10, 1, 0, "880730", D(2024, 1, 7)),
    _in(1.20, 0, 1, "854231", D(2024, 1, 8)),   # completes an early check as of 2024-01-07
    _in(1.30, 1, 1, "880730", D(2024, 1, 30)),
    _in(1.40, 1, 2, "880730", D(2024, 2, 1)),   # first record of February: closes January
    _in(1.50, 0, 2, "854231", D(2024, 2, 3)),   # 854231's own first record of February
    _in(1.60, 0, 3, "854231", D(2024, 2, 9)),
]


def test_an_early_alert_is_set_against_its_groups_first_record_after_as_of():
    alert = AlertMessage(1.45, "tw-a", "854231", "2024-01", True, D(2024, 1, 7))
    (a,) = attribute(INPUTS, [alert])
    assert a.rule == EARLY_RULE and a.record == INPUTS[2]
    assert a.latency == pytest.approx(0.25)


def test_an_early_alert_ignores_other_groups_and_other_months():
    # 880730 has nothing after 2024-01-07 in January except the 30th; 854231's February record is not it
    alert = AlertMessage(2.0, "tw-b", "880730", "2024-01", True, D(2024, 1, 29))
    (a,) = attribute(INPUTS, [alert])
    assert a.record == INPUTS[3]
    lost = AlertMessage(2.0, "tw-c", "880730", "2024-02", True, D(2024, 2, 20))
    (b,) = attribute(INPUTS, [lost])
    assert b.record is None and b.latency is None


def test_a_month_end_alert_is_set_against_the_first_record_of_a_later_month_of_any_group():
    alert = AlertMessage(1.48, "tw-d", "854231", "2024-01", False, D(2024, 1, 31))
    (a,) = attribute(INPUTS, [alert])
    assert a.rule == MONTH_END_RULE
    assert a.record == INPUTS[4], "880730's February record moved the watermark first"
    assert a.own_group == INPUTS[5]
    assert a.latency == pytest.approx(0.08)
    s = latency_summary([a])
    assert s["own_group_negative"] == 1, "published before its own group's February record"
    assert s["negative"] == 0 and s["unattributed"] == 0


def test_first_published_means_smallest_timestamp_not_input_order():
    shuffled = list(reversed(INPUTS))
    alert = AlertMessage(1.48, "tw-d", "854231", "2024-01", False, D(2024, 1, 31))
    assert attribute(shuffled, [alert])[0].record == INPUTS[4]
    # a month with no record of its own still finds the next month that has one
    gap = [_in(1.0, 0, 0, "854231", D(2024, 1, 5)), _in(2.0, 0, 1, "854231", D(2024, 4, 1))]
    late = AlertMessage(2.5, "tw-e", "854231", "2024-02", False, D(2024, 2, 29))
    assert attribute(gap, [late])[0].record == gap[1]


def test_latency_summary_splits_early_from_month_end():
    alerts = [AlertMessage(1.45, "tw-a", "854231", "2024-01", True, D(2024, 1, 7)),
              AlertMessage(1.90, "tw-d", "854231", "2024-01", False, D(2024, 1, 31))]
    s = latency_summary(attribute(INPUTS, alerts))
    assert s["all"]["count"] == 2 and s["early"]["count"] == 1 and s["month_end"]["count"] == 1
    assert s["early"]["max"] == pytest.approx(0.25) and s["month_end"]["p50"] == pytest.approx(0.5)
    assert s["all"]["max"] == pytest.approx(0.5)


def test_percentiles_of_nothing_are_nan():
    p = percentiles([])
    assert p["count"] == 0 and math.isnan(p["p99"])
    q = percentiles([float(i) for i in range(101)])
    assert (q["p50"], q["p90"], q["p99"], q["max"]) == (50.0, 90.0, 99.0, 100.0)


def test_messages_from_the_wire():
    m = InputMessage.of(1_700_000_000_123, 3, 42, {"hs_code": "8542.31.10", "date": "2024-02-03"})
    assert (m.ts, m.hs6, m.date) == (1_700_000_000.123, "854231", D(2024, 2, 3))
    a = AlertMessage.of(1_700_000_001_000, {"alert_id": "tw-x", "hs6": "854231", "period": "2024-02",
                                            "early": True, "as_of": "2024-02-07"})
    assert a.early and a.as_of == D(2024, 2, 7) and a.ts == 1_700_000_001.0


def test_lanes_are_distinct_and_even_over_goods_groups():
    ls = lanes(["DE", "FR", "IT"], ["KZ", "RU", "AM"], ["export", "re-export"], ["854231", "880730", "901380"], 40)
    assert len(set(ls)) == 40
    per_group = {h: sum(1 for *_, g in ls if g == h) for h in ("854231", "880730", "901380")}
    assert sorted(per_group.values()) == [13, 13, 14]
    with pytest.raises(ValueError, match="need more"):
        lanes(["DE"], ["KZ"], ["export"], ["854231"], 2)


def test_state_lines_close_one_month_and_leave_the_next_open():
    ls = lanes(["DE", "FR"], ["KZ", "RU"], ["export"], ["854231", "880730"], 8)
    rows = state_lines(ls, open_share=0.5, seed=3)
    assert rows == state_lines(ls, open_share=0.5, seed=3), "seeded"
    jan = [r for r in rows if r["date"].startswith("2024-01")]
    feb = [r for r in rows if r["date"].startswith("2024-02")]
    assert len(jan) == 8 and 0 < len(feb) < 8 and len(jan) + len(feb) == len(rows)
    assert [r["date"] for r in rows] == sorted(r["date"] for r in rows)
    assert all(int(r["date"][8:]) <= 14 for r in feb)
    assert len({r["declaration_id"] for r in rows}) == len(rows)
    assert {(r["reporter"], r["partner"], r["flow"], r["hs_code"][:6]) for r in jan} == set(ls)


def test_state_lines_are_valid_watched_declarations():
    from transitwatch.detectors.contract import parse_mapping
    from transitwatch.detectors.engine import route_reason
    from transitwatch.detectors.watch import WatchConfig

    cfg = WatchConfig.default()
    ls = lanes(["DE", "US"], sorted(cfg.hubs | cfg.destinations), sorted(cfg.flows), sorted(cfg.hs6), 300)
    for row in state_lines(ls, seed=1)[:50]:
        rec = parse_mapping(row)
        assert route_reason(cfg, rec.reporter, rec.partner, rec.flow, rec.hs_code[:6], rec.currency) is None


def test_profile_summary_counts_inclusive_parts_and_own_frames():
    lines = [
        "run (mode/worker.py:1);_detect (streams/service.py:300);GroupState.feed (streams/state.py:236);"
        "Engine.add (detectors/engine.py:182) 6",
        "run (mode/worker.py:1);_detect (streams/service.py:300);Engine.close_month (detectors/engine.py:440) 2",
        "WorkerThread.run (mode/threads.py:62);Fetcher._fetcher (faust/transport/consumer.py:177) 1",
        "run (mode/worker.py:1);EpollSelector.select (selectors.py:468) 1",
        "garbage",
    ]
    p = profile_summary(lines, top=2)
    assert p["samples"] == 10
    parts = p["parts"]
    assert parts["detect agent (all of a batch)"] == pytest.approx(0.8)
    assert parts["    Engine.add (with the early checks it runs)"] == pytest.approx(0.6)
    assert parts["  GroupState.feed and .advance (reorder buffer, engine)"] == pytest.approx(0.6)
    assert parts["Faust/aiokafka consumer thread"] == pytest.approx(0.1)
    assert parts["waiting in epoll (idle)"] == pytest.approx(0.1)
    assert p["top"] == [("Engine.add (detectors/engine.py:182)", 0.6), ("Engine.close_month (detectors/engine.py:440)", 0.2)]
    assert profile_summary([])["samples"] == 0


def _fake_results() -> dict:
    worker = {"per_s": 4000.0, "seconds": 50.0, "ingest_per_s": 9000.0, "ready_s": 4.0, "forwarded": 200000.0,
              "cpu_seconds": 40.0, "broker_cpu_seconds": 12.0}
    lat = {"count": 3, "p50": 0.2, "p90": 0.4, "p99": 0.5, "max": 0.5}
    return {
        "command": "python -m benchmarks.service", "date": "2026-11-29", "seconds": 600.0, "kafka": "4.4.0",
        "machine": {"nproc": 2, "cpu": "cpu", "python": "3.11", "platform": "Linux", "orjson": "3", "faust": "0.15",
                    "aiokafka": "0.14", "java": "openjdk 17", "loadavg": ["1", "1", "1"],
                    "loadavg_after": ["2", "2", "2"]},
        "throughput": {"declarations": 200000, "seed": 7, "partitions": 8, "publish": {"seconds": 8.0},
                       "runs": {"message": [{"per_s": 14000.0, "cpu_seconds": 13.0}], "worker": [worker]},
                       "median_per_s": {"message": 14000.0, "worker": 4000.0}, "median_ingest_per_s": 9000.0,
                       "ratio": 4000 / 14000, "ratios": [4000 / 14000], "worker_ready_s": 4.0},
        "latency": {"rate": 2000.0, "seed": 7, "hub_series": 200, "months": 36, "lines": 70000,
                    "achieved_rate": 1999.0, "publish_seconds": 35.0,
                    "summary": {"all": lat, "early": lat, "month_end": percentiles([]), "unattributed": 0,
                                "negative": 0, "own_group_negative": 0, "own_group_count": 0},
                    "worker_histograms": {"processing_latency_p50": 0.3, "processing_latency_p99": 0.9,
                                          "batch_duration_p50": 0.01, "batch_duration_p99": 0.2}},
        "latency_runs": {"worker": [
            {"all": lat, "after_warmup": lat, "root": "/repo", "achieved_rate": 1999.0, "cpu_share": {"worker": 0.5}},
            {"all": {**lat, "p99": 1.5}, "after_warmup": lat, "root": "/repo", "achieved_rate": 2000.0,
             "cpu_share": {"worker": 0.6}},
            {"all": {**lat, "p99": 0.7}, "after_warmup": lat, "root": "/repo", "achieved_rate": 2000.0,
             "cpu_share": {"worker": 0.6}}]},
        "restart": {"series": 100000, "series_gauge": 100000.0, "lines": 150000, "open_share": 0.5,
                    "build": {"seconds": 40.0, "per_s": 3750.0},
                    "changelog": {"end_offsets": 2000, "partitions": 8, "disk_bytes": 2**24, "messages_read": 2000,
                                  "read_bytes": 2**24, "live_keys": 900, "live_bytes": 2**23},
                    "runs": [{"signal": "SIGTERM", "previous_stop_s": 2.5, "metrics": 2.0, "ready": 3.0,
                              "first_records": 4.0, "probe_done": 4.0, "series_restored": 5.0, "series": 100050.0,
                              "restore_gauge_s": 1.25},
                             {"signal": "SIGKILL", "previous_stop_s": 0.0, "metrics": 2.0, "ready": 11.0,
                              "probe_done": 12.0, "series_restored": 13.0, "series": 100050.0,
                              "restore_gauge_s": None}]},
    }


def test_render_states_targets_and_write_doc_keeps_the_hand_written_part(tmp_path):
    md = service_report.render(_fake_results())
    assert "| worker >= 8,000 declarations/s | 4,000 | **no** |" in md
    assert "| 4,000 | 0.29 | 200 |" in md, "CPU µs per declaration: 40 s / 200,000"
    assert "worker / bare agent >= 0.5 (medians) | 0.29" in md
    assert "judged on the median over the worker's runs of their p99: 0.700 s, met: yes" in md
    assert service_report.latency_verdict(_fake_results()["latency_runs"]) == 0.7
    assert "| SIGTERM | 2.5 | 2.0 | 3.0 | 4.0 | 4.0 | 5.0 | 100,050 | 1.25 |" in md
    assert "| SIGKILL | 0.0 | 2.0 | 11.0 | - | 12.0 | 13.0 | 100,050 | - |" in md
    results = _fake_results()
    del results["restart"]
    assert "### Restart" not in service_report.render(results), "a step that did not run is not reported"
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\nHand-written method.\n")
    service_report.write_doc(doc, md)
    service_report.write_doc(doc, md)
    text = doc.read_text()
    assert text.startswith("# Performance\n\nHand-written method.\n")
    assert text.count(service_report.MARKER) == 1 and text.count("## Results") == 1


def test_options_quick_sizes_and_the_command_line_that_reproduces_them():
    full = service.parse_args([])
    assert (full.declarations, full.repeat, full.series) == (200_000, 3, 100_000)
    quick = service.parse_args(["--quick", "--series", "5000"])
    assert (quick.declarations, quick.repeat, quick.series) == (20_000, 1, 5000)
    assert service.command(quick) == "python -m benchmarks.service --quick --series 5000"
    assert service.command(service.parse_args(["--steps", "latency", "--profile"])) == (
        "python -m benchmarks.service --steps latency --profile")
