-- bench/run.lua: `make bench` — ngx.ipc against what a bare pipe can do.
--
--   luajit bench/run.lua [--json=FILE] [--runs=3] [--seconds=0.8]
--                        [--only=W1,W2,W3,W4,W5,C1,R1,K1,E1,WE1,M1] [--every=256]
--                        [--yield=sleep0,sleep1ms,timer] [--extra-runs=3]
--                        [--extra-seconds=0.4] [--wrk-seconds=2]
--                        [--original=PATH] [--window=BYTES] [--quiet=60]
--                        [--strict] [--pin] [--profile=DIR] [--events=PATH]
--                        [--events-module=PATH] [--worker-events=PATH]
--                        [--mlcache=PATH --lock=PATH]
--
-- Starts real nginx masters on 127.0.0.1 (through t/lib/nginx.lua, whose
-- control path is a lua_shared_dict, never ngx.ipc), runs each workload as
-- the median of --runs runs after a warm-up, measures the limits with
-- bench/probe.c, prints one table and, with --json, writes every figure.
-- Exits 1 when an alert was lost, duplicated or damaged (or, with --strict,
-- when a target is not met), 2 when the bench itself failed.
--
-- The bulk workloads (W2: 10 KiB and 64 KiB to the other worker; W4: the
-- same broadcast to 2 and to 5 workers) get one row per sender pattern of
-- --yield, in that order: the sender yields every --every sends with
-- ngx.sleep(0) (sleep0), ngx.sleep(0.001) (sleep1ms) or the bench's own
-- zero-delay timer (timer).  The 10 KiB timer rows are the ones the targets
-- were set on (--runs of --seconds); the other bulk rows run --extra-runs
-- runs of --extra-seconds.  W1, W3, W5 and the info rows use the timer (or
-- the one pattern --yield names).
--
-- R1 (when `wrk` is installed): wrk with 32 connections to a location whose
-- content handler sends one 10 KiB alert to the other worker; the figure is
-- the alerts counted at the receivers per second; refused sends apart.
--
-- K1: ipc.cluster over a private redis-server (t/lib/redis.lua), 3 nginx
-- instances of 2 workers: latency publish -> handled on another instance
-- (p50/p99), throughput with all 6 workers publishing (one broadcast at a
-- time each, then 8 light threads each), and as its limit redis-benchmark's
-- XADD rate in the same run, measured beside each (bench/cluster.lua).
--
-- E1: ngx.ipc.events, and with --events=PATH (a lua-resty-events checkout;
-- --events-module=PATH: its C module built for this nginx) the library side by
-- side: events/s and p50/p99 publish -> handled in every worker (bench/events.lua).
--
-- WE1: the same for ngx.ipc.worker_events, and with --worker-events=PATH (a
-- lua-resty-worker-events checkout) that library polling every 1 s and every
-- 0.01 s (bench/worker_events.lua).
--
-- M1: ngx.ipc.mlcache as lua-resty-mlcache's opts.ipc: set/delete in one
-- worker -> the key out of every other worker's L1; with --mlcache=PATH
-- (which it needs, with --lock=PATH: lua-resty-lock, unless nginx bundles it)
-- and the library's own ipc_shm next to it, update() every 1 s and 0.01 s
-- (bench/mlcache.lua).
--
-- --original=PATH: the original module (slact/ngx_lua_ipc, a .so built for
-- this nginx; see PEERS.md) on a second nginx, after ours for each group of
-- workloads, with neither our build/ nor our shim on its Lua paths: the same
-- workloads, its figures and the ratio ours/original next to ours.  Its
-- losses are reported but do not change the exit code.
--
-- --pin: every group of workloads the scheduler places (2 and 5 workers)
-- runs a second time with every worker on one CPU (worker_cpu_affinity 01
-- 01 ...), ours and the original, and a second table gives each row
-- unpinned, pinned and their ratio (issue 18: a second CPU must never make
-- a row slower, and pinned stays >= 3 x the original).  The header prints
-- what kind of machine this is: the pipe's bytes/s and the cost of a wake-up
-- on the same CPU and on the other one (the L rows).
--
-- L4 and L5 are information, no target rests on them: L4 moves 10 KiB and
-- 64 KiB messages through a pipe whose reader waits in epoll_wait (W2's
-- transport) and through a ring in memory both processes share, woken by
-- doorbells only when one side sleeps (what a transport without the pipe's
-- copies and its one lock for both ends could move; issue 18), split and on
-- one CPU.  L5 is a broadcast of 26 B to 1 and 4 idle processes waiting in
-- epoll_wait, every 2 ms: E1's floor before any work of the receivers.
--
-- --waits=DIR does no table: per alert of the bulk rows (W2, W4 to 2
-- workers; 10 KiB and 64 KiB; or --only=W2,W2_64k,W4,W4_64k), sender and
-- receiver, with the workers on separate CPUs, on one CPU and where the
-- scheduler puts them: CPU, run-queue and asleep time, sleeps, system calls,
-- pipe-full and pipe-empty events, wake-ups issued, read and write events,
-- semaphore posts (bench/profile.lua, waits()).  Counts, which repeat on a
-- busy machine where times do not.
--
-- --profile=DIR does no table: it profiles W1 and W2 (or --only), with the
-- workers on separate CPUs and on one CPU: /proc counters, system calls
-- (perf stat on syscall tracepoints), C calls (uprobes), perf record,
-- jit.p and jit.v, writing reports into DIR (see bench/profile.lua and
-- docs/performance.md).

local ROOT = (function()
  local src = debug.getinfo(1, "S").source:sub(2)
  local dir = src:match("^(.*)/bench/[^/]+$") or "."
  if dir:sub(1, 1) ~= "/" then
    dir = (os.getenv("PWD") or io.popen("pwd"):read("*l")) .. (dir == "." and "" or "/" .. dir)
  end
  return dir
end)()
package.path = ROOT .. "/t/lib/?.lua;" .. package.path

local nginx = require "nginx"
local socket = require "socket"

local PROBE = ROOT .. "/lib/bench-probe"
local WORKER_MODULE = ROOT .. "/bench/worker.lua"

---------------------------------------------------------------------------
-- options
---------------------------------------------------------------------------

local opts = { runs = 3, seconds = 0.8, every = 256, yield = "sleep0,sleep1ms,timer", window = 16 * 1024 * 1024,
  quiet = 60, extra_seconds = 0.4, wrk_seconds = 2 }
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    local k, v = a:match("^%-%-([%w_-]+)=(.*)$")
    if not k then
      k = a:match("^%-%-([%w_-]+)$")
      if k == "json" or k == "only" or k == "profile" or k == "original" or k == "events"
        or k == "events-module" or k == "worker-events" or k == "mlcache" or k == "lock" then
        i = i + 1
        v = arg[i]
      end
    end
    k = k and k:gsub("-", "_")
    if k == "json" or k == "only" or k == "yield" or k == "profile" or k == "original"
      or k == "events" or k == "events_module" or k == "worker_events" or k == "mlcache" or k == "lock" then
      opts[k] = assert(v, "--" .. k .. " needs a value")
    elseif k == "runs" or k == "seconds" or k == "every" or k == "window" or k == "quiet"
      or k == "extra_runs" or k == "extra_seconds" or k == "wrk_seconds" then
      opts[k] = assert(tonumber(v), "--" .. k .. " needs a number")
    elseif k == "strict" then
      opts.strict = true
    elseif k == "pin" then
      opts.pin = true
    elseif k == "waits" then
      opts.profile, opts.waits = assert(v, "--waits needs a directory"), true
    elseif k == "help" or k == "h" then
      local head = io.open(ROOT .. "/bench/run.lua"):read("*a"):match("^(.-)\n\n")
      print((("\n" .. head):gsub("\n%-%- ?", "\n"):sub(2)))
      os.exit(0)
    else
      io.stderr:write("bench: unknown argument " .. a .. " (see --help)\n")
      os.exit(2)
    end
    i = i + 1
  end
end
local only = {}
if opts.only then
  for w in opts.only:gmatch("[^,%s]+") do only[w:upper()] = true end
end
local function wanted(w) return not opts.only or only[w] end

opts.extra_runs = opts.extra_runs or opts.runs
if opts.original == "" then opts.original = nil end

-- sender patterns: how a sender loop gives the event loop a turn every
-- --every sends (bench/worker.lua, `yielders`)
local PATTERN_LABEL = {
  sleep0 = "ngx.sleep(0)",
  sleep1ms = "ngx.sleep(0.001)",
  timer = "bench timer",
  none = "no yield",
}
local patterns = {}
for p in opts.yield:gmatch("[^,%s]+") do
  if not PATTERN_LABEL[p] then
    io.stderr:write("bench: unknown --yield pattern " .. p .. " (sleep0, sleep1ms, timer, none)\n")
    os.exit(2)
  end
  patterns[#patterns + 1] = p
end
if #patterns == 0 then
  io.stderr:write("bench: --yield names no pattern\n")
  os.exit(2)
end
-- the pattern of W1, W3, W5, the info rows, the targets and --profile: the
-- bench timer, or the one pattern --yield names
local base_yield = #patterns == 1 and patterns[1] or "timer"

-- the bulk rows' alert sizes, and their keys in the table of workloads (and
-- the JSON): "W2", "W4_2", "W4_5" for 10 KiB with the base pattern (the rows
-- of the targets, as before), else with "_64k" and/or "_<pattern>" appended
local SIZES = { 10240, 65536 }
local function bulk_key(base, size, pattern)
  return base .. (size == 65536 and "_64k" or "") .. (pattern == base_yield and "" or "_" .. pattern)
