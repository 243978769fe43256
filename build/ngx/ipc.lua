local ____args = require("ngx.ipc.args")
local bad_argument = ____args.bad_argument
local check_string = ____args.check_string
local call_ = require("ngx.ipc.call")
local cluster_ = require("ngx.ipc.cluster")
local dispatch = require("ngx.ipc.dispatch")
local loop = require("ngx.ipc.loop")
local shim = require("ngx.ipc.shim")
--- This release (package.json is the source; `make dist` checks every copy).
local VERSION = "1.0.0"
--- The longest alert name: its length travels in one byte, 255 is reserved.
local MAX_NAME = 254
--- The longest alert data: LuaJIT's longest string (LJ_MAX_STR - 1, on Debian's
-- luajit2 and OpenResty's alike), since the receiver gets the data as one string.
local MAX_DATA = 2147483391
--- The largest pid a pipe can be named after (pid_t is a signed 32-bit number).
local MAX_PID = 2147483647
--- The smallest backlog the shim accepts, in bytes.
local MIN_BACKLOG = 65536
--- How long ipc.call waits for the answer by default, in seconds.
local CALL_TIMEOUT = 5
local started = false
--- What ipc.configure set, kept until the worker joins (configure may run in the
-- master); 0 leaves the shim's default.
local settings = {send_backlog = 0, receive_backlog = 0}
--- A pid or a worker id: a number or a numeric string (ngx.var values are strings).
local function check_number(fn, value)
    local t = type(value)
    local ____temp_0
    if t == "number" or t == "string" then
        ____temp_0 = tonumber(value)
    else
        ____temp_0 = nil
    end
    local n = ____temp_0
    if n == nil then
        bad_argument(fn, 1, "number", value)
    end
    return n
end
local function check_timeout(fn, value)
    if value == nil then
        return CALL_TIMEOUT
    end
    if type(value) ~= "number" or value < 0 then
        bad_argument(fn, 4, "non-negative number", value)
    end
    return value
end
--- Called only from a check_* function that receive calls directly: level 4 is receive's caller.
local function check_unreserved(name)
    if dispatch.is_reserved(name) then
        error("bad argument #1 to 'receive' (names starting with a NUL byte are reserved for ngx.ipc)", 4)
    end
end
local function check_name(value)
    local name = check_string("receive", 1, value)
    check_unreserved(name)
    return name
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
        if kt == "string" then
            check_unreserved(key)
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
    local consumer, err = loop.start(dispatch.run)
    if consumer == nil then
        error(err, 3)
    end
    call_.joined(consumer)
    dispatch.join()
    shim.configure(settings.send_backlog, settings.receive_backlog)
    started = true
    cluster_.joined()
end
cluster_.attach(start)
local function limits(name, data)
    if dispatch.is_reserved(name) then
        return "alert names starting with a NUL byte are reserved for ngx.ipc"
    end
    if #name > MAX_NAME then
        return ("alert name is longer than " .. tostring(MAX_NAME)) .. " bytes"
    end
    if #data > MAX_DATA then
        return ("alert data is longer than " .. tostring(MAX_DATA)) .. " bytes (the longest LuaJIT string)"
    end
    return nil
