"""The config: validated into a frozen object; every refusal names key, value and what is allowed."""

from __future__ import annotations

import dataclasses
import re

import pytest

from controller.core import config as cfgmod
from tests.helpers import REPO

SHIPPED = REPO / "config" / "stonewarmer.toml"


def test_the_shipped_config_loads_and_equals_the_built_in_defaults():
    assert cfgmod.load(SHIPPED) == cfgmod.Config()


def test_every_key_in_the_shipped_config_is_commented():
    lines = SHIPPED.read_text().splitlines()
    is_key = re.compile(r"^\w+\s*=").match
    for i, line in enumerate(lines):
        if is_key(line):
            above = i - 1
            while is_key(lines[above]):   # kp/ki/kd share one comment
                above -= 1
            assert lines[above].startswith("#"), f"{line!r} has no comment above it"


def test_every_known_key_is_in_the_shipped_config():
    text = SHIPPED.read_text()
    for section in dataclasses.fields(cfgmod.Config):
        assert f"[{section.name}]" in text
        if hasattr(section.default, "to_table"):  # [presets], [schedule]: their keys are names, days
            for key in section.default.to_table():
                assert re.search(rf"^(# )?{key}\s*=", text, re.M), f"[{section.name}] {key} missing"
            continue
        for key in dataclasses.fields(section.default):
            # An opt-in section ([mqtt]) ships commented out, key by key.
            assert re.search(rf"^(# )?{key.name}\s*=", text, re.M), f"[{section.name}] {key.name} missing"


def test_config_is_frozen():
    cfg = cfgmod.Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.control.cutoff_c = 99.0


def test_relay_kind_sets_window_and_minimum_switch_time():
    mech = cfgmod.from_dict({"relay": {"kind": "mechanical"}}).relay
    ssr = cfgmod.from_dict({"relay": {"kind": "ssr"}}).relay
    assert (mech.effective_window_s, mech.effective_min_switch_s) == (60.0, 10.0)
    assert (ssr.effective_window_s, ssr.effective_min_switch_s) == (10.0, 1.0)
    own = cfgmod.from_dict({"relay": {"kind": "ssr", "window_s": 20, "min_switch_s": 2}}).relay
    assert (own.effective_window_s, own.effective_min_switch_s) == (20.0, 2.0)


@pytest.mark.parametrize(("data", "names"), [
    ({"control": {"max_setpoint_c": 57.5, "cutoff_c": 60.0}}, ["max_setpoint_c", "57.5", "57"]),
    ({"control": {"setpoint_c": 55.0}}, ["setpoint_c", "55", "max_setpoint_c"]),
    ({"control": {"cutoff_c": 56.0}}, ["cutoff_c", "56", "max_setpoint_c + 3", "57"]),
    ({"control": {"cutoff_c": 61.0}}, ["cutoff_c", "61", "60"]),
    ({"control": {"min_setpoint_c": 50.0, "max_setpoint_c": 45.0, "setpoint_c": 48.0}},
     ["min_setpoint_c", "max_setpoint_c"]),
    ({"control": {"kp": "fast"}}, ["kp", "'fast'", "a number"]),
    ({"control": {"kp": float("nan")}}, ["kp", "nan", "finite"]),
    ({"control": {"setpoint_c": True}}, ["setpoint_c", "True", "a number"]),
    ({"control": {"stepoint_c": 50.0}}, ["stepoint_c", "not a known key", "setpoint_c"]),
    ({"heaters": {"power_w": 1200}}, ["[heaters]", "not a known section"]),
    ({"heater": {"power_w": 5000}}, ["power_w", "5000", "0 and 3000"]),
    ({"relay": {"pin": 40}}, ["pin", "40", "0 and 27"]),
    ({"relay": {"pin": 17.5}}, ["pin", "17.5", "whole number"]),
    ({"relay": {"kind": "solid"}}, ["kind", "'solid'", '"mechanical"', '"ssr"']),
    ({"relay": {"active_high": "yes"}}, ["active_high", "'yes'", "true or false"]),
    ({"relay": {"window_s": 10.0, "min_switch_s": 8.0}}, ["min_switch_s", "half of window_s"]),
    ({"probe": {"id": "abc", "safety_id": "abc"}}, ["safety_id", "must differ"]),
    ({"web": {"port": 0}}, ["port", "0", "1 and 65535"]),
    ({"control": 5}, ["control", "table"]),
])
def test_bad_values_are_refused_with_a_message_naming_them(data, names):
    with pytest.raises(cfgmod.ConfigError) as info:
        cfgmod.from_dict(data)
    message = str(info.value)
    for name in names:
        assert name in message, f"{name!r} not in {message!r}"
    assert "\n" not in message


def test_no_config_can_raise_the_ceiling_above_57_c():
    for max_c in (57.01, 58.0, 100.0):
        with pytest.raises(cfgmod.ConfigError):
            cfgmod.from_dict({"control": {"max_setpoint_c": max_c, "cutoff_c": 60.0}})
    assert cfgmod.from_dict({"control": {"max_setpoint_c": 57.0, "cutoff_c": 60.0}}).control.max_setpoint_c == 57.0


def test_a_file_that_is_not_toml_is_refused_with_its_path(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[control\nsetpoint_c = 52\n")
    with pytest.raises(cfgmod.ConfigError, match=r"bad\.toml: not valid TOML"):
        cfgmod.load(path)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(cfgmod.ConfigError, match="no such config file"):
        cfgmod.load(tmp_path / "nope.toml")
