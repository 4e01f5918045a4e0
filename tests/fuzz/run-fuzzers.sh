#!/usr/bin/env bash
# Runs every fuzz harness of a fuzz build for a fixed time; non-zero if any
# of them crashed or broke an invariant. The committed seeds are only read:
# new inputs go to a scratch corpus, crashing inputs to BUILDDIR/tests/fuzz/artifacts.
#
#   CC=clang meson setup build-fuzz -Dfuzzing=enabled -Db_sanitize=address,undefined -Db_lundef=false
#   ninja -C build-fuzz
#   tests/fuzz/run-fuzzers.sh build-fuzz 20
set -euo pipefail

usage() {
  echo "usage: $0 BUILDDIR [SECONDS_PER_HARNESS]" >&2
  exit 2
}

[[ $# -ge 1 && $# -le 2 ]] || usage
build=$1
seconds=${2:-20}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || usage

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
artifacts=$build/tests/fuzz/artifacts
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

shopt -s nullglob
harnesses=()
for h in "$build"/tests/fuzz/fuzz-decoder-*; do
  [[ -f $h && -x $h ]] && harnesses+=("$h")
done
if [[ ${#harnesses[@]} -eq 0 ]]; then
  echo "$0: no harnesses in $build/tests/fuzz; configure it with CC=clang -Dfuzzing=enabled and build it" >&2
  exit 2
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
for h in "${harnesses[@]}"; do
  name=${h##*/}
  framing=${name#fuzz-decoder-}
  mkdir -p "$scratch/$framing" "$artifacts/$framing"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
    -artifact_prefix="$artifacts/$framing/")
  [[ -f $here/$framing.dict ]] && args+=(-dict="$here/$framing.dict")

  echo "== $name: ${seconds}s"
  if ! "$h" "${args[@]}" "$scratch/$framing" "$here/corpus/$framing"; then
    failed+=("$name")
  fi
done

echo "fuzz: $((${#harnesses[@]} - ${#failed[@]})) passed, ${#failed[@]} failed"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "FAILED: ${failed[*]} (reproducers in $artifacts)" >&2
  exit 1
fi
echo "all ${#harnesses[@]} harnesses ran ${seconds}s without a finding"
