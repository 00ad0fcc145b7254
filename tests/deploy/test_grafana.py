"""deploy/grafana: the provisioning and the two dashboards.

Grafana itself cannot run here, so the dashboards are checked as data: valid JSON with the
fields Grafana needs, a layout that fits, every panel bound to a provisioned data source with
queries, every variable defined, every PromQL query parsed by promtool, and the JSON queries
reading fields the alert record has. That the metrics they read are exported by the live
processes is tests/integration/test_deploy_metrics.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import subprocess

import pytest
import yaml

from transitwatch.detectors.alerts import Alert
from tests.deploy.tools import COMPOSE, DASHBOARDS, DEPLOY, ROOT, dashboard_queries, load_yaml, require

GRAFANA = DEPLOY / "grafana"
PANEL_TYPES = {"timeseries", "stat", "table", "bargauge", "gauge", "barchart", "piechart", "heatmap", "state-timeline"}
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__from", "__to",
                     "__dashboard", "__org", "__user"}


def datasources() -> dict[str, dict]:
    out = {}
    for path in (GRAFANA / "provisioning" / "datasources").glob("*.yml"):
        for ds in load_yaml(path)["datasources"]:
            assert ds["uid"] not in out, f"data source uid {ds['uid']} is provisioned twice"
            out[ds["uid"]] = ds
    return out


def boards() -> list[tuple[str, dict]]:
    return [(p.name, json.loads(p.read_text("utf-8"))) for p in DASHBOARDS]


def test_both_dashboards_are_there():
    assert {name for name, _ in boards()} == {"operators.json", "analysts.json"}


@pytest.mark.parametrize("name", ["operators.json", "analysts.json"])
def test_the_dashboard_has_what_grafana_needs(name):
    board = dict(boards())[name]
    for key in ("uid", "title", "schemaVersion", "panels", "templating", "time", "version"):
        assert key in board, key
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", board["uid"])
    assert 36 <= board["schemaVersion"] <= 41
    assert board["panels"], "no panels"
    assert board["editable"] is False, "provisioned dashboards cannot be saved from the UI"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"


def test_uids_and_titles_are_unique():
    uids = [b["uid"] for _, b in boards()]
    titles = [b["title"] for _, b in boards()]
    assert len(set(uids)) == len(uids) and len(set(titles)) == len(titles)


@pytest.mark.parametrize("name", ["operators.json", "analysts.json"])
def test_the_layout_fits_the_grid_without_overlaps(name):
    panels = dict(boards())[name]["panels"]
    cells = []
    for p in panels:
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in "hwxy"), p["title"]
        assert g["w"] >= 1 and g["h"] >= 1 and g["x"] >= 0 and g["y"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        cells.append((p["title"], g))
    for (a, ga), (b, gb) in itertools.combinations(cells, 2):
        apart = (ga["x"] + ga["w"] <= gb["x"] or gb["x"] + gb["w"] <= ga["x"]
                 or ga["y"] + ga["h"] <= gb["y"] or gb["y"] + gb["h"] <= ga["y"])
        assert apart, f"panels {a!r} and {b!r} overlap"


def _variables(board: dict) -> set[str]:
    return {v["name"] for v in board["templating"]["list"]}


def _used_variables(text: str) -> set[str]:
    """$name and ${name} (or ${name:format}) references."""
    return {a or b for a, b in re.findall(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", text)}


@pytest.mark.parametrize("name", ["operators.json", "analysts.json"])
def test_every_panel_has_a_provisioned_data_source_and_queries(name):
    board = dict(boards())[name]
    sources = datasources()
    defined = _variables(board) | BUILTIN_VARIABLES
    for p in board["panels"]:
        assert p["type"] in PANEL_TYPES, f"{p['title']}: unknown panel type {p['type']}"
        assert p.get("title") and p.get("description"), f"panel {p['id']} needs a title and a description"
        ds = p.get("datasource")
        assert ds and ds["uid"] in sources and ds["type"] == sources[ds["uid"]]["type"], p["title"]
        targets = p.get("targets")
        assert targets, f"{p['title']}: no queries"
        refs = [t["refId"] for t in targets]
        assert len(refs) == len(set(refs)), f"{p['title']}: refIds repeat"
        for t in targets:
            assert t["datasource"] == ds, f"{p['title']} {t['refId']}: another data source than the panel's"
            if ds["type"] == "prometheus":
                assert t["expr"].strip(), f"{p['title']} {t['refId']}: empty query"
                text = t["expr"]
            else:
                assert t["url"].strip(), f"{p['title']} {t['refId']}: no URL"
                text = t["url"]
            for var in _used_variables(text) | _used_variables(p["title"]):
                assert var in defined, f"{p['title']}: ${var} is not a variable of the dashboard"
        if "repeat" in p:
            assert p["repeat"] in _variables(board)


def test_variables_query_the_provisioned_prometheus():
    sources = datasources()
    for _, board in boards():
        for v in board["templating"]["list"]:
            assert v["type"] == "query" and v["datasource"]["uid"] in sources
            assert v["query"]["query"].startswith("label_values(")


def test_every_promql_query_parses(tmp_path):
    """promtool parses each dashboard query (Grafana's variables replaced by plausible values)."""
    promtool = require("promtool")
    subst = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "6h", "$instance": ".*", "$partner": ".*"}
    rules = []
    for i, (board, where, expr) in enumerate(dashboard_queries()):
        for var, value in subst.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, f"{board} {where}: unhandled variable in {expr}"
        rules.append({"record": f"dashboard:query_{i}:check", "expr": expr, "labels": {"where": f"{board} {where}"}})
    assert len(rules) > 30
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_json_queries_read_the_worker_alerts_page_and_real_alert_fields():
    fields = {f.name for f in dataclasses.fields(Alert)}
    sources = datasources()
    seen = 0
    for _, board in boards():
        for p in board["panels"]:
            for t in p["targets"]:
                if t["datasource"]["type"] != "yesoreyeram-infinity-datasource":
                    continue
                seen += 1
                assert sources[t["datasource"]["uid"]]["type"] == "yesoreyeram-infinity-datasource"
                assert t["url"] == "http://${worker}/alerts" and p.get("repeat") == "worker"
                assert (t["type"], t["source"], t["format"], t["parser"]) == ("json", "url", "table", "backend")
                texts = set()
                for c in t["columns"]:
                    assert c["selector"] in fields, f"{p['title']}: the alert record has no field {c['selector']!r}"
                    texts.add(c["text"])
                for tr in p.get("transformations", []):
                    if tr["id"] == "groupBy":
                        assert set(tr["options"]["fields"]) <= texts, f"{p['title']}: groupBy names unknown columns"
                    if tr["id"] == "organize":
                        named = set(tr["options"].get("excludeByName", {}))
                        assert named <= texts, f"{p['title']}: organize names unknown columns {named - texts}"
    assert seen >= 2
    worker_var = [v for _, b in boards() for v in b["templating"]["list"] if v["name"] == "worker"]
    assert worker_var and 'up{job="transitwatch-worker"}' in worker_var[0]["query"]["query"]


