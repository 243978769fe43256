#!/bin/sh
# Run by t/compat/run.sh in `ours` mode, in the scratch copy of
# lua-resty-healthcheck: its events_module = "resty.events" loads
# resty.events.compat, which becomes ngx.ipc.events.compat.
set -eu
sed -i -f "$(dirname "$0")/map-events.sed" lib/resty/healthcheck.lua
grep -q 'require("ngx.ipc.events.compat")' lib/resty/healthcheck.lua
