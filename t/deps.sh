#!/usr/bin/env bash
# Install what building, the demo and the tests need on Debian 12 (run as root).
# Idempotent and quick when everything is already there: apt is only touched
# when a package is missing, npm only when node_modules is.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  nginx-light libnginx-mod-http-lua lua-resty-core   # the OpenResty-like runtime
  luajit2 lua-busted lua-socket luarocks  # test runner and its libs
  curl procps make gcc libc6-dev perl git             # shim build, prove, demo
  gdb                                                 # backtrace of a crashed worker's core
  zip                                                 # make dist (the source rock)
  clang libclang-rt-14-dev                            # libFuzzer (make fuzz)
  redis-server redis-sentinel                         # cluster specs and bench (t/lib/redis.lua)
)

missing=()
for p in "${PKGS[@]}"; do
  st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  [[ "$st" == ii* ]] || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "deps.sh: missing packages (${missing[*]}) and not root: install them first" >&2
    exit 1
  fi
  echo "deps.sh: installing ${missing[*]}"
  # Keep Debian's nginx and redis services from starting (and binding ports 80
  # and 6379) during install.
  policy=/usr/sbin/policy-rc.d
  created_policy=
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    created_policy=1
  fi
  trap 'if [[ -n $created_policy ]]; then rm -f "$policy"; fi' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Should the package's service have started anyway, stop it: the tests run their
# own nginx masters and nothing must hold port 80 or /run/nginx.pid.
if [[ -s /run/nginx.pid ]]; then
  pid=$(cat /run/nginx.pid 2>/dev/null || true)
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null &&
     tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q '^nginx: master'; then
    echo "deps.sh: stopping the system nginx service (pid $pid)"
    if command -v service >/dev/null 2>&1; then service nginx stop >/dev/null 2>&1 || true; fi
    kill -QUIT "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
fi
if command -v update-rc.d >/dev/null 2>&1 && [[ -e /etc/init.d/nginx ]] && [[ -n "${missing[*]:-}" ]]; then
  update-rc.d nginx disable >/dev/null 2>&1 || true
fi

# The same for redis: the cluster specs start their own redis-server on free
# ports, each with its own directory; the system one must not run (it would
# hold 6379 and /var/lib/redis for nothing).
if [[ -s /run/redis/redis-server.pid ]]; then
  pid=$(cat /run/redis/redis-server.pid 2>/dev/null || true)
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null &&
     tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q '^/usr/bin/redis-server'; then
    echo "deps.sh: stopping the system redis service (pid $pid)"
    if command -v service >/dev/null 2>&1; then service redis-server stop >/dev/null 2>&1 || true; fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
fi
for svc in redis-server redis-sentinel; do
  if command -v update-rc.d >/dev/null 2>&1 && [[ -e /etc/init.d/$svc ]] && [[ -n "${missing[*]:-}" ]]; then
    update-rc.d "$svc" disable >/dev/null 2>&1 || true
  fi
done

if [[ -f package.json && ! -d node_modules ]]; then
  command -v npm >/dev/null || { echo "deps.sh: npm not found (Node.js is required to build build/ from src/)" >&2; exit 1; }
  echo "deps.sh: npm ci"
  npm ci --no-audit --no-fund
fi
