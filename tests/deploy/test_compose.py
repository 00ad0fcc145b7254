"""docker-compose.yml: valid against the Compose Specification, complete, and consistent with
the settings, the scripts and the files it mounts. No Docker engine needed."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from tests.deploy.tools import COMPOSE, DEPLOY, ROOT, load_yaml

# The Compose Specification's JSON Schema, as vendored by check-jsonschema 0.39.0
# (`--builtin-schema vendor.compose-spec`); tests/deploy/schemas/README.md says how to update it.
SCHEMA = Path(__file__).with_name("schemas") / "compose-spec.json"
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}")


def compose() -> dict:
    return load_yaml(COMPOSE)


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's variable substitution, with an empty environment unless given one."""
    env = env or {}

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        current = env.get(name)
        if op == ":-":
            return current if current else interpolate(arg, env)
        if op == "-":
            return current if current is not None else interpolate(arg, env)
        if op in (":?", "?"):
            if not current:
                raise KeyError(f"{name} is required: {arg}")
            return current
        if op in (":+", "+"):
            return interpolate(arg, env) if current else ""
        return current or ""

    return _VAR.sub(one, value.replace("$$", "\0")).replace("\0", "$")


def _resolved(node):
    if isinstance(node, dict):
        return {k: _resolved(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolved(v) for v in node]
    return interpolate(node) if isinstance(node, str) else node


def test_the_vendored_schema_is_the_pinned_one():
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256


@pytest.mark.parametrize("resolved", [False, True], ids=["as-written", "defaults-substituted"])
def test_the_compose_file_is_valid_against_the_compose_specification(resolved):
    validator = Draft202012Validator(json.loads(SCHEMA.read_text("utf-8")))
    doc = _resolved(compose()) if resolved else compose()
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_check_catches_a_mistake():
    validator = Draft202012Validator(json.loads(SCHEMA.read_text("utf-8")))
    broken = compose()
    broken["services"]["worker"]["depends_on"]["kafka-init"]["condition"] = "service_finished"
    broken["services"]["notifier"]["restart_policy"] = "always"
    assert len(list(validator.iter_errors(broken))) >= 2


def test_docker_compose_accepts_the_file(tmp_path):
    """Debian's docker-compose 1.29 parses and resolves the file (skipped where it is missing)."""
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (apt-get install -y docker-compose)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRANSITWATCH_", "ALERTMANAGER_", "DEPLOY_"))}
    empty = tmp_path / "empty.env"  # not the developer's .env: the defaults must do
    empty.write_text("")
    done = subprocess.run([tool, "--env-file", str(empty), "-f", str(COMPOSE), "config", "-q"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_variable_has_a_default_so_no_env_file_is_needed():
    for m in _VAR.finditer(COMPOSE.read_text("utf-8")):
        assert m.group(2) == ":-", f"${{{m.group(1)}}} has no default"


def test_builds_and_mounted_files_exist():
    doc = _resolved(compose())
    named = set(doc.get("volumes", {}))
    for name, svc in doc["services"].items():
        build = svc.get("build")
        if build:
            context = ROOT / (build["context"] if isinstance(build, dict) else build)
            assert context.is_dir(), f"{name}: build context {context} is missing"
            dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
            assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith((".", "/")):
                path = (ROOT / source).resolve()
                assert path.exists(), f"{name}: mounts {source}, which does not exist"
                assert ROOT in path.parents or path == ROOT, f"{name}: mounts {source} from outside the repository"
            else:
                assert source in named, f"{name}: volume {source} is not declared"


def test_images_are_pinned_and_kafka_matches_the_tested_broker():
    from tests.integration.broker import KAFKA_VERSION

    for name, svc in compose()["services"].items():
        image = svc["image"]
        if "build" in svc or image.startswith("${TRANSITWATCH_IMAGE"):
            assert image == "${TRANSITWATCH_IMAGE:-transitwatch:local}", name
            continue
        repo, _, tag = image.rpartition(":")
        assert repo and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned to a version"
    assert compose()["services"]["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert compose()["services"]["kafka-init"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    pom = (Path(__file__).with_name("kafka") / "pom.xml").read_text()
    assert f"<kafka.version>{KAFKA_VERSION}</kafka.version>" in pom


def test_dependencies_exist_and_wait_for_what_they_need():
    services = compose()["services"]
    for name, svc in services.items():
        for dep, how in svc.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on an undefined service {dep}"
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy, which has no healthcheck"
    assert services["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for app in ("worker", "notifier"):
        assert services[app]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    assert services["kafka-init"]["restart"] == "no"


def test_the_worker_can_be_scaled():
    services = compose()["services"]
    assert not any("container_name" in svc for svc in services.values())
    worker = services["worker"]
    assert "ports" not in worker and "network_mode" not in worker and "hostname" not in worker
    assert not any(isinstance(v, str) and not v.startswith(("${", ".", "/")) for v in worker.get("volumes", []))


def test_published_ports_bind_to_the_configured_address():
    for name, svc in compose()["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("${BIND_ADDRESS:-127.0.0.1}:"), f"{name}: {port} binds to every interface"


def _service_env(name: str) -> dict[str, str]:
    env = compose()["services"][name]["environment"]
    return {k: interpolate(str(v)) for k, v in env.items()}


@pytest.mark.parametrize("service", ["worker", "notifier", "kafka-init"])
def test_transitwatch_variables_are_settings_with_the_same_defaults(service, monkeypatch):
    from transitwatch.streams.settings import Settings

    fields = Settings.model_fields
    raw = compose()["services"][service]["environment"]
    env = _service_env(service)
    for key, value in raw.items():
        if not key.startswith("TRANSITWATCH_") or key.startswith("TRANSITWATCH_SECRETS__"):
            continue
        field = key.removeprefix("TRANSITWATCH_").lower()
        assert field in fields, f"{service}: {key} is not a setting (streams/settings.py)"
        m = re.fullmatch(rf"\$\{{{key}:-(.*)\}}", str(value))
        if m:
            default = fields[field].default
            assert str(default) == m.group(1), f"{key}: compose default {m.group(1)!r}, settings {default!r}"
    if service == "kafka-init":
        return
    for key in list(os.environ):
        if key.startswith("TRANSITWATCH_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)  # the container's environment parses, and means what it says
    assert settings.bootstrap_servers == "kafka:9092"
    if service == "worker":
        assert (settings.web_host, settings.web_port) == ("0.0.0.0", 6066)
    else:
        assert (settings.notify_web_host, settings.notify_web_port) == ("0.0.0.0", 6067)


def test_the_stack_agrees_on_topics_and_partitions():
    keys = [k for k in _service_env("worker") if k.endswith("_TOPIC") or k in ("TRANSITWATCH_PARTITIONS",
                                                                                  "TRANSITWATCH_APP_ID")]
    assert len(keys) >= 7
    for service in ("notifier", "kafka-init"):
        other = _service_env(service)
        for key in keys:
            assert other[key] == _service_env("worker")[key], f"{service}: {key}"
    assert _service_env("kafka")["KAFKA_NUM_PARTITIONS"] == _service_env("worker")["TRANSITWATCH_PARTITIONS"]


def test_kafka_init_gets_every_variable_its_script_reads():
    script = (DEPLOY / "kafka" / "create-topics.sh").read_text()
    wanted = set(re.findall(r"\$\((?:need|number) ([A-Z_]+)", script))
    assert {"DEPLOY_BROKER", "TRANSITWATCH_PARTITIONS", "TOPIC_RETENTION_ALERTS_MS"} <= wanted
    env = _service_env("kafka-init")
    missing = wanted - set(env) - {"KAFKA_INIT_ATTEMPTS"}
    assert not missing, f"kafka-init does not pass {missing}"
    mounts = compose()["services"]["kafka-init"]["volumes"]
    entry = compose()["services"]["kafka-init"]["entrypoint"]
    assert any(m.startswith("./deploy/kafka/create-topics.sh:" + entry[1] + ":") for m in mounts)


def test_the_notifier_configuration_of_the_stack_loads_and_needs_no_missing_secret():
    from transitwatch.streams.notify.config import NotifyConfig

    svc = compose()["services"]["notifier"]
    source = interpolate(svc["volumes"][0]).split(":")[0]
    config = NotifyConfig.from_toml((ROOT / source).read_text("utf-8"))
    passed = {k.removeprefix("TRANSITWATCH_SECRETS__").lower() for k in svc["environment"]
              if k.startswith("TRANSITWATCH_SECRETS__")}
    assert config.secret_names() <= passed
    # Out of the box, every alert reaches the mail catcher of the stack.
    receivers = {r.name: r for r in config.receivers.values()}
    root = receivers[config.route.receiver]
    assert (root.type, root.host, root.port) == ("email", "mailpit", 1025)


def test_healthcheck_urls_match_the_ports():
    services = compose()["services"]
    assert services["worker"]["environment"]["HEALTHCHECK_URL"] == (
        f"http://127.0.0.1:{services['worker']['environment']['TRANSITWATCH_WEB_PORT']}/ready")
    assert services["notifier"]["environment"]["HEALTHCHECK_URL"] == (
        f"http://127.0.0.1:{services['notifier']['environment']['TRANSITWATCH_NOTIFY_WEB_PORT']}/ready")


def test_interpolate():
    assert interpolate("${A:-x}") == "x"
    assert interpolate("${A:-x}", {"A": "y"}) == "y"
    assert interpolate("${A:--1}") == "-1"
    assert interpolate("a$${B}") == "a${B}"
    assert interpolate("${A-}") == ""
    with pytest.raises(KeyError):
        interpolate("${A:?set A}")
