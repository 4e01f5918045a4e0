#!/usr/bin/env bash
# A Qt developer makes typed proxies from stm32d's interface XML with
# qdbusxml2cpp: for each Qt found (5 and 6), every XML file must generate
# without a single warning, and the generated proxy must compile against
# QtDBus. Skips when no Qt's qdbusxml2cpp and QtDBus are installed.
# Environment (set by tests/meson.build): STM32_SRCDIR.
set -euo pipefail

skip() {
  echo "SKIP: $*"
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

: "${STM32_SRCDIR:?}"
cxx=${CXX:-c++}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

checked=0
for qt in 5 6; do
  tool=/usr/lib/qt$qt/bin/qdbusxml2cpp
  if [[ ! -x $tool ]] || ! pkg-config --exists "Qt${qt}DBus"; then
    echo "Qt $qt: no qdbusxml2cpp or Qt${qt}DBus, not checked"
    continue
  fi
  read -ra qt_flags < <(pkg-config --cflags "Qt${qt}DBus")
  unit=$work/qt${qt}_proxies.cpp
  : >"$unit"
  for xml in "$STM32_SRCDIR"/dbus/org.stm32d.*.xml; do
    name=$(basename "$xml" .xml)
    out=$work/qt${qt}_${name//./_}
    if ! "$tool" -p "$out" "$xml" >"$out.log" 2>&1 || [[ -s $out.log ]]; then
      cat "$out.log" >&2
      fail "Qt $qt's qdbusxml2cpp does not take $name.xml cleanly"
    fi
    echo "#include \"$out.cpp\"" >>"$unit"
    echo "Qt $qt: $name.xml generates without a warning"
  done
  # Both proxies in one unit: Qt's headers cost seconds per compile.
  if ! "$cxx" -std=c++17 -fPIC -Werror -fsyntax-only "${qt_flags[@]}" "$unit" 2>"$unit.log"; then
    cat "$unit.log" >&2
    fail "the Qt $qt proxies do not compile"
  fi
  echo "Qt $qt: the proxies compile"
  checked=$((checked + 1))
done
((checked > 0)) || skip "neither Qt 5 nor Qt 6 (qdbusxml2cpp and QtDBus development files) is installed"
