"""Helpers for the notifier's unit tests: alert records, a fake clock, a config builder."""

from __future__ import annotations

import itertools
from typing import Any

from transitwatch.streams.notify.config import NotifyConfig

_ids = itertools.count(1)


def make_alert(**overrides: Any) -> dict[str, Any]:
    """An alert record shaped like ``Alert.to_dict()``."""
    n = next(_ids)
    alert = {
        "alert_id": f"tw-{n:020d}",
        "series_id": "DE>AM export 854232",
        "reporter": "DE",
        "partner": "AM",
        "flow": "export",
        "hs6": "854232",
        "hs_description": "Electronic integrated circuits: memories",
        "chpl_tier": "1",
        "period": "2022-04",
        "detectors": ["seasonal_surge", "ramp"],
        "score": 7.25,
        "severity": "high",
        "observed_value": 1_640_000.0,
        "baseline_value": 570_000.0,
        "observed_count": 14,
        "baseline_count": 4.2,
        "ratio": 2.88,
        "p_value": 3e-7,
        "currency": "EUR",
        "top_exporters": [{"name": "Elektro & Söhne GmbH", "value": 900_000.0}],
        "top_consignees": [{"name": "Yerevan <Trade> LLC", "value": 1_200_000.0}],
        "corroborating_reporters": ["PL"],
        "early": False,
        "as_of": "2022-04-30",
        "explanation": "Germany's exports to Armenia of HS 854232 reached EUR 1.64m in 2022-04, 2.9 times the expected EUR 570.0k.",
        "evidence": {"z": 5.1, "band_high": 800_000.0},
    }
    alert.update(overrides)
    return alert


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def slack(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "slack", "webhook_secret": f"slack_{name}".replace("-", "_"), **extra}


def email(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "email", "to": [f"{name}@example.org"], "from": "tw@example.org",
            "smarthost": "127.0.0.1:2525", "tls": "none", **extra}


def build_config(route: dict[str, Any], receivers: list[dict[str, Any]], **glob: Any) -> NotifyConfig:
    data: dict[str, Any] = {"route": route, "receivers": receivers}
    if glob:
        data["global"] = glob
    return NotifyConfig.from_dict(data)
