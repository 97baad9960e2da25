# Sourced by .ci/systemd-test.sh (its helpers: inc, check, prop, wait_for, drop_in, fresh, simulated).
# An upgrade whose new version accepts the config but does not start: `stonewarmer install`
# stops the warmer (heater off), switches, starts, sees no READY, switches back to the version
# that ran and starts both of its processes again, and says so with a non-zero exit status.

say "upgrade: a new version that does not start is rolled back to the one that ran"
fresh
drop_in 50-simulated "$(simulated "--speed 10")"
inc systemctl start "$UNIT" "$WEB_UNIT"  # both processes run before the upgrade
wait_for 60 state_is active
BEFORE=$(inc readlink /opt/stonewarmer/venv)
# The new version: the same checkout with a run command that exits at once (its config check passes).
inc sh -c 'rm -rf /opt/stonewarmer-next && cp -a /opt/stonewarmer-src /opt/stonewarmer-next &&
           printf "\n\ndef serve(*args, **kwargs):  # this version never starts (the upgrade test)\n    raise SystemExit(\"this version does not start\")\n" \
             >> /opt/stonewarmer-next/controller/service/supervisor.py'
CURSOR=$(cursor)
inc sh -c "cd /opt/stonewarmer-next && PIP_CERT=/etc/ssl/host-ca-bundle.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
           python3 -m controller install --source /opt/stonewarmer-next" > "$W/upgrade.log" 2>&1 \
  && UPGRADED=0 || UPGRADED=$?
cat "$W/upgrade.log"
journal_since "$CURSOR" > "$W/j-upgrade.log" || true
check "upgrade: the install says it failed (exit status 2)" test "$UPGRADED" = 2
check "upgrade: the new version was started and did not start" grep -q "this version does not start" "$W/j-upgrade.log"
check "upgrade: the venv in use is the one that ran before" test "$(inc readlink /opt/stonewarmer/venv)" = "$BEFORE"
check "upgrade: the version that ran before runs again" wait_for 60 state_is active
check "upgrade: the dashboard's process runs again" wait_for 60 inc systemctl is-active --quiet "$WEB_UNIT"
check "upgrade: and answers on its dashboard" wait_for 30 inc python3 -c \
  "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/healthz', timeout=2)"
inc rm -rf /opt/stonewarmer-next
