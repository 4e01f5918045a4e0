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
ninja -C "$builddir" bench/stm32-bench bench/stm32-bench-flood-reader daemon/stm32d \
  tests/sim/stm32-sim tests/flood-listener cli/stm32ctl >/dev/null

# In a lab the board is another machine. On loopback a simulator that shares
# a CPU with its client answers through a same-core hand-off one run and a
# cross-core wake-up the next, at the scheduler's whim (16 or 55 us here),
# which swamps every ratio. So the board gets the last CPU to itself and the
# PC side (bench, bus, stm32d) the others: every board round trip crosses
# cores, in the baseline and through stm32d alike, as a network hop would.
# BENCH_SHARED_CPUS=1 lets the scheduler place everything.
# The CPUs this run may use (a container's cpuset need not start at 0).
allowed_cpus() {
  local list part cpu
  list=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)
  for part in ${list//,/ }; do
    for ((cpu = ${part%-*}; cpu <= ${part#*-}; cpu++)); do
      echo "$cpu"
    done
  done
}
pc_side=()
board_cpu=()
mapfile -t cpus < <(allowed_cpus)
if [[ ${#cpus[@]} -ge 2 && ${BENCH_SHARED_CPUS:-0} != 1 ]]; then
  board=${cpus[-1]}
  pc=$(
    IFS=,
    echo "${cpus[*]:0:${#cpus[@]}-1}"
  )
  pc_side=(taskset -c "$pc")
  board_cpu=(--board-cpu "$board")
  echo "bench: board on CPU $board, PC side on CPUs $pc" >&2
fi

# dbus-run-session ends the bus and everything on it when the bench exits;
# timeout bounds the whole run should anything hang. dbus-daemon cannot raise
# its fd limit in some sandboxes and says so; harmless here.
exec timeout --kill-after=10 "$limit" \
  "${pc_side[@]}" dbus-run-session -- "$builddir/bench/stm32-bench" \
  --sim "$builddir/tests/sim/stm32-sim" --daemon "$builddir/daemon/stm32d" \
  --ctl "$builddir/cli/stm32ctl" --flood-reader "$builddir/bench/stm32-bench-flood-reader" \
  --flood-listener "$builddir/tests/flood-listener" "${board_cpu[@]}" "$@" \
  2> >(grep --line-buffered -v 'Failed to set fd limit' >&2)
