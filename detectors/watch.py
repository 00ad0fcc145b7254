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

from transitwatch.detectors.cases import CaseParams
from transitwatch.detectors.consignees import ConsigneeParams
from transitwatch.detectors.contract import COUNTRY_ALIASES, COUNTRY_CODES
from transitwatch.detectors.corroboration import CorroborationParams
from transitwatch.detectors.hubshift import HubShiftParams
from transitwatch.detectors.diversion import DiversionParams
from transitwatch.detectors.errors import ConfigError, InvalidParameterError
from transitwatch.detectors.isolation import IsolationParams
from transitwatch.detectors.limits import EARLIEST_DEFAULT, InputLimits
from transitwatch.detectors.novelty import NoveltyParams
from transitwatch.detectors.policy import AlertPolicy, PolicyParams
from transitwatch.detectors.ramp import RampParams
from transitwatch.detectors.reference import chpl, hs6_codes, transit_countries
from transitwatch.detectors.sanctions import SanctionsParams
from transitwatch.detectors.seasonal import SurgeParams

FLOWS = ("export", "import", "re-export", "re-import")
ANY = "*"  # every reporter or partner
_PARAMS = {
    "surge": SurgeParams,
    "ramp": RampParams,
    "novelty": NoveltyParams,
    "new_consignees": ConsigneeParams,
    "diversion": DiversionParams,
    "corroboration": CorroborationParams,
    "hub_shift": HubShiftParams,
    "isolation": IsolationParams,
    "policy": PolicyParams,
    "sanctions": SanctionsParams,
    "cases": CaseParams,
}


