-- bench/mlcache.lua: M1 of `make bench` (bench/run.lua --only=M1 --mlcache=PATH
-- [--lock=PATH]): how long after cache:set() or cache:delete() in one worker
-- the key leaves every other worker's L1, with ngx.ipc.mlcache as
-- lua-resty-mlcache's opts.ipc (no update() anywhere) and, in the same run,
-- with the library's own ipc_shm (lua_shared_dict 1m) polled by update()
-- from a timer in every worker, every 1 s and every 0.01 s (its README: call
-- update() before get(), i.e. as often as requests come).  PATH: a
-- lua-resty-mlcache checkout; --lock: lua-resty-lock's, which nginx builds
-- without OpenResty's lualib lack.
--
--   latency:    worker 0 runs 300 operations on fresh keys, one every 2 ms,
--               set and delete in turn; every other worker's L1 delete (the
--               instance's lrucache:delete, wrapped: both IPCs end there)
--               takes CLOCK_MONOTONIC minus the time just before the call;
--               p50/p99 over every (operation, other worker)
--   throughput: 3000 operations as fast as they return, a yield
--               (ngx.sleep(0.001)) every 100; invalidations/s from the first
--               call to the last key evicted by the last other worker
--
-- refused = set/delete returned nil, err; lost = a key some other worker
-- never evicted (its L1 would keep returning the old value), in the latency
-- and the burst runs; invalidations/s counts evictions only; a run stops
-- waiting once no key has been evicted for 3 update intervals + 2 s.

local socket = require "socket"
local nginx = require "nginx"

local ROOT = debug.getinfo(1, "S").source:sub(2):match("^(.*)/bench/[^/]+$") or "."
local E = dofile(ROOT .. "/bench/events.lua")

local INTERVALS = { 1, 0.01 }
local LATENCY_OPS = 300
local BURST = 3000
local YIELD_EVERY = 100

