#!/usr/bin/env bash
# The unit specs (t/unit/*_spec.lua) against a copy of the shim built with
# AddressSanitizer + UndefinedBehaviorSanitizer (lib/asan/ngx_ipc_shim.so),
# under LuaJIT.  Prints TAP for prove: every test of every spec file, renumbered
# and prefixed with "asan:", plus one test per file that fails on a sanitizer
# report (memory error, UB, leak) or a non-zero exit.
#
#   t/asan_unit.sh                        # all unit specs
#   t/asan_unit.sh t/unit/parser_spec.lua # some
#   make asan-unit                        # the same, through make
#
# How it runs LuaJIT (which is not built with ASan):
#   - LD_PRELOAD holds gcc's libasan and the ASan shim itself.  libasan must come
#     first in the process; the shim is preloaded so that the ffi.load in the
#     specs gets the same, never-unloaded copy: at exit LeakSanitizer then still
#     sees the shim's globals (a dlclose'd library would make everything they
#     point to look leaked) and can name the shim's functions in reports.
#   - LUA_INIT removes LD_PRELOAD from LuaJIT's environment once it is running,
#     so the tools the specs start (cc, mkfifo, sh...) run without ASan, and a
#     `luajit` wrapper first in PATH puts it back for the LuaJIT children that
#     some specs start (they load the same shim).
#   - detect_leaks=1: LuaJIT frees its own memory at exit and no suppression is
#     needed; a leak in the shim fails the file.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ASAN_CC=${ASAN_CC:-gcc}
SHIM=$ROOT/lib/asan/ngx_ipc_shim.so

if ! out=$(make --no-print-directory -s ASAN_CC="$ASAN_CC" lib/asan/ngx_ipc_shim.so 2>&1); then
  echo "1..1"
  echo "not ok 1 - asan: building $SHIM"
  printf '%s\n' "$out" | sed 's/^/# /'
  exit 1
fi

LIBASAN=$("$ASAN_CC" -print-file-name=libasan.so)
if [[ ! -e $LIBASAN ]]; then
  echo "1..0 # SKIP no libasan.so for $ASAN_CC"
  exit 0
fi
LIBASAN=$(readlink -f "$LIBASAN")

if (($#)); then
  specs=("$@")
else
  specs=(t/unit/*_spec.lua)
fi

tmp=$(mktemp -d /tmp/ngx-ipc-asan.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin"
PRELOAD="$LIBASAN $SHIM"
cat >"$tmp/bin/luajit" <<EOF
#!/bin/sh
LD_PRELOAD='$PRELOAD' exec /usr/bin/luajit "\$@"
EOF
chmod +x "$tmp/bin/luajit"

LPATH="$ROOT/?.lua;$ROOT/build/?.lua;$ROOT/build/?/init.lua;$ROOT/t/lib/?.lua;$ROOT/t/unit/?.lua"
CPATH="$ROOT/lib/asan/?.so"

export PATH="$tmp/bin:$PATH"
export LUA_INIT='local ffi = require "ffi"; pcall(ffi.cdef, "int unsetenv(const char *name);"); ffi.C.unsetenv("LD_PRELOAD")'
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

n=0
failed=0
lines=()
for spec in "${specs[@]}"; do
  log="$tmp/$(basename "$spec").log"
  mkdir -p "$tmp/run" && NGX_IPC_T_TMP="$tmp/run" LD_PRELOAD="$PRELOAD" timeout -k 10 600 /usr/bin/luajit /usr/bin/busted -o TAP \
    --lpath="$LPATH" --cpath="$CPATH" "$spec" >"$log" 2>&1
  rc=$?
  # the file's own test points, renumbered
  while IFS= read -r line; do
    if [[ $line =~ ^(not\ ok|ok)\ [0-9]+(\ -\ (.*))?$ ]]; then
      n=$((n + 1))
      lines+=("${BASH_REMATCH[1]} $n - asan: $spec: ${BASH_REMATCH[3]}")
      [[ ${BASH_REMATCH[1]} == "ok" ]] || failed=$((failed + 1))
    elif [[ $line == "# "* && ${#lines[@]} -gt 0 ]]; then
      lines+=("$line")
    fi
  done <"$log"
  # the whole file: exit status and sanitizer reports
  n=$((n + 1))
  reports=$(grep -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer|ASan runtime does not come first' "$log" || true)
  if [[ $rc -eq 0 && -z $reports ]]; then
    lines+=("ok $n - asan: $spec: exit status 0, no sanitizer report")
  else
    failed=$((failed + 1))
    lines+=("not ok $n - asan: $spec: exit status $rc$([[ -n $reports ]] && echo ', sanitizer report')")
    # the report itself (or the end of the log) as diagnostics
    if [[ -n $reports ]]; then
      awk '/^(=+|==[0-9]+==ERROR|.*runtime error:)/{p=1} p' "$log" | head -80 | sed 's/^/# /' >"$tmp/diag"
    else
      tail -40 "$log" | sed 's/^/# /' >"$tmp/diag"
    fi
    while IFS= read -r d; do lines+=("$d"); done <"$tmp/diag"
  fi
done

echo "1..$n"
printf '%s\n' "${lines[@]}"
((failed == 0))
