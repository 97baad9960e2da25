"""Signed-in browsers, kept on the warmer: ``<state dir>/web-sessions.json``.

The browser's cookie holds only a random session id; what it may do is looked up
here on every request. So signing out ends the session for good (a copied cookie
replayed afterwards is refused), a session idle for ``[web] session_idle_h`` or
older than :data:`MAX_AGE_S` ends, setting the password again ends every
session, and the owner can list the sessions and end any of them.

The file holds a SHA-256 of each id, never the id itself (a copy of the file
signs nobody in), and each session's CSRF token. It is written with
:func:`controller.core.atomic.atomic_write` when a session starts or ends, and
when a session's "last seen" has moved by more than :data:`SAVE_SEEN_EVERY_S`
(not on every request: the SD card). Times are wall-clock seconds: a session
outlives a restart, and a clock step can only end one early or late, never
open one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from controller.core.atomic import atomic_write

log = logging.getLogger(__name__)

SESSIONS_FILE = "web-sessions.json"
MAX_AGE_S = 30 * 86400.0      # a sign-in lasts at most 30 days, however often it is used
MAX_SESSIONS = 50             # the oldest beyond this are ended (each sign-in adds one)
SAVE_SEEN_EVERY_S = 600.0     # "last seen" reaches the file at most this often per session
PUBLIC_ID_CHARS = 16          # of the hash: names a session in the API, cannot sign anyone in


@dataclass(frozen=True, slots=True)
class Session:
    key: str                 # SHA-256 of the cookie's session id, hex
    csrf: str                # the token every change from this browser must carry
    generation: str          # the password's generation at sign-in (a new password ends it)
    created_wall_s: float
    last_seen_wall_s: float
    client: str              # the address it signed in from
    user_agent: str          # the browser, as it named itself (shortened)

    @property
    def id(self) -> str:
        return self.key[:PUBLIC_ID_CHARS]

    def public(self) -> dict[str, object]:
        return {"id": self.id, "created_wall_s": round(self.created_wall_s, 3),
                "last_seen_wall_s": round(self.last_seen_wall_s, 3), "client": self.client,
                "user_agent": self.user_agent}


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


class SessionStore:
    """The signed-in sessions of one dashboard; safe to use from any thread."""

    def __init__(self, state_dir: str | Path, *, idle_s: float, now: Callable[[], float] = time.time) -> None:
        self.path = Path(state_dir) / SESSIONS_FILE
        self.idle_s = idle_s
        self.now = now
        self._lock = threading.Lock()
        self._saved_seen: dict[str, float] = {}
        self._sessions: dict[str, Session] = self._load()
        self._saved_seen = {k: s.last_seen_wall_s for k, s in self._sessions.items()}

    def _load(self) -> dict[str, Session]:
        try:
            data = json.loads(self.path.read_text())
            return {item["key"]: Session(**item) for item in data["sessions"]}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Unreadable: nobody is signed in (the safe side); the next sign-in rewrites it.
            log.warning("ignoring the unreadable sessions file %s: %s", self.path, exc)
            return {}

    def _save(self) -> None:
        """Write every session (under the lock). A full disk leaves the file as it was."""
        data = {"sessions": [asdict(s) for s in self._sessions.values()]}
        try:
            atomic_write(self.path, json.dumps(data, indent=1) + "\n", mode=0o600)
        except OSError as exc:
            log.error("cannot write %s: %s (sessions kept in memory)", self.path, exc)
            return
        self._saved_seen = {k: s.last_seen_wall_s for k, s in self._sessions.items()}

    def _alive(self, s: Session, now: float, generation: str | None) -> bool:
        return (now - s.last_seen_wall_s <= self.idle_s and now - s.created_wall_s <= MAX_AGE_S
                and (generation is None or s.generation == generation))

    # -- the browser's own session ----------------------------------------------------------
    def create(self, *, generation: str, client: str, user_agent: str) -> tuple[str, Session]:
        """A new session: (the id for the cookie, the session)."""
        session_id = secrets.token_urlsafe(32)
        now = self.now()
        new = Session(key=_key(session_id), csrf=secrets.token_urlsafe(32), generation=generation,
                      created_wall_s=now, last_seen_wall_s=now, client=client[:64], user_agent=user_agent[:120])
        with self._lock:
            self._sessions = {k: s for k, s in self._sessions.items() if self._alive(s, now, generation)}
            self._sessions[new.key] = new
            while len(self._sessions) > MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda s: s.last_seen_wall_s)
                del self._sessions[oldest.key]
            self._save()
        return session_id, new

    def get(self, session_id: str, *, generation: str) -> Session | None:
        """The live session of ``session_id`` (its "last seen" now), or None."""
        key = _key(session_id)
        now = self.now()
        with self._lock:
            found = self._sessions.get(key)
            if found is None:
                return None
            if not self._alive(found, now, generation):
                del self._sessions[key]
                self._save()
                return None
            found = replace(found, last_seen_wall_s=now)
            self._sessions[key] = found
            if now - self._saved_seen.get(key, 0.0) > SAVE_SEEN_EVERY_S:
                self._save()
        return found

    def end(self, session_id: str) -> None:
        """Sign-out: the session of ``session_id`` ends for good."""
        self.revoke(_key(session_id)[:PUBLIC_ID_CHARS])

    # -- the owner's list --------------------------------------------------------------------
    def list(self, *, generation: str) -> list[Session]:
        """The live sessions, most recently seen first."""
        now = self.now()
        with self._lock:
            alive = [s for s in self._sessions.values() if self._alive(s, now, generation)]
        return sorted(alive, key=lambda s: s.last_seen_wall_s, reverse=True)

    def revoke(self, public_id: str) -> bool:
        """End the session whose public id is ``public_id``; False if there is none."""
        with self._lock:
            key = next((k for k in self._sessions if k[:PUBLIC_ID_CHARS] == public_id), None)
            if key is None:
                return False
            del self._sessions[key]
            self._save()
        return True
