#!/usr/bin/env bash
# Usage: tools/package-test.sh [DIR]
# Builds stm32d's Debian packages (dpkg-buildpackage -us -uc -b) from a copy
# of this tree (and copies them, the build log and meson's test log to DIR if
# given), runs lintian on them (errors fail), and installs them into a
# throwaway Debian 12 chroot: there stm32ctl --version, man stm32ctl, the
# typelib from Python and systemd-analyze verify on the installed unit must
# work, the installed stm32d must answer stm32ctl status against the installed
# simulator on a private bus, and purging must leave no file behind.
#
# Needs root (chroot, mount and network namespaces; sudo is used otherwise).
# Installs its own tools with apt. Nothing is written to the source tree: the
# build, the .debs and the chroot live in a temporary directory.
# Environment:
#   DEB_BUILD_OPTIONS  passed to the build; "nocheck" skips dh_auto_test (CI:
#                      the same suite already ran in that run)
#   STM32_PACKAGE_CACHE  where the chroot's base tarball is kept
#                      (default ${XDG_CACHE_HOME:-~/.cache}/stm32d-package-test)
#   STM32_PACKAGE_DEBS  a directory of .debs (from DIR earlier) to run the
#                      chroot test on, without building them again
set -euo pipefail

readonly suite=bookworm
# What the chroot has before our packages: their dependencies (installed with
# dpkg -i, offline) and the programs the checks run.
readonly chroot_packages=(
  systemd dbus procps man-db python3-gi gir1.2-glib-2.0
  libglib2.0-0 libglib2.0-dev libjson-glib-1.0-0
)
readonly packages=(stm32d stm32d-tools libstm32client0 libstm32client-dev gir1.2-stm32client-0.1)

fail() {
  echo "package-test: FAIL: $*" >&2
  exit 1
}

# This script runs in three places: on the host (the end of this file), in a
# private mount and network namespace (in_namespace), and inside the chroot
# as /tmp/package-test.sh (checks; run_daemon inside dbus-run-session).
in_namespace() {
  local root=$1
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount --rbind /sys "$root/sys"
  mount -t tmpfs tmpfs "$root/run"
  ip link set lo up
  exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 TERM=dumb bash /tmp/package-test.sh --checks
}

