"""Helpers shared by the tests: ids of the fake probes, a tick driver, and web sign-in.

Fixtures live in ``conftest.py``; plain functions and classes live here, so a test
module imports them from ``tests.helpers`` (never from ``tests.conftest``).
"""

from __future__ import annotations

from pathlib import Path

#: The repository's root (config/, docs/, controller/ ...).
REPO = Path(__file__).resolve().parent.parent

PROBE_ID = "0000075a1f2b"
SAFETY_ID = "0000075a9c3d"
WEB_PASSWORD = "correct horse battery"


def relay_pin(pins, number: int = 17):
    """The mock pin the relay drives (GPIO17 by default)."""
    return pins.pin(number)


def run_ticks(controller, clock, tree, temps, *, second=None, dt_s: float = 1.0):
    """Write each temperature (or a raw text via ("text", ...)) then tick once per ``dt_s``."""
    statuses = []
    for i, value in enumerate(temps):
        clock.advance(dt_s)
        if isinstance(value, tuple):
            tree.write_text(PROBE_ID, value[1])
        elif value is not None:
            tree.write(PROBE_ID, value)
        if second is not None:
            tree.write(SAFETY_ID, second[i] if isinstance(second, list) else second)
        statuses.append(controller.tick())
    return statuses


class ScriptedProbe:
    """A probe source (``ProbeSource``) that returns whatever the test put in ``next``, once."""

    def __init__(self):
        self.next = None

    def poll(self, now_s):
        got, self.next = self.next, None
        return got

    def close(self):
        pass


def csrf_token(client) -> str:
    """The CSRF token of ``client``'s current session (signed in or not)."""
    return client.get("/api/session").get_json()["csrf_token"]


class AuthActions:
    """Sign a test client in and out, and send changes with its CSRF token
    (the Flask tutorial's ``AuthActions``)."""

    def __init__(self, app, client) -> None:
        from web.context import EXTENSION

        self._credentials = app.extensions[EXTENSION].credentials
        self._client = client
        self.csrf = ""

    def set_password(self, password: str = WEB_PASSWORD) -> None:
        self._credentials.set_password(password)

    def login(self, password: str = WEB_PASSWORD):
        """Sign in; the answer is returned (and its CSRF token kept) whatever it is."""
        answer = self._client.post("/api/session", json={"password": password},
                                   headers={"X-CSRF-Token": csrf_token(self._client)})
        if answer.status_code == 200:
            self.csrf = answer.get_json()["csrf_token"]
        return answer

    def logout(self):
        return self._client.delete("/api/session", headers=self.headers)

    @property
    def headers(self) -> dict[str, str]:
        """The header a signed-in change must carry."""
        return {"X-CSRF-Token": self.csrf}


def token_client(app):
    """A test client of ``app`` that sends an API token with every request (it may read everything)."""
    from web.context import EXTENSION

    token = app.extensions[EXTENSION].credentials.create_token("reader")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client
