#!/usr/bin/env bash
# The integration specs on real nginx with the shim built with AddressSanitizer +
# UndefinedBehaviorSanitizer (lib/asan/ngx_ipc_shim.so) in every nginx process:
# nginx is not built with ASan, so its libasan is preloaded (LD_PRELOAD) and the
# reports go to a directory read at the end. A report fails the run, as does a
# failed spec. Not part of `make test` (it runs the integration specs a second
# time): `make asan-integration`.
#
#   t/asan_integration.sh                               # every integration spec
#   t/asan_integration.sh t/integration/api_spec.lua    # some
#
# Leak detection is off: nginx leaves its pools to the exit of each process. The
# specs that install the module elsewhere (luarocks, dist, typed) use the shim they
# build there, not this one; large_spec's RSS bound is skipped (ASan holds freed
# memory in quarantine).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ASAN_CC=${ASAN_CC:-gcc}
if ! out=$(make --no-print-directory -s ASAN_CC="$ASAN_CC" lib/asan/ngx_ipc_shim.so 2>&1); then
  printf 'building lib/asan/ngx_ipc_shim.so failed:\n%s\n' "$out" >&2
  exit 1
fi
LIBASAN=$(readlink -f "$("$ASAN_CC" -print-file-name=libasan.so)")
if [[ ! -f $LIBASAN ]]; then
  echo "no libasan.so for $ASAN_CC" >&2
  exit 1
fi

logs=$(mktemp -d /tmp/ngx-ipc-asan-int.XXXXXX)
trap 'rm -rf "$logs"' EXIT
chmod 777 "$logs"   # the workers write there as nobody

export NGX_IPC_T_SHIM=$ROOT/lib/asan/ngx_ipc_shim.so
export NGX_IPC_T_ASAN=1
export NGX_IPC_T_NGINX_ENV="LD_PRELOAD=$LIBASAN ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:log_path=$logs/asan UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan"

if (($#)); then
  specs=("$@")
else
  specs=(t/integration/*_spec.lua)
fi
t/run-tests.sh "${specs[@]}"
rc=$?

shopt -s nullglob
reports=("$logs"/*)
for f in "${reports[@]}"; do
  echo "== sanitizer report $(basename "$f")"
  cat "$f"
done
echo "sanitizer reports from nginx processes: ${#reports[@]}"
if ((${#reports[@]})); then
  rc=1
fi
exit $rc