checks() {
  local version out uid left
  version=$(cat /tmp/version)

  echo "== install"
  dpkg -i /tmp/debs/*.deb >/tmp/dpkg.log 2>&1 || fail "dpkg -i: $(cat /tmp/dpkg.log)"
  # The bus policy is reloaded by dbus's trigger on /usr/share/dbus-1/system.d.
  grep -q '^Processing triggers for dbus' /tmp/dpkg.log || fail "dbus's trigger did not run: $(cat /tmp/dpkg.log)"
  getent passwd stm32d >/dev/null || fail "no user stm32d after install"
  getent group stm32 >/dev/null || fail "no group stm32 after install"
  [[ -L /etc/systemd/system/multi-user.target.wants/stm32d.service ]] || fail "stm32d.service is not enabled"
  [[ -f /lib/systemd/system/stm32d-metrics.timer ]] || fail "stm32d-metrics.timer is not installed"
  [[ ! -e /etc/systemd/system/timers.target.wants/stm32d-metrics.timer ]] || fail "stm32d-metrics.timer is enabled"
  echo "user stm32d, group stm32, stm32d.service enabled, stm32d-metrics.timer installed but not enabled, bus policy reloaded (dbus trigger)"

  echo "== stm32ctl --version, man stm32ctl, typelib, systemd-analyze verify"
  out=$(stm32ctl --version)
  [[ $out == "stm32ctl $version" ]] || fail "stm32ctl --version: '$out', want 'stm32ctl $version'"
  echo "$out"
  man -P cat stm32ctl 2>&1 | grep -q '^NAME' || fail "man stm32ctl shows no page"
  echo "man stm32ctl: rendered"
  python3 -c 'import gi; gi.require_version("Stm32Client", "0.1"); from gi.repository import Stm32Client; print("typelib:", Stm32Client.Client)'
  out=$(systemd-analyze verify --generators=no /lib/systemd/system/stm32d.service \
    /lib/systemd/system/stm32d-metrics.service /lib/systemd/system/stm32d-metrics.timer 2>&1) ||
    fail "systemd-analyze verify: $out"
  [[ -z $out ]] || fail "systemd-analyze verify is not clean: $out"
  echo "systemd-analyze verify: clean"

  echo "== stm32d against stm32-sim on a private bus"
  # (dbus-daemon cannot raise its fd limit in the chroot; harmless.)
  dbus-run-session -- bash /tmp/package-test.sh --run-daemon 2> >(grep -v 'Failed to set fd limit' >&2)

  echo "== purge"
  # What systemd creates for the unit (StateDirectory=, ConfigurationDirectory=)
  # when it runs; the purge must take it away.
  install -d -o stm32d -g stm32d -m 0700 /var/lib/stm32d
  touch /var/lib/stm32d/state && chown stm32d:stm32d /var/lib/stm32d/state
  install -d /etc/stm32d
  uid=$(id -u stm32d)
  dpkg --purge "${packages[@]}" >/tmp/dpkg.log 2>&1 || fail "dpkg --purge: $(cat /tmp/dpkg.log)"
  left=$(find / -xdev -uid "$uid" -print)
  [[ -z $left ]] || fail "files of user stm32d left after purge: $left"
  # sysusers.d entries only add; Debian keeps system accounts after purge.
  getent passwd stm32d >/dev/null || fail "the purge removed user stm32d"
  echo "user stm32d stays (as sysusers.d and Debian do), owning no file"
}

sim=''
daemon=''
stop_board_and_daemon() {
  [[ -z $daemon ]] || kill "$daemon" 2>/dev/null || true
  [[ -z $sim ]] || kill "$sim" 2>/dev/null || true
  wait
}

run_daemon() {
  local port='' out=''
  trap stop_board_and_daemon EXIT
  # stm32-sim quits on EOF on stdin: hold its stdin open.
  mkfifo /tmp/sim.in
  stm32-sim --mode good --quiet </tmp/sim.in >/tmp/sim.out 2>/tmp/sim.log &
  sim=$!
  exec 3>/tmp/sim.in
  for _ in $(seq 100); do
    port=$(sed -nE 's/.*"event":"listening".*"port":([0-9]+).*/\1/p' /tmp/sim.out)
    [[ -z $port ]] || break
    sleep 0.1
  done
  [[ -n $port ]] || fail "stm32-sim did not listen: $(cat /tmp/sim.log)"
  stm32d --session --host 127.0.0.1 --port "$port" 2>/tmp/stm32d.log &
  daemon=$!
  for _ in $(seq 100); do
    out=$(stm32ctl --session status --json default 2>&1) && grep -q '"state" : "connected"' <<<"$out" && break
    sleep 0.1
  done
  grep -q '"state" : "connected"' <<<"$out" || fail "stm32ctl status: $out; stm32d: $(cat /tmp/stm32d.log)"
  stm32ctl --session status default
}

case ${1:-} in
  --in-namespace) in_namespace "${2:?}" ;;
  --checks)
    checks
    exit
    ;;
  --run-daemon)
    run_daemon
    exit
    ;;
esac

# --- outside: tools, build, lintian, chroot -----------------------------------
outdir=''
if [[ -n ${1:-} ]]; then
  outdir=$(realpath -m "$1")
fi
cd "$(dirname "$0")/.."
if ((EUID != 0)); then
  exec sudo --preserve-env=DEB_BUILD_OPTIONS,STM32_PACKAGE_CACHE,STM32_PACKAGE_DEBS "$0" "$@"
fi
start=$SECONDS
version=$(sed -nE '1s/^stm32d \(([^)]*)\) .*/\1/p' debian/changelog)
[[ -n $version ]] || fail "no version in debian/changelog"

