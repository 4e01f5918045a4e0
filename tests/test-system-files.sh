#!/usr/bin/env bash
# Checks the installable system pieces: bus policy, sysusers.d entry, unit and
# install layout. One mode per meson test (suite 'system'):
#   xml        policy and interface XML are well-formed; every method in the
#              interface XML is allowed for group stm32 and root, never for everyone
#   sysusers   systemd-sysusers creates user/group stm32d and group stm32
#   verify     systemd-analyze verify is silent on the units as built (stm32d, and
#              the metrics service and timer, which write node_exporter's file)
#   security   systemd-analyze security rates each service at exposure <= 2.0
#   install    meson install --destdir puts each file where pkg-config says
#   policy     a real dbus-daemon enforces the policy, with the owner running in
#              a user namespace mapped like the unit's PrivateUsers=yes (root only);
#              everyone gets PropertiesChanged, only root and group stm32 Received;
#              its users and groups are its own, whatever the host has
#   policy-lab-host  the policy test on a host whose group stm32 has members and
#              whose accounts take the test's uids (root only)
#   version    one version: meson's project version is what stm32d and stm32ctl
#              print and debian/changelog's; its major is libstm32client's
#              soname, which debian/ names its package and symbols file
#              after; the running daemon's Manager1.Version is the D-Bus API
#              number the XML documents, stm32d --version prints and the
#              stm32d package provides (stm32d-dbus-api-N)
#   symbols    libstm32client exports exactly the functions its Debian symbols
#              file lists: a new one must be added there (dpkg-gensymbols -c4
#              fails the package build otherwise), a missing one is an ABI break
# Environment (set by tests/meson.build): STM32_SRCDIR, STM32_BUILDDIR,
# STM32_PREFIX, STM32_SBINDIR, STM32_BINDIR, STM32_TEXTFILE_DIR, STM32_DATADIR, STM32_UNITDIR,
# STM32_SYSUSERSDIR, STM32_DBUS_SERVICESDIR, STM32_DBUS_POLICYDIR (the raw options), MESON,
# STM32_VERSION (meson's project version).
set -euo pipefail

readonly max_exposure=2.0
readonly bus_name=org.stm32d

skip() {
  echo "SKIP: $*"
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || skip "$tool not found (tools/deps.sh installs it)"
  done
}

src=${STM32_SRCDIR:?}
build=${STM32_BUILDDIR:?}
if [[ ${1:-} == policy-inner || ${1:-} == version-inner ]]; then
  tmp=${2:?} # the outer process owns and removes it
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
fi

# A unit exactly as meson generated it for installation ($1, default stm32d.service).
built_unit() {
  local unit=$build/systemd/${1:-stm32d.service}
  [[ -f $unit ]] || fail "$unit was not generated"
  if grep -n '@[a-z_]*@' "$unit" >&2; then
    fail "$unit still has unsubstituted placeholders"
  fi
  echo "$unit"
}

