local ____exports = {}
local semaphore = require("ngx.semaphore")
local shim = require("ngx.ipc.shim")
--- How long one wait lasts. The wait's timer cannot be cancelled, so this bounds how
-- long a quitting or reloading worker waits for the loop to notice and return.
local WAIT_SECONDS = 1
local sema
local dispatch
local running = false
local dropped = 0
--- This VM's consumer number (shim.start), -1 before; only the first reports drops.
local consumer = -1
--- After a handler of an alert this large, a full garbage collection: otherwise
-- LuaJIT keeps the strings of several large alerts alive between its steps,
-- and a burst of them holds several times the memory one of them needs.
local COLLECT_MIN = 16777216
--- Hands one alert to its handler; its size, or nothing when none waits.
local function drain_one(handle)
    local sender, name, data = shim.recv()
    if sender == nil then
        return nil
    end
    handle(sender, name, data)
    return #data
end
local function drain(handle)
    while true do
        local size = drain_one(handle)
        if size == nil then
            return
        end
        if size >= COLLECT_MIN then
            collectgarbage("collect")
        end
    end
end
--- What the shim had to drop goes to the log, once per wake-up that saw more of it.
local function report_drops()
    local total = shim.dropped()
    if total == dropped then
        return
    end
    dropped = total
    local c = shim.counters()
    ngx.log(
        ngx.ERR,
        "ngx.ipc: dropped so far: ",
        c.packets_discarded,
        " corrupt packets (",
        c.bytes_discarded,
        " bytes), ",
        c.alerts_truncated,
        " truncated alerts, ",
        c.dropped_memory,
        " alerts this worker had no memory to assemble, ",
        c.lost_exited,
        " alerts for workers that exited (queued, or let go by a replacement)"
    )
end
local function run(premature)
    local sem = sema
    local handle = dispatch
    if not premature then
        while not ngx.worker.exiting() do
            sem:wait(WAIT_SECONDS)
            drain(handle)
            if consumer == 0 then
                report_drops()
            end
        end
    end
    drain(handle)
    running = false
end
--- Starts the loop once per worker (per Lua VM of it: http, stream): creates the
-- semaphore, joins the shim, arms the timer. This VM's consumer number.
function ____exports.start(handle)
    if running then
        return consumer
    end
    if sema == nil then
        local sem, err = semaphore.new(0)
        if sem == nil then
            return nil, "ngx.ipc: cannot create a semaphore: " .. err
        end
        sema = sem
    end
    if consumer < 0 then
        local c, err = shim.start(
            sema.sem,
            ngx.config.subsystem or "http",
            ngx.worker.id() or -1,
            ngx.worker.count()
        )
        if c == nil then
            return nil, err
        end
        consumer = c
    end
    dispatch = handle
    local timer, terr = ngx.timer.at(0, run)
    if timer == nil then
        return nil, "ngx.ipc: cannot start the receive loop: " .. terr
    end
    running = true
    return consumer
end
return ____exports
