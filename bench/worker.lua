-- bench/worker.lua: the worker side of `make bench` (bench/run.lua copies it
-- into each nginx prefix as lib/ngx_ipc_bench.lua).  Commands from the
-- driver arrive through the test harness's control path (a lua_shared_dict,
-- never ngx.ipc) and call the functions below.
--
-- Everything on the hot path lives in Lua locals: a handler increments a
-- counter, checks the alert, and reads the clock once, at the last receipt.
local ffi = require "ffi"
local bit = require "bit"
local semaphore = require "ngx.semaphore"
local ipc = require "ngx.ipc"

local band, rshift = bit.band, bit.rshift
local byte, char, rep = string.byte, string.char, string.rep
local C = ffi.C

-- clock_gettime under a private name: nothing else can have declared it so
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } ngx_ipc_bench_ts;
int ngx_ipc_bench_clock(int clk, ngx_ipc_bench_ts *ts) __asm__("clock_gettime");
]]
local ts = ffi.new("ngx_ipc_bench_ts")
local CLOCK_MONOTONIC = 1

local function mono()
  C.ngx_ipc_bench_clock(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local M = { mono = mono }

-- Which module `require "ngx.ipc"` gave: this one (it has ipc.stats and
-- ipc.configure) or the original C module, slact/ngx_lua_ipc, which has
-- neither (but ipc.get_other_worker_pids).  Nothing below calls stats or
-- configure without checking for them first.
local has_stats = type(ipc.stats) == "function"
local has_configure = type(ipc.configure) == "function"
local IMPL = has_stats and "ngx.ipc"
  or (type(ipc.get_other_worker_pids) == "function" and "original" or "unknown")

function M.impl()
  return { module = IMPL, stats = has_stats, configure = has_configure }
end

-- this module's counters (ipc.stats), or nil under the original
function M.module_stats()
  if has_stats then return ipc.stats() end
  return nil
end

---------------------------------------------------------------------------
-- alerts: a pool of POOL distinct strings, alert i carries pool[i % POOL].
-- Bytes 1-2: the index (binary), then a fill byte of the index, the last
-- byte another function of it.  Distinct strings keep the receiver honest
-- (LuaJIT interns strings: identical alerts would cost it no allocation).
---------------------------------------------------------------------------

local POOL = 4096
M.POOL = POOL
local NAME = "bench"

local function fill_of(i) return (i * 131 + 7) % 256 end
local function tail_of(i) return (i * 29 + 101) % 256 end

local function make_alert(i, size)
  assert(size >= 4, "alert size must be at least 4 bytes")
  return char(rshift(i, 8), band(i, 255)) .. rep(char(fill_of(i)), size - 3) .. char(tail_of(i))
end

-- Alerts over 16 KiB come from a pool of POOL / 4 (64 KiB: 1024 strings,
-- 64 MiB per worker instead of 256, still four times what the flow-control
-- window lets be in flight); pool_mask(size) is what both sides index with.
local function pool_mask(size)
  return (size > 16384 and POOL / 4 or POOL) - 1
end
M.pool_mask = pool_mask

local pools = {}
local function pool_of(size)
  local p = pools[size]
  if not p then
    p = {}
    for i = 0, pool_mask(size) do p[i + 1] = make_alert(i, size) end
    pools[size] = p
  end
  return p
end

local tails = {}
for i = 0, POOL - 1 do tails[i] = tail_of(i) end

---------------------------------------------------------------------------
-- receiving
---------------------------------------------------------------------------

local count, bad, target, t_last, t_first = 0, 0, 0, 0, 0
local size_expected, mask_expected = 0, POOL - 1
local first_bad
local done_sema

-- Progress for the sender's flow control goes through the harness's shared
-- dict (never through ngx.ipc): every `pmask + 1` alerts, one dict:set.
local dict = ngx.shared.ngx_ipc_t
local pkey = "bench:progress:" .. ngx.worker.pid()
local pmask = 1023

-- Each alert's data is kept in a small ring, as a real handler keeps or
-- passes on what it gets: otherwise LuaJIT may sink the ffi.string() that
-- makes it (the checks below read only its length and three bytes) and the
-- bench would not pay for the copy into a Lua string.
local keep = {}
for i = 1, 16 do keep[i] = false end

-- the usual check: length, index (so order), last byte
local function on_alert(data)
  local n = count
  count = n + 1
  keep[band(n, 15) + 1] = data
  local idx = band(n, mask_expected)
  local hi, lo = byte(data, 1, 2)
  if #data ~= size_expected or hi * 256 + lo ~= idx or byte(data, -1) ~= tails[idx] then
    bad = bad + 1
    if not first_bad then
      first_bad = ("alert #%d: %d bytes, index %s, expected %d bytes, index %d"):format(
        n + 1, #data, tostring(hi and lo and hi * 256 + lo), size_expected, idx)
    end
  end
  if band(n + 1, pmask) == 0 then dict:set(pkey, n + 1) end
  if n + 1 == target then
    t_last = mono()
    dict:set(pkey, n + 1)
    done_sema:post(1)
  end
end

-- the full check (warm-up runs): every byte, through the pool
local full_pool
local function on_alert_full(data)
  local n = count
  count = n + 1
  keep[band(n, 15) + 1] = data
  if data ~= full_pool[band(n, mask_expected) + 1] then
    bad = bad + 1
    if not first_bad then
      first_bad = ("alert #%d: %d bytes, not byte-exact (or out of order)"):format(n + 1, #data)
    end
  end
  if band(n + 1, pmask) == 0 then dict:set(pkey, n + 1) end
  if n + 1 == target then
    t_last = mono()
    dict:set(pkey, n + 1)
    done_sema:post(1)
  end
end

-- arm this worker to count `n` alerts of `size` bytes; `full`: byte-exact
-- check; progress published every `every` alerts (a power of two)
function M.arm(n, size, full, every)
  count, bad, target, t_last, t_first, first_bad = 0, 0, n, 0, 0, nil
  size_expected, mask_expected = size, pool_mask(size)
  pmask = (every or 1024) - 1
  assert(band(pmask + 1, pmask) == 0, "progress interval must be a power of two")
  dict:set(pkey, 0)
  done_sema = semaphore.new(0)
  if full then
    full_pool = pool_of(size)
    ipc.receive(NAME, on_alert_full)
  else
    full_pool = nil
    collectgarbage()
    ipc.receive(NAME, on_alert)
  end
  return true
end

-- wait until the target is reached (or `timeout` s), then a little more so
-- that a duplicate would show up; returns the counts and the last receipt
function M.wait_done(timeout, linger)
  local ok = count >= target or done_sema:wait(timeout)
  ngx.sleep(linger or 0.05)
  return {
    pid = ngx.worker.pid(),
    reached = ok and true or false,
    count = count,
    target = target,
    bad = bad,
    first_bad = first_bad,
    t_last = t_last,
  }
end

---------------------------------------------------------------------------
-- yielding to the event loop without ngx.sleep(0)
--
-- "timer": a zero-delay ngx.timer.at posts a semaphore the sender waits on.
-- The timer expires in the next turn of nginx's event loop, after
-- epoll_wait(0) has run every ready event (pipe writable, own pipe readable),
-- so the sender gives up exactly one turn.  "sleep0": ngx.sleep(0) and
-- "sleep1ms": ngx.sleep(0.001), what a user's sender loop writes (the bulk
-- rows show all three; ngx.sleep(0) logs a [warn] per call on stock nginx,
-- the bench runs at error_log level error).
---------------------------------------------------------------------------

local yield_sema = semaphore.new(0)
local function yield_post(premature)
  yield_sema:post(1)
end

local yielders = {
  timer = function()
    local ok, err = ngx.timer.at(0, yield_post)
    if not ok then error("ngx.timer.at: " .. tostring(err)) end
    local ok2, err2 = yield_sema:wait(5)
    if not ok2 then error("yield: " .. tostring(err2)) end
  end,
  sleep1ms = function() ngx.sleep(0.001) end,
  sleep0 = function() ngx.sleep(0) end,
  none = function() end,
}

-- the cost of one yield, in µs (median of `n`)
function M.yield_cost(how, n)
  local y = assert(yielders[how], "unknown yield")
  local t = {}
  for i = 1, n do
    local t0 = mono()
    y()
    t[i] = (mono() - t0) * 1e6
  end
  table.sort(t)
  return t[math.floor((n - 1) * 0.5) + 1], t[math.floor((n - 1) * 0.99) + 1]
end

---------------------------------------------------------------------------
-- sending
---------------------------------------------------------------------------

-- The slowest receiver's progress (alerts counted), from the shared dict.
local function progress(keys)
  local low
  for j = 1, #keys do
    local v = dict:get(keys[j]) or 0
    if not low or v < low then low = v end
  end
  return low or 0
end

-- send (dst = pid) or broadcast (dst = nil) n alerts of `size` bytes,
-- yielding every `every` sends.  Flow control: when more than `window`
-- alerts are sent but not yet counted by the slowest of `receivers` (pids),
-- sleep 1 ms at a time instead (so send_backlog is never reached: a refused
-- broadcast cannot be retried without duplicates).  The window is checked at
-- every yield, and every window/4 sends in between when that is sooner (64
-- KiB alerts: 256 in the window, checked every 64 sends).  Returns the
-- monotonic times of the first send and of the return of the last one, and
-- counts.
function M.send_loop(dst, n, size, every, how, receivers, window)
  local pool = pool_of(size)
  local y = assert(yielders[how or "timer"], "unknown yield")
  local mask = pool_mask(size)
  local keys = {}
  for j, pid in ipairs(receivers or {}) do keys[j] = "bench:progress:" .. pid end
  window = window or n
  local check = math.max(1, math.floor(window / 4))
  local c = check
  local yields, throttled = 0, 0
  local k = every
  local send = dst and ipc.send or ipc.broadcast
  local t0 = mono()
  for i = 0, n - 1 do
    local ok, err
    if dst then
      ok, err = send(dst, NAME, pool[band(i, mask) + 1])
    else
      ok, err = send(NAME, pool[band(i, mask) + 1])
    end
    if not ok then
      error((dst and "send #" or "broadcast #") .. (i + 1) .. ": " .. tostring(err))
    end
    k = k - 1
    if k == 0 then
      k, c = every, check
      yields = yields + 1
      y()
      while i + 1 - progress(keys) > window do
        throttled = throttled + 1
        ngx.sleep(0.001)
      end
    elseif check < every then
      c = c - 1
      if c == 0 then
        c = check
        while i + 1 - progress(keys) > window do
          throttled = throttled + 1
          ngx.sleep(0.001)
        end
      end
    end
  end
  local t1 = mono()
  return { t0 = t0, t_sent = t1, yields = yields, throttled = throttled }
end

---------------------------------------------------------------------------
-- request-driven sending (row R1): each request to `location = /send` sends
-- one alert of `size` bytes to this worker's peer (the other worker).  A send
-- that returns nil, err is a refusal, counted apart (the request gets a 503);
-- the alert index advances only on success, so the peer can still check
-- order.  The receiving side counts what the peer sent (the same checks as
-- on_alert) and notes the times of its first and last receipt.
---------------------------------------------------------------------------

local req = { peer = nil, pool = nil, mask = POOL - 1, sent = 0, refused = 0, last_err = nil,
  count = 0, bad = 0, first_bad = nil, t_first = 0, t_last = 0, size = 0 }

local function on_request_alert(data)
  local n = req.count
  req.count = n + 1
  keep[band(n, 15) + 1] = data
  local t = mono()
  if n == 0 then req.t_first = t end
  req.t_last = t
  local idx = band(n, req.mask)
  local hi, lo = byte(data, 1, 2)
  if #data ~= req.size or hi * 256 + lo ~= idx or byte(data, -1) ~= tails[idx] then
    req.bad = req.bad + 1
    if not req.first_bad then
      req.first_bad = ("alert #%d: %d bytes, index %s, expected %d bytes, index %d"):format(
        n + 1, #data, tostring(hi and lo and hi * 256 + lo), req.size, idx)
    end
  end
end

-- arm this worker: it sends to `peer` and counts what arrives (all reset)
function M.arm_requests(peer, size)
  req.peer, req.pool, req.size, req.mask = peer, pool_of(size), size, pool_mask(size)
  req.sent, req.refused, req.last_err = 0, 0, nil
  req.count, req.bad, req.first_bad, req.t_first, req.t_last = 0, 0, nil, 0, 0
  collectgarbage()
  ipc.receive(NAME, on_request_alert)
  return true
end

-- the content handler of `location = /send`
function M.http_send()
  local peer = req.peer
  if not peer then
    ngx.status = 500
    ngx.print("not armed")
    return
  end
  local i = req.sent
  local ok, err = ipc.send(peer, NAME, req.pool[band(i, req.mask) + 1])
  if ok then
    req.sent = i + 1
    ngx.print("1")
  else
    req.refused = req.refused + 1
    req.last_err = err
    ngx.status = 503
    ngx.print("0")
  end
end

function M.req_stats()
  return { pid = ngx.worker.pid(), peer = req.peer, sent = req.sent, refused = req.refused,
    last_err = req.last_err and tostring(req.last_err), count = req.count, bad = req.bad,
    first_bad = req.first_bad, t_first = req.t_first, t_last = req.t_last,
    stats = M.module_stats() }
end

---------------------------------------------------------------------------
-- profiling helpers (bench/profile.lua)
---------------------------------------------------------------------------

-- LuaJIT's sampling profiler (jit.p) in this worker
function M.jitp_start(mode, file)
  require("jit.p").start(mode, file)
  return true
end

function M.jitp_stop()
  require("jit.p").stop()
  return true
end

---------------------------------------------------------------------------
-- ping-pong: this worker sends "ping" (ipc.send), the peer answers "pong"
-- (ipc.reply); the round trip is timed here
---------------------------------------------------------------------------

-- on the answering worker
function M.arm_echo()
  ipc.receive("ping", function(data)
    local ok, err = ipc.reply("pong", data)
    if not ok then ngx.log(ngx.ERR, "bench: reply failed: ", err) end
  end)
  return true
end

-- request/response (C1): the answering worker returns what it got
function M.arm_call()
  ipc.receive("call_echo", function(data) return data end)
  return true
end

-- on the calling worker: `rounds` ipc.call round trips one at a time (p50,
-- p99, calls/s), then `rounds` more with `inflight` threads calling at once
function M.calls(peer, rounds, inflight, timeout)
  local call = ipc.call
  local rtt = ffi.new("double[?]", rounds)
  local bad, total = 0, 0
  for i = 0, rounds - 1 do
    local data = "c" .. i
    local t = mono()
    local v = call(peer, "call_echo", data, timeout)
    rtt[i] = (mono() - t) * 1e6
    total = total + rtt[i]
    if v ~= data then bad = bad + 1 end
  end
  local list = {}
  for j = 0, rounds - 1 do list[j + 1] = rtt[j] end
  table.sort(list)
  local per = math.ceil(rounds / inflight)
  local t0 = mono()
  local threads = {}
  for k = 1, inflight do
    threads[k] = ngx.thread.spawn(function()
      local b = 0
      for j = 1, per do
        local data = k .. ":" .. j
        if call(peer, "call_echo", data, timeout) ~= data then b = b + 1 end
      end
      return b
    end)
  end
  for k = 1, inflight do
    local ok, b = ngx.thread.wait(threads[k])
    bad = bad + (ok and b or per)
  end
  local secs = mono() - t0
  return {
    complete = bad == 0, bad = bad, rounds = rounds,
    p50_us = list[math.floor((rounds - 1) * 0.5) + 1], p99_us = list[math.floor((rounds - 1) * 0.99) + 1],
    calls_per_s = rounds / (total / 1e6),
    inflight = inflight, inflight_calls_per_s = per * inflight / secs,
  }
end

-- on the timing worker: `rounds` round trips of `size` bytes
function M.pingpong(peer, rounds, size, timeout)
  local pool = pool_of(size)
  local rtt = ffi.new("double[?]", rounds)
  local i, bad_pp, t_sent = 0, 0, 0
  local sema = semaphore.new(0)
  local send = ipc.send
  local sent_data
  ipc.receive("pong", function(data)
    local t = mono()
    if data ~= sent_data then bad_pp = bad_pp + 1 end
    rtt[i] = (t - t_sent) * 1e6
    i = i + 1
    if i == rounds then
      sema:post(1)
      return
    end
    sent_data = pool[band(i, POOL - 1) + 1]
    t_sent = mono()
    local ok, err = send(peer, "ping", sent_data)
    if not ok then error("ping: " .. tostring(err)) end
  end)
  sent_data = pool[1]
  t_sent = mono()
  assert(send(peer, "ping", sent_data))
  local ok = sema:wait(timeout or 60)
  ipc.receive("pong", nil)
  local n = i
  local list = {}
  for j = 0, n - 1 do list[j + 1] = rtt[j] end
  table.sort(list)
  local function pct(q) return n > 0 and list[math.floor((n - 1) * q) + 1] or 0 end
  local sum = 0
  for j = 1, n do sum = sum + list[j] end
  return {
    complete = ok and n == rounds and bad_pp == 0,
    rounds = n, bad = bad_pp,
    p50_us = pct(0.5), p99_us = pct(0.99), min_us = list[1] or 0,
    mean_us = n > 0 and sum / n or 0,
  }
end

return M
