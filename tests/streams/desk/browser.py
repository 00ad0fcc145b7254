"""The desk as a real process and headless Chromium driven by selenium, for the browser tests
and ``benchmarks/desk.py``.

``sample_alerts`` replays the shipped sample once with the command line; :class:`DeskProcess`
runs ``transitwatch desk`` on a free loopback port; :func:`chromium` starts Debian's chromium
through its chromedriver. A missing chromium raises :class:`BrowserMissing` (the tests skip on
it outside CI); any other failure is an error.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "transitwatch" / "data" / "eurostat_chpl_exports_2020_2022.jsonl.gz"
SAMPLE_CONFIG = ROOT / "transitwatch" / "data" / "eurostat.toml"
AXE = Path(__file__).with_name("vendor") / "axe-core" / "axe.min.js"


class DeskError(RuntimeError):
    """The desk process did not start or answer; the message holds its output."""


class BrowserMissing(RuntimeError):
    """Debian's chromium or chromium-driver is not installed."""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sample_alerts(folder: Path) -> Path:
    """The alert records of the shipped sample, written by ``transitwatch replay --alerts-out``."""
    out = folder / "alerts.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "transitwatch.streams.cli", "replay", str(SAMPLE), "--config", str(SAMPLE_CONFIG),
         "--alerts-out", str(out), "--quiet"], capture_output=True, text=True, env=_env(), timeout=600)
    if done.returncode != 0:
        raise DeskError(f"the replay of the sample failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return out


class DeskProcess:
    """``transitwatch desk --alerts ALERTS --feedback FEEDBACK`` on a free loopback port."""

    def __init__(self, alerts: Path, feedback: Path, *extra: str) -> None:
        self.alerts, self.feedback, self.extra = alerts, feedback, list(extra)
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "transitwatch.streams.cli", "desk", "--alerts", str(self.alerts),
             "--feedback", str(self.feedback), "--port", str(self.port), *self.extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise DeskError(f"the desk exited with {self._proc.returncode}:\n{self._proc.stdout.read()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.stop()
        raise DeskError("the desk did not answer /healthz within 60 s")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None


def chromium():
    """A headless Chromium driven by Debian's chromedriver (selenium)."""
    binary = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        raise BrowserMissing("install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,1000", "--disable-extensions"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    browser.set_page_load_timeout(60)
    browser.set_script_timeout(60)
    return browser


def axe_violations(browser, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict]:
    """axe-core's violations of the page loaded, of the given impacts."""
    browser.execute_script(AXE.read_text(encoding="utf-8"))
    result = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations), e => done({error: String(e)}));")
    if isinstance(result, dict):
        raise AssertionError(f"axe-core failed: {result['error']}")
    return [v for v in result if v.get("impact") in impacts]
