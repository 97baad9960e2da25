"""off, on, preset, extend and settings export/import against a running control process (a real
control socket), and a clear one-line error when no service runs."""

from __future__ import annotations

import errno
import json
import os

import pytest

from controller.cli import main as cli
from controller.service.control import ControlServer, socket_path
from controller.service.session import SessionHub
from tests.helpers import run_ticks


@pytest.fixture
def service(make_controller, clock, tree, tmp_path):
    """A controller behind its control socket, and the config file that names its state dir."""
    controller = make_controller()
    run_ticks(controller, clock, tree, [40.0] * 2)
    server = ControlServer(socket_path(controller.cfg.state.dir), SessionHub(controller).commands())
    server.start()
    config = tmp_path / "stonewarmer.toml"
    config.write_text(f'[state]\ndir = "{controller.cfg.state.dir}"\n')
    yield controller, str(config)
    server.stop()


def test_off_on_preset_and_extend_reach_the_running_controller(service, capsys):
    controller, config = service
    assert cli.main(["off", "--config", config]) == 0 and controller.switched_off
    assert "switched off: heater held off" in capsys.readouterr().out
    assert cli.main(["extend", "--config", config]) == 2  # nothing to push back while off
    assert "switched off" in capsys.readouterr().err
    assert cli.main(["on", "--config", config]) == 0 and not controller.switched_off
    assert cli.main(["preset", "Face", "--config", config]) == 0 and controller.setpoint_c == 48.0
    assert cli.main(["extend", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "switched on" in out and "setpoint 48.0 degC" in out and "in 10.0 h" in out
    assert [e.source for e in controller.events.since(0)][-4:] == ["cli", "cli", "cli (preset Face)", "cli"]


def test_an_unknown_preset_is_one_line_with_the_allowed_names(service, capsys):
    controller, config = service
    assert cli.main(["preset", "Hot", "--config", config]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "allowed are Body, Face, Feet" in err and controller.setpoint_c == 52.0


def test_settings_export_then_import_round_trips_and_a_wrong_file_changes_nothing(service, tmp_path, capsys):
    controller, config = service
    out = tmp_path / "settings.json"
    assert cli.main(["settings", "--config", config, "export", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc == {**controller.settings(), "notify": {"ntfy_url": None}}
    doc["presets"] = [{"name": "Hands", "setpoint_c": 49.0}]
    out.write_text(json.dumps(doc))
    assert cli.main(["settings", "--config", config, "import", str(out)]) == 0
    assert controller.settings()["presets"] == doc["presets"]
    doc["presets"] = [{"name": "Hot", "setpoint_c": 70.0}]
    out.write_text(json.dumps(doc))
    assert cli.main(["settings", "--config", config, "import", str(out)]) == 2
    assert "max_setpoint_c" in capsys.readouterr().err
    assert controller.settings()["presets"] == [{"name": "Hands", "setpoint_c": 49.0}]


def test_a_settings_export_the_disk_refuses_leaves_the_previous_file_whole(service, tmp_path, capsys, monkeypatch):
    _controller, config = service
    out = tmp_path / "settings.json"
    out.write_text('{"kept": true}')

    def full_card(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full_card)
    assert cli.main(["settings", "--config", config, "export", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "nothing was written" in err
    assert out.read_text() == '{"kept": true}' and [p.name for p in tmp_path.iterdir() if "settings" in p.name] == \
        ["settings.json"]


@pytest.mark.parametrize("argv", [["off"], ["on"], ["preset", "Body"], ["extend"], ["settings", "export"]])
def test_with_no_service_running_each_says_so_in_one_line(tmp_path, capsys, argv):
    config = tmp_path / "stonewarmer.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n')
    head, *rest = argv
    assert cli.main([head, "--config", str(config), *rest]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the stonewarmer service is not running" in err
