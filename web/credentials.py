"""The dashboard's password, API tokens and session key: one small file in the state dir.

There is no default password (CraftBeerPi's ``cbpi/123`` is the example not to
follow; docs/field-notes.md, "Web"). Until ``stonewarmer set-password`` has stored one,
every change is refused. The password is kept as an argon2id hash (slow and
memory-hard on purpose: a stolen file cannot be tried fast); a file from before
holds an scrypt hash, which is replaced by an argon2id one at the next sign-in.
The most common passwords are refused (``common-passwords.txt``, shipped with
the package). API tokens are 256 random bits, so a plain SHA-256 of them is
enough; they are shown once, when created.

The file is written atomically by :class:`controller.core.state.StateStore` and is
readable by its owner only. It is read again whenever it changes, so a new
password or token works without restarting the service.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from controller.core.state import StateError, StateStore

AUTH_FILE = "web-auth.json"
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 256
TOKEN_PREFIX = "sw_"
# argon2id at OWASP's first recommended setting: 19 MiB, 2 passes, 1 lane (docs/field-notes.md,
# "More facts: heater range, systemd, strict_gpiod, notifications, passwords, web, Home Assistant").
# A Pi Zero 2 W has 512 MB shared with the GPU and the OS; the web checks at most
# web.signin_limit.MAX_CONCURRENT_CHECKS (2) passwords at once, so sign-ins never hold more than
# 38 MiB (scrypt at OWASP's N=2^17 would be 128 MiB each), and one check takes ~0.07 s on a 2-core
# x86 VM (a few tenths of a second on the Pi Zero's Cortex-A53): slow for a guesser, unnoticed by
# the therapist.
ARGON2_TIME_COST, ARGON2_MEMORY_KIB, ARGON2_LANES = 2, 19 * 1024, 1
HOW_TO_SET = "on the warmer's Raspberry Pi, run: sudo stonewarmer set-password"

_HASHER = PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB,
                         parallelism=ARGON2_LANES, type=Type.ID)


class CredentialError(ValueError):
    """A password or token name that is refused; the message says what is allowed."""


class _AuthFile(StateStore):
    """The same atomic write as the controller's state file, under another name."""

    def __init__(self, directory: str | Path) -> None:
        super().__init__(directory)
        self.path = self.dir / AUTH_FILE


def hash_password(password: str) -> dict[str, Any]:
    """The stored record of ``password``: an argon2id hash (its parameters and salt inside)."""
    return {"scheme": "argon2id", "hash": _HASHER.hash(password), "generation": secrets.token_hex(8)}


def verify_password(password: str, record: dict[str, Any]) -> bool:
    """Whether ``password`` matches ``record`` (argon2id, or the scrypt of older files)."""
    try:
        if record.get("scheme") == "scrypt":
            digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(record["salt"]),
                                    n=int(record["n"]), r=int(record["r"]), p=int(record["p"]))
            return hmac.compare_digest(digest.hex(), record["hash"])
        return bool(_HASHER.verify(record["hash"], password))
    except (KeyError, TypeError, ValueError, VerificationError, InvalidHashError):
        return False


def needs_rehash(record: dict[str, Any]) -> bool:
    """True for an scrypt record, or an argon2 one with other parameters than today's."""
    if record.get("scheme") != "argon2id":
        return True
    try:
        return _HASHER.check_needs_rehash(record["hash"])
    except (KeyError, InvalidHashError):
        return True


def _generation(record: dict[str, Any]) -> str:
    # Older records have no generation of their own: derived from their salt, as it was then.
    return str(record.get("generation") or hashlib.sha256(str(record.get("salt", "")).encode()).hexdigest()[:16])


