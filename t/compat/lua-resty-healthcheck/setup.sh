#!/bin/sh
# Run in the scratch copy of lua-resty-healthcheck (ours mode).
set -e
# t/with_worker-events: healthcheck requires "resty.worker.events" itself (and
# checks _VERSION "0.3.3"); the tests' lua_package_path has the copy's lib/
# first, where this name now loads ngx.ipc.worker_events
mkdir -p lib/resty/worker
printf '%s\n' '-- ngx.ipc compat: lua-resty-worker-events is ngx.ipc.worker_events here' \
  'return require "ngx.ipc.worker_events"' >lib/resty/worker/events.lua
