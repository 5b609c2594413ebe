#!/usr/bin/env bash
# tests/e2e/e2e.sh - ApcSched end to end, as an operator would run it, under Wine:
#
#   e2e.sh SCENARIO BUILD_DIR SOURCE_DIR TEMPLATE APCSVC_EXE APCCTL_EXE
#
#   sc       sc create (quoted Z:\ path) -> sc start -> apcctl status/run --wait (a command and
#            a builtin job) -> a scheduled "@every 2s" job fires by itself -> the rows in the
#            database (Linux sqlite3) -> apcctl reload after an edit -> sc stop -> STOPPED and
#            a complete history -> sc delete
#   install  the same registration with `apcsvc install` / `apcsvc uninstall`
#   cmd      installer/install.cmd and uninstall.cmd from an unpacked package (the CPack ZIP
#            when the build has CPack, else the same layout by hand): fresh install, upgrade in
#            place keeping the config, uninstall keeping the data, /purge
#   kill     the service killed hard (taskkill /f) while a 10 s builtin sleep runs, started
#            again with sc start: that run is "interrupted", nothing else is lost
#
# Each scenario has a PRIVATE Wine prefix (a copy of TEMPLATE) and wineserver, stopped by a
# trap on every exit. Each step prints one line "ok N ..."; a failing step prints what it saw
# and the script exits 1. CTest registers one test per scenario (label e2e).
set -uo pipefail

scenario=${1:?scenario}
build=${2:?build dir}
src=${3:?source dir}
template=${4:?wine template}
apcsvc=${5:?apcsvc.exe}
apcctl=${6:?apcctl.exe}

# shellcheck source=tests/e2e/lib.sh
. "$src/tests/e2e/lib.sh"

command -v sqlite3 >/dev/null || {
  echo "FAIL: the Linux sqlite3 shell is missing (tools/dev deps installs Debian's sqlite3)"
  exit 1
}

work="$build/e2e/$scenario"
rm -rf "$work"
mkdir -p "$work/data"
trap 'apc_wine_down; rm -rf "$work/prefix"' EXIT

n=0
ok() {
  n=$((n + 1))
  printf 'ok %2d  %s\n' "$n" "$1"
}
fail() {
  n=$((n + 1))
  printf 'FAIL %2d  %s\n' "$n" "$1"
  shift
  local line
  for line in "$@"; do
    printf '         %s\n' "${line//$'\n'/$'\n'         }"
  done
  [[ -f "$work/data/logs/apcsvc.log" ]] && {
    echo "         --- service log (last 15 lines) ---"
    tail -n 15 "$work/data/logs/apcsvc.log" | sed 's/^/         /'
  }
  exit 1
}
# expect DESC ACTUAL EXPECTED: exact comparison.
expect() {
  if [[ "$2" == "$3" ]]; then ok "$1"; else fail "$1" "expected: $3" "saw:      $2"; fi
}
# expect_re DESC ACTUAL REGEX
expect_re() {
  if [[ "$2" =~ $3 ]]; then ok "$1"; else fail "$1" "expected to match: $3" "saw: $2"; fi
}

db="$work/data/history.db"
q() { sqlite3 -readonly -separator '|' "$db" "$1" 2>&1; }

svc=apce2e
ctl() { w "$apcctl" --service "$svc" "$@"; }
ctlo() { w -o "$apcctl" --service "$svc" "$@"; } # stdout only

write_config() { # $1 = extra job JSON (with a leading comma) or ""
  cat >"$work/data/e2e.json" <<EOF
{
  "service": {"name": "$svc", "workers": 2, "shutdown_grace": "5s"},
  "jobs": [
    {"name": "hello", "command": ["cmd.exe", "/c", "echo", "hello"]},
    {"name": "nap", "builtin": "sleep", "args": ["1s"]},
    {"name": "tick", "builtin": "noop", "schedule": "@every 2s"},
    {"name": "long", "builtin": "sleep", "args": ["10s"]}$1
  ]
}
EOF
}

image_path() { # the ImagePath the SCM stored for service $1
  w reg query "HKLM\\System\\CurrentControlSet\\Services\\$1" /v ImagePath |
    sed -n 's/^ *ImagePath *REG_[A-Z_]* *//p'
}

start_and_wait_running() { # $1 = service name
  local out
  out=$(w sc start "$1") || fail "sc start $1" "$out"
  apc_wait_state "$1" RUNNING 30 || fail "sc start $1: RUNNING within 30 s" \
    "state: $(apc_state "$1")" "$out"
  ok "sc start $1 -> RUNNING"
}

