local ____exports = {}
local base_of, HEADER, SLOT, S_MS, S_N, S_WANT, p, my_slot, wanted_at
local ffi = require("ffi")
local shim = require("ngx.ipc.shim")
local ____state = require("ngx.ipc.cluster.state")
local read_text = ____state.read_text
function base_of(i)
    return HEADER + SLOT * i
end
--- Asks the reader to resend after this slot's position (once per position).
function ____exports.want()
    local b = base_of(my_slot)
    local at = (tostring(p[b + S_MS]) .. "-") .. tostring(p[b + S_N])
    if at == wanted_at then
        return
    end
    wanted_at = at
    p[b + S_WANT] = p[b + S_WANT] + 1
end
local declared = pcall(ffi.typeof, "ngx_ipc_cl_dirent_t")
if not declared then
    ffi.cdef("\nint ngx_ipc_cl_open(const char *path, int flags, int mode) __asm__(\"open\");\nint ngx_ipc_cl_close(int fd) __asm__(\"close\");\nint ngx_ipc_cl_ftruncate(int fd, int64_t length) __asm__(\"ftruncate\");\nint64_t ngx_ipc_cl_lseek(int fd, int64_t offset, int whence) __asm__(\"lseek\");\nvoid *ngx_ipc_cl_mmap(void *addr, size_t length, int prot, int flags, int fd,\n    int64_t offset) __asm__(\"mmap\");\ntypedef struct {\n    uint64_t        d_ino;\n    int64_t         d_off;\n    unsigned short  d_reclen;\n    unsigned char   d_type;\n    char            d_name[256];\n} ngx_ipc_cl_dirent_t;\nvoid *ngx_ipc_cl_opendir(const char *path) __asm__(\"opendir\");\nngx_ipc_cl_dirent_t *ngx_ipc_cl_readdir(void *dir) __asm__(\"readdir64\");\nint ngx_ipc_cl_closedir(void *dir) __asm__(\"closedir\");\nint ngx_ipc_cl_unlink(const char *path) __asm__(\"unlink\");\nchar *ngx_ipc_cl_strerror(int errnum) __asm__(\"strerror\");\n")
end
local C = ffi.C
local O_RDWR = 2
local O_CREAT = 64
local O_CLOEXEC = 524288
local SEEK_END = 2
local PROT_RW = 3
local MAP_SHARED = 1
HEADER = 8
SLOT = 16
local H_MS = 1
local H_SET = 4
local H_GEN = 5
local S_VER = 0
local S_PID = 1
local S_START = 2
S_MS = 3
S_N = 4
local S_SEQ = 5
--- 1 while a handler of the holder runs (from `begun` on).
local S_BUSY = 6
S_WANT = 7
local S_BMS = 8
local S_BN = 9
local S_BSEQ = 10
--- The holder's generation (its cycle's address): its own reader relays to it.
local S_GEN = 11
--- How often a seqlock read is tried before the record counts as unreadable now.
local TRIES = 1000
--- Name prefix of the files; the version of the layout is part of it.
local PREFIX = "cluster1_"
--- Slots the mapping holds.
local mapped = 0
my_slot = -1
local my_pid = 0
local my_start = 0
local my_gen = 0
--- This worker holds its slot.
local holding = false
wanted_at = ""
--- The mapped file.
local path = ""
--- The slots of `count` workers: one per worker id and Lua VM kind (http, stream).
function ____exports.span(count)
    return 2 * count
end
--- Whether the slots are in use in this worker (the file could be mapped).
function ____exports.ready()
    return p ~= nil
end
local function errstr()
    return ffi.string(C.ngx_ipc_cl_strerror(ffi.errno()))
