local ____exports = {}
local ffi = require("ffi")
--- The FFI block of c/ngx_ipc.h, verbatim; t/unit/cdef_spec.lua keeps the two equal.
____exports.cdef = "\ntypedef struct {\n    int32_t      sender;\n    uint32_t     name_len;\n    uint32_t     data_len;\n    uint32_t     lent;\n    const char  *name;\n    const char  *data;\n} ngx_ipc_alert_t;\n\ntypedef struct {\n    uint64_t     alerts_sent;\n    uint64_t     bytes_sent;\n    uint64_t     writes;\n    uint64_t     alerts_received;\n    uint64_t     bytes_received;\n    uint64_t     packets_discarded;\n    uint64_t     bytes_discarded;\n    uint64_t     alerts_truncated;\n    uint64_t     refused_backlog;\n    uint64_t     refused_no_worker;\n    uint64_t     lost_exited;\n    uint64_t     dropped_memory;\n    uint64_t     send_queued;\n    uint64_t     receive_ready;\n    uint64_t     receive_partial;\n} ngx_ipc_counters_t;\n\nint ngx_ipc_configure(uint64_t send_backlog, uint64_t receive_backlog);\nint ngx_ipc_start(void *sema, const char *subsystem, int32_t id,\n    int32_t count);\nint ngx_ipc_start_standalone(const char *dir, int32_t pid);\nint ngx_ipc_send(int32_t pid, const char *name, size_t name_len,\n    const char *data, size_t data_len);\nint ngx_ipc_broadcast(const char *name, size_t name_len,\n    const char *data, size_t data_len);\nint ngx_ipc_send_worker(int32_t id, const char *name, size_t name_len,\n    const char *data, size_t data_len);\nint32_t ngx_ipc_send_any(const char *name, size_t name_len,\n    const char *data, size_t data_len);\nint32_t ngx_ipc_worker_id(int32_t pid);\nint ngx_ipc_workers(int32_t *ids, int32_t *pids, int n);\nvoid ngx_ipc_lend(uint32_t ref);\nint ngx_ipc_recv(int32_t consumer, ngx_ipc_alert_t *alert);\nint ngx_ipc_poll(void);\nint ngx_ipc_feed(const char *buf, size_t len);\nvoid ngx_ipc_counters(ngx_ipc_counters_t *out);\ndouble ngx_ipc_dropped(void);\nint ngx_ipc_backlog(int32_t *pids, uint64_t *bytes, int n);\nvoid ngx_ipc_release(int32_t consumer);\nint ngx_ipc_want(int32_t consumer, const char *name, size_t name_len, int on);\nint32_t ngx_ipc_wanted_by(const char *name, size_t name_len);\nint ngx_ipc_consumers(void);\nconst char *ngx_ipc_last_error(void);\nconst char *ngx_ipc_dir(void);\n"
ffi.cdef(____exports.cdef)
--- File name of the shim, searched for in package.cpath like a C module.
local LIBRARY = "ngx_ipc_shim"
local ffi_string = ffi.string
local ffi_new = ffi.new
local lib
local alert
local counters_out
local function pair_of(a_type, b_type)
    local size = 64
    return {
        size = size,
        a_type = a_type,
        b_type = b_type,
        a = ffi_new(a_type, size),
        b = ffi_new(b_type, size)
    }
end
--- Calls `fill` on the pair, growing it once if need be; how many entries it holds.
local function fill_pair(p, fill)
    local n = fill(p.a, p.b, p.size)
    if n <= p.size then
        return n
    end
    p.size = n * 2
    p.a = ffi_new(p.a_type, p.size)
    p.b = ffi_new(p.b_type, p.size)
    return fill(p.a, p.b, p.size)
end
local backlog_pair
local workers_pair
local c_send
local c_broadcast
local c_send_worker
local c_send_any
local c_lend
local c_recv
local c_release
local lent = {}
local last_ref = 0
local self_pid = -1
local self_id = -1
--- This Lua VM's number among those of the process that take alerts (an http
-- and a stream VM in one worker: ngx_ipc_start in c/ngx_ipc.h).
local consumer = 0
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
    backlog_pair = pair_of("int32_t[?]", "uint64_t[?]")
    workers_pair = pair_of("int32_t[?]", "int32_t[?]")
    c_send = loaded.ngx_ipc_send
    c_broadcast = loaded.ngx_ipc_broadcast
    c_send_worker = loaded.ngx_ipc_send_worker
    c_send_any = loaded.ngx_ipc_send_any
    c_lend = loaded.ngx_ipc_lend
    c_recv = loaded.ngx_ipc_recv
    c_release = loaded.ngx_ipc_release
    lib = loaded
    return loaded
end
local function last_error()
    return ffi_string(load().ngx_ipc_last_error())
end
local function failure()
    return nil, last_error()
end
local function result(rc)
    if rc ~= 0 then
        return failure()
    end
    return true
end
--- Joins this nginx worker: its pipe, its read event, wake-ups posted to `sema`
-- by the `subsystem`'s ("http", "stream") semaphore module. `id` is its
-- ngx.worker.id() (-1 for a process without one, such as the privileged
-- agent), `count` ngx.worker.count(). In a process whose other Lua VM joined
-- already, this VM shares its pipe. This VM's consumer number.
function ____exports.start(sema, subsystem, id, count)
    local rc = load().ngx_ipc_start(sema, subsystem, id, count)
    if rc < 0 then
        return nil, last_error()
    end
    self_pid = ngx.worker.pid()
    self_id = id
    consumer = rc
    return rc
