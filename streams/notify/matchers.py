"""Labels of an alert, Alertmanager matchers and durations.

An alert's labels are strings taken from its record (``docs/alerts.md``). ``detector`` is
special: it has one value per detector that fired, so ``detector="ramp"`` matches an alert
that ``ramp`` flagged among others, and ``detector!="ramp"`` one that ``ramp`` did not flag.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from transitwatch.detectors.errors import ConfigError

#: Label names routes, silences and ``group_by`` may use.
LABELS: tuple[str, ...] = (
    "alert_id", "series_id", "reporter", "partner", "flow", "hs6", "chpl_tier", "period",
    "severity", "early", "detector", "detectors",
)

_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$', re.S)
_DURATION = re.compile(
    r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_UNITS = (7 * 86400, 86400, 3600, 60, 1, 0.001)


class NotifyConfigError(ConfigError):
    """The notifier's configuration (TOML, matchers, secrets) is wrong; the message says where."""


def parse_duration(text: str, where: str = "duration") -> float:
    """Seconds in a Prometheus duration such as ``30s``, ``5m``, ``1h30m``, ``2d`` or ``250ms``.

    Examples
    --------
    >>> parse_duration("30s"), parse_duration("1h30m"), parse_duration("250ms"), parse_duration("0s")
    (30.0, 5400.0, 0.25, 0.0)
    >>> parse_duration("5 minutes")
    Traceback (most recent call last):
    ...
    transitwatch.streams.notify.matchers.NotifyConfigError: duration: '5 minutes' is not a duration such as 30s, 5m, 4h or 1h30m
    """
    match = _DURATION.match(text.strip()) if isinstance(text, str) and text.strip() else None
    if match is None or not any(match.groups()):
        raise NotifyConfigError(f"{where}: {text!r} is not a duration such as 30s, 5m, 4h or 1h30m")
    return float(sum(int(g) * unit for g, unit in zip(match.groups(), _UNITS, strict=True) if g))


def format_duration(seconds: float) -> str:
    """The shortest Prometheus duration for a number of seconds.

    Examples
    --------
    >>> format_duration(5400), format_duration(0.25), format_duration(0), format_duration(90061)
    ('1h30m', '250ms', '0s', '1d1h1m1s')
    """
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    out = []
    for unit, name in ((7 * 86400_000, "w"), (86400_000, "d"), (3600_000, "h"), (60_000, "m"), (1000, "s"), (1, "ms")):
        n, ms = divmod(ms, unit)
        if n:
            out.append(f"{n}{name}")
    return "".join(out)


def alert_labels(alert: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """The labels of an alert record, each a tuple of values (one, except ``detector``).

    Examples
    --------
    >>> labels = alert_labels({"partner": "AM", "chpl_tier": None, "early": True,
    ...                        "detectors": ["seasonal_surge", "ramp"]})
    >>> labels["partner"], labels["chpl_tier"], labels["early"], labels["detector"], labels["detectors"]
    (('AM',), ('',), ('true',), ('seasonal_surge', 'ramp'), ('seasonal_surge,ramp',))
    """
    def text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    out = {name: (text(alert.get(name)),) for name in LABELS if name not in ("detector", "detectors")}
    detectors = tuple(str(d) for d in alert.get("detectors") or ())
    out["detector"] = detectors or ("",)
    out["detectors"] = (",".join(detectors),)
    return out


def label_value(labels: Mapping[str, tuple[str, ...]], name: str) -> str:
    """One string for a label, for grouping: the first (primary) detector for ``detector``."""
    values = labels.get(name, ("",))
    return values[0] if values else ""


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(f"(?:{pattern})\\Z", re.S)


def _unquote(raw: str, where: str) -> str:
    if not (len(raw) >= 2 and raw[0] == raw[-1] == '"'):
        if '"' in raw:
            raise NotifyConfigError(f"{where}: unbalanced quotes in {raw!r}")
        return raw
    out, chars, i = [], raw[1:-1], 0
    escapes = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}
    while i < len(chars):
        c = chars[i]
        if c == "\\":
            if i + 1 >= len(chars) or chars[i + 1] not in escapes:
                raise NotifyConfigError(f"{where}: bad escape in {raw!r}")
            out.append(escapes[chars[i + 1]])
            i += 2
            continue
        if c == '"':
            raise NotifyConfigError(f"{where}: unescaped quote inside {raw!r}")
        out.append(c)
        i += 1
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Matcher:
    """One Alertmanager matcher: ``name`` ``op`` ``value`` with op ``=``, ``!=``, ``=~`` or ``!~``.

    Regular expressions are anchored at both ends, as in Alertmanager.

    Examples
    --------
    >>> m = Matcher.parse('severity=~"high|critical"')
    >>> m.matches(alert_labels({"severity": "high"})), m.matches(alert_labels({"severity": "highest"}))
    (True, False)
    >>> str(Matcher.parse("partner != KG"))
    'partner!="KG"'
    """

    name: str
    op: str
    value: str

    def __post_init__(self) -> None:
        if self.name not in LABELS:
            raise NotifyConfigError(
                f"matcher on unknown label {self.name!r}: use one of {', '.join(LABELS)}"
            )
        if self.op not in ("=", "!=", "=~", "!~"):
            raise NotifyConfigError(f"matcher operator {self.op!r}: use =, !=, =~ or !~")
        if self.op in ("=~", "!~"):
            try:
                _compiled(self.value)
            except re.error as exc:
                raise NotifyConfigError(f"matcher {self.name}{self.op}: bad regular expression {self.value!r}: {exc}") from None

    @classmethod
    def parse(cls, text: str, where: str = "matcher") -> Matcher:
        """A matcher from its text form, e.g. ``partner="KG"`` or ``severity=~"high|critical"``."""
        if not isinstance(text, str):
            raise NotifyConfigError(f"{where}: a matcher is a string such as 'partner=\"KG\"', not {text!r}")
        found = _MATCHER.match(text)
        if found is None:
            raise NotifyConfigError(f"{where}: {text!r} is not a matcher such as 'partner=\"KG\"' or 'severity=~\"high|critical\"'")
        name, op, raw = found.groups()
        try:
            return cls(name, op, _unquote(raw, where))
        except NotifyConfigError as exc:
            raise NotifyConfigError(f"{where}: {exc}") from None

    def _one(self, value: str) -> bool:
        if self.op in ("=", "!="):
            return value == self.value
        return _compiled(self.value).match(value) is not None

    def matches(self, labels: Mapping[str, tuple[str, ...]]) -> bool:
        """Whether the labels satisfy this matcher (any value for =/=~, no value for !=/!~)."""
        values = labels.get(self.name, ("",)) or ("",)
        hit = any(self._one(v) for v in values)
        return hit if self.op in ("=", "=~") else not hit

    def matches_empty(self) -> bool:
        """Whether an alert without this label would match (Alertmanager refuses silences of only such)."""
        return self.matches({self.name: ("",)})

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


def matches_all(matchers: tuple[Matcher, ...], labels: Mapping[str, tuple[str, ...]]) -> bool:
    """True when every matcher matches (so an empty list matches everything)."""
    return all(m.matches(labels) for m in matchers)
