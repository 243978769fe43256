local ____exports = {}
local shim = require("ngx.ipc.shim")
--- This worker has joined and set up its part (handler, and reader for worker 0).
____exports.running = false
____exports.instance = ""
____exports.lease_key = ""
____exports.pos_key = ""
--- The master's pid: a lease holder that is not its child is gone.
____exports.master_pid = 0
____exports.counters = {
    published = 0,
    publish_errors = 0,
    received = 0,
    relayed = 0,
    gaps = 0,
    lost = 0,
    reconnects = 0,
    malformed = 0,
    failovers = 0,
    failover_lost = 0,
    unreplicated = 0,
    skipped = 0,
    redelivered = 0,
    rewinds = 0
}
--- ipc.ts hands over its join function once, at load.
function ____exports.attach(fn)
    ____exports.join = fn
end
function ____exports.set_settings(s)
    ____exports.settings = s
end
--- A whole file's text (from /proc), or undefined when it cannot be read.
function ____exports.read_text(path)
    local f = io.open(path, "r")
    if f == nil then
        return nil
    end
    local s = f:read("*a")
    f:close()
    return s
end
--- "host/master pid/master start" (the start as Unix time to 1/100 s), from the shim's
-- instance directory (<pidns>-<master pid>-<start in clock ticks>-<cycle>).
local function find_instance()
    local host = (string.match(
        ____exports.read_text("/proc/sys/kernel/hostname") or "",
        "^%s*(.-)%s*$"
    ))
    local master, start = string.match(
        shim.dir(),
        "%d+%-(%d+)%-(%d+)%-%x+/?$"
    )
    local btime = string.match(
        ____exports.read_text("/proc/stat") or "",
        "\nbtime (%d+)"
    )
    ____exports.master_pid = tonumber(master) or 0
    local started = (tonumber(btime) or 0) + (tonumber(start) or 0) / 100
    return ((((host == "" and "localhost" or host) .. "/") .. (master or "?")) .. "/") .. string.format("%.2f", started)
end
--- Whether process `pid` is alive and a child of this instance's master.
function ____exports.our_worker(pid)
    local stat = ____exports.read_text(("/proc/" .. pid) .. "/stat")
    if stat == nil then
        return false
    end
    local st, ppid = string.match(stat, "%) (%a) (%d+)")
    return not (st == "Z" or st == "X" or tonumber(ppid) ~= ____exports.master_pid)
end
--- Marks this worker's part started, and finds the instance it belongs to and its keys.
function ____exports.start(s)
    ____exports.running = true
    ____exports.instance = find_instance()
    ____exports.lease_key = (s.stream .. ":reader:") .. ____exports.instance
    ____exports.pos_key = (s.stream .. ":pos:") .. ____exports.instance
end
return ____exports
