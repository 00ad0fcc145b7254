"""The Dockerfile and .dockerignore, checked without a Docker engine: the base is pinned, the
user is not root, the health check works, the build context holds what the build copies (and
no secret), and the package that `pip install .` builds carries every module and data file."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.deploy.tools import ROOT, free_port

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text("utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last:]


def test_the_base_image_is_a_pinned_slim_python_3_11():
    args = dict(re.match(r"(\w+)=(.*)", rest).groups() for word, rest in instructions() if word == "ARG" and "=" in rest)
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", args["PYTHON_IMAGE"]), args["PYTHON_IMAGE"]
    froms = [rest for word, rest in instructions() if word == "FROM"]
    assert froms and all(f.split()[0] == "${PYTHON_IMAGE}" for f in froms)


def test_it_runs_as_an_unprivileged_user():
    users = [rest for word, rest in final_stage() if word == "USER"]
    assert users, "the final stage has no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, "USER must be a numeric, non-root uid (Kubernetes runAsNonRoot)"
    run = " ".join(rest for word, rest in final_stage() if word == "RUN")
    assert f"--uid {uid}" in run, "the user is not created with that uid"
    entry = [rest for word, rest in final_stage() if word == "ENTRYPOINT"]
    assert json.loads(entry[-1]) == ["transitwatch"]


def test_the_state_directory_belongs_to_that_user():
    env = " ".join(rest for word, rest in final_stage() if word == "ENV")
    state = re.search(r"TRANSITWATCH_STATE_DIR=(\S+)", env).group(1)
    run = " ".join(rest for word, rest in final_stage() if word == "RUN")
    assert f"mkdir -p {state}" in run and "chown -R transitwatch:transitwatch /var/lib/transitwatch" in run


def _healthcheck() -> list[str]:
    checks = [rest for word, rest in final_stage() if word == "HEALTHCHECK"]
    assert len(checks) == 1
    cmd = checks[0][checks[0].index("CMD") + 3:].strip()
    return json.loads(cmd)


def test_the_healthcheck_asks_ready_without_curl():
    argv = _healthcheck()
    assert argv[:2] == ["python", "-c"] and "urllib" in argv[2] and "curl" not in " ".join(argv)
    env = " ".join(rest for word, rest in final_stage() if word == "ENV")
    assert re.search(r"HEALTHCHECK_URL=http://127\.0\.0\.1:6066/ready\b", env)


class _Status(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(type(self).status if self.path == "/ready" else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False), (None, False)],
                         ids=["ready", "restoring", "not-listening"])
def test_the_healthcheck_command_tells_ready_from_not(status, healthy):
    argv = _healthcheck()
    if status is None:
        url = f"http://127.0.0.1:{free_port()}/ready"
        server = None
    else:
        _Status.status = status
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Status)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/ready"
    try:
        done = subprocess.run([sys.executable, *argv[1:]], env={"HEALTHCHECK_URL": url}, capture_output=True,
                              timeout=30)
    finally:
        if server:
            server.shutdown()
    assert (done.returncode == 0) is healthy


# -- the build context ----------------------------------------------------------------------------


def _translate(pattern: str) -> str:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


def ignored(path: str, patterns: list[tuple[bool, str]]) -> bool:
    """Docker's .dockerignore rule: the last pattern that matches the path or a parent wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    result = False
    for negated, pattern in patterns:
        if any(re.fullmatch(_translate(pattern), c) for c in candidates):
            result = not negated
    return result


def dockerignore() -> list[tuple[bool, str]]:
    out = []
    for line in DOCKERIGNORE.read_text("utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            out.append((negated, line.lstrip("!").strip("/")))
    return out


def test_ignored_follows_docker_s_rules():
    patterns = [(False, "*"), (True, "streams"), (False, "**/__pycache__")]
    assert ignored(".env", patterns) and ignored("tests/x.py", patterns)
    assert not ignored("streams/cli.py", patterns)
    assert ignored("streams/__pycache__/cli.cpython-311.pyc", patterns)


def _context_files() -> list[str]:
    files = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT).as_posix()
        if path.is_file() and not rel.startswith(".git/"):
            files.append(rel)
    return files


def test_the_context_holds_what_the_build_copies_and_nothing_secret():
    patterns = dockerignore()
    kept = {f for f in _context_files() if not ignored(f, patterns)}
    copies = [rest.split() for word, rest in instructions() if word == "COPY" and not rest.startswith("--from")]
    assert copies
    for args in copies:
        for source in args[:-1]:
            under = [f for f in kept if f == source or f.startswith(source.rstrip("/") + "/")]
            assert under, f"COPY {source}: nothing of it is in the build context"
    for module in ("streams/cli.py", "streams/service.py", "detectors/data/watch.toml", "pyproject.toml", "README.md"):
        assert module in kept, module
    for secret in (".env", ".git/config", "tests/deploy/test_docker.py", ".venv/bin/python"):
        assert ignored(secret, patterns), f"{secret} would be sent to the Docker daemon"
    assert not [f for f in kept if "__pycache__" in f or f.endswith(".pyc")]


def test_pip_install_dot_carries_every_package_and_data_file(tmp_path):
    """What the image installs: a wheel of the project must hold every module the commands import."""
    # Built as the image builds it: `pip install .`, in an isolated build environment.
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                           "--wheel-dir", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    wheel = next(tmp_path.glob("transitwatch-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = []
    for top in ("detectors", "streams"):
        for path in sorted((ROOT / top).rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            if "__pycache__" in rel or path.is_dir():
                continue
            if path.suffix == ".py" or (rel.startswith("detectors/data/") and path.suffix in (".csv", ".json", ".toml")):
                if rel not in names:
                    missing.append(rel)
    assert not missing, (
        "pip install . (the image) would miss these files; list their packages in pyproject.toml "
        f"[tool.setuptools] packages: {missing}")
    entry = [n for n in names if n.endswith("entry_points.txt")]
    assert entry and "transitwatch = transitwatch.streams.cli:main" in zipfile.ZipFile(wheel).read(entry[0]).decode()


def test_the_image_exposes_the_ports_compose_and_prometheus_use():
    exposed = " ".join(rest for word, rest in final_stage() if word == "EXPOSE").split()
    assert set(exposed) == {"6066", "6067"}
    assert Path(ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text().count("6066") >= 1
