"""A real Alertmanager (Debian's ``prometheus-alertmanager``) on a free loopback port.

Clustering is switched off (``--cluster.listen-address=``), so it listens on one loopback
port and talks to nobody. The configuration routes everything to a receiver with no
integrations: the tests read alerts back from ``GET /api/v2/alerts``.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

CONFIG = """\
route:
  receiver: "null"
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: "null"
"""


class AlertmanagerError(RuntimeError):
    """Alertmanager could not be found or started; the message says why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binary() -> str | None:
    """``alertmanager`` (upstream) or ``prometheus-alertmanager`` (Debian)."""
    return shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")


class Alertmanager:
    """Start with :meth:`start`, stop with :meth:`stop`; ``url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Alertmanager:
        binary = find_binary()
        if binary is None:
            raise AlertmanagerError("alertmanager is not installed (apt-get install prometheus-alertmanager)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "alertmanager.yml"
        config.write_text(CONFIG)
        log = open(self.workdir / "alertmanager.log", "wb")  # noqa: SIM115 - kept open for the process's life
        self.process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AlertmanagerError(f"alertmanager exited with {self.process.returncode}; "
                                        f"see {self.workdir / 'alertmanager.log'}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise AlertmanagerError(f"alertmanager was not ready on {self.url} within {timeout:.0f} s")

    def alerts(self, **filters: str) -> list[dict]:
        """``GET /api/v2/alerts``, optionally filtered by label equality."""
        query = "&".join("filter=" + urllib.parse.quote(f'{k}="{v}"') for k, v in filters.items())
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts?{query}", timeout=5) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