end

---------------------------------------------------------------------------
-- small utilities
---------------------------------------------------------------------------

-- ok, output (stdout and stderr), exit code
local sh = nginx.sh

local function median(list)
  local t = {}
  for i, v in ipairs(list) do t[i] = v end
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end

-- a flat JSON object from the probe
local function parse_flat(s)
  local o = {}
  for k, v in s:gmatch('"([%w_]+)":([^,}]+)') do
    if v == "true" then o[k] = true
    elseif v == "false" then o[k] = false
    else o[k] = tonumber(v) or v:gsub('^"', ""):gsub('"$', "") end
  end
  return o
end

local function json(v, indent)
  indent = indent or ""
  local t = type(v)
  if t == "table" then
    local n = #v
    local is_list = n > 0 or next(v) == nil
    if is_list then
      for k in pairs(v) do
        if type(k) ~= "number" then is_list = false break end
      end
    end
    local inner = indent .. "  "
    local parts = {}
    if is_list then
      for i = 1, n do parts[i] = inner .. json(v[i], inner) end
      return #parts == 0 and "[]" or "[\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local x = v[k]
      if x == nil then x = v[tonumber(k)] end
      parts[#parts + 1] = inner .. json(k) .. ": " .. json(x, inner)
    end
    return "{\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "}"
  elseif t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      local map = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\t"] = "\\t" }
      return map[c] or ("\\u%04x"):format(c:byte())
    end) .. '"'
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    if v == math.floor(v) and math.abs(v) < 2^53 then return ("%d"):format(v) end
    return ("%.6g"):format(v)
  elseif t == "boolean" then
    return tostring(v)
  end
  return "null"
end

-- 1234567 -> "1.23 M"
local function si(x)
  local a = math.abs(x)
  if a >= 1e9 then return ("%.2f G"):format(x / 1e9) end
  if a >= 1e6 then return ("%.2f M"):format(x / 1e6) end
  if a >= 1e4 then return ("%.0f K"):format(x / 1e3) end
  if a >= 1e3 then return ("%.1f K"):format(x / 1e3) end
  return ("%.0f"):format(x)
end

local function say(fmt, ...)
  io.stderr:write((select("#", ...) > 0 and fmt:format(...) or fmt) .. "\n")
  io.stderr:flush()
end

local read_file = nginx.read_file

---------------------------------------------------------------------------
-- the machine
---------------------------------------------------------------------------

