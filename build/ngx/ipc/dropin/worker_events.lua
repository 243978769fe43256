local ____lualib = require("lualib_bundle")
local __TS__SparseArrayNew = ____lualib.__TS__SparseArrayNew
local __TS__SparseArrayPush = ____lualib.__TS__SparseArrayPush
local __TS__SparseArraySpread = ____lualib.__TS__SparseArraySpread
local ____exports = {}
local process = require("ngx.process")
local ____value = require("ngx.ipc.dropin.value")
local decode = ____value.decode
local encode = ____value.encode
local ipc = require("ngx.ipc")
____exports.V1 = {version = "0.3.3", name = "ngx.ipc.worker_events", handle_in_post = true, log_data = true}
____exports.V2 = {version = "2.0.1", name = "ngx.ipc.worker_events.v2", handle_in_post = false, log_data = false}
local LOG = "worker-events: "
local DEFAULT_UNIQUE_TIMEOUT = 2
--- The watch for the worker's exit re-arms itself this often, in seconds.
local EXIT_WATCH = 3600
--- Remembered unique values are swept when this many were added since the last sweep.
local SWEEP_EVERY = 1000
local DEBUG = ngx.DEBUG
local ERR = ngx.ERR
local WARN = ngx.WARN
local log = ngx.log
local get_phase = ngx.get_phase
local timer_at = ngx.timer.at
local now = ngx.now
local crc32 = ngx.crc32_short
local worker_id = ngx.worker.id
local worker_count = ngx.worker.count
local traceback = debug.traceback
local running = coroutine.running
local co_status = coroutine.status
local WEAK_VALUES = {__mode = "v"}
local function new_list(weak)
    local fns = {}
    if weak then
        setmetatable(fns, WEAK_VALUES)
    end
    return {n = 0, fns = fns}
end
local function new_level()
    return {
        weak = new_list(true),
        strong = new_list(false)
    }
end
--- `v` as ngx.log takes it: strings, numbers, booleans and nil as they are (no new string).
local function describe(v)
    local t = type(v)
    local ____temp_0
    if t == "string" or t == "number" or t == "boolean" or t == "nil" then
        ____temp_0 = v
    else
        ____temp_0 = tostring(v)
    end
    return ____temp_0
end
local function call(fn, data, event, source, pid)
    local ok, err = xpcall(
        fn,
        traceback,
        data,
        event,
        source,
        pid
    )
    if not ok then
        log(
            ERR,
            LOG,
            "handler failed for event '",
            event,
            "' of source '",
            source,
            "' (pid ",
            tostring(pid),
            "): ",
            describe(err)
        )
    end
end
--- Closes the holes in `list`, keeping the order of what is left.
local function compact(list)
    local fns = list.fns
    local n = list.n
    local j = 0
    do
        local i = 1
        while i <= n do
            local fn = fns[i]
            if fn ~= nil then
                j = j + 1
                fns[j] = fn
            end
            i = i + 1
        end
    end
    do
        local i = j + 1
        while i <= n do
            fns[i] = nil
            i = i + 1
        end
    end
    list.n = j
end
local function run_list(list, data, event, source, pid)
    local holes = false
    do
        local i = 1
        while i <= list.n do
            local fn = list.fns[i]
            if fn == nil then
                holes = true
            else
                call(
                    fn,
                    data,
                    event,
                    source,
                    pid
                )
            end
            i = i + 1
        end
    end
    if holes then
        compact(list)
    end
end
local function run_level(level, data, event, source, pid)
    run_list(
        level.weak,
        data,
        event,
        source,
        pid
    )
    run_list(
        level.strong,
        data,
        event,
        source,
        pid
    )
end
local function check_names(source, event)
    if type(source) ~= "string" or source == "" then
        return "source is required"
    end
    if type(event) ~= "string" or event == "" then
        return "event is required"
    end
    return nil
end
local function add(level, weak, callback)
    local list = weak and level.weak or level.strong
    list.n = list.n + 1
    list.fns[list.n] = callback
end
local function remove(level, callback)
    if level == nil then
        return false
    end
    local found = false
    for ____, list in ipairs({level.weak, level.strong}) do
        do
            local i = 1
            while i <= list.n do
                if list.fns[i] == callback then
                    list.fns[i] = nil
                    found = true
                end
                i = i + 1
            end
        end
    end
    return found
end
local function new_queue()
    return {
        source = {},
        event = {},
        data = {},
        pid = {},
        unique = {},
        head = 1,
        tail = 0
    }
