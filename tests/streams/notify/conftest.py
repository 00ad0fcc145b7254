"""Fixtures for the notifier's unit tests."""

from __future__ import annotations

import pytest

from tests.streams.notify.notify_helpers import FakeClock, make_alert


@pytest.fixture
def alert():
    return make_alert


@pytest.fixture
def clock():
    return FakeClock()
