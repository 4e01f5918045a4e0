#!/usr/bin/env bash
# Installs what is needed, builds, and shows stm32d at work on a private D-Bus
# session bus: it keeps a link to the bundled board simulator — a board whose
# firmware ignores EOF and has two connection slots, the kind that broke the
# old GUIs — through connect/transact/disconnect cycles, and the board reports
# every slot released.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ${1:-} != --on-private-bus ]]; then
  tools/deps.sh
  if [[ ! -d build ]]; then
    meson setup build >/dev/null
  fi
  ninja -C build >/dev/null
  exec dbus-run-session -- "$0" --on-private-bus
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

link=(--session --dest org.stm32d --object-path /org/stm32d/link/default)
call() { gdbus call "${link[@]}" --method "$@"; }
state() { call org.freedesktop.DBus.Properties.Get org.stm32d.Link1 State 2>/dev/null || true; }

port=$(await listening | sed -E 's/.*"port":([0-9]+).*/\1/')
echo "board simulator on 127.0.0.1:$port: leaky firmware, 2 connection slots"
echo "(a client that just closes its socket fills this board after 2 connections)"

build/daemon/stm32d --session --host 127.0.0.1 --port "$port" 2>"$workdir/stm32d.log" &
daemon=$!
for _ in $(seq 100); do
  [[ $(state) == "(<'connected'>,)" ]] && break
  sleep 0.1
done
echo
echo "--- stm32d is connected; its link as a D-Bus client sees it:"
call org.freedesktop.DBus.Properties.GetAll org.stm32d.Link1 | tr ',' '\n' | grep -E "'(State|Host|Port|Framing|LocalAddress|Connects)'" | sed 's/^ */  /'
echo
for cycle in 1 2 3 4; do
  ((cycle == 1)) || call org.stm32d.Link1.Connect >/dev/null
  reply=$(call org.stm32d.Link1.Transact "b'ping $cycle'" 2000)
  call org.stm32d.Link1.Disconnect >/dev/null
  echo "cycle $cycle: connect, transact → $reply, disconnect"
  await released | sed -E 's/.*"how":"([^"]+)".*"slots_in_use":([0-9]+).*/  board: slot released (\1), \2 in use/'
done
echo
echo "--- the board's own view after 4 cycles:"
echo status >&3
await status | sed -E 's/.*"slots_in_use":([0-9]+).*"accepted":([0-9]+).*"rejected":([0-9]+).*/  slots in use: \1, accepted: \2, rejected: \3/'
echo
echo "--- what stm32d logged:"
sed 's/^/  /' "$workdir/stm32d.log"