end
--- A process's start time (clock ticks since boot), or undefined when it is gone or a zombie.
local function start_of(pid)
    local stat = read_text(("/proc/" .. tostring(pid)) .. "/stat")
    if stat == nil then
        return nil
    end
    local rest = string.match(stat, "%) (.*)$")
    if rest == nil then
        return nil
    end
    local fields = {}
    for f in string.gmatch(rest, "%S+") do
        fields[#fields + 1] = f
        if #fields >= 20 then
            break
        end
    end
    if fields[1] == "Z" or fields[1] == "X" then
        return nil
    end
    return tonumber(fields[20])
end
--- Removes the files of masters that are gone (their pid is dead or now another process's).
local function sweep(root, ns)
    local dir = C.ngx_ipc_cl_opendir(root)
    if dir == nil then
        return
    end
    local stale = {}
    while true do
        local de = C.ngx_ipc_cl_readdir(dir)
        if de == nil then
            break
        end
        local name = ffi.string(de.d_name)
        local ens, mpid, mstart = string.match(name, ("^" .. PREFIX) .. "(%d+)%-(%d+)%-(%d+)%-%x+$")
        if ens == ns and start_of(tonumber(mpid)) ~= tonumber(mstart) then
            stale[#stale + 1] = name
        end
    end
    C.ngx_ipc_cl_closedir(dir)
    for ____, name in ipairs(stale) do
        C.ngx_ipc_cl_unlink((root .. "/") .. name)
    end
end
--- Maps the slots' file of this master and `key` (the stream, its Redis, the instance), creating
-- it, or growing it to `count` slots. nil, err when it cannot: the caller then
-- handles every entry it gets, without these guarantees.
function ____exports.open(key, count)
    local id = ngx.worker.id()
    if id == nil then
        return nil, "not a worker"
    end
    local root, ns, master, mstart, cycle = string.match(
        shim.dir(),
        "^(.*)/(%d+)%-(%d+)%-(%d+)%-(%x+)/?$"
    )
    if cycle == nil then
        return nil, "unexpected instance directory " .. shim.dir()
    end
    local digest = (string.gsub(
        string.sub(
            ngx.sha1_bin(key),
            1,
            8
        ),
        ".",
        function(c) return string.format(
            "%02x",
            string.byte(c)
        ) end
    ))
    path = ((((((((root .. "/") .. PREFIX) .. ns) .. "-") .. master) .. "-") .. mstart) .. "-") .. digest
    local fd = C.ngx_ipc_cl_open(path, O_RDWR + O_CREAT + O_CLOEXEC, 384)
    if fd < 0 then
        return nil, (("cannot open " .. path) .. ": ") .. errstr()
    end
    local want = ____exports.span(math.max(count, id + 1))
    local bytes = (HEADER + SLOT * want) * 8
    local size = tonumber(C.ngx_ipc_cl_lseek(fd, 0, SEEK_END)) or -1
    if size < 0 or size < bytes and C.ngx_ipc_cl_ftruncate(fd, bytes) ~= 0 then
        local err = errstr()
        C.ngx_ipc_cl_close(fd)
        return nil, (("cannot size " .. path) .. ": ") .. err
    end
    local len = math.max(size, bytes)
    local addr = C.ngx_ipc_cl_mmap(
        nil,
        len,
        PROT_RW,
        MAP_SHARED,
        fd,
        0
    )
    local err = errstr()
    C.ngx_ipc_cl_close(fd)
    if ffi.cast("intptr_t", addr) == ffi.cast("intptr_t", -1) then
        return nil, (("cannot map " .. path) .. ": ") .. err
    end
    p = ffi.cast("volatile double *", addr)
    mapped = math.floor((len / 8 - HEADER) / SLOT)
    my_slot = 2 * id + (ngx.config.subsystem == "stream" and 1 or 0)
    my_pid = ngx.worker.pid()
    my_start = start_of(my_pid) or 0
    my_gen = tonumber(cycle, 16) or 0
    return true
end
--- Removes the slot files of masters that are gone (the reader does, when it takes the lease).
function ____exports.sweep_stale()
    local root, ns = string.match(path, ("^(.*)/" .. PREFIX) .. "(%d+)%-")
    if ns ~= nil then
        sweep(root, ns)
    end
end
--- Reads three doubles at b+o under the seqlock at b; undefined when a writer holds it.
local function read3(b, o)
    local a = p
    do
        local t = 0
        while t < TRIES do
            local v = a[b]
            if v % 2 == 0 then
                local x = a[b + o]
                local y = a[b + o + 1]
                local z = a[b + o + 2]
                if a[b] == v then
                    return x, y, z
                end
            end
            t = t + 1
        end
    end
    return nil, nil, nil
end
local function write3(b, o, x, y, z)
    local a = p
    local v = a[b]
    a[b] = v + 1
    a[b + o] = x
    a[b + o + 1] = y
    a[b + o + 2] = z
    a[b] = v + 2
end
--- The reader's start position; undefined before a reader set it.
local function base()
    local ms, n, seq = read3(0, H_MS)
    if ms == nil or p[H_SET] ~= 1 then
        return nil
    end
    return {ms = ms, n = n, seq = seq}
end
--- The reader sets where it starts, and its generation, before it relays anything:
-- the generation first, so that whoever sees the old one knows that this reader has
-- relayed nothing yet.
function ____exports.set_base(pos)
    p[H_GEN] = my_gen
    write3(
        0,
        H_MS,
        pos.ms,
        pos.n,
        pos.seq
    )
    p[H_SET] = 1
end
--- The reader's start, when a reader of this worker's generation set it (it may have relayed to us since).
local function our_base()
    local ____temp_0
    if p[H_GEN] == my_gen then
        ____temp_0 = base()
    else
        ____temp_0 = nil
    end
    return ____temp_0
end
--- Whether a is before b.
local function before(ams, an, bms, bn)
    return ams < bms or ams == bms and an < bn
end
--- Where slot i stands: the last entry its holders handled; for a holder that handled
-- nothing yet, the reader's start if that reader is of its generation; otherwise
-- undefined (never held, or nothing was relayed to it: the first entry that comes
-- is its start).
local function position_of(i)
    if i >= mapped then
        return nil
    end
    local a = p
    local b = base_of(i)
    local ms, n, seq = read3(b, S_MS)
    if ms == nil then
        ms, n, seq = a[b + S_BMS], a[b + S_BN], a[b + S_BSEQ]
    end
    if a[b + S_PID] == 0 then
        return nil
    end
    if ms < 0 then
        local ____temp_1
        if a[b + S_GEN] == a[H_GEN] then
            ____temp_1 = base()
        else
            ____temp_1 = nil
        end
        return ____temp_1
    end
    return {ms = ms, n = n, seq = seq}
end
--- Where slot i wants entries after: its position, else the reader's start.
function ____exports.done_of(i)
    return position_of(i) or base()
end
--- The least position of the slots of workers 0 .. count - 1, the instance's position;
-- the reader's start while none has one. A slot without one (a worker that handled
-- nothing yet) takes the first entry that reaches it, which is still in its pipe.
function ____exports.least(count)
    local low
    do
        local i = 0
        while i < ____exports.span(count) do
            local d = position_of(i)
            if d ~= nil and (low == nil or before(d.ms, d.n, low.ms, low.n)) then
                low = d
            end
            i = i + 1
        end
    end
    return low or base()
end
--- What identifies slot i's current request to resend: holder and want count ("" when none).
function ____exports.want_of(i)
    if i >= mapped then
        return ""
    end
    local b = base_of(i)
    local w = p[b + S_WANT]
    if w == 0 then
        return ""
    end
    return (((tostring(p[b + S_PID]) .. ":") .. tostring(p[b + S_START])) .. ":") .. tostring(w)
end
--- Whether the holder recorded in slot b is alive: the same process, not a zombie.
local function holder_alive(b)
    local pid = p[b + S_PID]
    return pid ~= 0 and start_of(pid) == p[b + S_START]
end
local function shutting_down(pid)
    local cmd = read_text(("/proc/" .. tostring(pid)) .. "/cmdline")
    return cmd ~= nil and (string.find(cmd, "shutting down", 1, true)) ~= nil
end
--- Takes this worker's slot when it is free: never held, held by a process that is
-- gone, or by one that shuts down and runs no handler. false: wait and try again.
function ____exports.take()
    if holding then
        return true, 0
    end
    local a = p
    local b = base_of(my_slot)
    local again = 0
    local pid = a[b + S_PID]
    if pid ~= 0 and not (pid == my_pid and a[b + S_START] == my_start) then
        if holder_alive(b) then
            if not shutting_down(pid) or a[b + S_BUSY] ~= 0 then
                return false, 0
            end
        elseif a[b + S_VER] % 2 == 1 then
            a[b + S_MS] = a[b + S_BMS]
            a[b + S_N] = a[b + S_BN]
            a[b + S_SEQ] = a[b + S_BSEQ]
            a[b + S_VER] = a[b + S_VER] + 1
        elseif a[b + S_BUSY] ~= 0 then
            again = 1
        end
    end
    local ms, n, seq = read3(b, S_MS)
    local dms = ms or -1
    local dn = n or 0
    local dseq = seq or 0
    local ours = our_base()
    local from = base()
    if pid == 0 or dms < 0 then
        dms = ours == nil and -1 or ours.ms
        dn = ours == nil and 0 or ours.n
        dseq = ours == nil and 0 or ours.seq
    elseif from ~= nil and before(dms, dn, from.ms, from.n) then
        dms = from.ms
        dn = from.n
        dseq = from.seq
    end
    local v = a[b + S_VER]
    a[b + S_VER] = v + 1
    a[b + S_PID] = my_pid
    a[b + S_START] = my_start
    a[b + S_MS] = dms
    a[b + S_N] = dn
    a[b + S_SEQ] = dseq
    a[b + S_GEN] = my_gen
    a[b + S_VER] = v + 2
    a[b + S_BUSY] = 0
    holding = true
    if pid ~= 0 then
        ____exports.want()
    end
    return true, again
end
--- What to do with an entry: HANDLE, PASS (handled already), or GAP (an earlier one is missing).
____exports.HANDLE = 0
____exports.PASS = 1
____exports.GAP = 2
--- Decides about entry (ms, n) relayed after (pms, pn); with HANDLE, also how many
-- entries were trimmed between this slot's position and it (sequence numbers).
function ____exports.verdict(pms, pn, ms, n, seq)
    local a = p
    local b = base_of(my_slot)
    local dms = a[b + S_MS]
    local dn = a[b + S_N]
    if dms < 0 then
        return ____exports.HANDLE, 0
    end
    if not before(dms, dn, ms, n) then
        return ____exports.PASS, 0
    end
    if before(dms, dn, pms, pn) then
        return ____exports.GAP, 0
    end
    local dseq = a[b + S_SEQ]
    return ____exports.HANDLE, dseq > 0 and seq > dseq + 1 and seq - dseq - 1 or 0
end
--- Before this worker's handler of entry (ms, n, seq) runs.
function ____exports.begin(ms, n, seq)
    local a = p
    local b = base_of(my_slot)
    a[b + S_BMS] = ms
    a[b + S_BN] = n
    a[b + S_BSEQ] = seq
    a[b + S_BUSY] = 1
end
--- After it: the entry is this slot's position.
function ____exports.finish()
    local a = p
    local b = base_of(my_slot)
    write3(
        b,
        S_MS,
        a[b + S_BMS],
        a[b + S_BN],
        a[b + S_BSEQ]
    )
    a[b + S_BUSY] = 0
end
return ____exports
