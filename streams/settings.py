"""The one settings object: the only reader of the environment.

Every setting comes from a ``TRANSITWATCH_``-prefixed environment variable
(or a ``.env`` file, see ``.env.example``), for example
``TRANSITWATCH_BROKER=kafka://127.0.0.1:9092``; commands may override a few
with options such as ``--broker``.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the service finds Kafka and what it calls its topics.

    Examples
    --------
    >>> s = Settings(broker="kafka://127.0.0.1:9092;kafka://127.0.0.1:9093")
    >>> s.bootstrap_servers
    '127.0.0.1:9092,127.0.0.1:9093'
    """

    model_config = SettingsConfigDict(env_prefix="TRANSITWATCH_", env_file=".env", frozen=True, extra="ignore")

    broker: str = Field("kafka://127.0.0.1:9092", description="Kafka URL(s), ';'-separated")
    declarations_topic: str = "customs.declarations"
    monthly_topic: str = "trade.monthly"
    alerts_topic: str = "transitwatch.alerts"
    dead_letter_topic: str = "transitwatch.dead-letter"

    @field_validator("broker")
    @classmethod
    def _kafka_urls(cls, value: str) -> str:
        for url in value.split(";"):
            host = url.strip().removeprefix("kafka://")
            if not host or ":" not in host:
                raise ValueError(f"broker {url!r} must look like kafka://host:port")
        return value

    @property
    def bootstrap_servers(self) -> str:
        """``host:port[,host:port]`` for Kafka clients."""
        return ",".join(url.strip().removeprefix("kafka://") for url in self.broker.split(";"))
