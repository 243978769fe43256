-- t/unit/helper.lua: shared by the busted specs in t/unit.
--
-- Loads the real shim through build/ngx/ipc/shim.lua, starts it once per
-- process in standalone mode, and carries an independent encoder of the
-- wire format of docs/internals.md ("Packets") to craft streams for
-- shim.feed.  Load it with require "t.unit.helper" from the repository root.

local ffi = require "ffi"
local bit = require "bit"

local shim = require "ngx.ipc.shim"

local byte, char, concat, fmt = string.byte, string.char, table.concat,
                                string.format

local _M = { shim = shim }

_M.MAGIC = 0x1A1E
_M.FIRST = 0x01
_M.HDR = 16
_M.PAYLOAD_MAX = 4080


local function getpid()
    local f = assert(io.open("/proc/self/stat"))
    local s = f:read("*l")
    f:close()
    return tonumber(s:match("^(%d+)"))
end

_M.pid = getpid()
-- under NGX_IPC_T_TMP when the runner gives one (t/tap_exec.sh, t/asan_unit.sh remove it after)
_M.dir = (os.getenv("NGX_IPC_T_TMP") or "/tmp") .. "/ngx_ipc_unit." .. _M.pid


local open_peer     -- below, with the other helpers for the wire path

-- starts the shim once per process (busted re-requires modules per file;
-- the shim accepts the same dir and pid again)
function _M.start()
    local ok, err = shim.start_standalone(_M.dir, _M.pid)
    assert(ok, "start_standalone(" .. _M.dir .. "): " .. tostring(err))
    open_peer()
    return shim, _M.pid, _M.dir
end


-- the C library itself, for what the Lua binding does not expose
function _M.lib()
    local path = assert(package.searchpath("ngx_ipc_shim", package.cpath))
    return ffi.load(path), path
end


-- the fake nginx (fixtures/fake_nginx.c), built and loaded globally so that the
-- shim finds its symbols with dlsym; its variables, set by the specs
function _M.fake_nginx()
    ffi.cdef [[
        uintptr_t  ngx_event_flags;
        uintptr_t  ngx_process;
        void      *ngx_cycle;
        intptr_t   ngx_ipc_fake_channel_rc;
        int        ngx_ipc_fake_posts[2];
    ]]
    local so = os.tmpname() .. ".so"
    assert(_M.sh("cc -shared -fPIC -Wall -Werror -o " .. so
                 .. " t/unit/fixtures/fake_nginx.c"), "building the fixture")
    local fake = ffi.load(so, true)
    os.remove(so)
    return fake
end


function _M.sh(cmd)
    local r = os.execute(cmd)
    return r == 0 or r == true
end

function _M.exists(path)
    return _M.sh("test -e '" .. path .. "'")
end


-- receiving ---------------------------------------------------------------