stop_and_wait_stopped() { # $1 = service name
  local out
  out=$(w sc stop "$1") || fail "sc stop $1" "$out"
  apc_wait_state "$1" STOPPED 30 || fail "sc stop $1: STOPPED within 30 s" "state: $(apc_state "$1")"
  ok "sc stop $1 -> STOPPED"
}

status_pid() { # prints the pid from `apcctl status`, or fails the step
  local out
  out=$(ctl status) || fail "apcctl status" "exit $?" "$out"
  sed -n "s/^service  $svc: running, pid \([0-9]*\),.*/\1/p" <<<"$out"
}

apc_wine_up "$work/prefix" "$template" "$src" || fail "private Wine prefix" "wine-prefix.sh setup failed"
ok "private Wine prefix $work/prefix with its own wineserver"

exe_win=$(winpath "$apcsvc")
cfg_win=$(winpath "$work/data/e2e.json")
want_image="\"$exe_win\" --config \"$cfg_win\""

scenario_sc() {
  local out rc pid
  write_config ""
  out=$(w sc create "$svc" binPath= "$want_image" DisplayName= "ApcSched e2e") ||
    fail "sc create" "$out"
  expect "sc create stores the QUOTED image path" "$(image_path "$svc")" "$want_image"
  start_and_wait_running "$svc"

  out=$(ctl status) || fail "apcctl status" "exit $?" "$out"
  expect_re "apcctl status shows the service running" "$out" "^service  $svc: running, pid [0-9]+, version [0-9.]+"

  out=$(ctlo run hello --wait)
  rc=$?
  expect "apcctl run hello --wait: exit 0 and the command's output" "$rc|$(tail -n 1 <<<"$out")" "0|hello"
  out=$(ctl run nap --wait)
  rc=$?
  expect "apcctl run nap --wait (builtin sleep 1s): exit 0" "$rc" "0"

  local deadline=$((SECONDS + 15)) ticks=0
  while ((SECONDS < deadline)); do
    ticks=$(q "SELECT count(*) FROM runs WHERE job='tick' AND status='succeeded'")
    [[ "$ticks" =~ ^[0-9]+$ ]] && ((ticks >= 2)) && break
    sleep 0.5
  done
  expect_re "the @every 2s job fired by itself (succeeded runs: $ticks)" "$ticks" '^([2-9]|[1-9][0-9]+)$'

  expect_re "sqlite3: the command run is manual, succeeded, exit 0, by an account, times in order" \
    "$(q "SELECT \"trigger\",status,exit_code,submitted_by,started_at>=queued_at,finished_at>=started_at,finished_at-queued_at<60000 FROM runs WHERE job='hello'")" \
    '^manual\|succeeded\|0\|[^|\\]+\\[^|\\]+\|1\|1\|1$'
  expect_re "sqlite3: the builtin run is manual, succeeded, no exit code, took >= 1 s" \
    "$(q "SELECT \"trigger\",status,coalesce(exit_code,'null'),submitted_by IS NOT NULL,finished_at-started_at>=1000 FROM runs WHERE job='nap'")" \
    '^manual\|succeeded\|null\|1\|1$'
  expect "sqlite3: the scheduled runs are trigger schedule, no submitter, all succeeded" \
    "$(q "SELECT DISTINCT \"trigger\",coalesce(submitted_by,'null'),status FROM runs WHERE job='tick' AND status<>'running' AND status<>'queued'")" \
    "schedule|null|succeeded"

  write_config ', {"name": "added", "builtin": "noop"}'
  out=$(ctl reload)
  rc=$?
  expect "apcctl reload after adding a job" "$rc|$out" "0|reloaded: 5 job(s), 1 added, 0 removed"
  out=$(ctl list)
  expect_re "apcctl list shows the new job" "$out" $'\nadded +- '

  local before
  before=$(q "SELECT count(*) FROM runs")
  stop_and_wait_stopped "$svc"
  out=$(ctl status)
  rc=$?
  expect "apcctl status after the stop: not running (exit 3)" "$rc" "3"
  expect "the history is complete: no run left queued or running" \
    "$(q "SELECT count(*) FROM runs WHERE status IN ('queued','running')")" "0"
  local after
  after=$(q "SELECT count(*) FROM runs")
  if [[ "$after" =~ ^[0-9]+$ && "$before" =~ ^[0-9]+$ ]] && ((after >= before)); then
    ok "the history kept every run ($before before the stop, $after after)"
  else
    fail "the history kept every run" "before the stop: $before" "after: $after"
  fi
  expect "hello and nap are still recorded" \
    "$(q "SELECT group_concat(job||':'||status, ' ') FROM (SELECT job,status FROM runs WHERE job IN ('hello','nap') ORDER BY id)")" \
    "hello:succeeded nap:succeeded"

  out=$(w sc delete "$svc") || fail "sc delete" "$out"
  out=$(w sc query "$svc")
  rc=$?
  if ((rc != 0)); then ok "sc delete: sc query no longer finds $svc"; else fail "sc delete" "$out"; fi
}

