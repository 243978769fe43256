#!/usr/bin/env bash
# The compat runner: the Test::Nginx suites of the libraries ngx.ipc's drop-ins
# stand in for, run as they are (`real`) and rewritten to load the drop-ins
# (`ours`), compared assertion by assertion. docs/compat.md has the details.
#
#   PEERS=/path/to/checkouts t/compat/run.sh        (or: make compat PEERS=...)
#
# PEERS          folder of checkouts named after their repositories: test-nginx,
#                lua-resty-events, lua-resty-worker-events, lua-resty-mlcache,
#                lua-resty-healthcheck, and healthcheck's dependencies
#                (lua-resty-timer, Penlight, lua-resty-lock); an optional
#                lua-resty-worker-events-1.0.0 is used for healthcheck
# COMPAT_NGINX   space-separated `label=/path/to/nginx[:/extra/module.so...]`
#                (default `debian=/usr/sbin/nginx`); Debian's dynamic lua
#                modules are loaded first when lua is not compiled in
# COMPAT_LIBS    libraries to run (default: every t/compat/<lib>/ folder)
# COMPAT_FILES   only these .t files (names or paths, space-separated)
# COMPAT_MODES   `real ours` (default) or one of them
# COMPAT_SCRATCH scratch folder (default: a new /tmp/ngx-ipc-compat.XXXXXX, kept)
# COMPAT_TEST_TIMEOUT  TEST_NGINX_TIMEOUT, seconds per request (default 10)
# COMPAT_FILE_TIMEOUT  seconds per .t file before it is killed (default 900)
# COMPAT_RETRIES       reruns in `ours` mode of a file with a regression; what
#                      passes on a rerun is counted flaky, not lost (default 1)
# COMPAT_WORKER_USER   worker user when run as root (default `nobody nogroup`)
# COMPAT_LOCK    prefix of the lock taken around each .t file so that no two
#                runners run one library's suite at once: each suite listens
#                on fixed ports (default /tmp/ngx-ipc-compat; <prefix>.<lib>.lock)
#
# The last line is `N passed, N failed`: assertions that pass with `real` and
# with `ours`, and those that pass with `real` only and are not excused by
# t/compat/<lib>/skip. The exit code is non-zero when N failed > 0.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

die() { echo "compat: $*" >&2; exit 2; }

[[ -n "${PEERS:-}" ]] || die "PEERS is not set (a folder of checkouts, see docs/compat.md)"
PEERS=$(cd "$PEERS" 2>/dev/null && pwd) || die "PEERS: no such folder"
[[ -f "$PEERS/test-nginx/lib/Test/Nginx/Socket/Lua.pm" ]] ||
  die "no Test::Nginx in $PEERS/test-nginx"
command -v prove >/dev/null || die "prove is missing"
[[ -f "$ROOT/lib/ngx_ipc_shim.so" ]] || die "no lib/ngx_ipc_shim.so: run make shim"

NGINXES=${COMPAT_NGINX:-debian=/usr/sbin/nginx}
MODES=${COMPAT_MODES:-real ours}
TEST_TIMEOUT=${COMPAT_TEST_TIMEOUT:-10}
FILE_TIMEOUT=${COMPAT_FILE_TIMEOUT:-900}
RETRIES=${COMPAT_RETRIES:-1}
LOCK=${COMPAT_LOCK:-/tmp/ngx-ipc-compat}
if [[ -n "${COMPAT_LIBS:-}" ]]; then
  LIBS=$COMPAT_LIBS
else
  LIBS=$(cd t/compat && for d in */; do [[ -d "$d" ]] && printf '%s ' "${d%/}"; done)
fi
[[ -n "${LIBS// /}" ]] || die "no library: no t/compat/<lib>/ folder and COMPAT_LIBS is empty"

if [[ -n "${COMPAT_SCRATCH:-}" ]]; then
  SCRATCH=$COMPAT_SCRATCH; mkdir -p "$SCRATCH" || die "cannot create $SCRATCH"
else
  SCRATCH=$(mktemp -d /tmp/ngx-ipc-compat.XXXXXX) || die "mktemp failed"
fi
SCRATCH=$(cd "$SCRATCH" && pwd)

# nginx drops root for its workers; as root, run them as an ordinary user so
# that a drop-in which needs root privileges in a worker shows up here
WORKER_USER=
if [[ $(id -u) -eq 0 ]]; then
  WORKER_USER=${COMPAT_WORKER_USER:-nobody nogroup}