export DEBIAN_FRONTEND=noninteractive
apt_get=(apt-get -o DPkg::Lock::Timeout=600 -y -qq --no-install-recommends)
tools=(dpkg-dev debhelper fakeroot lintian mmdebstrap iproute2)
missing=()
for p in "${tools[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} > 0)) || ! dpkg-checkbuilddeps >/dev/null 2>&1; then
  echo "== installing tools and build dependencies"
  "${apt_get[@]}" update
  ((${#missing[@]} == 0)) || "${apt_get[@]}" install "${missing[@]}"
  "${apt_get[@]}" build-dep ./
fi

work=$(mktemp -d /tmp/stm32d-package.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The build's log and meson's test log go to DIR (if given): the work
# directory goes away, and a test that failed once must be readable after.
keep_build_logs() {
  [[ -n $outdir ]] || return 0
  mkdir -p "$outdir"
  cp "$work/build.log" "$outdir/build.log"
  local t
  for t in "$work"/src/obj-*/meson-logs/testlog.txt; do
    [[ -f $t ]] && cp "$t" "$outdir/testlog.txt"
  done
  return 0
}

if [[ -n ${STM32_PACKAGE_DEBS:-} ]]; then
  echo "== using the .debs in $STM32_PACKAGE_DEBS (no build, no lintian)"
  cp "$STM32_PACKAGE_DEBS"/*.deb "$work/"
else
  echo "== dpkg-buildpackage -us -uc -b (DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-})"
  # The tree as it is, tracked and new files, without build directories.
  mkdir "$work/src"
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done |
    tar --null -T - -c | tar -x -C "$work/src"
  DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:+$DEB_BUILD_OPTIONS }parallel=$(nproc)"
  export DEB_BUILD_OPTIONS
  build_start=$SECONDS
  if ! (cd "$work/src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
    keep_build_logs
    tail -n 80 "$work/build.log" >&2
    fail "dpkg-buildpackage failed (the log's end is above${outdir:+; the logs are in $outdir})"
  fi
  keep_build_logs
  echo "built in $((SECONDS - build_start)) s: $(cd "$work" && echo ./*.deb)"
  if [[ -n $outdir ]]; then
    mkdir -p "$outdir"
    cp "$work"/*.deb "$outdir/"
    echo "copied to $outdir"
  fi

  echo "== lintian"
  lintian_out=$(lintian --fail-on error --tag-display-limit 0 "$work"/stm32d_"$version"_*.changes 2>&1) ||
    fail "lintian: $lintian_out"
  grep -v 'running with root privileges' <<<"$lintian_out" || echo "lintian: clean"
fi

echo "== Debian 12 chroot"
cache=${STM32_PACKAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stm32d-package-test}
mkdir -p "$cache"
if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
  mirror=/etc/apt/sources.list.d/debian.sources
else
  mirror=http://deb.debian.org/debian
fi
key=$(printf '%s\n' "$suite" "$mirror" "${chroot_packages[@]}" | sha256sum | cut -c1-16)
tarball=$cache/$suite-$key.tar
if [[ ! -f $tarball ]]; then
  echo "making the base chroot (cached as $tarball)"
  # mmdebstrap makes a tarball of a target whose name ends in .tar.
  rm -rf "$cache/$suite"-*.tar "$cache/new.tar"
  mmdebstrap --quiet --variant=apt --include="$(
    IFS=,
    echo "${chroot_packages[*]}"
  )" "$suite" "$cache/new.tar" "$mirror" </dev/null
  mv "$cache/new.tar" "$tarball"
fi
root=$work/root
mkdir "$root"
tar -x -C "$root" -f "$tarball"
mkdir "$root/tmp/debs"
for p in "${packages[@]}"; do
  cp "$work/${p}_${version}"_*.deb "$root/tmp/debs/"
done
echo "$version" >"$root/tmp/version"
cp "$0" "$root/tmp/package-test.sh"
# The checks' own leftovers (logs, caches, /tmp) are not the packages'.
snapshot() {
  (cd "$root" && find . -xdev \( -path ./proc -o -path ./dev -o -path ./sys -o -path ./run \
    -o -path ./tmp -o -path ./root -o -path ./var/log -o -path ./var/cache \
    -o -path ./var/lib/dpkg -o -path ./var/lib/apt \) -prune -o -print | sort)
}
snapshot >"$work/before"
unshare --mount --net --propagation private -- "$0" --in-namespace "$root"
snapshot >"$work/after"
left=$(comm -13 "$work/before" "$work/after" |
  grep -vxE '\./etc/(passwd|group|shadow|gshadow)-' || true)
[[ -z $left ]] || fail "files left after purge: $left"
gone=$(comm -23 "$work/before" "$work/after")
[[ -z $gone ]] || fail "files removed by install and purge: $gone"
echo "purge: no file left (account databases changed only for the stm32d user)"
echo "package-test: passed in $((SECONDS - start)) s"
