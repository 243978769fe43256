local ____exports = {}
local dispatch = require("ngx.ipc.dispatch")
local state = require("ngx.ipc.cluster.state")
local counters = state.counters
--- The local alert that carries a stream entry to every worker of the instance.
____exports.LOCAL_NAME = dispatch.RESERVED .. "cluster"
--- Bytes a local broadcast adds per packet, and per alert, beyond name and data (an upper bound).
local PACKET_OVERHEAD = 64
local PACKET_PAYLOAD = 4000
--- Header "instance_len pid worker_id name_len\n", then instance, name and data.
function ____exports.encode(inst, pid, wid, name, data)
    return (((((((((tostring(#inst) .. " ") .. pid) .. " ") .. wid) .. " ") .. tostring(#name)) .. "\n") .. inst) .. name) .. data
end
--- Upper bound of the bytes a local broadcast of `size` envelope bytes puts in a queue.
function ____exports.packed(size)
    return #____exports.LOCAL_NAME + size + PACKET_OVERHEAD * (2 + math.floor(size / PACKET_PAYLOAD))
end
local function on_local(_from, env)
    local nl = string.find(env, "\n", 1, true)
    if nl == nil then
        counters.malformed = counters.malformed + 1
        return
    end
    local ilen, pid, wid, nlen = string.match(
        string.sub(env, 1, nl - 1),
        "^(%d+) (%d+) (%-?%d+) (%d+)$"
    )
    if nlen == nil then
        counters.malformed = counters.malformed + 1
        return
    end
    local i = tonumber(ilen)
    local n = tonumber(nlen)
    local inst = string.sub(env, nl + 1, nl + i)
    local name = string.sub(env, nl + i + 1, nl + i + n)
    local id = tonumber(wid)
    counters.received = counters.received + 1
    local ____dispatch_invoke_3 = dispatch.invoke
    local ____string_sub_result_1 = string.sub(env, nl + i + n + 1)
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
end
--- Registers this worker's handler of the local alert.
function ____exports.listen()
    dispatch.reserve(____exports.LOCAL_NAME, on_local)
end
return ____exports
