local ____exports = {}
local semaphore = require("ngx.semaphore")
local shim = require("ngx.ipc.shim")
--- How long one wait lasts. The wait's timer cannot be cancelled, so this bounds how
-- long a quitting or reloading worker waits for the loop to notice and return.
local WAIT_SECONDS = 1
local sema
local dispatch
local running = false
local discarded = 0
local function drain(handle)
    while true do
        local sender, name, data = shim.recv()
        if sender == nil then
            return
        end
        handle(sender, name, data)
    end
end
--- Corrupt and truncated input is dropped by the shim; say so in the log, once per wake-up.
local function report_discards()
    local c = shim.counters()
    local total = c.packets_discarded + c.alerts_truncated
    if total ~= discarded then
        discarded = total
        ngx.log(
            ngx.ERR,
            "ngx.ipc: discarded ",
            c.packets_discarded,
            " corrupt packets (",
            c.bytes_discarded,
            " bytes) and ",
            c.alerts_truncated,
            " truncated alerts so far"
        )
    end
end
local function run(premature)
    local sem = sema
    local handle = dispatch
    if not premature then
        while not ngx.worker.exiting() do
            sem:wait(WAIT_SECONDS)
            drain(handle)
            report_discards()
        end
    end
    drain(handle)
    running = false
end
--- Starts the loop once per worker: creates the semaphore, joins the shim, arms the timer.
function ____exports.start(handle)
    if running then
        return true
    end
    if sema == nil then
        local sem, err = semaphore.new(0)
        if sem == nil then
            return nil, "ngx.ipc: cannot create a semaphore: " .. err
        end
        sema = sem
    end
    local ok, err = shim.start(sema.sem)
    if ok == nil then
        return nil, err
    end
    dispatch = handle
    local timer, terr = ngx.timer.at(0, run)
    if timer == nil then
        return nil, "ngx.ipc: cannot start the receive loop: " .. terr
    end
    running = true
    return true
end
return ____exports
