local ____exports = {}
local run_handler, dispatch, sender_remote, handlers
local cluster_ = require("ngx.ipc.cluster")
local dispatch_ = require("ngx.ipc.dispatch")
local loop = require("ngx.ipc.loop")
local shim = require("ngx.ipc.shim")
function run_handler(name, data, from, id, instance, remote)
    local handler = handlers[name]
    if handler == nil then
        return
    end
    ____exports.sender = from
    ____exports.sender_id = id
    ____exports.sender_instance = instance
    sender_remote = remote
    local ok, err = xpcall(handler, debug.traceback, data)
    ____exports.sender = nil
    ____exports.sender_id = nil
    ____exports.sender_instance = nil
    sender_remote = false
    if not ok then
        ngx.log(
            ngx.ERR,
            ((("ngx.ipc: handler for alert \"" .. name) .. "\" from worker ") .. tostring(from)) .. " failed: ",
            tostring(err)
        )
    end
end
function dispatch(from, name, data)
    if string.sub(name, 1, 1) == dispatch_.RESERVED then
        local fn = dispatch_.reserved_handler(name)
        if fn ~= nil then
            fn(from, data)
        end
        return
    end
    run_handler(
        name,
        data,
        from,
        nil,
        nil,
        false
    )
end
--- The longest alert name: its length travels in one byte, 255 is reserved.
local MAX_NAME = 254
--- The longest alert data: LuaJIT's longest string (LJ_MAX_STR - 1, on Debian's
-- luajit2 and OpenResty's alike), since the receiver gets the data as one string.
local MAX_DATA = 2147483391
--- The largest pid a pipe can be named after (pid_t is a signed 32-bit number).
local MAX_PID = 2147483647
--- Inside a receive handler: the sending worker's pid; nil at all other times.
____exports.sender = nil
____exports.sender_id = nil
____exports.sender_instance = nil
sender_remote = false
--- Alerts across hosts (./ipc/cluster).
____exports.cluster = {configure = cluster_.configure, broadcast = cluster_.broadcast}
--- The smallest backlog the shim accepts, in bytes.
local MIN_BACKLOG = 65536
handlers = {}
local started = false
--- What ipc.configure set, kept until the worker joins (configure may run in the
-- master); 0 leaves the shim's default.
local settings = {send_backlog = 0, receive_backlog = 0}
local function bad_argument(fn, n, expected, got)
    error(
        ((((((("bad argument #" .. tostring(n)) .. " to '") .. fn) .. "' (") .. expected) .. " expected, got ") .. type(got)) .. ")",
        4
    )
end
local function check_string(fn, n, value)
    local t = type(value)
    if t == "string" then
        return value
    end
    if t == "number" then
        return tostring(value)
    end
    bad_argument(fn, n, "string", value)
end
local function check_pid(fn, value)
    local t = type(value)
    local ____temp_0
    if t == "number" or t == "string" then
        ____temp_0 = tonumber(value)
    else
        ____temp_0 = nil
    end
    local pid = ____temp_0
    if pid == nil then
        bad_argument(fn, 1, "number", value)
    end
    return pid
end
local function check_handler(n, value)
    if value ~= nil and type(value) ~= "function" then
        bad_argument("receive", n, "function", value)
    end
end
--- Checks the whole table form of receive before anything changes.
local function check_handlers(list)
    for key, fn in pairs(list) do
        local kt = type(key)
        if kt ~= "string" and kt ~= "number" then
            bad_argument("receive", 1, "table of name = function", key)
        end
        if type(fn) ~= "function" then
            bad_argument("receive", 1, "table of name = function", fn)
        end
    end
end
--- Joins the worker to the instance on first use; refuses the master (init_by_lua*).
local function start(fn)
    if started then
        return
    end
    if ngx.get_phase() == "init" then
        error(("ngx.ipc: " .. fn) .. " cannot be used in init_by_lua*; use init_worker_by_lua* or a later phase", 3)
    end
    local ok, err = loop.start(dispatch)
    if ok == nil then
        error(err, 3)
    end
    shim.configure(settings.send_backlog, settings.receive_backlog)
    started = true
    cluster_.joined()
end
cluster_.attach(start)
local function limits(name, data)
    if #name > MAX_NAME then
        return ("alert name is longer than " .. tostring(MAX_NAME)) .. " bytes"
    end
    if #data > MAX_DATA then
        return ("alert data is longer than " .. tostring(MAX_DATA)) .. " bytes (the longest LuaJIT string)"
    end
    return nil