@dataclass(frozen=True, kw_only=True)
class WatchConfig:
    """A validated watch configuration.

    Which lanes (reporter > partner) are watched, and for what, is :meth:`role`:
    a lane *alerts* on its own rises (its partner is a hub, or it is named in
    ``lanes``) and/or is a *destination* lane (its partner is a destination: the
    diversion detector watches it collapse). A lane can be both.

    Examples
    --------
    >>> cfg = WatchConfig.default()
    >>> "KG" in cfg.hubs, "RU" in cfg.hubs, len(cfg.hs6), cfg.base_currency
    (True, False, 50, 'USD')
    >>> cfg.role("DE", "KG"), cfg.role("DE", "RU"), cfg.role("DE", "FR")
    ((True, False), (False, True), None)
    >>> lanes = WatchConfig.from_toml('[watch]\\nhubs = ["transit", "BY"]\\nlanes = ["AM>RU"]')
    >>> lanes.role("DE", "BY"), lanes.role("AM", "RU"), lanes.role("KZ", "RU")
    ((True, True), (True, True), (False, True))
    >>> WatchConfig.from_toml('[surge]\\nmin_ratio = 3.0').params["surge"].min_ratio
    3.0
    >>> WatchConfig.from_toml('[watch]\\nhistory_start = "2020-01"').history_start  # a month index
    24240
    """

    reporters: frozenset[str]  # empty: every reporter
    hubs: frozenset[str]  # partners whose lanes alert on their rises
    destinations: frozenset[str]  # partners whose lanes feed the diversion detector
    flows: frozenset[str]
    hs6: frozenset[str]
    base_currency: str
    rates: dict[str, float]
    params: dict[str, Any]
    early_days: tuple[int, ...]
    history_start: int | None = None  # month index (year * 12 + month - 1); None: per goods group
    input: InputLimits = InputLimits()
    every_partner: bool = False  # hubs = ["*"]: every partner but the destinations is a hub
    lanes: frozenset[tuple[str, str]] = frozenset()  # (reporter, partner) that alert, "*" for any
    hs6_unlisted: frozenset[str] = frozenset()  # codes accepted in hs6 though not in the HS list

    @classmethod
    def default(cls) -> WatchConfig:
        return cls.from_toml("")

    @classmethod
    def from_toml(cls, text: str) -> WatchConfig:
        """Defaults overlaid with ``text``; raises :class:`ConfigError`."""
        base = tomllib.loads(resources.files("transitwatch.detectors.data").joinpath("watch.toml").read_text("utf-8"))
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
        every_partner = False
        for code in watch["hubs"]:
            if code == "transit":  # an expansion: never the destinations (list one to have it alert)
                hubs |= set(transit_countries()) - destinations
            elif code == ANY:
                every_partner = True
            else:
                hubs |= set(_codes([code], "watch.hubs", 'or "transit" or "*"'))
        reporters = set(_codes(watch["reporters"], "watch.reporters", 'or "*"', wildcard=True))
        if ANY in reporters:
            reporters = set()
        lanes = _lanes(watch["lanes"])
        unlisted: set[str] = set()
        for code in watch["hs6_unlisted"]:
            code = str(code)
            if not (len(code) == 6 and code.isdigit()):
                raise ConfigError(f"watch.hs6_unlisted entry {code!r} must be 6 digits")
            unlisted.add(code)
        known = hs6_codes()
        hs6: set[str] = set()
        for code in watch["hs6"]:
            code = str(code)
            if code == "chpl":
                hs6 |= set(chpl())
            elif not (len(code) == 6 and code.isdigit()):
                raise ConfigError(f"watch.hs6 entry {code!r} must be 6 digits or 'chpl'")
            elif code not in known and code not in unlisted:
                raise ConfigError(
                    f"watch.hs6 entry {code!r} is not an HS6 subheading of HS 2017 or HS 2022 "
                    "(detectors/data/hs6_codes.csv): check it for a typo. If your input really uses it "
                    "(an aggregate such as 999999 for a total, a national code, a code of HS 2012 or "
                    f'earlier), also list it under [watch]: hs6_unlisted = ["{code}"]'
                )
            else:
                hs6.add(code)
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
        # (every reporter or partner: all ISO 3166-1 countries; lanes named one by one add theirs)
        params["policy"] = params["policy"].for_watch(
            reporters=len(reporters) or len(COUNTRY_CODES),
            partners=len(COUNTRY_CODES) if every_partner else len(hubs | destinations) + len(lanes),
            flows=len(flows), hs6=len(hs6),
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
            reporters=frozenset(reporters),
            hubs=frozenset(hubs),
            destinations=destinations,
            every_partner=every_partner,
            lanes=lanes,
            hs6_unlisted=frozenset(unlisted),
            flows=flows,
            hs6=frozenset(hs6),
            base_currency=base_currency,
            rates=rates,
            params=params,
            early_days=days,
            history_start=history_start,
            input=input_limits,
        )

    def role(self, reporter: str, partner: str) -> tuple[bool, bool] | None:
        """What lane ``reporter`` > ``partner`` is watched for, as ``(alerts, destination)``,
        or ``None`` when it is not watched (flows and HS codes aside).

        ``alerts``: the lane alerts on its own rises (its partner is a hub, for a watched
        reporter, or the lane is named in ``lanes``). ``destination``: its partner is a
        destination, so the diversion detector watches it collapse while the same
        reporter's alerting lanes of the code rise."""
        dest = partner in self.destinations
        lanes = self.lanes
        named = bool(lanes) and (
            (reporter, partner) in lanes or (reporter, ANY) in lanes or (ANY, partner) in lanes or (ANY, ANY) in lanes
        )
        ours = not self.reporters or reporter in self.reporters
        alerts = named or (ours and (partner in self.hubs or (self.every_partner and not dest)))
        destination = dest and (ours or named)
        return (alerts, destination) if alerts or destination else None

    def watches_partner(self, partner: str) -> bool:
        """Whether some lane into ``partner`` is watched (for some reporter)."""
        if self.every_partner or partner in self.hubs or partner in self.destinations:
            return True
        return any(p == partner or p == ANY for _, p in self.lanes)

    def policy(self) -> AlertPolicy:
        """The alert policy with this configuration's detector parameters."""
        return AlertPolicy(**{k: v for k, v in self.params.items() if k != "cases"})

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary, for reports."""
        return {
            "reporters": sorted(self.reporters) or "all",
            "hubs": sorted(self.hubs) + (["* (every partner but the destinations)"] if self.every_partner else []),
            "destinations": sorted(self.destinations),
            "lanes": sorted(f"{r}>{p}" for r, p in self.lanes),
            "flows": sorted(self.flows),
            "hs6 codes": len(self.hs6),
            "hs6 unlisted": sorted(self.hs6_unlisted),
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


def _codes(values: Any, where: str, also: str = "", *, wildcard: bool = False) -> list[str]:
    """ISO 3166-1 alpha-2 codes, upper case (Eurostat's EL and UK read as GR and GB, as in the
    input); ``"*"`` too when ``wildcard``. ``also`` names what else the list may hold."""
    what = f"ISO 3166-1 alpha-2 codes{' ' + also if also else ''}"
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{where} must be a list of {what}")
    out = []
    for value in values:
        if wildcard and value == ANY:
            out.append(ANY)
            continue
        code = COUNTRY_ALIASES.get(value.upper(), value.upper())
        if code not in COUNTRY_CODES:
            raise ConfigError(f"{where} must be a list of {what}; {value!r} is not one")
        out.append(code)
    return out


def _lanes(values: Any) -> frozenset[tuple[str, str]]:
    """``[watch] lanes``: ``"REPORTER>PARTNER"`` entries, each side a code, "transit" or "*"."""
    usage = ('each entry of watch.lanes must be "REPORTER>PARTNER", each side an ISO 3166-1 alpha-2 code, '
             '"transit" or "*" (e.g. "AM>RU": Armenia\'s exports to Russia)')
    if not isinstance(values, list):
        raise ConfigError(f"watch.lanes must be a list: {usage}")
    out: set[tuple[str, str]] = set()
    for entry in values:
        if not isinstance(entry, str) or entry.count(">") != 1:
            raise ConfigError(f"{usage}; got {entry!r}")
        sides = []
        for side in entry.split(">"):
            side = side.strip()
            if side == "transit":
                sides.append(sorted(transit_countries()))
            elif side == ANY:
                sides.append([ANY])
            else:
                try:
                    sides.append(_codes([side], "watch.lanes"))
                except ConfigError:
                    raise ConfigError(f"{usage}; got {entry!r}") from None
        out |= {(r, p) for r in sides[0] for p in sides[1]}
    return frozenset(out)


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
