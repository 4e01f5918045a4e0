#!/usr/bin/env bash
# Installs what is needed, builds, and shows stm32d at work on a private D-Bus
# session bus, driven with stm32ctl: it keeps a link to the bundled board
# simulator — a board whose firmware ignores EOF and has two connection slots,
# the kind that broke the old GUIs — through connect/transact/disconnect
# cycles, and the board reports every slot released.
set -euo pipefail
cd "$(dirname "$0")/.."

# CI points BUILDDIR at the build it already made.
build=${BUILDDIR:-build}
export BUILDDIR=$build

if [[ ${1:-} != --on-private-bus ]]; then
  tools/deps.sh
  if [[ ! -d $build ]]; then
    meson setup "$build" >/dev/null
  fi
  ninja -C "$build" >/dev/null
  # dbus-daemon cannot raise its fd limit in some sandboxes and says so; harmless here.
  exec dbus-run-session -- "$0" --on-private-bus 2> >(grep -v 'Failed to set fd limit' >&2)
fi

workdir=$(mktemp -d)
daemon=''
cleanup() {
  [[ -z $daemon ]] || kill "$daemon" 2>/dev/null || true
  wait "$daemon" 2>/dev/null || true
  echo quit >&3 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$workdir"
}
trap cleanup EXIT

# The simulator takes commands on stdin (fd 3) and reports on stdout (fd 4).
mkfifo "$workdir/in" "$workdir/out"
"$build"/tests/sim/stm32-sim --mode leak --slots 2 --quiet <"$workdir/in" >"$workdir/out" 2>/dev/null &
exec 3>"$workdir/in" 4<"$workdir/out"

# Reads simulator events until one named $1 arrives (bounded by 10 s).
await() {
  local line
  while read -r -t 10 line <&4; do
    if [[ $line == *"\"event\":\"$1\""* ]]; then
      printf '%s\n' "$line"
      return 0
    fi
  done
  echo "demo: the simulator did not report '$1'" >&2
  return 1
}

ctl() { "$build"/cli/stm32ctl --session "$@"; }

port=$(await listening | sed -E 's/.*"port":([0-9]+).*/\1/')
echo "board simulator on 127.0.0.1:$port: leaky firmware, 2 connection slots"
echo "(a client that just closes its socket fills this board after 2 connections)"

"$build"/daemon/stm32d --session --host 127.0.0.1 --port "$port" 2>"$workdir/stm32d.log" &
daemon=$!
for _ in $(seq 100); do
  ctl status --json 2>/dev/null | grep '"state" : "connected"' >/dev/null && break
  sleep 0.1
done
echo
echo "\$ stm32ctl status"
ctl status | sed 's/^/  /'
echo
for cycle in 1 2 3 4; do
  if ((cycle > 1)); then
    echo "\$ stm32ctl connect"
    ctl connect | sed 's/^/  /'
  fi
  echo "\$ stm32ctl transact ping $cycle"
  ctl transact "ping $cycle" | sed 's/^/  /'
  echo "\$ stm32ctl disconnect"
  ctl disconnect | sed 's/^/  /'
  await released | sed -E 's/.*"how":"([^"]+)".*"slots_in_use":([0-9]+).*/  (board: slot released by \1, \2 in use)/'
done
echo
echo "\$ stm32ctl history"
ctl history | sed 's/^/  /'
echo
echo "the board's own view after 4 cycles:"
echo status >&3
await status | sed -E 's/.*"slots_in_use":([0-9]+).*"accepted":([0-9]+).*"rejected":([0-9]+).*/  slots in use: \1, accepted: \2, rejected: \3/'
echo
echo "\$ stm32ctl doctor    (what stm32d concluded about this board; exit status 8: problems found)"
ctl doctor | sed 's/^/  /' || true
