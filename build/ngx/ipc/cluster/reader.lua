local ____exports = {}
local lost_lease, holding, last_id
local resp = require("ngx.ipc.resp")
local shim = require("ngx.ipc.shim")
local ____envelope = require("ngx.ipc.cluster.envelope")
local encode = ____envelope.encode
local LOCAL_NAME = ____envelope.LOCAL_NAME
local packed = ____envelope.packed
local link = require("ngx.ipc.cluster.link")
local ____scripts = require("ngx.ipc.cluster.scripts")
local ACQUIRE = ____scripts.ACQUIRE
local args_of = ____scripts.args_of
local COMMIT = ____scripts.COMMIT
local load = ____scripts.load
local RAISE = ____scripts.RAISE
local run = ____scripts.run
local script_args = ____scripts.script_args
local slots = require("ngx.ipc.cluster.slots")
local state = require("ngx.ipc.cluster.state")
function lost_lease()
    holding = false
    ngx.log(
        ngx.WARN,
        "ngx.ipc: cluster reader: worker ",
        ngx.worker.pid(),
        " lost the lease of ",
        state.instance,
        " (it was not renewed in time); stops reading after ",
        last_id
    )
end
local counters = state.counters
--- The smallest send_backlog and receive_backlog the shim accepts. The reader hands
-- an entry over only while what waits for any destination, itself included, plus the
-- entry fits in it (or nothing waits), so the local broadcast is never refused for a
-- full backlog, which would leave the entry with some workers and not others.
local FLOW = 65536
--- The entries of one XREAD reply share a local broadcast up to this many envelope
-- bytes (an entry larger than that goes alone): one write per worker and one wake-up
-- of its receive loop for many entries, and well within FLOW.
local ENVELOPE = 16384
--- How long a reader's lease lasts without renewal; it renews at least every BLOCK_MS.
local LEASE_MS = 5000
--- XREAD's BLOCK: also how long a quitting reader may wait before it notices.
local BLOCK_MS = 1000
--- The reader saves its position (and renews the lease) at most this often, in seconds.
local SAVE_EVERY = 0.1
--- How often a worker 0 that does not hold the lease asks for it again.
local LEASE_POLL = 0.2
--- Reconnect backoff: from BACKOFF_MIN doubling to BACKOFF_MAX seconds.
local BACKOFF_MIN = 0.05
local BACKOFF_MAX = 2
local sock
holding = false
local token = ""
last_id = ""
--- The last entry handed over (or the start) and its sequence number: each envelope names it.
local tail_id = ""
local tail_seq = 0
--- The highest sequence number handed over: a resend counts no gap below it.
local high = 0
--- Per worker slot, the request to resend (slots.want_of) already served.
local served = {}
local failures = 0
--- When the position was last saved (ngx.now()).
local saved_at = 0
local down_since
--- Upper bounds of what waits for one destination, and in this worker, since the last look (FLOW).
local queued = 0
local held = 0
local function id_text(pos)
    return string.format("%.0f-%.0f", pos.ms, pos.n)
end
--- The instance's position: the least of its worker slots', else the last entry handed over.
local function position()
    local ____slots_ready_result_0
    if slots.ready() then
        ____slots_ready_result_0 = slots.least(ngx.worker.count())
    else
        ____slots_ready_result_0 = nil
    end
    local low = ____slots_ready_result_0
    if low ~= nil then
        return (id_text(low) .. " ") .. string.format("%.0f", low.seq)
    end
    return (tail_id .. " ") .. tostring(tail_seq)
end
--- A stream id's parts ("ms-n"), read byte by byte (no string per entry); 0, 0 if it is not one.
local function id_of(id)
    local ms = 0
    local i = 1
    local c = string.byte(id, 1) - 48
    while c >= 0 and c <= 9 do
        ms = ms * 10 + c
        i = i + 1
        c = (string.byte(id, i) or 0) - 48
    end
    if i == 1 or string.byte(id, i) ~= 45 then
        return 0, 0
    end
    local n = 0
    do
        local k = i + 1
        while k <= #id do
            local d = string.byte(id, k) - 48
            if d < 0 or d > 9 then
                return 0, 0
            end
            n = n * 10 + d
            k = k + 1
        end
    end
    return ms, n
end
--- Whether stream id a comes after b ("ms-seq").
local function after(a, b)
    local am, as = string.match(a, "^(%d+)%-(%d+)$")
    local bm, bs = string.match(b, "^(%d+)%-(%d+)$")
    local ma = tonumber(am) or 0
    local mb = tonumber(bm) or 0
    return ma > mb or ma == mb and (tonumber(as) or 0) > (tonumber(bs) or 0)
