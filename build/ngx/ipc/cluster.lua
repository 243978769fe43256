local ____exports = {}
local sha_of, script_args, run, args_of, read_text, find_instance, envelope, on_local, position, after, pause, drop_connection, open, holder_dead, acquire, commit, lost_lease, packed, fits, room, field, count_gap, hand_over, step, reader, LOCAL_NAME, FLOW, PACKET_OVERHEAD, PACKET_PAYLOAD, LEASE_MS, BLOCK_MS, SAVE_EVERY, LEASE_POLL, BACKOFF_MIN, BACKOFF_MAX, settings, running, instance, lease_key, pos_key, master_pid, counters, ACQUIRE, COMMIT, sock, holding, token, last_id, last_seq, failures, saved_at, down_since, queued, held
local ____args = require("ngx.ipc.args")
local check_string = ____args.check_string
local dispatch = require("ngx.ipc.dispatch")
local resp = require("ngx.ipc.resp")
local shim = require("ngx.ipc.shim")
function sha_of(sc)
    if sc.sha == "" then
        sc.sha = (string.gsub(
            ngx.sha1_bin(sc.body),
            ".",
            function(c) return string.format(
                "%02x",
                string.byte(c)
            ) end
        ))
    end
    return sc.sha
end
function script_args(sc, args, evalsha)
    args[1] = evalsha and "EVALSHA" or "EVAL"
    args[2] = evalsha and sha_of(sc) or sc.body
end
function run(sock, sc, args, count)
    script_args(sc, args, true)
    local v, err, usable = resp.call(sock, args, count)
    if v ~= nil then
        return v
    end
    if usable and string.sub(err, 1, 8) == "NOSCRIPT" then
        script_args(sc, args, false)
        return resp.call(sock, args, count)
    end
    return nil, err, usable
end
function args_of(...)
    local list = {...}
    local t = {}
    t[1] = ""
    t[2] = ""
    local n = 2
    for ____, a in ipairs(list) do
        n = n + 1
        t[n] = a
    end
    return t, n
end
function read_text(path)
    local f = io.open(path, "r")
    if f == nil then
        return nil
    end
    local s = f:read("*a")
    f:close()
    return s
end
function find_instance()
    local host = (string.match(
        read_text("/proc/sys/kernel/hostname") or "",
        "^%s*(.-)%s*$"
    ))
    local master, start = string.match(
        shim.dir(),
        "%d+%-(%d+)%-(%d+)%-%x+/?$"
    )
    local btime = string.match(
        read_text("/proc/stat") or "",
        "\nbtime (%d+)"
    )
    master_pid = tonumber(master) or 0
    local started = (tonumber(btime) or 0) + (tonumber(start) or 0) / 100
    return ((((host == "" and "localhost" or host) .. "/") .. (master or "?")) .. "/") .. string.format("%.2f", started)
