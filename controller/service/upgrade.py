"""Installing a version of stonewarmer beside the one in use, and switching to it safely.

A version lives in its own venv, ``/opt/stonewarmer/venv-<fingerprint>``; the
unit runs ``/opt/stonewarmer/venv/bin/stonewarmer`` and ``venv`` is a symlink
to the version in use. The fingerprint is a hash of what makes a version: the
package's files in the checkout (``pyproject.toml``, ``README.md``,
``controller/``, ``web/``, ``config/``, which holds the unit and the
constraints), the extras (``--with mqtt``) and the Python version. So:

- nothing changed (the symlink already points at that fingerprint): nothing is
  built, nothing restarted, no network needed;
- something changed: the new venv is built beside the old one from a copy of the
  package's files (the checkout is left as it is: no ``build/`` for root to leave
  behind), with the pinned versions of ``config/constraints.txt``; the new version
  checks the config; only then is the service stopped (its ExecStopPost drives the
  relay off), the symlink switched, the service started, and READY awaited
  (``systemctl start`` returns when the service reports ready). If the start
  fails, the steps' undo switches back to the previous version and starts it.

Each venv records where it came from in ``stonewarmer-install.json``: the next
``sudo stonewarmer install`` finds the checkout from there when it is not run
inside one, and keeps the extras.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from controller.core.atomic import atomic_write
from controller.service.steps import Host, InstallError, Step

PREFIX = Path("/opt/stonewarmer")
VENV = PREFIX / "venv"                  # the unit's path: a symlink to the version in use
LEGACY_PREVIOUS = PREFIX / "venv.previous"  # a venv directory of an older installer, while switching
RECORD_NAME = "stonewarmer-install.json"
UNIT_NAME = "stonewarmer.service"          # the control process: probe, relay, no network
WEB_UNIT_NAME = "stonewarmer-web.service"  # the web process: dashboard, MQTT, notifications, no GPIO
UNIT_NAMES = (UNIT_NAME, WEB_UNIT_NAME)    # started in this order, stopped in the other
#: What goes into the package (and into its fingerprint); tests and docs do not.
PACKAGE_PARTS = ("pyproject.toml", "README.md", "controller", "web", "config")
CONSTRAINTS = Path("config") / "constraints.txt"
_SKIPPED = ("__pycache__", ".egg-info", ".pyc")


def is_checkout(path: Path) -> bool:
    """A stonewarmer source tree: its pyproject.toml and the service unit."""
    try:
        project = tomllib.loads((path / "pyproject.toml").read_text()).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return project.get("name") == "stonewarmer" and (path / "config" / UNIT_NAME).is_file()


def find_checkout(*, given: Path | None, cwd: Path, running_from: Path,
                  remembered: Path | None) -> tuple[Path, str]:
    """The checkout to install and why it was chosen: ``--source``, the working directory
    (or a parent), the checkout this code runs from, or the one the last install used."""
    if given is not None:
        if not is_checkout(given):
            raise InstallError(f"--source {given}: not a stonewarmer checkout (no pyproject.toml of stonewarmer "
                               "with config/stonewarmer.service)")
        return given, "--source"
    for candidate in (cwd, *cwd.parents):
        if is_checkout(candidate):
            return candidate, "the working directory"
    if is_checkout(running_from):
        return running_from, "the checkout this command runs from"
    if remembered is not None and is_checkout(remembered):
        return remembered, "the checkout of the last install"
    raise InstallError("cannot find the stonewarmer checkout to install: run this inside it (cd stonewarmer), "
                       "or pass --source DIR (the directory holding pyproject.toml and config/)")


def available_extras(source: Path) -> list[str]:
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    return sorted(project.get("optional-dependencies", {}))


def parse_extras(text: str, source: Path) -> tuple[str, ...]:
    """``--with mqtt,plot`` -> ("mqtt", "plot"); unknown names are refused, naming those allowed."""
    names = sorted({name.strip() for name in text.split(",") if name.strip()})
    allowed = available_extras(source)
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise InstallError(f"--with {text}: unknown extra {', '.join(unknown)}; allowed: {', '.join(allowed)} "
                           "(comma-separated; '' for none)")
    return tuple(names)


def package_files(source: Path) -> list[Path]:
    """The files that make the package, relative to ``source``, sorted."""
    found = []
    for part in PACKAGE_PARTS:
        path = source / part
        if path.is_file():
            found.append(Path(part))
        for directory, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.endswith(_SKIPPED))
            found += [Path(directory, name).relative_to(source) for name in files if not name.endswith(_SKIPPED)]
    return sorted(found)


def fingerprint(source: Path, extras: tuple[str, ...], python: tuple[int, int] | None = None) -> str:
    """12 hex digits that change when the package's files, the extras or the Python version do."""
    digest = hashlib.sha256()
    major, minor = python or sys.version_info[:2]
    digest.update(f"python {major}.{minor}\nextras {','.join(sorted(extras))}\n".encode())
    for rel in package_files(source):
        digest.update(f"{rel.as_posix()}\0".encode() + (source / rel).read_bytes() + b"\0")
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class Installed:
    """The version in use, as its venv recorded it."""

    venv: Path            # e.g. /opt/stonewarmer/venv-0123456789ab (a path on the running system)
    fingerprint: str
    source: Path
    extras: tuple[str, ...]


