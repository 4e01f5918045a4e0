#!/usr/bin/env bash
# Checks the man pages and the bash completion against the code they describe,
# so that a new command, option, key or exit code cannot go undocumented.
# One mode per meson test (suite 'system'):
#   man         every page renders without a single groff (and man) warning
#   stm32ctl    stm32ctl(1) has every command of cli/stm32ctl.c's table, every
#               option of cli/stm32ctl.c and cli/cmd-*.c, every --json key and
#               every exit code with its meaning from the --help text
#   stm32d      stm32d(8) has every option of daemon/main.c, every signal it
#               handles, every way a connection ends (daemon/stm32-link-types.h)
#               and exit status 78
#   conf        stm32d.conf(5) has every key of the parser and of the example
#               config, with the example's default
#   completion  cli/stm32ctl.bash-completion offers the commands, global and
#               per-command options from the code, on|off, files for --file and
#               link names from `stm32ctl links` (a stub first on PATH)
#   sim         stm32-sim(1) has every option of tests/sim/stm32-sim.c and every
#               command its --help lists
#   install     meson installs the pages to MANDIR/manN and the completion where
#               bash-completion.pc says
# Environment (set by tests/meson.build): STM32_SRCDIR; for install also
# STM32_BUILDDIR, STM32_PREFIX, STM32_MANDIR, STM32_DATADIR,
# STM32_BASH_COMPLETIONS_DIR (the raw option) and MESON.
# Nothing here runs stm32ctl or stm32d: the docs are checked against the source.
set -euo pipefail

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
readonly pages=(stm32ctl.1 stm32d.8 stm32d.conf.5 stm32-sim.1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- reading the code ----

# stm32ctl's sources are what its page and completion are checked against.
need_cli() {
  [[ -f $src/cli/stm32ctl.c ]] || skip "cli/stm32ctl.c is not in this tree: no stm32ctl to check against"
}

# A C file as one line, so that entries clang-format wrapped still match.
one_line() {
  tr '\n' ' ' <"$1"
}

# "long short" for each GOptionEntry in a C file; short is "-" if it has none.
options_of() {
  one_line "$1" |
    grep -oE "\{ *\"[a-z0-9-]+\", *('.'|0), *[^,]+, *G_OPTION_ARG_[A-Z_]+" |
    sed -E "s/^\{ *\"([a-z0-9-]+)\", *('(.)'|0).*/\1 \3/; s/ $/ -/" || true
}

# The commands of stm32ctl's table: { "name", stm32ctl_cmd_..., "summary" }.
ctl_commands() {
  one_line "$src/cli/stm32ctl.c" | grep -oE '\{ *"[a-z-]+", *stm32ctl_cmd_' |
    sed -E 's/^\{ *"([a-z-]+)".*/\1/'
}

# The --json keys a command prints: stm32ctl_output_*(output, "key", ...).
json_keys_of() {
  one_line "$1" | grep -oE 'stm32ctl_output_[a-z_]+ *\( *output, *"[a-z_]+"' |
    sed -E 's/.*"([a-z_]+)"$/\1/' || true
}

# The nicks of Stm32EndReason (how a connection ended) but "none" and
# "local" (no failure): what LastError and the history show.
end_reasons() {
  awk '/^typedef enum/ { nicks = "" } /nick=/ { n = $0; sub(/.*nick=/, "", n); sub(/ .*/, "", n); nicks = nicks n "\n" }
    /^} Stm32EndReason;/ { printf "%s", nicks }' "$src/daemon/stm32-link-types.h" |
    grep -vxE 'none|local'
}

# ---- reading a page ----

# The roff source with escapes that do not change the words removed:
# \- is a hyphen, \% and \& are invisible.
plain() {
  sed -E 's/\\-/-/g; s/\\[%&]//g' "$1"
}

