local worker_events = require("ngx.ipc.dropin.worker_events")
local ____exports = worker_events
return ____exports
