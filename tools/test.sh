#!/usr/bin/env bash
# The whole test suite: a -Werror build under AddressSanitizer and
# UndefinedBehaviorSanitizer, every test, then a summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

# It must work on a fresh machine on its own, before or after tools/demo.sh.
tools/deps.sh

builddir=${BUILDDIR:-build-test}
# The lwIP board's tests need root; where they can run (root, CI) the board
# must be built, so a missing lwIP source fails the setup instead of
# skipping them quietly.
lwip_board=auto
if ((EUID == 0)) || [[ -n ${CI:-} ]]; then
  lwip_board=enabled
fi
if [[ ! -d $builddir ]]; then
  meson setup "$builddir" -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dlwip_board="$lwip_board" >/dev/null
fi
ninja -C "$builddir"
status=0
meson test -C "$builddir" --print-errorlogs --num-processes "${TEST_JOBS:-2}" "$@" || status=$?
python3 tools/test-summary.py "$builddir/meson-logs/testlog.json"
exit "$status"
