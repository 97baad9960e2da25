# Sourced by .ci/systemd-test.sh: the two processes under a real systemd, each surviving the other.
#   kill -9 of the web process: the control unit neither restarts nor changes the relay;
#            the web unit is restarted by Restart= and serves again
#   kill -9 of the control process: the dashboard answers 503 within 5 s, ExecStopPost drives the
#            pin off, the control unit restarts and the dashboard recovers by itself
#   sandbox: the control process has no network interface but loopback; the web unit as systemd
#            runs it allows no GPIO device
web_prop() { inc systemctl show -p "$1" --value "$WEB_UNIT"; }
healthz() { python3 -c "import urllib.request as u, urllib.error as e, sys
try: sys.exit(u.urlopen('http://127.0.0.1:$PORT/healthz', timeout=2).status != $1)
except e.HTTPError as x: sys.exit(x.code != $1)
except OSError: sys.exit(1)"; }

say "two units: each survives the other"
fresh
drop_in 50-simulated "$(simulated "--speed 10")"
inc timeout 90 systemctl start "$UNIT" || true
inc timeout 90 systemctl start "$WEB_UNIT" || true
wait_for 30 pin_is 1 || true
wait_for 30 healthz 200 || true
check "two units: both active, the heater on, the dashboard healthy" \
  test "$(prop ActiveState)/$(web_prop ActiveState)/$(pin)" = active/active/1

inc systemctl kill -s KILL "$WEB_UNIT" || true
sleep 2
check "kill -9 web: the control unit did not restart" test "$(prop NRestarts)/$(prop ActiveState)" = 0/active
check "kill -9 web: the relay is as it was" test "$(pin)" = 1
check "kill -9 web: Restart= brings the dashboard back" wait_for 30 healthz 200

C0=$(cursor)
inc systemctl kill -s KILL "$UNIT" || true
KILLED=$(date +%s.%N)
wait_for 10 healthz 503 || true
SEEN=$(date +%s.%N)
check "kill -9 control: the dashboard says so within 5 s" \
  python3 -c "import sys; sys.exit(not $SEEN - $KILLED < 5)"
wait_for 10 pin_is 0 || true
check "kill -9 control: ExecStopPost drove the pin off" test "$(pin)" = 0
check "kill -9 control: the web unit did not restart" test "$(web_prop NRestarts)" -le 1
check "kill -9 control: restarted, and the dashboard recovers by itself" wait_for 40 healthz 200

# /proc/PID/net/dev lists the interfaces of that process's own network namespace.
check "sandbox: the control process sees no network interface but loopback" \
  test "$(inc sh -c 'tail -n +3 /proc/$(systemctl show -p MainPID --value stonewarmer.service)/net/dev' \
          | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')" = "lo "
# PrivateDevices= itself allows the pseudo devices (/dev/null ...): no GPIO among them.
no_gpio_device() { [ "$(web_prop DevicePolicy)/$(web_prop PrivateDevices)" = closed/yes ] \
                   && ! web_prop DeviceAllow | grep -q gpio; }
check "sandbox: the live web unit allows no GPIO device" no_gpio_device
fresh
