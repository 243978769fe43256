local ____exports = {}
local ffi = require("ffi")
--- The FFI block of c/ngx_ipc.h, verbatim; t/unit/cdef_spec.lua keeps the two equal.
____exports.cdef = "\ntypedef struct {\n    int32_t      sender;\n    uint32_t     name_len;\n    uint32_t     data_len;\n    const char  *name;\n    const char  *data;\n} ngx_ipc_alert_t;\n\ntypedef struct {\n    uint64_t     alerts_sent;\n    uint64_t     bytes_sent;\n    uint64_t     alerts_received;\n    uint64_t     bytes_received;\n    uint64_t     packets_discarded;\n    uint64_t     bytes_discarded;\n    uint64_t     alerts_truncated;\n    uint64_t     send_errors;\n} ngx_ipc_counters_t;\n\nint ngx_ipc_start(void *sema);\nint ngx_ipc_start_standalone(const char *dir, int32_t pid);\nint ngx_ipc_send(int32_t pid, const char *name, size_t name_len,\n    const char *data, size_t data_len);\nint ngx_ipc_broadcast(const char *name, size_t name_len,\n    const char *data, size_t data_len);\nint ngx_ipc_recv(ngx_ipc_alert_t *alert);\nint ngx_ipc_poll(void);\nint ngx_ipc_feed(const char *buf, size_t len);\nvoid ngx_ipc_counters(ngx_ipc_counters_t *out);\nconst char *ngx_ipc_last_error(void);\nconst char *ngx_ipc_dir(void);\n"
ffi.cdef(____exports.cdef)
--- File name of the shim, searched for in package.cpath like a C module.
local LIBRARY = "ngx_ipc_shim"
local ffi_string = ffi.string
local ffi_new = ffi.new
local lib
local alert
local counters_out
local c_send
local c_broadcast
local c_recv
local function load()
    if lib ~= nil then
        return lib
    end
    local path, searched = package.searchpath(LIBRARY, package.cpath)
    if path == nil then
        error((("ngx.ipc: cannot find the shim " .. LIBRARY) .. ".so in package.cpath:") .. searched, 0)
    end
    local loaded = ffi.load(path)
    alert = ffi_new("ngx_ipc_alert_t")
    counters_out = ffi_new("ngx_ipc_counters_t")
    c_send = loaded.ngx_ipc_send
    c_broadcast = loaded.ngx_ipc_broadcast
    c_recv = loaded.ngx_ipc_recv
    lib = loaded
    return loaded
end
local function failure()
    return nil, ffi_string(load().ngx_ipc_last_error())
end
local function result(rc)
    if rc ~= 0 then
        return failure()
    end
    return true
end
--- Joins this nginx worker: its pipe, its read event, wake-ups posted to `sema`.
function ____exports.start(sema)
    return result(load().ngx_ipc_start(sema))
end
--- Without nginx (tests, tools): `dir` is the instance directory; poll() pumps.
function ____exports.start_standalone(dir, pid)
    return result(load().ngx_ipc_start_standalone(dir, pid))
end
function ____exports.send(pid, name, data)
    return result(c_send(
        pid,
        name,
        #name,
        data,
        #data
    ))
end
function ____exports.broadcast(name, data)
    return result(c_broadcast(name, #name, data, #data))
end
--- The next complete alert, or nothing when none waits.
function ____exports.recv()
    if c_recv(alert) == 0 then
        return
    end
    return alert.sender, ffi_string(alert.name, alert.name_len), ffi_string(alert.data, alert.data_len)
end
function ____exports.poll()
    return result(load().ngx_ipc_poll())
end
function ____exports.feed(bytes)
    return result(load().ngx_ipc_feed(bytes, #bytes))
end
function ____exports.counters()
    load().ngx_ipc_counters(counters_out)
    local c = counters_out
    return {
        alerts_sent = tonumber(c.alerts_sent),
        bytes_sent = tonumber(c.bytes_sent),
        alerts_received = tonumber(c.alerts_received),
        bytes_received = tonumber(c.bytes_received),
        packets_discarded = tonumber(c.packets_discarded),
        bytes_discarded = tonumber(c.bytes_discarded),
        alerts_truncated = tonumber(c.alerts_truncated),
        send_errors = tonumber(c.send_errors)
    }
end
--- The instance directory holding this instance's pipes ("" before start).
function ____exports.dir()
    return ffi_string(load().ngx_ipc_dir())
end
return ____exports
