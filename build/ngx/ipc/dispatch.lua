local ____exports = {}
--- Names that start with a NUL byte are reserved for the module.
____exports.RESERVED = "\0"
local reserved = {}
local runner
--- Registers the module's own handler for a reserved name.
function ____exports.reserve(name, fn)
    reserved[name] = fn
end
--- The module's handler for a reserved name (stub only: ipc.ts's dispatch asks).
function ____exports.reserved_handler(name)
    return reserved[name]
end
--- Stub only: ipc.ts hands over the function that runs a user handler with the sender fields set.
function ____exports.bind(fn)
    runner = fn
end
--- Runs the user's handler for `name` as if the alert came from `pid`.
function ____exports.deliver(name, data, pid, id, instance, remote)
    runner(
        name,
        data,
        pid,
        id,
        instance,
        remote
    )
end
return ____exports