mode_xml() {
  need xmllint
  local policy=$src/dbus/org.stm32d.conf file
  local -a interfaces=("$src"/dbus/*.xml)
  for file in "$policy" "${interfaces[@]}"; do
    [[ -e $file ]] || continue
    xmllint --noout --nonet "$file"
    echo "well-formed: ${file#"$src"/}"
  done

  # Each control method: one allow rule for group stm32, one for root, none for everyone.
  local rule count who iface method checked=0
  check_rule() {
    rule="allow[@send_destination='$bus_name' and @send_interface='$1' and @send_member='$2']"
    for who in "@group='stm32'" "@user='root'"; do
      count=$(xmllint --xpath "count(//policy[$who]/$rule)" "$policy")
      ((count == 1)) || fail "policy: $1.$2 has $count allow rules for $who, want 1"
    done
    count=$(xmllint --xpath "count(//policy[@context='default']/$rule)" "$policy")
    ((count == 0)) || fail "policy: $1.$2 is open to everyone"
    checked=$((checked + 1))
  }
  for file in "${interfaces[@]}"; do
    [[ -e $file ]] || continue
    while read -r iface; do
      while read -r method; do
        [[ -n $method ]] && check_rule "$iface" "$method"
      done < <(xmllint --xpath "//interface[@name='$iface']/method/@name" "$file" 2>/dev/null |
        sed -nE 's/^ *name="([^"]*)"/\1/p')
    done < <(xmllint --xpath '//interface/@name' "$file" | sed -nE 's/^ *name="([^"]*)"/\1/p')
  done
  check_rule org.freedesktop.DBus.Properties Set
  # Everyone gets the read-only holes and nothing else.
  count=$(xmllint --xpath "count(//policy[@context='default']/allow[@send_destination])" "$policy")
  ((count == 6)) || fail "policy: $count rules open methods to everyone, want the 6 read-only ones"
  echo "policy: $checked control methods limited to group stm32 and root"
}

mode_sysusers() {
  need systemd-sysusers
  mkdir -p "$tmp/etc"
  systemd-sysusers --root="$tmp" "$src/systemd/stm32d.sysusers"
  grep -E '^stm32d:x:[0-9]+:[0-9]+:[^:]*:/:/usr/sbin/nologin$' "$tmp/etc/passwd" ||
    fail "no system user stm32d without a login shell"
  grep -E '^stm32d:x:[0-9]+:$' "$tmp/etc/group" || fail "no group stm32d"
  grep -E '^stm32:x:[0-9]+:$' "$tmp/etc/group" || fail "no group stm32"
}

# systemd-analyze verify checks that ExecStart exists, so point it at the
# freshly built daemon; everything else is the file that gets installed.
mode_verify() {
  need systemd-analyze
  local unit daemon=$build/daemon/stm32d out
  unit=$(built_unit)
  [[ -x $daemon ]] || fail "$daemon not built"
  grep -qx "ExecStart=${STM32_SBINDIR:?}/stm32d" "$unit" || fail "ExecStart is not $STM32_SBINDIR/stm32d"
  sed "s|^ExecStart=$STM32_SBINDIR/stm32d|ExecStart=$daemon|" "$unit" >"$tmp/stm32d.service"
  # Works without systemd as PID 1 (verify loads the units itself; dbus.socket
  # comes from the dbus package). --man=no: Documentation=man:stm32d(8) is
  # checked against installed man pages, which a build tree has not got.
  # --generators=no: generators would read this machine's fstab and the like.
  out=$(systemd-analyze verify --man=no --generators=no "$tmp/stm32d.service" 2>&1) ||
    fail "systemd-analyze verify failed: $out"
  [[ -z $out ]] || fail "systemd-analyze verify is not clean: $out"
  echo "systemd-analyze verify: clean"

  # The metrics pair: the service runs the built stm32ctl, the timer starts it.
  local metrics ctl=$build/cli/stm32ctl dir=${STM32_TEXTFILE_DIR:?}
  metrics=$(built_unit stm32d-metrics.service)
  [[ -x $ctl ]] || fail "$ctl not built"
  grep -qx "ExecStart=${STM32_BINDIR:?}/stm32ctl metrics --output $dir/stm32d.prom" "$metrics" ||
    fail "stm32d-metrics.service does not run $STM32_BINDIR/stm32ctl metrics --output $dir/stm32d.prom"
  grep -qx "ReadWritePaths=$dir" "$metrics" || fail "stm32d-metrics.service cannot write $dir"
  sed "s|^ExecStart=$STM32_BINDIR/stm32ctl|ExecStart=$ctl|" "$metrics" >"$tmp/stm32d-metrics.service"
  cp "$src/systemd/stm32d-metrics.timer" "$tmp/"
  grep -qx "WantedBy=timers.target" "$tmp/stm32d-metrics.timer" || fail "the timer is not for timers.target"
  out=$(systemd-analyze verify --man=no --generators=no "$tmp/stm32d-metrics.timer" \
    "$tmp/stm32d-metrics.service" 2>&1) || fail "systemd-analyze verify (metrics) failed: $out"
  [[ -z $out ]] || fail "systemd-analyze verify (metrics) is not clean: $out"
  echo "systemd-analyze verify: stm32d-metrics.timer and .service clean"
}

mode_security() {
  need systemd-analyze
  local name unit out score
  for name in stm32d.service stm32d-metrics.service; do
    unit=$(built_unit "$name")
    # --offline: rate the file, not a loaded unit (no PID 1 needed).
    out=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1) ||
      fail "systemd-analyze security failed: $out"
    grep -F '✗' <<<"$out" || true
    score=$(grep -F "Overall exposure level for $name: " <<<"$out" | sed -nE 's/.*: ([0-9.]+).*/\1/p')
    [[ -n $score ]] || fail "no exposure level in: $out"
    echo "$name exposure: $score (limit $max_exposure)"
    awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s <= m) }' ||
      fail "$name: exposure $score is above $max_exposure"
  done
}

