-- ipc.cluster, exactly once per worker slot: through reload, quit, kill -9 of a
-- worker and of the reader, and a Redis restart, while a stream of cluster
-- broadcasts flows. The ground truth is the stream itself (XRANGE): every worker
-- id (slot) of an instance, whichever processes held it in turn, must handle each
-- entry of it once, in stream order. Each handled alert is logged to error.log
-- ("cluster-got <worker id> <pid> <data>", the id followed by "s" in a stream Lua
-- VM), which outlives generations, a worker killed with -9 and a quit; the specs
-- print per slot: handled, lost, duplicates.
local ffi = require "ffi"
local nginx = require "nginx"
local redis = require "redis"

local function comment(fmt, ...)
  io.stdout:write("# ", fmt:format(...), "\n")
end

local function worker_code(addr)
  return ([[
    local ipc = require "ngx.ipc"
    ipc.cluster.configure{ redis = %q, stream = "s", timeout = 5 }
    ipc.receive("c", function(d)
      ngx.log(ngx.ALERT, "cluster-got ", ngx.worker.id(), " ", ngx.worker.pid(), " ", d, " .")
      T.dict:incr("handled", 1, 0)
      -- a worker made slow: each handler sleeps after its work, and alerts pile up behind it
      local slow = T.dict:get("slow:" .. ngx.worker.pid())
      if slow then
        ngx.sleep(slow)
      end
    end)
  ]]):format(addr)
end

-- stream {} Lua (OpenResty): the worker's second Lua VM takes the cluster's alerts too
local STREAM = [[
  init_worker_by_lua_block {
    local ipc = require "ngx.ipc"
    ipc.cluster.configure{ redis = "%s", stream = "s", timeout = 5 }
    ipc.receive("c", function(d)
      ngx.log(ngx.ALERT, "cluster-got ", ngx.worker.id(), "s ", ngx.worker.pid(), " ", d, " .")
    end)
  }
  server {
    listen 127.0.0.1:STREAM_PORT;
    return "x";
  }
]]

local function has_stream_lua()
  local bin = os.getenv("NGX_IPC_T_NGINX") or "/usr/sbin/nginx"
  local ok, out = nginx.sh("nm -D " .. nginx.shq(bin) .. " | grep -c ngx_stream_lua_ffi_sema_post")
  return ok and (tonumber(out:match("%d+")) or 0) > 0
end

-- numbers 1..n; an attempt after nil, err is a new alert "<i>:<attempt>" (Redis may
-- have taken the first one too: both are then entries every slot must handle)
local function publisher(n, pace)
  return ([[
    local failed = 0
    for i = 1, %d do
      local a = 0
      while true do
        local ok, err = ipc.cluster.broadcast("c", i .. ":" .. a)
        if ok then break end
        a = a + 1
        failed = failed + 1
        if failed > 2000 then return nil, "giving up at " .. i .. ": " .. tostring(err) end
        ngx.sleep(0.02)
      end
      %s
    end
    return true, failed
  ]]):format(n, pace or "if i % 10 == 0 then ngx.sleep(0.005) end")
end

