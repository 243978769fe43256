local ____exports = {}
local answer, forget, DONE
local semaphore = require("ngx.semaphore")
local ____args = require("ngx.ipc.args")
local check_string = ____args.check_string
local dispatch = require("ngx.ipc.dispatch")
local resp = require("ngx.ipc.resp")
local link = require("ngx.ipc.cluster.link")
local ____scripts = require("ngx.ipc.cluster.scripts")
local args_of = ____scripts.args_of
local FLOOR = ____scripts.FLOOR
local load = ____scripts.load
local PUBLISH = ____scripts.PUBLISH
local run = ____scripts.run
local script_args = ____scripts.script_args
local state = require("ngx.ipc.cluster.state")
function answer(it, err)
    it.status = DONE
    it.err = err
    if not it.abandoned then
        it.sema:post(1)
    end
end
function forget(batch, n)
    do
        local i = 1
        while i <= n do
            batch[i] = nil
            i = i + 1
        end
    end
end
local counters = state.counters
--- Alert names travel in one byte locally (ipc.ts's MAX_NAME).
local MAX_NAME = 254
--- At most this many alerts, or about this many bytes, go in one pipelined write.
local BATCH = 256
local BATCH_BYTES = 4194304
--- A broadcast whose reply was NOSCRIPT or READONLY (not run) is sent again at most this often.
local RETRIES = 3
--- Queued, sent (its reply awaited), or answered; abandoned once its caller stopped waiting.
local QUEUED = 0
local SENT = 1
DONE = 2
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
--- The queue: items at head .. tail - 1.
local queue = {}
local head = 1
local tail = 1
--- Items whose callers are done with them (their semaphores at count 0).
local spare = {}
local wake
--- The publisher timer runs, and whether it waits on `wake` now.
local started = false
local idle = false
local sock
--- When sock last carried a batch (ngx.now()), to close it after `keepalive` idle.
local used_at = 0
--- Publishers in this worker have made sure the instance's position exists (see FLOOR).
local floor_done = false
--- The highest sequence number Redis gave this worker's publishes (PUBLISH's floor).
local max_seq = 0
local function where(s)
    return "redis at " .. link.label(s, s.endpoint)
end
--- Answers the items of the batch at i .. last: err, or undefined for true.
local function answer_all(batch, i, last, err)
    do
        local k = i
        while k <= last do
            answer(batch[k], err)
            k = k + 1
        end
    end
end
local function drop()
    if sock ~= nil then
        sock:close()
        sock = nil
    end
end
--- A connection to the primary with the script loaded, and the instance's position made.
local function open(s)
    local io = s.timeout_ms + s.wait_ms
    local c, err = link.connect(s, s.endpoint, s.timeout_ms, io)
    if c == nil then
        return (("ngx.ipc: cluster: cannot reach " .. where(s)) .. ": ") .. err
    end
    local sha, lerr = load(c, PUBLISH)
    if sha == nil then
        c:close()
        return (("ngx.ipc: cluster: " .. where(s)) .. ": ") .. lerr
    end
    if not floor_done then
        local fargs, fcount = args_of("3", s.stream, s.seq_key, state.pos_key)
        local pos, ferr = run(c, FLOOR, fargs, fcount)
        if pos == nil then
            c:close()
            return (("ngx.ipc: cluster: " .. where(s)) .. ": ") .. ferr
        end
        floor_done = true
    end
    sock = c
    return nil
end
--- Takes the next batch off the queue (skipping items whose callers gave up).
local function take(batch)
    local n = 0
    local bytes = 0
    while head < tail and n < BATCH and bytes < BATCH_BYTES do
        local it = queue[head]
        queue[head] = nil
        head = head + 1
        if not it.abandoned then
            n = n + 1
            batch[n] = it
            bytes = bytes + #it.data
        end
    end
    return n
end
--- Puts items back at the head of the queue, in their order.
local function requeue(list, n)
    do
        local k = n
        while k >= 1 do
            local it = list[k]
            it.status = QUEUED
            head = head - 1
            queue[head] = it
            k = k - 1
        end
    end
end
--- Whether an error reply says the script did not run (so sending it again is safe).
local function not_run(err)
    return string.sub(err, 1, 8) == "NOSCRIPT" or string.sub(err, 1, 8) == "READONLY"