scenario_install() {
  local out rc evkey
  write_config ""
  out=$(w "$apcsvc" install --config "$cfg_win" --name "$svc")
  rc=$?
  expect_re "apcsvc install: exit 0, created the service" "$rc|$out" "^0\|apcsvc: created service \"$svc\" \(ApcSched job scheduler \($svc\)\)"
  expect_re "apcsvc install: warns about what Wine refuses (delayed start)" "$out" \
    'apcsvc: warning: delayed automatic start not set: Invalid level \(error 124\)'
  expect "apcsvc install stores the QUOTED image path with --config" "$(image_path "$svc")" "$want_image"
  expect "apcsvc install: automatic start (Start = 0x2)" \
    "$(w reg query "HKLM\\System\\CurrentControlSet\\Services\\$svc" /v Start | sed -n 's/^ *Start *REG_DWORD *//p')" "0x2"
  evkey='HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\ApcSched'
  expect "apcsvc install registers the event source (EventMessageFile = the exe)" \
    "$(w reg query "$evkey" /v EventMessageFile | sed -n 's/^ *EventMessageFile *REG_EXPAND_SZ *//p')" "$exe_win"

  start_and_wait_running "$svc"
  out=$(ctlo run hello --wait)
  rc=$?
  expect "apcctl run hello --wait through the installed service" "$rc|$(tail -n 1 <<<"$out")" "0|hello"

  out=$(w "$apcsvc" install --config "$cfg_win" --name "$svc")
  rc=$?
  expect_re "apcsvc install again: updates in place, exit 0" "$rc|$out" "^0\|apcsvc: service \"$svc\" existed: updated it in place"

  out=$(w -t 150 "$apcsvc" uninstall --name "$svc")
  rc=$?
  expect_re "apcsvc uninstall: stops the running service and deletes it" "$rc|$out" \
    "^0\|apcsvc: stopping service \"$svc\" \(pid [0-9]+\)\.\.\.
apcsvc: deleted service \"$svc\"
apcsvc: removed event source \"ApcSched\""
  expect "after uninstall sc query no longer finds it" "$(apc_state "$svc")" "NONE"
  w reg query "$evkey" >/dev/null
  rc=$?
  if ((rc != 0)); then ok "after uninstall the event source key is gone"; else fail "event source key still there"; fi
  expect "uninstall keeps the history (the run is still there, succeeded)" \
    "$(q "SELECT status FROM runs WHERE job='hello'")" "succeeded"
  out=$(w "$apcsvc" uninstall --name "$svc")
  rc=$?
  expect "apcsvc uninstall of a service that is gone: exit 8" "$rc|$out" \
    "8|apcsvc: service \"$svc\" is not installed"

  printf '{"jobs": [{"name": "x", "builtin": "noop", "schedule": "61 * * * *"}]}\n' >"$work/data/bad.json"
  out=$(w "$apcsvc" install --config "$(winpath "$work/data/bad.json")" --name apcbad)
  rc=$?
  expect_re "apcsvc install with an invalid config: exit 2, the finding, nothing installed" \
    "$rc|$out|$(apc_state apcbad)" \
    '^2\|.*bad\.json:1:[0-9]+: jobs\[0\]\.schedule: .*61.*
apcsvc: the configuration is invalid; nothing was installed\|NONE$'
  local later_win
  later_win=$(winpath "$work/data/later.json")
  out=$(w "$apcsvc" install --config "$later_win" --name apclater)
  rc=$?
  expect "apcsvc install with a config not written yet: a warning, installed" \
    "$rc|$(head -n 2 <<<"$out")" \
    "0|apcsvc: warning: $later_win does not exist yet; write it before starting the service
apcsvc: created service \"apclater\" (ApcSched job scheduler (apclater)): \"$exe_win\" --config \"$later_win\""
  out=$(w "$apcsvc" uninstall --name apclater)
  rc=$?
  expect "apcsvc uninstall of a stopped service: exit 0" "$rc" "0"
}