-- %q: package.path prefix; %s: mlcache.new's options; %s: code run after
local WORKER = "package.path = %q .. package.path\n" .. E.CLOCK .. [[
local cache = assert(require("resty.mlcache").new("bench", "cache_shm", %s))
_G.CACHE = cache
local st = { count = {}, done = {}, lat = {}, seen = {}, us = us }
T.state.m = st
local lru = cache.lru
local delete = lru.delete
lru.delete = function(self, key)
  local run = not st.seen[key] and key:match("^(%%w+):")
  if run then
    st.seen[key] = true
    local now = us()
    st.count[run] = (st.count[run] or 0) + 1
    st.done[run] = now
    local t0 = T.dict:get("t0:" .. key)
    if t0 then
      local l = st.lat[run]
      if not l then l = {}; st.lat[run] = l end
      l[#l + 1] = now - t0
    end
  end
  return delete(self, key)
end
%s
]]

-- n operations of run `run`; %s: the time record, what to do between two
local SENDER = [[
local st = T.state.m
local t_first = st.us()
local refused, why = 0, nil
for i = 1, %d do
  local key = %q .. ":" .. i
  %s
  local ok, err
  if i %% 2 == 1 then ok, err = CACHE:set(key, nil, i) else ok, err = CACHE:delete(key) end
  if not ok then refused = refused + 1; why = err end
  %s
end
return t_first, refused, why
]]

local percentile = E.percentile

-- one nginx of `workers` workers; interval nil: ngx.ipc.mlcache
local function measure(ctx, workers, interval)
  local opts, median = ctx.opts, ctx.median
  local path = opts.mlcache .. "/lib/?.lua;" .. (opts.lock and (opts.lock .. "/lib/?.lua;") or "")
  local mopts, after = [[{ ipc = require "ngx.ipc.mlcache" }]], ""
  if interval then
    mopts = [[{ ipc_shm = "ipc_shm" }]]
    after = ("assert(ngx.timer.every(%g, function() CACHE:update() end))"):format(interval)
  end
  local inst = nginx.start {
    workers = workers,
    http = "lua_shared_dict cache_shm 32m; lua_shared_dict ipc_shm 1m;",
    init_worker = WORKER:format(path, mopts, after),
  }
  local out = { errors = {}, runs = {} }
  local stall = interval and interval * 3 + 2 or 10
  local ok, err = pcall(function()
    local by_id = inst:by_id()
    local pub = by_id[0]
    local others = {}
    for id, pid in pairs(by_id) do
      if id ~= 0 then others[#others + 1] = pid end
    end
    local get = [[local st = T.state.m return { n = st.count[%q] or 0, done = st.done[%q] }]]

    -- every other worker evicted n keys of run `run` (or stalled); the last time
    local function wait_all(run, n)
      local states
      local stalled = E.staller(stall)
      pcall(function()
        inst:wait_for(function()
          states = {}
          local total, short = 0, nil
          for _, pid in ipairs(others) do
            local v = inst:run(pid, get:format(run, run))
            states[pid] = v
            total = total + v.n
            if v.n < n then short = v.n .. " of " .. n end
          end
          if not short or stalled(total) then return true end
          return false, short
        end, 120, "run " .. run)
      end)
      local last, evicted = 0, 0
      for pid, v in pairs(states) do
        evicted = evicted + v.n
        if v.n ~= n then
          out.errors[#out.errors + 1] = ("%s: worker %d evicted %d of %d keys"):format(run, pid, v.n, n)
        end
        last = math.max(last, v.done or 0)
      end
      return last, evicted
    end

    local lat50, lat99, rates, lost, refused = {}, {}, {}, 0, 0
    for r = 0, opts.runs do
      local warm = r == 0
      local lrun = "l" .. r
      local n = warm and 50 or LATENCY_OPS
      local res = { inst:run(pub, SENDER:format(n, lrun, 'T.dict:set("t0:" .. key, st.us())', "ngx.sleep(0.002)"),
        120) }
      local _, levicted = wait_all(lrun, n - res[2])
      if not warm then
        refused, lost = refused + res[2], lost + (n - res[2]) * #others - levicted
      end
      local samples = {}
      for _, pid in ipairs(others) do
        for _, v in ipairs(inst:run(pid, ("return T.state.m.lat[%q] or {}"):format(lrun))) do
          samples[#samples + 1] = v
        end
      end
      table.sort(samples)
      local trun = "t" .. r
      local burst = warm and 200 or BURST
      res = { inst:run(pub, SENDER:format(burst, trun, "",
        ("if i %% %d == 0 then ngx.sleep(0.001) end"):format(YIELD_EVERY)), 120) }
      local first, nref, why = res[1], res[2], res[3]
      local last, evicted = wait_all(trun, burst - nref)
      if not warm then
        refused = refused + nref
        lost = lost + (burst - nref) * #others - evicted
        if nref > 0 then out.refused_error = why end
        lat50[#lat50 + 1], lat99[#lat99 + 1] = percentile(samples, 0.5), percentile(samples, 0.99)
        -- keys evicted per other worker per second (with no loss: operations per second)
        rates[#rates + 1] = evicted > 0 and last > first and evicted / #others / ((last - first) / 1e6) or 0
        out.runs[#out.runs + 1] = { p50_us = lat50[#lat50], p99_us = lat99[#lat99], events_per_s = rates[#rates],
          refused = nref }
      end
    end
    out.p50_us, out.p99_us, out.events_per_s = median(lat50), median(lat99), median(rates)
    out.refused, out.lost = refused, lost
    if #inst:error_lines() > 0 then
      out.error_lines = #inst:error_lines()
    end
  end)
  pcall(inst.stop, inst)
  if not ok then
    out.errors[#out.errors + 1] = tostring(err):match("^[^\n]*")
  end
  out.whole = #out.errors == 0
  return out
end

return function(ctx)
  local say, si = ctx.say, ctx.si
  local t_start = socket.gettime()
  local out = { name = "M1 mlcache", rows = {}, intervals = INTERVALS }
  local function show(w)
    return ("%s invalidations/s, p50 %.0f µs, p99 %.0f µs, %d refused, %d lost%s"):format(si(w.events_per_s or 0),
      w.p50_us or 0, w.p99_us or 0, w.refused or 0, w.lost or 0,
      w.whole and "" or "  FAILED: " .. table.concat(w.errors, "; "))
  end
  for _, workers in ipairs({ 2, 5 }) do
    local row = { workers = workers, real = {} }
    row.ours = measure(ctx, workers, nil)
    say("  M1 %d workers: ngx.ipc.mlcache %s", workers, show(row.ours))
    for i, interval in ipairs(INTERVALS) do
      row.real[i] = measure(ctx, workers, interval)
      say("  M1 %d workers: ipc_shm, update() every %g s: %s", workers, interval, show(row.real[i]))
    end
    out.rows[#out.rows + 1] = row
  end
  return E.finish(out, say, "M1", t_start)
end
