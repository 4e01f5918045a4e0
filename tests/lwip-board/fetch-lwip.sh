#!/usr/bin/env bash
# Puts lwIP 2.1's source tree at DESTDIR for the lwIP board, never in git:
# from Debian's source package (`apt-get source lwip`), or copied from an
# extracted tree given as SOURCE (meson's -Dlwip_source=PATH, for offline use).
# Usage: fetch-lwip.sh DESTDIR [SOURCE]
# Does nothing when DESTDIR already holds lwIP 2.1 from the same origin. The
# tree appears at DESTDIR in one rename, so a failed or interrupted fetch
# leaves nothing half-made behind.
set -euo pipefail

if (($# < 1 || $# > 2)) || [[ -z $1 ]]; then
  echo "usage: $0 DESTDIR [SOURCE]" >&2
  exit 2
fi
dest=$1
source_tree=${2:-}
stamp=.stm32-lwip-origin
if [[ -n $source_tree ]]; then
  origin="path:$(realpath -e -- "$source_tree")"
else
  origin="debian:lwip"
fi

# Prints why DIR is not lwIP 2.1.x, or nothing if it is.
check_tree() {
  local init=$1/src/include/lwip/init.h major minor
  if [[ ! -f $init ]]; then
    echo "$1 has no src/include/lwip/init.h"
    return
  fi
  major=$(sed -nE 's/^#define LWIP_VERSION_MAJOR[[:space:]]+([0-9]+).*/\1/p' "$init")
  minor=$(sed -nE 's/^#define LWIP_VERSION_MINOR[[:space:]]+([0-9]+).*/\1/p' "$init")
  if [[ $major != 2 || $minor != 1 ]]; then
    echo "$1 is lwIP ${major:-?}.${minor:-?}, not 2.1"
  elif [[ ! -f $1/src/core/tcp.c || ! -f $1/src/netif/ethernet.c ]]; then
    echo "$1 lacks src/core/tcp.c or src/netif/ethernet.c"
  fi
}

if [[ -f $dest/$stamp && $(<"$dest/$stamp") == "$origin" && -z $(check_tree "$dest") ]]; then
  exit 0
fi

parent=$(dirname -- "$dest")
mkdir -p -- "$parent"
# In DESTDIR's own directory, so the final mv is a rename on one file system.
work=$(mktemp -d "$parent/.lwip-fetch.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

if [[ -n $source_tree ]]; then
  problem=$(check_tree "$source_tree")
  if [[ -n $problem ]]; then
    echo "fetch-lwip: $problem" >&2
    exit 1
  fi
  cp -R -- "$source_tree" "$work/tree"
else
  for tool in apt-get dpkg-source; do
    if ! command -v "$tool" >/dev/null; then
      echo "fetch-lwip: $tool not found (apt-get source needs apt and dpkg-dev)" >&2
      exit 1
    fi
  done
  # apt drops root to _apt for downloads; let it write here, or it warns.
  if ((EUID == 0)) && id _apt >/dev/null 2>&1; then
    chown _apt "$work"
  fi
  # Needs a deb-src entry for Debian's main archive (tools/deps.sh adds one).
  if ! (cd "$work" && apt-get source -qq lwip >"$work/apt.log" 2>&1); then
    echo "fetch-lwip: apt-get source lwip failed (is a deb-src entry enabled and apt-get update run?):" >&2
    tail -n 5 "$work/apt.log" >&2
    exit 1
  fi
  extracted=("$work"/lwip-*/)
  if [[ ${#extracted[@]} -ne 1 || ! -d ${extracted[0]} ]]; then
    echo "fetch-lwip: apt-get source lwip left no single lwip-*/ directory" >&2
    exit 1
  fi
  mv -- "${extracted[0]}" "$work/tree"
fi

problem=$(check_tree "$work/tree")
if [[ -n $problem ]]; then
  echo "fetch-lwip: $problem" >&2
  exit 1
fi
printf '%s\n' "$origin" >"$work/tree/$stamp"
rm -rf -- "$dest"
mv -T -- "$work/tree" "$dest"
