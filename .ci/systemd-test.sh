#!/usr/bin/env bash
# config/stonewarmer.service (the control process) and config/stonewarmer-web.service (the web
# process) under a real systemd: Debian 12's systemd as PID 1 of a
# systemd-nspawn container, the warmer installed into it by `stonewarmer install`, simulated
# (no GPIO, no 1-Wire here). Checks, each against what systemd itself reports:
#   install  the real installer, inside the container; the unit as shipped fails off a Pi in one
#            line (relay-off: no lgpio), never a traceback
#   start    `systemctl start` returns on READY=1; STATUS= shown; WATCHDOG=1 pings arrive
#   stop     SIGTERM handled, ExecStopPost drives the (simulated) relay pin off
#   hang     a control loop that really blocks (--inject stall@S): watchdog SIGABRT, the stacks
#            in the journal, ExecStopPost drives the pin off (it was on), Restart= starts afresh
#   autotune `sudo stonewarmer autotune` runs as a job of the service; the files it writes belong
#            to the service user
#   limit    a warmer that keeps dying (a broken config) is left stopped, pin off, after 5 starts
#   no probe the container boots with the service enabled and no probe at all: READY still
#            arrives, STATUS= names the probe's state, the boot completes
#   security `systemd-analyze security` on the live unit: the figure in docs/install.md
#   upgrade  (.ci/systemd-checks.d/50-upgrade-rollback.sh) a new version that does not start is
#            rolled back: the version that ran before runs and answers again
# Then every .ci/systemd-checks.d/*.sh, sourced with the helpers below (inc, check, prop, pin,
# cursor, journal_since, wait_for, drop_in, fresh, simulated, boot, shutdown): the hook for
# further checks, e.g. an upgrade with a rollback.
#
#   sudo .ci/systemd-test.sh           (CI runs it from .ci/run; about 2-3 minutes)
#
# Needs root and a kernel that lets systemd-nspawn boot a container; where it cannot run it says
# why and exits 0 (skipped). The Debian root is built once with mmdebstrap and cached, with pip's
# downloads, in $STONEWARMER_CACHE (default /var/cache/stonewarmer/systemd-test).
# The container shares this machine's network: the dashboard listens on a free local port.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
CHECKS_D=$SRC/.ci/systemd-checks.d
CACHE=${STONEWARMER_CACHE:-/var/cache/stonewarmer/systemd-test}
PACKAGES=systemd,systemd-sysv,dbus,python3,python3-venv,ca-certificates,procps
ROOT_TAR=$CACHE/bookworm-$(echo "$PACKAGES" | md5sum | cut -c1-8).tar
UNIT=stonewarmer.service          # the control process: most checks are about it
WEB_UNIT=stonewarmer-web.service  # the web process: .ci/systemd-checks.d/two-units.sh
BIN=/opt/stonewarmer/venv/bin/stonewarmer
CONF=/etc/stonewarmer/stonewarmer.toml
PIN=/var/lib/stonewarmer/sim-gpio/GPIO17
T_START=$(date +%s)

say() { printf '\n=== [%3ss] %s\n' "$(( $(date +%s) - T_START ))" "$*"; }
skip() { echo "systemd-test: SKIPPED: $*" >&2; exit 0; }
PASS=0; FAIL=0; FAILED=()
check() { # check NAME CMD...: passes if CMD succeeds
  local name=$1; shift
  if "$@"; then PASS=$((PASS + 1)); echo "PASS: $name"
  else FAIL=$((FAIL + 1)); FAILED+=("$name"); echo "FAIL: $name"; fi
}

[ "$(id -u)" = 0 ] || skip "needs root: systemd-nspawn boots a container (sudo .ci/systemd-test.sh)"
command -v apt-get >/dev/null || command -v systemd-nspawn >/dev/null \
  || skip "no systemd-nspawn and no apt-get to install it (Debian package systemd-container)"

say "host packages: systemd-container, mmdebstrap, bpftool (where missing)"
missing=""
command -v systemd-nspawn >/dev/null || missing="$missing systemd-container"
command -v mmdebstrap >/dev/null || missing="$missing mmdebstrap"
command -v bpftool >/dev/null || [ -x /usr/sbin/bpftool ] || missing="$missing bpftool"
if [ -n "$missing" ]; then
  apt-get update -qq >/dev/null
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
export PATH=$PATH:/usr/sbin:/sbin