local function machine()
  local cpuinfo = read_file("/proc/cpuinfo") or ""
  local model = cpuinfo:match("model name%s*:%s*([^\n]+)") or "?"
  local _, ncpu = sh("nproc")
  local _, kernel = sh("uname -sr")
  -- the nginx under test (t/lib/nginx.lua's NGX_IPC_T_NGINX: an OpenResty build, say)
  local _, ngx_v = sh(nginx.shq(os.getenv("NGX_IPC_T_NGINX") or "/usr/sbin/nginx") .. " -v")
  local _, lj = sh("luajit -v")
  -- the module under test: this tree, or NGX_IPC_ROOT (t/lib/nginx.lua)
  local _, commit = sh("cd " .. nginx.shq(nginx.root) .. " && git rev-parse --short HEAD")
  local _, dirty = sh("cd " .. nginx.shq(nginx.root) .. " && git status --porcelain -- c src build | wc -l")
  local mem = (read_file("/proc/meminfo") or ""):match("MemTotal:%s*(%d+)")
  return {
    cpu = model, cpus = tonumber(ncpu), kernel = kernel:gsub("%s+$", ""),
    memory_gib = mem and math.floor(tonumber(mem) / 1048576 + 0.5),
    nginx = ngx_v:match("version: (%S+)") or "?",
    luajit = lj:match("LuaJIT ([%w.-]+)") or "?",
    commit = commit:match("^(%x+)%s*$") or os.getenv("NGX_IPC_BENCH_COMMIT") or "?",
    module_root = nginx.root,
    uncommitted_changes = (tonumber(dirty:match("%d+")) or 0) > 0,
    date = os.date("!%Y-%m-%dT%H:%M:%SZ"),
  }
end

---------------------------------------------------------------------------
-- background load: other processes on this machine disturb every figure
---------------------------------------------------------------------------

local function proc_ticks()
  local t = {}
  for _, name in ipairs(nginx.listdir("/proc")) do
    if name:match("^%d+$") then
      local st = read_file("/proc/" .. name .. "/stat")
      if st then
        local comm, rest = st:match("%((.*)%) (.*)$")
        local f = {}
        for x in (rest or ""):gmatch("%S+") do f[#f + 1] = x end
        t[tonumber(name)] = { comm = comm, ticks = (tonumber(f[12]) or 0) + (tonumber(f[13]) or 0) }
      end
    end
  end
  return t
end

local CLK_TCK = tonumber((select(2, sh("getconf CLK_TCK")))) or 100
local background = { max_cpus = 0, samples = {} }

-- CPUs kept busy by processes other than this one and its nginx instances,
-- over `secs` seconds (nothing of ours runs meanwhile)
local function sample_background(when, secs)
  secs = secs or 0.5
  local a = proc_ticks()
  socket.sleep(secs)
  local b = proc_ticks()
  local busy, top = 0, {}
  for pid, x in pairs(b) do
    local before = a[pid] and a[pid].comm == x.comm and a[pid].ticks or x.ticks
    local cpus = (x.ticks - before) / CLK_TCK / secs
    if cpus > 0 then
      busy = busy + cpus
      top[#top + 1] = { x.comm, cpus }
    end
  end
  table.sort(top, function(p, q) return p[2] > q[2] end)
  local names = {}
  for i = 1, math.min(3, #top) do
    if top[i][2] >= 0.05 then names[#names + 1] = ("%s %.2f"):format(top[i][1], top[i][2]) end
  end
  background.samples[#background.samples + 1] = { when = when, cpus = busy, top = table.concat(names, ", ") }
  if busy > background.max_cpus then
    background.max_cpus = busy
    background.top = table.concat(names, ", ")
  end
  return busy
end

-- time the hypervisor gave to something else ("steal", /proc/stat): on a VM
-- it disturbs the figures as much as a process of our own would
local function cpu_times()
  local f = {}
  for x in (read_file("/proc/stat") or ""):match("^cpu%s+([^\n]*)"):gmatch("%d+") do
    f[#f + 1] = tonumber(x)
  end
  local total = 0
  for i = 1, math.min(8, #f) do total = total + f[i] end
  return { total = total, steal = f[8] or 0 }
end

local function steal_since(t0)
  local t1 = cpu_times()
  local total = t1.total - t0.total
  return total > 0 and (t1.steal - t0.steal) / total or 0
end

-- wait (up to `max_wait` s) until the machine is quiet
local function wait_quiet(max_wait)
  local deadline = socket.gettime() + max_wait
  local busy = sample_background("start", 0.5)
  if busy >= 0.15 and max_wait > 0 then
    say("machine busy (%.2f CPUs used by other processes: %s); waiting up to %d s for it to calm down ...",
      busy, background.samples[#background.samples].top, max_wait)
    while busy >= 0.15 and socket.gettime() < deadline do
      busy = sample_background("start", 1)
    end
    background.max_cpus, background.samples = busy, { background.samples[#background.samples] }
    background.top = background.samples[1].top
  end
end

---------------------------------------------------------------------------
-- limits: bench/probe.c
---------------------------------------------------------------------------

local function probe(...)
  local args = { ... }
  for i, a in ipairs(args) do args[i] = tostring(a) end
  local ok, out = sh(PROBE .. " " .. table.concat(args, " "))
  local line = out:match("({[^\n]*})")
  if not ok or not line then
    error("probe " .. table.concat(args, " ") .. " failed: " .. out)
  end
  local r = parse_flat(line)
  if not r.complete then
    error("probe " .. table.concat(args, " ") .. " lost bytes: " .. line)
  end
  return r
end

local function measure_limits()
  local L = {}
  local secs = math.max(0.2, math.min(1, opts.seconds * 0.6))
  say("limits: L1 (26 B writes), L2 (4096 B writes), L3 (26 B ping-pong), L4 (bulk: pipe, ring), L5 (fan-out) ...")
  local function stream(size, field, mode)
    probe("stream", size, 0.2, 1048576, mode) -- warm-up
    local runs, raw, rpw = {}, {}, {}
    for i = 1, opts.runs do
      raw[i] = probe("stream", size, secs, 1048576, mode)
      runs[i] = raw[i][field]
      rpw[i] = raw[i].reads / raw[i].messages
    end
    return { median = median(runs), runs = runs, pipe_size = raw[1].pipe_size, msg_size = size,
      seconds_per_run = secs, reads_per_write = median(rpw), placement = mode }
  end
  L.L1 = stream(26, "messages_per_s", "unpinned")
  L.L2 = stream(4096, "bytes_per_s", "unpinned")
  L.L1_split = stream(26, "messages_per_s", "split")
  L.L2_split = stream(4096, "bytes_per_s", "split")
  -- a reader in epoll_wait, as every nginx worker is (info: what the event
  -- loop alone costs W2's receiver); each run next to a plain one, as L2
  -- drifts between runs
  local rates, ratios = {}, {}
  for i = 1, opts.runs do
    local plain = probe("stream", 4096, secs, 1048576, "unpinned").bytes_per_s
    rates[i] = probe("stream", 4096, secs, 1048576, "unpinned", "epoll").bytes_per_s
    ratios[i] = rates[i] / plain
  end
  L.L2_epoll = { median = median(rates), runs = rates, ratio_to_l2 = median(ratios), ratios = ratios }
  for _, mode in ipairs { "pinned", "unpinned", "split" } do
    probe("pingpong", 26, 1000, mode)
    local p50, p99 = {}, {}
    for i = 1, opts.runs do
      local r = probe("pingpong", 26, 10000, mode)
      p50[i], p99[i] = r.p50_us, r.p99_us
    end
    L["L3_" .. mode] = { p50_us = median(p50), p99_us = median(p99), p50_runs = p50, p99_runs = p99, rounds = 10000 }
  end
  -- what an event loop's hop costs before any work of its own (info)
  probe("pingpong", 26, 1000, "pinned", "epoll")
  local p50, p99 = {}, {}
  for i = 1, opts.runs do
    local r = probe("pingpong", 26, 10000, "pinned", "epoll")
    p50[i], p99[i] = r.p50_us, r.p99_us
  end
  L.L3_epoll_pinned = { p50_us = median(p50), p99_us = median(p99), p50_runs = p50, p99_runs = p99, rounds = 10000 }
  -- info for issue 18: bulk messages through the pipe (reader in epoll_wait,
  -- as W2's receiver) and through a ring in shared memory with doorbells
  -- (what a transport without the pipe's copy and lock could move), split
  -- and on one CPU
  L.L4 = {}
  for _, size in ipairs { 10240, 65536 } do
    for _, mode in ipairs { "split", "pinned" } do
      local pipe, ring, bells = {}, {}, {}
      for i = 1, opts.runs do
        pipe[i] = probe("stream", size, secs, 1048576, mode, "epoll").messages_per_s
        local r = probe("ring", size, secs, 1048576, mode)
        ring[i], bells[i] = r.messages_per_s, r.doorbells_per_message
      end
      L.L4[#L.L4 + 1] = { size = size, placement = mode, pipe = median(pipe), ring = median(ring),
        doorbells_per_message = median(bells), pipe_runs = pipe, ring_runs = ring }
    end
  end
  -- info for E1: a broadcast to idle processes in epoll_wait, 26 B every 2 ms,
  -- before any work of theirs (E1's 2 and 5 workers: 1 and 4 others)
  L.L5 = {}
  for _, receivers in ipairs { 1, 4 } do
    local p50, p99 = {}, {}
    for i = 1, opts.runs do
      local r = probe("fanout", 26, 500, receivers)
      p50[i], p99[i] = r.p50_us, r.p99_us
    end
    L.L5[#L.L5 + 1] = { receivers = receivers, p50_us = median(p50), p99_us = median(p99), rounds = 500 }
  end
  return L
end

---------------------------------------------------------------------------
-- nginx instances
---------------------------------------------------------------------------

local instances = {}

-- placement: nil (the scheduler decides), "shared" (every worker on the
-- first CPU), "split" (worker i on CPU i mod 2).
-- original: the path of the original module's .so; that nginx loads it
-- after Debian's lua module and gets neither our build/ nor our shim on its
-- Lua paths (the harness's `lua_path` option: nothing of this tree is
-- copied into the prefix, and `;;` is LuaJIT's default path), so that
-- `require "ngx.ipc"` is the original's (its package.preload entry).
-- Every instance has `location = /send` (row R1) on its test server.
local function start(workers, placement, original)
  local main
  if placement == "shared" then
    main = "worker_cpu_affinity " .. ("01 "):rep(workers):gsub(" $", "") .. ";"
  elseif placement == "split" then
    local masks = {}
    for i = 1, workers do masks[i] = i % 2 == 1 and "01" or "10" end
    main = "worker_cpu_affinity " .. table.concat(masks, " ") .. ";"
  end
  local o = { workers = workers, level = "error", main = main, dict_size = "16m",
    server = "location = /send { content_by_lua_block { require('ngx_ipc_bench').http_send() } }" }
  if original then
    o.main = (main or "") .. "\nload_module " .. original .. ";"
    o.lua_path, o.lua_cpath = ";;", ";;"
  end
  local inst = nginx.start(o)
  instances[#instances + 1] = inst
  inst.original = original
  local dst = inst.prefix .. "/lib/ngx_ipc_bench.lua"
  local ok, out = sh(("cp %s %s && chmod a+r %s"):format(nginx.shq(WORKER_MODULE), nginx.shq(dst), nginx.shq(dst)))
  assert(ok, out)
  local ids = inst:run_all("return ngx.worker.id()")
  inst.by_id, inst.all = {}, {}
  for pid, id in pairs(ids) do
    inst.by_id[id] = pid
    inst.all[#inst.all + 1] = pid
  end
  table.sort(inst.all)
  -- load the bench module (and ngx.ipc: every worker joins) before timing
  inst:run_all("local B = require 'ngx_ipc_bench'; ipc.receive('bench', function() end); return true")
  -- and make sure which module this is
  local want = original and "original" or "ngx.ipc"
  for pid, impl in pairs(inst:run_all("return require('ngx_ipc_bench').impl()")) do
    if impl.module ~= want then
      error(("worker %d: require 'ngx.ipc' gave %s, not %s"):format(pid, tostring(impl.module), want))
    end
    if original and nginx.maps_shim(pid) then
      error(("worker %d of the original's nginx has our shim mapped"):format(pid))
    end
  end
  return inst
end

local function stop_all()
  for _, inst in ipairs(instances) do pcall(inst.stop, inst) end
  instances = {}
end

local function B(call) return "return require('ngx_ipc_bench')." .. call end

local function lst(t) return nginx.lua_list(t) end

-- largest power of two <= x (at least 1)
local function pow2_below(x)
  local p = 1
  while p * 2 <= x do p = p * 2 end
  return p
end

---------------------------------------------------------------------------
-- one run of a stream workload (W1-W4)
---------------------------------------------------------------------------

-- returns { ok, n, seconds, alerts_per_s, deliveries_per_s, bytes_per_s, errors = {...} }
-- hooks (profiling): before(sender, receivers) runs once the receivers are
-- armed, just before the sender starts; after() once every result is in.
local function stream_run(inst, bcast, n, size, full, hooks, yield)
  local sender = inst.by_id[1]
  local receivers = bcast and inst.all or { inst.by_id[0] }
  local window = math.max(64, math.floor(opts.window / size))
  local every = pow2_below(math.max(1, math.min(1024, window / 8)))
  inst:run_all(B(("arm(%d, %d, %s, %d)"):format(n, size, tostring(full), every)), nil, receivers)
  local timeout = 120
  if hooks and hooks.before then hooks.before(sender, receivers) end
  local hw = inst:spawn(receivers, B(("wait_done(%d)"):format(timeout)))
  local hs = inst:spawn({ sender }, B(("send_loop(%s, %d, %d, %d, %q, %s, %d)"):format(
    bcast and "nil" or tostring(receivers[1]), n, size, opts.every, yield or base_yield, lst(receivers), window)))
  local res = { n = n, size = size, errors = {}, receivers = #receivers }
  local s = inst:collect(hs, timeout + 30)[sender]
  local rs = inst:collect(hw, timeout + 30)
  if hooks and hooks.after then hooks.after(sender, receivers) end
  if not s.ok then
    res.errors[#res.errors + 1] = "sender: " .. tostring(s.err):match("^[^\n]*")
    return res
  end
  s = s.v[1]
  local t_end, delivered = 0, 0
  for _, pid in ipairs(receivers) do
    local r = rs[pid]
    if not r.ok then
      res.errors[#res.errors + 1] = "receiver " .. pid .. ": " .. tostring(r.err):match("^[^\n]*")
    else
      r = r.v[1]
      delivered = delivered + r.count
      if r.count ~= n then
        res.errors[#res.errors + 1] = ("worker %d counted %d of %d alerts"):format(pid, r.count, n)
      end
      if r.bad > 0 then
        res.errors[#res.errors + 1] = ("worker %d: %d damaged or out-of-order alerts (first: %s)"):format(
          pid, r.bad, tostring(r.first_bad))
      end
      if r.t_last > t_end then t_end = r.t_last end
    end
  end
  res.delivered = delivered
  res.yields, res.throttled = s.yields, s.throttled
  res.send_seconds = s.t_sent - s.t0
  res.seconds = t_end - s.t0
  res.ok = #res.errors == 0 and res.seconds > 0
  if res.ok then
    res.alerts_per_s = n / res.seconds
    res.deliveries_per_s = delivered / res.seconds
    res.bytes_per_s = delivered * size / res.seconds
  end
  return res
end

-- The limit a workload is compared with, measured again just before each of
-- its runs: on a VM the pipe's own speed drifts over a minute (other guests),
-- so a ratio is the median of per-run ratios to a limit taken moments apart.
local function paired_limit(pair, seconds)
  if pair.kind == "pingpong" then
    return probe("pingpong", 26, 10000, pair.mode).p50_us
  end
  local secs = math.max(0.2, math.min(1, (seconds or opts.seconds) * 0.6))
  return probe("stream", pair.size, secs, 1048576, pair.mode)[pair.field]
end

-- Two warm-ups: a short one with the byte-exact check, then one of the
-- length it suggests; N for the runs is calibrated on the second, so that a
-- run lasts about --seconds.  "pair": the limit to measure before each run
-- (none for the original's runs).  spec (optional): { yield = pattern,
-- runs = n, seconds = s } instead of the base pattern, --runs and --seconds;
-- short_warmup = true: the first warm-up has n_warm / 10 alerts (the rows
-- added by the sender patterns and 64 KiB, and all of the original's, whose
-- 10 B rates are 20-40 times lower than ours: it only has to be long enough
-- to size the second).
local function stream_workload(inst, name, bcast, size, n_warm, pair, spec)
  spec = spec or {}
  local yield, nruns, seconds = spec.yield or base_yield, spec.runs or opts.runs, spec.seconds or opts.seconds
  if spec.short_warmup then n_warm = math.max(200, math.floor(n_warm / 1000 + 0.5) * 100) end
  local t_start = socket.gettime()
  local runs, errors, limits = {}, {}, {}
  -- in thousands, or hundreds below 10,000 (64 KiB broadcast to 5 workers:
  -- about 1,000 alerts/s)
  local function calibrate(r, n)
    if not r.ok then return n end
    local x = r.alerts_per_s * seconds
    local q = x >= 10000 and 1000 or 100
    n = math.floor(x / q + 0.5) * q
    return math.max(200, math.min(n, 20e6))
  end
  local warm = stream_run(inst, bcast, n_warm, size, true, nil, yield)
  for _, e in ipairs(warm.errors) do errors[#errors + 1] = "warm-up: " .. e end
  local n = calibrate(warm, n_warm)
  local warm2 = stream_run(inst, bcast, n, size, false, nil, yield)
  for _, e in ipairs(warm2.errors) do errors[#errors + 1] = "warm-up 2: " .. e end
  n = calibrate(warm2, n)
  for i = 1, nruns do
    limits[i] = pair and paired_limit(pair, seconds)
    local r = stream_run(inst, bcast, n, size, false, nil, yield)
    runs[i] = r
    for _, e in ipairs(r.errors) do errors[#errors + 1] = ("run %d: %s"):format(i, e) end
  end
  local a, d, b, secs = {}, {}, {}, {}
  for _, r in ipairs(runs) do
    if r.ok then
      a[#a + 1], d[#d + 1], b[#b + 1], secs[#secs + 1] = r.alerts_per_s, r.deliveries_per_s, r.bytes_per_s, r.seconds
    end
  end
  local out = {
    name = name, workers = #inst.all, size = size, n = n, broadcast = bcast, yield = yield,
    every = opts.every, runs_wanted = nruns, seconds_wanted = seconds,
    module = inst.original and "original" or "ngx.ipc",
    whole = #errors == 0 and #a == nruns and warm.ok and warm2.ok,
    errors = errors, runs = runs, warmup = { warm, warm2 },
    paired = pair and { limit = pair, runs = limits } or nil,
  }
  if #a > 0 then
    out.alerts_per_s = median(a)
    out.deliveries_per_s = median(d)
    out.bytes_per_s = median(b)
    out.seconds_per_run = median(secs)
  end
  say("  %-8s %s alerts/s, %s deliveries/s, %s B/s (%.1f s)%s", name, si(out.alerts_per_s or 0),
    si(out.deliveries_per_s or 0), si(out.bytes_per_s or 0), socket.gettime() - t_start,
    out.whole and "" or "  LOSS: " .. table.concat(errors, "; "))
  return out
end

---------------------------------------------------------------------------
-- ping-pong (W5)
---------------------------------------------------------------------------

local function pingpong_workload(inst, name, pair)
  local t_start = socket.gettime()
  local a, b = inst.by_id[1], inst.by_id[0]
  inst:run(b, B("arm_echo()"))
  local errors, p50, p99, runs, limits = {}, {}, {}, {}, {}
  for i = 0, opts.runs do
    local rounds = i == 0 and 1000 or 10000
    if i > 0 and pair then limits[#limits + 1] = paired_limit(pair) end
    local ok, r = inst:try(a, B(("pingpong(%d, %d, 10, 60)"):format(b, rounds)), 90)
    if not ok then
      errors[#errors + 1] = ("run %d: %s"):format(i, tostring(r):match("^[^\n]*"))
    elseif not r.complete then
      errors[#errors + 1] = ("run %d: %d of %d round trips, %d damaged"):format(i, r.rounds, rounds, r.bad)
    elseif i > 0 then
      p50[#p50 + 1], p99[#p99 + 1] = r.p50_us, r.p99_us
      runs[#runs + 1] = r
    end
  end
  local out = { name = name, workers = 2, rounds = 10000, size = 10, whole = #errors == 0, errors = errors, runs = runs,
    paired = pair and { limit = pair, runs = limits } or nil, module = inst.original and "original" or "ngx.ipc" }
  if #p50 > 0 then
    out.p50_us, out.p99_us = median(p50), median(p99)
  end
  say("  %-8s p50 %.1f µs, p99 %.1f µs (%.1f s)%s", name, out.p50_us or 0, out.p99_us or 0,
    socket.gettime() - t_start, out.whole and "" or "  FAILED: " .. table.concat(errors, "; "))
  return out
end

---------------------------------------------------------------------------
-- request/response (C1): ipc.call round trips, one at a time and 64 in
-- flight; next to W5's ping-pong (the same two workers, plain alerts)
---------------------------------------------------------------------------

local CALL_INFLIGHT = 64

local function call_workload(inst, name)
  local t_start = socket.gettime()
  local a, b = inst.by_id[1], inst.by_id[0]
  inst:run(b, B("arm_call()"))
  local errors, runs = {}, {}
  for i = 0, opts.runs do
    local rounds = i == 0 and 1000 or 10000
    local ok, r = inst:try(a, B(("calls(%d, %d, %d, 10)"):format(b, rounds, CALL_INFLIGHT)), 120)
    if not ok then
      errors[#errors + 1] = ("run %d: %s"):format(i, tostring(r):match("^[^\n]*"))
    elseif not r.complete then
      errors[#errors + 1] = ("run %d: %d of %d calls wrong"):format(i, r.bad, 2 * rounds)
    elseif i > 0 then
      runs[#runs + 1] = r
    end
  end
  local out = { name = name, workers = 2, rounds = 10000, inflight = CALL_INFLIGHT, whole = #errors == 0,
    errors = errors, runs = runs, module = "ngx.ipc" }
  local function med(k)
    local l = {}
    for i, r in ipairs(runs) do l[i] = r[k] end
    return #l > 0 and median(l) or nil
  end
  out.p50_us, out.p99_us = med("p50_us"), med("p99_us")
  out.calls_per_s, out.inflight_calls_per_s = med("calls_per_s"), med("inflight_calls_per_s")
  say("  %-8s p50 %.1f µs, p99 %.1f µs, %s calls/s, %s calls/s with %d in flight (%.1f s)%s", name,
    out.p50_us or 0, out.p99_us or 0, si(out.calls_per_s or 0), si(out.inflight_calls_per_s or 0),
    CALL_INFLIGHT, socket.gettime() - t_start, out.whole and "" or "  FAILED: " .. table.concat(errors, "; "))
  return out
end

---------------------------------------------------------------------------
-- request-driven (R1): wrk drives `location = /send` on both workers; each
-- request sends one alert to the other worker (bench/worker.lua, http_send)
---------------------------------------------------------------------------

local WRK = (function()
  local ok, out = sh("command -v wrk")
  return ok and out:match("^%s*(%S+)") or nil
end)()
local WRK_CONNECTIONS = 32

-- one wrk run of `secs` seconds; returns { ok, alerts_per_s, requests_per_s,
-- refused, refused_per_s, delivered, sent, errors = {...} }
local function request_run(inst, size, secs)
  local a, b = inst.by_id[0], inst.by_id[1]
  inst:run(a, B(("arm_requests(%d, %d)"):format(b, size)))
  inst:run(b, B(("arm_requests(%d, %d)"):format(a, size)))
  local res = { errors = {}, seconds = secs, connections = WRK_CONNECTIONS, size = size }
  local ok, out = sh(("%s -t1 -c%d -d%ds --timeout 10s %s"):format(WRK, WRK_CONNECTIONS, secs,
    nginx.shq("http://127.0.0.1:" .. inst.port .. "/send")))
  if not ok then
    res.errors[#res.errors + 1] = "wrk: " .. out:gsub("%s+$", ""):gsub("\n", " | ")
    return res
  end
  res.requests_per_s = tonumber(out:match("Requests/sec:%s*([%d.]+)"))
  res.non_2xx = tonumber(out:match("Non%-2xx or 3xx responses:%s*(%d+)")) or 0
  res.socket_errors = out:match("Socket errors:%s*([^\n]+)")
  -- what was sent is final once wrk is done (the handler does not yield);
  -- wait until each side has counted what the other sent, then a little
  -- more so that a duplicate would show
  local st
  local deadline = socket.gettime() + 15
  while true do
    local sa = inst:run(a, B("req_stats()"))
    local sb = inst:run(b, B("req_stats()"))
    st = { sa, sb }
    if (sa.count >= sb.sent and sb.count >= sa.sent) or socket.gettime() >= deadline then break end
    socket.sleep(0.05)
  end
  socket.sleep(0.1)
  st = { inst:run(a, B("req_stats()")), inst:run(b, B("req_stats()")) }
  local delivered, sent, refused, t0, t1 = 0, 0, 0, math.huge, 0
  for j, x in ipairs(st) do
    local from = st[3 - j]
    delivered, sent, refused = delivered + x.count, sent + x.sent, refused + x.refused
    if x.count ~= from.sent then
      res.errors[#res.errors + 1] = ("worker %d counted %d of the %d alerts worker %d sent"):format(
        x.pid, x.count, from.sent, from.pid)
    end
    if x.bad > 0 then
      res.errors[#res.errors + 1] = ("worker %d: %d damaged or out-of-order alerts (first: %s)"):format(
        x.pid, x.bad, tostring(x.first_bad))
    end
    if x.count > 0 then
      t0, t1 = math.min(t0, x.t_first), math.max(t1, x.t_last)
    end
    if x.last_err then res.refusal = x.last_err end
  end
  res.delivered, res.sent, res.refused = delivered, sent, refused
  res.refused_per_s = refused / secs
  res.stats = { st[1].stats, st[2].stats }
  res.ok = #res.errors == 0 and t1 > t0
  if res.ok then res.alerts_per_s = delivered / (t1 - t0) end
  return res
end

-- a 1 s warm-up, then the runs; figures: medians
local function request_workload(inst, name, size)
  local secs = math.max(1, math.floor(opts.wrk_seconds + 0.5))
  local t_start = socket.gettime()
  local errors, runs = {}, {}
  local warm = request_run(inst, size, 1)
  for _, e in ipairs(warm.errors) do errors[#errors + 1] = "warm-up: " .. e end
  for i = 1, opts.runs do
    local r = request_run(inst, size, secs)
    runs[i] = r
    for _, e in ipairs(r.errors) do errors[#errors + 1] = ("run %d: %s"):format(i, e) end
  end
  local a, q, rf = {}, {}, {}
  for _, r in ipairs(runs) do
    if r.ok then a[#a + 1], q[#q + 1], rf[#rf + 1] = r.alerts_per_s, r.requests_per_s or 0, r.refused_per_s end
  end
  local out = { name = name, workers = 2, size = size, connections = WRK_CONNECTIONS, seconds_per_run = secs,
    whole = #errors == 0 and #a == opts.runs, errors = errors, runs = runs, warmup = warm,
    module = inst.original and "original" or "ngx.ipc" }
  if #a > 0 then
    out.alerts_per_s, out.requests_per_s, out.refused_per_s = median(a), median(q), median(rf)
  end
  local refused = 0
  for _, r in ipairs(runs) do refused = refused + (r.refused or 0) end
  out.refused = refused
  say("  %-8s %s alerts/s delivered, %s requests/s, %s refused/s (%.1f s)%s", name, si(out.alerts_per_s or 0),
    si(out.requests_per_s or 0), si(out.refused_per_s or 0), socket.gettime() - t_start,
    out.whole and "" or "  LOSS: " .. table.concat(errors, "; "))
  return out
end

---------------------------------------------------------------------------
-- the table
---------------------------------------------------------------------------

-- Appends to `out` a table of `rows` (lists of strings; only the columns
-- `cols`, those in `right` aligned right) under `head`, then how many of
-- `targets` were met.  A title row (label only) does not widen the first
-- column.
local function render(out, head, cols, right, rows, met_label, targets)
  local width = {}
  local function len(s) return #s:gsub("[\128-\191]", "") end
  for _, i in ipairs(cols) do width[i] = len(head[i]) end
  for _, r in ipairs(rows) do
    for _, i in ipairs(cols) do
      if not (i == 1 and r[2] == "" and r[3] == "") then width[i] = math.max(width[i], len(r[i])) end
    end
  end
  local function line(r)
    local parts = {}
    for j, i in ipairs(cols) do
      local c = r[i]
      local pad = (" "):rep(math.max(0, width[i] - len(c)))
      parts[j] = right[i] and (pad .. c) or (c .. pad)
    end
    return (table.concat(parts, "  "):gsub("%s+$", ""))
  end
  out[#out + 1] = line(head)
  local sep = {}
  for _, i in ipairs(cols) do sep[i] = ("-"):rep(width[i]) end
  out[#out + 1] = line(sep)
  for _, r in ipairs(rows) do out[#out + 1] = line(r) end
  local met_n = 0
  for _, t in ipairs(targets) do if t.met then met_n = met_n + 1 end end
  out[#out + 1] = ""
  out[#out + 1] = ("%s: %d of %d"):format(met_label, met_n, #targets)
end

-- The machine's kind, from the L rows: how fast its pipe is and what a
-- wake-up costs on the same CPU and on the other one.  Where the second is
-- many times the first, a reader and a writer on two CPUs wait for each
-- other at every wake-up (issue 18).
local function machine_line(L)
  local same, cross = L.L3_pinned.p50_us, L.L3_split.p50_us
  local x = same > 0 and cross / same or 0
  return ("machine: pipe %s B/s (L2, 4 KiB writes, one process per CPU), wake-up p50 %.1f µs on one CPU (L3 pinned)"
    .. " and %.1f µs across CPUs (L3 one process per CPU): a cross-CPU wake-up costs %.1f x a same-CPU one (%s)")
    :format(si(L.L2_split.median), same, cross, x, x >= 3 and "expensive" or "cheap")
end

local function report(M, L, W, O)
  local rows = {}
  -- label, figure, unit, limit, ratio, target, met, whole, and with O the
  -- original's figure and ours/original
  local function row(w, fig, unit, lim, ratio, target, met, whole, ofig, oratio)
    rows[#rows + 1] = { w, fig or "", unit or "", lim or "", ratio and ("%.2f"):format(ratio) or "",
      target or "", met == nil and "" or (met and "met" or "NOT met"),
      ofig or "", oratio and ("%.2f"):format(oratio) or "",
      whole == nil and "" or (whole and "yes" or "NO") }
  end
  local targets = {}
  local function target(id, what, ratio, op, goal)
    local met
    if ratio then
      if op == ">=" then met = ratio >= goal else met = ratio <= goal end
    end
    targets[#targets + 1] = { id = id, what = what, ratio = ratio, goal = goal, op = op, met = met or false }
    return (op == ">=" and "≥ " or "≤ ") .. ("%.1f"):format(goal), met
  end
  -- the original's figure for workload `key` and ours/original ("!": it
  -- lost or damaged alerts in a run)
  local function orig(key, field, ours, fmt)
    if not O then return nil, nil end
    local wo = O[key]
    if not wo then return "", nil end
    local v = wo[field]
    local txt = v and (fmt and fmt(wo) or si(v)) or "failed"
    if not wo.whole then txt = txt .. " !" end
    return txt, (v and ours and v > 0) and ours / v or nil
  end

  row("L1  pipe, 26 B writes, 64 KiB reads", si(L.L1.median), "msgs/s")
  row("L2  pipe, 4096 B writes, 1 MiB pipe", si(L.L2.median), "B/s")
  row("    (info) L1, one process per CPU", si(L.L1_split.median), "msgs/s")
  row("    (info) L2, one process per CPU", si(L.L2_split.median), "B/s")
  if L.L2_epoll then
    row("    (info) L2, reader in epoll_wait", si(L.L2_epoll.median), "B/s", "L2", L.L2_epoll.ratio_to_l2)
  end
  row("L3  pipe ping-pong 26 B, pinned", ("%.1f / %.1f"):format(L.L3_pinned.p50_us, L.L3_pinned.p99_us), "µs p50/p99")
  row("L3  pipe ping-pong 26 B, unpinned", ("%.1f / %.1f"):format(L.L3_unpinned.p50_us, L.L3_unpinned.p99_us), "µs p50/p99")
  row("    (info) one process per CPU", ("%.1f / %.1f"):format(L.L3_split.p50_us, L.L3_split.p99_us), "µs p50/p99")
  if L.L3_epoll_pinned then
    row("    (info) pinned, each side in epoll_wait", ("%.1f / %.1f"):format(L.L3_epoll_pinned.p50_us,
      L.L3_epoll_pinned.p99_us), "µs p50/p99", "L3 pin", L.L3_epoll_pinned.p50_us / L.L3_pinned.p50_us)
  end
  for _, l in ipairs(L.L4 or {}) do
    local where = l.placement == "split" and "one process per CPU" or "both on one CPU"
    row(("L4  pipe, %d KiB writes, reader in epoll, %s"):format(math.floor(l.size / 1024), where), si(l.pipe), "msgs/s")
    row(("    (info) shared-memory ring instead, %s"):format(where), si(l.ring), "msgs/s", "L4", l.ring / l.pipe)
  end
  for _, l in ipairs(L.L5 or {}) do
    row(("L5  pipe fan-out 26 B to %d process%s in epoll"):format(l.receivers, l.receivers == 1 and "" or "es"),
      ("%.1f / %.1f"):format(l.p50_us, l.p99_us), "µs p50/p99")
  end

  local function ratio(x, l) return x and l and l > 0 and x / l or nil end
  -- with a paired limit: the median of the runs' ratios to it (see paired_limit)
  local function rat(w, field, l)
    local r = {}
    for i, run in ipairs(w.paired and w.runs or {}) do
      local x, lim = run[field], w.paired.runs[i]
      if x and lim and lim > 0 and (run.ok ~= false) then r[#r + 1] = x / lim end
    end
    if #r > 0 then return median(r) end
    return ratio(w[field], l)
  end

  -- W2 and W4: for each size, a title row, then per sender pattern the
  -- alerts/s (and deliveries/s) and payload B/s rows; the target (if any)
  -- on the 10 KiB row of the base pattern, as before
  local function bulk_rows(base, title, bcast, tgt, after10)
    for _, size in ipairs(SIZES) do
      local any = false
      for _, p in ipairs(patterns) do any = any or W[bulk_key(base, size, p)] ~= nil end
      if any then
        row(title(size))
        for _, p in ipairs(patterns) do
          local k = bulk_key(base, size, p)
          local w = W[k]
          if w then
            local of, orr = orig(k, "alerts_per_s", w.alerts_per_s)
            row("      yield: " .. PATTERN_LABEL[p], si(w.alerts_per_s or 0), "alerts/s", nil, nil, nil, nil, w.whole,
              of, orr)
            if bcast then
              of, orr = orig(k, "deliveries_per_s", w.deliveries_per_s)
              row("", si(w.deliveries_per_s or 0), "deliveries/s", nil, nil, nil, nil, nil, of, orr)
            end
            local r = rat(w, "bytes_per_s", L.L2.median)
            local t, met
            if tgt and size == 10240 and p == base_yield then t, met = tgt(r) end
            of, orr = orig(k, "bytes_per_s", w.bytes_per_s)
            row("", si(w.bytes_per_s or 0), "payload B/s", "L2", r, t, met, nil, of, orr)
          end
        end
      end
      if size == 10240 and after10 then after10() end
    end
  end

  local w = W.W1
  if w then
    local r = rat(w, "alerts_per_s", L.L1.median)
    local t, met = target("W1", "W1 alerts/s >= 1.2 x L1", r, ">=", 1.2)
    local of, orr = orig("W1", "alerts_per_s", w.alerts_per_s)
    row("W1  send 10 B, 2 workers", si(w.alerts_per_s or 0), "alerts/s", "L1", r, t, met, w.whole, of, orr)
  end
  w = W.W1_split
  if w then
    local of, orr = orig("W1_split", "alerts_per_s", w.alerts_per_s)
    row("    (info) W1, one worker per CPU", si(w.alerts_per_s or 0), "alerts/s", "L1 split",
      rat(w, "alerts_per_s", L.L1_split.median), nil, nil, w.whole, of, orr)
  end
  bulk_rows("W2", function(size)
    return ("W2  send %d KiB, 2 workers"):format(math.floor(size / 1024))
  end, false, function(r)
    return target("W2", "W2 payload B/s >= 0.8 x L2", r, ">=", 0.8)
  end, function()
    local ws = W.W2_split
    if ws then
      local of, orr = orig("W2_split", "bytes_per_s", ws.bytes_per_s)
      row("    (info) W2, one worker per CPU", si(ws.bytes_per_s or 0), "payload B/s", "L2 split",
        rat(ws, "bytes_per_s", L.L2_split.median), nil, nil, ws.whole, of, orr)
    end
  end)
  for _, k in ipairs { "W3_2", "W3_5" } do
    w = W[k]
    if w then
      local label = ("W3  broadcast 10 B, %d workers"):format(w.workers)
      local of, orr = orig(k, "alerts_per_s", w.alerts_per_s)
      row(label, si(w.alerts_per_s or 0), "alerts/s", nil, nil, nil, nil, w.whole, of, orr)
      local r = rat(w, "deliveries_per_s", L.L1.median)
      local t, met
      if k == "W3_5" then t, met = target("W3", "W3 (5 workers) deliveries/s >= 1.3 x L1", r, ">=", 1.3) end
      of, orr = orig(k, "deliveries_per_s", w.deliveries_per_s)
      row("", si(w.deliveries_per_s or 0), "deliveries/s", "L1", r, t, met, nil, of, orr)
    end
  end
  for _, nw in ipairs { 2, 5 } do
    bulk_rows("W4_" .. nw, function(size)
      return ("W4  broadcast %d KiB, %d workers"):format(math.floor(size / 1024), nw)
    end, true, nw == 2 and function(r)
      return target("W4", "W4 (2 workers) delivered payload B/s >= 0.8 x L2", r, ">=", 0.8)
    end or nil)
  end
  local function pp(x) return ("%.1f / %.1f"):format(x.p50_us or 0, x.p99_us or 0) end
  for _, k in ipairs { "W5_pinned", "W5_unpinned" } do
    w = W[k]
    if w then
      local pinned = k == "W5_pinned"
      local lim = pinned and L.L3_pinned or L.L3_unpinned
      local r = rat(w, "p50_us", lim.p50_us)
      local t, met
      if pinned then t, met = target("W5", "W5 pinned p50 <= 2 x L3 pinned", r, "<=", 2) end
      local of, orr = orig(k, "p50_us", w.p50_us, pp)
      row(("W5  ping-pong 10 B, %s"):format(pinned and "pinned (1 CPU)" or "unpinned"),
        pp(w), "µs p50/p99", pinned and "L3 pin" or "L3 unpin", r, t, met, w.whole, of, orr)
    end
  end
  w = W.C1
  if w then
    row("C1  ipc.call round trip 2 B, one at a time", pp(w), "µs p50/p99", nil, nil, nil, nil, w.whole)
    if W.W5_unpinned and W.W5_unpinned.p50_us and w.p50_us then
      row("    (W5 unpinned ping-pong p50 ratio)", ("%.2f x"):format(w.p50_us / W.W5_unpinned.p50_us), "C1/W5")
    end
    row("", si(w.calls_per_s or 0), "calls/s")
    row(("    %d calls in flight"):format(w.inflight), si(w.inflight_calls_per_s or 0), "calls/s")
  end
  w = W.R1
  if w then
    local of, orr = orig("R1", "alerts_per_s", w.alerts_per_s)
    row(("R1  requests (wrk, %d connections), 2 workers"):format(w.connections), si(w.alerts_per_s or 0),
      "alerts/s delivered", nil, nil, nil, nil, w.whole, of, orr)
    of, orr = orig("R1", "requests_per_s", w.requests_per_s)
    row("    each sends 10 KiB to the other worker", si(w.requests_per_s or 0), "requests/s", nil, nil, nil, nil, nil,
      of, orr)
    of = orig("R1", "refused_per_s", w.refused_per_s)
    row("", si(w.refused_per_s or 0), "refused sends/s", nil, nil, nil, nil, nil, of)
  elseif wanted("R1") and not WRK then
    row("R1  request-driven: skipped, wrk is not installed")
  end
  w = W.K1
  if w then
    row(("K1  cluster.broadcast, %d instances x %d workers, Redis"):format(w.instances, w.workers),
      pp(w), "µs p50/p99", nil, nil, nil, nil, w.whole)
    row("    publish -> handled on another instance")
    row("    all workers publish, one at a time each", si(w.alerts_per_s or 0), "alerts/s", "XADD",
      w.ratio, nil, nil, w.whole)
    row("", si(w.deliveries_per_s or 0), "deliveries/s")
    if w.concurrent_alerts_per_s then
      row(("    all workers publish, %d at a time each"):format(w.concurrent), si(w.concurrent_alerts_per_s), "alerts/s",
        "XADD", w.concurrent_ratio, nil, nil, w.whole)
    end
    row("    redis-benchmark XADD, 6 clients (limit)", w.xadd_per_s and si(w.xadd_per_s) or "failed", "XADD/s")
  end

  -- E1, WE1, M1: a drop-in (x) and its library (real) in the original's columns
  local function ev_row(label, x, real, unit)
    unit = unit or "events/s"
    row(label, si(x.events_per_s or 0), unit, nil, nil, nil, nil, x.whole,
      real and si(real.events_per_s or 0), real and real.events_per_s and x.events_per_s / real.events_per_s)
    row("", pp(x), "µs p50/p99", nil, nil, nil, nil, nil, real and pp(real),
      real and real.p50_us and x.p50_us and x.p50_us / real.p50_us)
    row("", ("%d/%d"):format(x.refused or 0, x.lost or 0), "refused/lost", nil, nil, nil, nil, nil,
      real and ("%d/%d"):format(real.refused or 0, real.lost or 0))
  end
  local function size_of(r) return r.size == 10 and "10 B" or "10 KiB" end
  w = W.E1
  for _, r in ipairs(w and w.rows or {}) do
    ev_row(("E1  events 'all', %d workers, %s"):format(r.workers, size_of(r)), r.ours, r.real)
  end
  w = W.WE1
  for _, r in ipairs(w and w.rows or {}) do
    ev_row(("WE1 worker_events post, %d workers, %s"):format(r.workers, size_of(r)), r.ours, r.real[1])
    for i = 2, #w.intervals do
      if r.real[i] then
        ev_row(("    lua-resty-worker-events polling every %g s"):format(w.intervals[i]), r.ours, r.real[i])
      end
    end
  end
  w = W.M1
  for _, r in ipairs(w and w.rows or {}) do
    ev_row(("M1  mlcache set/delete -> other L1s, %d workers"):format(r.workers), r.ours, r.real[1],
      "invalidations/s")
    for i = 2, #w.intervals do
      ev_row(("    lua-resty-mlcache ipc_shm, update() every %g s"):format(w.intervals[i]), r.ours, r.real[i],
        "invalidations/s")
    end
  end

  local head = { "workload", "figure", "unit", "limit", "ratio", "target", "", "original", "ours/orig", "whole" }
  -- E1's, WE1's and M1's peers (the libraries) go into the original's columns
  local peer = O or (W.E1 and W.E1.rows[1] and W.E1.rows[1].real)
    or (W.WE1 and W.WE1.rows[1] and W.WE1.rows[1].real[1]) or W.M1
  local cols = peer and { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 } or { 1, 2, 3, 4, 5, 6, 7, 10 }
  local out = {}
  out[#out + 1] = ("ngx.ipc bench — %s, %d × %s, %s, %s, LuaJIT %s, commit %s%s"):format(
    M.date, M.cpus or 0, M.cpu, M.kernel, M.nginx, M.luajit, M.commit,
    M.uncommitted_changes and " + uncommitted changes" or "")
  out[#out + 1] = machine_line(L)
  out[#out + 1] = ("each figure: median of %d runs after a warm-up; W runs %.1f s each; whole = every alert counted, in order, intact")
    :format(opts.runs, opts.seconds)
  local labels = {}
  for i, p in ipairs(patterns) do labels[i] = PATTERN_LABEL[p] end
  out[#out + 1] = ("W2, W4: a row per sender pattern, \"yield:\" what the sender does every %d sends (%s);")
    :format(opts.every, table.concat(labels, ", "))
  out[#out + 1] = ("  their 10 KiB %s rows as above; their other rows, to keep the bench short: median of %d runs of %.1f s"
    .. "; W1, W3, W5 and the info rows yield with the %s")
    :format(PATTERN_LABEL[base_yield], opts.extra_runs, opts.extra_seconds, PATTERN_LABEL[base_yield])
  if W.R1 then
    out[#out + 1] = ("R1: wrk -t1 -c%d, median of %d runs of %d s after a 1 s warm-up; each request sends one "
      .. "10 KiB alert to the other worker;")
      :format(W.R1.connections, opts.runs, W.R1.seconds_per_run)
    out[#out + 1] = "  the figure: alerts counted at the receivers per second; refused = send returned nil, err"
  end
  out[#out + 1] = "ratio: median of the runs' ratios, each to its limit measured again just before that run (the L rows: once, at the start)"
  if O then
    out[#out + 1] = ("original: %s (slact/ngx_lua_ipc), on its own nginx right after ours, the same workloads; "
      .. "ours/orig = our figure / the original's (µs rows: below 1 = ours faster); ! = it lost or damaged alerts")
      :format(opts.original)
  end
  if (W.E1 and W.E1.rows[1] and W.E1.rows[1].real) or (W.WE1 and W.WE1.rows[1] and W.WE1.rows[1].real[1])
    or W.M1 then
    out[#out + 1] = "E1, WE1, M1: the original's columns hold the library the drop-in stands in for, on its own nginx right"
      .. " after ours (lost: events some worker never handled; refused: nil, err to the publisher)"
  end
  if W.WE1 and W.WE1.rows[1] and W.WE1.rows[1].real[1] then
    out[#out + 1] = "WE1: lua-resty-worker-events with lua_shared_dict process_events 1m, polling every 1 s (first row)"
      .. " and every 0.01 s (second row)"
  end
  if W.M1 then
    out[#out + 1] = "M1: lua-resty-mlcache with ipc_shm (lua_shared_dict 1m), update() from a timer every 1 s (first row)"
      .. " and every 0.01 s (second row); ours never calls update()"
  end
  local bg = M.background
  if bg.max_cpus >= 0.15 then
    out[#out + 1] = ("WARNING: other processes kept up to %.2f CPUs busy during the bench (%s): the figures are disturbed")
      :format(bg.max_cpus, bg.top or "?")
  else
    out[#out + 1] = ("machine quiet: other processes used at most %.2f CPUs when sampled between phases"):format(bg.max_cpus)
  end
  if bg.steal then
    out[#out + 1] = ("host steal: %.1f %% of CPU time during the bench (time the hypervisor gave to other guests)%s")
      :format(bg.steal * 100, bg.steal >= 0.02 and ": the figures are disturbed" or "")
  end
  out[#out + 1] = ""
  render(out, head, cols, { [2] = true, [5] = true, [8] = true, [9] = true }, rows, "targets met", targets)
  return table.concat(out, "\n"), targets
end

-- --pin: each row unpinned and with every worker on one CPU, and the
-- targets of issue 18 (bulk rows: unpinned >= pinned, unpinned >= 2 x and
-- pinned >= 3 x the original; 10 B rows >= 10 x the original)
local function pin_report(L, W, O, P, OP, items)
  local head = { "workload (alerts/s)", "unpinned", "pinned", "unpin/pin", "", "original", "orig pinned",
    "ours/orig", "", "pinned ours/orig", "" }
  local rows, targets = {}, {}
  local function ratio(a, b) return a and b and b > 0 and a / b or nil end
  local function fmt(x) return x and ("%.2f"):format(x) or "-" end
  local function check(id, what, r, goal)
    if not r then return "" end
    local met = r >= goal
    targets[#targets + 1] = { id = id, what = what, ratio = r, goal = goal, op = ">=", met = met }
    return met and "met" or "NOT met"
  end
  for _, item in ipairs(items) do
    local k = item.key
    local u, p = W[k] and W[k].alerts_per_s, P[k] and P[k].alerts_per_s
    local ou, op = O and O[k] and O[k].alerts_per_s, OP and OP[k] and OP[k].alerts_per_s
    local small = k == "W1" or k:match("^W3")
    local up, ru, rp = ratio(u, p), ratio(u, ou), ratio(p, op)
    rows[#rows + 1] = { item.label, u and si(u) or "-", p and si(p) or "-", fmt(up),
      small and "" or check("pin " .. k, item.label .. ": unpinned >= pinned", up, 1),
      ou and si(ou) or "", op and si(op) or "", O and fmt(ru) or "",
      O and check("orig " .. k, item.label .. (small and ": >= 10 x" or ": unpinned >= 2 x") .. " the original", ru,
        small and 10 or 2) or "",
      O and fmt(rp) or "",
      O and not small and check("orig pin " .. k, item.label .. ": pinned >= 3 x the original", rp, 3) or "" }
  end
  local wu, wp = W.W5_unpinned, W.W5_pinned
  if wu and wp and wu.p50_us and wp.p50_us then
    local ou = O and O.W5_unpinned and O.W5_unpinned.p50_us
    local op = O and O.W5_pinned and O.W5_pinned.p50_us
    -- to the paired limits, as in the first table
    local paired = {}
    for i, run in ipairs(wp.paired and wp.runs or {}) do
      local lim = wp.paired.runs[i]
      if run.p50_us and lim and lim > 0 then paired[#paired + 1] = run.p50_us / lim end
    end
    local r = #paired > 0 and median(paired) or ratio(wp.p50_us, L.L3_pinned.p50_us)
    local met = r and r <= 1.5
    targets[#targets + 1] = { id = "W5 L3", what = "W5 pinned p50 <= 1.5 x L3 pinned", ratio = r, goal = 1.5,
      op = "<=", met = met or false }
    rows[#rows + 1] = { "W5 ping-pong p50 µs (lower is better)", ("%.1f"):format(wu.p50_us), ("%.1f"):format(wp.p50_us),
      "", ("pinned %.2f x L3 %s"):format(r or 0, met and "met" or "NOT met"),
      ou and ("%.1f"):format(ou) or "", op and ("%.1f"):format(op) or "", ou and fmt(wu.p50_us / ou) or "",
      ou and (function()
        local m = wu.p50_us <= ou
        targets[#targets + 1] = { id = "W5 orig", what = "W5 unpinned p50 <= the original's", ratio = wu.p50_us / ou,
          goal = 1, op = "<=", met = m }
        return m and "met" or "NOT met"
      end)() or "",
      op and fmt(wp.p50_us / op) or "", "" }
  end
  local out = { "unpinned and pinned (--pin: the same rows again with every worker on CPU 0, no paired limits);"
    .. " targets of issue 18: bulk rows unpinned >= pinned, >= 2 x the original unpinned and >= 3 x pinned;"
    .. " W1, W3 >= 10 x", "" }
  render(out, head, O and { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 } or { 1, 2, 3, 4, 5 },
    { [2] = true, [3] = true, [4] = true, [6] = true, [7] = true, [8] = true, [10] = true }, rows,
    "issue 18 targets met", targets)
  return table.concat(out, "\n"), targets
end

---------------------------------------------------------------------------
-- profiling (--profile=DIR): see docs/performance.md
---------------------------------------------------------------------------

local profile -- defined in bench/profile.lua

---------------------------------------------------------------------------
-- main
---------------------------------------------------------------------------

local function main()
  assert(read_file(PROBE), PROBE .. " is missing: run `make bench` (it builds bench/probe.c)")
  assert(read_file(nginx.root .. "/lib/ngx_ipc_shim.so"), nginx.root .. "/lib/ngx_ipc_shim.so is missing: run `make shim`")
  if opts.original then
    if opts.original:sub(1, 1) ~= "/" then
      opts.original = (os.getenv("PWD") or io.popen("pwd"):read("*l")) .. "/" .. opts.original
    end
    assert(read_file(opts.original), "--original: cannot read " .. opts.original)
  end
  local t_start = socket.gettime()

  if opts.profile then
    profile = dofile(ROOT .. "/bench/profile.lua")
    return profile {
      opts = opts, root = ROOT, start = start, stop_all = stop_all, B = B, lst = lst,
      stream_run = stream_run, wanted = wanted, say = say, sh = sh, json = json, si = si,
      wait_quiet = wait_quiet, sample_background = sample_background, background = background,
    }
  end

  local M = machine()
  wait_quiet(opts.quiet)
  local cpu0 = cpu_times()
  local L = measure_limits()
  say("  L1 %s msgs/s, L2 %s B/s, L3 pinned p50 %.1f µs, unpinned p50 %.1f µs",
    si(L.L1.median), si(L.L2.median), L.L3_pinned.p50_us, L.L3_unpinned.p50_us)

  local L1p = { kind = "stream", size = 26, field = "messages_per_s", mode = "unpinned" }
  local L2p = { kind = "stream", size = 4096, field = "bytes_per_s", mode = "unpinned" }
  local L1s = { kind = "stream", size = 26, field = "messages_per_s", mode = "split" }
  local L2s = { kind = "stream", size = 4096, field = "bytes_per_s", mode = "split" }
  local L3p = { kind = "pingpong", mode = "pinned" }
  local L3u = { kind = "pingpong", mode = "unpinned" }

  -- The bulk rows: W2 (unicast) and W4 (broadcast) at 10 KiB and 64 KiB,
  -- one row per sender pattern (keys: bulk_key)
  local function bulk(list, base, label, bcast, n_warm10, pair)
    for _, size in ipairs(SIZES) do
      for _, pattern in ipairs(patterns) do
        local main_row = size == 10240 and pattern == base_yield
        local n_warm = math.max(500, math.floor(n_warm10 * 10240 / size / 100 + 0.5) * 100)
        list[#list + 1] = { key = bulk_key(base, size, pattern),
          label = ("%s %d KiB, %s"):format(label, math.floor(size / 1024), PATTERN_LABEL[pattern]), run = function(inst, orig)
          local spec = { yield = pattern, runs = main_row and opts.runs or opts.extra_runs,
            seconds = main_row and opts.seconds or opts.extra_seconds, short_warmup = orig or not main_row }
          return stream_workload(inst, ("%s %s %s"):format(label, size == 65536 and "64K" or "10K", pattern),
            bcast, size, n_warm, not orig and pair or nil, spec)
        end }
      end
    end
  end

  -- the groups of workloads, each on one nginx (and then on the original's)
  local groups = {}
  do
    local list = {}
    if wanted("W1") then
      list[#list + 1] = { key = "W1", label = "W1 10 B", run = function(inst, orig)
        return stream_workload(inst, "W1", false, 10, 200000, not orig and L1p or nil,
          { short_warmup = orig })
      end }
    end
    if wanted("W2") then bulk(list, "W2", "W2", false, 20000, L2p) end
    if wanted("W3") then
      list[#list + 1] = { key = "W3_2", label = "W3 2w 10 B", run = function(inst, orig)
        return stream_workload(inst, "W3 2w", true, 10, 200000, not orig and L1p or nil,
          { short_warmup = orig })
      end }
    end
    if wanted("W4") then bulk(list, "W4_2", "W4 2w", true, 10000, L2p) end
    if wanted("W5") then
      list[#list + 1] = { key = "W5_unpinned", unpinned_only = true, run = function(inst, orig)
        return pingpong_workload(inst, "W5 unpin", not orig and L3u or nil) end }
    end
    if wanted("C1") then
      list[#list + 1] = { key = "C1", ours_only = true, unpinned_only = true, run = function(inst)
        return call_workload(inst, "C1 call") end }
    end
    if wanted("R1") and WRK then
      list[#list + 1] = { key = "R1", label = "R1 wrk 10 KiB", run = function(inst)
        return request_workload(inst, "R1", 10240) end }
    end
    groups[#groups + 1] = { what = "2 workers", workers = 2, list = list }
  end
  do
    local list = {}
    if wanted("W3") then
      list[#list + 1] = { key = "W3_5", label = "W3 5w 10 B", run = function(inst, orig)
        return stream_workload(inst, "W3 5w", true, 10, 100000, not orig and L1p or nil,
          { short_warmup = orig })
      end }
    end
    if wanted("W4") then bulk(list, "W4_5", "W4 5w", true, 5000, L2p) end
    groups[#groups + 1] = { what = "5 workers", workers = 5, list = list }
  end
  do
    local list = {}
    if wanted("W1") then
      list[#list + 1] = { key = "W1_split", run = function(inst, orig)
        return stream_workload(inst, "W1 split", false, 10, 200000, not orig and L1s or nil,
          { short_warmup = orig })
      end }
    end
    if wanted("W2") then
      list[#list + 1] = { key = "W2_split", run = function(inst, orig)
        return stream_workload(inst, "W2 split", false, 10240, 20000, not orig and L2s or nil,
          { short_warmup = orig })
      end }
    end
    groups[#groups + 1] = { what = "2 workers, one per CPU", workers = 2, placement = "split", list = list }
  end
  do
    local list = {}
    if wanted("W5") then
      list[#list + 1] = { key = "W5_pinned", run = function(inst, orig)
        return pingpong_workload(inst, "W5 pin", not orig and L3p or nil) end }
    end
    groups[#groups + 1] = { what = "2 workers pinned to one CPU", workers = 2, placement = "shared", list = list }
  end

  -- ours, then (with --original) the original on its own nginx, group by
  -- group: each pair of figures is measured minutes apart at most
  -- With --pin, each group the scheduler places runs again with every
  -- worker on one CPU (P, OP), ours then the original's; those runs have no
  -- paired limit and a short first warm-up, as the original's have.
  local W, O = {}, opts.original and {} or nil
  local P, OP = opts.pin and {} or nil, opts.pin and opts.original and {} or nil
  local pin_rows = {}
  local function run_group(g, placement, ours, theirs, pinned)
    sample_background("before " .. g.what .. (pinned and ", pinned" or ""))
    say("nginx, %s%s ...", g.what, pinned and ", every worker on one CPU" or "")
    local inst = start(g.workers, placement)
    for _, item in ipairs(g.list) do
      if not (pinned and item.unpinned_only) then ours[item.key] = item.run(inst, pinned) end
    end
    stop_all()
    if theirs then
      sample_background("before " .. g.what .. ", original" .. (pinned and ", pinned" or ""))
      say("nginx with the original module, %s%s ...", g.what, pinned and ", every worker on one CPU" or "")
      inst = start(g.workers, placement, opts.original)
      for _, item in ipairs(g.list) do
        -- the original has no ipc.call
        if not item.ours_only and not (pinned and item.unpinned_only) then
          local w = item.run(inst, true)
          w.name = "original " .. w.name .. (pinned and " pinned" or "")
          theirs[item.key] = w
        end
      end
      stop_all()
    end
  end
  for _, g in ipairs(groups) do
    if #g.list > 0 then
      run_group(g, g.placement, W, O, false)
      if P and not g.placement then
        run_group(g, "shared", P, OP, true)
        for _, item in ipairs(g.list) do
          if item.label and not item.unpinned_only then pin_rows[#pin_rows + 1] = item end
        end
      end
    end
  end

  if wanted("K1") then
    sample_background("before the cluster")
    say("3 nginx instances and a redis-server (K1) ...")
    W.K1 = dofile(ROOT .. "/bench/cluster.lua")({ say = say, median = median, si = si, opts = opts })
  end

  if wanted("E1") then
    say("ngx.ipc.events%s (E1) ...", opts.events and " and lua-resty-events" or "")
    W.E1 = dofile(ROOT .. "/bench/events.lua")({ say = say, median = median, si = si, opts = opts })
  end

  if wanted("WE1") then
    sample_background("before worker_events")
    say("ngx.ipc.worker_events%s (WE1) ...", opts.worker_events and " and lua-resty-worker-events" or "")
    W.WE1 = dofile(ROOT .. "/bench/worker_events.lua")({ say = say, median = median, si = si, opts = opts })
  end

  if wanted("M1") and opts.mlcache then
    sample_background("before mlcache")
    say("ngx.ipc.mlcache and lua-resty-mlcache's ipc_shm (M1) ...")
    W.M1 = dofile(ROOT .. "/bench/mlcache.lua")({ say = say, median = median, si = si, opts = opts })
  end

  sample_background("end")
  M.background = background
  background.steal = steal_since(cpu0)
  local text, targets = report(M, L, W, O)
  if P then
    local ptext, ptargets = pin_report(L, W, O, P, OP, pin_rows)
    text = text .. "\n\n" .. ptext
    for _, t in ipairs(ptargets) do targets[#targets + 1] = t end
  end
  print(text)
  local function sorted_keys(t)
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys)
    return keys
  end
  local whole = true
  for _, set in ipairs { W, P or {} } do
    for _, k in ipairs(sorted_keys(set)) do
      local w = set[k]
      if not w.whole then
        whole = false
        print(("LOSS in %s%s: %s"):format(w.name, set == P and " (pinned)" or "", table.concat(w.errors, "; ")))
      end
    end
  end
  print(whole and "delivery: every alert of every run delivered whole" or "delivery: FAILED (see above)")
  local orig_whole
  if O then
    orig_whole = true
    for _, set in ipairs { O, OP or {} } do
      for _, k in ipairs(sorted_keys(set)) do
        local w = set[k]
        if not w.whole then
          orig_whole = false
          print(("original, LOSS in %s: %s"):format(w.name, table.concat(w.errors, "; ")))
        end
      end
    end
    print(orig_whole and "original: every alert of every run delivered whole"
      or "original: FAILED in some runs (see above; does not change the exit code)")
  end
  print(("bench took %.0f s"):format(socket.gettime() - t_start))

  if opts.json then
    local doc = {
      machine = M, options = { runs = opts.runs, seconds = opts.seconds, every = opts.every,
        yield = patterns, base_yield = base_yield, extra_runs = opts.extra_runs,
        extra_seconds = opts.extra_seconds, wrk_seconds = opts.wrk_seconds, wrk = WRK or false,
        window_bytes = opts.window, original = opts.original },
      limits = L, workloads = W, targets = targets, whole = whole,
      original = O and { path = opts.original, workloads = O, whole = orig_whole } or nil,
      pinned = P and { workloads = P, original = OP } or nil,
      table = text,
    }
    local f = assert(io.open(opts.json, "w"))
    f:write(json(doc), "\n")
    f:close()
    print("figures written to " .. opts.json)
  end

  local met_all = true
  for _, t in ipairs(targets) do if not t.met then met_all = false end end
  if not whole then return 1 end
  if opts.strict and not met_all then return 1 end
  return 0
end

local ok, rc = xpcall(main, debug.traceback)
stop_all()
if not ok then
  io.stderr:write("bench: " .. tostring(rc) .. "\n")
  os.exit(2)
end
os.exit(rc)
