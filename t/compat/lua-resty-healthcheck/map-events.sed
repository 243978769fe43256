# lua-resty-healthcheck's t/with_resty-events suite, rewritten to load
# ngx.ipc.events.compat where it loads lua-resty-events' resty.events.compat
# (the with_worker-events part has its own map). setup-events.sh makes the same
# change in the library's own lib/resty/healthcheck.lua.
s#require *(\? *\(["']\)resty\.events\.compat\1 *)\?#require("ngx.ipc.events.compat")#g