end
--- To a pid; `name` may be a reserved one (ipc.call's).
local function send_pid(pid, name, data)
    if pid < 1 or pid > MAX_PID or pid % 1 ~= 0 then
        return nil, "no such worker: " .. tostring(pid)
    end
    return shim.send(pid, name, data)
end
--- To a worker id; `name` may be a reserved one (ipc.call_worker's).
local function send_id(id, name, data)
    if id % 1 ~= 0 then
        return nil, "no such worker id: " .. tostring(id)
    end
    return shim.send_worker(id, name, data)
end
local function send_checked(pid, name, data)
    local err = limits(name, data)
    if err ~= nil then
        return nil, err
    end
    return send_pid(pid, name, data)
end
--- Sends an alert to one worker of this nginx instance (itself included).
local function send(pid, name, data)
    local p = check_number("send", pid)
    local n = check_string("send", 2, name)
    local d = check_string("send", 3, data)
    start("send")
    return send_checked(p, n, d)
end
--- Sends an alert to the worker whose ngx.worker.id() is `id` (0 ... count - 1 of
-- this generation), now or once it joins; a replacement of a killed one included.
local function send_worker(id, name, data)
    local i = check_number("send_worker", id)
    local n = check_string("send_worker", 2, name)
    local d = check_string("send_worker", 3, data)
    start("send_worker")
    local err = limits(n, d)
    if err ~= nil then
        return nil, err
    end
    return send_id(i, n, d)
end
--- Sends an alert to one joined worker, taking turns; true and its pid.
local function send_any(name, data)
    local n = check_string("send_any", 1, name)
    local d = check_string("send_any", 2, data)
    start("send_any")
    local err = limits(n, d)
    if err ~= nil then
        return nil, err
    end
    return shim.send_any(n, d)
end
--- Sends an alert to every worker of this nginx instance, the sender included.
local function broadcast(name, data)
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
local function reply(name, data)
    local n = check_string("reply", 1, name)
    local d = check_string("reply", 2, data)
    local to = dispatch.sender()
    if to == nil then
        error("ngx.ipc: reply can only be used inside a receive handler", 2)
    end
    if dispatch.sender_remote() then
        return nil, ((("worker " .. tostring(to)) .. " of nginx instance ") .. tostring(dispatch.sender_instance())) .. " is on another host: reply reaches only this instance's workers"
    end
    return send_checked(to, n, d)
end
--- Where a call may wait for its answer: where ngx.sleep may.
local YIELDING = {}
for ____, phase in ipairs({
    "rewrite",
    "access",
    "content",
    "timer",
    "ssl_cert",
    "ssl_session_fetch",
    "ssl_client_hello",
    "preread"
}) do
    YIELDING[phase] = true
end
local function check_phase(fn)
    local phase = ngx.get_phase()
    if not (YIELDING[phase] ~= nil) then
        error((((("ngx.ipc: " .. fn) .. " cannot be used in the ") .. phase) .. " phase: it waits for the answer, ") .. "which works only where ngx.sleep does (rewrite, access, content, timers, receive handlers)", 3)
    end
end
local function call_checked(fn, send, to, name, data, timeout)
    local t = check_number(fn, to)
    local n = check_string(fn, 2, name)
    local d = check_string(fn, 3, data)
    local seconds = check_timeout(fn, timeout)
    check_phase(fn)
    start(fn)
    local err = limits(n, d)
    if err ~= nil then
        return nil, err
    end
    return call_.call(
        send,
        t,
        n,
        d,
        seconds
    )
end
--- Sends an alert to worker `pid` and waits (yielding) for its handler's answer:
-- what it returns, or nil and a message (its error, "timeout", ...).
local function call(pid, name, data, timeout)
    return call_checked(
        "call",
        send_pid,
        pid,
        name,
        data,
        timeout
    )
end
--- ipc.call addressed by worker id.
local function call_worker(id, name, data, timeout)
    return call_checked(
        "call_worker",
        send_id,
        id,
        name,
        data,
        timeout
    )
end
--- The joined workers of this generation, `{ id = ..., pid = ... }`, sorted by id,
-- then the privileged agent once it has joined, `{ pid = ..., agent = true }`.
local function workers()
    start("workers")
    return shim.workers()
end
--- Registers `handler` for alerts named `name`; a nil handler deletes it. A table
-- registers several: `receive{ name = handler, ... }`.
local function receive(name, handler)
    if type(name) == "table" then
        local list = name
        check_handlers(list)
        start("receive")
        for key, fn in pairs(list) do
            dispatch.set(
                tostring(key),
                fn
            )
        end
        return true
    end
    local n = check_name(name)
    check_handler(2, handler)
    start("receive")
    dispatch.set(n, handler)
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
local function configure(options)
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
local function stats()
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
        calls = {sent = call_.counters.sent, answered = call_.counters.answered, timeouts = call_.counters.timeouts, late = call_.counters.late},
        cluster = cluster_.stats()
    }
end
local ipc = {
    _VERSION = VERSION,
    send = send,
    send_worker = send_worker,
    send_any = send_any,
    broadcast = broadcast,
    reply = reply,
    call = call,
    call_worker = call_worker,
    receive = receive,
    workers = workers,
    configure = configure,
    stats = stats,
    cluster = {configure = cluster_.configure, broadcast = cluster_.broadcast}
}
--- The read-only fields, each for the coroutine that reads it.
local FIELDS = {}
FIELDS.sender = dispatch.sender
FIELDS.sender_id = dispatch.sender_id
FIELDS.sender_instance = dispatch.sender_instance
setmetatable(
    ipc,
    {
        __index = function(_t, key)
            local field = FIELDS[key]
            local ____temp_1
            if field == nil then
                ____temp_1 = nil
            else
                ____temp_1 = field()
            end
            return ____temp_1
        end,
        __newindex = function(t, key, value)
            if FIELDS[key] ~= nil then
                error(
                    ("ngx.ipc: " .. tostring(key)) .. " is read-only",
                    2
                )
            end
            rawset(t, key, value)
        end
    }
)
local ____exports = ipc
return ____exports
