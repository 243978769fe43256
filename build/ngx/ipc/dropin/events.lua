local ____exports = {}
local send_to_agent, send_event, ipc, log, ERR, AGENT_JOINED
local semaphore = require("ngx.semaphore")
local value = require("ngx.ipc.dropin.value")
function send_to_agent(ch)
    local kept = ch.for_agent
    local agent = ipc.sender
    ch.for_agent = nil
    ch.for_agent_bytes = 0
    if kept == nil or agent == nil or agent == ngx.worker.pid() then
        return
    end
    do
        local i = 1
        while i <= #kept do
            local ok, err = ipc.send(agent, ch.name, kept[i])
            if ok == nil then
                log(ERR, "ngx.ipc.events: an event kept for the privileged agent is lost: ", err)
            end
            i = i + 1
        end
    end
end
function send_event(name, target, s)
    if target == "all" then
        return ipc.broadcast(name, s)
    end
    return ipc.send_worker(
        ngx.crc32_short(target) % ngx.worker.count(),
        name,
        s
    )
end
ipc = require("ngx.ipc")
--- The lua-resty-events release whose API this module implements.
local VERSION = "0.3.1"
--- Alert names of this module: no user of ngx.ipc picks a name starting with SOH.
local PREFIX = "ngx.ipc.events"
local MAX_NAME = 254
local UNIX_PREFIX = "unix:"
local DEFAULT_UNIQUE_TIMEOUT = 5
local DEFAULT_MAX_QUEUE_LEN = 1024 * 10
local DEFAULT_MAX_PAYLOAD_LEN = 1024 * 64
local LIMIT_MAX_PAYLOAD_LEN = 1024 * 1024 * 16
--- Unique hashes remembered before expired ones are swept.
local UNIQUE_SWEEP_MIN = 1024
--- How long after its start a worker keeps events for an agent that may not exist, in seconds.
local AGENT_GRACE = 10
--- What a worker keeps for an agent that has not joined yet, at most.
local AGENT_KEEP_BYTES = 16 * 1024 * 1024
local channels = {}
local q_inst = {}
local q_msg = {}
--- Queued "current" events whose handling has not begun.
local current_pending = 0
--- "all" and unique events published while "current" events of this worker wait:
-- sent once the last of those is being handled, so that no worker handles them
-- first (the library's broker round trip gives the same order).
local later_name = {}
local later_target = {}
local later_data = {}
local later_n = 0
local head = 1
local tail = 0
--- The coroutine handling the queue, if any.
local drainer
--- Receive handlers waiting for the queue to shrink (while a timer's handler yields).
local waiting = 0
local shrunk
--- A timer is on its way to handle "current" events.
local timer_pending = false
local traceback = debug.traceback
log = ngx.log
local DEBUG = ngx.DEBUG
ERR = ngx.ERR
--- ngx.worker.id(), or -1 in the privileged agent (the library's number for it).
local function worker_id()
    return ngx.worker.id() or -1
end
local function worker_name(id)
    return id == -1 and "privileged agent" or "worker #" .. tostring(id)
end
local debug_level
--- Whether error_log writes debug lines (where ngx.errlog is missing, say yes).
local function debug_logged()
    if debug_level == nil then
        local ok, errlog = pcall(require, "ngx.errlog")
        debug_level = not ok or errlog.get_sys_filter_level() >= DEBUG
    end
    return debug_level
end
local function check_nonempty(fn, n, v, what)
    if type(v) ~= "string" or v == "" then
        error(
            ((((((("bad argument #" .. tostring(n)) .. " to '") .. fn) .. "' (") .. what) .. ": non-empty string expected, got ") .. type(v)) .. ")",
            3
        )
    end
    return v
end
local function run_list(funcs, list, m)
    if list == nil then
        return
    end
    local n = #list
    do
        local i = 1
        while i <= n do
            local fn = funcs[list[i]]
            if fn ~= nil then
                local ok, err = xpcall(
                    fn,
                    traceback,
                    m.data,
                    m.event,
                    m.source,
                    m.wid
                )
                if not ok then
                    log(
                        ERR,
                        "ngx.ipc.events: event handler failed; source=",
                        m.source,
                        ", event=",
                        m.event,
                        ", wid=",
                        tostring(m.wid),
                        ": ",
                        tostring(err)
                    )
                end
            end
            i = i + 1
        end
    end
end
local function lists_of(ev, source)
    return ev.lists[source]
end
--- Sends what waited for this worker's "current" events, once none is left unhandled.
local function send_later()
    if later_n == 0 or current_pending > 0 then
        return
    end
    do
        local i = 1
        while i <= later_n do
            local ok, err = send_event(later_name[i], later_target[i], later_data[i])
            if ok == nil then
                log(ERR, "ngx.ipc.events: failed to publish event: ", err)
            end
            later_name[i] = nil
            later_target[i] = nil
            later_data[i] = nil
            i = i + 1
        end
    end
    later_n = 0
end
--- Runs the handlers of one event: "*" "*" first, then source "*", then source event.
local function do_event(ev, m)
    log(
        DEBUG,
        "worker-events: handling event; source=",
        m.source,
        ", event=",
        m.event,
        ", wid=",
        tostring(m.wid)
    )
    send_later()
    local funcs = ev.funcs
    local any = lists_of(ev, "*")
    run_list(funcs, any and any["*"], m)
    local by_source = lists_of(ev, m.source)
    if by_source ~= nil then
        run_list(funcs, by_source["*"], m)
        run_list(funcs, by_source[m.event], m)
    end
end
local function queued()
    return tail - head + 1
end
local function push(ev, m)
    tail = tail + 1
    q_inst[tail] = ev
    q_msg[tail] = m
end
--- Handles the queue in this coroutine, unless another is at it (a handler of it
-- yielded): that one takes what was just queued, in order.
local function drain()
    if drainer ~= nil and coroutine.status(drainer) ~= "dead" then
        return
    end
    drainer = coroutine.running()
    while head <= tail do
        local ev = q_inst[head]
        local m = q_msg[head]
        q_inst[head] = nil
        q_msg[head] = nil
        head = head + 1
        if m.wid == nil then
            current_pending = current_pending - 1
        end
        do_event(ev, m)
    end
    head = 1
    tail = 0
    drainer = nil
    if waiting > 0 then
        shrunk:post(waiting)
    end
end
--- In ngx.ipc's receive loop, while another coroutine handles the queue (a timer
-- whose handler yields): past max_queue_len events, waits until it has handled
-- them, so that ngx.ipc stops reading (back-pressure) instead of the queue growing.
local function wait_room(limit)
    while queued() >= limit and drainer ~= nil and coroutine.status(drainer) ~= "dead" do
        local sema = shrunk
        if sema == nil then
            local s, err = semaphore.new()
            if s == nil then
                log(ERR, "ngx.ipc.events: no semaphore: ", err)
                return
            end
            sema = s
            shrunk = s
        end
        waiting = waiting + 1
        sema:wait(1)
        waiting = waiting - 1
    end
end
local function on_timer(_premature)
    timer_pending = false
    drain()
end
--- Makes sure a timer will handle the queue.
local function schedule()
    if not timer_pending then
        local ok, err = ngx.timer.at(0, on_timer)
        if ok == nil then
            return nil, err
        end
        timer_pending = true
    end
    return true
end
--- Whether `hash` was handled here less than unique_timeout ago; records it if not.
local function seen(ev, hash)
    local now = ngx.now()
    local ____until = ev.uniques[hash]
    if ____until ~= nil and ____until > now then
        return true
    end
    if ____until == nil then
        ev.unique_count = ev.unique_count + 1
    end
    ev.uniques[hash] = now + ev.opts.unique_timeout
    if ev.unique_count > ev.unique_sweep then
        for h, t in pairs(ev.uniques) do
            if t <= now then
                ev.uniques[h] = nil
                ev.unique_count = ev.unique_count - 1
            end
        end
        ev.unique_sweep = math.max(UNIQUE_SWEEP_MIN, ev.unique_count * 2)
    end
    return false
end
local function decode(data)
    local ok, m = value.decode(data)
    if not ok or type(m) ~= "table" then
        log(
            ERR,
            "ngx.ipc.events: dropped an alert that is no event (",
            ok and type(m) or m,
            ")"
        )
        return nil
    end
    return m
end
--- Queues an event from another worker (or this one) for `ev`, unless it is a duplicate.
local function accept(ev, m)
    if m.unique ~= nil and seen(ev, m.unique) then
        log(
            DEBUG,
            "unique event is duplicate on ",
            worker_name(worker_id()),
            ": ",
            m.unique
        )
        return
    end
    push(ev, m)
end
--- The ngx.ipc handler of one alert name: an event from a worker (this one included).
local function on_alert(ch, data)
    local list = ch.instances
    local n = #list
    if data == AGENT_JOINED then
        send_to_agent(ch)
        return
    end
    if n == 0 then
        local held = ch.held
        if #held >= DEFAULT_MAX_QUEUE_LEN then
            log(ERR, "ngx.ipc.events: dropped an event: ", DEFAULT_MAX_QUEUE_LEN, " events wait for init_worker in this worker already")
            return
        end
        held[#held + 1] = data
        return
    end
    local m = decode(data)
    if m == nil then
        return
    end
    do
        local i = 1
        while i <= n do
            local ev = list[i]
            wait_room(ev.opts.max_queue_len)
            accept(ev, m)
            i = i + 1
        end
    end
    drain()
end
--- The agent's announcement: one byte, which encodes no table (events are tables).
AGENT_JOINED = ""
--- Whether the privileged agent has joined ngx.ipc (a broadcast reaches it).
local function agent_joined()
    local ok, list = pcall(ipc.workers)
    if not ok then
        return false
    end
    local last = list[#list]
    return last ~= nil and last.agent == true
end
--- Keeps a copy of an "all" event for the privileged agent that has not joined yet:
-- until it joins with enable_privileged_agent = true (the library's broker keeps
-- a queue for it from the start), else in the first seconds after this worker's
-- start only, when an agent that exists is about to join.
local function keep_for_agent(ch, s, forever)
    local kept = ch.for_agent
    if kept == nil or worker_id() == -1 then
        return false
    end
    if agent_joined() or not forever and ngx.now() > ch.agent_until then
        ch.for_agent = nil
        ch.for_agent_bytes = 0
        return false
    end
    if ch.for_agent_bytes + #s > AGENT_KEEP_BYTES then
        log(ERR, "ngx.ipc.events: the privileged agent has not joined and ", ch.for_agent_bytes, " bytes of events wait for it: this one will not reach it")
        return false
    end
    kept[#kept + 1] = s
    ch.for_agent_bytes = ch.for_agent_bytes + #s
    return true
end
--- The channel of alert name `name`, its ngx.ipc handler registered on first use.
local function channel(name)
    local ch = channels[name]
    if ch == nil then
        local c = {
            name = name,
            instances = {},
            held = {},
            for_agent = {},
            for_agent_bytes = 0,
            agent_until = ngx.now() + AGENT_GRACE
        }
        local ok, err = pcall(function() return ipc.receive(
            name,
            function(data) return on_alert(c, data) end
        ) end)
        if not ok then
            return nil, tostring(err)
        end
        ch = c
        channels[name] = ch
    end
    return ch
end
local function check_options(opts)
    if type(opts) ~= "table" then
        return "options: table expected, got " .. type(opts)
    end
    local o = opts
    o.broker_id = o.broker_id or 0
    if type(o.broker_id) ~= "number" then
        return "\"broker_id\" option must be a number"
    end
    if o.broker_id < 0 or o.broker_id >= ngx.worker.count() then
        return "\"broker_id\" option is invalid"
    end
    if o.listening == nil then
        return "\"listening\" option required to start"
    end
    if type(o.listening) ~= "string" then
        return "\"listening\" option must be a string"
    end
    if string.sub(o.listening, 1, #UNIX_PREFIX) ~= UNIX_PREFIX then
        return "\"listening\" option must start with " .. UNIX_PREFIX
    end
    o.unique_timeout = o.unique_timeout or DEFAULT_UNIQUE_TIMEOUT
    if type(o.unique_timeout) ~= "number" then
        return "optional \"unique_timeout\" option must be a number"
    end
    if o.unique_timeout <= 0 then
        return "\"unique_timeout\" must be greater than 0"
    end
    o.max_queue_len = o.max_queue_len or DEFAULT_MAX_QUEUE_LEN
    if type(o.max_queue_len) ~= "number" then
        return "\"max_queue_len\" option must be a number"
    end
    if o.max_queue_len <= 0 then
        return "\"max_queue_len\" option is invalid"
    end
    o.max_payload_len = o.max_payload_len or DEFAULT_MAX_PAYLOAD_LEN
    if type(o.max_payload_len) ~= "number" then
        return "\"max_payload_len\" option must be a number"
    end
    if o.max_payload_len <= 0 or o.max_payload_len > LIMIT_MAX_PAYLOAD_LEN then
        return "\"max_payload_len\" option is invalid"
    end
    if o.enable_privileged_agent ~= nil and type(o.enable_privileged_agent) ~= "boolean" then
        return "\"enable_privileged_agent\" option must be a boolean"
    end
    local ____o_testing_2 = o.testing
    if ____o_testing_2 == nil then
        ____o_testing_2 = false
    end
    o.testing = ____o_testing_2
    if type(o.testing) ~= "boolean" then
        return "\"testing\" option must be a boolean"
    end
    return nil
end
local methods = {}
local MT = {__index = methods}
--- A new events object. The options are the library's, checked as it checks them;
-- `listening` names the channel and nothing listens on it; `broker_id`,
-- `max_queue_len` (but for "current" events) and `enable_privileged_agent` tune
-- the library's broker and are otherwise ignored.
local function new_(opts)
    local err = check_options(opts)
    if err ~= nil then
        error(err, 2)
    end
    local o = opts
    local name = #PREFIX + #o.listening <= MAX_NAME and PREFIX .. o.listening or PREFIX .. ngx.md5(o.listening)
    local ev = {
        opts = o,
        name = name,
        lists = {},
        funcs = {},
        where = {},
        counter = 0,
        uniques = {},
        unique_count = 0,
        unique_sweep = UNIQUE_SWEEP_MIN,
        started = false,
        ready = false
    }
    return setmetatable(ev, MT)
end
local function set_ready(_premature, ev)
    ev.ready = true
end
--- Starts receiving this instance's events in this worker (the privileged agent
-- included, unless enable_privileged_agent is false). Events published earlier
-- in this worker are handled after the current code returns, by the handlers
-- subscribed by then.
local function init_worker(ev)
    if ev.started then
        return true
    end
    if ngx.worker.id() == nil and ev.opts.enable_privileged_agent == false then
        return true
    end
    if not ev.opts.testing then
        local ch, err = channel(ev.name)
        if ch == nil then
            return nil, err
        end
        local list = ch.instances
        list[#list + 1] = ev
        if ngx.worker.id() == nil then
            local ok, berr = ipc.broadcast(ev.name, AGENT_JOINED)
            if ok == nil then
                log(ERR, "ngx.ipc.events: the privileged agent could not announce itself: ", berr)
            end
        end
        local held = ch.held
        if #held > 0 then
            ch.held = {}
            do
                local i = 1
                while i <= #held do
                    local m = decode(held[i])
                    if m ~= nil then
                        accept(ev, m)
                    end
                    i = i + 1
                end
            end
            local ok, terr = schedule()
            if ok == nil then
                log(ERR, "ngx.ipc.events: could not start a timer: ", terr)
            end
        end
    end
    ev.started = true
    local ok, err = ngx.timer.at(0, set_ready, ev)
    if ok == nil then
        ev.ready = true
        log(ERR, "ngx.ipc.events: could not start a timer: ", err)
    end
    return true
end
--- The library's broker loop; nothing to run here (no socket, no broker).
local function run(_self)
    return
end
local function failed(err)
    return nil, "failed to publish event: " .. err
end
--- The template of what "all" and unique events carry, reused.
local OUT = {source = "", event = "", data = nil}
local function publish_current(ev, source, event, data)
    if queued() >= ev.opts.max_queue_len then
        return failed("queue overflow")
    end
    push(ev, {source = source, event = event, data = data})
    local ok, err = schedule()
    if ok == nil then
        q_inst[tail] = nil
        q_msg[tail] = nil
        tail = tail - 1
        return failed(tostring(err))
    end
    current_pending = current_pending + 1
    return true
end
--- The processes an "all" event reaches, for the library's debug line.
local function reached(kept_for_agent)
    local n = ngx.worker.count()
    if kept_for_agent then
        return n + 1
    end
    local ok, list = pcall(ipc.workers)
    return ok and #list > n and #list or n
end
--- Publishes an event: to every worker ("all"), to this one ("current", handled
-- later from this worker's queue, data passed as is), or to the one worker a
-- unique hash names, where the same hash is dropped until unique_timeout has
-- passed since it was handled.
local function publish(ev, target, source, event, data)
    local t = check_nonempty("publish", 1, target, "target")
    local s = check_nonempty("publish", 2, source, "source")
    local e = check_nonempty("publish", 3, event, "event")
    if ev.opts.testing then
        log(DEBUG, "event published to 1 workers")
        do_event(ev, {source = s, event = e, data = data})
        return true
    end
    if t == "current" then
        return publish_current(ev, s, e, data)
    end
    OUT.source = s
    OUT.event = e
    OUT.data = data
    OUT.wid = worker_id()
    local ____temp_3
    if t == "all" then
        ____temp_3 = nil
    else
        ____temp_3 = t
    end
    OUT.unique = ____temp_3
    local ch, cerr = channel(ev.name)
    if ch == nil then
        return failed(cerr)
    end
    local str, err = value.encode(OUT)
    OUT.data = nil
    if str == nil then
        return failed(err)
    end
    if #str > ev.opts.max_payload_len then
        return failed(("payload exceeds the limitation (" .. tostring(ev.opts.max_payload_len)) .. ")")
    end
    local kept = t == "all" and ch.for_agent ~= nil and ev.opts.enable_privileged_agent ~= false and keep_for_agent(ch, str, ev.opts.enable_privileged_agent == true)
    if current_pending > 0 or later_n > 0 then
        later_n = later_n + 1
        later_name[later_n] = ev.name
        later_target[later_n] = t
        later_data[later_n] = str
    else
        local ok, why = send_event(ev.name, t, str)
        if ok == nil then
            return failed(why)
        end
    end
    local n = t == "all" and debug_logged() and reached(kept and ev.opts.enable_privileged_agent == true) or 1
    log(DEBUG, "event published to ", n, " workers")
    return true
end
--- Calls `callback(data, event, source, wid)` for the events of `source` ("*":
-- any) named `event` ("*": any); returns the id to unsubscribe it with.
local function subscribe(ev, source, event, callback)
    local s = check_nonempty("subscribe", 1, source, "source")
    local e = check_nonempty("subscribe", 2, event, "event")
    if type(callback) ~= "function" then
        error(
            ("bad argument #3 to 'subscribe' (function expected, got " .. type(callback)) .. ")",
            2
        )
    end
    ev.counter = ev.counter + 1
    local id = tostring(ev.counter)
    local by_source = ev.lists[s]
    if by_source == nil then
        by_source = {}
        ev.lists[s] = by_source
    end
    local list = by_source[e]
    if list == nil then
        list = {}
        by_source[e] = list
    end
    list[#list + 1] = id
    ev.funcs[id] = callback
    ev.where[id] = {s, e}
    return id
end
--- Stops the subscription `id`; true, or false when there is none by that id.
local function unsubscribe(ev, id)
    local t = type(id)
    if t ~= "string" and t ~= "number" then
        error(("bad argument #1 to 'unsubscribe' (string expected, got " .. t) .. ")", 2)
    end
    local key = tostring(id)
    local at = ev.where[key]
    if at == nil then
        return false
    end
    ev.funcs[key] = nil
    ev.where[key] = nil
    local by_source = ev.lists[at[1]]
    local old = by_source[at[2]]
    local list = {}
    local n = #old
    do
        local i = 1
        while i <= n do
            local other = old[i]
            if other ~= key then
                list[#list + 1] = other
            end
            i = i + 1
        end
    end
    by_source[at[2]] = #list > 0 and list or nil
    return true
end
--- True once init_worker has run and the event loop has turned since.
local function is_ready(ev)
    return ev.ready
end
methods.init_worker = init_worker
methods.run = run
methods.publish = publish
methods.subscribe = subscribe
methods.unsubscribe = unsubscribe
methods.is_ready = is_ready
____exports._VERSION = VERSION
____exports.new = new_
____exports.init_worker = init_worker
____exports.run = run
____exports.publish = publish
____exports.subscribe = subscribe
____exports.unsubscribe = unsubscribe
____exports.is_ready = is_ready
return ____exports