end
local function push(q, source, event, data, pid, unique)
    local i = q.tail + 1
    q.tail = i
    q.source[i] = source
    q.event[i] = event
    q.data[i] = data
    q.pid[i] = pid
    q.unique[i] = unique
end
--- Takes the first event off `q` (which holds one).
local function shift(q)
    local i = q.head
    local source = q.source[i]
    local event = q.event[i]
    local data = q.data[i]
    local pid = q.pid[i]
    local unique = q.unique[i]
    q.source[i] = nil
    q.event[i] = nil
    q.data[i] = nil
    q.pid[i] = nil
    q.unique[i] = nil
    q.head = i + 1
    return source, event, data, pid, unique
end
--- Checks an optional number option;
-- 
-- @returns the error, if any.
local function check_option(opts, name, min, strict)
    local v = opts[name]
    if v == nil then
        return nil
    end
    if type(v) ~= "number" then
        return ("optional \"" .. name) .. "\" option must be a number"
    end
    local n = v
    local ____strict_1
    if strict then
        ____strict_1 = n <= min
    else
        ____strict_1 = n < min
    end
    if ____strict_1 then
        return (((("\"" .. name) .. "\" must be ") .. (strict and "greater than" or "greater than or equal to")) .. " ") .. tostring(min)
    end
    return nil
end
local UNKNOWN_EVENT = {__index = function(_t, key)
    error(
        ("event '" .. tostring(key)) .. "' is an unknown event",
        2
    )
end}
--- A table of `source`'s event names, `_source` holding the source; reading a
-- name it does not hold raises, which catches typos in event names.
local function event_list(source, ...)
    local names = {...}
    local list = {}
    list._source = source
    for ____, name in pairs(names) do
        list[name] = name
    end
    return setmetatable(list, UNKNOWN_EVENT)
end
local function failed(source, event, err)
    local msg = (((("failed posting event \"" .. event) .. "\" by \"") .. source) .. "\"; ") .. err
    log(ERR, LOG, msg)
    return nil, msg