-- takes what is in the ready queue now
function _M.take(into)
    into = into or {}
    while true do
        local sender, name, data = shim.recv()
        if sender == nil then
            return into
        end
        into[#into + 1] = { sender = sender, name = name, data = data }
    end
end

-- polls and receives until n alerts arrived, or until "idle" polls in a
-- row brought nothing new (then returns what arrived)
function _M.collect(n, idle)
    idle = idle or 50
    local got, quiet = {}, 0
    while #got < n and quiet < idle do
        local before = #got
        _M.poll()
        _M.take(got)
        quiet = (#got == before) and quiet + 1 or 0
    end
    return got
end

-- the same, for alerts from another process: gives up after "seconds"
pcall(ffi.cdef, [[
int ngx_ipc_test_poll(void *fds, unsigned long nfds, int timeout)
    __asm__("poll");
]])

function _M.sleep_ms(ms)
    ffi.C.ngx_ipc_test_poll(nil, 0, ms)
end

function _M.wait_for(n, seconds)
    local got = {}
    local deadline = os.time() + (seconds or 10)
    while #got < n and os.time() <= deadline do
        _M.poll()
        local before = #got
        _M.take(got)
        if #got == before then
            _M.sleep_ms(1)
        end
    end
    return got
end

-- another worker, from this one process ------------------------------------
--
-- Alerts a process sends to itself skip the pipe, so the specs that test the
-- wire path send to a peer: a FIFO of a made-up pid in the shim's directory
-- whose read end this process holds.  Sends to it are packed, written and
-- queued as to any worker; poll() feeds what arrives there to the parser, as
-- the peer would read it (at most 1 MiB per poll, like a read event).
-- inject() writes bytes into this process's own pipe, as a peer would.

pcall(ffi.cdef, [[
int ngx_ipc_test_mkfifo(const char *path, unsigned int mode) __asm__("mkfifo");
int ngx_ipc_test_open(const char *path, int flags, ...) __asm__("open");
int ngx_ipc_test_fcntl(int fd, int cmd, ...) __asm__("fcntl");
long ngx_ipc_test_read(int fd, void *buf, unsigned long n) __asm__("read");
long ngx_ipc_test_write(int fd, const void *buf, unsigned long n)
    __asm__("write");
]])

local O_RDONLY, O_WRONLY, O_NONBLOCK = 0, 1, 0x800
local F_SETPIPE_SZ = 1031
local READ_MAX, CHUNK = 1024 * 1024, 64 * 1024

-- above pid_max (4194304): no process of this machine has it.  Made after
-- start_standalone, whose sweep removes the pipes of pids not alive.
_M.peer = 4194304 + 1000 + _M.pid % 1000

local C = ffi.C
local peer_fd, own_fd
local rbuf = ffi.new("char[?]", CHUNK)

function open_peer()
    if peer_fd then
        return
    end
    local path = _M.dir .. "/" .. _M.peer
    os.remove(path)
    assert(C.ngx_ipc_test_mkfifo(path, tonumber("600", 8)) == 0,
           "mkfifo " .. path)
    peer_fd = C.ngx_ipc_test_open(path, bit.bor(O_RDONLY, O_NONBLOCK))
    assert(peer_fd >= 0, "open " .. path)
    -- the size a worker gives its own pipe, so queueing happens as there
    C.ngx_ipc_test_fcntl(peer_fd, F_SETPIPE_SZ, ffi.new("int", READ_MAX))
end

function _M.poll()
    assert(shim.poll())
    if not peer_fd then
        return
    end
    local total = 0
    while total < READ_MAX do
        local n = tonumber(C.ngx_ipc_test_read(peer_fd, rbuf, CHUNK))
        if n <= 0 then
            return
        end
        assert(shim.feed(ffi.string(rbuf, n)))
        total = total + n
    end
end

-- writes what the own pipe takes of "bytes" now; returns how many it took
function _M.inject(bytes)
    if not own_fd then
        own_fd = C.ngx_ipc_test_open(_M.dir .. "/" .. _M.pid,
                                     bit.bor(O_WRONLY, O_NONBLOCK))
        assert(own_fd >= 0, "open own pipe")
    end
    return math.max(tonumber(C.ngx_ipc_test_write(own_fd, bytes, #bytes)), 0)
end


-- empties pipe and ready queue, so a test starts clean
function _M.drain()
    _M.collect(math.huge, 3)
end


-- counters ----------------------------------------------------------------

function _M.delta(before, after)
    local d = {}
    for k, v in pairs(after) do
        d[k] = v - (before[k] or 0)
    end
    return d
end


-- comparing bytes with a message that says what differs --------------------

local function show(s)
    if #s > 40 then
        s = s:sub(1, 40) .. "..."
    end
    return (s:gsub("[^%w%p ]", function(c) return fmt("\\x%02x", byte(c)) end))
end

function _M.diff(expected, got)
    if expected == got then
        return nil
    end
    if type(got) ~= "string" then
        return fmt("expected %d bytes, got %s", #expected, tostring(got))
    end
    local n = math.min(#expected, #got)
    local i = 1
    while i <= n and byte(expected, i) == byte(got, i) do
        i = i + 1
    end
    return fmt("expected %d bytes, got %d; first difference at byte %d "
               .. "(expected %q, got %q)", #expected, #got, i,
               show(expected:sub(i, i + 7)), show(got:sub(i, i + 7)))
end

-- compares a list of received alerts with the expected {sender,name,data}
function _M.same_alerts(expected, got, what)
    what = what or "alerts"
    if #got ~= #expected then
        local names = {}
        for i = 1, math.min(#got, 5) do
            names[i] = fmt("%d:%s(%d)", got[i].sender, show(got[i].name),
                           #got[i].data)
        end
        return false, fmt("%s: expected %d alerts, got %d [%s%s]", what,
                          #expected, #got, concat(names, " "),
                          #got > 5 and " ..." or "")
    end
    for i, e in ipairs(expected) do
        local g = got[i]
        if e.sender and g.sender ~= e.sender then
            return false, fmt("%s: alert %d: expected sender %d, got %d",
                              what, i, e.sender, g.sender)
        end
        local d = _M.diff(e.name, g.name)
        if d then
            return false, fmt("%s: alert %d name: %s", what, i, d)
        end
        d = _M.diff(e.data, g.data)
        if d then
            return false, fmt("%s: alert %d (%s) data: %s", what, i,
                              show(e.name), d)
        end
    end
    return true
end


-- an independent encoder of the wire format --------------------------------

local le = ffi.abi("le")

local function uint(v, n)
    local b = {}
    for i = 1, n do
        b[i] = bit.band(bit.rshift(v, 8 * (i - 1)), 0xff)
    end
    if not le then
        local r = {}
        for i = 1, n do r[i] = b[n + 1 - i] end
        b = r
    end
    return char(unpack(b))
end

-- a raw 16-byte header; every field can be set to anything
function _M.header(h)
    return uint(h.magic or _M.MAGIC, 2)
           .. char(h.flags or 0)
           .. char(h.name_len or 0)
           .. uint(h.sender, 4)               -- negative values wrap
           .. uint(h.len, 4)
           .. uint(h.arg or 0, 4)
end

function _M.first(sender, name, total, data)
    data = data or ""
    return _M.header{ flags = _M.FIRST, name_len = #name, sender = sender,
                      len = #name + #data, arg = total } .. name .. data
end

function _M.cont(sender, offset, data)
    return _M.header{ sender = sender, len = #data, arg = offset } .. data
end

-- the packets of one alert; "chunk" bounds each payload (at most 4080)
function _M.packets(sender, name, data, chunk)
    chunk = chunk or _M.PAYLOAD_MAX
    local first = math.max(chunk - #name, 0)
    local list = { _M.first(sender, name, #data, data:sub(1, first)) }
    local off = first
    while off < #data do
        list[#list + 1] = _M.cont(sender, off, data:sub(off + 1, off + chunk))
        off = off + chunk
    end
    return list
end


-- deterministic test data -------------------------------------------------

function _M.bytes(n, seed)
    local t, x = {}, seed or 1
    for i = 1, n do
        x = (x * 1103515245 + 12345) % 2147483648
        t[i] = char(bit.band(bit.rshift(x, 16), 0xff))
    end
    return concat(t)
end

function _M.rng(seed)
    local x = seed
    return function(lo, hi)
        x = (x * 1103515245 + 12345) % 2147483648
        return lo + math.floor(x / 2147483648 * (hi - lo + 1))
    end
end

return _M
