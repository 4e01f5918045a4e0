#!/usr/bin/env bash
# Installs what stm32d needs to build and test, from Debian's packages.
set -euo pipefail

packages=(
  meson ninja-build pkg-config gcc
  libglib2.0-dev libglib2.0-bin libjson-glib-dev
  # fuzzing the frame decoders: clang's libFuzzer and sanitizer runtimes
  clang libclang-rt-14-dev
  # network-namespace tests (dead-peer detection over a real link)
  iproute2
  # checks
  shellcheck python3
  # system pieces (tests/test-system-files.sh): systemd-analyze, systemd-sysusers
  # and systemd.pc's unit/sysusers dirs
  systemd
  # dbus-daemon, dbus-send and dbus.socket, which `systemd-analyze verify` resolves
  dbus
  # dbus-1.pc: where the activation file goes
  libdbus-1-dev
  # xmllint for the bus policy and interface XML
  libxml2-utils
  # /bin/kill, the unit's ExecReload=, which `systemd-analyze verify` checks exists
  procps
  # a name owner on the test bus for the policy test
  python3-dbus
  # bash-completion.pc: where stm32ctl's completion goes (docs/meson.build)
  bash-completion
  # groff and man --warnings: the man pages must render without a warning (tests/test-docs.sh)
  groff-base man-db
  # libstm32client's introspection data: g-ir-scanner, gobject-introspection-1.0.pc
  # and the Gio GIR it includes; PyGObject for examples/echo.py and its test
  gobject-introspection libgirepository1.0-dev gir1.2-glib-2.0 python3-gi
  # Qt 5 and 6's qdbusxml2cpp and QtDBus: the interface XML must give Qt GUIs
  # clean typed proxies (tests/test-qt-proxy.sh)
  g++ qtbase5-dev qtbase5-dev-tools qt6-base-dev qt6-base-dev-tools
  # the lwIP board (tests/lwip-board): `apt-get source lwip` unpacks with dpkg-source
  dpkg-dev
  # promtool, Prometheus' own parser and linter: `stm32ctl metrics` must pass
  # `promtool check metrics` without a complaint (tests/test-metrics.c)
  prometheus
  # bench/: the relay a lab could put in front of a board instead of stm32d,
  # measured beside every stm32d path (socat TCP-LISTEN … TCP:board)
  socat
)

sudo=()
if ((EUID != 0)); then
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
need_update=0

# The lwIP board compiles lwIP from Debian's source package, which needs a
# deb-src entry. Added once, as a copy of debian.sources' stanzas for the main
# archive (same URIs, suites, components and Signed-By) with Types: deb-src.
src_list=/etc/apt/sources.list.d/debian-src.sources
if [[ ! -e $src_list ]] && ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  src_stanzas=$(awk -v RS= '/(^|\n)Types:[^\n]*deb/ && !/debian-security/ {
      gsub(/(^|\n)#[^\n]*/, ""); sub(/^\n/, ""); sub(/Types:[^\n]*/, "Types: deb-src");
      printf "%s%s\n", sep, $0; sep = "\n" }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  if [[ -z $src_stanzas ]]; then
    # shellcheck source=/dev/null
    . /etc/os-release
    src_stanzas=$(printf '%s\n' 'Types: deb-src' 'URIs: http://deb.debian.org/debian' \
      "Suites: $VERSION_CODENAME $VERSION_CODENAME-updates" 'Components: main' \
      'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg')
  fi
  printf '%s\n' "$src_stanzas" | "${sudo[@]}" tee "$src_list" >/dev/null
  need_update=1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0 && need_update == 0)); then
  exit 0
fi
"${sudo[@]}" apt-get update -qq
if ((${#missing[@]} > 0)); then
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
