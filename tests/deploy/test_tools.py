"""The PromQL name extractor and the scrape reader the metric checks rely on: if they miss
names, tests/integration/test_deploy_metrics.py proves nothing."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.tools import exported_series, metric_names, recorded_names, used_metric_names


def test_names_followed_by_anything_promql_allows():
    expr = ('sum by (kind) (rate(transitwatch_a_total{kind="x"}[5m])) / transitwatch_b>0 '
            'and transitwatch_c offset 1h or (transitwatch_d) + transitwatch_e[5m:1m] unless transitwatch_f')
    assert metric_names(expr) == {"transitwatch_a_total", "transitwatch_b", "transitwatch_c", "transitwatch_d",
                                  "transitwatch_e", "transitwatch_f"}


def test_strings_labels_and_recording_rules_are_not_metric_names():
    expr = ('job_kind:transitwatch_lag:sum > 1 and on (transitwatch_label) '
            'transitwatch_real{instance=~"transitwatch_fake.*", job="transitwatch-worker"}')
    assert metric_names(expr) == {"transitwatch_real"}
    assert recorded_names(expr) == {"job_kind:transitwatch_lag:sum"}


def test_histogram_suffixes_and_counter_totals_are_matched_to_families():
    r = CollectorRegistry()
    Counter("transitwatch_things", "h", ["kind"], registry=r)  # no sample yet: declared only
    Histogram("transitwatch_wait_seconds", "h", registry=r)
    Gauge("transitwatch_level", "h", registry=r).set(3)
    exported = exported_series(text_string_to_metric_families(generate_latest(r).decode()))
    for name in ("transitwatch_things_total", "transitwatch_wait_seconds_bucket", "transitwatch_wait_seconds_sum",
                 "transitwatch_wait_seconds_count", "transitwatch_level"):
        assert name in exported, name
    assert "transitwatch_things" not in exported and "transitwatch_level_total" not in exported
    assert "transitwatch_wait_seconds" not in exported


def test_the_rules_and_dashboards_name_the_metrics_of_both_processes():
    used = used_metric_names()
    assert "transitwatch_records_consumed_total" in used
    assert "transitwatch_processing_latency_seconds_bucket" in used
    assert "transitwatch_notify_undelivered_total" in used
    assert all(name.startswith("transitwatch_") and ":" not in name for name in used)