end
--- One module: `require "ngx.ipc.worker_events"` is create(V1), `...worker_events.v2` create(V2).
function ____exports.create(f)
    local handle, sweep_seen, first_of, drain, on_exit_watch, watch_exit, everything, sources, my_pid, unique_timeout, seen, seen_added, arrived, local_, busy, events
    function handle(source, event, data, pid)
        local log_data = f.log_data
        local ____array_3 = __TS__SparseArrayNew(
            DEBUG,
            LOG,
            "handling event; source=",
            source,
            ", event=",
            event,
            ", pid=",
            pid,
            log_data and ", data=" or ""
        )
        local ____log_data_2
        if log_data then
            ____log_data_2 = describe(data)
        else
            ____log_data_2 = ""
        end
        __TS__SparseArrayPush(____array_3, ____log_data_2)
        log(__TS__SparseArraySpread(____array_3))
        run_level(
            everything,
            data,
            event,
            source,
            pid
        )
        local s = sources[source]
        if s == nil then
            return
        end
        run_level(
            s,
            data,
            event,
            source,
            pid
        )
        local e = s.events[event]
        if e ~= nil then
            run_level(
                e,
                data,
                event,
                source,
                pid
            )
        end
    end
    function sweep_seen(t)
        for key, ____until in pairs(seen) do
            if ____until <= t then
                seen[key] = nil
            end
        end
        seen_added = 0
    end
    function first_of(key, source, event)
        local t = now()
        local ____until = seen[key]
        if ____until ~= nil and ____until > t then
            log(
                DEBUG,
                LOG,
                "skipping unique event '",
                event,
                "' of source '",
                source,
                "': '",
                key,
                "' was handled less than ",
                unique_timeout,
                " s ago"
            )
            return false
        end
        seen[key] = t + unique_timeout
        seen_added = seen_added + 1
        if seen_added >= SWEEP_EVERY then
            sweep_seen(t)
        end
        return true
    end
    function drain()
        if busy ~= nil then
            if co_status(busy) ~= "dead" then
                return "recursive"
            end
        end
        busy = running()
        do
            while true do
                local q = local_.head <= local_.tail and local_ or (arrived.head <= arrived.tail and arrived or nil)
                if q == nil then
                    break
                end
                local source, event, data, pid, unique = shift(q)
                if unique == nil or first_of(unique, source, event) then
                    handle(source, event, data, pid)
                end
            end
        end
        local_.head = 1
        local_.tail = 0
        arrived.head = 1
        arrived.tail = 0
        busy = nil
        return "done"
    end
    function on_exit_watch(premature)
        if premature then
            push(
                arrived,
                events._source,
                events.stopping,
                nil,
                my_pid,
                nil
            )
            drain()
            return
        end
        watch_exit()
    end
    function watch_exit()
        local ok, err = timer_at(EXIT_WATCH, on_exit_watch)
        if ok == nil and err ~= "process exiting" then
            log(WARN, LOG, "no 'stopping' event at this worker's exit: ", err)
        end
    end
    local alert_post = f.name .. ":post"
    local alert_unique = f.name .. ":unique"
    everything = new_level()
    sources = {}
    local configured_ = false
    my_pid = 0
    unique_timeout = DEFAULT_UNIQUE_TIMEOUT
    seen = {}
    seen_added = 0
    --- master_process off: one process, whatever worker_processes says.
    local single_process = false
    arrived = new_queue()
    local_ = new_queue()
    --- Whether a zero-delay timer will drain (2.x's `post_local`).
    local drain_timer = false
    local function source_level(source)
        local level = sources[source]
        if level == nil then
            level = {
                weak = new_list(true),
                strong = new_list(false),
                events = {}
            }
            sources[source] = level
        end
        return level
    end
    local function event_level(source, event)
        local events = source_level(source).events
        local level = events[event]
        if level == nil then
            level = new_level()
            events[event] = level
        end
        return level
    end
    local function receive(data, unique)
        local from = ipc.sender
        if f.handle_in_post and not unique and from == my_pid then
            return
        end
        local ok, v = decode(data)
        local w = v
        if not ok or type(v) ~= "table" or type(w.s) ~= "string" or type(w.e) ~= "string" then
            log(
                ERR,
                LOG,
                "dropped an event from pid ",
                tostring(from),
                " that is no event: ",
                ok and "no source or event" or v
            )
            return
        end
        push(
            arrived,
            w.s,
            w.e,
            w.d,
            from,
            unique and tostring(w.u) or nil
        )
        drain()
    end
    local function on_post(data)
        receive(data, false)
    end
    local function on_unique(data)
        receive(data, true)
    end
    local function on_drain_timer()
        drain_timer = false
        drain()
    end
    --- 2.x's next poll, for `post_local`'s events when no event arrives first.
    local function schedule_drain()
        if drain_timer or busy ~= nil and co_status(busy) ~= "dead" or get_phase() == "init" then
            return
        end
        local ok = timer_at(0, on_drain_timer)
        if ok == nil then
            drain()
            return
        end
        drain_timer = true
    end
    --- The worker that handles the unique events of `key`.
    local function unique_worker(key)
        local n = single_process and 1 or worker_count()
        return crc32(key) % n
    end
    --- 2.x: to every worker, this one included, or to the one of `key`.
    local function send_only(payload, key)
        if key == nil then
            return ipc.broadcast(alert_post, payload)
        end
        local target = unique_worker(key)
        if target == worker_id() then
            return ipc.send(my_pid, alert_unique, payload)
        end
        return ipc.send_worker(target, alert_unique, payload)
    end
    --- Posts an event to every worker (`unique`: to one). 1.0.0: runs this worker's
    -- handlers for it before returning. 2.x: this worker handles it when it arrives.
    -- 
    -- @returns "done" ("recursive" from inside a handler), 2.x true, or nil and an error.
    local function post(source, event, data, unique)
        local bad = check_names(source, event)
        if bad ~= nil then
            return nil, bad
        end
        local s = source
        local e = event
        if not configured_ then
            return failed(s, e, "not configured: call configure() first")
        end
        local ____temp_4
        if unique == nil then
            ____temp_4 = nil
        else
            ____temp_4 = tostring(unique)
        end
        local key = ____temp_4
        local payload, err = encode({s = s, e = e, d = data, u = key})
        if payload == nil then
            return failed(s, e, err)
        end
        if not f.handle_in_post then
            local sent, serr = send_only(payload, key)
            if sent == nil then
                return failed(s, e, serr)
            end
            return true
        end
        local mine = data
        if type(data) == "table" then
            local ____, copy = decode(payload)
            mine = copy.d
        end
        if key ~= nil then
            local target = unique_worker(key)
            if target ~= worker_id() then
                local sent, serr = ipc.send_worker(target, alert_unique, payload)
                if sent == nil then
                    return failed(s, e, serr)
                end
                return drain()
            end
            push(
                arrived,
                s,
                e,
                mine,
                my_pid,
                key
            )
            return drain()
        end
        local sent, serr = ipc.broadcast(alert_post, payload)
        if sent == nil then
            return failed(s, e, serr)
        end
        push(
            arrived,
            s,
            e,
            mine,
            my_pid,
            nil
        )
        return drain()
    end
    --- An event that no other worker sees (pid nil). 1.0.0: handled before returning.
    -- 2.x: queued for the next poll, which runs it before other events.
    -- 
    -- @returns "done" ("recursive" from inside a handler), 2.x true, or nil and an error.
    local function post_local(source, event, data)
        local bad = check_names(source, event)
        if bad ~= nil then
            return nil, bad
        end
        if not f.handle_in_post then
            push(
                local_,
                source,
                event,
                data,
                nil,
                nil
            )
            schedule_drain()
            return true
        end
        push(
            arrived,
            source,
            event,
            data,
            nil,
            nil
        )
        return drain()
    end
    --- Nothing to fetch: events are handled as they arrive. Runs what waits (events
    -- posted while a handler ran, 2.x's `post_local` events).
    -- 
    -- @returns "done", or "recursive" inside a handler.
    local function poll()
        return drain()
    end
    local function register_as(fn, weak, callback, source, events)
        if type(callback) ~= "function" then
            error(
                ((("bad argument #1 to '" .. fn) .. "' (function expected, got ") .. type(callback)) .. ")",
                3
            )
        end
        local cb = callback
        if source == nil or source == false then
            add(everything, weak, cb)
        elseif #events == 0 then
            add(
                source_level(source),
                weak,
                cb
            )
        else
            for ____, event in ipairs(events) do
                add(
                    event_level(source, event),
                    weak,
                    cb
                )
            end
        end
        return true
    end
    --- register or register_weak, named `fn` in its errors.
    local function registrar(fn, weak)
        return function(callback, source, ...)
            local events = {...}
            local ok = register_as(
                fn,
                weak,
                callback,
                source,
                events
            )
            return ok
        end
    end
    --- Calls `callback(data, event, source, pid)` for every event, those of `source`, or those named.
    local register = registrar("register", false)
    --- As register, but the registration does not keep `callback` from being collected.
    local register_weak = registrar("register_weak", true)
    --- Removes `callback`'s registrations (weak and strong) at the level named the
    -- same way as when registering.
    -- 
    -- @returns whether any was removed.
    local function unregister(callback, source, ...)
        local events = {...}
        if type(callback) ~= "function" then
            error(
                ("bad argument #1 to 'unregister' (function expected, got " .. type(callback)) .. ")",
                2
            )
        end
        if source == nil or source == false then
            return remove(everything, callback)
        end
        local s = sources[source]
        if #events == 0 then
            return remove(s, callback)
        end
        local found = false
        if s ~= nil then
            for ____, event in ipairs(events) do
                if remove(s.events[event], callback) then
                    found = true
                end
            end
        end
        return found
    end
    events = event_list("resty-worker-events", "started", "stopping")
    --- Starts the module in this worker, or changes its options. `timeout` (seconds a
    -- unique value is remembered) is the one that matters; `shm`, `interval`,
    -- `wait_interval`, `wait_max` and `shm_retries` tuned the shared-dict transport:
    -- they are checked as the library checks them, then ignored (the shm need not exist).
    -- 
    -- @returns true, or nil and an error.
    local function configure(opts)
        if type(opts) ~= "table" then
            error(
                ("bad argument #1 to 'configure' (table expected, got " .. type(opts)) .. ")",
                2
            )
        end
        local o = opts
        local shm = o.shm
        if shm ~= nil and type(shm) ~= "string" then
            return nil, "optional \"shm\" option must be a string"
        end
        local err = check_option(o, "timeout", 0, true) or check_option(o, "interval", 0, false) or check_option(o, "wait_interval", 0, false) or check_option(o, "wait_max", 0, false) or check_option(o, "shm_retries", 0, false)
        if err ~= nil then
            return nil, err
        end
        unique_timeout = o.timeout or unique_timeout
        if configured_ then
            return true
        end
        ipc.receive(alert_post, on_post)
        ipc.receive(alert_unique, on_unique)
        my_pid = ngx.worker.pid()
        single_process = process.type() == "single"
        configured_ = true
        watch_exit()
        post(events._source, events.started)
        if local_.head <= local_.tail then
            schedule_drain()
        end
        return true
    end
    --- Whether configure has started the module in this worker.
    local function configured()
        return configured_
    end
    return {
        _VERSION = f.version,
        configure = configure,
        configured = configured,
        post = post,
        post_local = post_local,
        register = register,
        register_weak = register_weak,
        unregister = unregister,
        poll = poll,
        event_list = event_list,
        events = events
    }
end
return ____exports