# Where a directory option lands: 'no' (empty result), a path, or '' = auto.
# $1 option value, $2 pkg-config package, $3 variable, $4 fallback.
resolve_dir() {
  local value=$1 package=$2 variable=$3 fallback=$4 dir
  if [[ $value == no ]]; then
    return
  elif [[ -n $value ]]; then
    echo "$value"
  elif [[ -n $package ]] && pkg-config --exists "$package"; then
    dir=$(pkg-config --define-variable=prefix="$STM32_PREFIX" --variable="$variable" "$package")
    # systemd.pc < 255 derives the unit dir from root_prefix (see systemd/meson.build).
    if [[ $dir != "$STM32_PREFIX"* && $STM32_PREFIX != "$(pkg-config --variable=prefix "$package")" ]]; then
      dir=$(pkg-config --define-variable=root_prefix="$STM32_PREFIX" --variable="$variable" "$package")
    fi
    echo "$dir"
  else
    echo "$fallback"
  fi
}

mode_install() {
  need pkg-config
  [[ -n ${MESON:-} ]] || skip "meson not found"
  local prefix=${STM32_PREFIX:?} datadir=${STM32_DATADIR:?} dest=$tmp/dest dir name
  [[ $datadir == /* ]] || datadir=$prefix/$datadir
  "$MESON" install -C "$build" --destdir "$dest" --no-rebuild --quiet >/dev/null

  local unit unit_dir
  unit=$(built_unit)
  unit_dir=$(resolve_dir "${STM32_UNITDIR-}" systemd systemdsystemunitdir "$prefix/lib/systemd/system")
  local -A want=(
    [stm32d.service]=$unit_dir
    [stm32d-metrics.service]=$unit_dir
    [stm32d-metrics.timer]=$unit_dir
    [stm32d.conf]=$(resolve_dir "${STM32_SYSUSERSDIR-}" systemd sysusersdir "$prefix/lib/sysusers.d")
    [org.stm32d.service]=$(resolve_dir "${STM32_DBUS_SERVICESDIR-}" dbus-1 system_bus_services_dir \
      "$datadir/dbus-1/system-services")
    [org.stm32d.conf]=$(resolve_dir "${STM32_DBUS_POLICYDIR-}" '' '' "$datadir/dbus-1/system.d")
  )
  # What each installed file must be a copy of (sysusers.d wants a .conf name).
  local -A source=(
    [stm32d.service]=$unit
    [stm32d-metrics.service]=$(built_unit stm32d-metrics.service)
    [stm32d-metrics.timer]=$src/systemd/stm32d-metrics.timer
    [stm32d.conf]=$src/systemd/stm32d.sysusers
    [org.stm32d.service]=$src/dbus/org.stm32d.service
    [org.stm32d.conf]=$src/dbus/org.stm32d.conf
    [stm32d.conf.example]=$src/systemd/stm32d.conf.example
  )
  want[stm32d.conf.example]=$datadir/doc/stm32d
  local copies file
  for name in "${!want[@]}"; do
    dir=${want[$name]}
    copies=
    while read -r file; do
      if cmp -s "$file" "${source[$name]}"; then
        copies+="${file#"$dest"} "
      fi
    done < <(find "$dest" -name "$name" -type f)
    if [[ -z $dir ]]; then
      [[ -z $copies ]] || fail "$name installed to $copies although its option is 'no'"
      echo "not installed (option 'no'): $name"
    else
      [[ $copies == "$dir/$name " ]] || fail "$name: want $dir/$name, installed: ${copies:-nowhere}"
      echo "installed: $dir/$name"
    fi
  done
  # Bus activation only reaches the sandboxed unit if the names agree.
  local activation=$src/dbus/org.stm32d.service
  grep -qx "Name=$bus_name" "$activation" || fail "activation file is not for $bus_name"
  grep -qx "Exec=/bin/false" "$activation" || fail "activation file could start stm32d unsandboxed"
  grep -qx "SystemdService=stm32d.service" "$activation" || fail "activation file does not name stm32d.service"
  grep -qx "BusName=$bus_name" "$unit" || fail "stm32d.service has no BusName=$bus_name"
  echo "activation: $bus_name -> stm32d.service (BusName=$bus_name)"
}

# Runs "$@" as uid/gid $1 in a new user namespace that maps only root and that
# user, the way systemd sets up PrivateUsers=yes for a unit with User=.
readonly private_users_py='
import ctypes, os, sys
uid = gid = int(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
ready, go = os.pipe(), os.pipe()
pid = os.fork()
if pid == 0:
    if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER)")
    os.write(ready[1], b"x")
    os.read(go[0], 1)
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    os.execvp(sys.argv[2], sys.argv[2:])
os.read(ready[0], 1)
for name in ("uid_map", "gid_map"):
    with open(f"/proc/{pid}/{name}", "w") as f:
        f.write(f"0 0 1\n{uid} {uid} 1\n")
os.write(go[1], b"x")
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
'

# Owns the name, reports, then holds it without answering (so an allowed call
# ends in NoReply, a denied one in AccessDenied from the bus).
readonly owner_py='
import dbus, os, sys, time
bus = dbus.bus.BusConnection(sys.argv[1])
if bus.request_name(sys.argv[2], dbus.bus.NAME_FLAG_DO_NOT_QUEUE) != dbus.bus.REQUEST_NAME_REPLY_PRIMARY_OWNER:
    sys.exit("could not own " + sys.argv[2])
print(open("/proc/self/uid_map").read().split(), flush=True)
time.sleep(60)
'

mode_policy() {
  ((EUID == 0)) || skip "needs root (mount namespace for test users, setuid)"
  need unshare setpriv dbus-daemon dbus-send systemd-sysusers stdbuf gdbus
  /usr/bin/python3 -c 'import dbus' 2>/dev/null || skip "python3-dbus not installed"
  # Containers may forbid namespaces even to root.
  unshare --mount --fork -- true 2>/dev/null || skip "cannot create a mount namespace here"
  /usr/bin/python3 -c "$private_users_py" 65534 true 2>/dev/null ||
    skip "cannot create a user namespace here"
  # Test users live in a private /etc/passwd and /etc/group, bind-mounted in a
  # mount namespace so the host is untouched. Both are made from nothing, not
  # copied: a machine's own stm32d user, members of group stm32 or users on
  # the test's uids change nothing here (policy-lab-host proves it).
  # Test users must reach the bus socket inside.
  chmod 755 "$tmp"
  mkdir -p "$tmp/root/etc"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$tmp/root/etc/passwd"
  echo 'root:x:0:' >"$tmp/root/etc/group"
  systemd-sysusers --root="$tmp/root" "$src/systemd/stm32d.sysusers" >/dev/null 2>&1
  local uid=61000
  printf 'stm32test-member:x:%d:%d::/:/usr/sbin/nologin\nstm32test-other:x:%d:%d::/:/usr/sbin/nologin\n' \
    "$uid" "$uid" $((uid + 1)) $((uid + 1)) >>"$tmp/root/etc/passwd"
  printf 'stm32test-member:x:%d:\nstm32test-other:x:%d:\n' "$uid" $((uid + 1)) >>"$tmp/root/etc/group"
  # Joins group stm32 beside whatever members it has.
  awk -F: -v OFS=: '$1 == "stm32" { $4 = ($4 == "" ? "" : $4 ",") "stm32test-member" } 1' \
    "$tmp/root/etc/group" >"$tmp/group" && mv "$tmp/group" "$tmp/root/etc/group"
  grep -E '^stm32:x:[0-9]+:(.*,)?stm32test-member$' "$tmp/root/etc/group" >/dev/null ||
    fail "stm32test-member could not join group stm32: $(cat "$tmp/root/etc/group")"
  unshare --mount --fork -- "$0" policy-inner "$tmp"
}

# The policy test on a lab PC where stm32d is installed and in use: user
# stm32d and group stm32 exist, the group has members, other accounts hold
# the uids the test gives its users. The host's /etc/passwd and /etc/group
# are replaced by such a machine's in a mount namespace, and the policy test
# runs there: it must pass all the same.
mode_policy_lab_host() {
  ((EUID == 0)) || skip "needs root (mount namespace for a lab PC's accounts)"
  need unshare
  unshare --mount --fork -- true 2>/dev/null || skip "cannot create a mount namespace here"
  mkdir -p "$tmp/lab"
  printf '%s\n' 'root:x:0:0:root:/root:/bin/bash' \
    'stm32d:x:990:990:STM32 board link daemon:/:/usr/sbin/nologin' \
    'alice:x:61000:61000:Alice:/home/alice:/bin/bash' \
    'bob:x:61001:61001:Bob:/home/bob:/bin/bash' >"$tmp/lab/passwd"
  printf '%s\n' 'root:x:0:' 'stm32d:x:990:' 'stm32:x:989:alice,bob' 'alice:x:61000:' \
    'bob:x:61001:' >"$tmp/lab/group"
  chmod 644 "$tmp/lab/passwd" "$tmp/lab/group"
  # shellcheck disable=SC2016 # expanded by the inner shell
  unshare --mount --fork -- bash -c \
    'mount --bind "$1/passwd" /etc/passwd && mount --bind "$1/group" /etc/group && exec "$2" policy' \
    _ "$tmp/lab" "$0"
}

mode_policy_inner() {
  mount --bind "$tmp/root/etc/passwd" /etc/passwd
  mount --bind "$tmp/root/etc/group" /etc/group
  cat >"$tmp/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$tmp/bus</listen>
  <auth>EXTERNAL</auth>
  <!-- The default policy of dbus-daemon's system.conf -->
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
  </policy>
  <include>$src/dbus/org.stm32d.conf</include>
  <servicedir>$src/dbus</servicedir>
</busconfig>
EOF
  local address=unix:path=$tmp/bus daemon_uid owner
  dbus-daemon --config-file="$tmp/bus.conf" --nofork --nopidfile --nosyslog 2>"$tmp/bus.log" &
  local bus_pid=$!
  # shellcheck disable=SC2064 # expand now: the pid is fixed
  trap "kill $bus_pid 2>/dev/null" EXIT
  for _ in $(seq 50); do
    [[ -S $tmp/bus ]] && break
    sleep 0.1
  done
  [[ -S $tmp/bus ]] || fail "dbus-daemon did not start: $(cat "$tmp/bus.log")"

  dbus-send --bus="$address" --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.ListActivatableNames | grep "\"$bus_name\"" >/dev/null ||
    fail "the bus does not accept dbus/org.stm32d.service as the activation file for $bus_name"
  echo "activation file accepted by dbus-daemon"

  daemon_uid=$(id -u stm32d)
  /usr/bin/python3 -c "$private_users_py" "$daemon_uid" \
    /usr/bin/python3 -c "$owner_py" "$address" "$bus_name" >"$tmp/owner.log" 2>&1 &
  local owner_pid=$!
  # shellcheck disable=SC2064
  trap "kill $owner_pid $bus_pid 2>/dev/null" EXIT
  for _ in $(seq 50); do
    [[ -s $tmp/owner.log ]] && break
    sleep 0.1
  done
  echo "owner's uid_map (PrivateUsers-style): $(cat "$tmp/owner.log")"
  owner=$(dbus-send --bus="$address" --print-reply=literal --dest=org.freedesktop.DBus \
    /org/freedesktop/DBus org.freedesktop.DBus.GetConnectionUnixUser string:"$bus_name") ||
    fail "stm32d in a PrivateUsers namespace could not own $bus_name: $(cat "$tmp/owner.log")"
  [[ $owner == *" $daemon_uid" ]] || fail "$bus_name is owned by uid '$owner', not stm32d"
  echo "$bus_name owned by stm32d (uid $daemon_uid) from inside the user namespace"

  # GDBus (what stm32d uses) authenticates from inside such a namespace too.
  if command -v gdbus >/dev/null; then
    /usr/bin/python3 -c "$private_users_py" "$daemon_uid" gdbus call --address "$address" \
      --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
      --method org.freedesktop.DBus.GetId >/dev/null ||
      fail "GDBus cannot authenticate from a PrivateUsers namespace"
    echo "GDBus authenticates from inside the user namespace"
  fi

  local -a read_only=(
    "org.freedesktop.DBus.Introspectable.Introspect"
    "org.freedesktop.DBus.Peer.Ping"
    "org.freedesktop.DBus.Peer.GetMachineId"
    "org.freedesktop.DBus.Properties.Get string:org.stm32d.Link1 string:State"
    "org.freedesktop.DBus.Properties.GetAll string:org.stm32d.Link1"
    "org.freedesktop.DBus.ObjectManager.GetManagedObjects"
  )
  local -a control=(
    "org.stm32d.Manager1.Reload"
    "org.stm32d.Link1.Connect"
    "org.stm32d.Link1.Disconnect"
    "org.stm32d.Link1.Send array:byte:1"
    "org.stm32d.Link1.Transact array:byte:1 uint32:100"
    "org.stm32d.Link1.AcquireStream"
    "org.stm32d.Link1.OpenTransactChannel"
    "org.stm32d.Link1.OpenSendChannel"
    "org.stm32d.Link1.GetHistory"
    "org.stm32d.Link1.Diagnose"
    "org.freedesktop.DBus.Properties.Set string:org.stm32d.Link1 string:Autoconnect variant:boolean:false"
    "org.stm32d.Unlisted1.Anything"
  )
  # Calls run in parallel; each result file says allowed or denied.
  local user call n=0 want got
  local -a expect=() pids=()
  call_as() { # user expected call...
    local file=$tmp/call.$n out
    expect[n]="$1 $2 $3"
    (
      # shellcheck disable=SC2086 # the call is a method plus its arguments
      out=$(setpriv --reuid="$1" --regid="$1" --init-groups dbus-send --bus="$address" --print-reply \
        --reply-timeout=2000 --dest="$bus_name" /org/stm32d/link/test $3 2>&1) || true
      case $out in
        *AccessDenied*) echo denied ;;
        *NoReply*) echo allowed ;;
        *) echo "unexpected: $out" ;;
      esac >"$file"
    ) &
    pids+=($!)
    n=$((n + 1))
  }
  for user in root stm32test-member stm32test-other; do
    for call in "${read_only[@]}"; do
      call_as "$user" allowed "$call"
    done
    for call in "${control[@]}"; do
      if [[ $user == stm32test-other || $call == org.stm32d.Unlisted1.* ]]; then
        call_as "$user" denied "$call"
      else
        call_as "$user" allowed "$call"
      fi
    done
  done
  wait "${pids[@]}"
  local failed=0 i
  for ((i = 0; i < n; i++)); do
    read -r user want call <<<"${expect[i]}"
    got=$(cat "$tmp/call.$i")
    if [[ $got != "$want" ]]; then
      echo "FAIL: $user calling ${call%% *}: $got, want $want" >&2
      failed=1
    fi
  done
  ((failed == 0)) || exit 1
  echo "policy: $n calls by root, a member of group stm32 and another user answered as expected"

  local who
  # Allowed, this would queue behind the owner; denied, the bus refuses it.
  for who in stm32test-other stm32test-member; do
    if setpriv --reuid="$who" --regid="$who" --init-groups /usr/bin/python3 -c \
      "import dbus; dbus.bus.BusConnection('$address').request_name('$bus_name')" 2>/dev/null; then
      fail "$who may own $bus_name"
    fi
  done
  echo "policy: only stm32d and root may own $bus_name"

  ctl_policy "$address" "$owner_pid" "$bus_pid"
}

# The real daemon owns the name and stm32ctl, run as each user, gets what the
# policy allows; a user outside group stm32 is told how to get access (exit 7).
ctl_policy() {
  local address=$1 owner_pid=$2 bus_pid=$3 port='' daemon_pid sim_pid rc out _
  # The stub owner runs in a child of its user-namespace wrapper.
  pkill -P "$owner_pid" 2>/dev/null || true
  kill "$owner_pid" 2>/dev/null || true
  wait "$owner_pid" 2>/dev/null || true
  for _ in $(seq 50); do
    dbus-send --bus="$address" --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
      org.freedesktop.DBus.NameHasOwner string:"$bus_name" | grep "boolean false" >/dev/null && break
    sleep 0.1
  done
  [[ -x $build/daemon/stm32d && -x $build/cli/stm32ctl && -x $build/tests/sim/stm32-sim ]] ||
    fail "stm32d, stm32ctl or stm32-sim is not built in $build"
  mkfifo "$tmp/sim.in"
  "$build/tests/sim/stm32-sim" --quiet <"$tmp/sim.in" >"$tmp/sim.out" 2>/dev/null &
  sim_pid=$!
  exec 7>"$tmp/sim.in" # its stdin stays open: EOF would stop it
  for _ in $(seq 50); do
    port=$(sed -nE 's/.*"listening".*"port":([0-9]+).*/\1/p' "$tmp/sim.out")
    [[ -n $port ]] && break
    sleep 0.1
  done
  [[ -n $port ]] || fail "the board simulator did not start"
  DBUS_SESSION_BUS_ADDRESS=$address "$build/daemon/stm32d" --session --host 127.0.0.1 \
    --port "$port" 2>"$tmp/stm32d.log" &
  daemon_pid=$!
  # shellcheck disable=SC2064 # expand now: the pids are fixed
  trap "kill $daemon_pid $sim_pid $bus_pid 2>/dev/null" EXIT

  # The test users run a copy of stm32ctl in $tmp (0755): the build tree may
  # be closed to them, as a package build's 0700 directory is. Its rpath
  # ($ORIGIN/../client-lib) finds the copied library beside it.
  mkdir -p "$tmp/cli" "$tmp/client-lib"
  cp "$build/cli/stm32ctl" "$tmp/cli/"
  cp -L "$build/client-lib/libstm32client.so.0" "$tmp/client-lib/"
  chmod -R a+rX "$tmp/cli" "$tmp/client-lib"
  # A process that changed its uid cannot be ptraced, which LeakSanitizer needs.
  ctl_as() {
    local who=$1
    shift
    setpriv --reuid="$who" --regid="$who" --init-groups env ASAN_OPTIONS=detect_leaks=0 \
      DBUS_SESSION_BUS_ADDRESS="$address" "$tmp/cli/stm32ctl" --session "$@"
  }
  for _ in $(seq 100); do
    ctl_as stm32test-other status 2>/dev/null | grep "State: connected" >/dev/null && break
    sleep 0.1
  done
  ctl_as stm32test-other status | grep "State: connected" >/dev/null ||
    fail "a user outside group stm32 cannot read the link's state: $(cat "$tmp/stm32d.log")"
  rc=0
  out=$(ctl_as stm32test-other disconnect 2>&1) || rc=$?
  ((rc == 7)) || fail "stm32ctl disconnect as another user exited $rc, want 7 (access denied): $out"
  [[ $out == *"usermod -aG stm32"* ]] || fail "the refusal does not say how to get access: $out"
  ctl_as stm32test-member disconnect >/dev/null || fail "a member of group stm32 cannot disconnect"
  ctl_as stm32test-member connect >/dev/null || fail "a member of group stm32 cannot connect"
  echo "stm32ctl: state for everyone, control for group stm32, others told how (exit 7)"

  # Everyone sees the links change (PropertiesChanged); only root and group
  # stm32 get the board's frames (Received). Each watcher is a plain client.
  local who
  local -a watchers=(root stm32test-member stm32test-other) monitor_pids=()
  for who in "${watchers[@]}"; do
    setpriv --reuid="$who" --regid="$who" --init-groups stdbuf -oL gdbus monitor \
      --address "$address" --dest "$bus_name" >"$tmp/monitor.$who" 2>&1 &
    monitor_pids+=($!)
  done
  # shellcheck disable=SC2064 # expand now: the pids are fixed
  trap "kill ${monitor_pids[*]} $daemon_pid $sim_pid $bus_pid 2>/dev/null" EXIT
  # It says who owns the name once its match rule is in place.
  for who in "${watchers[@]}"; do
    for _ in $(seq 100); do
      grep "is owned by" "$tmp/monitor.$who" >/dev/null && break
      sleep 0.1
    done
    grep "is owned by" "$tmp/monitor.$who" >/dev/null ||
      fail "gdbus monitor as $who did not start: $(cat "$tmp/monitor.$who")"
  done
  # The echo board sends the frame back: a Received for whoever may have it.
  ctl_as stm32test-member send "for group stm32" >/dev/null || fail "a member of group stm32 cannot send"
  # The counters that count the echoed frame go out after its Received, in
  # order: once a watcher has them, it also has the Received if it may.
  for who in "${watchers[@]}"; do
    for _ in $(seq 100); do
      grep -E "'FramesReceived': <uint64 [1-9]" "$tmp/monitor.$who" >/dev/null && break
      sleep 0.1
    done
    grep -E "'FramesReceived': <uint64 [1-9]" "$tmp/monitor.$who" >/dev/null ||
      fail "$who did not see the link's counters change: $(cat "$tmp/monitor.$who")"
  done
  for who in root stm32test-member; do
    grep -F "org.stm32d.Link1.Received" "$tmp/monitor.$who" >/dev/null ||
      fail "$who did not receive the board's frame: $(cat "$tmp/monitor.$who")"
  done
  if grep -F "org.stm32d.Link1.Received" "$tmp/monitor.stm32test-other"; then
    fail "a user outside group stm32 received the board's frame"
  fi
  kill "${monitor_pids[@]}"
  echo "signals: PropertiesChanged for everyone, Received only for root and group stm32"
}

# Manager1 is versioned as an API, not as a release (the XML: additions keep
# it, a break raises it), so it is compared with the API number everything
# else states, read from the daemon itself on a private bus.
mode_version() {
  need readelf dbus-run-session gdbus
  local version=${STM32_VERSION:?} major=${STM32_VERSION%%.*}
  local deb_control=$src/debian/control symbols=$src/debian/libstm32client$major.symbols out api

  out=$(sed -nE '1s/^stm32d \(([^)]*)\) .*/\1/p' "$src/debian/changelog")
  [[ $out == "$version" ]] ||
    fail "debian/changelog is at '$out', meson.build at $version (a native package: one version)"
  echo "debian/changelog: $out"

  out=$(readelf -d "$build/client-lib/libstm32client.so" | sed -nE 's/.*\(SONAME\).*\[(.*)\]$/\1/p')
  [[ $out == "libstm32client.so.$major" ]] || fail "soname is '$out', want libstm32client.so.$major"
  grep -qx "Package: libstm32client$major" "$deb_control" ||
    fail "debian/control has no package libstm32client$major for soname $out"
  [[ -e $symbols ]] || fail "no symbols file for libstm32client$major"
  out=$(head -n 1 "$symbols")
  [[ $out == "libstm32client.so.$major libstm32client$major #MINVER#" ]] ||
    fail "$symbols is for '$out', not libstm32client.so.$major"
  echo "soname: libstm32client.so.$major, package libstm32client$major"

  api=$(sed -nE 's/.*Version: Version of this D-Bus API; ([0-9]+) for the interfaces.*/\1/p' \
    "$src/dbus/org.stm32d.Manager1.xml")
  [[ -n $api ]] || fail "org.stm32d.Manager1.xml does not document its API version"
  out=$("$build/daemon/stm32d" --version)
  [[ $out == "stm32d $version (D-Bus API $api)" ]] || fail "stm32d --version: '$out'"
  out=$("$build/cli/stm32ctl" --version)
  [[ $out == "stm32ctl $version" ]] || fail "stm32ctl --version: '$out'"
  grep -qE "^Provides:.*\bstm32d-dbus-api-$api\b" "$deb_control" ||
    fail "debian/control: stm32d does not provide stm32d-dbus-api-$api"

  : >"$tmp/empty.conf"
  out=$(dbus-run-session -- "$0" version-inner "$tmp")
  [[ $out == "(<uint32 $api>,)" ]] || fail "the running daemon's Manager1.Version is '$out', want $api"
  echo "version $version, D-Bus API $api: meson, changelog, soname, --version, Manager1.Version"
}

mode_version_inner() {
  local pid out status=0
  "$build/daemon/stm32d" --session --config "$tmp/empty.conf" 2>"$tmp/stm32d.log" &
  pid=$!
  if gdbus wait --session --timeout 60 org.stm32d; then
    out=$(gdbus call --session --dest org.stm32d --object-path /org/stm32d \
      --method org.freedesktop.DBus.Properties.Get org.stm32d.Manager1 Version) || status=$?
  else
    status=1
  fi
  kill -TERM "$pid"
  wait "$pid" || fail "stm32d did not stop cleanly: $(cat "$tmp/stm32d.log")"
  ((status == 0)) || fail "no Manager1.Version from stm32d: $(cat "$tmp/stm32d.log")"
  echo "$out"
}

# What dpkg-gensymbols would say at package time, said by the test suite:
# the symbols file and the library's dynamic symbol table list the same names.
mode_symbols() {
  need nm comm
  local major=${STM32_VERSION%%.*}
  local symbols=$src/debian/libstm32client$major.symbols
  nm -D --defined-only "$build/client-lib/libstm32client.so" |
    awk '$2 == "T" { print $3 }' | sort -u >"$tmp/exported"
  sed -nE 's/^ ([A-Za-z0-9_]+)@Base .*/\1/p' "$symbols" | sort -u >"$tmp/listed"
  [[ -s $tmp/exported ]] || fail "libstm32client.so exports no function"
  comm -23 "$tmp/exported" "$tmp/listed" >"$tmp/new"
  comm -13 "$tmp/exported" "$tmp/listed" >"$tmp/gone"
  [[ ! -s $tmp/new ]] ||
    fail "exported but not in $symbols (add each as ' NAME@Base $STM32_VERSION'): $(tr '\n' ' ' <"$tmp/new")"
  [[ ! -s $tmp/gone ]] ||
    fail "in $symbols but no longer exported (an ABI break: a new soname, or keep them): $(tr '\n' ' ' <"$tmp/gone")"
  echo "symbols: the $(wc -l <"$tmp/exported") exported functions are the ones $symbols lists"
}

case ${1:-} in
  xml) mode_xml ;;
  sysusers) mode_sysusers ;;
  verify) mode_verify ;;
  security) mode_security ;;
  install) mode_install ;;
  policy) mode_policy ;;
  policy-inner) mode_policy_inner ;;
  policy-lab-host) mode_policy_lab_host ;;
  version) mode_version ;;
  version-inner) mode_version_inner ;;
  symbols) mode_symbols ;;
  *) fail "usage: $0 xml|sysusers|verify|security|install|policy|policy-lab-host|version|symbols" ;;
esac