-- the data of every entry of stream "s", in order
local function stream_of(r)
  local lines = {}
  for line in r:cli("XRANGE", "s", "-", "+"):gmatch("[^\n]+") do
    lines[#lines + 1] = line
  end
  local out = {}
  -- per entry: its id, then the fields s, i, p, w, n, d, each name and value
  assert(#lines % 13 == 0, "XRANGE output of " .. #lines .. " lines")
  for k = 1, #lines, 13 do
    assert(lines[k + 11] == "d", "field d of the entry at line " .. k)
    out[#out + 1] = lines[k + 12]
  end
  return out
end

-- what each worker id of inst ("0", "1", ...; "0s", ... for stream VMs) handled,
-- in order, and the pids that held it
local function slots_of(inst)
  local slots = {}
  for line in inst:log():gmatch("[^\n]+") do
    local id, pid, d = line:match("cluster%-got (%w+) (%d+) (%S+) %.")
    if id then
      local s = slots[id] or { list = {}, pids = {}, seen = {} }
      slots[id] = s
      s.list[#s.list + 1] = d
      if not s.seen[pid] then
        s.seen[pid] = 0
        s.pids[#s.pids + 1] = pid
      end
      s.seen[pid] = s.seen[pid] + 1
    end
  end
  return slots
end

-- handled, lost, duplicates, out of order, of `list` against `truth` (or its first
-- `prefix` entries)
local function account(list, truth, prefix)
  local want = {}
  local n = prefix or #truth
  for k = 1, n do
    want[truth[k]] = k
  end
  local seen, dups, stray, order, last = {}, 0, 0, 0, 0
  for _, d in ipairs(list) do
    if seen[d] then
      dups = dups + 1
    elseif not want[d] then
      stray = stray + 1
    else
      if want[d] < last then
        order = order + 1
      end
      last = want[d]
    end
    seen[d] = true
  end
  local lost = 0
  for k = 1, n do
    if not seen[truth[k]] then
      lost = lost + 1
    end
  end
  return { handled = #list, lost = lost, dups = dups, stray = stray, order = order }
end

-- the slots of `workers` workers: "0", "1", ...; with `vms`, also "0s", "1s", ...
local function ids(workers, vms)
  local out = {}
  for id = 0, workers - 1 do
    out[#out + 1] = tostring(id)
    if vms then
      out[#out + 1] = id .. "s"
    end
  end
  return out
end

-- every slot of inst handled the whole stream exactly once, in order; prints the counts
local function assert_exactly_once(inst, label, truth, workers, vms)
  local slots = slots_of(inst)
  for _, id in ipairs(ids(workers, vms)) do
    local s = slots[id] or { list = {}, pids = {} }
    local a = account(s.list, truth)
    local who = {}
    for _, pid in ipairs(s.pids) do
      who[#who + 1] = ("%s (%d)"):format(pid, s.seen[pid])
    end
    comment("%s worker id %s, pid (alerts) %s: handled %d of %d, lost %d, duplicates %d, out of order %d",
      label, id, table.concat(who, " -> "), a.handled, #truth, a.lost, a.dups, a.order)
    assert.are.same({ handled = #truth, lost = 0, dups = 0, stray = 0, order = 0 }, a,
      label .. " worker id " .. id .. " against the stream")
  end
end

-- waits until every slot of inst logged `n` alerts
local function wait_slots(inst, n, workers, timeout, vms)
  nginx.wait_for(function()
    local slots = slots_of(inst)
    for _, id in ipairs(ids(workers, vms)) do
      local got = slots[id] and #slots[id].list or 0
      if got < n then
        return false, ("worker id %s handled %d of %d"):format(id, got, n)
      end
    end
    return true
  end, timeout or 60, n .. " alerts at every worker id")
end

-- The slots' file a worker maps (src/ngx/ipc/cluster/slots.ts): 8 doubles of header, then
-- 16 per slot, slot 2 x worker id for the http VM and the next for the stream VM; a
-- slot's double 6 is 1 while a handler of its holder runs.
local SLOT_HEADER, SLOT_SIZE, SLOT_BUSY = 8, 16, 6

-- whether a handler of worker `pid` (id `id`) runs, in either of its Lua VMs
local function slot_busy(pid, id)
  local mf = assert(io.open("/proc/" .. pid .. "/maps"))
  local maps = mf:read("*a")
  mf:close()
  local path = assert(maps:match("(/%S+/cluster1_[%w%-]+)"), "worker " .. pid .. " maps no slots' file")
  local f = assert(io.open(path, "rb"))
  local bytes = f:read("*a")
  f:close()
  local d = ffi.cast("const double *", bytes)
  local any = false
  for slot = 2 * id, 2 * id + 1 do
    local at = SLOT_HEADER + SLOT_SIZE * slot + SLOT_BUSY
    if #bytes >= (at + 1) * 8 then
      any = any or d[at] ~= 0
    end
  end
  return any
end

local function stopped(pid)
  local stat = io.open("/proc/" .. pid .. "/stat")
  local s = stat and stat:read("*a") or ""
  if stat then
    stat:close()
  end
  return s:match("%) (%u)") == "T"
end

-- kill -9 of worker `pid` (id `id`) at a moment it runs no handler: stopped (SIGSTOP)
-- while its slot says so, else let go on and tried again. A kill inside a handler is
-- the at-least-once case, which a spec of its own makes happen on purpose.
local function kill9_outside_handler(inst, pid, id)
  inst:wait_for(function()
    nginx.signal(pid, "STOP")
    nginx.wait_for(function()
      return stopped(pid)
    end, 10, "worker " .. pid .. " to stop")
    if not slot_busy(pid, id) then
      return true
    end
    nginx.signal(pid, "CONT")
    return false, "worker " .. pid .. " inside a handler"
  end, 20, "worker " .. pid .. " outside a handler")
  return inst:kill9(pid)
end

describe("ipc.cluster exactly once per worker", function()
  local r, insts, a_inst, b_inst, h

  before_each(function()
    insts = {}
  end)

  after_each(function()
    for _, inst in ipairs(insts) do
      inst:stop()
    end
    insts = {}
    if r then
      r:stop()
      r = nil
    end
  end)

  -- instances A (publishes) and B (the one things happen to), 2 workers each,
  -- both reading; `before(B)` runs then, and A's worker starts publishing 3,000
  local function stream(redis_opts, before, b_stream)
    r = redis.start(redis_opts or {})
    for k = 1, 2 do
      insts[k] = nginx.start { workers = 2, init_worker = worker_code(r.addr),
        stream = k == 2 and b_stream and STREAM:format(r.addr) or nil }
    end
    for _, inst in ipairs(insts) do
      local w0 = inst:by_id()[0]
      -- beside stream Lua, either VM of worker 0 may take the lease (one per
      -- worker reads): the line it logs then says which worker, not which VM
      inst:wait_for(function()
        return inst:run(w0, "return ipc.stats().cluster.reader")
          or inst:log():find("ngx.ipc: cluster reader: worker " .. w0 .. " reads ", 1, true)
      end, 20, "worker 0 of the instance to read the stream")
    end
    a_inst, b_inst = insts[1], insts[2]
    if before then
      before(b_inst)
    end
    h = a_inst:spawn({ a_inst:workers()[1] }, publisher(3000))
  end

  -- waits until B's workers (pid: a current one, default worker 0) handled n in all
  local function at_b(n, pid)
    b_inst:wait_for(function()
      local got = b_inst:run(pid or b_inst:by_id()[0], "return T.dict:get('handled') or 0")
      return got >= n, got
    end, 30, n .. " alerts handled at instance B")
  end

  -- the publisher's end: the broadcasts refused (and sent again), and the stream
  local function stream_end()
    local res = a_inst:collect(h, 120)[a_inst:workers()[1]]
    assert.is_true(res.ok, tostring(res.err))
    assert.is_true(res.v[1], tostring(res.v[2]))
    return stream_of(r), res.v[2]
  end

  -- A did not move: each of its worker ids handled the whole stream once
  local function check_a(truth)
    wait_slots(a_inst, #truth, 2)
    assert_exactly_once(a_inst, "A", truth, 2)
  end

  local function stats(pid)
    return b_inst:run(pid, "return ipc.stats().cluster")
  end

  it("reload twice under a stream of 3,000 broadcasts: each worker id handles every alert once, in order", function()
    stream()
    at_b(1000)
    local _, g2 = b_inst:reload()
    at_b(3000, g2[1])
    local _, g3 = b_inst:reload()
    local truth = stream_end()
    assert.are.equal(3000, #truth, "entries in the stream")
    wait_slots(b_inst, #truth, 2)
    assert_exactly_once(b_inst, "B (reloaded twice)", truth, 2)
    check_a(truth)
    for _, p in ipairs(g3) do
      assert.are.equal(0, stats(p).redelivered, "redelivered at " .. p)
    end
  end)

  it("reload while an old worker is inside a slow handler: the new one takes its id over after it, and gets what came meanwhile", function()
    stream(nil, function(b)
      b:run(b:by_id()[1], "T.dict:set('slow:' .. ngx.worker.pid(), 0.3) return true")
    end)
    at_b(300)
    b_inst:reload()
    local truth = stream_end()
    wait_slots(b_inst, #truth, 2)
    local new = b_inst:by_id()
    local s1, s0 = stats(new[1]), stats(new[0])
    comment("new worker 1: skipped %d while its id was not free, redelivered %d; the new reader's rewinds %d",
      s1.skipped, s1.redelivered, s0.rewinds)
    assert_exactly_once(b_inst, "B (reload, old worker 1 slow)", truth, 2)
    check_a(truth)
  end)

  it("reload from 2 workers to 3 and back under a stream: ids 0 and 1 handle every alert once, id 2 a run of it once", function()
    stream()
    at_b(1000)
    b_inst.nworkers = 3
    local _, g2 = b_inst:reload()
    assert.are.equal(3, #g2, "workers of the second generation")
    at_b(3500, g2[1])
    b_inst.nworkers = 2
    b_inst:reload()
    local truth = stream_end()
    assert.are.equal(3000, #truth, "entries in the stream")
    wait_slots(b_inst, #truth, 2)
    assert_exactly_once(b_inst, "B (2, 3, then 2 workers)", truth, 2)
    -- id 2 existed in the second generation only: from its first alert on, each once, in order
    local s2 = slots_of(b_inst)["2"]
    assert.is_truthy(s2, "alerts handled by worker id 2")
    local k
    for i, d in ipairs(truth) do
      if d == s2.list[1] then
        k = i
      end
    end
    assert.is_truthy(k, "worker id 2's first alert " .. tostring(s2.list[1]) .. " in the stream")
    for i, d in ipairs(s2.list) do
      assert.are.equal(truth[k + i - 1], d, "worker id 2's alert #" .. i)
    end
    comment("B worker id 2 (pid %s): handled %d alerts, stream entries %d..%d, each once, in order",
      s2.pids[1], #s2.list, k, k + #s2.list - 1)
    check_a(truth)
  end)

  it("quit in the middle of a stream: each worker id handled a prefix of it, once, in order, and the saved position is not past it", function()
    stream()
    at_b(1000)
    local secs, qerr = b_inst:quit(15)
    assert.is_truthy(secs, qerr)
    local truth = stream_end()
    local low
    local slots = slots_of(b_inst)
    for id = 0, 1 do
      local s = slots[tostring(id)] or { list = {}, pids = {} }
      local acc = account(s.list, truth, #s.list)
      comment("B worker id %d (pid %s): handled the first %d of %d, lost %d, duplicates %d, out of order %d",
        id, table.concat(s.pids, " "), #s.list, #truth, acc.lost, acc.dups, acc.order)
      assert.are.same({ handled = #s.list, lost = 0, dups = 0, stray = 0, order = 0 }, acc, "worker id " .. id)
      low = math.min(low or math.huge, #s.list)
    end
    assert.is_true((low or 0) >= 1, "alerts handled by every worker id: " .. tostring(low))
    -- the position B saved when it stopped: the last entry every worker id handled, or before it
    local key = r:cli("KEYS", "s:pos:*/" .. b_inst.master .. "/*"):match("[^\n]+")
    local pos = tonumber(r:cli("GET", key):match(" (%d+)"))
    comment("B's saved position: sequence number %d; its workers stopped after %d and more", pos, low)
    assert.is_true(pos <= low, ("saved position %d past the least handled %d"):format(pos, low))
    check_a(truth)
  end)

  it("kill -9 of a worker, then of the reader, in the middle of a stream: their replacements go on exactly where they stopped", function()
    stream()
    local bw = b_inst:by_id()
    at_b(800)
    local new1 = kill9_outside_handler(b_inst, bw[1], 1)
    at_b(2400)
    local new0 = kill9_outside_handler(b_inst, bw[0], 0)
    b_inst:wait_for(function()
      return stats(new0).reader
    end, 20, "the replacement of worker 0 to read")
    local truth = stream_end()
    wait_slots(b_inst, #truth, 2)
    local again = 0
    for _, p in ipairs({ new0, new1 }) do
      local s = stats(p)
      comment("replacement %d: redelivered %d, skipped %d, rewinds %d", p, s.redelivered, s.skipped, s.rewinds)
      again = again + s.redelivered
    end
    -- each was killed outside a handler: nothing is run again
    assert.are.equal(0, again, "alerts a replacement handled again (its predecessor died inside the handler)")
    assert_exactly_once(b_inst, "B (kill -9 of worker 1, then 0)", truth, 2)
    check_a(truth)
  end)

  it("kill -9 of a worker inside a handler, alerts piled up behind it: that alert is handled again and counted, no other", function()
    stream(nil, function(b)
      b:run(b:by_id()[1], "T.dict:set('slow:' .. ngx.worker.pid(), 0.02) return true")
    end)
    local bw = b_inst:by_id()
    -- worker 1 handles 50 a second: what it took from its pipe waits in its memory
    at_b(300)
    local new1 = b_inst:kill9(bw[1])
    local truth = stream_end()
    wait_slots(b_inst, #truth, 2)
    local s1, s0 = stats(new1), stats(bw[0])
    local slot1 = slots_of(b_inst)["1"]
    local acc = account(slot1.list, truth)
    comment("worker id 1, pid (alerts) %s (%d) -> %s (%d): lost %d, duplicates %d; the replacement's redelivered %d, skipped %d; the reader's rewinds %d",
      slot1.pids[1], slot1.seen[slot1.pids[1]], slot1.pids[2], slot1.seen[slot1.pids[2]], acc.lost, acc.dups,
      s1.redelivered, s1.skipped, s0.rewinds)
    assert.are.equal(0, acc.lost, "alerts worker id 1 never handled")
    assert.are.equal(1, s1.redelivered, "alerts the replacement handled again (its predecessor died inside the handler)")
    assert.are.equal(s1.redelivered, acc.dups, "alerts worker id 1 handled twice")
    assert.are.equal(0, acc.order, "alerts out of order at worker id 1")
    assert.is_true(s0.rewinds >= 1, "the reader sent alerts again: " .. s0.rewinds)
    assert_exactly_once(b_inst, "B", truth, 1)
  end)

  it("Redis restarts empty (no persistence) in the middle of a stream: each worker id handles what follows once, nothing twice", function()
    stream()
    at_b(800)
    r:restart()
    local truth, failed = stream_end()
    comment("entries in the new stream: %d; broadcasts refused while Redis was down, then sent again: %d", #truth, failed)
    assert.is_true(#truth >= 1, "entries after the restart")
    wait_slots(b_inst, #truth, 2)
    for _, inst in ipairs({ a_inst, b_inst }) do
      local slots = slots_of(inst)
      for id = 0, 1 do
        -- the entries of the old stream are not in `truth`: "stray" here
        local acc = account(slots[tostring(id)].list, truth)
        comment("%s worker id %d: handled %d (%d from before the restart), lost %d, duplicates %d, out of order %d",
          inst == a_inst and "A" or "B", id, acc.handled, acc.stray, acc.lost, acc.dups, acc.order)
        assert.are.same({ lost = 0, dups = 0, order = 0 }, { lost = acc.lost, dups = acc.dups, order = acc.order },
          "worker id " .. id .. " against the stream after the restart")
        assert.is_true(acc.stray >= 1, "alerts handled before the restart: " .. acc.stray)
      end
    end
  end)

  it("stream Lua beside http Lua (OpenResty): each VM of each worker id handles every alert once, through kill -9 and reload", function()
    if not has_stream_lua() then
      pending("needs an nginx with stream Lua (NGX_IPC_T_NGINX, NGX_IPC_T_MODULES=none)")
      return
    end
    stream(nil, nil, true)
    local bw = b_inst:by_id()
    at_b(600)
    kill9_outside_handler(b_inst, bw[1], 1)
    at_b(1600)
    kill9_outside_handler(b_inst, bw[0], 0)
    at_b(2600)
    b_inst:reload()
    local truth = stream_end()
    wait_slots(b_inst, #truth, 2, 60, true)
    assert_exactly_once(b_inst, "B (http + stream VMs; kill -9 of 1, of 0, reload)", truth, 2, true)
    check_a(truth)
  end)

  it("Redis (appendonly yes) restarts in the middle of a stream: each worker id handles every entry once", function()
    stream({ appendonly = true })
    at_b(800)
    r:restart()
    local truth, failed = stream_end()
    comment("broadcasts refused while Redis was down, then sent again: %d", failed)
    assert.is_true(#truth >= 3000, "entries in the stream: " .. #truth)
    wait_slots(b_inst, #truth, 2)
    assert_exactly_once(b_inst, "B", truth, 2)
    check_a(truth)
  end)
end)
