"""deploy/alertmanager: the rendered configuration, its secrets, routing and inhibition.

The entrypoint runs under busybox here, as in the prom/alertmanager image; amtool checks what it
renders; a real Alertmanager (Debian's) on loopback proves the inhibition and delivers to a
local SMTP server and a local stand-in for a Slack webhook.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import stat
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.deploy.tools import COMPOSE, DEPLOY, free_port, load_yaml, require

AM_DIR = DEPLOY / "alertmanager"
ENTRYPOINT = AM_DIR / "entrypoint.sh"
TEMPLATE = AM_DIR / "alertmanager.yml"
APPLETS = ("sh", "awk", "grep", "mkdir", "cat", "printf", "echo", "env", "sed", "head")
WEBHOOK = "https://hooks.slack.com/services/T000/B000/not-a-real-secret-1234"


def compose_defaults() -> dict[str, str]:
    """The ALERTMANAGER_* environment docker-compose.yml gives the container, with defaults."""
    env = load_yaml(COMPOSE)["services"]["alertmanager"]["environment"]
    out = {}
    for name, value in env.items():
        m = re.fullmatch(r"\$\{(\w+):-(.*)\}", str(value))
        out[name] = m.group(2) if m else str(value)
    return out


class Rendered:
    def __init__(self, done: subprocess.CompletedProcess[str], workdir: Path) -> None:
        self.returncode, self.stderr = done.returncode, done.stderr
        self.config_path = workdir / "secrets" / "alertmanager.yml"
        self.secrets = workdir / "secrets"
        record = workdir / "exec.txt"
        self.exec_args, self.exec_env = [], {}
        if record.exists():
            args, _, env = record.read_text().partition("--ENV--\n")
            self.exec_args = args.splitlines()
            self.exec_env = dict(line.split("=", 1) for line in env.splitlines() if "=" in line)

    @property
    def text(self) -> str:
        return self.config_path.read_text()

    @property
    def config(self) -> dict:
        return yaml.safe_load(self.text)


def render(tmp_path: Path, **env: str | None) -> Rendered:
    """Run the entrypoint as the image does, with ALERTMANAGER_BIN recording what it was given."""
    busybox = require("busybox")
    tmp_path.mkdir(parents=True, exist_ok=True)
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for applet in APPLETS:
        link = bindir / applet
        if not link.exists():
            link.symlink_to(busybox)
    recorder = tmp_path / "record-exec"
    recorder.write_text(f'#!{busybox} sh\n{{ printf "%s\\n" "$@"; echo "--ENV--"; env; }} > "{tmp_path}/exec.txt"\n')
    recorder.chmod(0o755)
    environ = {"PATH": str(bindir), **compose_defaults(),
               "ALERTMANAGER_SECRETS_DIR": str(tmp_path / "secrets"),
               "ALERTMANAGER_TEMPLATE": str(TEMPLATE), "ALERTMANAGER_BIN": str(recorder)}
    for name, value in env.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    done = subprocess.run([busybox, "sh", str(ENTRYPOINT), "--storage.path=/alertmanager", "--cluster.listen-address="],
                          env=environ, capture_output=True, text=True, timeout=30)
    return Rendered(done, tmp_path)


def amtool_check(path: Path) -> None:
    done = subprocess.run([require("amtool"), "check-config", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_compose_defaults_render_an_email_only_configuration(tmp_path):
    r = render(tmp_path)
    assert r.returncode == 0, r.stderr
    assert "no Slack webhook configured" in r.stderr
    amtool_check(r.config_path)
    config = r.config
    receiver = config["receivers"][0]
    assert receiver["name"] == "ops" and "slack_configs" not in receiver
    assert receiver["email_configs"][0]["to"] == "ops@transitwatch.local"
    assert config["global"]["smtp_smarthost"] == "mailpit:1025"
    assert config["global"]["smtp_require_tls"] is False
    assert not re.search(r"\$\{[A-Z_]", r.text), "a placeholder was left in the rendered file"
    # Alertmanager got the rendered file and the container's flags.
    assert r.exec_args == [f"--config.file={r.config_path}", "--storage.path=/alertmanager", "--cluster.listen-address="]


def test_a_webhook_turns_slack_on_and_stays_out_of_the_config_and_the_environment(tmp_path):
    r = render(tmp_path, ALERTMANAGER_SLACK_WEBHOOK_URL=WEBHOOK, ALERTMANAGER_SMTP_PASSWORD="hunter2-secret",
               ALERTMANAGER_SLACK_CHANNEL="#transitwatch-ops",
               ALERTMANAGER_RUNBOOK_BASE_URL="https://git.example.org/transitwatch/blob/main/")
    assert r.returncode == 0, r.stderr
    amtool_check(r.config_path)
    slack = r.config["receivers"][0]["slack_configs"][0]
    assert slack["api_url_file"] == str(r.secrets / "slack_webhook_url")
    assert slack["channel"] == "#transitwatch-ops"
    assert "https://git.example.org/transitwatch/blob/main/{{ .Annotations.runbook_url }}" in slack["text"]
    assert (r.secrets / "slack_webhook_url").read_text() == WEBHOOK
    assert (r.secrets / "smtp_password").read_text() == "hunter2-secret"
    for secret in ("slack_webhook_url", "smtp_password", "alertmanager.yml"):
        assert stat.S_IMODE((r.secrets / secret).stat().st_mode) == 0o600, secret
    assert WEBHOOK not in r.text and "hunter2-secret" not in r.text
    assert not {k for k in r.exec_env if "WEBHOOK" in k or "PASSWORD" in k}, "a secret reached Alertmanager's environment"
    assert WEBHOOK not in "".join(r.exec_env.values())


def test_secrets_can_come_from_files(tmp_path):
    hook = tmp_path / "hook"
    hook.write_text(WEBHOOK + "\n")
    r = render(tmp_path / "run", ALERTMANAGER_SLACK_WEBHOOK_URL_FILE=str(hook))
    assert r.returncode == 0, r.stderr
    assert (r.secrets / "slack_webhook_url").read_text() == WEBHOOK
    assert "slack_configs" in r.config["receivers"][0]
    both = render(tmp_path / "both", ALERTMANAGER_SLACK_WEBHOOK_URL=WEBHOOK, ALERTMANAGER_SLACK_WEBHOOK_URL_FILE=str(hook))
    assert both.returncode != 0 and "not both" in both.stderr


@pytest.mark.parametrize(("name", "value", "says"), [
    ("ALERTMANAGER_SMTP_SMARTHOST", "mailpit", "host:port"),
    ("ALERTMANAGER_SMTP_SMARTHOST", "mail pit:25", "host:port"),
    ("ALERTMANAGER_SMTP_REQUIRE_TLS", "yes", "true or false"),
    ("ALERTMANAGER_EMAIL_TO", "ops@x.org'\n  bcc: evil@x.org", "one line"),
    ("ALERTMANAGER_EMAIL_TO", "nobody", "recipient"),
    ("ALERTMANAGER_EMAIL_FROM", "a'b@x.org", "sender"),
    ("ALERTMANAGER_RUNBOOK_BASE_URL", "https://x.org/{{ .Foo }}", "URL"),
    ("ALERTMANAGER_SLACK_CHANNEL", "#ops channel", "#transitwatch-ops"),
    ("ALERTMANAGER_SLACK_WEBHOOK_URL", "hooks.slack.com/services/x", "https://"),
    ("ALERTMANAGER_EMAIL_TO", None, "is not set"),
])
def test_a_bad_setting_stops_the_container_with_a_message(tmp_path, name, value, says):
    r = render(tmp_path, **{name: value})
    assert r.returncode != 0
    assert says in r.stderr and name in r.stderr
    assert not r.exec_args, "Alertmanager was started anyway"
    if value and "slack" in value:
        assert value not in r.stderr, "the rejected webhook URL was printed"


def test_the_template_only_names_settings_compose_passes():
    placeholders = set(re.findall(r"\$\{([A-Z0-9_]+)\}", TEMPLATE.read_text()))
    assert placeholders, "the template has no placeholders"
    env = load_yaml(COMPOSE)["services"]["alertmanager"]["environment"]
    assert placeholders <= set(env), f"not passed by docker-compose.yml: {placeholders - set(env)}"
    assert not {p for p in placeholders if "WEBHOOK" in p or "PASSWORD" in p}, "a secret would be rendered in"


def test_critical_and_warning_alerts_route_to_ops(tmp_path):
    r = render(tmp_path, ALERTMANAGER_SLACK_WEBHOOK_URL=WEBHOOK)
    amtool = require("amtool")
    for labels in (["alertname=TransitwatchWorkerDown", "severity=critical", "service=transitwatch"],
                   ["alertname=TransitwatchConsumerLagGrowing", "severity=warning", "service=transitwatch"],
                   ["alertname=Something", "severity=info"]):
        done = subprocess.run([amtool, "config", "routes", "test", f"--config.file={r.config_path}",
                               "--verify.receivers=ops", *labels], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stdout + done.stderr


# -- a live Alertmanager on loopback ------------------------------------------------------------


class _Webhook(BaseHTTPRequestHandler):
    received: list[tuple[str, dict]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _http(url: str, data: object | None = None) -> object:
    req = urllib.request.Request(url, method="POST" if data is not None else "GET",
                                 data=None if data is None else json.dumps(data).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        body = resp.read()
    return json.loads(body) if body else None


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[dict]:
    binary = require("prometheus-alertmanager")
    from aiosmtpd.controller import Controller

    work = tmp_path_factory.mktemp("alertmanager")
    mailbox = _Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    _Webhook.received = []
    http = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{http.server_address[1]}/services/T1/B1/secret-path"
    r = render(work / "render", ALERTMANAGER_SLACK_WEBHOOK_URL=hook,
               ALERTMANAGER_SMTP_SMARTHOST=f"127.0.0.1:{smtp.port}",
               ALERTMANAGER_RUNBOOK_BASE_URL="https://git.example.org/tw/blob/main/")
    assert r.returncode == 0, r.stderr
    # The rendered file as it is, but a group waits 1 s instead of 30 s so the test is quick.
    config = r.text.replace("group_wait: 30s", "group_wait: 1s")
    assert config != r.text
    path = work / "alertmanager.yml"
    path.write_text(config)
    port = free_port()
    log = open(work / "alertmanager.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([binary, f"--config.file={path}", f"--storage.path={work / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            try:
                urllib.request.urlopen(f"{base}/-/ready", timeout=1).close()
                return True
            except OSError:
                assert proc.poll() is None, (work / "alertmanager.log").read_text()
                return False
        _wait(up, 30, "Alertmanager to start")
        yield {"base": base, "mailbox": mailbox, "webhook": _Webhook, "hook_path": "/services/T1/B1/secret-path"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        http.shutdown()
        smtp.stop()


def _alert(name: str, severity: str, job: str, **labels: str) -> dict:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, "severity": severity, "service": "transitwatch", "job": job, **labels},
        "annotations": {"summary": f"{name} summary", "description": f"{name} description",
                        "runbook_url": f"docs/operations.md#{name.lower()}"},
        "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
    }


def test_worker_down_inhibits_the_lag_alerts_of_its_job_only(live):
    base = live["base"]
    _http(f"{base}/api/v2/alerts", [
        _alert("TransitwatchWorkerDown", "critical", "transitwatch-worker", instance="10.0.0.5:6066"),
        _alert("TransitwatchConsumerLagGrowing", "warning", "transitwatch-worker", kind="declarations"),
        _alert("TransitwatchEventTimeLagHigh", "warning", "transitwatch-worker", instance="10.0.0.6:6066"),
        _alert("TransitwatchConsumerLagGrowing", "warning", "transitwatch-worker-other", kind="monthly"),
        _alert("TransitwatchDeliveryFailures", "warning", "transitwatch-notifier", receiver_type="slack"),
    ])

    def states() -> dict | None:
        alerts = _http(f"{base}/api/v2/alerts?active=true&silenced=true&inhibited=true")
        got = {(a["labels"]["alertname"], a["labels"]["job"]): a["status"] for a in alerts}
        return got if len(got) == 5 and got[("TransitwatchConsumerLagGrowing", "transitwatch-worker")]["state"] == "suppressed" else None

    got = _wait(states, 15, "the lag alert to be inhibited")
    down = [a for a in _http(f"{base}/api/v2/alerts") if a["labels"]["alertname"] == "TransitwatchWorkerDown"][0]
    assert got[("TransitwatchConsumerLagGrowing", "transitwatch-worker")]["inhibitedBy"] == [down["fingerprint"]]
    assert got[("TransitwatchEventTimeLagHigh", "transitwatch-worker")]["state"] == "suppressed"
    assert got[("TransitwatchWorkerDown", "transitwatch-worker")]["state"] == "active"
    assert got[("TransitwatchConsumerLagGrowing", "transitwatch-worker-other")]["state"] == "active"
    assert got[("TransitwatchDeliveryFailures", "transitwatch-notifier")]["state"] == "active"


def test_an_alert_reaches_email_and_slack_through_the_secret_files(live):
    _http(f"{live['base']}/api/v2/alerts", [
        _alert("TransitwatchAlertsUndelivered", "critical", "transitwatch-notifier", receiver_type="email")])

    def mail():
        return [m for m in live["mailbox"].messages if "TransitwatchAlertsUndelivered" in m["Subject"]]

    message = _wait(mail, 30, "the email")[0]
    assert message["Subject"] == "[FIRING:1] TransitwatchAlertsUndelivered (critical, transitwatch-notifier)"
    assert message["To"] == "ops@transitwatch.local"
    text = message.get_body(("plain",)).get_content()
    assert "TransitwatchAlertsUndelivered summary" in text
    assert "Runbook: https://git.example.org/tw/blob/main/docs/operations.md#transitwatchalertsundelivered" in text

    def posted():
        return [body for path, body in live["webhook"].received
                if "TransitwatchAlertsUndelivered" in json.dumps(body)]

    body = _wait(posted, 30, "the Slack post")[0]
    paths = {path for path, _ in live["webhook"].received}
    assert paths == {live["hook_path"]}, "Alertmanager did not post to the webhook URL of the secret file"
    attachment = body["attachments"][0]
    assert attachment["title"] == "[FIRING:1] TransitwatchAlertsUndelivered"
    assert "*critical* TransitwatchAlertsUndelivered summary" in attachment["text"]
    assert "<https://git.example.org/tw/blob/main/docs/operations.md#transitwatchalertsundelivered|Runbook>" in attachment["text"]