@functools.cache
def common_passwords() -> frozenset[str]:
    """The passwords refused for being among the most used (lower case), from the shipped list."""
    text = resources.files("web").joinpath("common-passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_new_password(password: str) -> None:
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise CredentialError(f"the password must have {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} "
                              f"characters, got {len(password)}")
    if password.strip() != password:
        raise CredentialError("the password must not start or end with a space")
    if password.lower() in common_passwords() or len(set(password)) < 3:
        raise CredentialError("the password is one of the most commonly used ones, which are tried first: "
                              "choose another (a few unrelated words are easy to remember)")


class CredentialStore:
    """Password, API tokens and session key of the dashboard, in ``<state dir>/web-auth.json``."""

    def __init__(self, state_dir: str | Path) -> None:
        self._file = _AuthFile(state_dir)
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int] | None, dict[str, Any]] = (None, {})
        self.problem: str | None = None  # why the file cannot be used, in words

    @property
    def path(self) -> Path:
        return self._file.path

    # -- reading ------------------------------------------------------------------------
    def _data(self) -> dict[str, Any]:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp is not None and stamp == self._cache[0]:
                return self._cache[1]
            try:
                data = self._file.load() if stamp is not None else {}
                self.problem = None
            except StateError as exc:
                # Refuse every change (no password can be checked) and say why.
                data = {}
                self.problem = f"{exc}; set the password again ({HOW_TO_SET})"
            self._cache = (stamp, data)
            return data

    @property
    def password_set(self) -> bool:
        return bool(self._data().get("password"))

    def password_generation(self) -> str:
        """Changes whenever the password is set again: older sessions stop working."""
        return _generation(self._data().get("password") or {})

    def check_password(self, password: str) -> bool:
        """Whether ``password`` is the dashboard's; a right one in an old hash is hashed again."""
        record = self._data().get("password")
        if not record or not isinstance(password, str) or len(password) > MAX_PASSWORD_CHARS:
            return False
        if not verify_password(password, record):
            return False
        if needs_rehash(record):
            self._rehash(password, record)
        return True

    def _rehash(self, password: str, old: dict[str, Any]) -> None:
        """Store ``password`` with today's hash, keeping its generation (sessions stay signed in)."""
        new = {**hash_password(password), "generation": _generation(old)}

        def change(d: dict[str, Any]) -> None:
            if d.get("password") == old:  # not if the password was set again meanwhile
                d["password"] = new

        try:
            self._update(change)
        except OSError:
            pass  # the old hash still works; the next sign-in tries again

    def check_token(self, token: str) -> str | None:
        """The name of the API token ``token``, or None if it is not one."""
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX):
            return None
        digest = _token_hash(token)
        found = None
        for entry in self._data().get("tokens", []):
            if hmac.compare_digest(entry.get("hash", ""), digest):
                found = entry.get("name")
        return found

    def tokens(self) -> list[dict[str, Any]]:
        """Names and creation times of the API tokens (never the tokens themselves)."""
        return [{"name": t["name"], "created_wall_s": t.get("created_wall_s")}
                for t in self._data().get("tokens", [])]

    def session_key(self) -> bytes:
        """The key that signs session cookies; created (and saved) on first use."""
        key = self._data().get("session_key")
        if not key:
            key = secrets.token_hex(32)
            self._update(lambda d: d.setdefault("session_key", key))
            key = self._data().get("session_key", key)
        return bytes.fromhex(key)

    # -- writing (the CLI) ------------------------------------------------------------
    def set_password(self, password: str) -> None:
        check_new_password(password)
        record = hash_password(password)
        # A new session key too: every browser signed in with the old password is signed out.
        self._update(lambda d: d.update(password=record, session_key=secrets.token_hex(32)))

    def create_token(self, name: str) -> str:
        """A new API token called ``name`` (replacing one of that name); returned once."""
        if not name or len(name) > 40 or not all(c.isalnum() or c in "-_." for c in name):
            raise CredentialError(f"token name {name!r} is not allowed: use 1-40 letters, digits, '-', '_' or '.'")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        entry = {"name": name, "hash": _token_hash(token), "created_wall_s": time.time()}

        def change(d: dict[str, Any]) -> None:
            d["tokens"] = [t for t in d.get("tokens", []) if t.get("name") != name] + [entry]

        self._update(change)
        return token

    def revoke_token(self, name: str) -> bool:
        """Remove the API token called ``name``; False if there was none."""
        removed: list[int] = []

        def change(d: dict[str, Any]) -> None:
            before = d.get("tokens", [])
            d["tokens"] = [t for t in before if t.get("name") != name]
            removed.append(len(before) - len(d["tokens"]))

        self._update(change)
        return removed[0] > 0

    def _update(self, change) -> None:
        data = dict(self._data())
        if self.problem:  # an unreadable file is replaced, not merged
            data = {}
        change(data)
        self._file.save(data)
        _give_to_dir_owner(self.path)
        with self._lock:
            self._cache = (None, {})


def _give_to_dir_owner(path: Path) -> None:
    """``sudo stonewarmer set-password`` must leave a file the service user can read."""
    if os.geteuid() != 0:
        return
    st = path.parent.stat()
    try:
        os.chown(path, st.st_uid, st.st_gid)
    except OSError:
        pass
