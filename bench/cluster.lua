-- bench/cluster.lua: K1 of `make bench` (bench/run.lua --only=K1): ipc.cluster
-- across 3 nginx instances of 2 workers on one private redis-server.
--
--   latency: one publisher (instance 1, worker 0) sends an alert every 2 ms;
--            each worker of instances 2 and 3 takes, per alert, the time from
--            just before cluster.broadcast to its handler (CLOCK_MONOTONIC:
--            one host), p50/p99 over all of them
--   throughput: all 6 workers publish 2,000 alerts each, one broadcast at a
--            time (what a request does); then the same from 8 light threads
--            per worker (requests served at once: the worker's publisher sends
--            what they broadcast in one loop turn together, still over one
--            connection per worker); alerts/s from the first publish to the
--            last alert handled by the last of the 6 workers
--   limit:   redis-benchmark's XADD (same size, 6 clients: as many as the
--            workers' connections) against the same redis-server, just before
--            and just after each throughput run (their mean is its limit): the
--            machine is shared, so only figures of one run compare
--
-- Every run checks that each worker handled every alert once, in order per
-- publisher. Returns the workload table run.lua puts into its report.

local socket = require "socket"
local nginx = require "nginx"
local redis = require "redis"

local LATENCY_ALERTS = 1000
local PUBLISH_EACH = 2000
local INSTANCES, WORKERS = 3, 2
local CLIENTS = INSTANCES * WORKERS
-- publishers at once per worker in the second throughput figure (still one
-- connection to Redis per worker: CLIENTS connections, as redis-benchmark's)
local CONCURRENT = 8

local WORKER = [[
local ffi = require "ffi"
-- clock_gettime under a private name: nothing else can have declared it so
pcall(ffi.cdef, [=[
typedef struct { long sec; long nsec; } ngx_ipc_kbench_ts;
int ngx_ipc_kbench_clock(int clk, ngx_ipc_kbench_ts *ts) __asm__("clock_gettime");
]=])
local ts = ffi.new("ngx_ipc_kbench_ts")
local C = ffi.C
local function us()
  C.ngx_ipc_kbench_clock(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.sec) * 1e6 + tonumber(ts.nsec) / 1e3
end
local ipc = require "ngx.ipc"
ipc.cluster.configure{ redis = %q, stream = "bench" }
local st = { count = {}, last = {}, bad = 0, lat = {}, done = {}, us = us }
T.state.k = st
ipc.receive("k", function(d)
  local run, from, i, t0 = d:match("^(%%d+) (%%d+) (%%d+) (%%d+)")
  local now = us()
  local key = run .. ":" .. from
  i = tonumber(i)
  if i ~= (st.last[key] or 0) + 1 then st.bad = st.bad + 1 end
  st.last[key] = i
  st.count[run] = (st.count[run] or 0) + 1
  st.done[run] = now
  if st.measure and tonumber(from) ~= ngx.worker.pid() then
    local l = st.lat[run]
    if not l then l = {}; st.lat[run] = l end
    l[#l + 1] = now - tonumber(t0)
  end
end)
]]

local PUBLISH = [[
local st = T.state.k
local me = ngx.worker.pid()
local t_first = st.us()
for i = 1, %d do
  local ok, err = ipc.cluster.broadcast("k", ("%d %%d %%d %%d"):format(me, i, math.floor(st.us())))
  if not ok then return nil, "publish " .. i .. ": " .. tostring(err) end
  %s
end
return t_first
]]

-- the same from CONCURRENT light threads per worker, as requests served at once
-- would: each numbers its own alerts (publisher id pid * 100 + thread)
local PUBLISH_CONC = [[
local st = T.state.k
local me = ngx.worker.pid()
local t_first = st.us()
local function one(k, n)
  local from = me * 100 + k
  for i = 1, n do
    local ok, err = ipc.cluster.broadcast("k", ("%d %%d %%d %%d"):format(from, i, math.floor(st.us())))
    if not ok then return nil, "publish " .. i .. ": " .. tostring(err) end
  end
  return true
end
local threads = {}
for k = 1, %d do threads[k] = ngx.thread.spawn(one, k, %d) end
for k = 1, #threads do
  local _, ok, err = ngx.thread.wait(threads[k])
  if not ok then return nil, err end
end
return t_first
]]

local function percentile(sorted, p)
  if #sorted == 0 then return nil end
  return sorted[math.max(1, math.ceil(#sorted * p))]
end

local function xadd_limit(r, say)
  local cmd = ("redis-benchmark -h 127.0.0.1 -p %d -n 60000 -c %d -q XADD benchlimit MAXLEN '~' 100000 '*' d %s")
    :format(r.port, CLIENTS, ("x"):rep(24))
  local ok, out = nginx.sh(cmd)
  local rate = ok and tonumber(out:match("([%d%.]+) requests per second"))
  if not rate then
    say("  K1: redis-benchmark failed: %s", out)
  end
  r:cli("DEL", "benchlimit")
  return rate
end

return function(ctx)
  local say, median, si, opts = ctx.say, ctx.median, ctx.si, ctx.opts
  local t_start = socket.gettime()
  local r = redis.start {}
  local insts = {}
  local out = { name = "K1 cluster", instances = INSTANCES, workers = WORKERS, errors = {}, runs = {},
    module = "ngx.ipc" }
  local ok, err = pcall(function()
    for k = 1, INSTANCES do
      insts[k] = nginx.start { workers = WORKERS, init_worker = WORKER:format(r.addr) }
    end
    local by_id = {}
    for k, inst in ipairs(insts) do
      by_id[k] = {}
      for pid, id in pairs(inst:run_all("return ngx.worker.id()")) do by_id[k][id] = pid end
      inst:wait_for(function()
        return inst:run(by_id[k][0], "return ipc.stats().cluster.reader")
      end, 20, "the reader of instance " .. k)
      if k > 1 then inst:install("T.state.k.measure = true") end
    end

    -- every worker handled `n` alerts of run `run`, in order; the last one's time
    local function wait_all(run, n, timeout)
      local last = 0
      for k, inst in ipairs(insts) do
        local states = inst:wait_for(function()
          local s = inst:run_all(("local st = T.state.k return { n = st.count[%q] or 0, done = st.done[%q], bad = st.bad }")
            :format(tostring(run), tostring(run)))
          for _, v in pairs(s) do
            if v.n < n then return false, v.n .. " of " .. n end
          end
          return s
        end, timeout, ("run %d at instance %d"):format(run, k))
        for pid, v in pairs(states) do
          if v.n ~= n or v.bad ~= 0 then
            out.errors[#out.errors + 1] = ("run %d: worker %d handled %d of %d, %d out of turn"):format(run, pid, v.n, n, v.bad)
          end
          last = math.max(last, v.done or 0)
        end
      end
      return last
    end

    local lat50, lat99, rates, limits, ratios = {}, {}, {}, {}, {}
    local crates, climits, cratios = {}, {}, {}
    for run = 0, opts.runs do
      local warm = run == 0
      -- latency: paced, one publisher
      local lrun = 100 + run
      local n = warm and 200 or LATENCY_ALERTS
      local a = by_id[1][0]
      local res = { insts[1]:run(a, PUBLISH:format(n, lrun, "ngx.sleep(0.002)"), 120) }
      if not res[1] then error(res[2]) end
      wait_all(lrun, n, 60)
      local samples = {}
      for k = 2, INSTANCES do
        for _, l in pairs(insts[k]:run_all(("return T.state.k.lat[%q]"):format(tostring(lrun)))) do
          for _, v in ipairs(l) do samples[#samples + 1] = v end
        end
      end
      table.sort(samples)
      -- throughput: all workers at once, `code` publishing n alerts in each;
      -- alerts/s from the first publish to the last alert handled everywhere
      local function throughput(trun, code, n)
        local handles = {}
        for k, inst in ipairs(insts) do
          handles[k] = inst:spawn(inst:workers(), code)
        end
        local first = math.huge
        for k, inst in ipairs(insts) do
          for pid, v in pairs(inst:collect(handles[k], 120)) do
            if not v.ok or not v.v[1] then
              error(("publisher %d: %s"):format(pid, tostring(v.err or v.v[2])))
            end
            first = math.min(first, v.v[1])
          end
        end
        local last = wait_all(trun, n * CLIENTS, 120)
        return n * CLIENTS / ((last - first) / 1e6)
      end
      local each = warm and 200 or PUBLISH_EACH
      -- the limit just before each of ours, the mean of the two beside a run of ours
      local limit1 = not warm and xadd_limit(r, say) or nil
      local rate = throughput(200 + run, PUBLISH:format(each, 200 + run, ""), each)
      local limit2 = not warm and xadd_limit(r, say) or nil
      local crate = throughput(300 + run, PUBLISH_CONC:format(300 + run, CONCURRENT, math.floor(each / CONCURRENT)),
        math.floor(each / CONCURRENT) * CONCURRENT)
      local limit3 = not warm and xadd_limit(r, say) or nil
      if not warm then
        local limit = limit1 and limit2 and (limit1 + limit2) / 2
        local climit = limit2 and limit3 and (limit2 + limit3) / 2
        lat50[#lat50 + 1], lat99[#lat99 + 1] = percentile(samples, 0.5), percentile(samples, 0.99)
        rates[#rates + 1], crates[#crates + 1] = rate, crate
        if limit then limits[#limits + 1], ratios[#ratios + 1] = limit, rate / limit end
        if climit then climits[#climits + 1], cratios[#cratios + 1] = climit, crate / climit end
        out.runs[#out.runs + 1] = { p50_us = lat50[#lat50], p99_us = lat99[#lat99], samples = #samples,
          alerts_per_s = rate, xadd_per_s = limit, concurrent_alerts_per_s = crate, concurrent_xadd_per_s = climit }
        say("  K1 run %d: p50 %.0f µs; one at a time %s/s (XADD %s/s, %.2fx); %d at a time %s/s (XADD %s/s, %.2fx)",
          run, lat50[#lat50] or 0, si(rate), si(limit or 0), limit and rate / limit or 0,
          CONCURRENT, si(crate), si(climit or 0), climit and crate / climit or 0)
      end
    end
    out.p50_us, out.p99_us = median(lat50), median(lat99)
    out.alerts_per_s = median(rates)
    out.deliveries_per_s = out.alerts_per_s * INSTANCES * WORKERS
    out.xadd_per_s = #limits > 0 and median(limits) or nil
    out.ratio = #ratios > 0 and median(ratios) or nil
    out.concurrent = CONCURRENT
    out.concurrent_alerts_per_s = median(crates)
    out.concurrent_xadd_per_s = #climits > 0 and median(climits) or nil
    out.concurrent_ratio = #cratios > 0 and median(cratios) or nil
  end)
  for _, inst in ipairs(insts) do pcall(inst.stop, inst) end
  r:stop()
  if not ok then
    out.errors[#out.errors + 1] = tostring(err):match("^[^\n]*")
  end
  out.whole = #out.errors == 0
  say("  K1       p50 %.0f µs, p99 %.0f µs; %s alerts/s (redis-benchmark XADD %s/s) (%.1f s)%s",
    out.p50_us or 0, out.p99_us or 0, si(out.alerts_per_s or 0), si(out.xadd_per_s or 0),
    socket.gettime() - t_start, out.whole and "" or "  FAILED: " .. table.concat(out.errors, "; "))
  return out
end
