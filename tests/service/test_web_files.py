"""An upgrade from one process to two: the dashboard's files move into <state dir>/web, nothing is lost."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from controller.core import config as cfgmod
from controller.integrations.mqtt import records
from controller.service import installer, supervisor, upgrade, web_files
from controller.service.installer import Host, execute, install_plan
from tests.helpers import AuthActions
from tests.service.test_installer import install, root, running_then_pulled, source  # noqa: F401 (fixtures)
from web import create_app, credentials, history, sessions, web_state_dir

OLD_PASSWORD = "the stones of last year"
ROWS = [(1_700_000_000.0 + i, 40.0 + i / 10, 45.0, 0.5, 1, "warming", None) for i in range(30)]


def one_process_layout(state: Path) -> None:
    """The dashboard's files as the one-process version left them: in the state dir itself."""
    credentials.CredentialStore(state).set_password(OLD_PASSWORD)
    store = history.HistoryStore(state / history.HISTORY_FILE)
    store.write(ROWS)
    store.close()
    (state / sessions.SESSIONS_FILE).write_text('{"sessions": []}\n')
    records.save_record(state, records.Record(records.Broker("broker.lan", 1883), "stonewarmer", ("a/b",)))


def signs_in(web_dir: Path, controller, password: str) -> bool:
    app = create_app(controller, cfgmod.replace(controller.cfg, "state", dir=str(web_dir)))
    return AuthActions(app, app.test_client()).login(password).status_code == 200


def test_the_names_are_the_webs_own():
    assert {name for group in web_files.GROUPS for name in group} >= {
        credentials.AUTH_FILE, sessions.SESSIONS_FILE, history.HISTORY_FILE, records.RECORD_DIR}
    assert web_state_dir("/x") == web_files.web_dir("/x")


def test_an_upgrade_from_one_process_moves_the_files_and_the_old_password_still_signs_in(root, source,  # noqa: F811
                                                                                      make_controller):
    system, _, _ = running_then_pulled(root, source)
    state = root / "var/lib/stonewarmer"
    one_process_layout(state)
    lines = install(root, source, system=system)
    assert any("move the dashboard's files" in line and line.startswith("[do   ]") for line in lines), lines
    web_dir = web_files.web_dir(state)
    assert web_files.old_layout(state) == []
    uid, gid = Host(root=root).user_ids(installer.WEB_USER)
    for path in [web_dir / credentials.AUTH_FILE, web_dir / history.HISTORY_FILE, web_dir / sessions.SESSIONS_FILE,
                 *(web_dir / records.RECORD_DIR).iterdir()]:
        assert (path.stat().st_uid, path.stat().st_gid, path.stat().st_mode & 0o777) == (uid, gid, 0o600), path
    controller = make_controller()
    assert signs_in(web_dir, controller, OLD_PASSWORD)
    assert not signs_in(web_dir, controller, "not the password")
    store = history.HistoryStore(web_dir / history.HISTORY_FILE)
    assert store.readings(since_s=0, until_s=2e9, resolution="1s") == [r[:6] for r in ROWS]
    assert store.integrity() == "ok"
    assert len(records.load_records(web_dir)) == 1

    again = install(root, source, system=system)  # idempotent: nothing left to move
    assert all(line.startswith("[ok   ]") for line in again), again
    assert signs_in(web_dir, controller, OLD_PASSWORD)


def test_an_upgrade_that_does_not_start_puts_the_files_back_for_the_version_that_ran(root, source):  # noqa: F811
    system, old, _ = running_then_pulled(root, source)
    state = root / "var/lib/stonewarmer"
    one_process_layout(state)
    before = {name: (state / name).read_bytes() for name in (credentials.AUTH_FILE, history.HISTORY_FILE)}
    system.failing_starts.add(f"venv-{upgrade.fingerprint(source, ())}")
    host = Host(root=root, run=system, services=True)
    with pytest.raises(installer.InstallError, match="move the dashboard's files back"):
        execute(install_plan(host, source, configure_boot=False), host, dry_run=False, out=lambda line: None)
    assert system.in_use() == old
    assert {name: (state / name).read_bytes() for name in before} == before
    assert (state / credentials.AUTH_FILE).stat().st_uid == host.user_ids(installer.USER)[0]
    assert not (web_files.web_dir(state) / credentials.AUTH_FILE).exists()


def test_a_password_set_after_the_upgrade_is_kept_and_the_old_one_is_renamed_not_lost(tmp_path, make_controller):
    state = tmp_path / "state"
    state.mkdir()
    one_process_layout(state)
    old_file = (state / credentials.AUTH_FILE).read_bytes()
    credentials.CredentialStore(web_files.web_dir(state)).set_password("set after the upgrade")
    moved = web_files.move_into_web_dir(state)
    assert web_files.Moved(credentials.AUTH_FILE, credentials.AUTH_FILE + ".before-web-dir") in moved
    assert signs_in(web_files.web_dir(state), make_controller(), "set after the upgrade")
    assert (state / (credentials.AUTH_FILE + ".before-web-dir")).read_bytes() == old_file
    assert web_files.old_layout(state) == [] and web_files.move_into_web_dir(state) == []


def test_the_web_process_moves_its_own_files_at_start_and_says_what_to_do_when_it_cannot(tmp_path, monkeypatch,
                                                                                       make_controller):
    state = tmp_path / "state"
    state.mkdir()
    one_process_layout(state)

    def read_only(*_args, **_kwargs):
        raise OSError(30, "Read-only file system")

    with monkeypatch.context() as m:  # under its systemd unit the state dir is read-only to it
        m.setattr(web_files.os, "rename", read_only)
        problem = supervisor._move_old_web_files(str(state))
    assert problem is not None and "run `sudo stonewarmer install`" in problem and "web-auth.json" in problem
    assert "Read-only file system" in problem and credentials.CredentialStore(state).check_password(OLD_PASSWORD)

    assert supervisor._move_old_web_files(str(state)) is None  # as the files' own user (`stonewarmer run`)
    assert web_files.old_layout(state) == []
    assert signs_in(web_state_dir(state), make_controller(), OLD_PASSWORD)


def test_moving_never_changes_a_file_a_link_points_to_even_one_swapped_in_after_the_check(tmp_path, monkeypatch):
    state, outside = tmp_path / "state", tmp_path / "outside"
    state.mkdir()
    outside.write_text("not the web's")
    outside.chmod(0o644)
    before = outside.stat()
    (state / history.HISTORY_FILE).symlink_to(outside)
    monkeypatch.setattr(Path, "is_symlink", lambda self: False)  # the link appeared after any check
    web_files.move_into_web_dir(state, owner=(before.st_uid, before.st_gid + 1))
    after = outside.stat()
    assert (after.st_mode & 0o777, after.st_gid) == (0o644, before.st_gid)
    assert os.path.islink(web_files.web_dir(state) / history.HISTORY_FILE)  # moved as the link it is
