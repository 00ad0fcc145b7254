"""The notifier's routing configuration: receivers and a route tree, read from TOML.

The semantics are Alertmanager's: the root route takes every alert; its child routes are
tried in order and the first that matches takes the alert (its own children are tried in
turn) unless it sets ``continue = true``, in which case the next siblings are tried too; an
alert no child takes stays with the route itself. Children inherit ``receiver``,
``group_by`` and the three timers from their parent. See ``examples/notify.toml`` and
``docs/notifications.md``.

Secrets never appear here: receivers name them (``webhook_secret = "slack_analysts"``) and
the settings hold them (``TRANSITWATCH_SECRETS__SLACK_ANALYSTS``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transitwatch.streams.notify.matchers import LABELS, Matcher, NotifyConfigError, alert_labels, matches_all, parse_duration

RECEIVER_TYPES = ("slack", "email", "alertmanager")
#: Slack takes 50 blocks a message; an alert takes at most 5 and the header 3.
SLACK_MAX_ALERTS = 9
_SECRET_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


def _secret_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or not set(value.lower()) <= _SECRET_NAME_CHARS:
        raise NotifyConfigError(
            f"{where}: name a secret with letters, digits and _ (the settings read it from "
            f"TRANSITWATCH_SECRETS__<NAME>), got {value!r}"
        )
    return value.lower()


class _Table:
    """Reads one TOML table, refusing unknown keys (a typo must fail at start-up)."""

    def __init__(self, data: Any, where: str, allowed: tuple[str, ...]) -> None:
        if not isinstance(data, Mapping):
            raise NotifyConfigError(f"{where}: expected a table, got {data!r}")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise NotifyConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
        self.data, self.where = data, where

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        value = self.data.get(key, default)
        if value is default:
            return value
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise NotifyConfigError(f"{self.where}.{key}: expected {names}, got {value!r}")
        return value

    def duration(self, key: str, default: float | None) -> float | None:
        raw = self.get(key, str)
        return default if raw is None else parse_duration(raw, f"{self.where}.{key}")

    def positive_int(self, key: str, default: int) -> int:
        value = self.get(key, int, default)
        if value < 1:
            raise NotifyConfigError(f"{self.where}.{key}: expected an integer >= 1, got {value!r}")
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class SlackReceiver:
    """Posts to a Slack incoming webhook (the URL is a secret)."""

    name: str
    webhook_secret: str
    max_alerts_per_message: int = 8
    min_interval: float = 1.0
    timeout: float = 10.0
    type: str = field(default="slack", init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailReceiver:
    """Sends one email per notification through an SMTP smarthost."""

    name: str
    to: tuple[str, ...]
    sender: str
    host: str
    port: int
    tls: str = "starttls"
    auth_username: str | None = None
    auth_password_secret: str | None = None
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    max_alerts_per_message: int = 20
    timeout: float = 30.0
    type: str = field(default="email", init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertmanagerReceiver:
    """Posts alerts to an Alertmanager's v2 API (``/api/v2/alerts``)."""

    name: str
    url: str | None = None
    url_secret: str | None = None
    resolve_after: float = 86400.0
    max_alerts_per_message: int = 64
    timeout: float = 10.0
    type: str = field(default="alertmanager", init=False)