mkdir -p "$CACHE/pip"
exec 9>"$CACHE/lock"  # one run at a time on a machine: the container shares the network and cgroups
flock -w 900 9 || skip "another systemd test held $CACHE/lock for 15 minutes"

say "a minimal Debian 12 root with systemd (cached: $ROOT_TAR)"
if [ ! -s "$ROOT_TAR" ]; then
  # mmdebstrap writes a tarball for a name ending in .tar; renamed once whole.
  mmdebstrap --quiet --variant=minbase --include="$PACKAGES" bookworm "$CACHE/building.tar"
  mv "$CACHE/building.tar" "$ROOT_TAR"
fi
W=$(mktemp -d /var/tmp/stonewarmer-systemd.XXXXXX)
R=$W/root
mkdir "$R"
tar -C "$R" -xf "$ROOT_TAR"
# The checkout as git sees it (no .venv, no build output), where the installer finds it.
mkdir -p "$R/opt/stonewarmer-src"
if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$SRC" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - --no-recursion) \
    | tar -C "$R/opt/stonewarmer-src" -xf -
else
  tar -C "$SRC" --exclude=.venv --exclude=.git --exclude=__pycache__ -cf - . | tar -C "$R/opt/stonewarmer-src" -xf -
fi
# Where HTTPS goes through a proxy with its own certificate, pip in the container needs the host's CAs.
cp /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/host-ca-bundle.crt"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

CGROUP_NAME=stonewarmer-systemd-test
NSPAWN_PID=""
boot() {
  # --register=no --keep-unit: no host systemd to register with. --system-call-filter=bpf and
  # SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1: without them the container's systemd silently drops
  # IPAddressDeny/IPAddressAllow and DevicePolicy/DeviceAllow (docs/field-notes.md, "systemd in a container").
  local args=(-D "$R" -b --register=no --keep-unit --console=read-only --system-call-filter=bpf
              --bind="$CACHE/pip:/root/.cache/pip")
  if [ -d /run/systemd/system ]; then  # a host with systemd: a delegated scope of its own
    systemd-run --quiet --unit="$CGROUP_NAME-$$" --property=Delegate=yes \
      --setenv=SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn "${args[@]}"
    sleep 1
    NSPAWN_PID=$(systemctl show -p MainPID --value "$CGROUP_NAME-$$.service")
  else  # a host without systemd (a CI container): a cgroup of its own in every writable hierarchy
    for h in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do
      [ -f "$h/cgroup.procs" ] && mkdir -p "$h/$CGROUP_NAME" 2>/dev/null || true
    done
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 setsid sh -c '
      for h in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do
        [ -w "$h/$0/cgroup.procs" ] && echo $$ > "$h/$0/cgroup.procs"
      done
      exec systemd-nspawn "$@"' "$CGROUP_NAME" "${args[@]}" </dev/null >>"$W/nspawn.log" 2>&1 &
    NSPAWN_PID=$!
  fi
  CPID=""
  for _ in $(seq 150); do
    CPID=$(ps -o pid= --ppid "$NSPAWN_PID" 2>/dev/null | tr -d ' ' | head -1)
    [ -n "$CPID" ] && grep -q "^NSpid:.*[[:space:]]1$" "/proc/$CPID/status" 2>/dev/null && break
    CPID=""; sleep 0.2
  done
  [ -n "$CPID" ] || { cat "$W/nspawn.log" >&2; return 1; }
}
shutdown() {
  [ -n "$NSPAWN_PID" ] || return 0
  inc systemctl poweroff >/dev/null 2>&1 || kill -TERM "$NSPAWN_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$NSPAWN_PID" 2>/dev/null || true
  wait "$NSPAWN_PID" 2>/dev/null || true
  NSPAWN_PID=""
}
cleanup() {
  shutdown
  for h in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do
    [ -d "$h/$CGROUP_NAME" ] && find "$h/$CGROUP_NAME" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  [ -n "${KEEP:-}" ] && echo "kept $W" || rm -rf "$W"
}
trap cleanup EXIT

