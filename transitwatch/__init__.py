"""transitwatch: flags surges of high-tech and dual-use exports to Russia's neighbours.

The installed import name. The detectors (pure, synchronous) are :mod:`transitwatch.detectors`,
the service, replay and command line :mod:`transitwatch.streams`; what a notebook needs is here:

- :func:`detect`: the detectors over a pandas or Polars DataFrame or an Arrow table;
- :func:`replay`: the same over files, as ``transitwatch replay`` does;
- :class:`WatchConfig` and :func:`load_config`: what to watch and how;
- the record types :class:`Declaration` and :class:`MonthlyStat`.

Importing this package loads none of them until first use, so ``import transitwatch`` is cheap.
"""

from __future__ import annotations

from importlib import import_module, metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

# In a checkout (tests, ``PYTHONPATH=.``) the subpackages are the repository's top-level
# ``detectors/`` and ``streams/`` folders; an installed wheel holds them inside this package, and
# an editable install maps them (pyproject.toml, [tool.setuptools.package-dir]).
_CHECKOUT = Path(__file__).resolve().parent.parent
if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "detectors" / "__init__.py").is_file():
    __path__.append(str(_CHECKOUT))  # noqa: F821 -- the package's own search path

try:
    __version__: str = metadata.version("transitwatch")
except metadata.PackageNotFoundError:  # a checkout that was never installed
    __version__ = "0+unknown"

#: Public name -> the module that defines it (loaded on first use).
_API: dict[str, str] = {
    "detect": "transitwatch.api",
    "replay": "transitwatch.api",
    "load_config": "transitwatch.api",
    "alerts_frame": "transitwatch.api",
    "RejectedRowsWarning": "transitwatch.api",
    "WatchConfig": "transitwatch.detectors.watch",
    "Declaration": "transitwatch.detectors.contract",
    "MonthlyStat": "transitwatch.detectors.contract",
    "ReplayResult": "transitwatch.streams.replay",
    "TransitwatchError": "transitwatch.detectors.errors",
}

__all__ = ["__version__", *_API]

if TYPE_CHECKING:  # pragma: no cover
    from transitwatch.api import RejectedRowsWarning, alerts_frame, detect, load_config, replay
    from transitwatch.detectors.contract import Declaration, MonthlyStat
    from transitwatch.detectors.errors import TransitwatchError
    from transitwatch.detectors.watch import WatchConfig
    from transitwatch.streams.replay import ReplayResult


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'transitwatch' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
