# shellcheck shell=bash
# tests/e2e/lib.sh - shared by tests/e2e/e2e.sh and tools/demo (sourced, not run): a private
# Wine prefix with its own persistent wineserver, wine calls that never hang, and Windows
# paths for Linux files.
#
# The recipe is DESIGN.md §5 (cmake/wine-prefix.sh does the setup): every wine call under
# `timeout`, stdin from /dev/null, the system processes (services.exe & co.) started with their
# stdio away from ours, `wineserver -k` at the end (the caller sets a trap). Wine prints CRLF;
# the output of every call here has its CRs removed.

# apc_wine_up PREFIX TEMPLATE SOURCE_DIR: a fresh copy of the ready template prefix, with a
# persistent wineserver and the services started. Exports WINEPREFIX & co.
apc_wine_up() {
  export WINEPREFIX="$1" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
  unset DISPLAY WAYLAND_DISPLAY
  "$3/cmake/wine-prefix.sh" setup "$1" "$2" >/dev/null
}

# apc_wine_down: stops this prefix's wineserver (and with it every process of the prefix).
apc_wine_down() {
  [[ -n "${WINEPREFIX:-}" ]] || return 0
  timeout 30 wineserver -k >/dev/null 2>&1 || true
}

# w [-t SECONDS] [-o] PROGRAM ARGS...: runs a Windows program; prints its stdout and stderr
# (only stdout with -o; stderr then goes to $W_ERR if set, else nowhere) without CRs and
# without Wine's own noise; returns the program's exit code (mod 256), 124 on timeout.
w() {
  local t=60 only_out=0
  while [[ "$1" == -t || "$1" == -o ]]; do
    if [[ "$1" == -t ]]; then
      t=$2
      shift 2
    else
      only_out=1
      shift
    fi
  done
  local out rc
  if ((only_out)); then
    out=$(timeout -k 5 "$t" wine "$@" </dev/null 2>"${W_ERR:-/dev/null}")
  else
    out=$(timeout -k 5 "$t" wine "$@" </dev/null 2>&1)
  fi
  rc=$?
  printf '%s' "$out" | tr -d '\r' |
    grep -vE '^(it looks like wine32 is missing|multiarch needs|execute "dpkg|apt-get install wine32)' || true
  return $rc
}

# winpath LINUX_PATH: the same file as Wine sees it through drive Z: (Z:\work\x).
winpath() {
  local p=${1//\//\\}
  printf 'Z:%s' "$p"
}

# apc_state NAME: the service's state word from `sc query` (RUNNING, STOPPED, ...), or NONE.
apc_state() {
  local out
  out=$(w sc query "$1") || {
    echo NONE
    return 0
  }
  sed -n 's/^ *STATE *: *[0-9]* *\([A-Z_]*\).*/\1/p' <<<"$out"
}

# apc_wait_state NAME STATE SECONDS: polls `sc query` every 0.2 s; 0 when reached.
apc_wait_state() {
  local deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    [[ "$(apc_state "$1")" == "$2" ]] && return 0
    sleep 0.2
  done
  return 1
}
