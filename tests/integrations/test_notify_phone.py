"""Phone notifications (controller/integrations/notify/): ntfy and Apprise against a receiver on 127.0.0.1."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import tomllib
from email.header import decode_header, make_header
from types import SimpleNamespace

import pytest

from controller.core import config as cfgmod
from controller.core.clock import SimClock
from controller.core.events import Event, EventKind, EventLog
from controller.core.faults import ADVICE, FaultKind
from controller.integrations import notify
from controller.integrations.notify.messages import Message, Priority, merge, message_for, wanted
from controller.integrations.notify.outbox import Outbox, RateLimit
from controller.integrations.notify.senders import NtfySender
from controller.integrations.notify.worker import GIVE_UP_AFTER, Worker
from controller.qa.processes import command, free_port, stop, wait_until
from controller.sim.simulation import Simulation, parse_injection
from tests.helpers import REPO
from tests.integrations.ntfy_receiver import Receiver

DASHBOARD = "http://room-1.local:8080/"


def event(kind: EventKind, *, fault: FaultKind | None = None, source: str = "web", n: int = 1,
          message: str = "", temperature_c: float | None = 52.0) -> Event:
    return Event(n, 1000.0 + n, 1_790_000_000.0 + n, kind, message or str(kind), fault=fault,
                 temperature_c=temperature_c, setpoint_c=52.0, source=source)


def notify_cfg(tmp_path, **keys) -> cfgmod.Config:
    cfg = cfgmod.replace(cfgmod.Config(), "state", dir=str(tmp_path / "state"))
    return cfgmod.replace(cfg, "notify", **keys)


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


@pytest.fixture
def started():
    """``started(notes_or_worker)``: start it now, stop it at the end of the test."""
    running = []

    def start(part):
        part.start()
        running.append(part)
        return part

    yield start
    for part in running:
        part.stop(1.0) if isinstance(part, Worker) else part.stop()


# -- the fault, end to end ------------------------------------------------------------------------

def test_a_fault_reaches_ntfy_within_5_s_of_the_trip_with_the_advice_and_the_headers(tmp_path, receiver, started):
    token_file = tmp_path / "ntfy-token"
    token_file.write_text("tk_secret123\n")
    cfg = notify_cfg(tmp_path, ntfy_url=receiver.url("room-1"), ntfy_token_file=str(token_file),
                     dashboard_url=DASHBOARD)
    with Simulation(cfg, injections=[parse_injection("unplug@120")]) as sim:
        trips: list[tuple[float, float]] = []  # (simulated s, real monotonic s) of the trip
        sim.controller.events.add_sink(
            lambda e: trips.append((sim.t_s, time.monotonic())) if e.kind == EventKind.FAULT else None)
        started(notify.attach(sim.controller, sim.cfg))
        while not trips and sim.t_s < 300:
            sim.step()
        assert trips, "the unplugged probe did not trip"
        (post,) = receiver.wait_for(1, timeout_s=5.0)

    trip_sim_s, trip_real_s = trips[0]
    assert 120 <= trip_sim_s <= 135
    assert post.arrived_s - trip_real_s <= 5.0
    assert post.path == "/room-1"
    assert ADVICE[FaultKind.SENSOR] in post.body
    assert post.headers["Title"] == "Probe problem: heater off"
    assert post.headers["Priority"] == "5"
    assert post.headers["Tags"] == "rotating_light"
    assert post.headers["Click"] == DASHBOARD
    assert post.headers["Authorization"] == "Bearer tk_secret123"
    assert post.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_the_control_tick_never_waits_for_a_receiver_that_hangs(tmp_path, receiver, started):
    receiver.hang()
    cfg = notify_cfg(tmp_path, ntfy_url=receiver.url(), queue_size=10, timeout_s=30.0)
    with Simulation(cfg, injections=[parse_injection("unplug@30")]) as sim:
        notes = started(notify.attach(sim.controller, sim.cfg))
        sim.run(60)  # the probe fault trips; its POST is sent and held by the receiver
        assert receiver.hanging.wait(5.0)
        ticks_before, t_before = sim.controller.status().tick, sim.t_s
        slowest_s = 0.0
        for second in range(600):  # 60 switch-offs and -ons while the worker is stuck in its POST
            if second % 10 == 0:
                (sim.controller.switch_on if sim.controller.switched_off else sim.controller.switch_off)()
            started_s = time.monotonic()
            sim.step()
            slowest_s = max(slowest_s, time.monotonic() - started_s)
        assert sim.controller.status().tick - ticks_before == 600
        assert sim.t_s - t_before == pytest.approx(600)
        assert [row.t_s for row in sim.trace[-600:]] == pytest.approx([t_before + s for s in range(1, 601)])
        (worker,) = notes.workers
        assert worker.dropped == 60 - 10  # the bounded queue kept the newest 10 and counted the rest
        assert slowest_s < 1.0  # one tick; the held POST would take 30 s
        receiver.release()


# -- retries and the rate limit --------------------------------------------------------------------

def worker_for(receiver, *, burst=5, interval_s=60.0, clock=None, queue_size=50) -> Worker:
    return Worker(NtfySender(receiver.url(), click_url=DASHBOARD, timeout_s=5.0), queue_size=queue_size,
                  burst=burst, interval_s=interval_s, clock=clock, backoff_s=(0.01,))


def test_a_notification_is_sent_again_after_the_server_answers_500_twice(receiver, started):
    receiver.statuses = [500, 500]
    worker = started(worker_for(receiver))
    worker.put(event(EventKind.OFF))
    posts = receiver.wait_for(3)
    assert [p.body for p in posts] == [posts[0].body] * 3
    assert "Switched off from the dashboard" in posts[0].body
    assert posts[0].headers["Priority"] == str(int(Priority.LOW))
    wait_until(lambda: worker.sent, timeout_s=5.0, what="the third attempt's answer")
    assert (worker.sent, worker.failed, worker.given_up) == (1, 2, 0)


def test_a_fault_is_retried_until_sent_and_anything_else_given_up_after_five_attempts(receiver, started):
    receiver.statuses = [503] * GIVE_UP_AFTER
    worker = started(worker_for(receiver))
    worker.put(event(EventKind.READY))
    receiver.wait_for(GIVE_UP_AFTER)
    receiver.statuses = [503] * (GIVE_UP_AFTER + 2)
    worker.put(event(EventKind.FAULT, fault=FaultKind.OVERTEMP, n=2))
    posts = receiver.wait_for(2 * GIVE_UP_AFTER + 3)
    assert all(p.headers["Title"] == "Stones ready" for p in posts[:GIVE_UP_AFTER])
    assert all(p.headers["Title"] == "Water too hot: heater off" for p in posts[GIVE_UP_AFTER:])
    wait_until(lambda: worker.sent, timeout_s=5.0, what="the fault's last answer")
    assert (worker.sent, worker.given_up) == (1, 1)


def test_a_request_the_server_refuses_is_not_repeated(receiver, started):
    receiver.statuses = [403]
    worker = started(worker_for(receiver))
    worker.put(event(EventKind.FAULT, fault=FaultKind.OVERTEMP))
    receiver.wait_for(1)
    wait_until(lambda: worker.given_up, timeout_s=5.0, what="the refusal")
    worker.put(event(EventKind.READY, n=2))
    posts = receiver.wait_for(2)
    assert [p.headers["Title"] for p in posts] == ["Water too hot: heater off", "Stones ready"]
    wait_until(lambda: worker.sent, timeout_s=5.0, what="the second answer")
    assert (worker.sent, worker.failed, worker.given_up) == (1, 1, 1)


def test_a_burst_is_held_back_and_merged_but_a_fault_goes_at_once(receiver, started):
    clock = SimClock()
    worker = started(worker_for(receiver, burst=3, interval_s=600.0, clock=clock))
    for n in range(1, 4):  # the burst: three go out one by one
        worker.put(event(EventKind.OFF if n % 2 else EventKind.ON, n=n))
        receiver.wait_for(n)
    for n in range(4, 11):  # no token left: these wait
        worker.put(event(EventKind.OFF if n % 2 else EventKind.ON, n=n))
    worker.put(event(EventKind.FAULT, fault=FaultKind.SENSOR, n=11))
    fault_post = receiver.wait_for(4)[3]
    assert fault_post.headers["Title"] == "Probe problem: heater off"  # alone: the held ones still wait
    wait_until(lambda: worker.sent == 4, timeout_s=5.0, what="the fault's answer")
    assert worker.outbox.waiting() == (0, 7)

    clock.advance(600.0)  # one token again
    worker.put(event(EventKind.READY, n=12))
    digest = receiver.wait_for(5)[4]
    assert digest.headers["Title"] == "Stones ready (+7 more)"
    assert digest.body.count("Warmer switched") == 7
    assert worker.outbox.waiting() == (0, 0)
    assert len(receiver.posts) == 5


def test_the_rate_limit_allows_a_burst_then_one_per_interval():
    limit = RateLimit(burst=2, interval_s=60.0, now_s=0.0)
    for _ in range(2):
        assert limit.available(0.0)
        limit.spend(0.0)
    assert not limit.available(30.0)
    assert limit.wait_s(30.0) == pytest.approx(30.0)
    assert limit.available(60.0)
    limit.spend(60.0)
    assert not limit.available(61.0)
    assert limit.available(6000.0)
    limit.spend(6000.0)
    limit.spend(6000.0)
    assert not limit.available(6000.0)  # never more than the burst saved up


def test_a_full_queue_drops_the_oldest_non_fault_and_never_a_fault():
    outbox = Outbox(size=10)
    for n in range(10):
        outbox.put(event(EventKind.ON, n=n))
    outbox.put(event(EventKind.FAULT, fault=FaultKind.SENSOR, n=10))
    assert outbox.dropped == 1
    assert [e.id for e in outbox.take_all()] == [10] + list(range(1, 10))
    for n in range(25):  # nothing but faults: the queue stays bounded, every fault kept
        outbox.put(event(EventKind.FAULT, fault=FaultKind.SENSOR, n=n))
    outbox.put(event(EventKind.READY, n=99))
    assert outbox.dropped == 2
    assert [e.id for e in outbox.take_urgent()] == list(range(25))


# -- what is sent ------------------------------------------------------------------------------------

def test_each_event_is_worded_for_the_therapist():
    ready = message_for(event(EventKind.READY, temperature_c=52.04))
    assert (ready.title, ready.priority) == ("Stones ready", Priority.DEFAULT)
    assert "52.0 °C" in ready.body
    on = message_for(event(EventKind.ON, source="schedule"))
    assert (on.title, on.priority, on.body) == ("Warmer switched on", Priority.LOW,
                                                "Switched on by the schedule: warming to 52.0 °C.")
    assert "through the API (phone)" in message_for(event(EventKind.OFF, source="token:phone")).body
    fault = message_for(event(EventKind.FAULT, fault=FaultKind.STUCK_RELAY, message="water rose 3.0 degC in 120 s"))
    assert fault.title.startswith("UNPLUG THE HEATER")
    assert fault.body.startswith(ADVICE[FaultKind.STUCK_RELAY])
    assert "water rose 3.0 °C in 120 s" in fault.body
    assert (fault.priority, fault.urgent) == (Priority.URGENT, True)
    restart = message_for(event(EventKind.START, fault=FaultKind.OVERTEMP))
    assert restart.urgent and ADVICE[FaultKind.OVERTEMP] in restart.body



def test_the_schedule_and_auto_off_are_worded_for_the_therapist():
    on = message_for(event(EventKind.AUTO_ON, source="schedule",
                           message="warming to be ready by 08:30, setpoint 52.0 degC"))
    assert (on.title, on.body) == ("Warming up on schedule",
                                   "Switched on by the schedule: warming to be ready by 08:30, setpoint 52.0 °C.")
    off = message_for(event(EventKind.AUTO_OFF, source="auto-off",
                            message="no one has touched the warmer for 10 h: heater held off"))
    assert off.body.startswith("Switched off by auto-off: no one has touched the warmer for 10 h")
    warning = message_for(event(EventKind.AUTO_OFF_WARNING, source="auto-off",
                                message="the warmer switches itself off in 15 min (10 h without a touch)"))
    assert warning.priority == Priority.HIGH and "Extend" in warning.body
    clock = message_for(event(EventKind.CLOCK_UNSYNCED, source="clock", message="the wall clock is not synchronised"))
    assert clock.title.startswith("Warmer's clock not set") and "network" in clock.body
    assert all(wanted(event(kind)) for kind in (EventKind.AUTO_ON, EventKind.AUTO_OFF, EventKind.AUTO_OFF_WARNING,
                                               EventKind.CLOCK_UNSYNCED))


def test_only_the_events_worth_a_notification_are_sent():
    assert wanted(event(EventKind.FAULT, fault=FaultKind.SENSOR))
    assert wanted(event(EventKind.START, fault=FaultKind.SENSOR))
    assert not wanted(event(EventKind.START))  # an ordinary start
    assert wanted(event(EventKind.NOTICE, source="state"))
    assert not wanted(event(EventKind.NOTICE, source="autotune"))  # new gains: not a problem
    assert not wanted(event(EventKind.SETPOINT))
    assert not wanted(event(EventKind.ACK))


def test_merged_notifications_put_the_fault_first():
    merged = merge([message_for(event(EventKind.OFF, n=1)),
                    message_for(event(EventKind.FAULT, fault=FaultKind.HEATING, n=2))])
    assert merged.title == "Water not warming up: heater off (+1 more)"
    assert merged.urgent and merged.priority == Priority.URGENT
    assert merged.body.index("Water not warming up") < merged.body.index("Warmer switched off")


def test_a_title_beyond_ascii_is_sent_as_an_encoded_word_that_ntfy_decodes(receiver):
    sender = NtfySender(receiver.url(), timeout_s=5.0)
    title = "Steine bereit ✓ 52 °C, " + " ".join(["sehr lange Überschrift"] * 5)  # longer than a folded line
    sender.send(Message(title, "Körbe: 3", Priority.DEFAULT, ("white_check_mark",), False, 0.0))
    (post,) = receiver.wait_for(1)
    assert post.headers["Title"].isascii()
    assert str(make_header(decode_header(post.headers["Title"]))) == title
    assert post.body == "Körbe: 3"


# -- after a restart -------------------------------------------------------------------------------

def test_a_fault_latched_across_a_restart_is_sent_when_the_service_starts(tmp_path, receiver, started):
    cfg = notify_cfg(tmp_path, ntfy_url=receiver.url())
    with Simulation(cfg, injections=[parse_injection("unplug@30")]) as sim:
        sim.run(60)
        assert sim.controller.interlock.latched is not None
    with Simulation(cfg) as again:  # the same state dir: the fault is still latched
        started(notify.attach(again.controller, again.cfg))
        (post,) = receiver.wait_for(1)
    assert post.headers["Title"] == "Warmer restarted with a fault: heater off"
    assert post.headers["Priority"] == str(int(Priority.HIGH))
    assert ADVICE[FaultKind.SENSOR] in post.body


# -- Apprise -------------------------------------------------------------------------------------------

def test_apprise_delivers_a_fault_to_its_url(tmp_path, receiver, started):
    cfg = notify_cfg(tmp_path, apprise_urls=[receiver.url("hook").replace("http://", "json://")])
    with Simulation(cfg, injections=[parse_injection("unplug@30")]) as sim:
        started(notify.attach(sim.controller, sim.cfg))
        sim.run(60)
        (post,) = receiver.wait_for(1)
    sent = json.loads(post.body)
    assert sent["title"] == "Probe problem: heater off"
    assert sent["type"] == "failure"
    assert ADVICE[FaultKind.SENSOR] in sent["message"]


def test_apprise_urls_without_apprise_installed_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "apprise", None)  # as if the notify extra were not installed
    cfg = notify_cfg(tmp_path, apprise_urls=["tgram://123456:abc/987"])
    with pytest.raises(cfgmod.ConfigError, match=r"^\[notify\] apprise_urls\[0\] needs Apprise.*notify extra") as e:
        notify.senders(cfg)
    assert "\n" not in str(e.value)


def test_an_apprise_url_apprise_does_not_know_is_refused(tmp_path):
    cfg = notify_cfg(tmp_path, apprise_urls=["nosuchservice://x/y"])
    with pytest.raises(cfgmod.ConfigError, match=r"apprise_urls\[0\]: Apprise does not accept this nosuchservice://"):
        notify.senders(cfg)


# -- configuration ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("keys", "refusal"), [
    ({"ntfy_url": "ftp://ntfy.sh/room"}, "[notify] ntfy_url = 'ftp://ntfy.sh/room' is not allowed: must be an http"),
    ({"ntfy_url": "https://ntfy.sh"}, "[notify] ntfy_url = 'https://ntfy.sh' is not allowed: must be an http://"
                                      " or https:// address ending in the topic"),
    ({"ntfy_url": "https://ntfy.sh/"}, "ending in the topic"),
    ({"ntfy_token_file": "/etc/stonewarmer/ntfy-token"}, "is not allowed without an ntfy_url"),
    ({"apprise_urls": "tgram://a/b"}, "[notify] apprise_urls = 'tgram://a/b' is not allowed: must be a list"),
    ({"apprise_urls": ["tgram://a/b"] * 6}, "must be a list of at most 5 strings"),
    ({"apprise_urls": ["not a url"]}, "[notify] apprise_urls = 'not a url' is not allowed: must be an Apprise URL"),
    ({"burst": 0}, "[notify] burst = 0 is not allowed: must be between 1 and 30"),
    ({"interval_s": 1}, "[notify] interval_s = 1.0 is not allowed: must be between 10 and 3600 s"),
    ({"queue_size": 100000}, "[notify] queue_size = 100000 is not allowed: must be between 10 and 1000"),
    ({"timeout_s": 0}, "[notify] timeout_s = 0.0 is not allowed: must be between 1 and 60 s"),
    ({"dashboard_url": "room-1.local"}, "[notify] dashboard_url = 'room-1.local' is not allowed"),
    ({"topic": "x"}, "[notify] topic is not a known key: allowed are apprise_urls, burst,"),
])
def test_bad_notify_settings_are_refused_with_one_line(keys, refusal):
    with pytest.raises(cfgmod.ConfigError) as e:
        cfgmod.from_dict({"notify": keys})
    assert refusal in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("content", ["", "\n", "two words\n"])
def test_an_unusable_token_file_is_refused_before_anything_starts(tmp_path, content):
    token_file = tmp_path / "token"
    token_file.write_text(content)
    cfg = notify_cfg(tmp_path, ntfy_url="https://ntfy.example/room-1", ntfy_token_file=str(token_file))
    with pytest.raises(cfgmod.ConfigError, match=r"ntfy_token_file = .*first line"):
        notify.senders(cfg)
    missing = notify_cfg(tmp_path, ntfy_url="https://ntfy.example/room-1", ntfy_token_file=str(tmp_path / "none"))
    with pytest.raises(cfgmod.ConfigError, match="cannot read"):
        notify.senders(missing)


def test_without_a_url_nothing_is_attached(tmp_path):
    with Simulation(notify_cfg(tmp_path)) as sim:
        notes = notify.attach(sim.controller, sim.cfg)
        assert notes.workers == []


# -- the running service -----------------------------------------------------------------------------

def test_stonewarmer_run_sends_a_fault_to_ntfy_and_stops_cleanly(tmp_path, receiver):
    config = tmp_path / "stonewarmer.toml"
    config.write_text(f'[notify]\nntfy_url = "{receiver.url("room-2")}"\ndashboard_url = "{DASHBOARD}"\n')
    warmer = subprocess.Popen(
        [*command("run", "--simulate", "--config", str(config), "--state-dir", str(tmp_path / "state")),
         "--host", "127.0.0.1", "--port", str(free_port()), "--speed", "10", "--inject", "unplug@5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        (post,) = receiver.wait_for(1, timeout_s=30.0)
        assert post.path == "/room-2"
        assert post.headers["Title"] == "Probe problem: heater off"
        assert ADVICE[FaultKind.SENSOR] in post.body
        stopping_s = time.monotonic()
        assert stop(warmer) == 0
        assert time.monotonic() - stopping_s < 5.0
    finally:
        stop(warmer)
        output = warmer.stdout.read().decode()
    assert "notify: notifications to ntfy at http://127.0.0.1:" in output
    assert "room-2" not in output  # the topic is as good as a password: never logged


def test_the_commented_notify_block_in_the_shipped_config_shows_the_real_defaults():
    text = (REPO / "config" / "stonewarmer.toml").read_text()
    block = text[text.index("# [notify]"):text.index("# [mqtt]")]
    uncommented = "\n".join(re.sub(r"^# (\[notify\]|\w+ = .*)$", r"\1", line) for line in block.splitlines())
    assert cfgmod.from_dict(tomllib.loads(uncommented)).notify == cfgmod.NotifyConfig()
    assert len(re.findall(r"^# \w+ = ", block, flags=re.MULTILINE)) == len(cfgmod.NotifyConfig.__slots__)


# -- the ntfy address set from the phone ----------------------------------------------------------

def test_an_ntfy_address_set_from_the_phone_is_followed_at_once_and_kept(tmp_path, receiver, started):
    from controller.integrations.notify.setting import NtfySetting

    cfg = notify_cfg(tmp_path, ntfy_url=receiver.url("from-the-file"))
    (tmp_path / "state").mkdir()
    with Simulation(cfg, injections=[parse_injection("unplug@60")]) as sim:
        setting = NtfySetting(sim.cfg)
        started(notify.attach(sim.controller, sim.cfg, ntfy=setting))
        assert setting.set(receiver.url("from-the-phone")) == receiver.url("from-the-phone")  # no restart
        while sim.controller.status().fault is None and sim.t_s < 200:
            sim.step()
        posts = receiver.wait_for(1, timeout_s=5.0)
    assert [p.path for p in posts] == ["/from-the-phone"]
    assert NtfySetting(cfg).url == receiver.url("from-the-phone")  # kept for the next start


@pytest.mark.parametrize("url", ["https://me:pw@ntfy.example/t", "ftp://ntfy.example/t", "https://ntfy.example/",
                                 "https://ntfy.example/t x", 5])
def test_an_ntfy_address_with_credentials_or_not_http_is_refused_and_nothing_kept(tmp_path, url):
    from controller.integrations.notify.setting import NtfySetting

    setting = NtfySetting(notify_cfg(tmp_path))
    with pytest.raises(ValueError, match="notify.ntfy_url"):
        setting.set(url)
    assert setting.url == "" and not setting.path.exists()


def test_the_access_token_goes_only_to_the_server_of_the_config_never_to_an_address_from_the_phone(tmp_path,
                                                                                                    receiver, started):
    from controller.integrations.notify.setting import NtfySetting

    token_file = tmp_path / "ntfy-token"
    token_file.write_text("tk_secret123\n")
    cfg = notify_cfg(tmp_path, ntfy_url=receiver.url("room-1"), ntfy_token_file=str(token_file))
    (tmp_path / "state").mkdir()
    with Receiver() as elsewhere:
        setting = NtfySetting(cfg)
        notes = started(notify.attach(SimpleNamespace(events=EventLog()), cfg, ntfy=setting))
        setting.set(elsewhere.url("stolen"))  # another server (port): no token
        notes.on_event(event(EventKind.FAULT, fault=FaultKind.SENSOR))
        (stranger,) = elsewhere.wait_for(1, timeout_s=5.0)
        setting.set(receiver.url("room-2"))  # the config's server, another topic: the token
        notes.on_event(event(EventKind.FAULT, fault=FaultKind.SENSOR, n=2))
        (own,) = receiver.wait_for(1, timeout_s=5.0)
    assert "Authorization" not in stranger.headers
    assert (own.path, own.headers["Authorization"]) == ("/room-2", "Bearer tk_secret123")
    assert notify.same_server("https://ntfy.example/a", "HTTPS://ntfy.example:443/b")
    assert not notify.same_server("https://ntfy.example/a", "http://ntfy.example/a")
