"""The watch configuration: what to watch and how sensitive each detector is.

Read from TOML (``detectors/data/watch.toml`` holds the defaults, with
comments); a user's file overrides any subset of keys. Validation happens
here, at start-up, never on the first record.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from typing import Any

from detectors.consignees import ConsigneeParams
from detectors.corroboration import CorroborationParams
from detectors.diversion import DiversionParams
from detectors.errors import ConfigError, InvalidParameterError
from detectors.isolation import IsolationParams
from detectors.limits import EARLIEST_DEFAULT, InputLimits
from detectors.novelty import NoveltyParams
from detectors.policy import AlertPolicy, PolicyParams
from detectors.ramp import RampParams
from detectors.reference import chpl, transit_countries
from detectors.seasonal import SurgeParams

FLOWS = ("export", "import", "re-export", "re-import")
_PARAMS = {
    "surge": SurgeParams,
    "ramp": RampParams,
    "novelty": NoveltyParams,
    "new_consignees": ConsigneeParams,
    "diversion": DiversionParams,
    "corroboration": CorroborationParams,
    "isolation": IsolationParams,
    "policy": PolicyParams,
}


@dataclass(frozen=True, kw_only=True)
class WatchConfig:
    """A validated watch configuration.

    Examples
    --------
    >>> cfg = WatchConfig.default()
    >>> "KG" in cfg.hubs, "RU" in cfg.hubs, len(cfg.hs6), cfg.base_currency
    (True, False, 50, 'USD')
    >>> WatchConfig.from_toml('[surge]\\nmin_ratio = 3.0').params["surge"].min_ratio
    3.0
    >>> WatchConfig.from_toml('[watch]\\nhistory_start = "2020-01"').history_start  # a month index
    24240
    """

    reporters: frozenset[str]
    hubs: frozenset[str]
    destinations: frozenset[str]
    flows: frozenset[str]
    hs6: frozenset[str]
    base_currency: str
    rates: dict[str, float]
    params: dict[str, Any]
    early_days: tuple[int, ...]
    history_start: int | None = None  # month index (year * 12 + month - 1); None: per goods group
    input: InputLimits = InputLimits()

    @classmethod
    def default(cls) -> WatchConfig:
        return cls.from_toml("")

    @classmethod
    def from_toml(cls, text: str) -> WatchConfig:
        """Defaults overlaid with ``text``; raises :class:`ConfigError`."""
        base = tomllib.loads(resources.files("detectors.data").joinpath("watch.toml").read_text("utf-8"))
        try:
            user = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"the configuration is not valid TOML: {exc}") from exc
        unknown = set(user) - set(base)
        if unknown:
            raise ConfigError(f"unknown configuration sections {sorted(unknown)}; known: {sorted(base)}")
        merged = {k: _merge(v, user.get(k, {}), k) for k, v in base.items()}
        return cls._build(merged)

    @classmethod
    def _build(cls, cfg: dict[str, Any]) -> WatchConfig:
        watch = cfg["watch"]
        destinations = frozenset(_codes(watch["destinations"], "watch.destinations"))
        hubs: set[str] = set()
        for code in watch["hubs"]:
            if code == "transit":
                hubs |= set(transit_countries())
            else:
                hubs |= set(_codes([code], "watch.hubs (or \"transit\")"))
        hubs -= destinations
        hs6: set[str] = set()
        for code in watch["hs6"]:
            code = str(code)
            if code == "chpl":
                hs6 |= set(chpl())
            elif len(code) == 6 and code.isdigit():
                hs6.add(code)
            else:
                raise ConfigError(f"watch.hs6 entry {code!r} must be 6 digits or 'chpl'")
        flows = frozenset(str(f).lower() for f in watch["flows"])
        if not flows <= set(FLOWS):
            raise ConfigError(f"watch.flows {sorted(flows)} must be among {list(FLOWS)}")
        base_currency = str(cfg["currency"]["base"]).upper()
        rates = {str(k).upper(): float(v) for k, v in cfg["currency"]["rates"].items()}
        if rates.get(base_currency) != 1.0:
            raise ConfigError(f"currency.rates must give the base currency {base_currency} a rate of 1.0")
        if any(not (r > 0) for r in rates.values()):
            raise ConfigError("currency.rates must all be > 0")
        try:
            params = {name: kind(**cfg[name]) for name, kind in _PARAMS.items()}
        except TypeError as exc:
            raise ConfigError(f"unknown detector parameter: {exc}") from exc
        except InvalidParameterError as exc:
            raise ConfigError(str(exc)) from exc
        # severity's family: the lane-months this watch may test (detectors/severity.py)
        params["policy"] = params["policy"].for_watch(
            reporters=len(set(_codes(watch["reporters"], "watch.reporters"))),
            partners=len(hubs) + len(destinations), flows=len(flows), hs6=len(hs6),
        )
        history_start = _month(watch["history_start"], "watch.history_start")
        limits = cfg["input"]
        try:
            input_limits = InputLimits(
                earliest=_month(limits["earliest"], "input.earliest") or EARLIEST_DEFAULT,
                latest=_month(limits["latest"], "input.latest"),
                **{k: v for k, v in limits.items() if k not in ("earliest", "latest")},
            )
        except InvalidParameterError as exc:
            raise ConfigError(f"[input] {exc}") from exc
        days = tuple(sorted(int(d) for d in cfg["early"]["check_days"]))
        if any(not 2 <= d <= 28 for d in days):
            raise ConfigError("early.check_days must be days 2 to 28")
        return cls(
            reporters=frozenset(_codes(watch["reporters"], "watch.reporters")),
            hubs=frozenset(hubs),
            destinations=destinations,
            flows=flows,
            hs6=frozenset(hs6),
            base_currency=base_currency,
            rates=rates,
            params=params,
            early_days=days,
            history_start=history_start,
            input=input_limits,
        )

    def policy(self) -> AlertPolicy:
        """The alert policy with this configuration's detector parameters."""
        return AlertPolicy(**self.params)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary, for reports."""
        return {
            "reporters": sorted(self.reporters) or "all",
            "hubs": sorted(self.hubs),
            "destinations": sorted(self.destinations),
            "flows": sorted(self.flows),
            "hs6 codes": len(self.hs6),
            "base currency": self.base_currency,
            "history start": "per goods group" if self.history_start is None
            else f"{self.history_start // 12:04d}-{self.history_start % 12 + 1:02d}",
            **{name: {f.name: getattr(p, f.name) for f in fields(p)} for name, p in self.params.items()},
        }


def _merge(base: Any, user: Any, where: str) -> Any:
    if isinstance(base, dict):
        if not isinstance(user, dict):
            raise ConfigError(f"[{where}] must be a table")
        if where != "currency.rates":
            unknown = set(user) - set(base)
            if unknown:
                raise ConfigError(f"unknown keys {sorted(unknown)} in [{where}]; known: {sorted(base)}")
        out = dict(base)
        for k, v in user.items():
            out[k] = _merge(base[k], v, f"{where}.{k}") if k in base else _shaped(v, 1.0, f"{where}.{k}")
        return out
    return _shaped(user, base, where)


_SHAPES = {bool: "true or false", str: "a string", list: "a list", int: "a number", float: "a number"}


def _shaped(value: Any, like: Any, where: str) -> Any:
    """``value`` if it has the shape of the default ``like`` (a number for a number, a list for
    a list ...), else a :class:`ConfigError`: ``hubs = "KG"`` must not pass as a list of letters.
    Strings (months, currency codes) are left to their own checks, which say what they must be."""
    kind = type(like)
    if kind is str:
        return value
    ok = (type(value) is bool) if kind is bool else (
        isinstance(value, (int, float)) and type(value) is not bool if kind in (int, float)
        else isinstance(value, kind)
    )
    if not ok:
        raise ConfigError(f"{where} must be {_SHAPES.get(kind, kind.__name__)}, not {value!r}")
    return value


def _codes(values: Any, where: str) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) and len(v) == 2 for v in values):
        raise ConfigError(f"{where} must be a list of ISO 3166-1 alpha-2 codes")
    return [v.upper() for v in values]


def _month(value: Any, where: str) -> int | None:
    """The month index of a ``"YYYY-MM"`` setting; ``None`` for ``""`` (unset)."""
    if value == "":
        return None
    if isinstance(value, str) and len(value) == 7 and value[4] == "-" and value.isascii():
        y, m = value[:4], value[5:]
        if y.isdigit() and m.isdigit() and 1000 <= int(y) and 1 <= int(m) <= 12:
            return int(y) * 12 + int(m) - 1
    raise ConfigError(
        f'{where} must be a month written "YYYY-MM" (e.g. "2020-01"), or "" to leave it unset; got {value!r}'
    )
