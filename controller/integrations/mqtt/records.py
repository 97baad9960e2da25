"""What the bridge retained on which broker, kept on disk: ``<state dir>/mqtt-retained/<host>_<port>.json``.

Retained topics outlive the warmer; the record is what lets a later run (or
``stonewarmer mqtt-clear``) remove them once ``[mqtt]`` is gone or moved.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from controller.core import config as cfgmod
from controller.core.atomic import atomic_write

log = logging.getLogger("stonewarmer.mqtt")

RECORD_DIR = "mqtt-retained"
RECORD_VERSION = 1


@dataclass(frozen=True, slots=True)
class Broker:
    """How to reach a broker (the password stays in its file)."""

    host: str
    port: int
    tls: bool = False
    ca_file: str = ""
    username: str = ""
    password_file: str = ""
    keepalive_s: int = 30

    @classmethod
    def from_config(cls, m: cfgmod.MqttConfig) -> Broker:
        return cls(host=m.host, port=m.port, tls=m.tls, ca_file=m.ca_file, username=m.username,
                   password_file=m.password_file, keepalive_s=m.keepalive_s)

    @property
    def where(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def record_name(self) -> str:
        return f"{self.host}_{self.port}.json"


@dataclass(frozen=True, slots=True)
class Record:
    """The retained topics one warmer published on one broker."""

    broker: Broker
    node: str
    topics: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps({"version": RECORD_VERSION, "broker": asdict(self.broker), "node": self.node,
                           "topics": list(self.topics)}, indent=2)


def records_dir(state_dir: str | Path) -> Path:
    """Where the records of ``state_dir`` are kept."""
    return Path(state_dir) / RECORD_DIR


def load_records(state_dir: str | Path) -> list[Record]:
    """Every readable record in the state dir; an unreadable one is reported and skipped."""
    found = []
    for path in sorted(records_dir(state_dir).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != RECORD_VERSION:
                raise ValueError(f"not version {RECORD_VERSION}")
            found.append(Record(Broker(**data["broker"]), str(data["node"]),
                                tuple(str(t) for t in data["topics"])))
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.error("%s: unusable record of retained MQTT topics (%s); not clearing them", path, exc)
    return found


def save_record(state_dir: str | Path, record: Record) -> None:
    """Write the record atomically: a power cut leaves the old or the new one."""
    atomic_write(records_dir(state_dir) / record.broker.record_name, record.to_json(), mode=0o600)


def delete_record(state_dir: str | Path, broker: Broker) -> None:
    """Forget what was retained on ``broker`` (it has confirmed the clearing)."""
    (records_dir(state_dir) / broker.record_name).unlink(missing_ok=True)