# The lines of section $2 (.SH, or .SS if $3 is SS) of plain page $1.
section() {
  local page=$1 name=$2 level=${3:-SH}
  awk -v name="$name" -v level=".$level" '
    /^\.S[HS] / {
      title = $0
      sub(/^\.S[HS] +/, "", title)
      gsub(/"/, "", title)
      if (in_section && ($1 == ".SH" || level == ".SS")) in_section = 0
      if ($1 == level && title == name) { in_section = 1; next }
    }
    in_section { print }
  ' "$page"
}

# Tags of .TP/.TQ items in section text on stdin, macro names removed.
tags() {
  awk '
    tag { sub(/^\.[A-Z]+ +/, ""); print; tag = 0; next }
    /^\.T[PQ]/ { tag = 1 }
  '
}

# Body of the item whose tag is exactly $1 (after the macro), joined into one line.
item_body() {
  awk -v want="$1" '
    tag { t = $0; sub(/^\.[A-Z]+ +/, "", t); tag = 0; if (t == want) { on = 1; next } }
    /^\.(T[PQ]|S[HS])/ { if (on) exit; tag = 1; next }
    on { line = $0; sub(/^\.[A-Z]+ +/, "", line); printf "%s ", line }
  '
}

# Text of the item whose tag sets key $1 (".BI Key= value"), joined into one
# line; keys that share an item (tags joined with .TQ) share its text.
key_body() {
  awk -v key="$1" '
    on && /^\.TQ/ { tq = 1; next }
    on && tq { tq = 0; next }
    on && /^\.(TP|S[HS])/ { exit }
    on { line = $0; sub(/^\.[A-Z]+ +/, "", line); printf "%s ", line }
    tag { t = $0; sub(/^\.[A-Z]+ +/, "", t); tag = 0; if (index(t, key "=") == 1) on = 1 }
    /^\.T[PQ]/ { tag = 1 }
  '
}

# Whether $1 occurs as a whole option or word in the text on stdin.
# Reads all of its input: a reader that stops early would kill the writer
# with SIGPIPE, which pipefail reports as a failure.
has_word() {
  grep -E -- "(^|[^A-Za-z0-9_-])$1([^A-Za-z0-9_-]|$)" >/dev/null
}

# ---- modes ----

mode_man() {
  need groff
  local page out
  for page in "${pages[@]}"; do
    [[ -f $src/docs/$page ]] || fail "docs/$page is missing"
    # -ww: every warning; -z: format but print nothing, so any output is a complaint.
    out=$(groff -man -ww -z -Tutf8 "$src/docs/$page" 2>&1) || fail "groff failed on $page: $out"
    [[ -z $out ]] || fail "groff warns about $page: $out"
    if command -v man >/dev/null; then
      # man adds its preprocessors and its own checks (e.g. a page it cannot parse).
      out=$(MANWIDTH=80 man --warnings -E UTF-8 -l "$src/docs/$page" 2>&1 >/dev/null) ||
        fail "man failed on $page: $out"
      [[ -z $out ]] || fail "man --warnings complains about $page: $out"
    fi
    echo "renders cleanly: docs/$page"
  done
  command -v man >/dev/null || echo "note: man not found; checked with groff only"
}

mode_stm32ctl() {
  need_cli
  local page=$tmp/stm32ctl.1 command long short file key count=0
  plain "$src/docs/stm32ctl.1" >"$page"

  local -a commands
  mapfile -t commands < <(ctl_commands)
  ((${#commands[@]} > 0)) || fail "no commands found in cli/stm32ctl.c's table"
  for command in "${commands[@]}"; do
    section "$page" "$command" SS | grep . >/dev/null ||
      fail "stm32ctl(1) has no '.SS $command' for the command in cli/stm32ctl.c"
    count=$((count + 1))
  done
  echo "commands: ${commands[*]}"

  # Global options are tags of GLOBAL OPTIONS; a command's are tags of its .SS.
  check_options() { # file, section text file
    local file=$1 text=$2
    while read -r long short; do
      tags <"$text" | has_word "--$long" ||
        fail "stm32ctl(1): --$long (${file#"$src"/}) is not an item of its section"
      if [[ $short != - ]]; then
        tags <"$text" | has_word "-$short" ||
          fail "stm32ctl(1): -$short, short for --$long (${file#"$src"/}), is not documented"
      fi
      count=$((count + 1))
    done < <(options_of "$file")
  }
  section "$page" "GLOBAL OPTIONS" >"$tmp/global"
  [[ -n $(options_of "$src/cli/stm32ctl.c") ]] || fail "no options found in cli/stm32ctl.c"
  check_options "$src/cli/stm32ctl.c" "$tmp/global"
  for command in "${commands[@]}"; do
    file=$src/cli/cmd-$command.c
    [[ -f $file ]] || fail "command $command has no $file"
    section "$page" "$command" SS >"$tmp/cmd"
    check_options "$file" "$tmp/cmd"
    # --json keys are what scripts rely on: each one is named in its command's section.
    while read -r key; do
      has_word "$key" <"$tmp/cmd" || fail "stm32ctl(1): --json key $key of $command is not documented"
      count=$((count + 1))
    done < <(json_keys_of "$file")
  done
  # Every cmd-*.c is a command of the table (a file left out of both is caught too).
  for file in "$src"/cli/cmd-*.c; do
    command=${file##*/cmd-}
    command=${command%.c}
    printf '%s\n' "${commands[@]}" | grep -x -- "$command" >/dev/null ||
      fail "cli/cmd-$command.c is not in the command table of cli/stm32ctl.c"
  done

  # Exit codes: the enum is what the code returns, the --help text says what
  # each means; the page must list exactly those codes, each with that meaning.
  local -A meaning=()
  local code text help
  help=$(one_line "$src/cli/stm32ctl.c" | sed -E 's/\\n" *"/ /g; s/" *"//g' |
    grep -oE 'Exit status:[^"]*') || fail "no 'Exit status:' in stm32ctl --help (cli/stm32ctl.c)"
  while read -r code text; do
    meaning[$code]=$text
  done < <(grep -oE '[0-9]+ [^,.]+' <<<"${help#Exit status:}")
  local -a codes
  mapfile -t codes < <(grep -oE 'STM32CTL_EXIT_[A-Z_]+ *= *[0-9]+' "$src/cli/stm32ctl.h" |
    sed -E 's/.*= *//' | sort -n)
  ((${#codes[@]} > 0)) || fail "no exit codes found in cli/stm32ctl.h"
  [[ "${codes[*]}" == "$(printf '%s\n' "${!meaning[@]}" | sort -n | joined)" ]] ||
    fail "the code and its --help disagree: enum has ${codes[*]}, --help lists ${!meaning[*]}"
  section "$page" "EXIT STATUS" >"$tmp/exit"
  [[ "${codes[*]}" == "$(tags <"$tmp/exit" | joined)" ]] ||
    fail "stm32ctl(1) EXIT STATUS lists $(tags <"$tmp/exit" | joined), the code has ${codes[*]}"
  for code in "${codes[@]}"; do
    item_body "$code" <"$tmp/exit" | grep -iF -- "${meaning[$code]}" >/dev/null ||
      fail "stm32ctl(1): exit status $code does not say '${meaning[$code]}'"
    count=$((count + 1))
  done
  echo "exit codes: ${codes[*]}"
  echo "stm32ctl(1): $count commands, options, keys and exit codes documented"
}

# Every option of the GOptionEntry table in source $2 is a tag in $tmp/options
# (the OPTIONS section of page $1), long and short; prints how many.
options_documented() {
  local page=$1 file=$2 long short count=0
  [[ -n $(options_of "$file") ]] || fail "no options found in ${file#"$src"/}"
  while read -r long short; do
    tags <"$tmp/options" | has_word "--$long" || fail "$page: --$long is not in OPTIONS"
    if [[ $short != - ]]; then
      tags <"$tmp/options" | has_word "-$short" || fail "$page: -$short (--$long) is not in OPTIONS"
    fi
    count=$((count + 1))
  done < <(options_of "$file")
  echo "$count"
}

mode_sim() {
  local page=$tmp/stm32-sim.1 file=$src/tests/sim/stm32-sim.c command count
  plain "$src/docs/stm32-sim.1" >"$page"
  section "$page" OPTIONS >"$tmp/options"
  count=$(options_documented "stm32-sim(1)" "$file")
  # The commands are listed in --help's description, two spaces in: "  name ARGS  what".
  section "$page" COMMANDS >"$tmp/commands"
  while read -r command; do
    tags <"$tmp/commands" | has_word "$command" || fail "stm32-sim(1): command $command is not in COMMANDS"
    count=$((count + 1))
  done < <(sed -nE 's/^ *"  ([a-z][a-z-]*) .*/\1/p' "$file")
  ((count > 20)) || fail "stm32-sim(1): only $count options and commands found in $file"
  echo "stm32-sim(1): $count options and commands, each documented"
}

mode_stm32d() {
  local page=$tmp/stm32d.8 signal count
  plain "$src/docs/stm32d.8" >"$page"
  section "$page" OPTIONS >"$tmp/options"
  count=$(options_documented "stm32d(8)" "$src/daemon/main.c")
  # Signals the daemon handles are part of how it is run (systemctl stop/reload).
  section "$page" SIGNALS >"$tmp/signals"
  while read -r signal; do
    tags <"$tmp/signals" | has_word "$signal" || fail "stm32d(8): $signal is handled but not in SIGNALS"
    count=$((count + 1))
  done < <(grep -oE 'g_unix_signal_add *\( *SIG[A-Z]+' "$src/daemon/main.c" | grep -oE 'SIG[A-Z]+')
  # Exit status 78 is what systemd and scripts see on a bad config.
  local config_status
  config_status=$(sed -nE 's/^#define STM32D_EXIT_CONFIG ([0-9]+).*/\1/p' "$src/daemon/main.c")
  [[ -n $config_status ]] || fail "no STM32D_EXIT_CONFIG in daemon/main.c"
  section "$page" "EXIT STATUS" | tags | grep -x -- "$config_status" >/dev/null ||
    fail "stm32d(8): exit status $config_status (bad configuration) is not documented"
  # Every way a connection can end is explained where LastError is.
  local reason reasons=0
  section "$page" "How a connection ends" SS >"$tmp/endings"
  while read -r reason; do
    tags <"$tmp/endings" | has_word "$reason" ||
      fail "stm32d(8): ending \"$reason\" is not in \"How a connection ends\""
    reasons=$((reasons + 1))
  done < <(end_reasons)
  ((reasons > 0)) || fail "no end reasons found in daemon/stm32-link-types.h"
  echo "stm32d(8): $count options and signals, $reasons endings, exit status $config_status documented"
}

mode_conf() {
  local page=$tmp/stm32d.conf.5 key value body count=0 defaults=0
  plain "$src/docs/stm32d.conf.5" >"$page"
  section "$page" KEYS >"$tmp/keys"

  local -a parser example
  mapfile -t parser < <(one_line "$src/daemon/stm32-config.c" |
    grep -oE '\{ *"[A-Z][A-Za-z]+", *VALUE_' | sed -E 's/^\{ *"([A-Za-z]+)".*/\1/')
  mapfile -t example < <(sed -nE 's/^#?([A-Z][A-Za-z]+)=.*/\1/p' "$src/systemd/stm32d.conf.example" |
    sort -u)
  ((${#parser[@]} > 0)) || fail "no keys found in daemon/stm32-config.c"
  ((${#example[@]} > 0)) || fail "no keys found in systemd/stm32d.conf.example"
  for key in $(printf '%s\n' "${parser[@]}" "${example[@]}" | sort -u); do
    tags <"$tmp/keys" | grep -E -- "^\"?$key=" >/dev/null || fail "stm32d.conf(5) has no item for $key="
    count=$((count + 1))
  done

  # The example's commented-out lines are the defaults; the page must agree.
  while IFS='=' read -r key value; do
    [[ -n $value ]] || continue
    body=$(key_body "$key" <"$tmp/keys")
    grep -qE 'Defaults?:' <<<"$body" || fail "stm32d.conf(5): $key has no default"
    grep -qwF -- "$value" <<<"$body" ||
      grep -qwF -- "$(sed -E 's/^([0-9]+)([A-Za-z]+)$/\1 \2/' <<<"$value")" <<<"$body" ||
      fail "stm32d.conf(5): the example's default $key=$value is not what the page says"
    defaults=$((defaults + 1))
  done < <(sed -nE 's/^#([A-Z][A-Za-z]+=.*)/\1/p' "$src/systemd/stm32d.conf.example")
  echo "stm32d.conf(5): $count keys and $defaults defaults documented"
}

# ---- completion ----

# Runs the completion for the words given (the last one is being completed)
# the way bash does, and prints COMPREPLY sorted, one per line.
complete_words() {
  COMP_WORDS=("$@")
  COMP_CWORD=$(($# - 1))
  COMP_LINE="$*"
  COMP_POINT=${#COMP_LINE}
  COMPREPLY=()
  _stm32ctl stm32ctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}" ||
    fail "the completion function failed on: $*"
  ((${#COMPREPLY[@]} == 0)) || printf '%s\n' "${COMPREPLY[@]}" | sort
}

# $1 what, $2 want (sorted lines), then the words.
expect_completion() {
  local what=$1 want=$2 got
  shift 2
  got=$(complete_words "$@")
  [[ $got == "$want" ]] || fail "completing '$*' ($what): got [$(joined <<<"$got")], want [$(joined <<<"$want")]"
  echo "ok: $what: '$*' -> $(joined <<<"$got")"
}

sorted() {
  printf '%s\n' "$@" | sort
}

# Lines on stdin as one line (xargs would run echo, which takes --help).
joined() {
  paste -sd ' ' -
}

mode_completion() {
  local completion=$src/cli/stm32ctl.bash-completion command long short
  [[ -f $completion ]] || fail "cli/stm32ctl.bash-completion is missing"
  need_cli
  if command -v shellcheck >/dev/null; then
    shellcheck -s bash "$completion" || fail "shellcheck: cli/stm32ctl.bash-completion"
    echo "shellcheck: clean"
  fi
  # Checked on its own above; shellcheck need not follow it here.
  # shellcheck source=/dev/null
  source "$completion"
  [[ $(complete -p stm32ctl 2>/dev/null) == "complete -F _stm32ctl stm32ctl" ]] ||
    fail "sourcing the completion does not register _stm32ctl for stm32ctl"

  # A stub stm32ctl first on PATH: prints a links table (as cmd-links.c does)
  # and records its arguments; with STUB_FAIL it behaves like a missing daemon.
  mkdir -p "$tmp/bin"
  cat >"$tmp/bin/stm32ctl" <<EOF
#!/usr/bin/env bash
echo "\$*" >>"$tmp/stub-args"
if [[ -n \${STUB_FAIL:-} ]]; then
  echo "stm32ctl: error: stm32d is not running" >&2
  exit 5
fi
printf '%s\n' 'NAME        STATE      ENDPOINT            FRAMING  AUTOCONNECT  LAST ERROR' \\
  'bench       connected  192.168.1.50:8080   line     yes          none' \\
  'motor_ctrl  waiting    motor-ctrl:5000     u16be    yes          refused'
EOF
  chmod +x "$tmp/bin/stm32ctl"
  PATH=$tmp/bin:$PATH

  local -a commands globals options
  mapfile -t commands < <(ctl_commands)
  expect_completion "the commands of cli/stm32ctl.c" "$(sorted "${commands[@]}")" stm32ctl ""
  expect_completion "commands by prefix" "$(sorted status)" stm32ctl stat
  mapfile -t globals < <(options_of "$src/cli/stm32ctl.c" | sed -E 's/^([^ ]+) .*/--\1/')
  expect_completion "global options" "$(sorted "${globals[@]}" --help)" stm32ctl -
  expect_completion "commands after global options" "$(sorted "${commands[@]}")" \
    stm32ctl --session -l bench ""

  # Each command offers exactly the long options its cmd-*.c declares.
  for command in "${commands[@]}"; do
    mapfile -t options < <(options_of "$src/cli/cmd-$command.c" | sed -E 's/^([^ ]+) .*/--\1/')
    expect_completion "options of $command" "$(sorted "${options[@]}" --help)" stm32ctl "$command" -
  done
  expect_completion "options of status after -l" "$(sorted --json --watch --help)" \
    stm32ctl -l bench status --

  expect_completion "autoconnect" "$(sorted on off)" stm32ctl autoconnect ""
  expect_completion "autoconnect after -l" "$(sorted off)" stm32ctl -l bench autoconnect of
  expect_completion "autoconnect takes one argument" "" stm32ctl autoconnect on ""
  for command in status doctor monitor; do
    expect_completion "$command takes a link name" "$(sorted bench motor_ctrl)" stm32ctl "$command" ""
    expect_completion "$command takes one link" "" stm32ctl "$command" bench ""
  done
  expect_completion "a link name by prefix" "$(sorted motor_ctrl)" stm32ctl status --json mo
  expect_completion "doctor's --max takes a number" "" stm32ctl doctor --max ""

  mkdir -p "$tmp/files"
  touch "$tmp/files/frame.bin" "$tmp/files/frame.hex" "$tmp/files/other"
  expect_completion "files for --file" "$(sorted "$tmp/files/frame.bin" "$tmp/files/frame.hex")" \
    stm32ctl send --file "$tmp/files/fr"
  expect_completion "files for metrics --output" "$(sorted "$tmp/files/other")" \
    stm32ctl metrics --output "$tmp/files/o"
  expect_completion "no files for send -o" "" stm32ctl send -o "$tmp/files/o"
  expect_completion "files for -f" "$(sorted "$tmp/files/other")" \
    stm32ctl transact -x -f "$tmp/files/o"
  expect_completion "files for --file=" "$(sorted "$tmp/files/other")" \
    stm32ctl send --file = "$tmp/files/o"

  : >"$tmp/stub-args"
  expect_completion "link names from 'stm32ctl links'" "$(sorted bench motor_ctrl)" stm32ctl -l ""
  expect_completion "link names by prefix" "$(sorted motor_ctrl)" stm32ctl --link m
  expect_completion "link names for --link=" "$(sorted bench)" stm32ctl --link = b
  [[ $(sort -u "$tmp/stub-args") == links ]] ||
    fail "the completion ran '$(joined <"$tmp/stub-args")', want 'stm32ctl links'"
  : >"$tmp/stub-args"
  expect_completion "link names on the session bus" "$(sorted bench motor_ctrl)" \
    stm32ctl --session -l ""
  [[ $(cat "$tmp/stub-args") == "--session links" ]] ||
    fail "with --session the completion ran 'stm32ctl $(cat "$tmp/stub-args")'"

  # No daemon: no names, and nothing printed over the user's command line.
  local err
  err=$(STUB_FAIL=1 complete_words stm32ctl -l "" 2>&1 >/dev/null)
  [[ -z $err ]] || fail "the completion printed '$err' while stm32d is not running"
  [[ -z $(STUB_FAIL=1 complete_words stm32ctl -l "") ]] ||
    fail "the completion offered link names although stm32ctl links failed"
  echo "ok: no daemon: no names, no noise"
}

# ---- install ----

# Where the completion goes, as docs/meson.build decides it.
completions_dir() {
  local option=${STM32_BASH_COMPLETIONS_DIR-} prefix=$STM32_PREFIX datadir=$STM32_DATADIR dir
  [[ $datadir == /* ]] || datadir=$prefix/$datadir
  if [[ $option == no ]]; then
    return
  elif [[ -n $option ]]; then
    echo "$option"
  elif pkg-config --exists bash-completion; then
    dir=$(pkg-config --define-variable=prefix="$prefix" --variable=completionsdir bash-completion)
    [[ $dir == "$prefix"* ]] ||
      dir=$(pkg-config --define-variable=datadir="$datadir" --variable=completionsdir bash-completion)
    echo "$dir"
  else
    echo "$datadir/bash-completion/completions"
  fi
}

mode_install() {
  need pkg-config
  [[ -n ${MESON:-} ]] || skip "meson not found"
  local build=${STM32_BUILDDIR:?} prefix=${STM32_PREFIX:?} mandir=${STM32_MANDIR:?} page dir
  [[ $mandir == /* ]] || mandir=$prefix/$mandir
  # The install plan says where each file goes, without building or installing anything.
  "$MESON" introspect --installed "$build" >"$tmp/installed.json"
  # Prints "destination" for the source file $1 (empty if it is not installed).
  installed_as() {
    python3 -c '
import json, os, sys
plan = json.load(open(sys.argv[1]))
for source, dest in plan.items():
    if os.path.realpath(source) == os.path.realpath(sys.argv[2]):
        print(dest)
' "$tmp/installed.json" "$1"
  }
  need python3
  for page in "${pages[@]}"; do
    dir=$mandir/man${page##*.}
    [[ $(installed_as "$src/docs/$page") == "$dir/$page" ]] ||
      fail "$page: want $dir/$page, installed: $(installed_as "$src/docs/$page")"
    echo "installed: $dir/$page"
  done
  dir=$(completions_dir)
  local got
  got=$(installed_as "$src/cli/stm32ctl.bash-completion")
  if [[ -z $dir ]]; then
    [[ -z $got ]] || fail "the completion is installed to $got although its option is 'no'"
    echo "not installed (option 'no'): bash completion"
  else
    # bash-completion finds a completion by the command's name.
    [[ $got == "$dir/stm32ctl" ]] || fail "completion: want $dir/stm32ctl, installed: ${got:-nowhere}"
    echo "installed: $dir/stm32ctl"
  fi
}

case ${1:-} in
  man) mode_man ;;
  stm32ctl) mode_stm32ctl ;;
  stm32d) mode_stm32d ;;
  conf) mode_conf ;;
  completion) mode_completion ;;
  install) mode_install ;;
  sim) mode_sim ;;
  *)
    echo "usage: $0 man|stm32ctl|stm32d|conf|completion|install|sim" >&2
    exit 2
    ;;
esac