end
--- Sends one batch (one script call, then WAIT when configured) and hands out the replies.
local function flush(s, batch, n)
    local args = {}
    local head_args = {
        "",
        "",
        "2",
        s.stream,
        s.seq_key,
        s.maxlen,
        state.instance,
        tostring(ngx.worker.pid()),
        tostring(ngx.worker.id() or -1),
        tostring(max_seq)
    }
    local count = #head_args
    do
        local i = 0
        while i < count do
            args[i + 1] = head_args[i + 1]
            i = i + 1
        end
    end
    do
        local i = 1
        while i <= n do
            local it = batch[i]
            it.status = SENT
            args[count + 1] = it.name
            args[count + 2] = it.data
            count = count + 2
            i = i + 1
        end
    end
    script_args(PUBLISH, args, true)
    local out = {}
    local o = resp.encode(out, 1, args, count)
    if s.wait_replicas > 0 then
        local w, wn = resp.args(
            "WAIT",
            tostring(s.wait_replicas),
            tostring(s.wait_ms)
        )
        resp.encode(out, o, w, wn)
    end
    local sent, serr = sock:send(out)
    if sent == nil then
        drop()
        answer_all(
            batch,
            1,
            n,
            (("ngx.ipc: cluster: " .. where(s)) .. ": ") .. serr
        )
        return
    end
    local v, err, usable = resp.read(sock)
    if v == nil and not usable then
        drop()
        answer_all(
            batch,
            1,
            n,
            (("ngx.ipc: cluster: " .. where(s)) .. ": ") .. err
        )
        return
    end
    local failed = nil
    if v == nil then
        failed = (("ngx.ipc: cluster: " .. where(s)) .. ": ") .. err
    else
        local last = tonumber(v) or 0
        if last > max_seq then
            max_seq = last
        end
    end
    if s.wait_replicas > 0 then
        local acked, werr, wusable = resp.read(sock)
        if failed == nil and acked == nil then
            failed = (("ngx.ipc: cluster: " .. where(s)) .. ": added to the stream, but WAIT failed: ") .. werr
        elseif failed == nil and acked < s.wait_replicas then
            failed = ((((((("ngx.ipc: cluster: " .. where(s)) .. ": added to the stream, but only ") .. tostring(acked)) .. " of ") .. tostring(s.wait_replicas)) .. " replica(s) had it within ") .. tostring(s.wait_ms)) .. " ms: a failover now may lose it; sending it again may deliver it twice"
        end
        if failed ~= nil and v ~= nil then
            counters.unreplicated = counters.unreplicated + n
        end
        if acked == nil and not wusable then
            drop()
        end
    end
    if v == nil and not_run(err) then
        drop()
        local again = {}
        local retry = 0
        do
            local i = 1
            while i <= n do
                local it = batch[i]
                if it.tries < RETRIES and not it.abandoned then
                    it.tries = it.tries + 1
                    retry = retry + 1
                    again[retry] = it
                else
                    answer(it, failed)
                end
                i = i + 1
            end
        end
        requeue(again, retry)
        return
    end
    answer_all(batch, 1, n, failed)
end
--- Answers everything still queued with err.
local function fail_queue(batch, err)
    while head < tail do
        local n = take(batch)
        answer_all(batch, 1, n, err)
        forget(batch, n)
    end
end
local function serve(s, batch)
    while true do
        do
            if head == tail then
                if ngx.worker.exiting() then
                    return
                end
                if sock ~= nil and ngx.now() - used_at >= s.keepalive_ms / 1000 then
                    drop()
                end
                idle = true
                wake:wait(1)
                idle = false
            else
                if sock == nil then
                    local err = open(s)
                    if err ~= nil then
                        fail_queue(batch, err)
                        goto __continue51
                    end
                end
                local n = take(batch)
                if n > 0 then
                    flush(s, batch, n)
                    forget(batch, n)
                    ngx.update_time()
                    used_at = ngx.now()
                end
            end
        end
        ::__continue51::
    end
end
local function publisher(premature)
    local batch = {}
    local ok = true
    local err = nil
    if not premature then
        ok, err = pcall(serve, state.settings, batch)
    end
    idle = false
    started = false
    drop()
    if not ok then
        ngx.log(ngx.ERR, "ngx.ipc: cluster publisher failed: ", err)
        for ____, it in pairs(batch) do
            if it.status == SENT then
                answer(
                    it,
                    "ngx.ipc: cluster publisher failed: " .. tostring(err)
                )
            end
        end
        fail_queue(
            batch,
            "ngx.ipc: cluster publisher failed: " .. tostring(err)
        )
    end
end
--- Starts the publisher timer; nil, err when nginx refuses a timer or a semaphore.
local function start()
    if wake == nil then
        local sema, err = semaphore.new(0)
        if sema == nil then
            return "ngx.ipc: cluster: cannot create a semaphore: " .. err
        end
        wake = sema
    end
    local ok, err = ngx.timer.at(0, publisher)
    if ok == nil then
        return "ngx.ipc: cluster: cannot start the publisher: " .. err
    end
    started = true
    return nil
end
local function take_item(name, data)
    local it = table.remove(spare)
    if it == nil then
        local sema, err = semaphore.new(0)
        if sema == nil then
            return nil, "ngx.ipc: cluster: cannot create a semaphore: " .. err
        end
        it = {
            name = name,
            data = data,
            sema = sema,
            status = QUEUED,
            abandoned = false,
            tries = 0,
            err = nil
        }
    else
        it.name = name
        it.data = data
        it.status = QUEUED
        it.abandoned = false
        it.tries = 0
        it.err = nil
    end
    return it
end
local function publish(s, name, data)
    if not started then
        local err = start()
        if err ~= nil then
            return nil, err
        end
    end
    local it, ierr = take_item(name, data)
    if it == nil then
        return nil, ierr
    end
    queue[tail] = it
    tail = tail + 1
    if idle then
        idle = false
        wake:post(1)
    end
    local woke = it.sema:wait((s.timeout_ms + s.wait_ms) / 1000)
    if woke ~= true then
        it.abandoned = true
        local unknown = it.status == SENT and " (it was sent: Redis may have added it)" or ""
        return nil, (("ngx.ipc: cluster: " .. where(s)) .. ": timeout") .. unknown
    end
    local err = it.err
    it.data = ""
    spare[#spare + 1] = it
    if err ~= nil then
        return nil, err
    end
    return true
end
--- Sends an alert to every worker of every instance that shares the stream, this one
-- included. `true` once Redis has it (and, with `wait`, as many replicas); nil, err
-- when Redis cannot be reached within `timeout` or refuses it, or the alert is over
-- the caps.
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