end
--- Sleeps `seconds` in steps, returning early (false) once the worker is exiting.
local function pause(seconds)
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
local function drop_connection(err)
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
            link.label(state.settings, state.settings.reader_endpoint),
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
local function open()
    local s = state.settings
    local c, err = link.connect(s, s.reader_endpoint, s.timeout_ms, BLOCK_MS + s.timeout_ms)
    if c == nil then
        drop_connection(err)
        return false
    end
    local sha, lerr = load(c, COMMIT)
    if sha == nil then
        c:close()
        drop_connection(lerr)
        return false
    end
    if high > 0 then
        local rargs, rcount = args_of(
            "1",
            s.seq_key,
            tostring(high)
        )
        local raised, rerr = run(c, RAISE, rargs, rcount)
        if raised == nil then
            c:close()
            drop_connection(rerr)
            return false
        end
    end
    sock = c
    if down_since ~= nil then
        counters.reconnects = counters.reconnects + 1
        ngx.update_time()
        ngx.log(
            ngx.NOTICE,
            "ngx.ipc: cluster reader: redis at ",
            link.label(s, s.reader_endpoint),
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
--- A holder on this host that is no longer a worker of this master has died: its lease can go.
local function holder_dead(holder)
    local pid = string.match(holder, "^(%d+):")
    if pid == nil then
        return false
    end
    return not state.our_worker(pid)
end
--- Takes the lease when it is free (or its holder died); false when someone else holds it.
local function acquire(expect)
    local args, count = args_of(
        "4",
        state.lease_key,
        state.pos_key,
        state.settings.stream,
        state.settings.seq_key,
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
    local workers = ngx.worker.count()
    local ____slots_ready_result_1
    if slots.ready() then
        ____slots_ready_result_1 = slots.least(workers)
    else
        ____slots_ready_result_1 = nil
    end
    local low = ____slots_ready_result_1
    if low ~= nil then
        last_id = id_text(low)
        tail_seq = low.seq
    elseif last_id == "" or reply[3] ~= 1 and after(id, last_id) then
        last_id = id or "0-0"
        tail_seq = tonumber(seq) or 0
    end
    tail_id = last_id
    high = math.max(high, tail_seq)
    if slots.ready() then
        local ms, n = string.match(last_id, "^(%d+)%-(%d+)$")
        slots.set_base({
            ms = tonumber(ms) or 0,
            n = tonumber(n) or 0,
            seq = tail_seq
        })
        do
            local i = 0
            while i < slots.span(workers) do
                served[i] = slots.want_of(i)
                i = i + 1
            end
        end
        slots.sweep_stale()
    end
    holding = true
    ngx.log(
        ngx.NOTICE,
        "ngx.ipc: cluster reader: worker ",
        ngx.worker.pid(),
        " reads ",
        state.settings.stream,
        " for ",
        state.instance,
        " after ",
        last_id
    )
    return true
end
--- COMMIT's arguments: save the position, and renew the lease ("0") or release it ("1").
local function commit_args(release)
    return args_of(
        "2",
        state.lease_key,
        state.pos_key,
        token,
        tostring(LEASE_MS),
        position(),
        release
    )
end
--- Saves the position and renews the lease (or releases it): false when it was lost.
local function commit(release)
    local args, count = commit_args(release and "1" or "0")
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
local function fits(size)
    return (queued == 0 or queued + size <= FLOW) and (held == 0 or held + size <= FLOW)
end
--- Waits until an entry of `size` bytes can be handed over without a backlog refusing
-- it (FLOW), renewing the lease meanwhile. false: the worker is exiting, or the lease
-- or the connection was lost.
local function room(size)
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
--- The entries of the last XREAD reply, by position (reused: no table per entry);
-- undefined where the entry lacks the field or it is not a number where one is due.
local e_id = {}
local e_seq = {}
local e_inst = {}
local e_pid = {}
local e_wid = {}
local e_name = {}
local e_data = {}
--- Field names of an ngx.ipc entry, by their byte.
local F_S = 115
local F_I = 105
local F_P = 112
local F_W = 119
local F_N = 110
local F_D = 100
local BULK = 36
local ARRAY = 42
--- The next element's header, which must be of `kind` with a number of at least
-- `least`: that number; undefined, err otherwise (the connection is then dropped:
-- what follows in it cannot be framed).
local function expect(c, kind, least, what)
    local k, v = resp.head(sock, c)
    if k == nil then
        return nil, v
    end
    if k ~= kind or v < least then
        return nil, "bad reply from redis to XREAD: " .. what
    end
    return v, nil
end
--- One field's value into the entry tables at k, after its name's byte.
local function read_value(c, k, f)
    local size, err = expect(c, BULK, 0, "a field's value is not a string")
    if size == nil then
        return err
    end
    if f == F_S or f == F_P or f == F_W then
        local v, nerr = resp.body_number(sock, c, size)
        if nerr ~= nil then
            return nerr
        end
        (f == F_S and e_seq or (f == F_P and e_pid or e_wid))[k] = v
        return nil
    end
    local v, berr = resp.body(sock, c, size)
    if v == nil then
        return berr
    end
    if f == F_I or f == F_N or f == F_D then
        (f == F_I and e_inst or (f == F_N and e_name or e_data))[k] = v
    end
    return nil
end
--- Entry k: "*2", its id, its field list.
local function read_entry(c, k)
    e_seq[k] = nil
    e_inst[k] = nil
    e_pid[k] = nil
    e_wid[k] = nil
    e_name[k] = nil
    e_data[k] = nil
    local two, err = expect(c, ARRAY, 2, "not a stream entry")
    if two == nil then
        return err
    end
    local isize, ierr = expect(c, BULK, 0, "an entry's id is not a string")
    if isize == nil then
        return ierr
    end
    local id, berr = resp.body(sock, c, isize)
    if id == nil then
        return berr
    end
    e_id[k] = id
    local fields, ferr = expect(c, ARRAY, 0, "an entry's fields are not a list")
    if fields == nil then
        return ferr
    end
    do
        local i = 1
        while i <= fields do
            local nsize, nerr = expect(c, BULK, 0, "a field's name is not a string")
            if nsize == nil then
                return nerr
            end
            local f, bberr = resp.body_byte(sock, c, nsize)
            if f == nil then
                return bberr
            end
            local verr = read_value(c, k, f)
            if verr ~= nil then
                return verr
            end
            i = i + 2
        end
    end
    return nil
end
--- XREAD's reply (one stream) into the entry tables, without a table per entry or a
-- string per field name and number: how many entries, 0 for none (it timed out).
local function read_entries()
    local c = resp.cursor(sock)
    local streams, err = expect(c, ARRAY, -1, "not a list of streams")
    if streams == nil then
        return nil, err
    end
    if streams < 1 then
        return 0, nil
    end
    local two, serr = expect(c, ARRAY, 2, "not a stream")
    if two == nil then
        return nil, serr
    end
    local nsize, nerr = expect(c, BULK, 0, "a stream's name is not a string")
    if nsize == nil then
        return nil, nerr
    end
    local stream, berr = resp.body(sock, c, nsize)
    if stream == nil then
        return nil, berr
    end
    local count, cerr = expect(c, ARRAY, 0, "a stream's entries are not a list")
    if count == nil then
        return nil, cerr
    end
    do
        local k = 1
        while k <= count do
            local rerr = read_entry(c, k)
            if rerr ~= nil then
                return nil, rerr
            end
            k = k + 1
        end
    end
    return count, nil
end
--- Counts and logs entries trimmed before this reader read them (each worker counts
-- its own loss), and numbers given out again (a failover, or Redis restarted without
-- persistence, lost entries this instance had handed over). Only at the frontier:
-- below it, a resend goes over numbers already handed over on purpose.
local function count_gap(seq, id, prev, prev_seq)
    local frontier = prev_seq >= high
    if frontier and high > 0 and seq <= high then
        counters.failover_lost = counters.failover_lost + (high - seq + 1)
        ngx.log(
            ngx.ERR,
            "ngx.ipc: cluster reader: ",
            state.settings.stream,
            " went back from number ",
            high,
            " to ",
            seq,
            " at ",
            id,
            ": a failover or a restart of Redis lost alerts this instance had handled; ",
            "other instances may have missed them"
        )
        high = seq
        return
    end
    if frontier and high > 0 and seq > high + 1 then
        counters.gaps = counters.gaps + 1
        ngx.log(
            ngx.ERR,
            "ngx.ipc: cluster reader: ",
            seq - high - 1,
            " alert(s) between ",
            prev,
            " and ",
            id,
            " were trimmed from ",
            state.settings.stream,
            " (maxlen ",
            state.settings.maxlen,
            ") or lost in a failover before this instance read them; they are lost for it"
        )
    end
    high = math.max(high, seq)
end
--- Goes back to the least position among the slots whose worker asked for a resend
-- (a replacement of a worker killed with -9, or a worker that found an entry
-- missing): what follows it is handed over again, and the workers that had it pass
-- over it.
local function rewind()
    local to
    do
        local i = 0
        while i < slots.span(ngx.worker.count()) do
            local w = slots.want_of(i)
            if w ~= "" and w ~= served[i] then
                served[i] = w
                local d = slots.done_of(i)
                if d ~= nil and (to == nil or d.ms < to.ms or d.ms == to.ms and d.n < to.n) then
                    to = d
                end
            end
            i = i + 1
        end
    end
    if to == nil then
        return
    end
    local id = id_text(to)
    if not after(last_id, id) then
        return
    end
    counters.rewinds = counters.rewinds + 1
    ngx.log(ngx.INFO, "ngx.ipc: cluster reader: a worker asked for the alerts after ", id, "; handing them over again")
    last_id = id
    tail_id = id
    tail_seq = to.seq
end
--- Hands the first `count` encoded entries of `parts` to every worker of the instance
-- in one local broadcast, the last of them `last` (number `seq`); false when it must
-- stop first.
local function hand_over(parts, count, last, seq)
    local env = table.concat(parts, "", 1, count)
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
            count,
            " alert(s) up to ",
            last,
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
    last_id = last
    tail_id = last
    tail_seq = seq
    counters.relayed = counters.relayed + count
    return holding and sock ~= nil
end
--- Hands the entries of one XREAD reply over in as few local broadcasts as ENVELOPE
-- allows, each entry naming the one before it; false when it must stop first.
local function relay(entries)
    local parts = {}
    local count = 0
    local bytes = 0
    local prev = tail_id
    local prev_ms, prev_n = id_of(tail_id)
    local prev_seq = tail_seq
    do
        local k = 1
        while k <= entries do
            do
                local id = e_id[k]
                local seq = e_seq[k]
                local inst = e_inst[k]
                local pid = e_pid[k]
                local wid = e_wid[k]
                local name = e_name[k]
                local data = e_data[k]
                e_data[k] = nil
                if seq == nil or inst == nil or pid == nil or wid == nil or name == nil or data == nil then
                    counters.malformed = counters.malformed + 1
                    ngx.log(
                        ngx.WARN,
                        "ngx.ipc: cluster reader: entry ",
                        id,
                        " of ",
                        state.settings.stream,
                        " is not an ngx.ipc alert; skipped"
                    )
                    if count > 0 and not hand_over(parts, count, prev, prev_seq) then
                        return false
                    end
                    last_id = id
                    count = 0
                    bytes = 0
                    goto __continue93
                end
                count_gap(seq, id, prev, prev_seq)
                local ms, n = id_of(id)
                local env = encode(
                    inst,
                    pid,
                    wid,
                    name,
                    prev_ms,
                    prev_n,
                    ms,
                    n,
                    seq,
                    data
                )
                if count > 0 and bytes + #env > ENVELOPE then
                    if not hand_over(parts, count, prev, prev_seq) then
                        return false
                    end
                    count = 0
                    bytes = 0
                end
                count = count + 1
                parts[count] = env
                bytes = bytes + #env
                prev = id
                prev_ms = ms
                prev_n = n
                prev_seq = seq
            end
            ::__continue93::
            k = k + 1
        end
    end
    return count == 0 or hand_over(parts, count, prev, prev_seq)
end
--- One turn: save the position and renew the lease, read what follows, hand it over.
local function step()
    local s = state.settings
    if slots.ready() then
        rewind()
    end
    local out = {}
    local n = 1
    ngx.update_time()
    local save = ngx.now() - saved_at >= SAVE_EVERY
    if save then
        local cargs, ccount = commit_args("0")
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
    local r, rerr = read_entries()
    if c == nil or r == nil then
        drop_connection(c == nil and cerr or rerr)
        return
    end
    failures = 0
    if c ~= 1 then
        lost_lease()
        return
    end
    if r == 0 then
        return
    end
    local c0 = shim.counters()
    queued = c0.send_queued
    held = c0.receive_ready + c0.receive_partial
    relay(r)
end
local function read_loop(premature)
    if premature then
        return
    end
    token = (((tostring(ngx.worker.pid()) .. ":") .. tostring(ngx.now())) .. ":") .. (ngx.config.subsystem or "http")
    while not ngx.worker.exiting() do
        do
            if sock == nil and not open() then
                goto __continue110
            end
            if not holding then
                local got = acquire("")
                if got == false and not pause(LEASE_POLL) then
                    break
                end
                goto __continue110
            end
            step()
        end
        ::__continue110::
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
--- Starts the reader (worker 0): a timer that reads until the worker exits.
function ____exports.start()
    local ok, err = ngx.timer.at(0, read_loop)
    if ok == nil then
        ngx.log(ngx.ERR, "ngx.ipc: cannot start the cluster reader: ", err)
    end
end
--- Whether this worker holds the lease and reads.
function ____exports.reading()
    return holding
end
--- The last entry handed over, or undefined before the lease was first taken.
function ____exports.last_relayed()
    local ____temp_2
    if last_id == "" then
        ____temp_2 = nil
    else
        ____temp_2 = last_id
    end
    return ____temp_2
end
return ____exports
