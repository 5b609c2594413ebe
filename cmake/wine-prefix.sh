#!/usr/bin/env bash
# wine-prefix.sh setup|teardown PREFIX [TEMPLATE]
#
# The Wine recipe of DESIGN.md §5, each step there for a reason measured on this machine:
#   - a private prefix per build tree, owned by the user running wine;
#   - no crash debugger (AeDebug), so a crashing program's exit code stays true;
#   - a persistent wineserver (-p), because services live only while one persists;
#   - system processes (services.exe & co.) started with stdio away from ours, or a
#     `$(wine x.exe)` never returns;
#   - every wine call under `timeout`; a clean `wineserver -k` at the end.
# A ready prefix is kept as TEMPLATE and copied (cp -a, ~2 s) instead of `wineboot -i` (~5 s
# plus the registry edit) on later runs.
set -euo pipefail
cmd=${1:?usage: wine-prefix.sh setup|teardown PREFIX [TEMPLATE]}
prefix=${2:?prefix}
template=${3:-}

export WINEPREFIX="$prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
unset DISPLAY WAYLAND_DISPLAY

case "$cmd" in
setup)
  wineserver -k >/dev/null 2>&1 || true
  rm -rf "$prefix"
  if [[ -n "$template" && -f "$template/.apc-ready" ]]; then
    cp -a "$template" "$prefix"
  else
    mkdir -p "$(dirname "$prefix")"
    timeout 180 wineboot -i </dev/null >/dev/null 2>&1
    timeout 60 wine reg add 'HKLM\Software\Microsoft\Windows NT\CurrentVersion\AeDebug' \
      /v Debugger /t REG_SZ /d '' /f </dev/null >/dev/null 2>&1
    timeout 60 wineserver -w
    touch "$prefix/.apc-ready"
    if [[ -n "$template" ]]; then
      # Publish the template atomically: copy aside, then rename into place. Several test
      # runs may race here; the first rename wins and the others keep their copy to themselves.
      [[ -f "$template/.apc-ready" ]] || rm -rf "$template"
      tmp="$template.tmp.$$"
      rm -rf "$tmp"
      cp -a "$prefix" "$tmp"
      mv -T "$tmp" "$template" 2>/dev/null || rm -rf "$tmp"
    fi
  fi
  wineserver -p </dev/null >/dev/null 2>&1
  timeout 120 wine wineboot </dev/null >/dev/null 2>&1
  echo "wine prefix ready: $prefix"
  ;;
teardown)
  wineserver -k >/dev/null 2>&1 || true
  echo "wineserver stopped for $prefix"
  ;;
*)
  echo "usage: wine-prefix.sh setup|teardown PREFIX [TEMPLATE]" >&2
  exit 2
  ;;
esac
