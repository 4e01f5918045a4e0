#!/usr/bin/env bash
# A quick end-to-end check of the lwIP board against the Linux TCP stack, run
# by hand (root): in a private network namespace, tap0 with 198.18.0.1/24 on
# the PC side, the board at 198.18.0.2, then plain socket clients exercise
# each failure mode and print what lwIP's pools said.
# Usage: sudo tests/lwip-board/smoke.sh [BOARD]   (BOARD: the stm32-lwip-board
# program; default $STM32_LWIP_BOARD, else build*/tests/lwip-board/ beside it)
set -euo pipefail

if ((EUID != 0)); then
  echo "smoke.sh: needs root (network namespace and TAP device)" >&2
  exit 77
fi
if [[ ${STM32_LWIP_SMOKE_NETNS:-} != 1 ]]; then
  exec env STM32_LWIP_SMOKE_NETNS=1 unshare --net -- "$BASH" "$0" "$@"
fi

here=$(cd "$(dirname "$0")" && pwd)
board=${1:-${STM32_LWIP_BOARD:-}}
if [[ -z $board ]]; then
  for b in "$here"/../../build*/tests/lwip-board/stm32-lwip-board; do
    [[ -x $b ]] && board=$b && break
  done
fi
if [[ -z $board || ! -x $board ]]; then
  echo "smoke.sh: no stm32-lwip-board found; give its path" >&2
  exit 1
fi

# As the test suite runs programs: any sanitizer finding ends the board non-zero.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

ip link set lo up
ip tuntap add dev tap0 mode tap
ip addr add 198.18.0.1/24 dev tap0
ip link set tap0 up

exec python3 - "$board" <<'EOF'
import errno, json, os, queue, socket, struct, subprocess, sys, threading, time

BOARD = sys.argv[1]
HOST = "198.18.0.2"
failures = []


def check(what, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + what + (f"  [{detail}]" if detail else ""), flush=True)
    if not ok:
        failures.append(what)


class Board:
    def __init__(self, *args):
        self.p = subprocess.Popen([BOARD, "--tap", "tap0", "--ip", HOST + "/24", "--port", "7", *args],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.q = queue.Queue()
        self.events = []
        threading.Thread(target=self._read, daemon=True).start()
        self.listening = self.wait("listening", 5)

    def _read(self):
        for line in self.p.stdout:
            self.q.put(json.loads(line))
        self.q.put(None)

    def wait(self, *names, timeout=5):
        if isinstance(names[-1], (int, float)):
            names, timeout = names[:-1], names[-1]
        for i, e in enumerate(self.events):
            if e["event"] in names:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            try:
                e = self.q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no {names} within {timeout}s")
            if e is None:
                raise EOFError("board exited")
            if e["event"] in names:
                return e
            self.events.append(e)

    def count(self, name):
        return sum(1 for e in self.events if e["event"] == name)

    def request(self, command):
        self.p.stdin.write(command + "\n")
        self.p.stdin.flush()
        return self.wait("ok", "status", "error")

    def status(self):
        return self.request("status")

    def stop(self):
        ans = self.request("quit")
        self.p.stdin.close()
        rc = self.p.wait(10)
        check(f"board exits 0 after quit", ans["event"] == "ok" and rc == 0, f"rc={rc}")


def connect(timeout=3.0):
    s = socket.socket()
    s.settimeout(timeout)
    s.connect((HOST, 7))
    return s


def rst_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def recv_outcome(s, timeout=3.0):
    s.settimeout(timeout)
    try:
        data = s.recv(100)
        return "eof" if data == b"" else data
    except ConnectionResetError:
        return "reset"
    except TimeoutError as e:  # the socket's timeout, or the kernel's ETIMEDOUT
        return "ETIMEDOUT" if e.errno == errno.ETIMEDOUT else "timeout"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))


def pool(st, name="TCP_PCB"):
    return st["memp"][name]


def settle(b, pred, timeout=3.0):
    """Polls status until pred(status) (lwIP frees LAST_ACK PCBs on the PC's ACK)."""
    deadline = time.monotonic() + timeout
    while True:
        st = b.status()
        if pred(st) or time.monotonic() > deadline:
            return st
        time.sleep(0.05)


print("== ping, echo, close (good firmware)")
b = Board()
r = subprocess.run(["ping", "-c", "2", "-W", "1", HOST], capture_output=True, text=True)
check("ping 198.18.0.2", r.returncode == 0, r.stdout.strip().splitlines()[-1] if r.stdout else "no ping")
s = connect()
s.sendall(b"hello\n")
check("echo", s.recv(100) == b"hello\n")
s.close()
rel = b.wait("released")
st = settle(b, lambda st: pool(st)["used"] == 0)
check("close frees the PCB", rel["how"] == "closed-after-eof" and pool(st)["used"] == 0,
      f"how={rel['how']} TCP_PCB={pool(st)}")
# Idle: lwIP's timers only (ARP, reassembly: 1 s).
pid = b.p.pid
def switches():
    with open(f"/proc/{pid}/status") as f:
        return sum(int(l.split()[1]) for l in f if "ctxt_switches" in l)
c0 = switches(); time.sleep(3); c1 = switches()
check("idle board wakes rarely", c1 - c0 <= 12, f"{c1 - c0} context switches in 3 s")
b.stop()

