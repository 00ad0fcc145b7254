"""Fixtures of the deployment tests.

``kafka``: a real single-node Kafka broker (tests/integration/broker.py) for the topic
initialiser's test, started for that module only so it does not run beside the integration
tests' broker; skipped without Java and Maven, except in CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import pytest

from tests.integration.broker import BrokerError, KafkaBroker
from tests.integration.services import running


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory):
    with running(KafkaBroker(tmp_path_factory.mktemp("deploy-kafka")), BrokerError,
                 "Kafka broker for the topic initialiser's test") as broker:
        yield broker
