local ____worker_events = require("ngx.ipc.dropin.worker_events")
local create = ____worker_events.create
local V2 = ____worker_events.V2
local worker_events = create(V2)
local ____exports = worker_events
return ____exports