print("== leak firmware: FIN-only clients exhaust the 5 PCBs")
b = Board("--firmware", "leak")
cycles = 0
timed_out_at = None
for i in range(1, 9):
    try:
        s = connect(timeout=2.5)
    except (socket.timeout, TimeoutError):
        timed_out_at = i
        break
    s.sendall(b"x\n")
    s.recv(10)
    s.close()
    b.wait("eof")
    cycles = i
st = b.status()
check("connect times out after 5 leaked cycles", timed_out_at == 6,
      f"cycles={cycles} timeout at connect #{timed_out_at}")
check("TCP_PCB pool full, SYNs dropped", pool(st)["used"] == 5 and pool(st)["err"] > 0,
      f"TCP_PCB={pool(st)} CLOSE_WAIT={st['tcp']['states']['CLOSE_WAIT']} "
      f"pool-exhausted events={b.count('pool-exhausted')} tcp.memerr={st['tcp']['memerr']}")
b.request("rst-all")
st = b.status()
check("rst-all frees them", pool(st)["used"] == 0, f"TCP_PCB={pool(st)}")
b.stop()

print("== leak firmware: clients that end with RST (FIN, wait for EOF, RST)")
b = Board("--firmware", "leak")
ok = True
for i in range(10):
    s = connect()
    s.sendall(b"x\n")
    s.recv(10)
    s.shutdown(socket.SHUT_WR)
    out = recv_outcome(s, 0.2)  # the leaky firmware never answers the FIN
    rst_close(s)
    rel = b.wait("released")
    ok = ok and rel["how"] == "peer-reset"
st = settle(b, lambda st: pool(st)["used"] == 0)
check("10 cycles, each PCB freed by the RST", ok and pool(st)["used"] == 0,
      f"last EOF wait: {out}; TCP_PCB={pool(st)}")
b.stop()

print("== --prio min: lwIP evicts the oldest connection for a new SYN")
b = Board("--prio", "min")
clients = []
for i in range(5):
    clients.append(connect())
    b.wait("accepted")
    time.sleep(0.3)  # distinct inactivity times
extra = connect()
rel = b.wait("released")
first = recv_outcome(clients[0], 2)
st = b.status()
check("6th connect evicts the oldest", rel["how"] == "stack-aborted" and rel["id"] == 1 and first == "reset",
      f"released={rel} oldest client reads {first}; TCP_PCB={pool(st)}")
for c in clients[1:] + [extra]:
    rst_close(c)
b.stop()

print("== listen off/on, close-all, rst-all")
b = Board()
b.request("listen off")
try:
    connect().close()
    refused = "connected"
except ConnectionRefusedError:
    refused = "refused"
check("listen off: connect refused", refused == "refused", refused)
b.request("listen on")
s = connect()
b.wait("accepted")
b.request("close-all")
out = recv_outcome(s)
check("close-all: the client reads EOF", out == "eof", str(out))
s.close()
s = connect()
b.wait("accepted")
b.request("rst-all")
out = recv_outcome(s)
check("rst-all: the client reads ECONNRESET", out == "reset", str(out))
s.close()
b.stop()

print("== --slots 1 --when-full abort|close")
for action, expect in (("abort", "reset"), ("close", "eof")):
    b = Board("--slots", "1", "--when-full", action)
    a = connect()
    b.wait("accepted")
    # The RST may beat the PC's look at its connect: then connect reports it.
    try:
        c = connect()
        out = recv_outcome(c)
        c.close()
    except ConnectionResetError:
        out = "reset"
    rej = b.wait("rejected")
    check(f"table full, {action}: second client accepted, then reads {expect}",
          rej["action"] == action and out == expect, f"{out}")
    rst_close(a)
    b.stop()

print("== cut on: the cable is pulled")
b = Board()
s = connect()
b.wait("accepted")
b.request("cut on")
s.sendall(b"lost\n")
out = recv_outcome(s, 1.5)
b.request("cut off")
back = recv_outcome(s, 5)
st = b.status()
check("cut: no answer; cut off: the retransmission gets through", out == "timeout" and back == b"lost\n",
      f"during cut: {out}, after: {back}; link={st['link']}")
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 1500)
b.request("cut on")
s.sendall(b"lost\n")
out = recv_outcome(s, 8)
check("cut: a PC with TCP_USER_TIMEOUT 1.5 s gives up", out == "ETIMEDOUT", out)
b.request("cut off")
s.close()
st = b.status()
check("the board still holds the dead connection", st["slots_in_use"] == 1 and
      st["tcp"]["states"]["ESTABLISHED"] == 1, f"slots_in_use={st['slots_in_use']}")
b.stop()

print("== restart: a clean reset")
b = Board()
s = connect()
b.wait("accepted")
s.sendall(b"a\n")
s.recv(10)
b.request("restart 300")
b.wait("restart")
lis = b.wait("listening", 5)
st = b.status()
s.sendall(b"b\n")
out = recv_outcome(s)
check("after restart the old connection gets RST", out == "reset", f"{out}; up={st['up']}")
n = connect()
n.sendall(b"new\n")
check("new connections work after restart", n.recv(10) == b"new\n", f"listening={lis}")
n.close()
b.stop()

print(f"== {len(failures)} failed" + (": " + ", ".join(failures) if failures else ""))
sys.exit(1 if failures else 0)
EOF
