"""Sign-in, CSRF, API tokens and the sign-in rate limit: every change is refused without them."""

from __future__ import annotations

import pytest

from controller.cli.main import main
from controller.sim.simulation import parse_injection
from tests.helpers import WEB_PASSWORD, csrf_token
from web import create_app, web_state_dir
from web.context import EXTENSION
from web.credentials import CredentialStore
from web.signin_limit import SignInLimiter


def _unchanged(sim, before_events: int) -> None:
    assert sim.controller.setpoint_c == 52.0
    assert len(sim.controller.events.since(0)) == before_events


def test_without_a_password_changes_are_refused_and_the_answer_says_how_to_set_one(sim, client):
    answer = client.post("/api/setpoint", json={"setpoint_c": 50}, headers={"X-CSRF-Token": csrf_token(client)})
    assert answer.status_code == 403
    assert "stonewarmer set-password" in answer.get_json()["error"]
    session = client.get("/api/session").get_json()
    assert session["password_set"] is False and "set-password" in session["how_to_set_password"]
    _unchanged(sim, 1)


def test_sign_in_is_refused_while_no_password_is_set(client):
    answer = client.post("/api/session", json={"password": "anything at all"},
                         headers={"X-CSRF-Token": csrf_token(client)})
    assert answer.status_code == 403


def test_change_without_a_session_is_401(sim, app, client, auth):
    auth.set_password()
    answer = client.post("/api/setpoint", json={"setpoint_c": 50}, headers={"X-CSRF-Token": csrf_token(client)})
    assert answer.status_code == 401
    _unchanged(sim, 1)


@pytest.mark.parametrize("headers", [{}, {"X-CSRF-Token": "not-the-token"}], ids=["no-token", "wrong-token"])
def test_signed_in_change_without_the_csrf_token_is_403(sim, client, signed_in, headers):
    answer = client.post("/api/setpoint", json={"setpoint_c": 50}, headers=headers)
    assert answer.status_code == 403 and answer.get_json()["field"] == "X-CSRF-Token"
    answer = client.post("/api/fault/ack", headers=headers)
    assert answer.status_code == 403
    _unchanged(sim, 1)


def test_signed_in_change_with_the_csrf_token_works(sim, client, signed_in):
    answer = client.post("/api/setpoint", json={"setpoint_c": 50.5}, headers=signed_in.headers)
    assert answer.status_code == 200
    assert answer.get_json()["setpoint_c"] == 50.5 == sim.controller.status().setpoint_c
    assert sim.controller.events.since(0)[-1].source == "web"


def test_setpoint_above_the_maximum_is_422_with_the_range(sim, client, signed_in):
    answer = client.post("/api/setpoint", json={"setpoint_c": 55}, headers=signed_in.headers)
    assert answer.status_code == 422
    body = answer.get_json()
    assert body["field"] == "setpoint_c" and body["allowed"] == {"min": 35.0, "max": 54.0, "unit": "degC"}
    _unchanged(sim, 1)


def test_sign_in_needs_the_csrf_token(app, client, auth):
    auth.set_password()
    client.get("/api/session")
    assert client.post("/api/session", json={"password": WEB_PASSWORD}).status_code == 403
    assert client.get("/api/session").get_json()["signed_in"] is False


def test_session_cookie_is_httponly_samesite_strict_and_not_secure(app, client, auth):
    auth.set_password()
    answer = auth.login()
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie


def test_sign_out_ends_the_session(sim, client, signed_in):
    assert client.delete("/api/session", headers=signed_in.headers).status_code == 200
    answer = client.post("/api/setpoint", json={"setpoint_c": 50}, headers={"X-CSRF-Token": csrf_token(client)})
    assert answer.status_code == 401


def test_setting_the_password_again_signs_every_browser_out(app, client, signed_in):
    app.extensions[EXTENSION].credentials.set_password("a new password")
    answer = client.post("/api/setpoint", json={"setpoint_c": 50}, headers=signed_in.headers)
    assert answer.status_code == 401


