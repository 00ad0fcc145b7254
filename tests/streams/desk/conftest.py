"""Fixtures of the desk's browser tests: the sample's alerts (one replay a session), the desk as
a process, headless Chromium. Without chromium the browser tests skip, except in CI (``CI`` set),
where they fail."""

from __future__ import annotations

import os

import pytest

from tests.streams.desk.browser import (
    BrowserMissing,
    DeskProcess,
    chromium,
    sample_alerts,
)


@pytest.fixture(scope="session")
def browser():
    try:
        driver = chromium()
    except BrowserMissing as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def alerts_file(tmp_path_factory, browser):
    return sample_alerts(tmp_path_factory.mktemp("desk-sample"))


@pytest.fixture
def desk(alerts_file, tmp_path):
    """A desk over the sample's alerts with a fresh feedback file; ``desk.restart()`` keeps it."""
    process = DeskProcess(alerts_file, tmp_path / "feedback.sqlite")
    process.start()
    yield process
    process.stop()
