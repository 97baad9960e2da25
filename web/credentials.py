"""The dashboard's password, API tokens and session key: one small file in the state dir.

There is no default password (CraftBeerPi's ``cbpi/123`` is the example not to
follow; docs/field-notes.md, "Web"). Until ``stonewarmer set-password`` has stored one,
every change is refused. The password is kept as an scrypt hash (slow on
purpose: a stolen file cannot be tried fast). API tokens are 256 random bits,
so a plain SHA-256 of them is enough; they are shown once, when created.

The file is written atomically by :class:`controller.core.state.StateStore` and is
readable by its owner only. It is read again whenever it changes, so a new
password or token works without restarting the service.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from controller.core.state import StateError, StateStore

AUTH_FILE = "web-auth.json"
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 256
TOKEN_PREFIX = "sw_"
# scrypt cost: 16 MiB and ~0.1 s per check on a Raspberry Pi 4 (n * r * 128 bytes).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
HOW_TO_SET = "on the warmer's Raspberry Pi, run: sudo stonewarmer set-password"


class CredentialError(ValueError):
    """A password or token name that is refused; the message says what is allowed."""


class _AuthFile(StateStore):
    """The same atomic write as the controller's state file, under another name."""

    def __init__(self, directory: str | Path) -> None:
        super().__init__(directory)
        self.path = self.dir / AUTH_FILE


def hash_password(password: str, *, salt: bytes | None = None) -> dict[str, Any]:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return {"scheme": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
            "salt": salt.hex(), "hash": digest.hex()}


def verify_password(password: str, record: dict[str, Any]) -> bool:
    try:
        digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(record["salt"]),
                                n=int(record["n"]), r=int(record["r"]), p=int(record["p"]))
        return hmac.compare_digest(digest.hex(), record["hash"])
    except (KeyError, TypeError, ValueError):
        return False


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_new_password(password: str) -> None:
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise CredentialError(f"the password must have {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} "
                              f"characters, got {len(password)}")
    if password.strip() != password:
        raise CredentialError("the password must not start or end with a space")


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
        record = self._data().get("password") or {}
        return hashlib.sha256(str(record.get("salt", "")).encode()).hexdigest()[:16]

    def check_password(self, password: str) -> bool:
        record = self._data().get("password")
        if not record or not isinstance(password, str) or len(password) > MAX_PASSWORD_CHARS:
            return False
        return verify_password(password, record)

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
