#!/usr/bin/env bash
# Runs stm32-bench on a private D-Bus session bus: every section starts its own
# stm32-sim and stm32d and stops them again. Full sizes by default; --smoke
# runs each section with tiny sizes (< 30 s), --json prints JSON lines.
# BUILDDIR (default: build) is configured and built if needed.
set -euo pipefail
cd "$(dirname "$0")/.."

builddir=${BUILDDIR:-build}
limit=900
for arg in "$@"; do
  [[ $arg != --smoke ]] || limit=60
done

if [[ ! -d $builddir ]]; then
  meson setup "$builddir" >/dev/null
fi
ninja -C "$builddir" bench/stm32-bench daemon/stm32d tests/sim/stm32-sim >/dev/null

# dbus-run-session ends the bus and everything on it when the bench exits;
# timeout bounds the whole run should anything hang. dbus-daemon cannot raise
# its fd limit in some sandboxes and says so; harmless here.
exec timeout --kill-after=10 "$limit" \
  dbus-run-session -- "$builddir/bench/stm32-bench" \
  --sim "$builddir/tests/sim/stm32-sim" --daemon "$builddir/daemon/stm32d" "$@" \
  2> >(grep --line-buffered -v 'Failed to set fd limit' >&2)
