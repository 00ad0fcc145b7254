"""Fixtures that start real services on loopback for the integration tests.

In CI (``CI`` set in the environment) a service that cannot start fails the
run; elsewhere the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import pytest

from tests.integration.broker import BrokerError, KafkaBroker
from tests.integration.services import running


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory):
    with running(KafkaBroker(tmp_path_factory.mktemp("kafka")), BrokerError,
                 "Kafka broker for the integration tests") as broker:
        yield broker


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory: pytest.TempPathFactory):
    """A real Alertmanager on a free loopback port (the notifier's Alertmanager receiver)."""
    from tests.integration.alertmanager import Alertmanager, AlertmanagerError

    with running(Alertmanager(tmp_path_factory.mktemp("alertmanager")), AlertmanagerError,
                 "Alertmanager for the integration tests") as server:
        yield server