# Inside the container: nsenter into its PID 1 (no machined needed), a clean environment.
inc() { nsenter -t "$CPID" -m -u -i -n -p -C -r -w env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
          LANG=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"; }
booted() { # booted SECONDS: the boot finished (no start job left waiting) within SECONDS
  local s="" until=$(( $(date +%s) + $1 ))
  # "offline" or no answer: PID 1 is not systemd yet (exec still under way) or not on its bus yet.
  while { [ -z "$s" ] || [ "$s" = offline ]; } && [ "$(date +%s)" -lt "$until" ]; do
    s=$(inc timeout "$(( until - $(date +%s) + 1 ))" systemctl is-system-running --wait 2>/dev/null || true)
    case "$s" in ""|offline) sleep 0.5;; esac
  done
  echo "system state: ${s:-no answer}"; [ "$s" = running ] || [ "$s" = degraded ]
}
cursor() { inc journalctl -n0 --show-cursor -q --no-pager | sed -n 's/^-- cursor: //p'; }
journal_since() { inc journalctl --no-pager -o short-precise --after-cursor="$1" -u "$UNIT"; }
prop() { inc systemctl show -p "$1" --value "$UNIT"; }
pin() { inc cat "$PIN" 2>/dev/null || echo none; }
wait_for() { # wait_for SECONDS CMD...: poll CMD until it succeeds
  local until=$(( $(date +%s) + $1 )); shift
  until "$@"; do [ "$(date +%s)" -lt "$until" ] || return 1; sleep 0.5; done
}
drop_in() { # drop_in NAME TEXT [UNIT]: a drop-in for the unit (test settings only; the unit itself is installed)
  local unit=${3:-$UNIT}
  mkdir -p "$R/etc/systemd/system/$unit.d"
  printf '%s\n' "$2" > "$R/etc/systemd/system/$unit.d/$1.conf"
  inc systemctl daemon-reload
}
no_drop_in() { rm -f "$R/etc/systemd/system/$UNIT.d/$1.conf"; inc systemctl daemon-reload; }
fresh() { inc systemctl stop "$WEB_UNIT" "$UNIT" 2>/dev/null || true
          inc systemctl reset-failed "$WEB_UNIT" "$UNIT" 2>/dev/null || true
          inc rm -rf /var/lib/stonewarmer
          # As `stonewarmer install` leaves them: the web process may write only its own directory.
          inc install -d -o stonewarmer -g stonewarmer -m 0750 /var/lib/stonewarmer
          inc install -d -o stonewarmer-web -g stonewarmer-web -m 0700 /var/lib/stonewarmer/web; }
journal_has() { inc journalctl --no-pager -u "$UNIT" | grep -q "$1"; }
journal_since_has() { journal_since "$1" | grep -q "$2"; }  # journal_since_has CURSOR TEXT
# The handler says so in the journal; journald reads the output stream on its own time and has once not shown
# that last line within 10 s, so the main process having exited by itself with status 0 (not killed by the
# signal: ExecMainCode 1 is CLD_EXITED) is proof as well.
sigterm_handled() {
  grep -q "signal SIGTERM: stopping" "$W/j-stop.log" || [ "$(prop ExecMainCode)/$(prop ExecMainStatus)" = 1/0 ]
}
pin_is() { [ "$(pin)" = "$1" ]; }
state_is() { [ "$(prop ActiveState)" = "$1" ]; }
restarted() { [ "$(prop NRestarts)" -ge 1 ] && state_is active; }
status_shows() { inc systemctl status "$UNIT" --no-pager | grep -q "^ *Status: \"$1"; }
status_text_has() { prop StatusText | grep -q "$1"; }
ip_firewall() { bpftool cgroup tree 2>/dev/null | grep -A6 "$UNIT" | grep -q sd_fw_egress; }
no_traceback() { ! grep -q Traceback "$1"; }
stop_post_after_abort() { grep -A40 'status=6/ABRT' "$W/j-watchdog.log" | grep -q 'simulated relay GPIO17 off'; }
simulated() { # the [Service] lines that run the control unit on the simulated bath and relay: $1 = run's extra options
  printf '[Service]\nExecStartPre=\nExecStartPre=%s relay-off --simulate --config %s\n' "$BIN" "$CONF"
  printf 'ExecStart=\nExecStart=%s run --role control --simulate %s--config %s\n' "$BIN" "${1:+$1 }" "$CONF"
  printf 'ExecStopPost=\nExecStopPost=%s relay-off --simulate --config %s\n' "$BIN" "$CONF"
}
web_on_port() { # the [Service] lines that serve the web unit's dashboard on the free port
  printf '[Service]\nExecStart=\nExecStart=%s run --role web --port %s --config %s\n' "$BIN" "$PORT" "$CONF"
}

