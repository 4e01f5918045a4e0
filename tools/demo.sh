#!/usr/bin/env bash
# Installs what is needed, builds, and shows stm32d keeping a clean link to the
# bundled board simulator: three connect/close cycles against the kind of board
# that broke the old GUIs, then the board's own account of its slots.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/deps.sh
if [[ ! -d build ]]; then
  meson setup build >/dev/null
fi
ninja -C build >/dev/null

# A board with leaky firmware (ignores EOF, never closes) and a 2-slot table,
# driven through its stdin (fd 3) and reporting its view on stdout (fd 4).
workdir=$(mktemp -d)
trap 'echo quit >&3 2>/dev/null || true; rm -rf "$workdir"' EXIT
mkfifo "$workdir/in" "$workdir/out"
build/tests/sim/stm32-sim --mode leak --slots 2 --quiet <"$workdir/in" >"$workdir/out" 2>/dev/null &
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

port=$(await listening | sed -E 's/.*"port":([0-9]+).*/\1/')
echo "board simulator on 127.0.0.1:$port: leaky firmware, 2 connection slots"
echo "(a client that just closes its socket fills this board after 2 connections)"
echo
for cycle in 1 2 3 4; do
  build/daemon/stm32d --host 127.0.0.1 --port "$port" 2> >(sed "s/^/  stm32d: /") &
  daemon=$!
  await accepted | sed "s/^/  board:  /"
  kill -TERM "$daemon"
  wait "$daemon"
  await released | sed "s/^/  board:  /"
  echo "cycle $cycle: connected, closed, slot released"
done
echo
echo "the board's own view after 4 cycles:"
echo status >&3
await status | sed -E 's/.*"slots_in_use":([0-9]+).*"accepted":([0-9]+).*"rejected":([0-9]+).*/  slots in use: \1, accepted: \2, rejected: \3/'
