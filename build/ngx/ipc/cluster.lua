local ____exports = {}
local ____config = require("ngx.ipc.cluster.config")
local check_options = ____config.check_options
local envelope = require("ngx.ipc.cluster.envelope")
local reader = require("ngx.ipc.cluster.reader")
local state = require("ngx.ipc.cluster.state")
--- Called by ipc.ts once this worker has joined (and by configure): registers the
-- handler of the local alert and, in worker 0, starts the reader.
function ____exports.joined()
    local s = state.settings
    if state.running or s == nil then
        return
    end
    state.start(s)
    envelope.listen((((s.stream .. "\n") .. s.endpoint.pool) .. "\n") .. state.instance)
    if ngx.worker.id() == 0 then
        reader.start()
    end
end
do
    local ____publish = require("ngx.ipc.cluster.publish")
    ____exports.broadcast = ____publish.broadcast
end
do
    local ____state = require("ngx.ipc.cluster.state")
    ____exports.attach = ____state.attach
end
local counters = state.counters
--- Sets where the cluster's Redis is and starts this worker's part (its handler, and
-- the reader in worker 0) when the worker has joined or joins now; in init_by_lua*
-- the workers inherit the settings and start their part when they join.
function ____exports.configure(options)
    local s = check_options(options)
    if state.running then
        error("ngx.ipc: ipc.cluster.configure: this worker's cluster part has started already; configure once, in init_by_lua* or init_worker_by_lua*", 2)
    end
    state.set_settings(s)
    if ngx.get_phase() ~= "init" then
        state.join("cluster.configure")
        ____exports.joined()
    end
    return true
end
function ____exports.stats()
    return {
        running = state.running,
        reader = reader.reading(),
        position = reader.last_relayed(),
        published = counters.published,
        publish_errors = counters.publish_errors,
        received = counters.received,
        relayed = counters.relayed,
        gaps = counters.gaps,
        lost = counters.lost,
        reconnects = counters.reconnects,
        malformed = counters.malformed,
        failovers = counters.failovers,
        failover_lost = counters.failover_lost,
        unreplicated = counters.unreplicated,
        skipped = counters.skipped,
        redelivered = counters.redelivered,
        rewinds = counters.rewinds
    }
end
return ____exports
