local events = require("ngx.ipc.dropin.events")
local ____exports = events
return ____exports