say "boot the container (systemd as PID 1)"
boot || skip "systemd-nspawn cannot boot a container on this machine (see $W/nspawn.log)"
booted 120 || true
echo "container PID 1 is host PID $CPID ($(inc cat /proc/1/comm))"

say "install: \`stonewarmer install\` inside the container"
# The drop-in first, so whatever start (and health check) the installer does runs the simulated warmer.
drop_in 50-simulated "$(simulated "--speed 10")"
drop_in 50-port "$(web_on_port)" "$WEB_UNIT"
inc sh -c "cd /opt/stonewarmer-src && PIP_CERT=/etc/ssl/host-ca-bundle.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
           python3 -m controller install --source /opt/stonewarmer-src" 2>&1 | tee "$W/install.log" \
  && INSTALLED=0 || INSTALLED=$?
check "install: stonewarmer install succeeded" test "$INSTALLED" = 0
check "install: the venv's stonewarmer runs" inc "$BIN" --version
check "install: the unit is enabled at boot" test "$(inc systemctl is-enabled "$UNIT")" = enabled
check "install: the web unit is enabled at boot" test "$(inc systemctl is-enabled "$WEB_UNIT")" = enabled
check "install: the unit passes systemd-analyze verify" inc systemd-analyze verify "$UNIT"
check "install: the web unit passes systemd-analyze verify" inc systemd-analyze verify "$WEB_UNIT"
check "install: the installer started the warmer" wait_for 60 state_is active
check "install: the installer started the dashboard" \
  test "$(inc systemctl show -p ActiveState --value "$WEB_UNIT")" = active
[ "$INSTALLED" = 0 ] || { echo "systemd-test: the install failed; nothing else can be checked" >&2; exit 1; }

say "the unit as shipped, off a Pi: relay-off has no lgpio here"
fresh
no_drop_in 50-simulated
C0=$(cursor)
inc systemctl start "$UNIT" 2>/dev/null || true
wait_for 30 journal_has "relay-off: cannot drive" || true
journal_since "$C0" > "$W/j-shipped.log"
check "shipped unit off a Pi: relay-off says why in one line" \
  grep -q "stonewarmer relay-off: cannot drive the relay pin GPIO17: the Python module lgpio is missing" "$W/j-shipped.log"
check "shipped unit off a Pi: no traceback" no_traceback "$W/j-shipped.log"
fresh

say "start: READY=1, STATUS=, WATCHDOG=1"
drop_in 50-simulated "$(simulated "--speed 10")"
C0=$(cursor)
inc timeout 90 systemctl start "$UNIT" || true
inc timeout 90 systemctl start "$WEB_UNIT" || true
check "start: active (running) once systemctl start returns" test "$(prop ActiveState)/$(prop SubState)" = active/running
check "start: STATUS= shown by systemctl status" status_shows ".*degC"
check "start: the web unit's dashboard answers on 127.0.0.1:$PORT" \
  python3 -c "import urllib.request as u, sys; sys.exit(u.urlopen('http://127.0.0.1:$PORT/healthz', timeout=5).status != 200)"
W1=$(prop WatchdogTimestampMonotonic); sleep 2
check "start: WATCHDOG=1 pings arrive" test "$(prop WatchdogTimestampMonotonic)" -gt "$W1"
check "start: the simulated heater comes on" wait_for 30 pin_is 1

say "stop: SIGTERM, clean exit, ExecStopPost"
C0=$(cursor)
inc systemctl stop "$UNIT" || true
# journald reads the service's output stream on its own time: the last lines may land after stop returns
wait_for 10 journal_since_has "$C0" "signal SIGTERM: stopping" || true
journal_since "$C0" > "$W/j-stop.log"
check "stop: SIGTERM handled" sigterm_handled
check "stop: ExecStopPost drove the pin off" grep -q "simulated relay GPIO17 off" "$W/j-stop.log"
check "stop: pin off, inactive, Result=success" test "$(pin)/$(prop ActiveState)/$(prop Result)" = 0/inactive/success

