local ____exports = {}
local ffi = require("ffi")
local dispatch = require("ngx.ipc.dispatch")
local slots = require("ngx.ipc.cluster.slots")
local state = require("ngx.ipc.cluster.state")
local counters = state.counters
--- The local alert that carries stream entries to every worker of the instance.
____exports.LOCAL_NAME = dispatch.RESERVED .. "cluster"
--- The doubles of an entry's header, and its bytes.
local HEAD = 10
local HEAD_BYTES = HEAD * 8
local head = ffi.new("double[?]", HEAD)
--- What pads an entry whose strings end `i` bytes past a multiple of 8.
local PAD = {
    "",
    "\0\0\0\0\0\0\0",
    "\0\0\0\0\0\0",
    "\0\0\0\0\0",
    "\0\0\0\0",
    "\0\0\0",
    "\0\0",
    "\0"
}
--- Bytes a local broadcast adds per packet, and per alert, beyond name and data (an upper bound).
local PACKET_OVERHEAD = 64
local PACKET_PAYLOAD = 4000
--- How often a worker that waits for its slot tries again, and after how long it says so (seconds).
local RETAKE_EVERY = 0.005
local RETAKE_LOG = 1
--- A timer tries to take this worker's slot over (retake).
local retaking = false
local retake_since = 0
--- One entry: a header of HEAD doubles (the id of the entry relayed before it, so a
-- worker sees that it missed one; the entry's id and sequence number; the origin's
-- pid and worker id; the lengths of instance, name and data), then instance, name and
-- data, padded to a multiple of 8 bytes. A local alert carries one or more entries,
-- one after the other, in the order they were read. Binary: a worker reads the
-- numbers in place, without a pattern or a string for each (the reader and the
-- workers share the host, so its byte order).
function ____exports.encode(inst, pid, wid, name, prev_ms, prev_n, ms, n, seq, data)
    head[0] = prev_ms
    head[1] = prev_n
    head[2] = ms
    head[3] = n
    head[4] = seq
    head[5] = pid
    head[6] = wid
    head[7] = #inst
    head[8] = #name
    head[9] = #data
    return (((ffi.string(head, HEAD_BYTES) .. inst) .. name) .. data) .. PAD[(#inst + #name + #data) % 8 + 1]
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
--- Handles one entry of an envelope, or lets it pass (this slot had it, or misses one before it).
local function entry(ready, h, b, inst, name, data)
    if ready then
        if ngx.worker.exiting() or not hold() then
            counters.skipped = counters.skipped + 1
            return
        end
        local e_ms = h[b + 2]
        local e_n = h[b + 3]
        local e_seq = h[b + 4]
        local verdict, trimmed = slots.verdict(
            h[b],
            h[b + 1],
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
    local wid = h[b + 6]
    local ____temp_0
    if wid < 0 then
        ____temp_0 = nil
    else
        ____temp_0 = wid
    end
    local id = ____temp_0
    counters.received = counters.received + 1
    dispatch.invoke(
        name,
        data,
        h[b + 5],
        id,
        inst,
        inst ~= state.instance
    )
    if ready then
        slots.finish()
    end
end
--- The entries of one envelope, in order. A malformed one ends it: the entries after it
-- cannot be told apart, and the next envelope's first entry names one this slot has
-- not handled, so the worker asks for them again.
local function on_local(_from, env)
    local size = #env
    local h = ffi.cast("const double *", env)
    local at = size % 8 == 0 and 0 or size
    if at > 0 then
        counters.malformed = counters.malformed + 1
    end
    while at < size do
        local b = at / 8
        if at + HEAD_BYTES > size then
            counters.malformed = counters.malformed + 1
            return
        end
        local i = h[b + 7]
        local k = h[b + 8]
        local d = h[b + 9]
        local start = at + HEAD_BYTES + 1
        local stop = start + i + k + d
        if not (i >= 0 and k >= 0 and d >= 0 and stop <= size + 1 and stop % 1 == 0) then
            counters.malformed = counters.malformed + 1
            return
        end
        entry(
            slots.ready(),
            h,
            b,
            string.sub(env, start, start + i - 1),
            string.sub(env, start + i, start + i + k - 1),
            string.sub(env, start + i + k, stop - 1)
        )
        at = stop - 1 + (8 - (stop - 1) % 8) % 8
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
