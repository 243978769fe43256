local compat = require("ngx.ipc.dropin.events_compat")
local ____exports = compat
return ____exports
