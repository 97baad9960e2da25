"""The web process's files, and moving them out of the one-process layout into ``<state dir>/web``.

Before control and web ran as two processes, one process kept the dashboard's files in the
state dir itself, beside ``state.json``: the password and tokens, the sessions, the history
and the MQTT record. The web process now keeps them in ``<state dir>/web``, a directory of
its own owned by its own user. :func:`move_into_web_dir` moves them there:

- each file is given its new owner and mode first and then renamed (one ``rename`` on one
  filesystem: it is in the old place or in the new one, never half copied);
- a file the web dir already has (e.g. ``stonewarmer set-password`` run after the upgrade) is
  kept, and the old one is renamed in place to ``NAME.before-web-dir``: nothing is deleted;
- running it again finds nothing to move (idempotent).

``sudo stonewarmer install`` runs it with the web user as the owner, between stopping the old
version and starting the new one (:mod:`controller.service.installer`), and moves the files
back if the new version does not start. The web process runs it too at start, for a warmer
whose files it may move itself (``stonewarmer run`` as one user); under its own systemd unit
it cannot, and says what to do instead (:func:`advice`).

Standard library only, like the installer. The names are the web's and MQTT's own
(``web/credentials.py``, ``web/sessions.py``, ``web/history.py``, ``controller/integrations/mqtt/records.py``);
a test keeps them equal.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

WEB_SUBDIR = "web"
#: Each group moves as one: a database with its journal files (journals first, so a move cut
#: short leaves the database where it was and is finished by the next run).
GROUPS: tuple[tuple[str, ...], ...] = (
    ("history.sqlite3-wal", "history.sqlite3-shm", "history.sqlite3-journal", "history.sqlite3"),
    ("web-sessions.json",),
    ("web-auth.json",),
    ("mqtt-retained",),
)
SET_ASIDE_SUFFIX = ".before-web-dir"
FILE_MODE = 0o600  # the web unit's UMask=0077: its user alone
DIR_MODE = 0o700


@dataclass(frozen=True)
class Moved:
    """One file or directory handled: moved into the web dir, or (``set_aside``) renamed in place."""

    name: str
    set_aside: str | None = None

    def describe(self) -> str:
        return f"{self.name} kept in place as {self.set_aside} (the web dir has its own)" if self.set_aside \
            else f"{self.name} moved"


def web_dir(state_dir: str | Path) -> Path:
    return Path(state_dir) / WEB_SUBDIR


def old_layout(state_dir: str | Path) -> list[str]:
    """The names of the web process's files still in ``state_dir`` itself, in the order they move."""
    return [name for group in GROUPS for name in group if os.path.lexists(Path(state_dir) / name)]


def move_into_web_dir(state_dir: str | Path, *, owner: tuple[int, int] | None = None) -> list[Moved]:
    """Move the one-process layout's web files into ``<state_dir>/web``; return what was done.

    ``owner``: (uid, gid) to give each file before it moves (the installer, as root); None
    leaves the owner as it is (the web process moving its own files). Raises OSError on the
    first file that cannot be moved; those moved so far stay moved (running again goes on).
    """
    source, target = Path(state_dir), web_dir(state_dir)
    target.mkdir(mode=DIR_MODE, exist_ok=True)
    done: list[Moved] = []
    for group in GROUPS:
        present = [name for name in group if os.path.lexists(source / name)]
        if not present:
            continue
        if os.path.lexists(target / group[-1]):  # the web dir has its own: the old one stays, renamed
            for name in present:
                aside = _free_name(source, name + SET_ASIDE_SUFFIX)
                os.rename(source / name, source / aside)
                done.append(Moved(name, aside))
            continue
        for name in present:
            _own(source / name, owner)
            os.rename(source / name, target / name)
            done.append(Moved(name))
    return done


def move_back(state_dir: str | Path, moved: list[Moved], *, owner: tuple[int, int] | None = None) -> None:
    """Undo :func:`move_into_web_dir` (a version of the one-process layout runs again)."""
    source, target = Path(state_dir), web_dir(state_dir)
    for item in reversed(moved):
        if item.set_aside is not None:
            if os.path.lexists(source / item.set_aside) and not os.path.lexists(source / item.name):
                os.rename(source / item.set_aside, source / item.name)
        elif os.path.lexists(target / item.name) and not os.path.lexists(source / item.name):
            _own(target / item.name, owner)
            os.rename(target / item.name, source / item.name)


def advice(state_dir: str | Path, names: list[str], why: str) -> str:
    """One line for the log and ``stonewarmer check``: which files are where, and what to do."""
    return (f"the dashboard's files from before the two processes are still in {state_dir} ({', '.join(names)}) "
            f"and could not be moved into {web_dir(state_dir)} ({why}): the password, tokens and history are not "
            "in use until they are; run `sudo stonewarmer install` (it moves them, keeping everything)")


def _own(path: Path, owner: tuple[int, int] | None) -> None:
    """Give ``path`` (and, for a directory, what it holds) its owner and the web's modes.

    Each file is opened with ``O_NOFOLLOW`` and changed through its descriptor, so a link
    (even one put in place after the walk saw a file) is never followed out of the state dir.
    """
    paths = [path]
    if path.is_dir() and not path.is_symlink():
        paths += [Path(d) / n for d, dirs, files in os.walk(path) for n in (*dirs, *files)]
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO):
                continue  # a link (never followed), or a socket (nothing of the web's)
            raise
        try:
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, DIR_MODE if stat.S_ISDIR(os.fstat(fd).st_mode) else FILE_MODE)
        finally:
            os.close(fd)


def _free_name(directory: Path, name: str) -> str:
    """``name``, or ``name.2``, ``name.3`` ... : the first that ``directory`` does not have."""
    candidate, n = name, 1
    while os.path.lexists(directory / candidate):
        n += 1
        candidate = f"{name}.{n}"
    return candidate
