"""The one settings object: the only reader of the environment.

Every setting comes from a ``TRANSITWATCH_``-prefixed environment variable
(or a ``.env`` file, see ``.env.example``), for example
``TRANSITWATCH_BROKER=kafka://127.0.0.1:9092``; commands may override a few
with options such as ``--broker``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the service finds Kafka and what it calls its topics.

    Examples
    --------
    >>> s = Settings(broker="kafka://127.0.0.1:9092;kafka://127.0.0.1:9093")
    >>> s.bootstrap_servers
    '127.0.0.1:9092,127.0.0.1:9093'
    """

    model_config = SettingsConfigDict(env_prefix="TRANSITWATCH_", env_file=".env", frozen=True, extra="ignore",
                                      env_nested_delimiter="__")

    broker: str = Field("kafka://127.0.0.1:9092", description="Kafka URL(s), ';'-separated")
    declarations_topic: str = "customs.declarations"
    monthly_topic: str = "trade.monthly"
    alerts_topic: str = "transitwatch.alerts"
    dead_letter_topic: str = "transitwatch.dead-letter"

    # -- the worker (``transitwatch worker``) ------------------------------------------------------
    app_id: str = Field("transitwatch", description="Faust app id: consumer group and internal topic prefix")
    goods_topic: str = Field("transitwatch.by-goods", description="internal topic: valid records keyed by hs6")
    partitions: int = Field(8, ge=1, description="partitions of the internal topic and state changelog")
    replication: int = Field(1, ge=1, description="replication factor of the topics the worker creates")
    watch_config: Path | None = Field(None, description="watch configuration (TOML); shipped defaults if unset")
    state_dir: Path = Field(Path(".transitwatch"), description="worker data directory (Faust datadir)")
    store: str = Field("memory://", description="Faust table store: memory:// or rocksdb://")
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=0, le=65535, description="/metrics, /healthz, /ready, /alerts")
    lateness_days: int = Field(3, ge=0, description="a goods group's records wait this many days for stragglers")
    idle_seconds: float = Field(
        5.0, gt=0,
        description="an input partition its reader reports idle (read to its end, nothing new) this long "
                    "no longer holds back the watermark",
    )
    dedup_months: int = Field(3, ge=1, description="declaration ids are remembered this many closed months")
    batch_size: int = Field(2000, ge=1, description="records taken per batch by the detector agent")
    batch_seconds: float = Field(0.25, gt=0, description="longest wait to fill a batch")
    ingest_batch_seconds: float = Field(
        0.1, gt=0, description="longest wait to fill a batch of input messages after its first (ingest)"
    )
    recent_alerts: int = Field(200, ge=1, description="alerts kept for the /alerts view")
    session_timeout: float = Field(10.0, gt=0, description="Kafka consumer group session timeout, seconds")

    @field_validator("broker")
    @classmethod
    def _kafka_urls(cls, value: str) -> str:
        for url in value.split(";"):
            host, _, port = url.strip().removeprefix("kafka://").rpartition(":")
            bad_host = any(c in host.strip("[]") for c in "/@ ?#" + ":" * (host[:1] != "["))
            if not host or not port.isdigit() or not 0 < int(port) < 65536 or bad_host:
                raise ValueError(f"{url.strip()!r} must look like kafka://host:port, e.g. kafka://127.0.0.1:9092")
        return value

    @classmethod
    def from_options(cls, **options: object) -> Settings:
        """The environment's settings, with a command's options on top (``None``: not given).

        >>> Settings.from_options(broker="kafka://10.0.0.1:9092", web_port=None).broker
        'kafka://10.0.0.1:9092'
        """
        return cls(**{k: v for k, v in options.items() if v is not None})

    @staticmethod
    def explain(error: ValidationError) -> str:
        """One line per wrong setting, for the command line (pydantic's own text spans lines).

        >>> try:
        ...     Settings(broker="http://x")
        ... except ValidationError as exc:
        ...     print(Settings.explain(exc))
        broker: 'http://x' must look like kafka://host:port, e.g. kafka://127.0.0.1:9092
        """
        parts = []
        for e in error.errors(include_url=False):
            where = ".".join(map(str, e["loc"])) or "settings"
            parts.append(f"{where}: {e['msg'].removeprefix('Value error, ')}")
        return "; ".join(parts)

    @property
    def bootstrap_servers(self) -> str:
        """``host:port[,host:port]`` for Kafka clients."""
        return ",".join(url.strip().removeprefix("kafka://") for url in self.broker.split(";"))

    # -- the notifier (``transitwatch notify``, ``silence``, ``redeliver``; docs/notifications.md) ----
    notify_config: Path | None = Field(None, description="routing and receivers (TOML), e.g. examples/notify.toml")
    notify_group_id: str = Field("transitwatch-notify", description="the notifier's consumer group on the alerts topic")
    undelivered_topic: str = Field("transitwatch.alerts.undelivered", description="alerts whose last attempt failed")
    deliveries_topic: str = Field("transitwatch.notify.deliveries", description="the delivery log (compacted)")
    silences_topic: str = Field("transitwatch.notify.silences", description="silences (compacted)")
    feedback_topic: str = Field("transitwatch.feedback",
                                description="analysts' feedback from the desk (compacted), read by the notifier")
    notify_replication: int = Field(1, ge=1, description="replication factor of the topics the notifier creates")
    notify_web_host: str = "127.0.0.1"
    notify_web_port: int = Field(6067, ge=0, le=65535, description="the notifier's /metrics, /healthz, /ready")
    notify_max_attempts: int = Field(8, ge=1, description="attempts per message before the undelivered topic")
    notify_retry_initial_seconds: float = Field(1.0, gt=0, description="first retry waits about this long")
    notify_retry_max_seconds: float = Field(300.0, gt=0, description="longest wait between two attempts")
    notify_message_domain: str = Field("transitwatch.local", description="right-hand side of email Message-IDs")
    notify_session_timeout: float = Field(
        6.0, gt=0, description="the notifier's consumer group session timeout, seconds: how long a crashed notifier "
        "holds its partitions (at least the broker's group.min.session.timeout.ms, 6 s by default)",
    )
    notify_group_instance_id: str | None = Field(
        None, min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$",
        description="static group membership: a name stable across restarts and unique per running notifier "
        "(e.g. the StatefulSet pod); a restarted notifier then takes its partitions back at once",
    )
    secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="webhook URLs and passwords by name, from TRANSITWATCH_SECRETS__<NAME>; receivers name them",
    )
