"""Fixtures that start real services on loopback for the integration tests.

In CI (``CI`` set in the environment) a service that cannot start fails the
run; elsewhere the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import os

import pytest

from tests.integration.broker import BrokerError, KafkaBroker


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory):
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"))
    try:
        broker.start()
    except BrokerError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Kafka broker for the integration tests: {exc}")
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory: pytest.TempPathFactory):
    """A real Alertmanager on a free loopback port (the notifier's Alertmanager receiver)."""
    from tests.integration.alertmanager import Alertmanager, AlertmanagerError

    server = Alertmanager(tmp_path_factory.mktemp("alertmanager"))
    try:
        server.start()
    except AlertmanagerError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Alertmanager for the integration tests: {exc}")
    yield server
    server.stop()
