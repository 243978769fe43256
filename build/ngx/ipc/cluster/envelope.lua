local ____exports = {}
local dispatch = require("ngx.ipc.dispatch")
local slots = require("ngx.ipc.cluster.slots")
local state = require("ngx.ipc.cluster.state")
local counters = state.counters
--- The local alert that carries a stream entry to every worker of the instance.
____exports.LOCAL_NAME = dispatch.RESERVED .. "cluster"
--- Bytes a local broadcast adds per packet, and per alert, beyond name and data (an upper bound).
local PACKET_OVERHEAD = 64
local PACKET_PAYLOAD = 4000
--- How often a worker that waits for its slot tries again, and after how long it says so (seconds).
local RETAKE_EVERY = 0.005
local RETAKE_LOG = 1
--- A timer tries to take this worker's slot over (retake).
local retaking = false
local retake_since = 0
--- Header "instance_len pid worker_id name_len prev_id id seq\n", then instance, name
-- and data: the entry's id and sequence number, and the id of the entry relayed
-- before it (so a worker sees that it missed one).
function ____exports.encode(inst, pid, wid, name, prev, id, seq, data)
    return (((((((((((((((tostring(#inst) .. " ") .. pid) .. " ") .. wid) .. " ") .. tostring(#name)) .. " ") .. prev) .. " ") .. id) .. " ") .. tostring(seq)) .. "\n") .. inst) .. name) .. data
end
--- Upper bound of the bytes a local broadcast of `size` envelope bytes puts in a queue.
function ____exports.packed(size)
    return #____exports.LOCAL_NAME + size + PACKET_OVERHEAD * (2 + math.floor(size / PACKET_PAYLOAD))
end
local function retake(premature)
    if premature or ngx.worker.exiting() then
        retaking = false
        return
    end
    local ok, again = slots.take()
    if ok then
        retaking = false
        counters.redelivered = counters.redelivered + again
        return
    end
    ngx.update_time()
    if retake_since >= 0 and ngx.now() - retake_since >= RETAKE_LOG then
        retake_since = -1
        ngx.log(
            ngx.NOTICE,
            "ngx.ipc: cluster: worker ",
            ngx.worker.pid(),
            " (id ",
            ngx.worker.id(),
            ") waits for its predecessor to finish a handler before it handles cluster alerts"
        )
    end
    local t, err = ngx.timer.at(RETAKE_EVERY, retake)
    if t == nil then
        retaking = false
        ngx.log(ngx.ERR, "ngx.ipc: cluster: cannot wait for this worker's slot: ", err)
    end
end
--- Takes this worker's slot over when it can. While its predecessor still runs a
-- handler (a reload), the entries that come are let pass and a timer tries again:
-- taking the slot asks the reader to send them again (slots.take), so the receive
-- loop never waits on the old generation.
local function hold()
    local ok, again = slots.take()
    if ok then
        counters.redelivered = counters.redelivered + again
        return true
    end
    if not retaking then
        ngx.update_time()
        retake_since = ngx.now()
        local t = ngx.timer.at(RETAKE_EVERY, retake)
        retaking = t ~= nil
    end
    return false
end
local function on_local(_from, env)
    local nl = string.find(env, "\n", 1, true)
    if nl == nil then
        counters.malformed = counters.malformed + 1
        return
    end
    local ilen, pid, wid, nlen, pms, pn, ms, n, seq = string.match(
        string.sub(env, 1, nl - 1),
        "^(%d+) (%d+) (%-?%d+) (%d+) (%d+)%-(%d+) (%d+)%-(%d+) (%d+)$"
    )
    if seq == nil then
        counters.malformed = counters.malformed + 1
        return
    end
    local i = tonumber(ilen)
    local k = tonumber(nlen)
    local inst = string.sub(env, nl + 1, nl + i)
    local name = string.sub(env, nl + i + 1, nl + i + k)
    local ready = slots.ready()
    if ready then
        if ngx.worker.exiting() or not hold() then
            counters.skipped = counters.skipped + 1
            return
        end
        local e_ms = tonumber(ms)
        local e_n = tonumber(n)
        local e_seq = tonumber(seq)
        local verdict, trimmed = slots.verdict(
            tonumber(pms),
            tonumber(pn),
            e_ms,
            e_n,
            e_seq
        )
        if verdict ~= slots.HANDLE then
            counters.skipped = counters.skipped + 1
            if verdict == slots.GAP then
                slots.want()
            end
            return
        end
        counters.lost = counters.lost + trimmed
        slots.begin(e_ms, e_n, e_seq)
    end
    local id = tonumber(wid)
    counters.received = counters.received + 1
    local ____dispatch_invoke_3 = dispatch.invoke
    local ____string_sub_result_1 = string.sub(env, nl + i + k + 1)
    local ____tonumber_result_2 = tonumber(pid)
    local ____temp_0
    if id < 0 then
        ____temp_0 = nil
    else
        ____temp_0 = id
    end
    ____dispatch_invoke_3(
        name,
        ____string_sub_result_1,
        ____tonumber_result_2,
        ____temp_0,
        inst,
        inst ~= state.instance
    )
    if ready then
        slots.finish()
    end
end
--- Registers this worker's handler of the local alert, and maps the slots (`key`
-- names the stream, its Redis and the instance). A replacement of a worker killed with -9 takes
-- its slot over at once, asking for what its predecessor may not have handled.
function ____exports.listen(key)
    dispatch.reserve(____exports.LOCAL_NAME, on_local)
    if ngx.worker.id() == nil then
        return
    end
    local ok, err = slots.open(
        key,
        ngx.worker.count()
    )
    if ok == nil then
        ngx.log(
            ngx.ERR,
            "ngx.ipc: cluster: ",
            err,
            "; this worker handles every relayed alert it gets, ",
            "which can repeat alerts after a reader's restart"
        )
        return
    end
    if not ngx.worker.exiting() then
        hold()
    end
end
return ____exports
