"""What every command family shares: the user's mistakes, ``--config``, ``--state-dir``, JSON output.

Only the standard library and the core's config are imported here: ``python3 -m
controller install`` runs before any package is installed.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from controller.core import config as cfgmod

T = TypeVar("T")


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit status 2."""


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help=f"config file (default: {cfgmod.DEFAULT_PATH}, or the built-in "
                             "defaults when simulating and it does not exist)")


def add_state_dir_arg(parser: argparse.ArgumentParser, *, what: str = "") -> None:
    parser.add_argument("--state-dir", metavar="DIR",
                        help="override [state] dir" + (f" ({what})" if what else ""))


def load_config(args: argparse.Namespace, *, simulate: bool = False) -> cfgmod.Config:
    """The config named by ``--config`` (the defaults when simulating without one), with ``--state-dir``.

    Raises :class:`~controller.core.config.ConfigError` (one line, exit status 2 in ``main``).
    """
    path = getattr(args, "config", None)
    if path is None and simulate and not cfgmod.DEFAULT_PATH.exists():
        cfg = cfgmod.Config()
    else:
        cfg = cfgmod.load(cfgmod.DEFAULT_PATH if path is None else path)
    if getattr(args, "state_dir", None):
        cfg = cfgmod.replace(cfg, "state", dir=str(state_dir(args)))
    return cfg


def state_dir(args: argparse.Namespace, *, simulate: bool = True) -> Path:
    """The state dir: ``--state-dir`` if given, else the config's; always an absolute path.

    Absolute because the service and the simulator may change directory, and because the
    path is shown to the user and written into records.
    """
    if getattr(args, "state_dir", None):
        return Path(args.state_dir).resolve()
    return Path(load_config(args, simulate=simulate).state.dir).resolve()


def parsed(parse: Callable[[str], T], text: str, *, option: str = "") -> T:
    """``parse(text)``, its ValueError turned into a :class:`UserError` (prefixed with ``option``)."""
    try:
        return parse(text)
    except ValueError as exc:
        raise UserError(f"{option}: {exc}" if option else str(exc)) from None


def finite(value: Any) -> Any:
    """``value`` with every NaN and infinity replaced by None: JSON has neither (null: not measured, never)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def dumps_json(value: Any) -> str:
    """One line of strict JSON (non-finite numbers as null)."""
    return json.dumps(finite(value), allow_nan=False)
