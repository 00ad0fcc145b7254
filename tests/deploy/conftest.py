"""Fixtures of the deployment tests.

``kafka``: a real single-node Kafka broker (tests/integration/broker.py) for the topic
initialiser's test, started for that module only so it does not run beside the integration
tests' broker; skipped without Java and Maven, except in CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import os

import pytest

from tests.integration.broker import BrokerError, KafkaBroker


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory):
    broker = KafkaBroker(tmp_path_factory.mktemp("deploy-kafka"))
    try:
        broker.start()
    except BrokerError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Kafka broker for the topic initialiser's test: {exc}")
    yield broker
    broker.stop()
