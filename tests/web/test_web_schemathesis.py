"""Property-based fuzzing of the whole API from its own ``/api/openapi.json`` (schemathesis).

Requests that fit the spec and requests that break it (wrong types, missing or extra
fields, out-of-range arguments) go to the Flask app in-process, with a fixed seed
(``derandomize``) and a bounded number of examples. Every answer is checked: no 5xx,
and the status code, content type and body are what the spec declares (each message
of the live stream too). The warmer starts with a latched sensor fault that an
acknowledge would clear, so a command that slipped through would show: after a run
without a valid session AND its CSRF token, the setpoint, the latched fault, the
events, ``state.json``, the history's events and the credentials file are unchanged.

The figures (requests tried, answers by status) are printed: run with ``-s`` to see them.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from controller.sim.simulation import parse_injection
from tests.helpers import WEB_PASSWORD, csrf_token
from web import create_app
from web.auth import CSRF_HEADER
from web.context import EXTENSION
from web.history import HistoryRecorder

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
COOKIE = "stonewarmer_session"
# Examples per run: bounded so the three runs take about 15 s together on a 2-core machine.
# STONEWARMER_FUZZ_SCALE=10 multiplies them for a longer run by hand (docs/safety.md, "Web abuse").
SCALE = float(os.environ.get("STONEWARMER_FUZZ_SCALE", "1"))
UNAUTHENTICATED_EXAMPLES = round(400 * SCALE)
NO_CSRF_EXAMPLES = round(300 * SCALE)
AUTHENTICATED_EXAMPLES = round(200 * SCALE)


@pytest.fixture
def warmer(make_sim):
    """(sim, app): a password is set and a sensor fault is latched that an acknowledge would clear."""
    sim = make_sim(injections=[parse_injection("crc@5:30")], open_api_doc=True)  # the fuzzer reads the spec
    history = HistoryRecorder.open(sim.cfg.state.dir)
    history.follow(sim.controller)
    sim.run(45)  # the probe failed from 5 to 35 s, reads again since: the fault may be acknowledged
    assert sim.controller.status().fault == "sensor"
    # A stream ends after 50 ms (real time) so a fuzzed GET /api/stream returns.
    app = create_app(sim.controller, sim.cfg, history=history, heartbeat_s=0.01, stream_max_s=0.05)
    app.extensions[EXTENSION].credentials.set_password(WEB_PASSWORD)
    yield sim, app
    history.stop()


def snapshot(sim, app) -> dict:
    """Everything a command could change."""
    c = app.extensions[EXTENSION]
    status = sim.controller.status()
    store = sim.controller.store.path
    return {
        "setpoint_c": status.setpoint_c, "fault": status.fault, "latched": sim.controller.interlock.latched,
        "events": len(sim.controller.events.since(0)),
        "state.json": store.read_text() if store.exists() else None,
        "history events": len(c.history.events(limit=10_000)),
        "credentials": c.credentials.path.read_bytes(),
        "settings": sim.controller.settings(), "switched_off": sim.controller.switched_off,
        "ntfy": c.ntfy.url,
    }


def sign_in(app) -> tuple[str, str]:
    """(session cookie value, its CSRF token) of a freshly signed-in browser."""
    client = app.test_client()
    answer = client.post("/api/session", json={"password": WEB_PASSWORD},
                         headers={CSRF_HEADER: csrf_token(client)})
    assert answer.status_code == 200, answer.get_json()
    return client.get_cookie(COOKIE).value, answer.get_json()["csrf_token"]


def _without_a_made_up_token(case):
    """The generator fills the spec's bearer-token header with made-up tokens (401): leave it out."""
    if case.headers:
        case.headers.pop("Authorization", None)
    return case


