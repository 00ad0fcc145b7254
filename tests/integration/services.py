"""Start a real service for a fixture: in CI (``CI`` set) a service that cannot start fails
the run; elsewhere the tests that need it are skipped with the reason."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar

import pytest


class Service(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


S = TypeVar("S", bound=Service)


@contextmanager
def running(service: S, error: type[Exception], what: str) -> Iterator[S]:
    """``service`` started, stopped on exit; ``error`` from its start skips (fails in CI)."""
    try:
        service.start()
    except error as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no {what}: {exc}")
    try:
        yield service
    finally:
        service.stop()