scenario_cmd() {
  local out rc pkg="$work/pkg" pf pd pid1 pid2 pkgwin
  mkdir -p "$pkg"
  if [[ -f "$build/CPackConfig.cmake" ]]; then
    out=$(cpack --config "$build/CPackConfig.cmake" -B "$work/cpack" 2>&1) || fail "cpack" "$out"
    out=$(cd "$pkg" && unzip -q "$work"/cpack/ApcSched-*-win64.zip 2>&1) || fail "unzip" "$out"
    ok "unpacked the CPack ZIP: $(cd "$pkg" && printf '%s ' *)"
  else
    cp "$apcsvc" "$apcctl" "$src/config/apcsvc.json" "$src/config/apcsvc.schema.json" \
      "$src/installer/install.cmd" "$src/installer/uninstall.cmd" "$pkg/"
    ok "package laid out by hand (this build has no CPack: include(ApcPackage) is missing)"
  fi
  pkgwin=$(winpath "$pkg")
  pf="$WINEPREFIX/drive_c/Program Files/ApcSched"
  pd="$WINEPREFIX/drive_c/ProgramData/ApcSched"
  svc=apcsvc
  db="$pd/history.db"

  out=$(w -t 180 cmd /c "$pkgwin\\install.cmd")
  rc=$?
  expect_re "install.cmd (fresh): exit 0, service running" "$rc|$out" \
    '^0\|install.cmd: installing ApcSched from .*install.cmd: service apcsvc is running'
  if [[ -f "$pf/apcsvc.exe" && -f "$pf/apcctl.exe" && -f "$pd/apcsvc.json" ]]; then
    ok "install.cmd copied the binaries to Program Files and the config to ProgramData"
  else
    fail "install.cmd copies" "$(ls -l "$pf" "$pd" 2>&1)"
  fi
  expect "install.cmd: the QUOTED image path" "$(image_path apcsvc)" \
    '"C:\Program Files\ApcSched\apcsvc.exe" --config "C:\ProgramData\ApcSched\apcsvc.json"'
  out=$(w "$pf/apcctl.exe" run nap --wait)
  rc=$?
  expect "apcctl run nap --wait against the installed service" "$rc" "0"
  pid1=$(w "$pf/apcctl.exe" status | sed -n 's/^service  apcsvc: running, pid \([0-9]*\),.*/\1/p')

  # An operator's edit must survive the upgrade.
  sed -i 's/"@every 1m"/"@every 30s"/' "$pd/apcsvc.json"
  out=$(w -t 180 cmd /c "$pkgwin\\install.cmd")
  rc=$?
  expect_re "install.cmd again: upgrades in place (stop, copy, start), exit 0" "$rc|$out" \
    '^0\|install.cmd: service apcsvc exists: upgrading it in place
install.cmd: stopping service apcsvc
.*install.cmd: keeping the existing configuration C:\\ProgramData\\ApcSched\\apcsvc.json
.*install.cmd: service apcsvc is running'
  pid2=$(w "$pf/apcctl.exe" status | sed -n 's/^service  apcsvc: running, pid \([0-9]*\),.*/\1/p')
  if [[ -n "$pid1" && -n "$pid2" && "$pid1" != "$pid2" ]]; then
    ok "the upgraded service is a new process (pid $pid1 -> $pid2)"
  else
    fail "new process after upgrade" "pids: '$pid1' '$pid2'"
  fi
  expect "the upgrade kept the edited config" "$(grep -c '"@every 30s"' "$pd/apcsvc.json")" "1"
  expect "the upgrade kept the history" "$(q "SELECT status FROM runs WHERE job='nap'")" "succeeded"

  out=$(w -t 180 cmd /c "$pkgwin\\uninstall.cmd")
  rc=$?
  expect_re "uninstall.cmd: exit 0, stopped, deleted, data kept" "$rc|$out" \
    '^0\|uninstall.cmd: stopping service apcsvc
uninstall.cmd: deleted service apcsvc
uninstall.cmd: removed event source ApcSched
uninstall.cmd: removed C:\\Program Files\\ApcSched
uninstall.cmd: kept C:\\ProgramData\\ApcSched'
  expect "after uninstall.cmd: no service, no binaries; config and history kept" \
    "$(apc_state apcsvc) $([[ -e "$pf" ]] && echo bin || echo nobin) $([[ -f "$pd/apcsvc.json" && -f "$db" ]] && echo data)" \
    "NONE nobin data"

  out=$(w -t 180 cmd /c "$pkgwin\\install.cmd")
  rc=$?
  expect_re "install.cmd after uninstall: keeps the old config, running" "$rc|$out" \
    '^0\|.*keeping the existing configuration.*service apcsvc is running'
  out=$(w -t 180 cmd /c "$pkgwin\\uninstall.cmd" /purge)
  rc=$?
  expect_re "uninstall.cmd /purge: exit 0, data deleted" "$rc|$out" \
    '^0\|.*uninstall.cmd: purged C:\\ProgramData\\ApcSched'
  expect "after /purge nothing is left" \
    "$(apc_state apcsvc) $([[ -e "$pf" ]] && echo bin) $([[ -e "$pd" ]] && echo data)" "NONE  "
  out=$(w cmd /c "$pkgwin\\uninstall.cmd" /bogus)
  rc=$?
  expect "uninstall.cmd /bogus: usage, exit 2" "$rc|$out" "2|usage: uninstall.cmd [/purge] "
}