def fuzz(app, *, examples: int, cookies=None, headers=None, after_each=None, keep_session: bool = False) -> Counter:
    """Send ``examples`` generated requests; return the answers counted by (operation, status).

    Besides what the spec allows and what it does not, setpoints near the allowed range
    (30-60 degC), which the generic generator seldom hits. Fails (with the request to
    reproduce it) on the first answer that breaks a check. ``keep_session``: leave out the
    sign-out, so every request of the run is made in the signed-in session, and send allowed setpoints
    often.
    """
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    if keep_session:  # a sign-out would turn the rest of a signed-in run into an anonymous one
        schema = schema.exclude(method="DELETE", path="/api/session")
    setpoint = schema["/api/setpoint"]["POST"]
    near_range = st.floats(min_value=30, max_value=60).flatmap(
        lambda value: setpoint.as_strategy(body={"setpoint_c": value}))
    # And setpoints inside the allowed range, so every run also makes changes that must be accepted
    # (whatever the generator's seed makes of the rest).
    control = app.extensions[EXTENSION].controller.cfg.control
    in_range = st.floats(min_value=control.min_setpoint_c, max_value=control.max_setpoint_c).flatmap(
        lambda value: setpoint.as_strategy(body={"setpoint_c": value})).map(_without_a_made_up_token)
    anything = st.one_of(schema.as_strategy(schemathesis.GenerationMode.POSITIVE),
                         schema.as_strategy(schemathesis.GenerationMode.NEGATIVE), near_range)
    # Signed in: one case in five an allowed setpoint (a plain one_of spreads over every operation's
    # leaves, and a run could then make no change that must be accepted).
    cases = st.integers(min_value=0, max_value=4).flatmap(
        lambda pick: in_range if pick == 0 else anything) if keep_session else anything
    answers: Counter = Counter()

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def one(case):
        response = case.call(cookies=cookies, headers=headers)
        answers[(case.operation.label, response.status_code)] += 1
        case.validate_response(response, checks=CHECKS, headers=headers)
        if after_each is not None:
            after_each(case, response)

    one()
    return answers


def report(name: str, answers: Counter) -> None:
    total = sum(answers.values())
    by_status = Counter()
    for (_label, code), n in answers.items():
        by_status[code] += n
    server_errors = sum(n for code, n in by_status.items() if code >= 500)
    print(f"\nFIGURES schemathesis {name}: " + json.dumps(
        {"requests": total, "5xx": server_errors, "by_status": dict(sorted(by_status.items())),
         "operations": len({label for label, _ in answers})}))


def test_fuzzing_without_a_session_answers_as_specified_and_changes_nothing(warmer):
    sim, app = warmer
    before = snapshot(sim, app)
    answers = fuzz(app, examples=UNAUTHENTICATED_EXAMPLES)
    report("unauthenticated", answers)
    assert snapshot(sim, app) == before
    changes = {label for (label, code) in answers if label.startswith(("POST", "PUT", "DELETE")) and code < 400}
    assert changes == set(), f"a change was accepted without a session: {changes}"
    assert len({label for label, _ in answers}) == 24  # every operation of the spec was tried


def test_fuzzing_signed_in_without_the_csrf_token_changes_nothing(warmer):
    sim, app = warmer
    cookie, csrf = sign_in(app)
    before = snapshot(sim, app)
    answers = fuzz(app, examples=NO_CSRF_EXAMPLES, cookies={COOKIE: cookie})
    report("signed in, no CSRF token", answers)
    assert snapshot(sim, app) == before
    assert all(code in (401, 403, 413, 415, 422, 429) for (label, code) in answers
               if label.startswith(("POST", "PUT", "DELETE"))), answers
    # The same cookie WITH its CSRF token can change things: the run above lacked only the token.
    ack = app.test_client()
    ack.set_cookie(COOKIE, cookie)
    answer = ack.post("/api/fault/ack", headers={CSRF_HEADER: csrf})
    assert answer.status_code == 200 and sim.controller.status().fault is None


def test_fuzzing_signed_in_with_the_csrf_token_never_fails_and_keeps_the_setpoint_in_range(warmer):
    sim, app = warmer
    cookie, csrf = sign_in(app)
    status = sim.controller.status()
    low, high = status.min_setpoint_c, status.max_setpoint_c
    seen = []

    def in_range(case, response):
        setpoint_c = sim.controller.status().setpoint_c
        seen.append(setpoint_c)
        assert low <= setpoint_c <= high, f"{case.operation.label} left the setpoint at {setpoint_c}"

    answers = fuzz(app, examples=AUTHENTICATED_EXAMPLES, cookies={COOKIE: cookie}, headers={CSRF_HEADER: csrf},
                   after_each=in_range, keep_session=True)
    report("signed in with the CSRF token", answers)
    assert answers[("POST /api/setpoint", 200)] > 0  # the fuzzer did reach the controller
    assert len(set(seen)) > 1
