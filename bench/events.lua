-- bench/events.lua: E1 of `make bench` (bench/run.lua --only=E1): an event
-- published with ngx.ipc.events in one worker and handled in every worker,
-- and, with --events=PATH (a lua-resty-events checkout) and, where nginx does
-- not have it built in, --events-module=PATH (its C module as a dynamic module),
-- the same with lua-resty-events on a second nginx, in the same run.
--
--   latency:    worker 0 publishes "all" one event every 2 ms; every worker
--               takes, per event, the time from just before publish to its
--               handler (CLOCK_MONOTONIC: one host); p50/p99 over all of them
--   throughput: worker 0 publishes a burst of events as fast as publish
--               returns, yielding (ngx.sleep(0.001)) every 100; events/s from
--               the first publish to the last event handled by the last worker
--
-- 10 B and 10 KiB data, 2 and 5 workers. Every run counts, in every worker,
-- the events handled (each once, in order) and the publishes refused (nil,
-- err); a library that loses events shows them as lost (in the latency and
-- the burst runs), not as slow, and its events/s counts what it delivered.

local socket = require "socket"
local nginx = require "nginx"

local LATENCY_EVENTS = 300
local BURST = 3000
local YIELD_EVERY = 100

-- init_by_lua for a library under test: it defines BENCH_READY() (true once
-- this worker can publish and receive), BENCH_SUBSCRIBE(handler), where
-- handler(data, run) runs for each event of the bench, and
-- BENCH_PUBLISH(run, data) -> ok, err (an event for every worker).
-- bench/worker_events.lua measures lua-resty-worker-events with it too.
local INIT = [[
_G.ev = require(%q).new { listening = "unix:%s" }
function BENCH_READY() return ev:is_ready() == true end
function BENCH_SUBSCRIBE(h) assert(ev:init_worker()); ev:subscribe("bench", "*", h) end
function BENCH_PUBLISH(run, data) return ev:publish("all", "bench", run, data) end
]]

-- the workers' clock, us(): CLOCK_MONOTONIC in µs (one host, comparable
-- across workers); bench/mlcache.lua's workers use it too
local CLOCK = [[
local ffi = require "ffi"
pcall(ffi.cdef, [=[
typedef struct { long sec; long nsec; } ngx_ipc_ebench_ts;
int ngx_ipc_ebench_clock(int clk, ngx_ipc_ebench_ts *ts) __asm__("clock_gettime");
]=])
local ts = ffi.new("ngx_ipc_ebench_ts")
local C = ffi.C
local function us()
  C.ngx_ipc_ebench_clock(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.sec) * 1e6 + tonumber(ts.nsec) / 1e3
end
]]