def installed(host: Host) -> Installed | None:
    """What ``VENV`` points at, or None (nothing installed, or an older installer's plain venv)."""
    link = host.path(VENV)
    return read_record(host, PREFIX / os.readlink(link)) if link.is_symlink() else None


def read_record(host: Host, venv: Path) -> Installed | None:
    """The record of a complete venv (written last, after pip succeeded), or None."""
    try:
        record = json.loads((host.path(venv) / RECORD_NAME).read_text())
        return Installed(venv=venv, fingerprint=record["fingerprint"], source=Path(record["source"]),
                         extras=tuple(record["extras"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _record(venv: Path, source: Path, extras: tuple[str, ...], fp: str) -> None:
    version = tomllib.loads((source / "pyproject.toml").read_text())["project"]["version"]
    atomic_write(venv / RECORD_NAME, json.dumps({"fingerprint": fp, "source": str(source), "extras": list(extras),
                                                 "version": version, "python": sys.version.split()[0]},
                                                indent=2) + "\n", mode=0o644)


def _finish(venv: Path, build: Path, source: Path, extras: tuple[str, ...], fp: str) -> None:
    _record(venv, source, extras, fp)
    shutil.rmtree(build)


def _prepare(source: Path, build: Path, venv: Path) -> None:
    """Copy the package's files to ``build``; clear what an interrupted build left."""
    for leftover in (build, venv):
        if leftover.exists():
            shutil.rmtree(leftover)
    for rel in package_files(source):
        (build / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, build / rel)


def build_steps(host: Host, source: Path, extras: tuple[str, ...], *, config: Path) -> tuple[list[Step], Path]:
    """Build the version in ``source`` beside the one in use and check ``config`` with it.

    ``config`` is the path on the running system. Returns the steps and the new venv
    (a path on the running system). All steps are done when that version is the one in use.
    """
    fp = fingerprint(source, extras)
    venv = PREFIX / f"venv-{fp}"
    current = installed(host)
    if current is not None and current.venv == venv:
        return [Step(f"stonewarmer from {source}{_with(extras)} is installed ({venv.name}): unchanged",
                     done=True)], venv
    build, target = host.path(PREFIX / f".build-{fp}"), host.path(venv)
    package = f"{build}[{','.join(extras)}]" if extras else str(build)
    check = Step(f"the new version checks {config} (a refusal changes nothing: the running version stays)",
                 [str(target / "bin" / "stonewarmer"), "check", "--config-only", "--config", str(host.path(config))])
    built = read_record(host, venv)
    if built is not None and built.fingerprint == fp:  # an earlier attempt built it, then did not switch
        return [Step(f"{venv} is already built (from {built.source}{_with(extras)})", done=True), check], venv
    return [
        Step(f"copy the package's files from {source} to {PREFIX}/{build.name} (the checkout stays as it is)",
             apply=lambda: _prepare(source, build, target)),
        Step(f"new virtual environment {venv}{' beside the one in use' if host.path(VENV).exists() else ''} "
             "(--system-site-packages: the system's lgpio)",
             [sys.executable, "-m", "venv", "--system-site-packages", str(target)]),
        Step(f"install stonewarmer{_with(extras)} into it, at the versions of {CONSTRAINTS}",
             [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-cache-dir",
              "-c", str(build / CONSTRAINTS), package]),
        Step(f"record where it came from ({venv.name}/{RECORD_NAME}); remove the copy",
             apply=lambda: _finish(target, build, source, extras, fp)),
        check,
    ], venv


def _with(extras: tuple[str, ...]) -> str:
    return f" with {', '.join(extras)}" if extras else ""


def _point(host: Host, venv: Path) -> None:
    """Make ``VENV`` point at ``venv`` in one rename (a symlink beside it, renamed over it)."""
    link = host.path(VENV)
    temp = link.with_name(f".{link.name}.new")
    if temp.is_symlink():
        temp.unlink()
    temp.symlink_to(venv.name)
    os.replace(temp, link)


def _switch_from_directory(host: Host, venv: Path) -> None:
    """An older installer's ``VENV`` was a directory: set it aside, then point at ``venv``."""
    os.rename(host.path(VENV), host.path(LEGACY_PREVIOUS))
    _point(host, venv)


def _back_to_directory(host: Host) -> None:
    link = host.path(VENV)
    if link.is_symlink():
        link.unlink()
    os.rename(host.path(LEGACY_PREVIOUS), link)


def switch_steps(host: Host, venv: Path) -> tuple[list[Step], list[Step]]:
    """Point ``VENV`` at ``venv``, undone by pointing it back; and the removal of the old
    version, to run once the new one is up. Both empty when ``venv`` is in use."""
    link = host.path(VENV)
    current = PREFIX / os.readlink(link) if link.is_symlink() else None
    if current == venv:
        return [], []
    what = f"switch {VENV} to {venv.name}"
    if current is not None:
        switch = Step(what + f" (from {current.name})", apply=lambda: _point(host, venv),
                      undo=[Step(f"switch {VENV} back to {current.name}", apply=lambda: _point(host, current))])
    elif link.is_dir():
        switch = Step(what + " (the previous venv is set aside)", apply=lambda: _switch_from_directory(host, venv),
                      undo=[Step(f"switch {VENV} back to the previous venv", apply=lambda: _back_to_directory(host))])
    else:
        switch = Step(what, apply=lambda: _point(host, venv))
    prefix = host.path(PREFIX)
    if current is None and not link.is_dir() and not any(_is_other_version(p, venv) for p in _entries(prefix)):
        return [switch], []  # the first install: nothing to remove
    return [switch], [Step(f"remove the previous versions in {PREFIX}", apply=lambda: remove_others(host, venv))]


def _entries(directory: Path) -> list[Path]:
    return list(directory.iterdir()) if directory.is_dir() else []


def _is_other_version(path: Path, keep: Path) -> bool:
    """A venv of another version, a legacy venv set aside, or what an interrupted build left."""
    if path.name == keep.name:
        return False
    return path.name.startswith(("venv-", ".build-")) or path.name == LEGACY_PREVIOUS.name


def remove_others(host: Host, keep: Path) -> None:
    """Remove every version but ``keep``, and what interrupted builds left."""
    for path in _entries(host.path(PREFIX)):
        if _is_other_version(path, keep):
            shutil.rmtree(path)
