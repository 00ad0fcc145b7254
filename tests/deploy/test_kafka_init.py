"""deploy/kafka/create-topics.sh (the kafka-init service) against a real Kafka broker.

The script runs under busybox, as in the apache/kafka image; kafka-topics.sh and
kafka-configs.sh are the Kafka 4 tools (org.apache.kafka.tools.TopicCommand and ConfigCommand)
from Maven Central, the version of the broker and of the compose image.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.deploy.tools import DEPLOY, require
from tests.integration.broker import KAFKA_VERSION, BrokerError

pytestmark = pytest.mark.integration

SCRIPT = DEPLOY / "kafka" / "create-topics.sh"
POM = Path(__file__).with_name("kafka") / "pom.xml"


def _tools_lib() -> Path:
    root = os.environ.get("TRANSITWATCH_KAFKA_CACHE") or os.path.expanduser("~/.cache/transitwatch")
    lib = Path(root) / f"kafka-tools-{KAFKA_VERSION}" / "lib"
    if (lib / f"kafka-tools-{KAFKA_VERSION}.jar").exists():
        return lib
    mvn = require("mvn")
    partial = lib.with_name("lib.partial")
    shutil.rmtree(partial, ignore_errors=True)
    done = subprocess.run([mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
                           f"-DoutputDirectory={partial}"], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise BrokerError(f"mvn could not resolve kafka-tools {KAFKA_VERSION}:\n{done.stdout}\n{done.stderr}")
    shutil.rmtree(lib, ignore_errors=True)
    partial.rename(lib)
    return lib


@pytest.fixture(scope="module")
def kafka_bin(tmp_path_factory) -> Path:
    """A bin folder with kafka-topics.sh and kafka-configs.sh as the distribution runs them."""
    java = require("java")
    try:
        lib = _tools_lib()
    except BrokerError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    out = tmp_path_factory.mktemp("kafka-bin")
    for script, main in (("kafka-topics.sh", "org.apache.kafka.tools.TopicCommand"),
                         ("kafka-configs.sh", "org.apache.kafka.tools.ConfigCommand")):
        path = out / script
        path.write_text(f'#!/bin/sh\nexec {java} -Xshare:auto -XX:TieredStopAtLevel=1 -Xmx256m '
                        f'-Dlog4j2.level=error -cp "{lib}/*" {main} "$@"\n')
        path.chmod(0o755)
    return out


def _env(kafka, kafka_bin: Path, prefix: str, partitions: int) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "DEPLOY_BROKER": f"kafka://{kafka.bootstrap}",
        "KAFKA_BIN_DIR": str(kafka_bin),
        "KAFKA_INIT_ATTEMPTS": "3",
        "TRANSITWATCH_PARTITIONS": str(partitions),
        "TRANSITWATCH_REPLICATION": "1",
        "TRANSITWATCH_DECLARATIONS_TOPIC": f"{prefix}.declarations",
        "TRANSITWATCH_MONTHLY_TOPIC": f"{prefix}.monthly",
        "TRANSITWATCH_GOODS_TOPIC": f"{prefix}.by-goods",
        "TRANSITWATCH_ALERTS_TOPIC": f"{prefix}.alerts",
        "TRANSITWATCH_DEAD_LETTER_TOPIC": f"{prefix}.dead-letter",
        "TRANSITWATCH_UNDELIVERED_TOPIC": f"{prefix}.alerts.undelivered",
        "TOPIC_RETENTION_INPUTS_MS": "7776000000",
        "TOPIC_RETENTION_INTERNAL_MS": "604800000",
        "TOPIC_RETENTION_ALERTS_MS": "-1",
        "TOPIC_RETENTION_DEAD_LETTER_MS": "2592000000",
        "TOPIC_RETENTION_UNDELIVERED_MS": "-1",
    }


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("busybox"), "sh", str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=300)


def _describe(kafka, kafka_bin: Path, prefix: str) -> dict[str, tuple[int, str]]:
    """(partition count, retention.ms) of each topic whose name starts with prefix."""
    out = subprocess.run([str(kafka_bin / "kafka-topics.sh"), "--bootstrap-server", kafka.bootstrap, "--describe",
                          "--topic", re.escape(prefix) + r"\..*"], capture_output=True, text=True, timeout=120).stdout
    found = {}
    for line in out.splitlines():
        m = re.match(r"Topic: (\S+)\s+TopicId: \S+\s+PartitionCount: (\d+).*retention\.ms=(-?\d+)", line)
        if m:
            found[m.group(1).removeprefix(prefix + ".")] = (int(m.group(2)), m.group(3))
    return found


def test_creates_the_topics_then_keeps_them_and_refuses_a_partition_change(kafka, kafka_bin):
    prefix = f"it-init-{uuid.uuid4().hex[:8]}"
    env = _env(kafka, kafka_bin, prefix, partitions=3)
    first = _run(env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.count("kafka-init: created") == 6
    expected = {"declarations": "7776000000", "monthly": "7776000000", "by-goods": "604800000", "alerts": "-1",
                "dead-letter": "2592000000", "alerts.undelivered": "-1"}
    assert _describe(kafka, kafka_bin, prefix) == {suffix: (3, keep) for suffix, keep in expected.items()}

    # Again, with another retention for the alerts: nothing created, the retention applied.
    again = _run({**env, "TOPIC_RETENTION_ALERTS_MS": "31536000000"})
    assert again.returncode == 0, again.stdout + again.stderr
    assert "created" not in again.stdout and again.stdout.count("exists (3 partitions)") == 6
    assert _describe(kafka, kafka_bin, prefix)["alerts"] == (3, "31536000000")

    # Another partition count: the internal goods topic must not silently disagree with the
    # worker's state, and nothing is changed before the script stops.
    changed = _run({**_env(kafka, kafka_bin, prefix, partitions=6), "TOPIC_RETENTION_INPUTS_MS": "1000"})
    assert changed.returncode != 0
    assert f"{prefix}.by-goods has 3 partitions but TRANSITWATCH_PARTITIONS=6" in changed.stderr
    assert "docs/operations.md#changing-the-partition-count" in changed.stderr
    after = _describe(kafka, kafka_bin, prefix)
    assert after["by-goods"] == (3, "604800000") and after["declarations"] == (3, "7776000000")

    # The documented way to change it: a new goods topic; the other topics stay as they are.
    moved = _run({**_env(kafka, kafka_bin, prefix, partitions=6), "TRANSITWATCH_GOODS_TOPIC": f"{prefix}.by-goods-p6"})
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert f"created {prefix}.by-goods-p6 (6 partitions" in moved.stdout
    assert moved.stderr.count("warning:") == 5 and "left as it is" in moved.stderr
    assert _describe(kafka, kafka_bin, prefix)["by-goods-p6"] == (6, "604800000")


def test_bad_settings_stop_before_touching_kafka(kafka_bin, tmp_path):
    env = _env(type("NoBroker", (), {"bootstrap": "127.0.0.1:9"})(), kafka_bin, "unused", partitions=3)
    for name, value, says in (("TRANSITWATCH_PARTITIONS", "0", "whole number >= 1"),
                              ("TRANSITWATCH_PARTITIONS", "-1", "whole number >= 1"),
                              ("TOPIC_RETENTION_ALERTS_MS", "forever", "or -1"),
                              ("TRANSITWATCH_GOODS_TOPIC", "", "is not set")):
        done = _run({**env, name: value})
        assert done.returncode != 0 and name in done.stderr and says in done.stderr, (name, value, done.stderr)
        assert "waiting for Kafka" not in done.stderr


def test_an_unreachable_broker_fails_after_the_attempts(kafka_bin):
    env = _env(type("NoBroker", (), {"bootstrap": "127.0.0.1:9"})(), kafka_bin, "unused", partitions=3)
    done = _run({**env, "KAFKA_INIT_ATTEMPTS": "1"})
    assert done.returncode != 0
    assert "no Kafka broker answers at 127.0.0.1:9 after 1 attempts" in done.stderr
