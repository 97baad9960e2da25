"""What someone on the Wi-Fi (or a web page the therapist visits) must not be able to do:
replay a cookie after sign-out, reach the dashboard under another name, race the sign-in
limit, read the history or who changed what without signing in; and the password hash,
the session store and the sign-in limiter themselves."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from pathlib import Path

import pytest

from tests.helpers import WEB_PASSWORD, AuthActions, csrf_token
from web import create_app
from web.auth import CSRF_HEADER
from web.context import EXTENSION
from web.credentials import CredentialError, CredentialStore
from web.sessions import SessionStore
from web.signin_limit import SignInLimiter

COOKIE = "stonewarmer_session"


# -- sessions on the server (issue item 12) ------------------------------------------------------
def test_a_cookie_replayed_after_sign_out_is_401_and_changes_nothing(sim, app, client, signed_in):
    cookie, csrf = client.get_cookie(COOKIE).value, signed_in.csrf
    assert client.delete("/api/session", headers=signed_in.headers).status_code == 200
    replay = app.test_client()
    replay.set_cookie(COOKIE, cookie)
    answer = replay.post("/api/setpoint", json={"setpoint_c": 50}, headers={CSRF_HEADER: csrf})
    assert answer.status_code == 401
    assert sim.controller.status().setpoint_c == 52.0
    assert replay.get("/api/session").get_json()["signed_in"] is False


def test_the_cookie_holds_no_csrf_token_and_the_file_no_session_id(app, client, signed_in):
    cookie = client.get_cookie(COOKIE).value
    payload = cookie.split(".")[0] + "=="
    import base64

    text = base64.urlsafe_b64decode(payload).decode()
    assert signed_in.csrf not in text and "csrf" not in text
    session_id = json.loads(text)["sid"]
    stored = (Path(app.extensions[EXTENSION].cfg.state.dir) / "web-sessions.json").read_text()
    assert session_id not in stored and hashlib.sha256(session_id.encode()).hexdigest() in stored


def test_an_idle_session_ends_after_session_idle_h_and_a_used_one_does_not(sim):
    now = [1_000_000.0]
    store = SessionStore(sim.cfg.state.dir, idle_s=sim.cfg.web.session_idle_h * 3600, now=lambda: now[0])
    app = create_app(sim.controller, sim.cfg, sessions=store)
    busy, idle = app.test_client(), app.test_client()
    AuthActions(app, busy).set_password()
    busy_auth, idle_auth = AuthActions(app, busy), AuthActions(app, idle)
    assert busy_auth.login().status_code == idle_auth.login().status_code == 200
    for _ in range(4):  # the busy browser is used every 4 h; the idle one is not
        now[0] += 4 * 3600
        assert busy.post("/api/setpoint", json={"setpoint_c": 50}, headers=busy_auth.headers).status_code == 200
    assert idle.post("/api/setpoint", json={"setpoint_c": 49}, headers=idle_auth.headers).status_code == 401
    assert busy.get("/api/session").get_json()["signed_in"] is True


def test_sessions_survive_a_restart_and_the_owner_can_list_and_end_them(sim):
    CredentialStore(sim.cfg.state.dir).set_password(WEB_PASSWORD)
    app = create_app(sim.controller, sim.cfg)
    laptop, phone = app.test_client(), app.test_client()
    laptop_auth, phone_auth = AuthActions(app, laptop), AuthActions(app, phone)
    assert laptop_auth.login().status_code == phone_auth.login().status_code == 200
    restarted = create_app(sim.controller, sim.cfg)  # a new process reads the same state dir
    again = restarted.test_client()
    again.set_cookie(COOKIE, laptop.get_cookie(COOKIE).value)
    listed = again.get("/api/sessions").get_json()["sessions"]
    assert len(listed) == 2 and [s["current"] for s in listed].count(True) == 1
    other = next(s for s in listed if not s["current"])
    assert again.delete(f"/api/sessions/{other['id']}", headers=laptop_auth.headers).status_code == 200
    phone_again = restarted.test_client()
    phone_again.set_cookie(COOKIE, phone.get_cookie(COOKIE).value)
    assert phone_again.post("/api/setpoint", json={"setpoint_c": 50},
                            headers=phone_auth.headers).status_code == 401
    assert again.post("/api/setpoint", json={"setpoint_c": 50}, headers=laptop_auth.headers).status_code == 200
    assert again.delete("/api/sessions/0000000000000000", headers=laptop_auth.headers).status_code == 404
    assert restarted.test_client().get("/api/sessions").status_code == 401  # nobody else may look


def test_api_tokens_are_listed_and_revoked_through_the_api(app, client, signed_in):
    creds = app.extensions[EXTENSION].credentials
    token = creds.create_token("homeassistant")
    assert [t["name"] for t in client.get("/api/tokens").get_json()["tokens"]] == ["homeassistant"]
    assert token not in client.get("/api/tokens").get_data(as_text=True)
    assert client.delete("/api/tokens/homeassistant").status_code == 403  # a change: the CSRF token
    assert client.delete("/api/tokens/homeassistant", headers=signed_in.headers).status_code == 200
    answer = app.test_client().get("/api/events", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401
    assert client.delete("/api/tokens/homeassistant", headers=signed_in.headers).status_code == 404


# -- the Host header (item 13) ------------------------------------------------------------------
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "stonewarmer.evil.example",
                                  "localhost.evil.example", "127.0.0.1.nip.io"])
def test_a_host_name_that_is_not_the_warmers_gets_421_before_anything_runs(sim, app, client, signed_in, host):
    answer = client.post("/api/setpoint", json={"setpoint_c": 50}, headers={**signed_in.headers, "Host": host})
    assert answer.status_code == 421 and answer.get_json()["field"] == "Host"
    assert client.get("/api/status", headers={"Host": host}).status_code == 421
    assert client.get("/", headers={"Host": host}).status_code == 421
    assert sim.controller.status().setpoint_c == 52.0


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "192.168.1.40", "[::1]:8080", "[fe80::1%25eth0]:8080",
                                  "localhost:8080", "LOCALHOST", f"{socket.gethostname()}:8080",
                                  f"{socket.gethostname()}.local", f"{socket.gethostname()}.local.:8080",
                                  "warmer.lan"])
def test_the_warmers_own_names_and_addresses_are_answered(make_sim, host):
    sim = make_sim(allowed_hosts=["warmer.lan"])
    app = create_app(sim.controller, sim.cfg)
    assert app.test_client().get("/api/status", headers={"Host": host}).status_code == 200


# -- the sign-in limit (item 14) ----------------------------------------------------------------
class CountingStore(CredentialStore):
    """Counts password checks, and the most that ran at the same time."""

    def __init__(self, state_dir) -> None:
        super().__init__(state_dir)
        self.checked = 0
        self.running = 0
        self.most_at_once = 0
        self._count_lock = threading.Lock()

    def check_password(self, password: str) -> bool:
        with self._count_lock:
            self.checked += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            return super().check_password(password)
        finally:
            with self._count_lock:
                self.running -= 1


def _parallel_sign_ins(app, passwords: list[str], addresses: list[str]) -> list[int]:
    clients = [app.test_client() for _ in passwords]
    tokens = [csrf_token(c) for c in clients]
    statuses = [0] * len(passwords)
    start = threading.Barrier(len(passwords))

    def one(i: int) -> None:
        start.wait(timeout=30)
        statuses[i] = clients[i].post("/api/session", json={"password": passwords[i]},
                                      headers={CSRF_HEADER: tokens[i]},
                                      environ_base={"REMOTE_ADDR": addresses[i]}).status_code

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(passwords))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return statuses


def test_40_parallel_wrong_sign_ins_check_at_most_5_passwords_2_at_a_time(sim):
    store = CountingStore(sim.cfg.state.dir)
    store.set_password(WEB_PASSWORD)
    app = create_app(sim.controller, sim.cfg, credentials=store)
    statuses = _parallel_sign_ins(app, ["wrong guess"] * 40, ["10.0.0.66"] * 40)
    assert store.checked <= 5 and statuses.count(401) == store.checked
    assert statuses.count(429) == 40 - store.checked
    assert store.most_at_once <= 2


def test_guesses_from_many_addresses_are_slowed_down_but_the_owner_gets_in_within_seconds(sim):
    now = [0.0]
    store = CountingStore(sim.cfg.state.dir)
    store.set_password(WEB_PASSWORD)
    app = create_app(sim.controller, sim.cfg, credentials=store,
                     limiter=SignInLimiter(global_failures=20, global_spacing_s=3.0, now=lambda: now[0]))
    guesser = app.test_client()
    headers = {CSRF_HEADER: csrf_token(guesser)}

    def guess(address: str) -> int:
        return guesser.post("/api/session", json={"password": "wrong guess"}, headers=headers,
                            environ_base={"REMOTE_ADDR": address}).status_code

    assert [guess(f"10.0.0.{i // 5}") for i in range(20)] == [401] * 20  # 4 addresses x 5
    assert guess("10.0.0.50") == 401          # beyond 20 in the window: one check per 3 s ...
    assert guess("10.0.0.51") == 429          # ... for everyone
    assert store.checked == 21
    owner = app.test_client()
    owner_headers = {CSRF_HEADER: csrf_token(owner)}
    refused = owner.post("/api/session", json={"password": WEB_PASSWORD}, headers=owner_headers,
                         environ_base={"REMOTE_ADDR": "10.0.0.99"})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) <= 3
    now[0] += 3.0
    answer = owner.post("/api/session", json={"password": WEB_PASSWORD}, headers=owner_headers,
                        environ_base={"REMOTE_ADDR": "10.0.0.99"})
    assert answer.status_code == 200


def test_a_sign_in_refused_because_the_checks_are_busy_is_not_counted_against_the_client(sim):
    limiter = SignInLimiter(max_concurrent=1, wait_s=0.05)
    app = create_app(sim.controller, sim.cfg, limiter=limiter)
    AuthActions(app, app.test_client()).set_password()
    client = app.test_client()
    headers = {CSRF_HEADER: csrf_token(client)}

    def wrong() -> int:
        return client.post("/api/session", json={"password": "wrong guess"}, headers=headers).status_code

    with limiter.attempt("10.9.9.9"):  # someone else's check holds the only slot
        busy = client.post("/api/session", json={"password": "wrong guess"}, headers=headers)
        assert busy.status_code == 429 and "busy" in busy.get_json()["error"]
    assert [wrong() for _ in range(6)] == [401] * 5 + [429]  # still all five of its attempts


# -- the password hash (item 15) ----------------------------------------------------------------
def test_an_old_scrypt_hash_is_replaced_by_argon2id_at_sign_in_and_other_sessions_stay(sim, app, client):
    salt = bytes(range(16))
    digest = hashlib.scrypt(WEB_PASSWORD.encode(), salt=salt, n=2**14, r=8, p=1)
    path = Path(sim.cfg.state.dir) / "web-auth.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"password": {"scheme": "scrypt", "n": 2**14, "r": 8, "p": 1, "salt": salt.hex(),
                                             "hash": digest.hex()}, "session_key": "ab" * 32, "version": 1}))
    store = CredentialStore(sim.cfg.state.dir)
    generation = store.password_generation()
    assert not store.check_password("not it") and "scrypt" in path.read_text()
    first = AuthActions(app, client)
    assert first.login().status_code == 200
    record = json.loads(path.read_text())["password"]
    assert record["scheme"] == "argon2id" and record["hash"].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert store.password_generation() == generation and store.check_password(WEB_PASSWORD)
    assert client.post("/api/setpoint", json={"setpoint_c": 50}, headers=first.headers).status_code == 200


@pytest.mark.parametrize("password", ["password123", "Raspberry", "12345678", "qwertyuiop", "aaaaaaaaaa",
                                      "abababababab"])
def test_a_common_password_is_refused_and_nothing_is_stored(tmp_path, password):
    store = CredentialStore(tmp_path)
    with pytest.raises(CredentialError, match="most commonly used"):
        store.set_password(password)
    assert not store.password_set


# -- what open viewing covers (item 16) ---------------------------------------------------------
READ_PATHS = {"/api/history": "open_history", "/api/history.csv": "open_history", "/api/events": "open_events",
              "/metrics": "open_metrics", "/api/openapi.json": "open_api_doc"}


def test_open_viewing_covers_the_live_status_only(sim, app, client):
    sim.run(3)
    assert client.get("/api/status").status_code == 200
    assert client.get("/healthz").status_code == 200
    for path in READ_PATHS:
        answer = client.get(path)
        assert answer.status_code == 401 and READ_PATHS[path] in answer.get_json()["error"], path
    token = app.extensions[EXTENSION].credentials.create_token("grafana")
    for path in READ_PATHS:
        assert client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200, path


@pytest.mark.parametrize("path", sorted(READ_PATHS))
def test_each_open_key_opens_only_its_own_path(make_sim, path):
    sim = make_sim(**{READ_PATHS[path]: True})
    from web.history import HistoryRecorder

    history = HistoryRecorder.open(sim.cfg.state.dir)
    try:
        app = create_app(sim.controller, sim.cfg, history=history)
        sim.run(2)
        client = app.test_client()
        for other, key in READ_PATHS.items():
            assert client.get(other).status_code == (200 if key == READ_PATHS[path] else 401), other
    finally:
        history.stop()


def test_the_live_stream_sends_no_events_to_a_viewer_who_may_not_read_them(sim, app, client, signed_in):
    from web.stream import messages

    c = app.extensions[EXTENSION]
    for with_events in (False, True):
        stream = messages(sim.controller, c.feed, heartbeat_s=0.01, stream_max_s=5.0, with_events=with_events)
        next(stream), next(stream)  # the retry line, the first status
        sim.controller.set_setpoint(48.0 if with_events else 47.0, source="token:secret")
        sim.step()
        text = "".join(part for part, _ in zip(stream, range(3)))
        assert ("token:secret" in text) is with_events and "event: status" in text


# -- an unchanged setpoint (item 17) ------------------------------------------------------------
def test_an_unchanged_setpoint_records_no_event_and_saves_nothing(sim, client, signed_in):
    assert client.post("/api/setpoint", json={"setpoint_c": 50}, headers=signed_in.headers).status_code == 200
    events = len(sim.controller.events.since(0))
    saved = sim.controller.store.path.stat().st_mtime_ns
    for _ in range(20):
        answer = client.post("/api/setpoint", json={"setpoint_c": 50.0}, headers=signed_in.headers)
        assert answer.status_code == 200 and answer.get_json()["setpoint_c"] == 50.0
    assert len(sim.controller.events.since(0)) == events
    assert sim.controller.store.path.stat().st_mtime_ns == saved


# -- the [web] keys -----------------------------------------------------------------------------
@pytest.mark.parametrize(("web", "named"), [
    ({"allowed_hosts": "warmer.lan"}, ["allowed_hosts", "a list of strings"]),
    ({"allowed_hosts": ["warmer.lan:8080"]}, ["allowed_hosts", "warmer.lan:8080", "without a port"]),
    ({"allowed_hosts": ["-bad-.lan"]}, ["allowed_hosts", "-bad-.lan"]),
    ({"allowed_hosts": [80]}, ["allowed_hosts", "80", "string"]),
    ({"open_viewing": False, "open_history": True}, ["open_history", "open_viewing = false"]),
    ({"open_events": "yes"}, ["open_events", "true or false"]),
    ({"session_idle_h": 0}, ["session_idle_h", "0.1", "720"]),
    ({"connections_per_client": 2}, ["connections_per_client", "4", "400"]),
])
def test_a_bad_web_key_is_refused_naming_the_key_and_what_is_allowed(web, named):
    from controller.core import config as cfgmod

    with pytest.raises(cfgmod.ConfigError) as refused:
        cfgmod.from_dict({"web": web})
    message = str(refused.value)
    assert "\n" not in message and all(word in message for word in named), message
