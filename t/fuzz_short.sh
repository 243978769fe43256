#!/usr/bin/env bash
# A short libFuzzer run over the shim's packet decoder (fuzz/decoder_fuzz.c),
# printing TAP for prove:
#   1  the fuzzer builds (clang, -fsanitize=fuzzer,address,undefined)
#   2  every seed of fuzz/corpus replays without a finding
#   3  FUZZ_SECONDS (default 20) of fuzzing without a finding (execs reported)
#
#   t/fuzz_short.sh            FUZZ_SECONDS=60 t/fuzz_short.sh
#   make fuzz                  (the same run, libFuzzer's own output)
set -uo pipefail
cd "$(dirname "$0")/.."

SECONDS_=${FUZZ_SECONDS:-20}
BIN=fuzz/out/decoder_fuzz
tmp=$(mktemp -d /tmp/ngx-ipc-fuzz.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

echo "1..3"
fail=0

diag() { sed 's/^/# /' "$@"; }

if make --no-print-directory -s "$BIN" >"$tmp/build.log" 2>&1; then
  echo "ok 1 - fuzz: building $BIN"
else
  echo "not ok 1 - fuzz: building $BIN (needs clang and libclang-rt-14-dev)"
  diag "$tmp/build.log" | tail -30
  echo "not ok 2 - fuzz: seed corpus replays # SKIP no fuzzer"
  echo "not ok 3 - fuzz: ${SECONDS_} s run # SKIP no fuzzer"
  exit 1
fi

nseeds=$(find fuzz/corpus -type f | wc -l)
if ((nseeds > 0)) && "$BIN" -runs=0 -artifact_prefix="$tmp/" fuzz/corpus >"$tmp/replay.log" 2>&1; then
  echo "ok 2 - fuzz: the $nseeds seeds of fuzz/corpus replay without a finding"
else
  fail=1
  echo "not ok 2 - fuzz: the $nseeds seeds of fuzz/corpus replay without a finding"
  grep -v '^#[0-9]' "$tmp/replay.log" | tail -40 | diag
fi

# from the committed seeds only (new inputs go to a temporary directory), so
# that every test run starts alike; findings are written to fuzz/out/.
# Inputs up to 16 KiB (several packets, any cut): the larger seeds (streams
# longer than the 64 KiB stream buffer) are replayed whole by test 2.
mkdir -p "$tmp/corpus" fuzz/out
"$BIN" -max_total_time="$SECONDS_" -max_len=16384 -artifact_prefix=fuzz/out/ \
  -print_final_stats=1 "$tmp/corpus" fuzz/corpus >"$tmp/run.log" 2>&1
rc=$?
execs=$(awk '/stat::number_of_executed_units/ { print $NF }' "$tmp/run.log")
rate=$(awk '/stat::average_exec_per_sec/ { print $NF }' "$tmp/run.log")
if [[ $rc -eq 0 && -n $execs ]]; then
  echo "ok 3 - fuzz: ${SECONDS_} s, ${execs} executions (${rate} exec/s), no finding"
else
  fail=1
  echo "not ok 3 - fuzz: ${SECONDS_} s run: exit status $rc (reproduce: $BIN <the crash- file named below>)"
  grep -v '^#[0-9]' "$tmp/run.log" | grep -v '^INFO:' | tail -60 | diag
fi

exit $fail
