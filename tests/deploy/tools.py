"""Shared by the deployment tests: paths, the offline tools, and what PromQL names.

The offline validators (promtool, amtool, busybox) come from Debian packages. Outside CI a
missing one skips the tests that need it, with the install line; in CI (``CI`` set) it fails
them: CI must install them (see ``.ci/run``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
RULES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
OPERATIONS = ROOT / "docs" / "operations.md"

INSTALL = {
    "promtool": "apt-get install -y prometheus",
    "amtool": "apt-get install -y prometheus-alertmanager",
    "prometheus-alertmanager": "apt-get install -y prometheus-alertmanager",
    "busybox": "apt-get install -y busybox",
    "java": "apt-get install -y openjdk-17-jre-headless",
    "mvn": "apt-get install -y maven",
}


def require(tool: str) -> str:
    """The path of an offline tool; skip without it, except in CI, where it fails."""
    path = shutil.which(tool)
    if path is None:
        hint = INSTALL.get(tool, "")
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is required in CI ({hint})")
        pytest.skip(f"{tool} is not installed ({hint})")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_yaml(path: Path) -> object:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alerting_rules() -> list[dict]:
    """Every alerting rule of deploy/prometheus/rules, with its group name under ``_group``."""
    out = []
    for path in RULES:
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    out.append({**rule, "_group": group["name"], "_file": path})
    return out


def recording_rules() -> list[dict]:
    return [rule for path in RULES for group in load_yaml(path)["groups"] for rule in group["rules"]
            if "record" in rule]


def dashboard_queries() -> Iterator[tuple[str, str, str]]:
    """(dashboard file, where, PromQL) for every Prometheus query of every dashboard."""
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for t in panel.get("targets", []):
                if "expr" in t:
                    yield path.name, f"panel {panel['id']} {panel['title']!r} {t['refId']}", t["expr"]
        for a in board.get("annotations", {}).get("list", []):
            if "expr" in a:
                yield path.name, f"annotation {a['name']!r}", a["expr"]
        for v in board.get("templating", {}).get("list", []):
            if v.get("type") == "query":
                q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
                m = re.fullmatch(r"label_values\((.*),\s*\w+\)", q.strip())
                if m:
                    yield path.name, f"variable {v['name']}", m.group(1)


def rule_expressions() -> Iterator[tuple[str, str]]:
    for path in RULES:
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                yield f"{path.name}: {rule.get('alert') or rule.get('record')}", rule["expr"]


# -- metric names in PromQL ------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
# A name that starts with transitwatch_, not part of a longer name (recording rules such as
# job:transitwatch_x:sum have colons), followed by a selector, a range, a call, an operator,
# a closing bracket, a comma, whitespace or the end.
_NAME = re.compile(r"(?<![A-Za-z0-9_:])(transitwatch_[A-Za-z0-9_]*[A-Za-z0-9])(?![A-Za-z0-9_:])")
_RECORDED = re.compile(r"(?<![A-Za-z0-9_:])([A-Za-z_][A-Za-z0-9_]*:[A-Za-z0-9_:]*)(?![A-Za-z0-9_:])")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def strip_strings(expr: str) -> str:
    """The expression with its string literals (label values, regexes) emptied."""
    return _STRING.sub('""', expr)


def _label_names(expr: str) -> set[str]:
    """Label names in matchers and in by/without/on/ignoring/group_left/group_right lists."""
    names: set[str] = set()
    for block in re.findall(r"\{([^{}]*)\}", expr):
        names.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", block))
    for block in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)", expr):
        names.update(n.strip() for n in block.split(",") if n.strip())
    return names


def metric_names(expr: str) -> set[str]:
    """The ``transitwatch_*`` series names an expression reads (not label names).

    >>> sorted(metric_names('sum by (kind) (rate(transitwatch_records_consumed_total{instance=~"transitwatch_x"}[5m]))'))
    ['transitwatch_records_consumed_total']
    >>> sorted(metric_names('job_kind:transitwatch_consumer_lag_messages:sum > 10 and transitwatch_up'))
    ['transitwatch_up']
    """
    bare = strip_strings(expr)
    labels = _label_names(bare)
    return {m for m in _NAME.findall(bare) if m not in labels}


def recorded_names(expr: str) -> set[str]:
    """Recording-rule names (level:metric:operation) an expression reads."""
    return set(_RECORDED.findall(strip_strings(expr)))


def exported_series(families: Iterable) -> set[str]:
    """The series names a scrape can carry, from prometheus_client's parsed families.

    Counters are exposed as ``<name>_total``, histograms as ``_bucket``/``_sum``/``_count``;
    a family declared by ``# TYPE`` counts even before its first sample (a labelled counter
    that has not been incremented yet).
    """
    names: set[str] = set()
    for f in families:
        if f.type == "counter":
            names.add(f"{f.name}_total")
        elif f.type in ("histogram", "gaugehistogram"):
            names.update(f"{f.name}{s}" for s in HISTOGRAM_SUFFIXES)
        elif f.type == "summary":
            names.update({f.name, f"{f.name}_sum", f"{f.name}_count"})
        else:
            names.add(f.name)
        names.update(s.name for s in f.samples)
    return names


def used_metric_names() -> dict[str, list[str]]:
    """Every transitwatch_* name read by a rule or a dashboard, with where it is used."""
    used: dict[str, list[str]] = {}
    for where, expr in rule_expressions():
        for name in metric_names(expr):
            used.setdefault(name, []).append(where)
    for board, where, expr in dashboard_queries():
        for name in metric_names(expr):
            used.setdefault(name, []).append(f"{board} {where}")
    return used