def test_wrong_passwords_are_rate_limited_per_client(sim, auth):
    clock = [0.0]
    app = create_app(sim.controller, sim.cfg, limiter=SignInLimiter(max_failures=5, window_s=300,
                                                                    now=lambda: clock[0]))
    auth.set_password()
    client = app.test_client()
    headers = {"X-CSRF-Token": csrf_token(client)}
    for _ in range(5):
        assert client.post("/api/session", json={"password": "wrong guess"}, headers=headers).status_code == 401
    limited = client.post("/api/session", json={"password": WEB_PASSWORD}, headers=headers)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) == 300
    other = app.test_client(); other_headers = {"X-CSRF-Token": csrf_token(other)}  # noqa: E702
    other_answer = other.post("/api/session", json={"password": WEB_PASSWORD}, headers=other_headers,
                              environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other_answer.status_code == 200  # another client is not locked out
    clock[0] = 301.0
    assert client.post("/api/session", json={"password": WEB_PASSWORD}, headers=headers).status_code == 200


def test_api_token_allows_changes_without_cookie_or_csrf(sim, app):
    token = app.extensions[EXTENSION].credentials.create_token("script")
    answer = app.test_client().post("/api/setpoint", json={"setpoint_c": 49},
                                    headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert sim.controller.events.since(0)[-1].source == "token:script"


def test_wrong_api_token_is_401_and_changes_nothing(sim, app):
    app.extensions[EXTENSION].credentials.create_token("script")
    answer = app.test_client().post("/api/setpoint", json={"setpoint_c": 49},
                                    headers={"Authorization": "Bearer sw_not-a-real-token"})
    assert answer.status_code == 401 and answer.get_json()["field"] == "Authorization"
    _unchanged(sim, 1)


def test_revoked_token_stops_working(sim, app):
    creds = app.extensions[EXTENSION].credentials
    token = creds.create_token("old")
    assert creds.revoke_token("old") is True
    answer = app.test_client().post("/api/setpoint", json={"setpoint_c": 49},
                                    headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401


def test_closed_viewing_needs_a_sign_in_but_healthz_stays_open(make_sim):
    sim = make_sim(open_viewing=False)
    app = create_app(sim.controller, sim.cfg)
    token = app.extensions[EXTENSION].credentials.create_token("grafana")
    client = app.test_client()
    sim.run(2)
    for path in ("/api/status", "/api/events", "/api/stream", "/metrics"):
        assert client.get(path).status_code == 401, path
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 200  # the page itself, which asks for the password
    assert client.get("/api/status", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_acknowledge_clears_a_fault_once_the_probe_reads_again(make_sim):
    sim = make_sim(injections=[parse_injection("crc@5:30")])
    app = create_app(sim.controller, sim.cfg)
    token = app.extensions[EXTENSION].credentials.create_token("t")
    client = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    sim.run(25)
    assert sim.controller.status().fault == "sensor"
    refused = client.post("/api/fault/ack", headers=auth)  # the probe has failed for 20 s
    assert refused.status_code == 409 and "probe" in refused.get_json()["error"]
    assert sim.controller.status().fault == "sensor"
    sim.run(15)
    answer = client.post("/api/fault/ack", headers=auth)
    assert answer.status_code == 200 and answer.get_json()["acknowledged"] == "sensor"
    assert answer.get_json()["status"]["fault"] is None


def test_acknowledge_without_a_fault_is_409(app):
    token = app.extensions[EXTENSION].credentials.create_token("t")
    answer = app.test_client().post("/api/fault/ack", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 409 and "no fault" in answer.get_json()["error"]


# -- the CLI --------------------------------------------------------------------------------
def test_set_password_cli_stores_a_slow_hash_not_the_password(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("my warm stones\n"))
    assert main(["set-password", "--stdin", "--state-dir", str(tmp_path)]) == 0
    web_dir = web_state_dir(tmp_path)  # the web process's own directory
    text = (web_dir / "web-auth.json").read_text()
    assert "my warm stones" not in text and '"scheme": "argon2id"' in text and "$argon2id$v=19$m=19456,t=2,p=1$" in text
    assert (web_dir / "web-auth.json").stat().st_mode & 0o077 == 0  # owner only
    assert CredentialStore(web_dir).check_password("my warm stones")
    assert not CredentialStore(web_dir).check_password("my warm stone")


def test_set_password_cli_refuses_a_short_password(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("short\n"))
    assert main(["set-password", "--stdin", "--state-dir", str(tmp_path)]) == 2
    assert "8 to 256 characters" in capsys.readouterr().err
    assert not CredentialStore(web_state_dir(tmp_path)).password_set


def test_token_cli_prints_a_token_once_and_stores_only_its_hash(tmp_path, capsys):
    assert main(["token", "--name", "ha", "--state-dir", str(tmp_path)]) == 0
    token = capsys.readouterr().out.strip()
    web_dir = web_state_dir(tmp_path)
    assert token.startswith("sw_") and token not in (web_dir / "web-auth.json").read_text()
    assert CredentialStore(web_dir).check_token(token) == "ha"
    assert main(["token", "--list", "--state-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == ["ha"]
    assert main(["token", "--revoke", "ha", "--state-dir", str(tmp_path)]) == 0
    assert CredentialStore(web_dir).check_token(token) is None
    assert main(["token", "--revoke", "ha", "--state-dir", str(tmp_path)]) == 2


def test_a_corrupt_credentials_file_refuses_changes_and_says_why(sim, app, client):
    (sim.cfg.state.dir and __import__("pathlib").Path(sim.cfg.state.dir) / "web-auth.json").write_text("{nope")
    creds = app.extensions[EXTENSION].credentials
    assert creds.password_set is False and "corrupt" in creds.problem
    answer = client.post("/api/setpoint", json={"setpoint_c": 50}, headers={"X-CSRF-Token": csrf_token(client)})
    assert answer.status_code == 403 and "corrupt" in answer.get_json()["error"]
