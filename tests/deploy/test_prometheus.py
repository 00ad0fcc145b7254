"""deploy/prometheus: the scrape configuration, the alert rules and their unit tests.

``promtool`` checks the configuration and the rules and runs the rule unit tests; this module
also proves that the unit tests can fail: each alert, made never to fire, must break them.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.deploy.tools import (
    COMPOSE,
    DEPLOY,
    OPERATIONS,
    RULE_TESTS,
    RULES,
    alerting_rules,
    dashboard_queries,
    load_yaml,
    recorded_names,
    recording_rules,
    require,
    rule_expressions,
)

PROMETHEUS_DIR = DEPLOY / "prometheus"
SEVERITIES = {"critical", "warning"}


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_configuration_and_its_rule_files():
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    # The rule_files glob must find the rules (a wrong path is "0 rule files found", not an error).
    assert f"SUCCESS: {len(RULES)} rule files found" in done.stdout + done.stderr


def test_promtool_accepts_the_rules():
    assert RULES, "no rule file in deploy/prometheus/rules"
    done = promtool("check", "rules", *[str(p) for p in RULES])
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rule_unit_tests_pass():
    assert RULE_TESTS
    done = promtool("test", "rules", *[str(p) for p in RULE_TESTS])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_severity_service_summary_description_and_runbook():
    rules = alerting_rules()
    assert len(rules) >= 7
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), "an alert name is used twice"
    for rule in rules:
        labels, notes = rule.get("labels", {}), rule.get("annotations", {})
        assert labels.get("severity") in SEVERITIES, rule["alert"]
        assert labels.get("service") == "transitwatch", rule["alert"]
        assert notes.get("summary") and notes.get("description"), rule["alert"]
        assert notes.get("runbook_url") == f"docs/operations.md#{rule['alert'].lower()}", rule["alert"]


def test_the_issue_s_alerts_are_all_there():
    names = {r["alert"] for r in alerting_rules()}
    for wanted in ("TransitwatchWorkerDown", "TransitwatchNoRecordsConsumed", "TransitwatchConsumerLagGrowing",
                   "TransitwatchDeadLetterRateHigh", "TransitwatchEventTimeLagHigh",
                   "TransitwatchDeliveryFailures", "TransitwatchAlertsUndelivered"):
        assert wanted in names


def _github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_runbook_url_points_at_a_section_of_docs_operations():
    headings = [m.group(1) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", OPERATIONS.read_text("utf-8"), re.M)]
    anchors = {_github_anchor(h) for h in headings}
    for rule in alerting_rules():
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor in anchors, f"{rule['alert']}: docs/operations.md has no section #{anchor}"


def test_github_anchor():
    assert _github_anchor("TransitwatchWorkerDown") == "transitwatchworkerdown"
    assert _github_anchor("Changing the partition count") == "changing-the-partition-count"


def _cases() -> dict[str, dict[str, int]]:
    """Per alert name: how many checks expect it firing, and how many expect it silent."""
    cases: dict[str, dict[str, int]] = {}
    for path in RULE_TESTS:
        for test in load_yaml(path)["tests"]:
            for check in test.get("alert_rule_test", []):
                kind = "fires" if check.get("exp_alerts") else "silent"
                cases.setdefault(check["alertname"], {"fires": 0, "silent": 0})[kind] += 1
    return cases


def test_every_alert_has_a_firing_and_a_silent_case():
    cases = _cases()
    for rule in alerting_rules():
        counts = cases.get(rule["alert"], {"fires": 0, "silent": 0})
        assert counts["fires"] >= 1, f"no unit test where {rule['alert']} fires"
        assert counts["silent"] >= 1, f"no unit test where {rule['alert']} must stay silent"
    unknown = set(cases) - {r["alert"] for r in alerting_rules()}
    assert not unknown, f"unit tests for alerts that do not exist: {unknown}"


def test_the_unit_tests_fail_when_an_alert_never_fires(tmp_path):
    """Mutation check: an alert whose expression can never be true must break its unit tests."""
    require("promtool")
    for rule in alerting_rules():
        name = rule["alert"]
        work = tmp_path / name
        (work / "rules").mkdir(parents=True)
        (work / "tests").mkdir()
        for path in RULES:
            doc = load_yaml(path)
            for group in doc["groups"]:
                for r in group["rules"]:
                    if r.get("alert") == name:
                        r["expr"] = "vector(1) == 2"
            (work / "rules" / path.name).write_text(yaml.safe_dump(doc, sort_keys=False))
        # Only this alert's checks, to keep the run short.
        for path in RULE_TESTS:
            doc = load_yaml(path)
            kept = []
            for test in doc["tests"]:
                checks = [c for c in test.get("alert_rule_test", []) if c["alertname"] == name]
                if checks:
                    kept.append({**test, "alert_rule_test": checks})
            (work / "tests" / path.name).write_text(yaml.safe_dump({**doc, "tests": kept}, sort_keys=False))
        done = promtool("test", "rules", *[p.name for p in RULE_TESTS], cwd=work / "tests")
        assert done.returncode != 0, f"the unit tests still pass with {name} disabled"
        assert name in done.stdout + done.stderr


def test_recording_rules_used_anywhere_are_defined():
    defined = {r["record"] for r in recording_rules()}
    used = set()
    for _, expr in rule_expressions():
        used |= recorded_names(expr)
    for _, _, expr in dashboard_queries():
        used |= recorded_names(expr)
    assert used <= defined, f"recording rules read but not defined: {used - defined}"


def test_scrape_targets_match_the_compose_services():
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    services = load_yaml(COMPOSE)["services"]
    worker = jobs["transitwatch-worker"]["dns_sd_configs"][0]
    assert worker["names"] == ["worker"] and worker["type"] == "A"
    worker_env = services["worker"]["environment"]
    assert str(worker["port"]) == str(worker_env["TRANSITWATCH_WEB_PORT"])
    assert str(worker["port"]) in [str(p) for p in services["worker"]["expose"]]
    notifier_env = services["notifier"]["environment"]
    assert jobs["transitwatch-notifier"]["static_configs"][0]["targets"] == [
        f"notifier:{notifier_env['TRANSITWATCH_NOTIFY_WEB_PORT']}"]
    am = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == ["alertmanager:9093"] and "alertmanager" in services
    # The job names the rules select on are the ones scraped.
    for _, expr in rule_expressions():
        for job in re.findall(r'job="([^"]+)"', expr):
            assert job in jobs, f"rules select job={job!r}, which Prometheus does not scrape"
