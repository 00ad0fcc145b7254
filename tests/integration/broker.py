"""A real single-node Apache Kafka broker (KRaft) for the integration tests.

The broker's jars come from Maven Central (``tests/integration/kafka/pom.xml``,
resolved once into a cache folder); the storage is formatted and the broker
started with ``java -cp 'lib/*'`` on free loopback ports, exactly what the
distribution's ``kafka-storage.sh`` and ``kafka-server-start.sh`` do.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

POM = Path(__file__).with_name("kafka") / "pom.xml"
KAFKA_VERSION = "4.4.0"


class BrokerError(RuntimeError):
    """The test broker could not be resolved or started; the message says why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cache() -> Path:
    root = os.environ.get("TRANSITWATCH_KAFKA_CACHE") or os.path.expanduser("~/.cache/transitwatch")
    return Path(root) / f"kafka-{KAFKA_VERSION}"


def resolve_jars() -> Path:
    """The folder of the broker's jars, resolved with Maven on first use."""
    lib = _cache() / "lib"
    if (lib / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (mvn) is needed to resolve the Kafka broker from Maven Central")
    partial = lib.with_name("lib.partial")
    shutil.rmtree(partial, ignore_errors=True)
    done = subprocess.run(
        [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies", f"-DoutputDirectory={partial}"],
        capture_output=True, text=True, timeout=900,
    )
    if done.returncode != 0:
        raise BrokerError(f"mvn could not resolve kafka_2.13 {KAFKA_VERSION}:\n{done.stdout}\n{done.stderr}")
    shutil.rmtree(lib, ignore_errors=True)
    partial.rename(lib)
    return lib


class KafkaBroker:
    """Start with :meth:`start`, stop with :meth:`stop`; ``bootstrap`` is ``host:port``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.port = _free_port()
        self.controller_port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _properties(self) -> Path:
        data = self.workdir / "data"
        path = self.workdir / "server.properties"
        path.write_text(
            "\n".join([
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={data}",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "num.partitions=1",
                "auto.create.topics.enable=true",
            ]) + "\n"
        )
        return path

    def start(self, timeout: float = 90.0) -> KafkaBroker:
        java = shutil.which("java")
        if java is None:
            raise BrokerError("Java 17 or newer is needed to run the Kafka broker")
        lib = resolve_jars()
        self.workdir.mkdir(parents=True, exist_ok=True)
        props = self._properties()
        # Kafka's cluster id is a url-safe base64 uuid; one starting with "-" would read as an option
        cluster = "k" + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")[1:]
        classpath = f"{lib}/*"
        fmt = subprocess.run(
            [java, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(props),
             "--standalone"],
            capture_output=True, text=True, timeout=120,
        )
        if fmt.returncode != 0:
            raise BrokerError(f"formatting the KRaft storage failed:\n{fmt.stdout}\n{fmt.stderr}")
        log = open(self.workdir / "broker.log", "wb")  # noqa: SIM115 - kept open for the process's life
        self.process = subprocess.Popen(
            [java, "-Xmx512m", "-cp", classpath, "kafka.Kafka", str(props)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(f"the broker exited with {self.process.returncode}; see {self.workdir / 'broker.log'}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise BrokerError(f"the broker did not listen on {self.bootstrap} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
