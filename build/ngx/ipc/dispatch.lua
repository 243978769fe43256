local ____exports = {}
local shim = require("ngx.ipc.shim")
--- Alert names that start with this byte are reserved for the module.
____exports.RESERVED = "\0"
local RESERVED_BYTE = 0
local handlers = {}
local internal = {}
local joined = false
local owner
local from_pid
local from_id
local id_known = false
local from_instance
local from_remote = false
function ____exports.is_reserved(name)
    return string.byte(name, 1) == RESERVED_BYTE
end
function ____exports.set(name, handler)
    handlers[name] = handler
    if joined then
        shim.want(name, handler ~= nil)
    end
end
--- The module's own handler for a reserved name; undefined deletes it.
function ____exports.reserve(name, fn)
    internal[name] = fn
    if joined then
        shim.want(name, fn ~= nil)
    end
end
--- This VM has joined: the shim learns every name it handles, then each change.
function ____exports.join()
    if joined then
        return
    end
    joined = true
    for name in pairs(handlers) do
        shim.want(name, true)
    end
    for name in pairs(internal) do
        shim.want(name, true)
    end
end
local function mine()
    return owner ~= nil and coroutine.running() == owner
end
--- The sending worker's pid, inside the handler's own coroutine.
function ____exports.sender()
    local ____mine_result_0
    if mine() then
        ____mine_result_0 = from_pid
    else
        ____mine_result_0 = nil
    end
    return ____mine_result_0
end
--- The sending worker's id (looked up when first asked for: most handlers never ask).
function ____exports.sender_id()
    if not mine() then
        return nil
    end
    if not id_known then
        local ____temp_1
        if from_pid == nil then
            ____temp_1 = nil
        else
            ____temp_1 = shim.worker_id(from_pid)
        end
        from_id = ____temp_1
        id_known = true
    end
    return from_id
end
--- The sending nginx instance of an alert relayed from Redis; nil for local alerts.
function ____exports.sender_instance()
    local ____mine_result_2
    if mine() then
        ____mine_result_2 = from_instance
    else
        ____mine_result_2 = nil
    end
    return ____mine_result_2
end
--- Whether the alert being handled came from a worker of another nginx instance.
function ____exports.sender_remote()
    return mine() and from_remote
end
--- Runs the handler for `name` as if the alert came from `pid` (worker `id`, nginx
-- instance `instance`; `remote` when that pid is on another host), with the sender
-- fields set for it alone. An error it raises is logged.
function ____exports.invoke(name, data, pid, id, instance, remote)
    local handler = handlers[name]
    if handler == nil then
        return "none"
    end
    local o, p, i, k, s, r = owner, from_pid, from_id, id_known, from_instance, from_remote
    owner = coroutine.running()
    from_pid = pid
    from_id = id
    id_known = id ~= nil
    from_instance = instance
    from_remote = remote
    local ok, a, b = xpcall(handler, debug.traceback, data)
    owner, from_pid, from_id, id_known, from_instance, from_remote = o, p, i, k, s, r
    if not ok then
        ngx.log(
            ngx.ERR,
            ((("ngx.ipc: handler for alert \"" .. name) .. "\" from worker ") .. tostring(pid)) .. " failed: ",
            tostring(a)
        )
        return "error", a
    end
    return "ok", a, b
end
--- Runs what handles a local alert; the receive loop calls this for every alert.
function ____exports.run(from, name, data)
    if string.byte(name, 1) == RESERVED_BYTE then
        local fn = internal[name]
        if fn ~= nil then
            fn(from, data)
        end
        return
    end
    ____exports.invoke(
        name,
        data,
        from,
        nil,
        nil,
        false
    )
end
return ____exports