Receiver = SlackReceiver | EmailReceiver | AlertmanagerReceiver


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One node of the route tree, with its inherited settings resolved."""

    path: str
    receiver: str
    matchers: tuple[Matcher, ...] = ()
    continue_: bool = False
    group_by: tuple[str, ...] = ("partner", "period")
    group_by_all: bool = False
    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float = 4 * 3600.0
    routes: tuple[Route, ...] = ()

    def match(self, labels: Mapping[str, tuple[str, ...]]) -> list[Route]:
        """The routes that take an alert with these labels (Alertmanager's algorithm)."""
        if not matches_all(self.matchers, labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            taken = child.match(labels)
            found.extend(taken)
            if taken and not child.continue_:
                break
        return found or [self]

    def walk(self):
        yield self
        for child in self.routes:
            yield from child.walk()


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    """Receivers by name, the route tree and how to link to an alert.

    Examples
    --------
    >>> cfg = NotifyConfig.from_toml('''
    ... [route]
    ... receiver = "desk"
    ... group_wait = "10s"
    ... [[route.routes]]
    ... matchers = ['severity=~"high|critical"']
    ... receiver = "urgent"
    ... [[receivers]]
    ... name = "desk"
    ... type = "slack"
    ... webhook_secret = "slack_desk"
    ... [[receivers]]
    ... name = "urgent"
    ... type = "slack"
    ... webhook_secret = "slack_urgent"
    ... ''')
    >>> [r.receiver for r in cfg.routes_for({"severity": "high"})], [r.receiver for r in cfg.routes_for({"severity": "low"})]
    (['urgent'], ['desk'])
    >>> cfg.route.routes[0].group_wait
    10.0
    """

    route: Route
    receivers: Mapping[str, Receiver]
    alert_url: str | None = None

    @classmethod
    def from_toml(cls, text: str, *, base: Path | None = None) -> NotifyConfig:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise NotifyConfigError(f"the notifier configuration is not valid TOML: {exc}") from None
        return cls.from_dict(data, base=base)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base: Path | None = None) -> NotifyConfig:
        top = _Table(data, "notify configuration", ("global", "route", "receivers"))
        glob = _Table(top.get("global", dict, {}), "global", (
            "alert_url", "smtp_smarthost", "smtp_from", "smtp_auth_username", "smtp_auth_password_secret",
            "smtp_tls", "smtp_ca_file", "smtp_insecure_skip_verify",
        ))
        alert_url = glob.get("alert_url", str)
        if alert_url is not None and "{alert_id}" not in alert_url:
            raise NotifyConfigError("global.alert_url: must contain {alert_id}, e.g. https://transitwatch.example.org/alerts/{alert_id}")
        raw_receivers = top.get("receivers", list, [])
        if not raw_receivers:
            raise NotifyConfigError("receivers: define at least one [[receivers]] table")
        receivers: dict[str, Receiver] = {}
        for i, raw in enumerate(raw_receivers):
            receiver = _receiver(raw, f"receivers[{i}]", glob, base)
            if receiver.name in receivers:
                raise NotifyConfigError(f"receivers[{i}]: the name {receiver.name!r} is used twice")
            receivers[receiver.name] = receiver
        if "route" not in top.data:
            raise NotifyConfigError("route: the [route] table (with the default receiver) is missing")
        route = _route(top.get("route", dict), "route", "0", None, receivers)
        return cls(route=route, receivers=receivers, alert_url=alert_url)

    def routes_for(self, alert: Mapping[str, Any]) -> list[Route]:
        """The routes that take an alert record (each names its receiver)."""
        return self.route.match(alert_labels(alert))

    def secret_names(self) -> set[str]:
        """Every secret the receivers need."""
        names = set()
        for r in self.receivers.values():
            for attr in ("webhook_secret", "auth_password_secret", "url_secret"):
                value = getattr(r, attr, None)
                if value:
                    names.add(value)
        return names


def load_config(path: str | os.PathLike[str]) -> NotifyConfig:
    """Read and validate the notifier's TOML configuration file."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise NotifyConfigError(f"cannot read the notifier configuration {p}: {exc.strerror or exc}") from None
    try:
        return NotifyConfig.from_toml(text, base=p.parent)
    except NotifyConfigError as exc:
        raise NotifyConfigError(f"{p}: {exc}") from None


def _smarthost(value: str, where: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise NotifyConfigError(f"{where}: expected host:port such as smtp.example.org:587, got {value!r}")
    return host.strip("[]"), int(port)


def _receiver(raw: Any, where: str, glob: _Table, base: Path | None) -> Receiver:
    if not isinstance(raw, Mapping):
        raise NotifyConfigError(f"{where}: expected a table")
    kind = raw.get("type")
    if kind not in RECEIVER_TYPES:
        raise NotifyConfigError(f"{where}.type: expected one of {', '.join(RECEIVER_TYPES)}, got {kind!r}")
    common = ("name", "type", "max_alerts_per_message", "timeout")
    if kind == "slack":
        t = _Table(raw, where, (*common, "webhook_secret", "min_interval"))
    elif kind == "email":
        t = _Table(raw, where, (*common, "to", "from", "smarthost", "auth_username", "auth_password_secret",
                                "tls", "ca_file", "insecure_skip_verify"))
    else:
        t = _Table(raw, where, (*common, "url", "url_secret", "resolve_after"))
    name = t.get("name", str)
    if not name:
        raise NotifyConfigError(f"{where}.name: every receiver needs a name")
    where = f"receiver {name!r}"
    t.where = where
    timeout = t.duration("timeout", None)
    if timeout is not None and timeout <= 0:
        raise NotifyConfigError(f"{where}.timeout: must be > 0")
    if kind == "slack":
        if "webhook_secret" not in raw:
            raise NotifyConfigError(f"{where}.webhook_secret: name the secret that holds the webhook URL")
        interval = t.duration("min_interval", 1.0)
        per_message = t.positive_int("max_alerts_per_message", 8)
        if per_message > SLACK_MAX_ALERTS:
            raise NotifyConfigError(f"{where}.max_alerts_per_message: at most {SLACK_MAX_ALERTS} (Slack takes 50 blocks a message)")
        return SlackReceiver(
            name=name, webhook_secret=_secret_name(raw["webhook_secret"], f"{where}.webhook_secret"),
            max_alerts_per_message=per_message,
            min_interval=interval, timeout=timeout or 10.0,
        )
    if kind == "email":
        to = t.get("to", (str, list))
        to = [to] if isinstance(to, str) else to
        if not to or not all(isinstance(a, str) and "@" in a for a in to):
            raise NotifyConfigError(f"{where}.to: expected one or more email addresses, got {raw.get('to')!r}")
        sender = t.get("from", str) or glob.get("smtp_from", str)
        if not sender or "@" not in sender:
            raise NotifyConfigError(f"{where}.from: set the sender address here or as global.smtp_from")
        smarthost = t.get("smarthost", str) or glob.get("smtp_smarthost", str)
        if not smarthost:
            raise NotifyConfigError(f"{where}.smarthost: set host:port here or as global.smtp_smarthost")
        host, port = _smarthost(smarthost, f"{where}.smarthost")
        tls = t.get("tls", str) or glob.get("smtp_tls", str) or "starttls"
        if tls not in ("starttls", "tls", "none"):
            raise NotifyConfigError(f"{where}.tls: expected starttls, tls or none, got {tls!r}")
        password = t.get("auth_password_secret", str) or glob.get("smtp_auth_password_secret", str)
        username = t.get("auth_username", str) or glob.get("smtp_auth_username", str)
        if password and tls == "none":
            raise NotifyConfigError(f"{where}: refusing to send an SMTP password without TLS; set tls = \"starttls\" or \"tls\"")
        if bool(password) != bool(username):
            raise NotifyConfigError(f"{where}: set both auth_username and auth_password_secret, or neither")
        ca_file = t.get("ca_file", str) or glob.get("smtp_ca_file", str)
        if ca_file and base is not None and not os.path.isabs(ca_file):
            ca_file = str(base / ca_file)
        skip = t.get("insecure_skip_verify", bool)
        if skip is None:
            skip = glob.get("smtp_insecure_skip_verify", bool, False)
        return EmailReceiver(
            name=name, to=tuple(to), sender=sender, host=host, port=port, tls=tls,
            auth_username=username, auth_password_secret=_secret_name(password, f"{where}.auth_password_secret") if password else None,
            ca_file=ca_file, insecure_skip_verify=skip,
            max_alerts_per_message=t.positive_int("max_alerts_per_message", 20), timeout=timeout or 30.0,
        )
    url, url_secret = t.get("url", str), t.get("url_secret", str)
    if bool(url) == bool(url_secret):
        raise NotifyConfigError(f"{where}: set exactly one of url (e.g. http://127.0.0.1:9093) and url_secret")
    if url and not url.startswith(("http://", "https://")):
        raise NotifyConfigError(f"{where}.url: expected http:// or https://, got {url!r}")
    resolve_after = t.duration("resolve_after", 86400.0)
    if resolve_after <= 0:
        raise NotifyConfigError(f"{where}.resolve_after: must be > 0")
    return AlertmanagerReceiver(
        name=name, url=url, url_secret=_secret_name(url_secret, f"{where}.url_secret") if url_secret else None,
        resolve_after=resolve_after, max_alerts_per_message=t.positive_int("max_alerts_per_message", 64),
        timeout=timeout or 10.0,
    )


def _route(raw: Any, where: str, path: str, parent: Route | None, receivers: Mapping[str, Receiver]) -> Route:
    t = _Table(raw, where, ("receiver", "matchers", "continue", "group_by", "group_wait", "group_interval",
                            "repeat_interval", "routes"))
    receiver = t.get("receiver", str) or (parent.receiver if parent else None)
    if receiver is None:
        raise NotifyConfigError(f"{where}.receiver: the root route needs a default receiver")
    if receiver not in receivers:
        raise NotifyConfigError(f"{where}.receiver: no receiver is named {receiver!r} (known: {', '.join(receivers)})")
    if parent is None and ("matchers" in raw or "continue" in raw):
        raise NotifyConfigError(f"{where}: the root route takes every alert; it has no matchers and no continue")
    matchers = tuple(Matcher.parse(m, f"{where}.matchers[{i}]") for i, m in enumerate(t.get("matchers", list, [])))
    group_by_raw = t.get("group_by", list)
    if group_by_raw is None:
        group_by, group_by_all = (parent.group_by, parent.group_by_all) if parent else (("partner", "period"), False)
    elif group_by_raw == ["..."]:
        group_by, group_by_all = (), True
    else:
        for label in group_by_raw:
            if label not in LABELS:
                raise NotifyConfigError(f"{where}.group_by: unknown label {label!r}; use labels of {', '.join(LABELS)} or ['...']")
        group_by, group_by_all = tuple(group_by_raw), False
    defaults = parent or Route(path="", receiver=receiver)
    node = Route(
        path=path, receiver=receiver, matchers=matchers, continue_=t.get("continue", bool, False),
        group_by=group_by, group_by_all=group_by_all,
        group_wait=t.duration("group_wait", defaults.group_wait),
        group_interval=t.duration("group_interval", defaults.group_interval),
        repeat_interval=t.duration("repeat_interval", defaults.repeat_interval),
    )
    if node.group_interval <= 0:
        raise NotifyConfigError(f"{where}.group_interval: must be > 0")
    if node.repeat_interval < node.group_interval:
        raise NotifyConfigError(f"{where}.repeat_interval: must be at least group_interval")
    children = tuple(
        _route(child, f"{where}.routes[{i}]", f"{path}.{i}", node, receivers)
        for i, child in enumerate(t.get("routes", list, []))
    )
    return Route(**{**{f: getattr(node, f) for f in node.__dataclass_fields__}, "routes": children})
