"""Configuration: one TOML file, validated into a frozen, typed object.

Every key has a type, a default, an allowed range and a unit. A bad value or an
unknown key is refused with one message naming the key, the value and what is
allowed; nothing else happens (no GPIO is touched before the config is valid).

The temperature limits come from docs/field-notes.md ("Safe temperatures"):
stones above 54.4 degC are too hot to handle, water at 55 degC burns in ~30 s.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from controller.core.calibration import MAX_OFFSET_C
from controller.core.numbers import finite_float
from controller.core.presets import DEFAULT_PRESETS, Presets
from controller.core.weekly import Schedule

#: No config, API, CLI or MQTT path can set a setpoint above this (degC).
ABSOLUTE_MAX_SETPOINT_C = 57.0
#: The hard cutoff may not be set higher than this (degC).
ABSOLUTE_MAX_CUTOFF_C = 60.0
#: The cutoff must sit at least this far above the highest allowed setpoint (degC).
CUTOFF_MARGIN_C = 3.0

#: Relay kinds: (time-proportioning window s, minimum on/off time s).
#: A mechanical relay wears out after ~1e5 cycles, an SSR does not (docs/field-notes.md, "Control").
RELAY_KINDS = {"mechanical": (60.0, 10.0), "ssr": (10.0, 1.0)}

DEFAULT_PATH = Path("/etc/stonewarmer/stonewarmer.toml")

#: The BCM GPIO numbers of the Raspberry Pi's 40-pin header (GPIO0-GPIO27).
GPIO_PINS = range(28)


class ConfigError(ValueError):
    """A config value or file that is refused; the message says what is allowed."""


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    w1_dir: str = "/sys/bus/w1/devices"
    id: str = ""            # empty: the first DS18B20 found
    safety_id: str = ""     # empty: no second probe
    read_timeout_s: float = 3.0
    offset_c: float = 0.0   # added to the reading (calibration); the safety rules judge the hotter of both


@dataclass(frozen=True, slots=True)
class RelayConfig:
    pin: int = 17
    active_high: bool = True
    kind: str = "mechanical"
    window_s: float = 0.0      # 0: the kind's default
    min_switch_s: float = 0.0  # 0: the kind's default

    @property
    def effective_window_s(self) -> float:
        return self.window_s or RELAY_KINDS[self.kind][0]

    @property
    def effective_min_switch_s(self) -> float:
        return self.min_switch_s or RELAY_KINDS[self.kind][1]


@dataclass(frozen=True, slots=True)
class ControlConfig:
    setpoint_c: float = 52.0
    min_setpoint_c: float = 35.0
    max_setpoint_c: float = 54.0
    cutoff_c: float = 58.0
    kp: float = 0.5     # duty per degC of error
    ki: float = 0.001   # duty per degC*s of accumulated error
    kd: float = 1.0     # duty per degC/s of rate of change (on the measurement)
    resume_after_power_cut: bool = True


@dataclass(frozen=True, slots=True)
class HeaterConfig:
    """What the heater's label says. The warmer learns its bath without it; with it, it also
    says how much water and stones it is heating (docs/control.md, "The bath model")."""

    power_w: float = 0.0  # the wattage on the label; 0: unknown


@dataclass(frozen=True, slots=True)
class StateConfig:
    dir: str = "/var/lib/stonewarmer"


@dataclass(frozen=True, slots=True)
class WebConfig:
    host: str = "0.0.0.0"
    port: int = 8080
    threads: int = 16
    open_viewing: bool = True  # False: even the live status needs a sign-in
    # With open_viewing, what else anyone on the network may read without signing in.
    open_history: bool = False   # /api/history, /api/history.csv
    open_events: bool = False    # /api/events (who changed what)
    open_metrics: bool = False   # /metrics
    open_api_doc: bool = False   # /api/openapi.json
    max_streams: int = 8       # live-update streams open at once; each holds a thread
    # Host names the dashboard answers to besides IP literals, localhost, this host's name and
    # <name>.local; any other Host header gets 421 (DNS rebinding: docs/field-notes.md, "More facts: ...").
    allowed_hosts: tuple[str, ...] = ()
    session_idle_h: float = 12.0  # a browser not seen for this long must sign in again
    connections_per_client: int = 24  # open connections one client address may hold


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """MQTT bridge and Home Assistant discovery (controller/integrations/mqtt/; docs/integrations.md)."""

    enabled: bool = False
    host: str = "localhost"
    port: int = 1883
    tls: bool = False
    ca_file: str = ""          # empty: the system's CA certificates (with tls = true)
    username: str = ""
    password_file: str = ""    # a file holding the password (never the password itself)
    base_topic: str = "stonewarmer"
    name: str = ""             # unique per warmer; empty: derived from the host name and machine id
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    publish_interval_s: float = 30.0
    keepalive_s: int = 30
    dashboard_url: str = ""    # Home Assistant's "Visit" link; empty: built from [web]


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    """Notifications on the phone (controller/integrations/notify/; docs/integrations.md). Off without a URL."""

    ntfy_url: str = ""          # the ntfy server and topic, e.g. "https://ntfy.sh/room-1-x7k2"
    ntfy_token_file: str = ""   # a file whose first line is an ntfy access token (never the token itself)
    apprise_urls: tuple[str, ...] = ()  # other services through Apprise (the notify extra)
    dashboard_url: str = ""     # what a tap on a notification opens; empty: as [mqtt] dashboard_url
    burst: int = 5              # notifications sent at once before the rate limit holds them back ...
    interval_s: float = 60.0    # ... then at most one per this, the held ones merged into it
    queue_size: int = 50        # notifications waiting to be sent; when full the oldest non-fault one goes
    timeout_s: float = 10.0     # for one attempt to send


@dataclass(frozen=True, slots=True)
class Config:
    probe: ProbeConfig = ProbeConfig()
    relay: RelayConfig = RelayConfig()
    control: ControlConfig = ControlConfig()
    heater: HeaterConfig = HeaterConfig()
    state: StateConfig = StateConfig()
    web: WebConfig = WebConfig()
    mqtt: MqttConfig = MqttConfig()
    notify: NotifyConfig = NotifyConfig()
    presets: Presets = DEFAULT_PRESETS    # [presets]: named setpoints (controller/core/presets.py)
    schedule: Schedule = Schedule()       # [schedule]: ready-by, off-at, auto-off (controller/core/weekly.py)

#: Sections that are not flat key = value tables: each has its own parser (which raises ValueError).
_PARSERS: dict[str, Any] = {"presets": Presets.from_table, "schedule": Schedule.from_table}


# Allowed ranges, (low, high) inclusive, with the unit named in messages.
_RANGES: dict[tuple[str, str], tuple[float, float, str]] = {
    ("probe", "read_timeout_s"): (0.5, 10.0, "s"),
    ("probe", "offset_c"): (-MAX_OFFSET_C, MAX_OFFSET_C, "degC"),
    ("relay", "pin"): (GPIO_PINS[0], GPIO_PINS[-1], "(BCM GPIO number)"),
    ("relay", "window_s"): (0.0, 600.0, "s (0 = the kind's default)"),
    ("relay", "min_switch_s"): (0.0, 120.0, "s (0 = the kind's default)"),
    ("control", "setpoint_c"): (20.0, ABSOLUTE_MAX_SETPOINT_C, "degC"),
    ("control", "min_setpoint_c"): (20.0, ABSOLUTE_MAX_SETPOINT_C, "degC"),
    ("control", "max_setpoint_c"): (20.0, ABSOLUTE_MAX_SETPOINT_C, "degC"),
    ("control", "cutoff_c"): (23.0, ABSOLUTE_MAX_CUTOFF_C, "degC"),
    ("control", "kp"): (0.0, 10.0, "per degC"),
    ("control", "ki"): (0.0, 1.0, "per degC*s"),
    ("control", "kd"): (0.0, 1000.0, "s per degC"),
    ("heater", "power_w"): (0.0, 3000.0, "W (0 = unknown)"),
    ("web", "port"): (1, 65535, ""),
    ("web", "threads"): (2, 64, "threads"),
    ("web", "max_streams"): (1, 62, "streams"),
    ("web", "session_idle_h"): (0.1, 720.0, "h"),
    ("web", "connections_per_client"): (4, 400, "connections"),
    ("mqtt", "port"): (1, 65535, ""),
    ("mqtt", "publish_interval_s"): (1.0, 3600.0, "s"),
    ("mqtt", "keepalive_s"): (5, 600, "s"),
    ("notify", "burst"): (1, 30, "notifications"),
    ("notify", "interval_s"): (10.0, 3600.0, "s"),
    ("notify", "queue_size"): (10, 1000, "notifications"),
    ("notify", "timeout_s"): (1.0, 60.0, "s"),
}
# Lists of strings: the most entries allowed (each entry is checked against _PATTERNS).
_LIST_LENGTHS: dict[tuple[str, str], int] = {
    ("notify", "apprise_urls"): 5,
}
_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("relay", "kind"): tuple(RELAY_KINDS),
}
# Strings with a required shape: (regular expression, what is allowed).
_TOPIC_LEVELS = r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST_NAME = rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*"
_PATTERNS: dict[tuple[str, str], tuple[str, str]] = {
    ("mqtt", "name"): (r"([A-Za-z0-9_-]{1,64})?", 'letters, digits, "-" and "_" (at most 64), or "" for automatic'),
    ("mqtt", "base_topic"): (_TOPIC_LEVELS, 'topic levels of letters, digits, "-" and "_" separated by "/"'),
    ("mqtt", "discovery_prefix"): (_TOPIC_LEVELS, 'topic levels of letters, digits, "-" and "_" separated by "/"'),
    ("mqtt", "host"): (r"[A-Za-z0-9.:_-]+", "a host name or IP address"),
    ("web", "allowed_hosts"): (_HOST_NAME, 'host names of letters, digits, "-" and "." (e.g. "warmer.lan"), '
                                           "without a port"),
    ("mqtt", "dashboard_url"): (r"(https?://[^\s/?#]+(/\S*)?)?",
                                'an http:// or https:// address, or "" to build it from [web]'),
    ("notify", "ntfy_url"): (r"(https?://[^\s/?#]+/[^\s?#]*[^\s?#/])?",
                             'an http:// or https:// address ending in the topic, e.g. '
                             '"https://ntfy.sh/your-topic", or "" for none'),
    ("notify", "dashboard_url"): (r"(https?://[^\s/?#]+(/\S*)?)?",
                                  'an http:// or https:// address, or "" for the one of [mqtt] dashboard_url'),
    ("notify", "apprise_urls"): (r"[A-Za-z][A-Za-z0-9+.-]*://\S{1,1000}",
                                 'an Apprise URL such as "tgram://bottoken/chatid" (no spaces, at most 1000 '
                                 'characters)'),
}


def _check_value(section: str, key: str, value: Any, default: Any) -> Any:
    where = f"[{section}] {key}"
    expected = type(default)
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} = {value!r} is not allowed: must be true or false")
        return value
    if expected in (int, float):
        # TOML distinguishes 52 from 52.0; accept an int where a float is wanted.
        ok = isinstance(value, int) if expected is int else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            kind = "a whole number" if expected is int else "a number"
            raise ConfigError(f"{where} = {value!r} is not allowed: must be {kind}")
        if finite_float(value) is None:  # NaN, inf, or an int too large for a float (a state file's)
            raise ConfigError(f"{where} = {value!r:.40} is not allowed: must be a finite number")
        value = expected(value)
        if (section, key) in _RANGES:
            low, high, unit = _RANGES[(section, key)]
            if not low <= value <= high:
                raise ConfigError(
                    f"{where} = {value!r} is not allowed: must be between {low:g} and {high:g} {unit}".rstrip()
                )
        return value
    if expected is tuple:  # a list of strings, each checked like a string key
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {value!r} is not allowed: must be a list of strings, e.g. [\"a\", \"b\"]")
        most = _LIST_LENGTHS.get((section, key))
        if most is not None and len(value) > most:
            raise ConfigError(f"{where} = {value!r} is not allowed: must be a list of at most {most} strings")
        return tuple(_check_value(section, key, item, "") for item in value)
    if not isinstance(value, str):
        raise ConfigError(f"{where} = {value!r} is not allowed: must be a string in quotes")
    if (section, key) in _CHOICES and value not in _CHOICES[(section, key)]:
        allowed = ", ".join(f'"{c}"' for c in _CHOICES[(section, key)])
        raise ConfigError(f"{where} = {value!r} is not allowed: must be one of {allowed}")
    if (section, key) in _PATTERNS and not re.fullmatch(_PATTERNS[(section, key)][0], value):
        raise ConfigError(f"{where} = {value!r} is not allowed: must be {_PATTERNS[(section, key)][1]}")
    return value


def _check_relations(cfg: Config) -> None:
    """Rules that tie several keys together; each names the keys involved."""
    c = cfg.control
    if c.min_setpoint_c > c.max_setpoint_c:
        raise ConfigError(
            f"[control] min_setpoint_c = {c.min_setpoint_c:g} is not allowed: "
            f"must not be above max_setpoint_c = {c.max_setpoint_c:g} degC"
        )
    if not c.min_setpoint_c <= c.setpoint_c <= c.max_setpoint_c:
        raise ConfigError(
            f"[control] setpoint_c = {c.setpoint_c:g} is not allowed: must be between "
            f"min_setpoint_c = {c.min_setpoint_c:g} and max_setpoint_c = {c.max_setpoint_c:g} degC"
        )
    if c.cutoff_c < c.max_setpoint_c + CUTOFF_MARGIN_C:
        raise ConfigError(
            f"[control] cutoff_c = {c.cutoff_c:g} is not allowed: must be at least "
            f"max_setpoint_c + {CUTOFF_MARGIN_C:g} = {c.max_setpoint_c + CUTOFF_MARGIN_C:g} "
            f"and at most {ABSOLUTE_MAX_CUTOFF_C:g} degC"
        )
    r = cfg.relay
    if r.effective_min_switch_s * 2 > r.effective_window_s:
        raise ConfigError(
            f"[relay] min_switch_s = {r.effective_min_switch_s:g} is not allowed: must be at most "
            f"half of window_s = {r.effective_window_s:g} s"
        )
    w = cfg.web
    if w.max_streams > w.threads - 2:
        raise ConfigError(
            f"[web] max_streams = {w.max_streams} is not allowed: must be at most "
            f"threads - 2 = {w.threads - 2} (two threads stay free for the page and the API)"
        )
    for key in ("open_history", "open_events", "open_metrics", "open_api_doc"):
        if getattr(w, key) and not w.open_viewing:
            raise ConfigError(f"[web] {key} = true is not allowed with open_viewing = false: "
                              "set open_viewing = true too, or remove the key")
    if cfg.probe.safety_id and cfg.probe.safety_id == cfg.probe.id:
        raise ConfigError(
            f"[probe] safety_id = {cfg.probe.safety_id!r} is not allowed: must differ from [probe] id"
        )
    m = cfg.mqtt
    if m.password_file and not m.username:
        raise ConfigError(f"[mqtt] password_file = {m.password_file!r} is not allowed without a username: "
                          "set [mqtt] username too")
    if m.ca_file and not m.tls:
        raise ConfigError(f"[mqtt] ca_file = {m.ca_file!r} is not allowed with tls = false: set tls = true")
    try:
        cfg.presets.check_range(c.min_setpoint_c, c.max_setpoint_c)
        cfg.schedule.check_presets(cfg.presets.names)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    n = cfg.notify
    if n.ntfy_token_file and not n.ntfy_url:
        raise ConfigError(f"[notify] ntfy_token_file = {n.ntfy_token_file!r} is not allowed without an "
                          "ntfy_url: set [notify] ntfy_url too")


def from_dict(data: dict[str, Any]) -> Config:
    """Validate a parsed TOML document into a :class:`Config`."""
    default = Config()
    sections: dict[str, Any] = {f.name: getattr(default, f.name) for f in fields(Config)}
    built: dict[str, Any] = {}
    for section, table in data.items():
        if section not in sections:
            raise ConfigError(
                f"[{section}] is not a known section: allowed are {', '.join(sorted(sections))}"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{section} = {table!r} is not allowed: must be a [{section}] table")
        if section in _PARSERS:
            try:
                built[section] = _PARSERS[section](table)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            continue
        defaults = sections[section]
        known = {f.name: getattr(defaults, f.name) for f in fields(defaults)}
        values = {}
        for key, value in table.items():
            if key not in known:
                raise ConfigError(
                    f"[{section}] {key} is not a known key: allowed are {', '.join(sorted(known))}"
                )
            values[key] = _check_value(section, key, value, known[key])
        built[section] = type(defaults)(**values)
    cfg = Config(**built)
    c = cfg.control
    if "presets" not in built:  # the built-in ones, brought within this warmer's range
        cfg = dataclasses.replace(cfg, presets=DEFAULT_PRESETS.clamped(c.min_setpoint_c, c.max_setpoint_c))
    _check_relations(cfg)
    return cfg


def load(path: str | Path) -> Config:
    """Read and validate the config file at ``path``; raise :class:`ConfigError`."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        return from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def replace(cfg: Config, section: str, **changes: Any) -> Config:
    """A copy of ``cfg`` with some keys of one section changed, validated again."""
    data = {f.name: {k.name: getattr(getattr(cfg, f.name), k.name) for k in fields(getattr(cfg, f.name))}
            for f in fields(Config) if f.name not in _PARSERS}
    data.update({name: getattr(cfg, name).to_table() for name in _PARSERS})
    if cfg.presets == DEFAULT_PRESETS.clamped(cfg.control.min_setpoint_c, cfg.control.max_setpoint_c):
        del data["presets"]  # the built-in ones: clamped again to the new range
    data[section].update(changes)
    return from_dict(data)


def checked_gains(cfg: Config, *, kp: Any, ki: Any, kd: Any) -> ControlConfig:
    """``cfg``'s [control] with these PID gains, checked as the config file's own keys are (numbers,
    finite, within the allowed ranges): saved gains at start, tuned gains before they are saved.
    Raises :class:`ConfigError` naming the first value refused and what is allowed."""
    return replace(cfg, "control", kp=kp, ki=ki, kd=kd).control
