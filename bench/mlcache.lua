-- bench/mlcache.lua: how long after cache:set() in one worker the key leaves every
-- other worker's L1, with ngx.ipc.mlcache (opts.ipc) and with lua-resty-mlcache's
-- own IPC (opts.ipc_shm) polled by cache:update() from a timer every --interval
-- seconds in each worker (mlcache's README: update() before get(), or often).
-- Not part of make bench: it needs the real lua-resty-mlcache and lua-resty-lock,
-- which nothing in this repository fetches.
--
--   luajit bench/mlcache.lua --mlcache=/path/lua-resty-mlcache --lock=/path/lua-resty-lock
--       [--workers=2,5] [--interval=1,0.1] [--events=200] [--gap=0.02]
--
-- One worker sets keys k1..kN, one every --gap seconds; every worker's L1 delete
-- (the instance's lrucache:delete, wrapped) records CLOCK_MONOTONIC, and the
-- latency of one (event, other worker) is that time minus the time just before
-- set(). Rows: p50/p99 over every (event, other worker), and p50/p99 of the time
-- until the last other worker evicted, per event. Each run checks that every
-- other worker evicted every key.
package.path = "t/lib/?.lua;" .. package.path
local nginx = require "nginx"

local function arg_value(name, default)
  for _, a in ipairs(arg) do
    local v = a:match("^%-%-" .. name .. "=(.*)$")
    if v then
      return v
    end
  end
  return default
end

local function list_of(s)
  local out = {}
  for x in s:gmatch("[^,]+") do
    out[#out + 1] = tonumber(x)
  end
  return out
end

local MLCACHE = arg_value("mlcache")
local LOCK = arg_value("lock")
if not MLCACHE or not LOCK then
  io.stderr:write("usage: luajit bench/mlcache.lua --mlcache=<lua-resty-mlcache checkout> "
    .. "--lock=<lua-resty-lock checkout> [--workers=2,5] [--interval=1,0.1] [--events=200] [--gap=0.02]\n")
  os.exit(2)
end
local WORKERS = list_of(arg_value("workers", "2,5"))
local INTERVALS = list_of(arg_value("interval", "1,0.1"))
local EVENTS = tonumber(arg_value("events", "200"))
local GAP = tonumber(arg_value("gap", "0.02"))

-- %s: the mlcache.new options; %s: code run after it (the update() timer)
local WORKER = [[
package.path = %q .. package.path
local ffi = require "ffi"
pcall(ffi.cdef, [=[
typedef struct { long sec; long nsec; } ngx_ipc_mbench_ts;
int ngx_ipc_mbench_clock(int clk, ngx_ipc_mbench_ts *ts) __asm__("clock_gettime");
]=])
local ts = ffi.new("ngx_ipc_mbench_ts")
local C = ffi.C
function US()
  C.ngx_ipc_mbench_clock(1, ts)  -- CLOCK_MONOTONIC: one host
  return tonumber(ts.sec) * 1e6 + tonumber(ts.nsec) / 1e3
end
local mlcache = require "resty.mlcache"
CACHE = assert(mlcache.new("bench", "cache_shm", %s))
local lru = CACHE.lru
local delete = lru.delete
local me = ngx.worker.pid()
lru.delete = function(self, key)
  T.dict:set("ev:" .. me .. ":" .. key, US())
  return delete(self, key)
end
%s
]]

local SENDER = [[
for i = 1, %d do
  local key = "k" .. i
  T.dict:set("t0:" .. key, US())
  assert(CACHE:set(key, nil, i))
  ngx.sleep(%f)
end
return true
]]

local function percentile(sorted, p)
  if #sorted == 0 then
    return 0 / 0
  end
  return sorted[math.max(1, math.ceil(#sorted * p))]
end

local function run(mode, workers, interval)
  local opts, after
  if mode == "ours" then
    opts, after = [[{ ipc = require "ngx.ipc.mlcache" }]], ""
  else
    opts = [[{ ipc_shm = "ipc_shm" }]]
    after = ("assert(ngx.timer.every(%f, function() CACHE:update() end))"):format(interval)
  end
  local inst = nginx.start {
    workers = workers,
    http = "lua_shared_dict cache_shm 32m; lua_shared_dict ipc_shm 32m;",
    init_worker = WORKER:format(MLCACHE .. "/lib/?.lua;" .. LOCK .. "/lib/?.lua;", opts, after),
  }
  local ok, res = pcall(function()
    local pids = inst:workers()
    local from = pids[1]
    inst:run(from, SENDER:format(EVENTS, GAP), 60 + EVENTS * GAP * 2)
    local others = {}
    for i = 2, #pids do
      others[#others + 1] = pids[i]
    end
    -- every other worker evicted every key (the polling one within an interval)
    local code = ([[
      local got = {}
      local n = 0
      for i = 1, %d do
        for _, p in ipairs(%s) do
          local t0 = T.dict:get("t0:k" .. i)
          local t = T.dict:get("ev:" .. p .. ":k" .. i)
          if t then n = n + 1; got[#got + 1] = { i, p, t - t0 } end
        end
      end
      return n == %d and got or false
    ]]):format(EVENTS, nginx.lua_list(others), EVENTS * #others)
    local got = inst:wait_for(function()
      return inst:run(from, code)
    end, 10 + 2 * interval, "every other worker to evict all " .. EVENTS .. " keys")
    local all, last = {}, {}
    for _, g in ipairs(got) do
      local i, lat = g[1], g[3]
      all[#all + 1] = lat
      last[i] = math.max(last[i] or -math.huge, lat)
    end
    local lasts = {}
    for _, v in pairs(last) do
      lasts[#lasts + 1] = v
    end
    table.sort(all)
    table.sort(lasts)
    return {
      p50 = percentile(all, 0.5), p99 = percentile(all, 0.99),
      last50 = percentile(lasts, 0.5), last99 = percentile(lasts, 0.99),
      errors = #inst:error_lines(),
    }
  end)
  inst:stop()
  if not ok then
    error(res, 0)
  end
  return res
end

local function fmt_us(us)
  if us >= 1e6 then
    return ("%.2f s"):format(us / 1e6)
  elseif us >= 1e3 then
    return ("%.1f ms"):format(us / 1e3)
  end
  return ("%.0f µs"):format(us)
end

print(("mlcache invalidation latency: set() in one worker -> key out of every other worker's L1 (%d events, one every %g s)")
  :format(EVENTS, GAP))
print("| workers | IPC | p50 | p99 | all evicted p50 | all evicted p99 | [error] lines |")
print("|---|---|---|---|---|---|---|")
for _, w in ipairs(WORKERS) do
  local rows = { { "ours", "ngx.ipc.mlcache (no update())", 0 } }
  for _, iv in ipairs(INTERVALS) do
    rows[#rows + 1] = { "real", ("ipc_shm, update() every %g s"):format(iv), iv }
  end
  for _, r in ipairs(rows) do
    local res = run(r[1], w, r[3])
    print(("| %d | %s | %s | %s | %s | %s | %d |"):format(w, r[2], fmt_us(res.p50), fmt_us(res.p99),
      fmt_us(res.last50), fmt_us(res.last99), res.errors))
    io.stdout:flush()
  end
end