say "hang: the control loop blocks (--inject stall@120, simulated: 12 s): watchdog, ExecStopPost, restart"
fresh
drop_in 50-simulated "$(simulated "--speed 10 --inject stall@120")"
C0=$(cursor)
inc systemctl start "$UNIT" || true
wait_for 40 journal_has "injected stall" || true
PIN_STALLED=$(pin)
wait_for 60 restarted || true
journal_since "$C0" > "$W/j-watchdog.log"
grep -E "injected stall|Watchdog timeout|SIGABRT|status=6/ABRT|simulated relay|Scheduled restart" "$W/j-watchdog.log" || true
check "hang: the heater was on when the loop stalled" test "$PIN_STALLED" = 1
check "hang: systemd's watchdog fired" grep -q "Watchdog timeout (limit 10s)!" "$W/j-watchdog.log"
check "hang: SIGABRT, the process killed by it" grep -q "code=killed, status=6/ABRT" "$W/j-watchdog.log"
check "hang: faulthandler logged the stuck control thread" grep -q 'in sync' "$W/j-watchdog.log"
check "hang: ExecStopPost drove the pin off after the abort" stop_post_after_abort
check "hang: restarted, active again" test "$(prop ActiveState)" = active
fresh

say "autotune: \`sudo stonewarmer autotune\` runs as a job of the service (simulated: --speed 100)"
drop_in 50-simulated "$(simulated "--speed 100")"
inc systemctl start "$UNIT" || true
inc timeout 120 stonewarmer autotune | tee "$W/autotune.log" || true
check "autotune: done in the service, the gains in use" grep -q "autotune: done: gains" "$W/autotune.log"
# Simulated with the default state dir, the warmer keeps its state under /var/lib/stonewarmer/sim/.
owner_of() { inc find /var/lib/stonewarmer -name "$1" -printf '%u\n' | grep -qx stonewarmer; }
check "autotune: state.json belongs to the service user" owner_of state.json
check "autotune: autotune.json belongs to the service user" owner_of autotune.json
check "autotune: the service never restarted" test "$(prop NRestarts)/$(prop ActiveState)" = 0/active
fresh

say "limit: a warmer that keeps dying (a broken config) stays stopped after StartLimitBurst=5"
inc cp "$CONF" "$CONF.good"
inc sed -i 's/^setpoint_c = .*/setpoint_c = 99.0/' "$CONF"
drop_in 50-simulated "$(simulated "--speed 10")"
C0=$(cursor)
inc systemctl start "$UNIT" || true
wait_for 90 state_is failed || true
journal_since "$C0" > "$W/j-limit.log"
check "limit: 'Start request repeated too quickly'" grep -q "Start request repeated too quickly" "$W/j-limit.log"
check "limit: failed after 5 restarts" test "$(prop ActiveState)/$(prop NRestarts)" = failed/4 -o \
  "$(prop ActiveState)/$(prop NRestarts)" = failed/5
check "limit: the config error is one line in the journal" grep -q "stonewarmer run: .*setpoint_c" "$W/j-limit.log"
check "limit: the pin is off" test "$(pin)" = 0
inc mv "$CONF.good" "$CONF"
fresh

say "no probe: the container boots with the service enabled and no probe at all"
drop_in 50-simulated "$(simulated "--speed 10 --inject unplug@0")"
shutdown
boot || true
check "no probe: the boot completes (multi-user.target reached)" booted 90
check "no probe: the service is up (READY=1 arrived)" test "$(prop ActiveState)/$(prop SubState)" = active/running
check "no probe: STATUS= names the probe's state" status_text_has "probe: "
check "no probe: the heater stayed off" test "$(pin)" = 0
inc systemctl show -p StatusText --value "$UNIT" || true

say "security: systemd-analyze on the live unit"
EXPOSURE=$(inc systemd-analyze security "$UNIT" --no-pager | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p' || true)
echo "live exposure level: ${EXPOSURE:-none}"
check "security: the live unit's exposure level is the one docs/install.md gives" \
  grep -q "exposure level ${EXPOSURE:-none}\*\*" "$SRC/docs/install.md"
check "security: the IP firewall is in force (BPF programs on the unit's cgroup)" ip_firewall
WEB_EXPOSURE=$(inc systemd-analyze security "$WEB_UNIT" --no-pager \
  | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p' || true)
echo "live web exposure level: ${WEB_EXPOSURE:-none}"
check "security: the live web unit's exposure level is the one docs/install.md gives" \
  grep -q "web unit's exposure level ${WEB_EXPOSURE:-none}" "$SRC/docs/install.md"

for extra in "$CHECKS_D"/*.sh; do
  [ -e "$extra" ] || continue
  say "extra checks: ${extra#"$SRC"/}"
  # shellcheck source=/dev/null
  . "$extra"
done

say "done: $PASS passed, $FAIL failed"
for name in "${FAILED[@]}"; do echo "  failed: $name"; done
[ "$FAIL" -eq 0 ]
