local ____exports = {}
local ____args = require("ngx.ipc.args")
local bad_argument = ____args.bad_argument
local check_string = ____args.check_string
local ipc = require("ngx.ipc")
--- The alert name of every mlcache event (names starting with NUL are the core's).
____exports.ALERT = "ngx.ipc.mlcache"
local WEAK_VALUES = {__mode = "v"}
local channels = {}
--- The purge handlers of instances made before the fork (init_by_lua*): a worker
-- that starts listening late runs them once, since it may have missed
-- invalidations meanwhile (alerts that reached it before it listened, when
-- something else in it had already joined ngx.ipc, had no handler).
local early = setmetatable({}, WEAK_VALUES)
local early_n = 0
local listening = false
local find = string.find
local sub = string.sub
local log = ngx.log
local get_phase = ngx.get_phase
local ERR = ngx.ERR
local function add(channel, fn)
    local list = channels[channel]
    if list == nil then
        list = {
            fns = setmetatable({}, WEAK_VALUES),
            n = 0
        }
        channels[channel] = list
    end
    list.n = list.n + 1
    list.fns[list.n] = fn
end
--- Closes the holes that collected listeners left, keeping the order.
local function compact(channel, list)
    local fns = list.fns
    local kept = 0
    for i = 1, list.n do
        local fn = fns[i]
        if fn ~= nil then
            kept = kept + 1
            if kept ~= i then
                fns[kept] = fn
                fns[i] = nil
            end
        end
    end
    list.n = kept
    if kept == 0 then
        channels[channel] = nil
    end
end
local function call(channel, fn, data)
    local ok, err = pcall(fn, data)
    if not ok then
        log(
            ERR,
            ("ngx.ipc.mlcache: listener of channel \"" .. channel) .. "\" failed: ",
            tostring(err)
        )
    end
end
--- Runs every listener of `channel`; an error in one is logged and the others still run.
local function run(channel, data)
    local list = channels[channel]
    if list == nil then
        return
    end
    local fns = list.fns
    local holes = false
    for i = 1, list.n do
        local fn = fns[i]
        if fn == nil then
            holes = true
        else
            call(channel, fn, data)
        end
    end
    if holes then
        compact(channel, list)
    end
end
local function on_alert(frame)
    local colon = find(frame, ":", 1, true)
    local ____temp_0
    if colon == nil then
        ____temp_0 = nil
    else
        ____temp_0 = tonumber(sub(frame, 1, colon - 1))
    end
    local len = ____temp_0
    if colon == nil or len == nil or len < 0 or len % 1 ~= 0 or colon + len > #frame then
        log(
            ERR,
            ((("ngx.ipc.mlcache: dropped an alert \"" .. ____exports.ALERT) .. "\" that is no mlcache event (") .. tostring(#frame)) .. " bytes)"
        )
        return
    end
    run(
        sub(frame, colon + 1, colon + len),
        sub(frame, colon + len + 1)
    )
end
local function receive()
    ipc.receive(____exports.ALERT, on_alert)
end
--- Starts receiving in this worker, once: true, or nil and why ngx.ipc cannot
-- (tried again at the next call). In init_by_lua* (the master) listeners are only
-- recorded, and every worker inherits them.
local function listen()
    if listening or get_phase() == "init" then
        return true
    end
    local ok, err = pcall(receive)
    if not ok then
        return nil, tostring(err)
    end
    listening = true
    for i = 1, early_n do
        local fn = early[i]
        if fn ~= nil then
            call("(purge of an instance made in init_by_lua)", fn, "")
        end
    end
    early_n = 0
    return true
end
--- Checks the whole table before any listener is added.
local function check_events(events)
    if type(events) ~= "table" then
        bad_argument("register_listeners", 1, "table", events)
    end
    local list = events
    for ____, ev in pairs(list) do
        local e = ev
        if type(ev) ~= "table" or type(e.channel) ~= "string" or type(e.handler) ~= "function" then
            error("bad argument #1 to 'register_listeners' (table of { channel = string, handler = function } expected)", 3)
        end
    end
    return list
end
local function check_timeout(timeout)
    if timeout ~= nil and type(timeout) ~= "number" then
        bad_argument("poll", 1, "number", timeout)
    end
end
--- Registers each `{ channel = ..., handler = ... }` of `events` (mlcache's
-- instance events): the handler runs in every worker, once per broadcast on its
-- channel, as the alert arrives. Several instances may listen to one channel.
function ____exports.register_listeners(events)
    local list = check_events(events)
    local before_fork = get_phase() == "init"
    for key, ev in pairs(list) do
        add(ev.channel, ev.handler)
        if before_fork and key == "purge" then
            early_n = early_n + 1
            early[early_n] = ev.handler
        end
    end
    return listen()
end
--- Sends `data` on `channel` to every worker, this one included: true, or nil and
-- the reason. In init_by_lua* there is no worker yet: nothing to invalidate, true.
function ____exports.broadcast(channel, data)
    local c = check_string("broadcast", 1, channel)
    local d = check_string("broadcast", 2, data)
    if get_phase() == "init" then
        return true
    end
    local ok, err = listen()
    if ok == nil then
        return nil, err
    end
    return ipc.broadcast(
        ____exports.ALERT,
        ((tostring(#c) .. ":") .. c) .. d
    )
end
--- What update() calls: events are handled as they arrive, so there is nothing to
-- catch up with; true. `timeout` (seconds) is checked and ignored.
function ____exports.poll(timeout)
    check_timeout(timeout)
    return listen()
end
return ____exports
