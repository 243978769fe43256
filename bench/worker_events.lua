-- bench/worker_events.lua: ngx.ipc.worker_events next to lua-resty-worker-events
-- (the real library) in the same run: an event posted in one worker and handled
-- in every other worker.
--
--   luajit bench/worker_events.lua --real=DIR [--workers=2,5] [--sizes=10,10240]
--                                  [--interval=1] [--quick]
--
-- DIR is a checkout of Kong/lua-resty-worker-events (release 1.0.0, the one the
-- drop-in stands in for; its lib/ is put on the workers' package.path). Without
-- --real only ngx.ipc.worker_events is measured.
--
-- Rows, per number of workers and data size, for each implementation:
--   events/s   a burst of events posted by one worker (a timer yielding with
--              ngx.sleep(0.001) every 100 posts): events divided by the time from
--              the first post to the last worker's handling of the last event
--   p50/p99    post-to-handled latency in the other workers, events paced 5 ms
--              apart (CLOCK_MONOTONIC, the same clock in every worker); the real
--              library's is its poll interval (--interval, its default 1 s)
-- and a burst row: 2000 events of 10 KiB posted at once, the real library on a
-- 1 MiB shared dict (the size its README shows): how many each worker handled,
-- how many posts returned nil, err, how many were lost silently.
-- run from the repository's root (as make does), or from anywhere with its path
local ROOT = (arg[0]:match("^(.*)/bench/[^/]+$")) or "."
package.path = ROOT .. "/t/lib/?.lua;" .. package.path

local nginx = require "nginx"

local opts = { workers = "2,5", sizes = "10,10240", interval = "1" }
for _, a in ipairs(arg) do
  local k, v = a:match("^%-%-([%w_]+)=(.*)$")
  if k then
    opts[k] = v
  elseif a == "--quick" then
    opts.quick = true
  else
    io.stderr:write("unknown argument ", a, "\n")
    os.exit(2)
  end
end

local function list(s)
  local out = {}
  for x in s:gmatch("[^,]+") do out[#out + 1] = tonumber(x) end
  return out
end

local BURST = { [10] = opts.quick and 4000 or 20000, [10240] = opts.quick and 1000 or 4000 }
local PACED = opts.quick and 50 or 200
local LOSS_EVENTS = 2000

-- every worker: the module, a clock, and a handler that counts what other
-- workers posted (the poster runs its own handlers inside post: not counted)
local INIT = [==[
  %s
  local we = require %q
  local ffi = require "ffi"
  ffi.cdef [[
    typedef struct { long s; long ns; } web_ts;
    int web_clock_gettime(int, web_ts *) __asm__("clock_gettime");
  ]]
  local ts = ffi.new("web_ts")
  local C = ffi.C
  local function mono()
    C.web_clock_gettime(1, ts)
    return tonumber(ts.s) + tonumber(ts.ns) * 1e-9
  end
  local me = ngx.worker.pid()
  local S = { n = 0, last = 0, lat = {}, record = false }
  T.state.web, T.state.mono, T.state.we = S, mono, we
  we.register(function(data, event, source, pid)
    if pid == me then return end
    local t = mono()
    S.n = S.n + 1
    S.last = t
    if S.record then S.lat[#S.lat + 1] = t - data.t end
  end, "bench")
  assert(we.configure { shm = "web_shm", interval = %s, timeout = 2 })
]==]

local POST = [[
  local we, mono = T.state.we, T.state.mono
  local payload = string.rep("x", %d)
  local n, pace = %d, %s
  local errs, err = 0
  local t0 = mono()
  for i = 1, n do
    local ok, e = we.post("bench", "e", { t = mono(), p = payload })
    if not ok then errs = errs + 1; err = e end
    if pace then ngx.sleep(pace) elseif i %% 100 == 0 then ngx.sleep(0.001) end
  end
  return t0, errs, err
]]

local function start(real, workers, shm)
  local pre = real and ("package.path = %q .. package.path"):format(real .. "/lib/?.lua;") or ""
  local module = real and "resty.worker.events" or "ngx.ipc.worker_events"
  local inst = nginx.start {
    workers = workers, level = "error", dict_size = "16m",
    http = "lua_shared_dict web_shm " .. shm .. ";",
    init_worker = INIT:format(pre, module, opts.interval),
  }
  local pids = inst:workers()
  local v = inst:run(pids[1], "return T.state.we._VERSION")
  return inst, pids, v
end

local function reset(inst, record)
  inst:run_all(("local S = T.state.web; S.n = 0; S.last = 0; S.lat = {}; S.record = %s; return true")
    :format(tostring(record)), 120)
end

-- posts from pids[1]; waits until every other worker handled `want` events or
-- nothing changed for `quiet` seconds; returns t0, errs, err, { [pid] = {n, last, lat} }
local function run(inst, pids, size, n, pace, quiet)
  local poster = pids[1]
  local t0, errs, err = inst:run(poster, POST:format(size, n, pace and tostring(pace) or "nil"), 600)
  local want = n - errs
  local got, last_change, last_total = {}, os.time(), -1
  nginx.wait_for(function()
    local total, done = 0, true
    for i = 2, #pids do
      local r = inst:run(pids[i], "local S = T.state.web; return S.n", 120)
      total = total + r
      if r < want then done = false end
    end
    if total ~= last_total then last_total, last_change = total, os.time() end
    return done or os.time() - last_change >= quiet
  end, 600, "the events to be handled", 0.05)
  for i = 2, #pids do
    got[pids[i]] = inst:run(pids[i], "local S = T.state.web; return { S.n, S.last, S.lat }", 120)
  end
  return t0, errs, err, got
end

local function pct(sorted, p)
  if #sorted == 0 then return 0 / 0 end
  return sorted[math.max(1, math.ceil(#sorted * p))]
end

local function fmt_time(s)
  if s ~= s then return "-" end
  if s >= 0.1 then return ("%.0f ms"):format(s * 1e3) end
  if s >= 1e-3 then return ("%.2f ms"):format(s * 1e3) end
  return ("%.0f us"):format(s * 1e6)
end

local rows, loss = {}, {}
local impls = { { name = "ngx.ipc.worker_events" } }
if opts.real then
  impls[#impls + 1] = { name = "lua-resty-worker-events", real = opts.real }
end

for _, workers in ipairs(list(opts.workers)) do
  for _, size in ipairs(list(opts.sizes)) do
    for _, impl in ipairs(impls) do
      io.stderr:write(("# %s, %d workers, %d B\n"):format(impl.name, workers, size))
      local inst, pids, version = start(impl.real, workers, "256m")
      local ok, e = pcall(function()
        reset(inst, false)
        local n = BURST[size] or 4000
        local t0, errs, _, got = run(inst, pids, size, n, nil, 3)
        local last, min_n = 0, math.huge
        for _, g in pairs(got) do
          last = math.max(last, g[2])
          min_n = math.min(min_n, g[1])
        end
        reset(inst, true)
        local _, _, _, lat_got = run(inst, pids, size, PACED, 0.005, 3)
        local lat = {}
        for _, g in pairs(lat_got) do
          for _, x in ipairs(g[3]) do lat[#lat + 1] = x end
        end
        table.sort(lat)
        rows[#rows + 1] = {
          impl = impl.name .. " (_VERSION " .. version .. ")", workers = workers, size = size, n = n,
          handled = min_n, errs = errs, rate = min_n / (last - t0),
          p50 = pct(lat, 0.5), p99 = pct(lat, 0.99),
        }
      end)
      inst:stop()
      assert(ok, e)
    end
  end
end

-- the burst: 2000 x 10 KiB at once; the real library on a 1 MiB dict
for _, impl in ipairs(impls) do
  local workers = 2
  local inst, pids, version = start(impl.real, workers, "1m")
  local ok, e = pcall(function()
    reset(inst, false)
    local _, errs, err, got = run(inst, pids, 10240, LOSS_EVENTS, nil, 4)
    local handled = got[pids[2]][1]
    loss[#loss + 1] = { impl = impl.name .. " (_VERSION " .. version .. ")", posted = LOSS_EVENTS, errs = errs, err = err,
      handled = handled, lost = LOSS_EVENTS - errs - handled }
  end)
  inst:stop()
  assert(ok, e)
end

print(("%-44s %7s %7s %9s %12s %10s %10s"):format("implementation", "workers", "data", "handled",
  "events/s", "p50", "p99"))
for _, r in ipairs(rows) do
  print(("%-44s %7d %7s %9s %12.0f %10s %10s"):format(r.impl, r.workers, r.size == 10 and "10 B" or
    math.floor(r.size / 1024) .. " KiB", r.handled .. "/" .. r.n, r.rate, fmt_time(r.p50), fmt_time(r.p99)))
end
print()
print("burst of 2000 x 10 KiB events, 2 workers (real library: 1 MiB shared dict):")
for _, l in ipairs(loss) do
  print(("%-44s handled by the other worker %d, nil+err to the poster %d, lost without telling the poster %d%s"):format(
    l.impl, l.handled, l.errs, l.lost, l.err and (" (" .. tostring(l.err):sub(1, 80) .. ")") or ""))
end