scenario_kill() {
  local out rc pid pid2 id before
  # No scheduled job here: every run is one this scenario started, so "nothing else was lost"
  # compares a fixed set.
  write_config ""
  sed -i '/"tick"/d' "$work/data/e2e.json"
  out=$(w sc create "$svc" binPath= "$want_image") || fail "sc create" "$out"
  start_and_wait_running "$svc"
  out=$(ctlo run hello --wait)
  rc=$?
  expect "a first run completes (hello)" "$rc" "0"
  id=$(ctlo run long)
  id=$(head -n 1 <<<"$id")
  [[ "$id" =~ ^[0-9]+$ ]] || fail "apcctl run long" "$id"
  local deadline=$((SECONDS + 10)) st=""
  while ((SECONDS < deadline)); do
    st=$(q "SELECT status FROM runs WHERE id=$id")
    [[ "$st" == running ]] && break
    sleep 0.2
  done
  expect "run $id (builtin sleep 10s) is running" "$st" "running"
  before=$(q "SELECT group_concat(id||':'||status, ' ') FROM (SELECT id,status FROM runs WHERE id<>$id AND status NOT IN ('queued','running') ORDER BY id)")

  pid=$(status_pid)
  [[ -n "$pid" ]] || fail "pid from apcctl status"
  out=$(w taskkill /f /pid "$pid")
  rc=$?
  expect "taskkill /f /pid $pid" "$rc" "0"
  deadline=$((SECONDS + 15))
  rc=0
  while ((SECONDS < deadline)); do
    ctl status >/dev/null
    rc=$?
    ((rc == 3)) && break
    sleep 0.2
  done
  expect "the killed service is gone: apcctl status says not running (exit 3)" "$rc" "3"
  # Wine's SCM keeps reporting the dead service as RUNNING (DESIGN.md §5); Windows would
  # report STOPPED and restart it by its failure actions. Print what it says, assert nothing.
  echo "         (Wine's SCM now reports $svc as $(apc_state "$svc"); Windows: STOPPED, then restarted)"

  start_and_wait_running "$svc"
  deadline=$((SECONDS + 15))
  pid2=""
  while ((SECONDS < deadline)); do
    pid2=$(ctl status | sed -n "s/^service  $svc: running, pid \([0-9]*\),.*/\1/p")
    [[ -n "$pid2" ]] && break
    sleep 0.2
  done
  if [[ -n "$pid2" && "$pid2" != "$pid" ]]; then ok "a new instance runs (pid $pid -> $pid2)"; else
    fail "new instance" "pid before $pid, after '$pid2'"
  fi
  expect "run $id is interrupted, with the reason" \
    "$(q "SELECT status||'|'||coalesce(error,'')||'|'||(finished_at IS NOT NULL) FROM runs WHERE id=$id")" \
    "interrupted|service stopped while the run was running|1"
  expect "nothing else was lost: every earlier finished run is unchanged" \
    "$(q "SELECT group_concat(id||':'||status, ' ') FROM (SELECT id,status FROM runs WHERE id<>$id AND id<=$id AND status NOT IN ('queued','running') ORDER BY id)")" \
    "$before"
  expect "no run is left queued or running from before the kill" \
    "$(q "SELECT count(*) FROM runs WHERE id<=$id AND status IN ('queued','running')")" "0"
  stop_and_wait_stopped "$svc"
  out=$(w sc delete "$svc") || fail "sc delete" "$out"
  ok "sc delete $svc"
}

case "$scenario" in
sc) scenario_sc ;;
install) scenario_install ;;
cmd) scenario_cmd ;;
kill) scenario_kill ;;
*)
  echo "usage: e2e.sh sc|install|cmd|kill BUILD_DIR SOURCE_DIR TEMPLATE APCSVC_EXE APCCTL_EXE" >&2
  exit 2
  ;;
esac
echo "e2e $scenario: all $n steps passed"
