"""What only Home Assistant's own code can do, run with its Python (the venv of :mod:`.install`).

Not imported by the tests: ``hass.py`` runs it as a script with Home Assistant's interpreter.

    python in_ha.py schema PAYLOADS.json          every discovery payload through HA's DISCOVERY_SCHEMA
    python in_ha.py token BASE ACCESS_TOKEN       a long-lived access token (websocket API)
    python in_ha.py registry BASE TOKEN           the entity and device registries (websocket API)

Each prints one JSON document on stdout.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from pathlib import Path
from typing import Any


def dropped_keys(given: dict[str, Any], kept: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys of ``given`` (and of its nested objects) that the schema did not keep: keys HA ignores."""
    dropped = []
    for key, value in given.items():
        if key not in kept:
            dropped.append(prefix + key)
        elif isinstance(value, dict) and isinstance(kept[key], dict):
            dropped += dropped_keys(value, kept[key], f"{prefix}{key}.")
    return dropped


async def check_schemas(payloads: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Topic -> {"dropped": [...], "error": message or None}, as HA's MQTT discovery validates it."""
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers import frame

    hass = HomeAssistant("/tmp")  # only for the frame helper the schemas consult; never started
    frame.async_setup(hass)
    found = {}
    for topic, payload in payloads.items():
        component = topic.split("/")[-4]
        schema = importlib.import_module(f"homeassistant.components.mqtt.{component}").DISCOVERY_SCHEMA
        try:
            kept = schema(dict(payload))
        except Exception as exc:  # noqa: BLE001 - voluptuous's Invalid and anything else: reported, not raised
            found[topic] = {"dropped": [], "error": f"{type(exc).__name__}: {exc}"}
        else:
            found[topic] = {"dropped": dropped_keys(payload, dict(kept)), "error": None}
    return found


async def websocket(base: str, token: str, *messages: dict[str, Any]) -> list[Any]:
    """Send ``messages`` over HA's websocket API, signed in with ``token``; their results in order."""
    import aiohttp

    results = []
    async with aiohttp.ClientSession() as session, session.ws_connect(base.replace("http", "ws", 1)
                                                                       + "/api/websocket") as ws:
        await ws.receive_json()  # auth_required
        await ws.send_json({"type": "auth", "access_token": token})
        answer = await ws.receive_json()
        if answer.get("type") != "auth_ok":
            raise SystemExit(f"websocket sign-in refused: {answer}")
        for number, message in enumerate(messages, start=1):
            await ws.send_json({"id": number, **message})
            while (reply := await ws.receive_json()).get("id") != number:
                pass  # events of other subscriptions: none are opened here
            if not reply.get("success"):
                raise SystemExit(f"{message['type']} failed: {reply.get('error')}")
            results.append(reply["result"])
    return results


def main(argv: list[str]) -> None:
    what, *args = argv
    if what == "schema":
        result: Any = asyncio.run(check_schemas(json.loads(Path(args[0]).read_text())))
    elif what == "token":
        base, access = args
        [result] = asyncio.run(websocket(base, access, {"type": "auth/long_lived_access_token",
                                                        "client_name": "stonewarmer tests", "lifespan": 1}))
    elif what == "registry":
        base, token = args
        entities, devices = asyncio.run(websocket(base, token, {"type": "config/entity_registry/list"},
                                                  {"type": "config/device_registry/list"}))
        result = {"entities": entities, "devices": devices}
    else:
        raise SystemExit(f"unknown command {what!r}: schema, token or registry")
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
