"""What the phone is told: the one table of notification texts, in a therapist's words.

:func:`wanted` picks the events worth a notification (it runs on the thread that
recorded the event, often the control thread: a set lookup, nothing more);
:func:`message_for` words one on the sending worker; :func:`merge` makes one
notification of several (faults first) when they pile up behind the rate limit
or an outage.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from controller.core.events import Event, EventKind
from controller.core.faults import ADVICE, FaultKind


class Priority(IntEnum):
    """ntfy's priorities (1-5); Apprise gets the nearest of its notification types."""

    MIN = 1
    LOW = 2
    DEFAULT = 3
    HIGH = 4
    URGENT = 5


@dataclass(frozen=True, slots=True)
class Message:
    """One notification. ``tags`` are ntfy tags: those named like emoji show as the emoji."""

    title: str
    body: str
    priority: Priority
    tags: tuple[str, ...]
    urgent: bool            # a fault: never dropped, never held back by the rate limit
    wall_time_s: float      # when it happened (time.time())


@dataclass(frozen=True, slots=True)
class Text:
    title: str
    body: str               # a str.format template: {temperature} {setpoint} {by} {message} {advice}
    priority: Priority
    tags: tuple[str, ...]


#: Event kind -> what the phone shows. A fault's title comes from FAULT_TITLES.
TEXTS: dict[EventKind, Text] = {
    EventKind.FAULT: Text("", "{advice}\n\nWhat happened: {message}.", Priority.URGENT, ("rotating_light",)),
    EventKind.START: Text("Warmer restarted with a fault: heater off",
                          "The warmer restarted and the fault from before is still there, so the heater stays "
                          "off. {advice}", Priority.HIGH, ("warning",)),
    EventKind.READY: Text("Stones ready", "The water is at {temperature}: the stones are ready to use.",
                          Priority.DEFAULT, ("white_check_mark",)),
    EventKind.OFF: Text("Warmer switched off",
                        "Switched off {by}. The heater stays off; the temperature is still watched.",
                        Priority.LOW, ("zzz",)),
    EventKind.ON: Text("Warmer switched on", "Switched on {by}: warming to {setpoint}.", Priority.LOW,
                       ("hotsprings",)),
    EventKind.NOTICE: Text("Warmer needs a look", "{message}.", Priority.HIGH, ("warning",)),
    EventKind.AUTO_ON: Text("Warming up on schedule", "Switched on {by}: {message}.", Priority.LOW,
                            ("alarm_clock",)),
    EventKind.AUTO_OFF: Text("Warmer switched itself off",
                             "Switched off {by}: {message}. The temperature is still watched; switch it on "
                             "again from the dashboard.", Priority.DEFAULT, ("zzz",)),
    EventKind.AUTO_OFF_WARNING: Text("Warmer switches itself off in 15 min",
                                     "Auto-off: {message}. Tap Extend on the dashboard to keep it on.",
                                     Priority.HIGH, ("hourglass",)),
    EventKind.CLOCK_UNSYNCED: Text("Warmer's clock not set: schedule waiting",
                                   "{message}. Check the warmer's network connection (it sets its clock from "
                                   "the internet); switch it on by hand if clients are due.", Priority.HIGH,
                                   ("warning",)),
}

FAULT_TITLES: dict[FaultKind, str] = {
    FaultKind.STUCK_RELAY: "UNPLUG THE HEATER: relay stuck on",
    FaultKind.OVERTEMP: "Water too hot: heater off",
    FaultKind.OVER_TARGET: "Water too far above the set temperature: heater off",
    FaultKind.PROBE_DISAGREE: "Probes disagree: heater off",
    FaultKind.SENSOR: "Probe problem: heater off",
    FaultKind.HEATING: "Water not warming up: heater off",
    FaultKind.STATE: "Settings problem: heater off",
}

#: Who switched the warmer off or on, by the event's source.
BY_SOURCE = {
    "web": "from the dashboard",
    "mqtt": "from Home Assistant",
    "api": "through the API",
    "cli": "from the command line",
    "schedule": "by the schedule",
    "auto-off": "by auto-off",
}

#: The sources of the notices that are a problem to look at (others, e.g. new gains, are not sent).
PROBLEM_SOURCES = frozenset({"state", "probe", "clock"})


def wanted(event: Event) -> bool:
    """Whether ``event`` becomes a notification. Cheap: runs on the recording thread."""
    if event.kind == EventKind.NOTICE:
        return event.source in PROBLEM_SOURCES
    if event.kind == EventKind.START:
        return event.fault is not None  # only a start with a fault latched across the restart
    return event.kind in TEXTS


def is_urgent(event: Event) -> bool:
    """A fault (or a fault still latched at start): always sent, never dropped or held back."""
    return event.fault is not None and event.kind in (EventKind.FAULT, EventKind.START)


def _celsius(value: float | None) -> str:
    return "an unknown temperature" if value is None else f"{value:.1f} °C"


def _by(source: str) -> str:
    if source.startswith("token:"):
        return f"through the API ({source.removeprefix('token:')})"
    return BY_SOURCE.get(source, f"({source})")


def message_for(event: Event) -> Message:
    """The notification for a :func:`wanted` event."""
    text = TEXTS[event.kind]
    title = text.title
    advice = ""
    if event.fault is not None:
        advice = ADVICE.get(event.fault, "")
        if event.kind == EventKind.FAULT:
            title = FAULT_TITLES.get(event.fault, "Fault: heater off")
    body = text.body.format(
        temperature=_celsius(event.temperature_c), setpoint=_celsius(event.setpoint_c), by=_by(event.source),
        message=event.message.replace(" degC", " °C").rstrip("."), advice=advice)
    return Message(title, body.strip(), text.priority, text.tags, is_urgent(event), event.wall_time_s)


def merge(messages: Sequence[Message]) -> Message:
    """One notification for several: the most pressing first, each with its time of day."""
    if len(messages) == 1:
        return messages[0]
    ordered = sorted(messages, key=lambda m: (-m.priority, m.wall_time_s))
    first = ordered[0]
    tags = tuple(dict.fromkeys(tag for m in ordered for tag in m.tags))
    body = "\n\n".join(f"{time.strftime('%H:%M', time.localtime(m.wall_time_s))} {m.title}: {m.body}"
                       for m in ordered)
    return Message(f"{first.title} (+{len(ordered) - 1} more)", body, first.priority, tags,
                   any(m.urgent for m in ordered), first.wall_time_s)