fi
# everything the workers read must be reachable by that user
chmod 0755 "$SCRATCH"

# a port with the three next ones free (Test::Nginx uses port+1..3 for stream)
free_port() {
  perl -MIO::Socket::INET -e '
    for (1 .. 200) {
      my $p = 20000 + int(rand(40000)); my @s;
      for my $q ($p .. $p + 3) {
        my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $q,
                                      Proto => "tcp", Listen => 1, ReuseAddr => 1)
          or last;
        push @s, $s;
      }
      if (@s == 4) { print $p; exit 0 }
    }
    exit 1'
}

# load_module lines: Debian's ndk + lua when lua is not compiled in, then extras
modules_for() {
  local bin=$1 extras=$2 v mods=""
  v=$("$bin" -V 2>&1) || die "$bin -V failed"
  if ! grep -q -- 'lua-nginx-module\|http_lua' <<<"$v"; then
    local mdir
    mdir=$(sed -n 's/.*--modules-path=\([^ ]*\).*/\1/p' <<<"$v")
    mdir=${mdir:-/usr/lib/nginx/modules}
    [[ -f "$mdir/ngx_http_lua_module.so" ]] || die "$bin has no lua module ($mdir)"
    mods="$mdir/ndk_http_module.so $mdir/ngx_http_lua_module.so"
  fi
  local m
  for m in ${extras//:/ }; do
    [[ -f "$m" ]] || die "module $m not found"
    mods="$mods $m"
  done
  echo "${mods# }"
}

# Lua paths of the helper libraries, and of the four real libraries in `real`
# mode only: in `ours` mode a require that map.sed missed must fail, not find
# the real library. The tests' own lua_package_path puts the library under
# test (its copy in the scratch folder) first; these come in at ";;".
lua_paths() {
  local lib=$1 mode=$2 p="" we=lua-resty-worker-events
  # lua-resty-healthcheck accepts only worker-events 1.0.0 (_VERSION 0.3.3)
  [[ $lib == lua-resty-healthcheck && -d "$PEERS/$we-1.0.0" ]] && we=$we-1.0.0
  local d
  for d in lua-resty-timer/lib lua-resty-lock/lib Penlight/lua; do
    [[ -d "$PEERS/$d" ]] && p="$p$PEERS/$d/?.lua;$PEERS/$d/?/init.lua;"
  done
  if [[ $mode == real ]]; then
    for d in lua-resty-events/lualib "$we/lib" lua-resty-mlcache/lib lua-resty-healthcheck/lib; do
      [[ -d "$PEERS/$d" ]] && p="$p$PEERS/$d/?.lua;$PEERS/$d/?/init.lua;"
    done
  fi
  echo "$ROOT/build/?.lua;$ROOT/build/?/init.lua;$p;"
}

# stop an nginx left running by a killed .t file: only the one of this servroot
stop_leftover() {
  local servroot=$1 pid
  pid=$(cat "$servroot/logs/nginx.pid" 2>/dev/null) || return 0
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$servroot"; then
    kill "$pid" 2>/dev/null; sleep 1; kill -9 "$pid" 2>/dev/null
  fi
  return 0
}

# TAP of one .t file -> "<status>\t<description>" lines, status ok|fail|skip;
# a description seen twice (repeat_each) gets " #2"; planned assertions that
# never ran are one "fail" line each
tap_results() {
  awk '
    /^[[:space:]]*1\.\.[0-9]+/ { sub(/^[[:space:]]*1\.\./, ""); planned = $0 + 0; next }
    /^[[:space:]]*(not )?ok [0-9]+/ {
      line = $0; sub(/^[[:space:]]*/, "", line)
      st = "ok"; if (line ~ /^not /) { st = "fail"; sub(/^not /, "", line) }
      sub(/^ok [0-9]+ ?(- )?/, "", line)
      if (line ~ /# *(SKIP|skip|TODO|todo)/) st = "skip"
      sub(/[[:space:]]*# *(SKIP|skip|TODO|todo).*$/, "", line)
      n[line]++; if (n[line] > 1) line = line " #" n[line]
      ran++; print st "\t" line; next
    }
    END { for (i = ran + 1; i <= planned; i++) print "fail\t(planned assertion " i " never ran)" }
  ' "$1"
}

# copy the library into $out/lib; in `ours` mode rewrite it (map.sed, setup.sh)
prepare() {
  local lib=$1 label=$2 bin=$3 mode=$4 out=$5
  rm -rf "$out"; mkdir -p "$out/logs"
  cp -R "$PEERS/$lib" "$out/lib" || die "cannot copy $PEERS/$lib"
  rm -rf "$out/lib/.git" "$out/lib/t/servroot"*
  local cdir="$ROOT/t/compat/$lib"
  if [[ $mode == ours && -f "$cdir/map.sed" ]]; then
    sed -e "s#@IPC_BUILD@#$ROOT/build#g" -e "s#@IPC_LIB@#$ROOT/lib#g" \
        -e "s#@PEERS@#$PEERS#g" "$cdir/map.sed" >"$out/map.sed"
    find "$out/lib/t" -type f \( -name '*.t' -o -name '*.pm' \) \
         -exec sed -i -f "$out/map.sed" {} + || die "$lib: map.sed failed"
  fi
  if [[ $mode == ours && -x "$cdir/setup.sh" ]]; then
    (cd "$out/lib" && COMPAT_LIB=$lib COMPAT_LABEL=$label COMPAT_NGINX_BIN=$bin \
       IPC_BUILD=$ROOT/build IPC_LIB=$ROOT/lib PEERS=$PEERS "$cdir/setup.sh") \
      >"$out/logs/setup.log" 2>&1 || die "$lib: setup.sh failed (see $out/logs/setup.log)"
  fi
  chmod -R a+rX "$out"
}

# the .t files of the copy in $1, as COMPAT_FILES limits them
test_files() {
  local f w
  for f in $(cd "$1/lib" && find t -name '*.t' -type f | sort); do
    if [[ -n "${COMPAT_FILES:-}" ]]; then
      for w in $COMPAT_FILES; do
        [[ $f == "$w" || $(basename "$f") == "$w" ]] && { echo "$f"; break; }
      done
    else
      echo "$f"
    fi
  done
}

# run .t files of the copy in $out; results appended to $results, logs named
# <file><suffix>.tap and <file><suffix>.error.log
run_files() {
  local lib=$1 bin=$2 mods=$3 mode=$4 out=$5 results=$6 suffix=$7; shift 7
  # a short servroot: the suites put unix sockets in it (108 bytes at most)
  local short f
  short=$(mktemp -d /tmp/ncx.XXXXXX) || die "mktemp failed"
  chmod 0755 "$short"
  CUR_SHORT=$short
  for f in "$@"; do
    local servroot="$short/s" log="$out/logs/${f//\//_}$suffix.tap" port rc
    port=$(free_port) || die "no free port"
    (
      cd "$out/lib" || exit 2
      export TEST_NGINX_BINARY=$bin TEST_NGINX_LOAD_MODULES=$mods \
             TEST_NGINX_SERVROOT=$servroot TEST_NGINX_PORT=$port \
             TEST_NGINX_SERVER_PORT=$port TEST_NGINX_TIMEOUT=$TEST_TIMEOUT \
             TEST_NGINX_IPC_BUILD=$ROOT/build TEST_NGINX_IPC_LIB=$ROOT/lib \
             LUA_PATH="$(lua_paths "$lib" "$mode")" LUA_CPATH="$ROOT/lib/?.so;;"
      unset TEST_NGINX_RANDOMIZE TEST_NGINX_USE_HUP TEST_NGINX_NO_CLEAN
      [[ -n $WORKER_USER ]] && export TEST_NGINX_WORKER_USER=$WORKER_USER
      exec 9>>"$LOCK.$lib.lock"
      flock 9
      timeout -k 10 "$FILE_TIMEOUT" prove -v -I"$PEERS/test-nginx/lib" "$f"
    ) >"$log" 2>&1
    rc=$?
    stop_leftover "$servroot"
    # the error log of the file's last TEST, often what explains a failure
    cp "$servroot/logs/error.log" "${log%.tap}.error.log" 2>/dev/null
    [[ $rc -eq 124 || $rc -eq 137 ]] && echo "# $f killed after ${FILE_TIMEOUT}s" >>"$log"
    tap_results "$log" | sed "s#^\([a-z]*\)\t#\1\t$f\t#" >>"$results"
  done
  rm -rf "$short"
  CUR_SHORT=
}

# "file<TAB>description" of each assertion excused by t/compat/<lib>/skip
# (lines: <file> <TEST number or *> <reason>)
excused() {
  local skip=$1 list=$2
  [[ -f $skip ]] || return 0
  awk -F'\t' -v skipfile="$skip" '
    BEGIN {
      while ((getline l < skipfile) > 0) {
        if (l ~ /^[[:space:]]*(#|$)/) continue
        split(l, a, /[[:space:]]+/)
        if (a[3] == "") { print "compat: skip line without a reason: " l > "/dev/stderr"; continue }
        f[++k] = a[1]; t[k] = a[2]
      }
    }
    {
      for (i = 1; i <= k; i++) {
        file = $1; base = file; sub(/.*\//, "", base)
        if (f[i] != file && f[i] != base) continue
        if (t[i] == "*" || $2 ~ ("TEST " t[i] "[:( ]")) { print; break }
      }
    }' "$list"
}

# an interrupted run leaves no nginx and no servroot behind
CUR_SHORT=
trap '[[ -n $CUR_SHORT ]] && { stop_leftover "$CUR_SHORT/s"; rm -rf "$CUR_SHORT"; }' EXIT
trap 'exit 130' INT TERM

total_pass=0
total_fail=0
echo "compat: scratch $SCRATCH"
for lib in $LIBS; do
  [[ -d "$PEERS/$lib/t" ]] || die "no $PEERS/$lib/t"
  for entry in $NGINXES; do
    label=${entry%%=*}; spec=${entry#*=}; bin=${spec%%:*}; extras=
    [[ $spec == *:* ]] && extras=${spec#*:}
    [[ -x $bin ]] || die "$label: $bin is not executable"
    mods=$(modules_for "$bin" "$extras") || exit 2
    base="$SCRATCH/$lib.$label"
    for mode in $MODES; do
      echo "compat: $lib on $label, $mode"
      prepare "$lib" "$label" "$bin" "$mode" "$base.$mode"
      : >"$base.$mode/results"
      run_files "$lib" "$bin" "$mods" "$mode" "$base.$mode" "$base.$mode/results" "" \
        $(test_files "$base.$mode")
    done
    line="$lib on $label:"
    for mode in $MODES; do
      p=$(grep -c '^ok' "$base.$mode/results"); f=$(grep -c '^fail' "$base.$mode/results")
      files=$(cut -f2 "$base.$mode/results" | sort -u | grep -c .)
      line="$line $mode $p passed, $f failed ($files files);"
    done
    echo "$line"
    if [[ " $MODES " == *" real "* && " $MODES " == *" ours "* ]]; then
      grep '^ok' "$base.real/results" | cut -f2- | sort >"$base.real.pass"
      grep '^ok' "$base.ours/results" | cut -f2- | sort >"$base.ours.pass"
      comm -23 "$base.real.pass" "$base.ours.pass" >"$base.lost"
      # the suites have timing-sensitive tests: a file with a lost assertion
      # runs again in `ours` mode; what passes on a rerun is flaky, not lost
      : >"$base.ours/results.rerun"; : >"$base.ours.repass"
      cp "$base.lost" "$base.lost.first"
      for ((try = 1; try <= RETRIES; try++)); do
        [[ -s "$base.lost" ]] || break
        run_files "$lib" "$bin" "$mods" ours "$base.ours" "$base.ours/results.rerun" \
          ".rerun$try" $(cut -f1 "$base.lost" | sort -u)
        grep '^ok' "$base.ours/results.rerun" | cut -f2- | sort -u >"$base.ours.repass"
        comm -23 "$base.lost" "$base.ours.repass" >"$base.lost.next"
        mv "$base.lost.next" "$base.lost"
      done
      flaky=$(comm -12 "$base.lost.first" "$base.ours.repass" | grep -c .)
      excused "$ROOT/t/compat/$lib/skip" "$base.lost" | sort >"$base.excused"
      comm -23 "$base.lost" "$base.excused" >"$base.regressions"
      held=$(comm -12 "$base.real.pass" "$base.ours.pass" | grep -c .)
      nreg=$(grep -c . "$base.regressions"); nexc=$(grep -c . "$base.excused")
      echo "  $held pass with both; $nreg regressions; $nexc excused by t/compat/$lib/skip;" \
           "${flaky:-0} passed with ours only on a rerun"
      cut -f2- "$base.regressions" | sed 's/^/  REGRESSION /'
      total_pass=$((total_pass + held + flaky)); total_fail=$((total_fail + nreg))
    elif [[ " $MODES " == *" real "* ]]; then
      total_pass=$((total_pass + $(grep -c '^ok' "$base.real/results")))
    else
      total_pass=$((total_pass + $(grep -c '^ok' "$base.ours/results")))
    fi
  done
done
echo "compat: logs in $SCRATCH/<lib>.<nginx>.<mode>/logs"
echo "$total_pass passed, $total_fail failed"
[[ $total_fail -eq 0 ]]