end
local function send_checked(pid, name, data)
    local err = limits(name, data)
    if err ~= nil then
        return nil, err
    end
    if pid < 1 or pid > MAX_PID or pid % 1 ~= 0 then
        return nil, "no such worker: " .. tostring(pid)
    end
    return shim.send(pid, name, data)
end
--- Sends an alert to one worker of this nginx instance (itself included).
function ____exports.send(pid, name, data)
    local p = check_pid("send", pid)
    local n = check_string("send", 2, name)
    local d = check_string("send", 3, data)
    start("send")
    return send_checked(p, n, d)
end
--- Sends an alert to every worker of this nginx instance, the sender included.
function ____exports.broadcast(name, data)
    local n = check_string("broadcast", 1, name)
    local d = check_string("broadcast", 2, data)
    start("broadcast")
    local err = limits(n, d)
    if err ~= nil then
        return nil, err
    end
    return shim.broadcast(n, d)
end
--- Inside a receive handler: sends an alert back to the worker that sent this one.
function ____exports.reply(name, data)
    local n = check_string("reply", 1, name)
    local d = check_string("reply", 2, data)
    if ____exports.sender == nil then
        error("ngx.ipc: reply can only be used inside a receive handler", 2)
    end
    if sender_remote then
        return nil, ("ngx.ipc: reply: the alert came from another nginx instance (" .. tostring(____exports.sender_instance)) .. ")"
    end
    return send_checked(____exports.sender, n, d)
end
--- Registers `handler` for alerts named `name`; a nil handler deletes it. A table
-- registers several: `receive{ name = handler, ... }`.
function ____exports.receive(name, handler)
    if type(name) == "table" then
        local list = name
        check_handlers(list)
        start("receive")
        for key, fn in pairs(list) do
            handlers[tostring(key)] = fn
        end
        return true
    end
    local n = check_string("receive", 1, name)
    check_handler(2, handler)
    start("receive")
    if handler == nil then
        handlers[n] = nil
    else
        handlers[n] = handler
    end
    return true
end
local function check_settings(options)
    if type(options) ~= "table" then
        bad_argument("configure", 1, "table", options)
    end
    for key, value in pairs(options) do
        if key ~= "send_backlog" and key ~= "receive_backlog" then
            error(
                ("bad argument #1 to 'configure' (unknown option '" .. tostring(key)) .. "')",
                3
            )
        end
        if type(value) ~= "number" or value % 1 ~= 0 or value < MIN_BACKLOG then
            error(
                ((("bad argument #1 to 'configure' (" .. key) .. " must be a whole number of bytes, at least ") .. tostring(MIN_BACKLOG)) .. ")",
                3
            )
        end
    end
end
--- Sets this worker's caps: `send_backlog`, the bytes queued for one destination
-- before send refuses; `receive_backlog`, twice the bytes of complete alerts held
-- for handlers before reading pauses (nothing that arrives is dropped for it; an
-- alert to oneself is refused past it). Usable in every phase,
-- init_by_lua* included (then every worker inherits it).
function ____exports.configure(options)
    check_settings(options)
    local o = options
    settings.send_backlog = o.send_backlog or settings.send_backlog
    settings.receive_backlog = o.receive_backlog or settings.receive_backlog
    if started then
        shim.configure(settings.send_backlog, settings.receive_backlog)
    end
    return true
end
local function zero_counters()
    local zero = {}
    for ____, name in ipairs(shim.COUNTERS) do
        zero[name] = 0
    end
    return zero
end
--- This worker's counters; all zero before the worker has joined.
function ____exports.stats()
    local c = started and shim.counters() or zero_counters()
    return {
        alerts_sent = c.alerts_sent,
        bytes_sent = c.bytes_sent,
        writes = c.writes,
        alerts_received = c.alerts_received,
        bytes_received = c.bytes_received,
        send_queued = c.send_queued,
        receive_ready = c.receive_ready,
        receive_partial = c.receive_partial,
        backlog = started and shim.backlog() or ({}),
        refused = {send_backlog = c.refused_backlog, no_worker = c.refused_no_worker},
        dropped = {
            corrupt_packets = c.packets_discarded,
            corrupt_bytes = c.bytes_discarded,
            truncated = c.alerts_truncated,
            exited = c.lost_exited,
            out_of_memory = c.dropped_memory
        },
        cluster = cluster_.stats()
    }
end
dispatch_.bind(run_handler)
return ____exports