end
--- Tells the shim whether this VM has a handler for `name`.
function ____exports.want(name, on)
    load().ngx_ipc_want(consumer, name, #name, on and 1 or 0)
end
--- The lowest-numbered VM of this process with a handler for `name`, or -1.
function ____exports.wanted_by(name)
    return load().ngx_ipc_wanted_by(name, #name)
end
--- How many Lua VMs of this process take alerts.
function ____exports.consumers()
    return load().ngx_ipc_consumers()
end
--- Without nginx (tests, tools): `dir` is the instance directory; poll() pumps.
function ____exports.start_standalone(dir, pid)
    local rc = load().ngx_ipc_start_standalone(dir, pid)
    if rc == 0 then
        self_pid = pid
    end
    return result(rc)
end
local LEND_MIN = 4096
local function lend(data)
    last_ref = last_ref >= 2147483647 and 1 or last_ref + 1
    lent[last_ref] = data
    c_lend(last_ref)
    return last_ref
end
--- The result of a send that may have taken a loan: 1 it did, 0 it did not. A
-- refused broadcast may still have taken it (the other copies went out): its
-- string stays until the receive loop finds nothing waiting (recv).
local function settle(ref, rc, partial)
    if rc ~= 1 and not (rc < 0 and partial) then
        lent[ref] = nil
    end
    if rc < 0 then
        return failure()
    end
    return true
end
--- A send to `to` (a pid or a worker id), lending `data` when `to` is this worker (`own`).
local function send_to(c, to, own, name, data)
    if to == own and #data >= LEND_MIN then
        return settle(
            lend(data),
            c(
                to,
                name,
                #name,
                data,
                #data
            ),
            false
        )
    end
    return result(c(
        to,
        name,
        #name,
        data,
        #data
    ))
end
function ____exports.send(pid, name, data)
    return send_to(
        c_send,
        pid,
        self_pid,
        name,
        data
    )
end
function ____exports.broadcast(name, data)
    if #data >= LEND_MIN and self_pid > 0 then
        return settle(
            lend(data),
            c_broadcast(name, #name, data, #data),
            true
        )
    end
    return result(c_broadcast(name, #name, data, #data))
end
--- To whichever worker holds worker id `id`, now or once it joins.
function ____exports.send_worker(id, name, data)
    return send_to(
        c_send_worker,
        id,
        self_id,
        name,
        data
    )
end
--- To one joined worker, taking turns; the pid it went to.
function ____exports.send_any(name, data)
    local pid = c_send_any(name, #name, data, #data)
    if pid < 0 then
        return nil, last_error()
    end
    return true, pid
end
--- A joined worker's id, or nothing.
function ____exports.worker_id(pid)
    local id = load().ngx_ipc_worker_id(pid)
    local ____temp_0
    if id < 0 then
        ____temp_0 = nil
    else
        ____temp_0 = id
    end
    return ____temp_0
end
--- The joined workers of this generation, sorted by id, then the agent.
function ____exports.workers()
    local n = fill_pair(
        workers_pair,
        load().ngx_ipc_workers
    )
    local list = {}
    do
        local i = 0
        while i < n do
            local id = tonumber(workers_pair.a[i])
            local pid = tonumber(workers_pair.b[i])
            list[i + 1] = id < 0 and ({pid = pid, agent = true}) or ({id = id, pid = pid})
            i = i + 1
        end
    end
    return list
end
--- From this size on, the C copy of an alert is freed as soon as Lua has its own,
-- so a large alert is held once, not twice, while its handler runs.
local RELEASE_MIN = 1048576
--- The next complete alert, or nothing when none waits.
function ____exports.recv()
    if c_recv(consumer, alert) == 0 then
        if (next(lent)) ~= nil then
            lent = {}
        end
        return
    end
    local sender = alert.sender
    local name = ffi_string(alert.name, alert.name_len)
    local ref = alert.lent
    if ref ~= 0 then
        local data = lent[ref]
        lent[ref] = nil
        return sender, name, data
    end
    local size = alert.data_len
    local data = ffi_string(alert.data, size)
    if size >= RELEASE_MIN then
        c_release(consumer)
    end
    return sender, name, data
end
function ____exports.poll()
    return result(load().ngx_ipc_poll())
end
function ____exports.feed(bytes)
    return result(load().ngx_ipc_feed(bytes, #bytes))
end
--- The fields of ngx_ipc_counters_t, in the header's order.
____exports.COUNTERS = {
    "alerts_sent",
    "bytes_sent",
    "writes",
    "alerts_received",
    "bytes_received",
    "packets_discarded",
    "bytes_discarded",
    "alerts_truncated",
    "refused_backlog",
    "refused_no_worker",
    "lost_exited",
    "dropped_memory",
    "send_queued",
    "receive_ready",
    "receive_partial"
}
--- A fresh table of every counter, as Lua numbers.
function ____exports.counters()
    load().ngx_ipc_counters(counters_out)
    local out = {}
    for ____, name in ipairs(____exports.COUNTERS) do
        out[name] = tonumber(counters_out[name])
    end
    return out
end
--- What was dropped so far, all reasons summed, as a double: the loop asks at every
-- wake-up, and this copies no struct and boxes no uint64_t where the loop runs
-- interpreted.
function ____exports.dropped()
    return load().ngx_ipc_dropped()
end
--- Bytes queued per destination pid.
function ____exports.backlog()
    local n = fill_pair(
        backlog_pair,
        load().ngx_ipc_backlog
    )
    local out = {}
    do
        local i = 0
        while i < n do
            out[tonumber(backlog_pair.a[i])] = tonumber(backlog_pair.b[i])
            i = i + 1
        end
    end
    return out
end
function ____exports.configure(send_backlog, receive_backlog)
    return result(load().ngx_ipc_configure(send_backlog, receive_backlog))
end
--- The instance directory holding this instance's pipes ("" before start).
function ____exports.dir()
    return ffi_string(load().ngx_ipc_dir())
end
return ____exports
