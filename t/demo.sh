#!/usr/bin/env bash
# Run the canonical example (README/SPEC) on a real nginx with 2 workers and show
# that alerts are delivered and replied to.  The http block is used verbatim
# except `listen 80;` -> `listen 127.0.0.1:<free port>;`; the module is found
# through LUA_PATH/LUA_CPATH (what `luarocks install` makes unnecessary).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
NGINX=${NGINX:-/usr/sbin/nginx}

[[ -f lib/ngx_ipc_shim.so ]] || { echo "demo: lib/ngx_ipc_shim.so is missing: run make shim" >&2; exit 1; }
[[ -f build/ngx/ipc.lua ]] || { echo "demo: build/ngx/ipc.lua is missing: run npm run build" >&2; exit 1; }

bold() { if [[ -t 1 ]]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }

PREFIX=$(mktemp -d /tmp/ngx-ipc-demo.XXXXXX)
chmod 0755 "$PREFIX"
mkdir -p "$PREFIX/conf" "$PREFIX/logs" "$PREFIX/lib"
cp -R build/. "$PREFIX/lib/"
cp lib/ngx_ipc_shim.so "$PREFIX/lib/"
chmod -R a+rX "$PREFIX"
chmod a+rwx "$PREFIX/logs"

# running and not a zombie (the reaper of orphans may be slow to collect them)
alive() {
  local st
  st=$(sed -n 's/^.*) \([A-Z]\).*$/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $st && $st != Z && $st != X ]]
}

MASTER=
cleanup() {
  if [[ -n $MASTER ]] && alive "$MASTER"; then
    kill -TERM "$MASTER" 2>/dev/null || true
    for _ in $(seq 50); do alive "$MASTER" || break; sleep 0.1; done
    kill -KILL "$MASTER" 2>/dev/null || true
    for w in ${WORKERS:-}; do kill -KILL "$w" 2>/dev/null || true; done
  fi
  [[ -n ${NGX_IPC_DEMO_KEEP:-} ]] || rm -rf "$PREFIX"
}
trap cleanup EXIT

# a free port on 127.0.0.1
PORT=$(luajit -e 'local s = require("socket").tcp(); assert(s:bind("127.0.0.1", 0)); local _, p = s:getsockname(); s:close(); print(p)')

# the canonical example, verbatim (the file the tests check against SPEC.md)
CANONICAL=$(cat t/canonical.nginx)

{
  echo "load_module /usr/lib/nginx/modules/ndk_http_module.so;"
  echo "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;"
  echo "worker_processes 2;"
  echo "pid $PREFIX/logs/nginx.pid;"
  echo "error_log $PREFIX/logs/error.log notice;"
  echo "events { worker_connections 1024; }"
  printf '%s\n' "${CANONICAL/listen 80;/listen 127.0.0.1:$PORT;}"
} >"$PREFIX/conf/nginx.conf"

bold "== nginx.conf ($PREFIX/conf/nginx.conf)"
cat "$PREFIX/conf/nginx.conf"
echo

export LUA_PATH="$PREFIX/lib/?.lua;$PREFIX/lib/?/init.lua;;"
export LUA_CPATH="$PREFIX/lib/?.so;;"
bold "== starting nginx (LUA_PATH/LUA_CPATH point at $PREFIX/lib)"
"$NGINX" -p "$PREFIX/" -c "$PREFIX/conf/nginx.conf" -e "$PREFIX/logs/error.log"
for _ in $(seq 100); do
  [[ -s $PREFIX/logs/nginx.pid ]] && break
  sleep 0.05
done
MASTER=$(cat "$PREFIX/logs/nginx.pid")
MASTER_PID=$MASTER
WORKERS=
for _ in $(seq 100); do
  WORKERS=$(pgrep -P "$MASTER" | sort -n | tr '\n' ' ')
  [[ $(wc -w <<<"$WORKERS") -ge 2 ]] && break
  sleep 0.05
done
read -r W1 W2 _ <<<"$WORKERS"
echo "master $MASTER, workers $W1 $W2, listening on 127.0.0.1:$PORT"
echo

URL=http://127.0.0.1:$PORT
# show one request and its response; retried while nginx is still coming up
request() {
  local path=$1 out code
  for _ in $(seq 50); do
    out=$(curl -sS -m 5 -w '\n%{http_code}' "$URL$path" 2>&1) || true
    code=${out##*$'\n'}
    [[ $code == 200 || $2 != retry ]] && break
    sleep 0.1
  done
  echo "\$ curl $URL$path"
  echo "${out%$'\n'*}" | sed '/^$/d; s/^/  /'
  echo "  [HTTP $code]"
  LAST_CODE=$code
}

bold "== a send from whichever worker takes the request to worker $W2"
request "/send/$W2/hi" retry
SEND_CODE=$LAST_CODE
bold "== a broadcast to every worker"
request "/broadcast/hey" retry
BCAST_CODE=$LAST_CODE
bold "== a send to a pid that is no worker of this nginx (the master) fails"
request "/send/$MASTER_PID/lost" once
BOGUS_CODE=$LAST_CODE
echo

LOG=$PREFIX/logs/error.log
alerts() { grep -F '[alert]' "$LOG" | sed 's/, context: ngx.timer$//' | grep -E "$1" || true; }
count() { alerts "$1" | wc -l; }
for _ in $(seq 100); do
  [[ $(count 'sender[0-9]+ says hi$') -ge 1 && $(count 'replied hello to you too. you said hi$') -ge 1 &&
     $(count 'sender[0-9]+ says hey$') -ge 2 && $(count 'replied hello to you too. you said hey$') -ge 2 ]] && break
  sleep 0.05
done

bold "== ALERT lines in error.log"
alerts 'says |replied ' | sed 's/^/  /'
echo

bold "== stopping nginx (nginx -s quit)"
start=$(date +%s%N)
"$NGINX" -p "$PREFIX/" -c "$PREFIX/conf/nginx.conf" -e "$PREFIX/logs/error.log" -s quit
for _ in $(seq 200); do alive "$MASTER" || break; sleep 0.05; done
if alive "$MASTER"; then
  echo "nginx did not stop within 10 s"
else
  ms=$((($(date +%s%N) - start) / 1000000))
  printf 'stopped in %d.%03d s\n' $((ms / 1000)) $((ms % 1000))
  MASTER=
fi
echo

# the verdict
fail=0
check() {
  local what=$1; shift
  if "$@"; then echo "  ok    $what"; else echo "  FAIL  $what"; fail=1; fi
}
has() { [[ $(alerts "$1" | wc -l) -ge ${2:-1} ]]; }
bold "== checks"
check "/send/$W2/hi answered 200" test "$SEND_CODE" = 200
check "worker $W2 logged 'sender<pid> says hi'" has "^[^ ]+ [^ ]+ \[alert\] $W2#.*sender($W1|$W2) says hi$"
check "the reply '$W2 replied hello to you too. you said hi' was logged" has "$W2 replied hello to you too\. you said hi$"
check "/broadcast/hey answered 200" test "$BCAST_CODE" = 200
check "worker $W1 logged 'says hey'" has "\[alert\] $W1#.*sender[0-9]+ says hey$"
check "worker $W2 logged 'says hey'" has "\[alert\] $W2#.*sender[0-9]+ says hey$"
check "replies to hey came back from $W1 and $W2" \
  bash -c "[[ \$(grep -cE '$W1 replied hello to you too\. you said hey(, context: ngx.timer)?\$' '$LOG') -eq 1 &&
              \$(grep -cE '$W2 replied hello to you too\. you said hey(, context: ngx.timer)?\$' '$LOG') -eq 1 ]]"
check "/send/$MASTER_PID/lost answered 500" test "$BOGUS_CODE" = 500
check "nginx stopped" test -z "$MASTER"
echo
if ((fail)); then
  bold "demo FAILED"
  echo "--- error.log ---"; cat "$LOG"
  exit 1
fi
bold "demo passed: alerts were delivered and replied to"