def test_the_analysts_see_hub_tier_severity_lanes_and_delivery():
    board = dict(boards())["analysts.json"]
    exprs = " ".join(t.get("expr", "") + t.get("url", "") for p in board["panels"] for t in p["targets"])
    for wanted in ("by (partner)", "by (chpl_tier)", "by (severity)", "/alerts", "transitwatch_notify_deliveries_total"):
        assert wanted in exprs, wanted


def test_the_operators_see_what_the_issue_asks_for():
    board = dict(boards())["operators.json"]
    exprs = " ".join(t["expr"] for p in board["panels"] for t in p["targets"])
    for wanted in ("transitwatch_records_consumed_total", "by (reason) (rate(transitwatch_records_rejected_total",
                   "transitwatch_consumer_lag_messages", "transitwatch_event_time_lag_seconds",
                   "histogram_quantile(0.5, sum by (le) (rate(transitwatch_processing_latency_seconds_bucket",
                   "histogram_quantile(0.99, sum by (le) (rate(transitwatch_processing_latency_seconds_bucket",
                   "transitwatch_series_in_state", "by (receiver_type, outcome)"):
        assert wanted in exprs, wanted


def test_provisioning_matches_the_compose_mounts():
    grafana = load_yaml(COMPOSE)["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"] if v.startswith("./")}
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    provider = load_yaml(GRAFANA / "provisioning" / "dashboards" / "transitwatch.yml")["providers"][0]
    target = provider["options"]["path"]
    assert mounts[target] == "./deploy/grafana/dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(target + "/") and (ROOT / "deploy/grafana/dashboards" / home.rsplit("/", 1)[1]).is_file()


def test_data_sources_point_at_the_stack_and_the_plugin_is_pinned():
    sources = datasources()
    services = load_yaml(COMPOSE)["services"]
    prom = sources["transitwatch-prometheus"]
    assert prom["url"] == "http://prometheus:9090" and prom["isDefault"] is True
    assert prom["jsonData"]["timeInterval"] == load_yaml(DEPLOY / "prometheus" / "prometheus.yml")["global"]["scrape_interval"]
    assert sources["transitwatch-alertmanager"]["url"] == "http://alertmanager:9093"
    plugin = services["grafana"]["environment"]["GF_PLUGINS_PREINSTALL_SYNC"]
    m = re.fullmatch(r"([\w-]+)@\$\{GRAFANA_INFINITY_VERSION:-(\d+\.\d+\.\d+)\}", plugin)
    assert m, f"the Infinity plugin is not pinned: {plugin}"
    assert sources["transitwatch-worker-alerts"]["type"] == m.group(1)
