"""``.env.example`` lists every setting, and its worker values are the defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from transitwatch.streams.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("TRANSITWATCH_"):
            monkeypatch.delenv(name)


def test_env_example_lists_every_setting():
    text = EXAMPLE.read_text()
    missing = [name for name in Settings.model_fields
               if f"TRANSITWATCH_{name.upper()}" not in text]
    assert not missing, f"add to .env.example: {missing}"


def test_env_example_worker_values_are_the_defaults(clean_env):
    example = Settings(_env_file=EXAMPLE)
    default = Settings(_env_file=None)
    worker = [name for name in Settings.model_fields if not name.startswith(("notify", "secrets"))
              and name not in {"undelivered_topic", "deliveries_topic", "silences_topic"}]
    assert {n: getattr(example, n) for n in worker} == {n: getattr(default, n) for n in worker}
