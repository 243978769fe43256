-- t/stress/traffic.lua: checked ngx.ipc traffic between the workers of a test
-- nginx (t/lib/nginx.lua), shared by t/stress/*.lua and the hardening specs.
--
--   local traffic = require "t.stress.traffic"
--   local inst = nginx.start { workers = 4, init_worker = traffic.worker_code{ ... } }
--   traffic.start(inst)            -- every worker (and every later one) sends
--   ... reloads, kills ...
--   traffic.stop(inst)
--   local r = traffic.verify(inst, { killed = { [pid] = death_time } })
--   -- r.failures (list of strings), r.figures (table), traffic.report(r)
--
-- Each worker runs a loop that sends to every worker of its own generation
-- (kind "s"), broadcasts (kind "b"), and replies to every "s" it handles (kind
-- "r").  An alert's data is
--
--     <generation>|<kind>|<sender pid>|<seq>|<payload length>|<crc32>|<payload>
--
-- with one sequence per (sender, destination) for s and r alerts (taken only
-- when send/reply returned true) and one per sender for broadcasts.  The
-- receiving handler checks, for every alert: the generation is its own, the
-- sender field is ipc.sender, the payload is whole (length and CRC-32), and the
-- sequence follows the previous one from that sender (no gap, no repeat, no
-- reordering).  Violations are recorded with the worker's counters in the
-- shared dict ("st:<pid>", flushed every 100 ms and when the worker exits), so
-- workers that exited or were killed still count.

local M = {}

local function lit(v)
  if type(v) == "string" then
    return string.format("%q", v)
  end
  return tostring(v)
end

-- the Lua that each worker runs in init_worker_by_lua (after the harness's own)
--   opts.min_size, opts.max_size  payload sizes, drawn log-uniformly (10, 2000)
--   opts.big_every, opts.big_size  every n-th direct alert has big_size bytes
--   opts.interval     seconds between rounds (0.005)
--   opts.bcast_every  one broadcast every n rounds (3)
--   opts.reply        reply to every "s" alert (true)
--   opts.cross        every 10 rounds, send to a worker of another generation
--                     (must fail) (false)
--   opts.budget       bytes per second a worker may send, 0 = no limit (0)
function M.worker_code(opts)
  opts = opts or {}
  local o = {
    min_size = opts.min_size or 10,
    max_size = opts.max_size or 2000,
    big_every = opts.big_every or 0,
    big_size = opts.big_size or 0,
    interval = opts.interval or 0.005,
    bcast_every = opts.bcast_every or 3,
    reply = opts.reply ~= false,
    cross = opts.cross or false,
    budget = opts.budget or 0,
  }
  local parts = {}
  for k, v in pairs(o) do
    parts[#parts + 1] = k .. " = " .. lit(v)
  end
  return ([[
do
  local OPT = { %s }
  local ipc = require "ngx.ipc"
  local T = require "ngx_ipc_t"
  local dict = T.dict
  local me = ngx.worker.pid()
  local gen = T.gen
  local crc32 = ngx.crc32_long
  local floor, random = math.floor, math.random
  math.randomseed(me * 7919 + floor(ngx.now() * 1000))

  local st = {
    pid = me, gen = gen, started = ngx.now(),
    sent = {}, last_ok = {}, fail_to = {}, bsent = 0, bpartial = {},
    serr = {}, cross_ok = 0, cross_err = 0, rounds = 0,
    recv = {}, brecv = {}, nrecv = 0, bytes_recv = 0, bytes_sent = 0,
    bad = {}, nbad = 0,
  }
  T.state.traffic = st

  local function bad(msg)
    st.nbad = st.nbad + 1
    if #st.bad < 20 then st.bad[#st.bad + 1] = msg end
  end

  local function flush()
    if ipc.stats then
      local s = ipc.stats()
      s.backlog = nil
      st.ipc = s
    end
    st.flushed = ngx.now()
    dict:set("st:" .. me, T.serialize(st))
  end

  local function size()
    local n = floor(OPT.min_size * (OPT.max_size / OPT.min_size) ^ random())
    return n
  end

  local function payload(seq, n)
    local unit = string.char(seq %% 256, (seq * 7 + 3) %% 256, 0, 255, me %% 251, 10)
    local reps = floor(n / 6) + 1
    local p = unit:rep(reps)
    if #p > n then p = p:sub(1, n) end
    return p
  end

  local function message(kind, seq, n)
    local p = payload(seq, n)
    return string.format("%%s|%%s|%%d|%%d|%%d|%%d|", gen, kind, me, seq, n, crc32(p)) .. p
  end

  local function classify(err)
    local class = tostring(err):gsub("%%d+", "N")
    st.serr[class] = (st.serr[class] or 0) + 1
  end

  local ndirect = 0
  local function direct(dst, kind)
    local seq = (st.sent[dst] or 0) + 1
    ndirect = ndirect + 1
    local n = (OPT.big_every > 0 and ndirect %% OPT.big_every == 0) and OPT.big_size or size()
    local m = message(kind, seq, n)
    local ok, err
    if kind == "r" then
      ok, err = ipc.reply("t", m)
    else
      ok, err = ipc.send(dst, "t", m)
    end
    if ok then
      st.sent[dst] = seq
      st.last_ok[dst] = ngx.now()
      st.bytes_sent = st.bytes_sent + #m
    else
      classify(err)
      st.fail_to[dst] = (st.fail_to[dst] or 0) + 1
    end
    return #m
  end

  local function bcast()
    local seq = st.bsent + 1
    local m = message("b", seq, size())
    local ok, err = ipc.broadcast("t", m)
    -- a broadcast that returns nil, err still reached the workers it does not name
    st.bsent = seq
    dict:set("bs:" .. me, seq)
    if not ok then
      classify(err)
      if #st.bpartial < 100 then st.bpartial[#st.bpartial + 1] = seq end
    end
    return #m
  end

  ipc.receive("t", function(data)
    local g, kind, src, seq, n, crc, pos =
      data:match("^([^|]*)|(%%a)|(%%d+)|(%%d+)|(%%d+)|(%%d+)|()")
    st.nrecv = st.nrecv + 1
    st.bytes_recv = st.bytes_recv + #data
    if not g then
      bad(("unparsable alert of %%d bytes from %%s"):format(#data, tostring(ipc.sender)))
      return
    end
    src, seq, n, crc = tonumber(src), tonumber(seq), tonumber(n), tonumber(crc)
    if g ~= gen then
      bad(("cross-generation: %%s alert %%d from %%d of %%s reached %%d of %%s"):format(kind, seq, src, g, me, gen))
    end
    if src ~= ipc.sender then
      bad(("sender field %%d but ipc.sender %%s"):format(src, tostring(ipc.sender)))
    end
    local p = data:sub(pos)
    if #p ~= n or crc32(p) ~= crc then
      bad(("damaged %%s alert %%d from %%d: %%d bytes of %%d, crc %%s"):format(kind, seq, src, #p, n,
        crc32(p) == crc and "ok" or "wrong"))
    end
    if kind == "b" then
      local b = st.brecv[src]
      if not b then
        b = { n = 0, first = seq, last = seq - 1, t = ngx.now(), gaps = {} }
        st.brecv[src] = b
      end
      if seq ~= b.last + 1 then
        if seq > b.last + 1 and #b.gaps < 50 then
          b.gaps[#b.gaps + 1] = { b.last + 1, seq - 1 }
        end
        if seq <= b.last then
          bad(("broadcast from %%d out of order: %%d after %%d"):format(src, seq, b.last))
        end
      end
      b.last = seq
      b.n = b.n + 1
    else
      local r = st.recv[src]
      if not r then
        r = { n = 0, last = 0, t = ngx.now() }
        st.recv[src] = r
      end
      if seq ~= r.last + 1 then
        bad(("%%s alert from %%d out of order: %%d after %%d"):format(kind, src, seq, r.last))
      end
      if seq > r.last then r.last = seq end
      r.n = r.n + 1
      if kind == "s" and OPT.reply then
        direct(src, "r")
      end
    end
    if ngx.worker.exiting() then flush() end
  end)

  -- how many broadcasts each worker had sent when this one joined ("bs:<pid>", set
  -- after each of them): this worker must hear every later one
  st.bstart = {}
  for _, w in ipairs(ipc.workers()) do
    st.bstart[w.pid] = dict:get("bs:" .. w.pid) or 0
  end

  -- workers of this generation, and of others, from the harness's registrations
  local cache, other, cache_t = {}, {}, 0
  local function peers()
    if ngx.now() - cache_t >= 0.1 then
      local list, others = {}, {}
      for _, k in ipairs(dict:get_keys(0)) do
        local pid = k:match("^w:(%%d+)$")
        if pid then
          if dict:get(k) == gen then list[#list + 1] = tonumber(pid)
          else others[#others + 1] = tonumber(pid) end
        end
      end
      cache, other, cache_t = list, others, ngx.now()
    end
    return cache
  end

  local function run()
    local t0, spent = ngx.now(), 0
    while not ngx.worker.exiting() and dict:get("traffic") == 1 do
      st.rounds = st.rounds + 1
      for _, dst in ipairs(peers()) do
        spent = spent + direct(dst, "s")
      end
      if st.rounds %% OPT.bcast_every == 0 then
        spent = spent + bcast()
      end
      if OPT.cross and st.rounds %% 10 == 0 and #other > 0 then
        local ok = ipc.send(other[random(#other)], "t", message("x", 0, 10))
        if ok then st.cross_ok = st.cross_ok + 1 else st.cross_err = st.cross_err + 1 end
      end
      local pause = OPT.interval
      if OPT.budget > 0 then
        ngx.update_time()
        local ahead = spent / OPT.budget - (ngx.now() - t0)
        if ahead > pause then pause = ahead end
      end
      ngx.sleep(pause)
    end
  end

  ngx.timer.at(0, function(premature)
    if premature then return end
    while not ngx.worker.exiting() do
      if dict:get("traffic") == 1 then
        local ok, err = xpcall(run, debug.traceback)
        if not ok then
          st.crash = tostring(err)
          flush()
          return
        end
      end
      ngx.sleep(0.02)
    end
    flush()
  end)
  ngx.timer.every(0.1, function() flush() end)
  flush()
end
]]):format(table.concat(parts, ", "))
end

-- switch the traffic on or off in every worker, present and future
function M.start(inst)
  inst:run(inst:workers()[1], "T.dict:set('traffic', 1)")
end

function M.stop(inst)
  inst:run(inst:workers()[1], "T.dict:set('traffic', 0)")
end

-- every worker's record: { [pid] = st }
function M.collect(inst)
  local raw = inst:run(inst:workers()[1], [[
    local out = {}
    for _, k in ipairs(T.dict:get_keys(0)) do
      local pid = k:match("^st:(%d+)$")
      if pid then out[tonumber(pid)] = T.dict:get(k) end
    end
    return out
  ]], 30)
  local out = {}
  for pid, s in pairs(raw) do
    local f = assert(loadstring("return " .. s))
    setfenv(f, { math = { huge = math.huge } })
    out[pid] = f()
  end
  return out
end

local function sorted_keys(t)
  local k = {}
  for x in pairs(t) do k[#k + 1] = x end
  table.sort(k)
  return k
end

-- Waits until every pair of live workers is in step (what was sent has arrived),
-- at most `timeout` seconds; returns the records.
function M.quiesce(inst, timeout)
  local nginx = require "nginx"
  local deadline = require("socket").gettime() + (timeout or 15)
  local stats
  while true do
    require("socket").sleep(0.3)     -- two flushes
    stats = M.collect(inst)
    local behind = 0
    for r, rs in pairs(stats) do
      if nginx.alive(r) then
        for s, ss in pairs(stats) do
          if nginx.alive(s) then
            local sent = ss.sent[r] or 0
            local got = rs.recv[s] and rs.recv[s].last or 0
            if got < sent then behind = behind + (sent - got) end
            local b = rs.brecv[s]
            if b and b.last < ss.bsent then behind = behind + (ss.bsent - b.last) end
          end
        end
      end
    end
    if behind == 0 or require("socket").gettime() > deadline then
      return stats, behind
    end
  end
end

-- the broadcasts of a worker that returned nil, err (some workers may not have had them)
local function refused_of(ss)
  local set = {}
  for _, q in ipairs(ss.bpartial or {}) do set[q] = true end
  return set
end

-- Checks the records.  info.killed = { [pid] = time of death (socket.gettime) };
-- info.exited = set of pids that exited gracefully (old generations);
-- info.respawned = { [pid] = true } workers started by the master after a kill.
-- Returns { failures = {...}, figures = {...} }.
function M.verify(stats, info)
  local nginx = require "nginx"
  info = info or {}
  local killed = info.killed or {}
  local failures, fig = {}, {
    workers = 0, alerts_received = 0, bytes_received = 0, direct_sent = 0, violations = 0,
    broadcasts_sent = 0, lost_at_exit = 0, send_errors = {}, cross_ok = 0, cross_err = 0,
  }
  local function fail(msg)
    if #failures < 60 then failures[#failures + 1] = msg end
  end
  local alive = {}
  for pid in pairs(stats) do
    alive[pid] = nginx.alive(pid)
  end

  for _, r in ipairs(sorted_keys(stats)) do
    local rs = stats[r]
    fig.workers = fig.workers + 1
    fig.alerts_received = fig.alerts_received + rs.nrecv
    fig.violations = fig.violations + rs.nbad
    fig.bytes_received = fig.bytes_received + rs.bytes_recv
    fig.broadcasts_sent = fig.broadcasts_sent + rs.bsent
    fig.cross_ok = fig.cross_ok + rs.cross_ok
    fig.cross_err = fig.cross_err + rs.cross_err
    for _, n in pairs(rs.sent) do fig.direct_sent = fig.direct_sent + n end
    for class, n in pairs(rs.serr) do
      fig.send_errors[class] = (fig.send_errors[class] or 0) + n
    end
    if rs.crash then
      fail(("worker %d: the traffic loop raised: %s"):format(r, rs.crash))
    end
    for _, b in ipairs(rs.bad) do
      fail(("worker %d: %s"):format(r, b))
    end
    if rs.nbad > #rs.bad then
      fail(("worker %d: %d more violations"):format(r, rs.nbad - #rs.bad))
    end
    if rs.cross_ok > 0 then
      fail(("worker %d: %d sends to a worker of another generation returned true"):format(r, rs.cross_ok))
    end

    -- what each sender sent to r against what r got
    for _, s in ipairs(sorted_keys(stats)) do
      local ss = stats[s]
      local sent = ss.sent[r] or 0
      local got = rs.recv[s] and rs.recv[s].last or 0
      local final_s = not killed[s]           -- a killed sender's record may be stale
      if alive[r] and alive[s] and got ~= sent then
        fail(("%d sent %d alerts to %d, which handled %d (both alive)"):format(s, sent, r, got))
      elseif final_s and got > sent then
        fail(("%d sent %d alerts to %d, which handled %d: more than sent"):format(s, sent, r, got))
      elseif got < sent then
        fig.lost_at_exit = fig.lost_at_exit + (sent - got)
      end
      local b = rs.brecv[s]
      if b then
        local partial = refused_of(ss)
        for _, gap in ipairs(b.gaps) do
          for q = gap[1], gap[2] do
            if not partial[q] then
              fail(("%d missed broadcasts %d..%d of %d (broadcast returned true)"):format(r, gap[1], gap[2], s))
              break
            end
          end
        end
        if alive[r] and alive[s] and b.last ~= ss.bsent then
          fail(("%d handled broadcasts of %d up to %d, %d were sent (both alive)"):format(r, s, b.last, ss.bsent))
        end
      end
    end

    -- sends to a killed worker after its death must have failed
    for dead, t in pairs(killed) do
      local last = rs.last_ok[dead]
      if last and last > t + 0.05 then
        fail(("%d: a send to %d returned true %.3f s after it was killed"):format(r, dead, last - t))
      end
    end
  end

  -- only the documented errors
  local allowed = info.allowed_errors or {
    "^no such worker: N$", "^no such worker: N %(exited%)$",
    -- a worker that got QUIT sends no more (README: Reload, quit, crash)
    "^ngx%.ipc: this worker is shutting down %(reload or quit%) and sends no more alerts",
  }
  for class, n in pairs(fig.send_errors) do
    local ok = false
    for _, pat in ipairs(allowed) do
      if class:match(pat) then ok = true end
    end
    if not ok then
      fail(("%d sends failed with an unexpected error: %s"):format(n, class))
    end
  end

  -- a respawned worker hears every broadcast sent after it joined: from each worker
  -- of its generation, every one after the count that worker had set when this one
  -- joined, but the one it may have had under way then, and those refused (only
  -- the respawned workers alive at the end: a killed one's record may be stale)
  fig.first_broadcast_max = 0
  for pid in pairs(info.respawned or {}) do
    local rs = stats[pid]
    if not alive[pid] then
      -- killed in its turn
    elseif not rs then
      fail(("respawned worker %d left no record"):format(pid))
    else
      for s, ss in pairs(stats) do
        -- a worker that joined before it (in its list), or started after it
        local at_start = rs.bstart and rs.bstart[s] or (ss.started > rs.started and 0 or nil)
        if s ~= pid and ss.gen == rs.gen and at_start and ss.bsent > at_start + 1 then
          local b = rs.brecv[s]
          if not b then
            fail(("respawned worker %d never handled a broadcast of %d"):format(pid, s))
          else
            local d = b.t - math.max(rs.started, ss.started)
            if d > fig.first_broadcast_max then fig.first_broadcast_max = d end
            local refused = refused_of(ss)
            for q = at_start + 2, b.first - 1 do
              if not refused[q] then
                fail(("respawned worker %d missed broadcasts %d..%d of %d, sent after it started (%d had been sent then)")
                  :format(pid, q, b.first - 1, s, at_start))
                break
              end
            end
          end
        end
      end
    end
  end

  return { failures = failures, figures = fig }
end

function M.report(r, out)
  out = out or io.stdout
  local f = r.figures
  out:write(("  workers seen %d; alerts handled %d (%.1f MB); direct alerts sent %d; broadcasts sent %d\n"):format(
    f.workers, f.alerts_received, f.bytes_received / 1e6, f.direct_sent, f.broadcasts_sent))
  out:write(("  direct alerts lost in flight to or from an exiting/killed worker: %d\n"):format(f.lost_at_exit))
  out:write(("  alerts damaged, out of order or from another generation: %d\n"):format(f.violations))
  if f.cross_ok + f.cross_err > 0 then
    out:write(("  sends to other generations: %d refused, %d accepted\n"):format(f.cross_err, f.cross_ok))
  end
  for _, class in ipairs(sorted_keys(f.send_errors)) do
    out:write(("  send errors: %6d x %s\n"):format(f.send_errors[class], class))
  end
  if f.first_broadcast_max and f.first_broadcast_max > 0 then
    out:write(("  respawned workers: first broadcast handled at most %.3f s after start\n"):format(f.first_broadcast_max))
  end
  for _, msg in ipairs(r.failures) do
    out:write("  FAIL: " .. msg .. "\n")
  end
end

-- /proc figures of a process: rss (kB), fds (open descriptors)
function M.proc(pid)
  local f = io.open("/proc/" .. pid .. "/status")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  local rss = tonumber(s:match("VmRSS:%s*(%d+)"))
  local nfd = 0
  local p = io.popen("ls -1 /proc/" .. pid .. "/fd 2>/dev/null")
  for _ in p:lines() do nfd = nfd + 1 end
  p:close()
  return { rss = rss, fds = nfd }
end

-- the entries of a worker's instance directory, and the directory
function M.instance_dir(inst, pid)
  local nginx = require "nginx"
  local dir = inst:run(pid, "return require('ngx.ipc.shim').dir()")
  return nginx.listdir(dir), dir
end

-- adds a failure to r unless the instance directory of pids[1] holds exactly
-- the pipes of `pids`: one per worker id (w0 ...), and each live worker's pid
-- linked to its id's; returns the directory
function M.check_pipes(inst, pids, r)
  local entries, dir = M.instance_dir(inst, pids[1])
  table.sort(entries)
  local want = {}
  for i, p in ipairs(pids) do
    want[#want + 1] = tostring(p)
    want[#want + 1] = "w" .. (i - 1)
  end
  table.sort(want)
  if table.concat(entries, " ") ~= table.concat(want, " ") then
    r.failures[#r.failures + 1] = ("instance directory %s holds [%s], expected the live workers' pipes [%s]"):format(
      dir, table.concat(entries, " "), table.concat(want, " "))
  end
  return dir
end

-- stops inst after a run made with pcall: re-raises the run's error, else
-- returns its result with a failure to stop added in front
function M.finish(inst, ok, res)
  local stop_ok, stop_err = pcall(inst.stop, inst)
  if not ok then
    error(res, 0)
  end
  if not stop_ok then
    table.insert(res.failures, 1, tostring(stop_err))
  end
  return res
end

return M
