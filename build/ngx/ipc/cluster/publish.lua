local ____exports = {}
local ____args = require("ngx.ipc.args")
local check_string = ____args.check_string
local dispatch = require("ngx.ipc.dispatch")
local resp = require("ngx.ipc.resp")
local ____scripts = require("ngx.ipc.cluster.scripts")
local args_of = ____scripts.args_of
local FLOOR = ____scripts.FLOOR
local PUBLISH = ____scripts.PUBLISH
local run = ____scripts.run
local state = require("ngx.ipc.cluster.state")
local counters = state.counters
--- Alert names travel in one byte locally (ipc.ts's MAX_NAME).
local MAX_NAME = 254
--- Publishers in this worker have made sure the instance's position exists (see FLOOR).
local floor_done = false
--- Phases without cosockets.
local NO_SOCKETS = {}
for ____, p in ipairs({
    "init",
    "init_worker",
    "set",
    "header_filter",
    "body_filter",
    "log",
    "balancer",
    "exit_worker",
    "ssl_session_store"
}) do
    NO_SOCKETS[p] = true
end
local function publish(s, name, data)
    ngx.update_time()
    local t0 = ngx.now()
    local sock, err = resp.connect(s.endpoint, s.timeout_ms, s.timeout_ms)
    if sock == nil then
        return nil, (("ngx.ipc: cluster: cannot reach redis at " .. resp.label(s.endpoint)) .. ": ") .. err
    end
    ngx.update_time()
    local left = s.timeout_ms - math.floor((ngx.now() - t0) * 1000)
    if left < 1 then
        sock:close()
        return nil, ("ngx.ipc: cluster: redis at " .. resp.label(s.endpoint)) .. ": timeout"
    end
    sock:settimeouts(left, left, left)
    if not floor_done then
        local fargs, fcount = args_of("3", s.stream, s.seq_key, state.pos_key)
        local pos, ferr = run(sock, FLOOR, fargs, fcount)
        if pos == nil then
            sock:close()
            return nil, (("ngx.ipc: cluster: redis at " .. resp.label(s.endpoint)) .. ": ") .. ferr
        end
        floor_done = true
    end
    local args, count = args_of(
        "2",
        s.stream,
        s.seq_key,
        s.maxlen,
        state.instance,
        tostring(ngx.worker.pid()),
        tostring(ngx.worker.id() or -1),
        name,
        data
    )
    local id, perr, usable = run(sock, PUBLISH, args, count)
    if id == nil then
        if usable then
            sock:setkeepalive(s.keepalive_ms, s.endpoint.pool_size)
        else
            sock:close()
        end
        return nil, (("ngx.ipc: cluster: redis at " .. resp.label(s.endpoint)) .. ": ") .. perr
    end
    sock:setkeepalive(s.keepalive_ms, s.endpoint.pool_size)
    return true
end
--- Sends an alert to every worker of every instance that shares the stream, this one
-- included. `true` once Redis has it; nil, err when Redis cannot be reached within
-- `timeout` or refuses it, or the alert is over the caps.
function ____exports.broadcast(name, data)
    local n = check_string("broadcast", 1, name)
    local d = check_string("broadcast", 2, data)
    local s = state.settings
    if s == nil then
        error("ngx.ipc: ipc.cluster.broadcast: call ipc.cluster.configure first", 2)
    end
    local phase = ngx.get_phase()
    if NO_SOCKETS[phase] then
        error(("ngx.ipc: ipc.cluster.broadcast cannot be used in " .. phase) .. " (no cosockets there); use ngx.timer.at(0, ...)", 2)
    end
    state.join("cluster.broadcast")
    if dispatch.is_reserved(n) then
        return nil, "alert names starting with a NUL byte are reserved for ngx.ipc"
    end
    if #n > MAX_NAME then
        return nil, ("alert name is longer than " .. tostring(MAX_NAME)) .. " bytes"
    end
    if #d > s.max_data then
        counters.publish_errors = counters.publish_errors + 1
        return nil, ((("alert data is " .. tostring(#d)) .. " bytes, more than max_data (") .. tostring(s.max_data)) .. " bytes) for cluster broadcasts"
    end
    local ok, err = publish(s, n, d)
    if ok == nil then
        counters.publish_errors = counters.publish_errors + 1
        return nil, err
    end
    counters.published = counters.published + 1
    return true
end
return ____exports
