#!/usr/bin/env bash
# Build everything, check that build/ is what src/ generates, then run the unit
# specs and the integration specs (real nginx masters) under prove.  The last
# line is prove's "Result: PASS|FAIL"; the exit code is non-zero on failure.
#
#   t/run-tests.sh                       # everything
#   t/run-tests.sh t/integration/api_spec.lua ...   # only these spec files
#
# NGX_IPC_T_KEEP=1 keeps the nginx prefixes under /tmp for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

echo "== make shim"
make --no-print-directory shim

echo "== npm run build (build/ must be what src/ generates)"
before=$(mktemp -d /tmp/ngx-ipc-build.XXXXXX)
trap 'rm -rf "$before"' EXIT
cp -R build/. "$before/"
npm run --silent build
drift=
if ! diff -ruN "$before" build >"$before.diff" 2>&1; then
  echo "build/ was not what src/ generates; it has now been regenerated (diff below): review and commit it." >&2
  sed "s#$before#build(before)#g" "$before.diff" >&2
  drift=1
fi
rm -f "$before.diff"
if [[ -n "$(git status --porcelain -- build/ 2>/dev/null)" ]]; then
  if [[ "${CI:-}" == "true" ]]; then
    echo "build/ differs from what is committed:" >&2
    git status --porcelain -- build/ >&2
    git --no-pager diff -- build/ >&2
    drift=1
  else
    echo "note: build/ has uncommitted changes (fine while developing; CI requires them committed):"
    git status --porcelain -- build/
  fi
fi
[[ -z $drift ]] || { echo "FAIL: build/ drift" >&2; exit 1; }

if (($#)); then
  specs=("$@")
else
  shopt -s nullglob
  specs=(t/unit/*_spec.lua t/integration/*_spec.lua)
  specs+=(t/asan_unit.sh t/fuzz_short.sh)
  shopt -u nullglob
fi
((${#specs[@]})) || { echo "no spec files found" >&2; exit 1; }

LPATH="$ROOT/?.lua;$ROOT/build/?.lua;$ROOT/build/?/init.lua;$ROOT/t/lib/?.lua;$ROOT/t/unit/?.lua"
CPATH="$ROOT/lib/?.so"
rm -rf "$before"; trap - EXIT
echo "== prove (${#specs[@]} spec files)"
# each spec file is one busted process under LuaJIT (FFI); the two .sh files
# (unit specs under ASan, a short fuzz run) print TAP themselves
export LPATH CPATH
exec prove -v --timer --exec "$ROOT/t/tap_exec.sh" "${specs[@]}"
