local ____worker_events = require("ngx.ipc.dropin.worker_events")
local create = ____worker_events.create
local V1 = ____worker_events.V1
local worker_events = create(V1)
local ____exports = worker_events
return ____exports