local WORKER = CLOCK .. [[
local st = { count = {}, last = {}, bad = 0, lat = {}, done = {}, us = us }
T.state.e = st
BENCH_SUBSCRIBE(function(data, run)
  local now = us()
  local i, t0 = data:match("^(%d+) (%d+)")
  i = tonumber(i)
  if i ~= (st.last[run] or 0) + 1 then st.bad = st.bad + 1 end
  st.last[run] = i
  st.count[run] = (st.count[run] or 0) + 1
  st.done[run] = now
  local l = st.lat[run]
  if not l then l = {}; st.lat[run] = l end
  l[#l + 1] = now - tonumber(t0)
end)
]]

-- publish n events of `size` bytes for run `run`; %s: what to do between two
local PUBLISH = [[
local st = T.state.e
local pad = string.rep("x", %d)
local t_first = st.us()
local refused = 0
for i = 1, %d do
  local t = math.floor(st.us())
  local ok, err = BENCH_PUBLISH(%q, (i .. " " .. t .. " " .. pad):sub(1, math.max(%d, #tostring(i) + 2 + #tostring(t))))
  if not ok then refused = refused + 1; st.err = err end
  %s
end
return t_first, refused, st.err
]]

-- stalled(total) is true once `total` (what every worker handled so far)
-- has not grown for `stall` seconds (never, with stall nil)
local function staller(stall)
  local seen, t_seen = -1, socket.gettime()
  return function(total)
    if total > seen then
      seen, t_seen = total, socket.gettime()
      return false
    end
    return stall ~= nil and socket.gettime() - t_seen > stall
  end
end

-- a row's end: whole when ours lost nothing; how long it took
local function finish(out, say, label, t_start)
  out.whole = true
  for _, row in ipairs(out.rows) do
    out.whole = out.whole and row.ours.whole
  end
  say("  %s (%.1f s)", label, socket.gettime() - t_start)
  return out
end

local function percentile(sorted, p)
  if #sorted == 0 then return nil end
  return sorted[math.max(1, math.ceil(#sorted * p))]
end

-- ngx.ipc.events ("ours") or lua-resty-events ("real") as a library for measure()
local function events_lib(ctx, impl)
  local sock = ("/tmp/ngx-ipc-ebench.%d.%d.sock"):format(os.time(), math.random(1, 1e6))
  local lib = {
    init = INIT:format(impl == "ours" and "ngx.ipc.events" or "resty.events", sock),
    -- the library's broker socket (never connected to with ngx.ipc.events)
    http = ([[
      server {
        listen unix:%s;
        location / { content_by_lua_block { _G.ev:run() } }
      }
    ]]):format(sock),
    cleanup = function() os.remove(sock) end,
  }
  if impl == "real" then
    -- the library and no ngx.ipc: its own Lua path, the C module it needs
    lib.lua_path = ctx.real_lib .. "/?.lua;" .. ctx.real_lib .. "/?/init.lua;;"
    lib.main = ctx.opts.events_module and ("load_module " .. ctx.opts.events_module .. ";") or nil
  end
  return lib
end

-- one nginx of `workers` workers with `lib` (init: its INIT-style code; http,
-- main: configuration; lua_path: the library alone, without ngx.ipc; stall:
-- seconds without a new event handled after which a run counts the missing
-- ones as lost instead of waiting on); its figures
local function measure(ctx, lib, workers, size)
  local opts, median = ctx.opts, ctx.median
  local start = { workers = workers, init = lib.init, init_worker = WORKER, http = lib.http, main = lib.main }
  if lib.lua_path then
    start.lua_path, start.lua_cpath = lib.lua_path, ";;"
  end
  local inst = nginx.start(start)
  local out = { errors = {}, runs = {} }
  local ok, err = pcall(function()
    local by_id = inst:by_id()
    inst:wait_for(function()
      for _, ready in pairs(inst:run_all("return BENCH_READY()")) do
        if not ready then return false end
      end
      return true
    end, 20, "every worker's events to be ready")
    -- the publisher: the last worker, not worker 0, where lua-resty-events runs its
    -- broker (broker_id 0): of N workers, N - 1 publish through the broker's
    -- socket, and only the one that is the broker saves that hop
    local pub = by_id[workers - 1]

    -- every worker handled n events of run `run`, in order; the last one's time
    local function wait_all(run, n, timeout)
      local states
      local stalled = staller(lib.stall)
      local okw = pcall(function()
        states = inst:wait_for(function()
          local s = inst:run_all(("local st = T.state.e return { n = st.count[%q] or 0, done = st.done[%q], bad = st.bad }")
            :format(run, run))
          local total, short = 0, nil
          for _, v in pairs(s) do
            total = total + v.n
            if v.n < n then short = v.n .. " of " .. n end
          end
          if not short or stalled(total) then return s end
          return false, short
        end, timeout, "run " .. run)
      end)
      if not okw then
        states = inst:run_all(("local st = T.state.e return { n = st.count[%q] or 0, done = st.done[%q], bad = st.bad }")
          :format(run, run))
      end
      local last, handled = 0, 0
      for pid, v in pairs(states) do
        handled = handled + v.n
        if v.n ~= n or v.bad ~= 0 then
          out.errors[#out.errors + 1] = ("%s: worker %d handled %d of %d, %d out of turn"):format(run, pid, v.n, n, v.bad)
        end
        last = math.max(last, v.done or 0)
      end
      return last, handled
    end

    local lat50, lat99, rates, lost, refused, o50, o99 = {}, {}, {}, 0, 0, {}, {}
    for r = 0, opts.runs do
      local warm = r == 0
      local lrun = "l" .. r
      local n = warm and 50 or LATENCY_EVENTS
      local res = { inst:run(pub, PUBLISH:format(size, n, lrun, size, "ngx.sleep(0.002)"), 120) }
      local _, lhandled = wait_all(lrun, n - res[2], 30)
      if not warm then
        refused, lost = refused + res[2], lost + (n - res[2]) * workers - lhandled
      end
      -- every worker's samples, and those of the other workers alone (where a
      -- library handles the publisher's own event before publish returns)
      local samples, others = {}, {}
      for pid, l in pairs(inst:run_all(("return T.state.e.lat[%q] or {}"):format(lrun))) do
        for _, v in ipairs(l) do
          samples[#samples + 1] = v
          if pid ~= pub then others[#others + 1] = v end
        end
      end
      table.sort(samples)
      table.sort(others)
      local trun = "t" .. r
      local burst = warm and 200 or BURST
      res = { inst:run(pub, PUBLISH:format(size, burst, trun, size,
        ("if i %% %d == 0 then ngx.sleep(0.001) end"):format(YIELD_EVERY)), 120) }
      local first, nref, why = res[1], res[2], res[3]
      local last, handled = wait_all(trun, burst - nref, 60)
      if not warm then
        refused = refused + nref
        lost = lost + (burst - nref) * workers - handled
        if nref > 0 then out.refused_error = why end
        lat50[#lat50 + 1], lat99[#lat99 + 1] = percentile(samples, 0.5), percentile(samples, 0.99)
        o50[#o50 + 1], o99[#o99 + 1] = percentile(others, 0.5), percentile(others, 0.99)
        -- events handled per worker per second (with no loss: published per second)
        rates[#rates + 1] = handled > 0 and last > first and handled / workers / ((last - first) / 1e6) or 0
        out.runs[#out.runs + 1] = { p50_us = lat50[#lat50], p99_us = lat99[#lat99], events_per_s = rates[#rates],
          refused = nref }
      end
    end
    out.p50_us, out.p99_us, out.events_per_s = median(lat50), median(lat99), median(rates)
    out.others_p50_us, out.others_p99_us = median(o50), median(o99)
    out.refused, out.lost = refused, lost
  end)
  pcall(inst.stop, inst)
  if lib.cleanup then lib.cleanup() end
  if not ok then
    out.errors[#out.errors + 1] = tostring(err):match("^[^\n]*")
  end
  out.whole = #out.errors == 0
  return out
end

-- one line of progress for a measure()
local function show(si, w)
  return ("%s events/s, p50 %.0f µs, p99 %.0f µs, %d refused, %d lost%s"):format(si(w.events_per_s or 0),
    w.p50_us or 0, w.p99_us or 0, w.refused or 0, w.lost or 0,
    w.whole and "" or "  FAILED: " .. table.concat(w.errors, "; "))
end

local function run(_, ctx)
  local say, si, opts = ctx.say, ctx.si, ctx.opts
  local t_start = socket.gettime()
  if opts.events then
    ctx.real_lib = opts.events .. "/lualib"
  end
  local out = { name = "E1 events", rows = {} }
  for _, workers in ipairs({ 2, 5 }) do
    for _, size in ipairs({ 10, 10240 }) do
      local row = { workers = workers, size = size }
      row.ours = measure(ctx, events_lib(ctx, "ours"), workers, size)
      if ctx.real_lib then
        row.real = measure(ctx, events_lib(ctx, "real"), workers, size)
      end
      out.rows[#out.rows + 1] = row
      say("  E1 %d workers, %5d B: ngx.ipc.events %s", workers, size, show(si, row.ours))
      if row.real then
        say("  E1 %d workers, %5d B: lua-resty-events %s", workers, size, show(si, row.real))
      end
    end
  end
  return finish(out, say, "E1", t_start)
end

-- dofile(...)(ctx) runs E1; the rest serves the other drop-in rows
return setmetatable({ measure = measure, show = show, CLOCK = CLOCK, staller = staller, finish = finish,
  percentile = percentile }, { __call = run })
