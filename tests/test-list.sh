#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Checks that the GTest paths tests/meson.build lists for a program are exactly
# the ones the program has: each listed path is its own meson test, so a case
# added in C but not listed would never run, and a listed path the program
# lacks would pass while running nothing.
# Usage: test-list.sh PROGRAM [PATH...]
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 PROGRAM [PATH...]" >&2
  exit 2
fi
program=$1
shift

status=0
listing=$("$program" -l) || status=$?
if [[ $status -eq 77 ]]; then
  # The program skips as a whole here (test-lwip without its board), so it
  # cannot say what it has; meson reports this check skipped too.
  printf '%s\n' "$listing"
  exit 77
fi
if [[ $status -ne 0 ]]; then
  printf '%s\n' "$listing"
  echo "$program -l failed with status $status" >&2
  exit 1
fi

# Not sorted -u: a path listed twice is drift too.
if ! diff -u --label "tests/meson.build" --label "$(basename "$program") -l" \
  <(printf '%s\n' "$@" | sort) <(grep '^/' <<<"$listing" | sort); then
  echo "tests/meson.build and $(basename "$program") disagree on the test paths (diff above)" >&2
  exit 1
fi
echo "$(basename "$program"): $# paths, all listed"
