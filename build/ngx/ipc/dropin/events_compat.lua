local ____exports = {}
local events = require("ngx.ipc.dropin.events")
local ev
local configured_ = false
--- The subscription ids of each registered callback.
local ids = {}
local function current(fn)
    if ev == nil then
        error(("ngx.ipc.events.compat: " .. fn) .. " before configure", 3)
    end
    return ev
end
--- Creates this worker's events object with `opts` (those of ngx.ipc.events.new) and
-- starts it; call it from init_worker_by_lua*. true, or nil and why not.
local function configure(opts)
    local e = events.new(opts)
    ev = e
    local ok, err = events.init_worker(e)
    if ok == nil then
        return nil, err
    end
    configured_ = true
    return true
end
local function configured()
    return configured_
end
--- Nothing to run: no broker, no socket.
local function run()
    return
end
local function published(e, target, source, event, data)
    local ok, err = events.publish(
        e,
        target,
        source,
        event,
        data
    )
    if ok == nil then
        return nil, err
    end
    return "done"
end
--- Publishes to every worker, or to one with `unique`; "done", or nil and why not.
local function post(source, event, data, unique)
    local e = current("post")
    return published(
        e,
        unique == nil and "all" or unique,
        source,
        event,
        data
    )
end
--- Publishes to this worker only; "done", or nil and why not.
local function post_local(source, event, data)
    return published(
        current("post_local"),
        "current",
        source,
        event,
        data
    )
end
--- Calls `callback(data, event, source, wid)` for the events of `source` (nil: all)
-- named `event` or one of the further names (none: all events of the source).
local function register(callback, source, event, ...)
    local e = current("register")
    if type(callback) ~= "function" then
        error(
            ("bad argument #1 to 'register' (function expected, got " .. type(callback)) .. ")",
            2
        )
    end
    local cb = callback
    local list = ids[cb]
    if list == nil then
        list = {}
        ids[cb] = list
    end
    local ____source_0 = source
    if ____source_0 == nil then
        ____source_0 = "*"
    end
    local s = ____source_0
    local ____list_3 = list
    local ____temp_4 = #list + 1
    local ____events_subscribe_2 = events.subscribe
    local ____event_1 = event
    if ____event_1 == nil then
        ____event_1 = "*"
    end
    ____list_3[____temp_4] = ____events_subscribe_2(e, s, ____event_1, cb)
    local n = select("#", ...)
    do
        local i = 1
        while i <= n do
            local name = (select(i, ...))
            local ____list_7 = list
            local ____temp_8 = #list + 1
            local ____events_subscribe_6 = events.subscribe
            local ____name_5 = name
            if ____name_5 == nil then
                ____name_5 = "*"
            end
            ____list_7[____temp_8] = ____events_subscribe_6(e, s, ____name_5, cb)
            i = i + 1
        end
    end
end
--- Removes every subscription of `callback`, whatever source and events it was
-- registered for (the library's compat module does the same); true if it had one.
local function unregister(callback)
    local cb = callback
    local list = ids[cb]
    if list == nil or ev == nil then
        return false
    end
    ids[cb] = nil
    do
        local i = 1
        while i <= #list do
            events.unsubscribe(ev, list[i])
            i = i + 1
        end
    end
    return true
end
--- Events arrive without polling; like the library's compat module, this yields
-- briefly where yielding is possible, so that events already sent get handled.
local function poll()
    local phase = ngx.get_phase()
    if phase == "rewrite" or phase == "access" or phase == "content" or phase == "timer" then
        ngx.sleep(0.002)
    end
    return "done"
end
local _VERSION = events._VERSION
____exports.configure = configure
____exports.configured = configured
____exports.run = run
____exports.post = post
____exports.post_local = post_local
____exports.register = register
____exports.unregister = unregister
____exports.poll = poll
____exports.register_weak = register
____exports._VERSION = _VERSION
return ____exports