end
function envelope(inst, pid, wid, name, data)
    return (((((((((tostring(#inst) .. " ") .. pid) .. " ") .. wid) .. " ") .. tostring(#name)) .. "\n") .. inst) .. name) .. data
end
function on_local(_from, env)
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
        inst ~= instance
    )
end
--- Called by ipc.ts once this worker has joined (and by configure): registers the
-- handler of the local alert and, in worker 0, starts the reader.
function ____exports.joined()
    if running or settings == nil then
        return
    end
    running = true
    instance = find_instance()
    lease_key = (settings.stream .. ":reader:") .. instance
    pos_key = (settings.stream .. ":pos:") .. instance
    dispatch.reserve(LOCAL_NAME, on_local)
    if ngx.worker.id() == 0 then
        local ok, err = ngx.timer.at(0, reader)
        if ok == nil then
            ngx.log(ngx.ERR, "ngx.ipc: cannot start the cluster reader: ", err)
        end
    end
end
function position()
    return (last_id .. " ") .. tostring(last_seq)
end
function after(a, b)
    local am, as = string.match(a, "^(%d+)%-(%d+)$")
    local bm, bs = string.match(b, "^(%d+)%-(%d+)$")
    local ma = tonumber(am) or 0
    local mb = tonumber(bm) or 0
    return ma > mb or ma == mb and (tonumber(as) or 0) > (tonumber(bs) or 0)
end
function pause(seconds)
    ngx.update_time()
    local deadline = ngx.now() + seconds
    while not ngx.worker.exiting() do
        local left = deadline - ngx.now()
        if left <= 0 then
            return true
        end
        ngx.sleep(math.max(
            0.001,
            math.min(left, 0.25)
        ))
        ngx.update_time()
    end
    return false
end
function drop_connection(err)
    if sock ~= nil then
        sock:close()
        sock = nil
    end
    failures = failures + 1
    ngx.update_time()
    if down_since == nil then
        down_since = ngx.now()
        ngx.log(
            ngx.ERR,
            "ngx.ipc: cluster reader: redis at ",
            resp.label(settings.reader_endpoint),
            ": ",
            err,
            "; reconnecting with backoff, resuming after ",
            last_id == "" and "the instance's position" or last_id
        )
    end
    local delay = math.min(
        BACKOFF_MAX,
        BACKOFF_MIN * 2 ^ math.min(failures - 1, 10)
    )
    pause(delay * (0.5 + math.random() * 0.5))
end
function open()
    local s = settings
    local c, err = resp.connect(s.reader_endpoint, s.timeout_ms, BLOCK_MS + s.timeout_ms)
    if c == nil then
        drop_connection(err)
        return false
    end
    local load = {}
    load[1] = "SCRIPT"
    load[2] = "LOAD"
    load[3] = COMMIT.body
    local sha, lerr = resp.call(c, load, 3)
    if sha == nil then
        c:close()
        drop_connection(lerr)
        return false
    end
    sock = c
    if down_since ~= nil then
        counters.reconnects = counters.reconnects + 1
        ngx.update_time()
        ngx.log(
            ngx.NOTICE,
            "ngx.ipc: cluster reader: redis at ",
            resp.label(s.reader_endpoint),
            " is back after ",
            string.format(
                "%.1f",
                ngx.now() - down_since
            ),
            " s"
        )
        down_since = nil
    end
    return true
end
function holder_dead(holder)
    local pid = string.match(holder, "^(%d+):")
    if pid == nil then
        return false
    end
    local stat = read_text(("/proc/" .. pid) .. "/stat")
    if stat == nil then
        return true
    end
    local state, ppid = string.match(stat, "%) (%a) (%d+)")
    return state == "Z" or state == "X" or tonumber(ppid) ~= master_pid
end
function acquire(expect)
    local args, count = args_of(
        "4",
        lease_key,
        pos_key,
        settings.stream,
        settings.seq_key,
        token,
        tostring(LEASE_MS),
        expect
    )
    local r, err = run(sock, ACQUIRE, args, count)
    if r == nil or type(r) ~= "table" then
        drop_connection(err or "bad reply to the lease script")
        return nil
    end
    local reply = r
    if reply[1] ~= 1 then
        local holder = tostring(reply[2])
        if expect == "" and holder_dead(holder) then
            return acquire(holder)
        end
        return false
    end
    local id, seq = string.match(
        tostring(reply[2]),
        "^(%S+) (%d+)$"
    )
    if last_id == "" or reply[3] ~= 1 and after(id, last_id) then
        last_id = id or "0-0"
        last_seq = tonumber(seq) or 0
    end
    holding = true
    ngx.log(
        ngx.NOTICE,
        "ngx.ipc: cluster reader: worker ",
        ngx.worker.pid(),
        " reads ",
        settings.stream,
        " for ",
        instance,
        " after ",
        last_id
    )
    return true
end
function commit(release)
    local args, count = args_of(
        "2",
        lease_key,
        pos_key,
        token,
        tostring(LEASE_MS),
        position(),
        release and "1" or "0"
    )
    local r, err = run(sock, COMMIT, args, count)
    if r == nil then
        drop_connection(err)
        return nil
    end
    if r ~= 1 then
        lost_lease()
        return false
    end
    return true
end
function lost_lease()
    holding = false
    ngx.log(
        ngx.WARN,
        "ngx.ipc: cluster reader: worker ",
        ngx.worker.pid(),
        " lost the lease of ",
        instance,
        " (it was not renewed in time); stops reading after ",
        last_id
    )
end
function packed(size)
    return #LOCAL_NAME + size + PACKET_OVERHEAD * (2 + math.floor(size / PACKET_PAYLOAD))
end
function fits(size)
    return (queued == 0 or queued + size <= FLOW) and (held == 0 or held + size <= FLOW)
end
function room(size)
    local renewed = ngx.now()
    while not fits(size) do
        local c = shim.counters()
        queued = c.send_queued
        held = c.receive_ready + c.receive_partial
        if fits(size) then
            break
        end
        if not pause(0.001) then
            return false
        end
        if ngx.now() - renewed >= BLOCK_MS / 1000 then
            if commit(false) ~= true then
                return false
            end
            renewed = ngx.now()
        end
    end
    queued = queued + size
    held = held + size
    return true
end
function field(f, key)
    do
        local i = 1
        while i < #f do
            if f[i] == key then
                local v = f[i + 1]
                return type(v) == "string" and v or nil
            end
            i = i + 2
        end
    end
    return nil
end
function count_gap(seq, id)
    if last_seq > 0 and seq > last_seq + 1 then
        local n = seq - last_seq - 1
        counters.gaps = counters.gaps + 1
        counters.lost = counters.lost + n
        ngx.log(
            ngx.ERR,
            "ngx.ipc: cluster reader: ",
            n,
            " alert(s) between ",
            last_id,
            " and ",
            id,
            " were trimmed from ",
            settings.stream,
            " (maxlen ",
            settings.maxlen,
            ") before this instance read them; they are lost for it"
        )
    end
end
function hand_over(id, f)
    local seq = tonumber(field(f, "s"))
    local inst = field(f, "i")
    local pid = field(f, "p")
    local wid = field(f, "w")
    local name = field(f, "n")
    local data = field(f, "d")
    if seq == nil or inst == nil or pid == nil or wid == nil or name == nil or data == nil then
        counters.malformed = counters.malformed + 1
        ngx.log(
            ngx.WARN,
            "ngx.ipc: cluster reader: entry ",
            id,
            " of ",
            settings.stream,
            " is not an ngx.ipc alert; skipped"
        )
        last_id = id
        return true
    end
    count_gap(seq, id)
    local env = envelope(
        inst,
        pid,
        wid,
        name,
        data
    )
    local delay = 0.01
    while true do
        if ngx.worker.exiting() or not room(packed(#env)) then
            return false
        end
        local ok, err = shim.broadcast(LOCAL_NAME, env)
        if ok ~= nil then
            break
        end
        ngx.log(
            ngx.ERR,
            "ngx.ipc: cluster reader: handing ",
            id,
            " to the workers failed: ",
            err,
            "; retrying"
        )
        queued = FLOW
        if not pause(delay) then
            return false
        end
        delay = math.min(delay * 2, 0.5)
    end
    last_id = id
    last_seq = seq
    counters.relayed = counters.relayed + 1
    return true
end
function step()
    local s = settings
    local out = {}
    local n = 1
    ngx.update_time()
    local save = ngx.now() - saved_at >= SAVE_EVERY
    if save then
        local cargs, ccount = args_of(
            "2",
            lease_key,
            pos_key,
            token,
            tostring(LEASE_MS),
            position(),
            "0"
        )
        script_args(COMMIT, cargs, true)
        n = resp.encode(out, n, cargs, ccount)
        saved_at = ngx.now()
    end
    local xargs = {}
    local list = {
        "XREAD",
        "COUNT",
        s.batch,
        "BLOCK",
        tostring(BLOCK_MS),
        "STREAMS",
        s.stream,
        last_id
    }
    do
        local i = 0
        while i < #list do
            xargs[i + 1] = list[i + 1]
            i = i + 1
        end
    end
    resp.encode(out, n, xargs, #list)
    local sent, serr = sock:send(out)
    if sent == nil then
        drop_connection(serr)
        return
    end
    local c = 1
    local cerr = nil
    if save then
        c, cerr = resp.read(sock)
    end
    local r, rerr = resp.read(sock)
    if c == nil or r == nil then
        drop_connection(c == nil and cerr or rerr)
        return
    end
    failures = 0
    if c ~= 1 then
        lost_lease()
        return
    end
    if r == false then
        return
    end
    local streams = r
    local entries = streams[1][2]
    local c0 = shim.counters()
    queued = c0.send_queued
    held = c0.receive_ready + c0.receive_partial
    do
        local i = 1
        while i <= #entries do
            local e = entries[i]
            if not hand_over(e[1], e[2]) or not holding or sock == nil then
                return
            end
            i = i + 1
        end
    end
end
function reader(premature)
    if premature then
        return
    end
    token = (tostring(ngx.worker.pid()) .. ":") .. tostring(ngx.now())
    while not ngx.worker.exiting() do
        do
            if sock == nil and not open() then
                goto __continue120
            end
            if not holding then
                local got = acquire("")
                if got == false and not pause(LEASE_POLL) then
                    break
                end
                goto __continue120
            end
            step()
        end
        ::__continue120::
    end
    if sock ~= nil and holding then
        commit(true)
    end
    holding = false
    if sock ~= nil then
        sock:close()
        sock = nil
    end
end
LOCAL_NAME = dispatch.RESERVED .. "cluster"
--- Alert names travel in one byte locally (ipc.ts's MAX_NAME).
local MAX_NAME = 254
FLOW = 65536
PACKET_OVERHEAD = 64
PACKET_PAYLOAD = 4000
LEASE_MS = 5000
BLOCK_MS = 1000
SAVE_EVERY = 0.1
--- Entries per XREAD: at most BATCH, and few enough that a reply of entries of
-- max_data bytes stays within BATCH_BYTES (it is held whole while relayed).
local BATCH = 512
local BATCH_BYTES = 33554432
LEASE_POLL = 0.2
BACKOFF_MIN = 0.05
BACKOFF_MAX = 2
--- Position keys outlive their instance by this long (seconds), renewed by the reader.
local POS_TTL = 604800
local join
running = false
instance = ""
lease_key = ""
pos_key = ""
master_pid = 0
--- Publishers in this worker have made sure the instance's position exists (see FLOOR).
local floor_done = false
counters = {
    published = 0,
    publish_errors = 0,
    received = 0,
    relayed = 0,
    gaps = 0,
    lost = 0,
    reconnects = 0,
    malformed = 0
}
--- The instance's start position, made once: after the last entry of the stream.
local FLOOR_BODY = ("\nlocal function floor(stream, seq_key, pos_key)\n  local pos = redis.call('GET', pos_key)\n  if pos then return pos, 0 end\n  local seq = tonumber(redis.call('GET', seq_key) or '0')\n  local id = '0-0'\n  local e = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]\n  if e then\n    id = e[1]\n    for i = 1, #e[2], 2 do\n      if e[2][i] == 's' then seq = tonumber(e[2][i + 1]) end\n    end\n  end\n  pos = id .. ' ' .. seq\n  redis.call('SET', pos_key, pos, 'EX', " .. tostring(POS_TTL)) .. ")\n  return pos, 1\nend\n"
local function script(body)
    return {body = body, sha = ""}
end
--- KEYS: stream, seq, pos. Returns the position.
local FLOOR = script(FLOOR_BODY .. "\nreturn (floor(KEYS[1], KEYS[2], KEYS[3]))")
--- KEYS: stream, seq. ARGV: maxlen, instance, pid, worker id, name, data. Returns the id.
local PUBLISH = script("\nlocal seq = redis.call('INCR', KEYS[2])\nreturn redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 's', seq,\n  'i', ARGV[2], 'p', ARGV[3], 'w', ARGV[4], 'n', ARGV[5], 'd', ARGV[6])")
ACQUIRE = script(FLOOR_BODY .. "\nlocal cur = redis.call('GET', KEYS[1])\nif cur and cur ~= ARGV[1] and cur ~= ARGV[3] then return {0, cur} end\nredis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\nlocal pos, fresh = floor(KEYS[3], KEYS[4], KEYS[2])\nreturn {1, pos, fresh}")
COMMIT = script(("\nif redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\nredis.call('SET', KEYS[2], ARGV[3], 'EX', " .. tostring(POS_TTL)) .. ")\nif ARGV[4] == '1' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\nreturn 1")
local function option_error(msg)
    error(("bad argument #1 to 'configure' (" .. msg) .. ")", 4)
end
local function opt_string(o, key, def)
    local v = o[key]
    if v == nil then
        return def
    end
    if type(v) ~= "string" or v == "" then
        option_error(key .. " must be a non-empty string")
    end
    return v
end
local function opt_number(o, key, def, min, whole)
    local v = o[key]
    if v == nil then
        return def
    end
    if type(v) ~= "number" or v < min or whole and v % 1 ~= 0 then
        option_error((((key .. " must be a ") .. (whole and "whole " or "")) .. "number, at least ") .. tostring(min))
    end
    return v
end
local KNOWN = {}
for ____, k in ipairs({
    "redis",
    "username",
    "password",
    "db",
    "stream",
    "maxlen",
    "max_data",
    "timeout",
    "pool_size",
    "keepalive"
}) do
    KNOWN[k] = true
end
local function parse_address(redis)
    if string.sub(redis, 1, 5) == "unix:" then
        return redis, nil
    end
    local host, port = string.match(redis, "^%[?([^%[%]]+)%]?:(%d+)$")
    local p = tonumber(port)
    if host == nil or p == nil or p < 1 or p > 65535 then
        option_error(("redis must be \"host:port\" or \"unix:/path\", got \"" .. redis) .. "\"")
    end
    return host, p
end
local function check_options(options)
    if type(options) ~= "table" then
        error(
            ("bad argument #1 to 'configure' (table expected, got " .. type(options)) .. ")",
            3
        )
    end
    local o = options
    for key in pairs(o) do
        if not KNOWN[key] then
            option_error(("unknown option '" .. tostring(key)) .. "'")
        end
    end
    local redis = opt_string(o, "redis", nil)
    if redis == nil then
        option_error("redis (\"host:port\") is required")
    end
    local host, port = parse_address(redis)
    local db = opt_number(
        o,
        "db",
        0,
        0,
        true
    )
    local stream = opt_string(o, "stream", "ngx.ipc")
    local max_data = opt_number(
        o,
        "max_data",
        1048576,
        0,
        true
    )
    local endpoint = {
        host = host,
        port = port,
        username = opt_string(o, "username", nil),
        password = opt_string(o, "password", nil),
        db = db,
        pool = (("ngx.ipc.cluster:" .. redis) .. ":") .. tostring(db),
        pool_size = opt_number(
            o,
            "pool_size",
            16,
            1,
            true
        )
    }
    return {
        endpoint = endpoint,
        reader_endpoint = {
            host = host,
            port = port,
            username = endpoint.username,
            password = endpoint.password,
            db = db,
            pool = endpoint.pool .. ":reader",
            pool_size = 1
        },
        stream = stream,
        seq_key = stream .. ":seq",
        maxlen = tostring(opt_number(
            o,
            "maxlen",
            100000,
            1,
            true
        )),
        max_data = max_data,
        batch = tostring(math.max(
            1,
            math.min(
                BATCH,
                math.floor(BATCH_BYTES / (max_data + 512))
            )
        )),
        timeout_ms = math.ceil(opt_number(
            o,
            "timeout",
            1,
            0.001,
            false
        ) * 1000),
        keepalive_ms = math.ceil(opt_number(
            o,
            "keepalive",
            60,
            0,
            false
        ) * 1000)
    }
end
--- ipc.ts hands over its join function once, at load.
function ____exports.attach(fn)
    join = fn
end
--- Sets where the cluster's Redis is and starts this worker's part (its handler, and
-- the reader in worker 0) when the worker has joined or joins now; in init_by_lua*
-- the workers inherit the settings and start their part when they join.
function ____exports.configure(options)
    local s = check_options(options)
    if running then
        error("ngx.ipc: ipc.cluster.configure: this worker's cluster part has started already; configure once, in init_by_lua* or init_worker_by_lua*", 2)
    end
    settings = s
    if ngx.get_phase() ~= "init" then
        join("cluster.configure")
        ____exports.joined()
    end
    return true
end
--- Phases without cosockets.
local NO_SOCKETS = {}
for ____, p in ipairs({
    "init",
    "init_worker",
    "set",
    "header_filter",
    "body_filter",
    "log",
    "balancer",
    "exit_worker",
    "ssl_session_store"
}) do
    NO_SOCKETS[p] = true
end
local function publish(s, name, data)
    ngx.update_time()
    local t0 = ngx.now()
    local sock, err = resp.connect(s.endpoint, s.timeout_ms, s.timeout_ms)
    if sock == nil then
        return nil, (("ngx.ipc: cluster: cannot reach redis at " .. resp.label(s.endpoint)) .. ": ") .. err
    end
    ngx.update_time()
    local left = s.timeout_ms - math.floor((ngx.now() - t0) * 1000)
    if left < 1 then
        sock:close()
        return nil, ("ngx.ipc: cluster: redis at " .. resp.label(s.endpoint)) .. ": timeout"
    end
    sock:settimeouts(left, left, left)
    if not floor_done then
        local fargs, fcount = args_of("3", s.stream, s.seq_key, pos_key)
        local pos, ferr = run(sock, FLOOR, fargs, fcount)
        if pos == nil then
            sock:close()
            return nil, (("ngx.ipc: cluster: redis at " .. resp.label(s.endpoint)) .. ": ") .. ferr
        end
        floor_done = true
    end
    local args, count = args_of(
        "2",
        s.stream,
        s.seq_key,
        s.maxlen,
        instance,
        tostring(ngx.worker.pid()),
        tostring(ngx.worker.id() or -1),
        name,
        data
    )
    local id, perr, usable = run(sock, PUBLISH, args, count)
    if id == nil then
        if usable then
            sock:setkeepalive(s.keepalive_ms, s.endpoint.pool_size)
        else
            sock:close()
        end
        return nil, (("ngx.ipc: cluster: redis at " .. resp.label(s.endpoint)) .. ": ") .. perr
    end
    sock:setkeepalive(s.keepalive_ms, s.endpoint.pool_size)
    return true
end
--- Sends an alert to every worker of every instance that shares the stream, this one
-- included. `true` once Redis has it; nil, err when Redis cannot be reached within
-- `timeout` or refuses it, or the alert is over the caps.
function ____exports.broadcast(name, data)
    local n = check_string("broadcast", 1, name)
    local d = check_string("broadcast", 2, data)
    local s = settings
    if s == nil then
        error("ngx.ipc: ipc.cluster.broadcast: call ipc.cluster.configure first", 2)
    end
    local phase = ngx.get_phase()
    if NO_SOCKETS[phase] then
        error(("ngx.ipc: ipc.cluster.broadcast cannot be used in " .. phase) .. " (no cosockets there); use ngx.timer.at(0, ...)", 2)
    end
    join("cluster.broadcast")
    if dispatch.is_reserved(n) then
        return nil, "alert names starting with a NUL byte are reserved for ngx.ipc"
    end
    if #n > MAX_NAME then
        return nil, ("alert name is longer than " .. tostring(MAX_NAME)) .. " bytes"
    end
    if #d > s.max_data then
        counters.publish_errors = counters.publish_errors + 1
        return nil, ((("alert data is " .. tostring(#d)) .. " bytes, more than max_data (") .. tostring(s.max_data)) .. " bytes) for cluster broadcasts"
    end
    local ok, err = publish(s, n, d)
    if ok == nil then
        counters.publish_errors = counters.publish_errors + 1
        return nil, err
    end
    counters.published = counters.published + 1
    return true
end
holding = false
token = ""
last_id = ""
last_seq = 0
failures = 0
saved_at = 0
queued = 0
held = 0
function ____exports.stats()
    local ____running_5 = running
    local ____holding_6 = holding
    local ____temp_4
    if last_id == "" then
        ____temp_4 = nil
    else
        ____temp_4 = last_id
    end
    return {
        running = ____running_5,
        reader = ____holding_6,
        position = ____temp_4,
        published = counters.published,
        publish_errors = counters.publish_errors,
        received = counters.received,
        relayed = counters.relayed,
        gaps = counters.gaps,
        lost = counters.lost,
        reconnects = counters.reconnects,
        malformed = counters.malformed
    }
end
return ____exports
