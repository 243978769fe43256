# lua-resty-events' Test::Nginx files, rewritten to load ngx.ipc's drop-ins
# (t/compat/run.sh applies this in `ours` mode; see skip for what is excused).
#
# The library itself leaves the tests' lua_package_path, so that a require this
# file does not map fails instead of finding the real library.
s#lualib/?/init\.lua;##g
s#lualib/?\.lua;##g
# the public modules
s#require *(\? *\(["']\)resty\.events\.compat\1 *)\?#require("ngx.ipc.events.compat")#g
s#require *(\? *\(["']\)resty\.events\1 *)\?#require("ngx.ipc.events")#g
# lua-resty-events' helper that closes its broker socket in the workers that are
# not the broker: ngx.ipc.events opens no socket, there is nothing to close
s#require *(\? *\(["']\)resty\.events\.disable_listening\1 *)\?#(function() return true end)#g
