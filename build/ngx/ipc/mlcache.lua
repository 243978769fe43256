local ____exports = {}
do
    local ____mlcache = require("ngx.ipc.dropin.mlcache")
    ____exports.register_listeners = ____mlcache.register_listeners
    ____exports.broadcast = ____mlcache.broadcast
    ____exports.poll = ____mlcache.poll
end
return ____exports
