-- ipc.cluster, exactly once per worker slot: through reload, quit, kill -9 of a
-- worker and of the reader, and a Redis restart, while a stream of cluster
-- broadcasts flows. The ground truth is the stream itself (XRANGE): every worker
-- id (slot) of an instance, whichever processes held it in turn, must handle each
-- entry of it once, in stream order. Each handled alert is logged to error.log
-- ("cluster-got <worker id> <pid> <data>"), which outlives generations, a worker
-- killed with -9 and a quit; the specs print per slot: handled, lost, duplicates.
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

-- what each worker id of inst handled, in order, and the pids that held it
local function slots_of(inst)
  local slots = {}
  for line in inst:log():gmatch("[^\n]+") do
    local id, pid, d = line:match("cluster%-got (%d+) (%d+) (%S+) %.")
    if id then
      id = tonumber(id)
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

-- every slot of inst handled the whole stream exactly once, in order; prints the counts
local function assert_exactly_once(inst, label, truth, workers)
  local slots = slots_of(inst)
  for id = 0, workers - 1 do
    local s = slots[id] or { list = {}, pids = {} }
    local a = account(s.list, truth)
    local who = {}
    for _, pid in ipairs(s.pids) do
      who[#who + 1] = ("%s (%d)"):format(pid, s.seen[pid])
    end
    comment("%s worker id %d, pid (alerts) %s: handled %d of %d, lost %d, duplicates %d, out of order %d",
      label, id, table.concat(who, " -> "), a.handled, #truth, a.lost, a.dups, a.order)
    assert.are.same({ handled = #truth, lost = 0, dups = 0, stray = 0, order = 0 }, a,
      label .. " worker id " .. id .. " against the stream")
  end
end

-- waits until every slot of inst logged `n` alerts
local function wait_slots(inst, n, workers, timeout)
  nginx.wait_for(function()
    local slots = slots_of(inst)
    for id = 0, workers - 1 do
      local got = slots[id] and #slots[id].list or 0
      if got < n then
        return false, ("worker id %d handled %d of %d"):format(id, got, n)
      end
    end
    return true
  end, timeout or 60, n .. " alerts at every worker id")
end

describe("ipc.cluster exactly once per worker", function()
  local r, insts

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

  -- instances A (publishes) and B (the one things happen to), 2 workers each
  local function two(redis_opts)
    r = redis.start(redis_opts or {})
    for k = 1, 2 do
      insts[k] = nginx.start { workers = 2, init_worker = worker_code(r.addr) }
    end
    for _, inst in ipairs(insts) do
      local w0 = inst:by_id()[0]
      inst:wait_for(function()
        return inst:run(w0, "return ipc.stats().cluster.reader")
      end, 20, "worker 0 of the instance to read the stream")
    end
    return insts[1], insts[2]
  end

  local function handled(inst, pid)
    return inst:run(pid, "return T.dict:get('handled') or 0")
  end

  local function finish(a_inst, h)
    local a = a_inst:workers()[1]
    local res = a_inst:collect(h, 120)[a]
    assert.is_true(res.ok, tostring(res.err))
    assert.is_true(res.v[1], tostring(res.v[2]))
    return res.v[2]
  end

  it("reload twice under a stream of 3,000 broadcasts: each worker id handles every alert once, in order", function()
    local a_inst, b_inst = two()
    local a = a_inst:workers()[1]
    local h = a_inst:spawn({ a }, publisher(3000))
    b_inst:wait_for(function()
      local n = handled(b_inst, b_inst:workers()[1])
      return n >= 1000, n
    end, 30, "1,000 alerts handled at instance B")
    local _, g2 = b_inst:reload()
    b_inst:wait_for(function()
      local n = handled(b_inst, g2[1])
      return n >= 3000, n
    end, 30, "3,000 alerts handled at instance B")
    local _, g3 = b_inst:reload()
    finish(a_inst, h)
    local truth = stream_of(r)
    assert.are.equal(3000, #truth, "entries in the stream")
    wait_slots(b_inst, #truth, 2)
    wait_slots(a_inst, #truth, 2)
    assert_exactly_once(b_inst, "B (reloaded twice)", truth, 2)
    assert_exactly_once(a_inst, "A", truth, 2)
    for _, p in ipairs(g3) do
      local s = b_inst:run(p, "return ipc.stats().cluster")
      assert.are.equal(0, s.redelivered, "redelivered at " .. p)
    end
  end)

  it("reload while an old worker is inside a slow handler: the new one takes its id over after it, and gets what came meanwhile", function()
    local a_inst, b_inst = two()
    local old = b_inst:by_id()
    b_inst:run(old[1], "T.dict:set('slow:' .. ngx.worker.pid(), 0.3) return true")
    local a = a_inst:workers()[1]
    local h = a_inst:spawn({ a }, publisher(3000))
    b_inst:wait_for(function()
      local n = handled(b_inst, old[0])
      return n >= 300, n
    end, 30, "300 alerts handled at instance B")
    local _, g2 = b_inst:reload()
    finish(a_inst, h)
    local truth = stream_of(r)
    wait_slots(b_inst, #truth, 2)
    local new = b_inst:by_id()
    local s1 = b_inst:run(new[1], "return ipc.stats().cluster")
    local s0 = b_inst:run(new[0], "return ipc.stats().cluster")
    comment("new worker 1: skipped %d while its id was not free, redelivered %d; the new reader's rewinds %d",
      s1.skipped, s1.redelivered, s0.rewinds)
    assert.are.equal(2, #g2)
    assert_exactly_once(b_inst, "B (reload, old worker 1 slow)", truth, 2)
    wait_slots(a_inst, #truth, 2)
    assert_exactly_once(a_inst, "A", truth, 2)
  end)

  it("reload from 2 workers to 3 and back under a stream: ids 0 and 1 handle every alert once, id 2 a run of it once", function()
    local a_inst, b_inst = two()
    local a = a_inst:workers()[1]
    local h = a_inst:spawn({ a }, publisher(3000))
    b_inst:wait_for(function()
      local n = handled(b_inst, b_inst:workers()[1])
      return n >= 1000, n
    end, 30, "1,000 alerts handled at instance B")
    b_inst.nworkers = 3
    local _, g2 = b_inst:reload()
    assert.are.equal(3, #g2, "workers of the second generation")
    b_inst:wait_for(function()
      local n = handled(b_inst, g2[1])
      return n >= 3500, n
    end, 30, "3,500 alerts handled at instance B")
    b_inst.nworkers = 2
    b_inst:reload()
    finish(a_inst, h)
    local truth = stream_of(r)
    assert.are.equal(3000, #truth, "entries in the stream")
    wait_slots(b_inst, #truth, 2)
    assert_exactly_once(b_inst, "B (2, 3, then 2 workers)", truth, 2)
    -- id 2 existed in the second generation only: from its first alert on, each once, in order
    local s2 = slots_of(b_inst)[2]
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
    wait_slots(a_inst, #truth, 2)
    assert_exactly_once(a_inst, "A", truth, 2)
  end)

  it("quit in the middle of a stream: each worker id handled a prefix of it, once, in order, and the saved position is not past it", function()
    local a_inst, b_inst = two()
    local a = a_inst:workers()[1]
    local h = a_inst:spawn({ a }, publisher(3000))
    b_inst:wait_for(function()
      local n = handled(b_inst, b_inst:workers()[1])
      return n >= 1000, n
    end, 30, "1,000 alerts handled at instance B")
    local secs, qerr = b_inst:quit(15)
    assert.is_truthy(secs, qerr)
    finish(a_inst, h)
    local truth = stream_of(r)
    local low
    for id, s in pairs(slots_of(b_inst)) do
      local a_ = account(s.list, truth, #s.list)
      comment("B worker id %d (pid %s): handled the first %d of %d, lost %d, duplicates %d, out of order %d",
        id, table.concat(s.pids, " "), #s.list, #truth, a_.lost, a_.dups, a_.order)
      assert.are.same({ handled = #s.list, lost = 0, dups = 0, stray = 0, order = 0 }, a_, "worker id " .. id)
      low = math.min(low or math.huge, #s.list)
    end
    assert.is_true(low >= 500, "alerts handled by every worker id: " .. tostring(low))
    -- the position B saved when it stopped: the last entry every worker id handled, or before it
    local key = r:cli("KEYS", "s:pos:*/" .. b_inst.master .. "/*"):match("[^\n]+")
    local pos = tonumber(r:cli("GET", key):match(" (%d+)"))
    comment("B's saved position: sequence number %d; its workers stopped after %d and more", pos, low)
    assert.is_true(pos <= low, ("saved position %d past the least handled %d"):format(pos, low))
    wait_slots(a_inst, #truth, 2)
    assert_exactly_once(a_inst, "A", truth, 2)
  end)

  it("kill -9 of a worker, then of the reader, in the middle of a stream: their replacements go on exactly where they stopped", function()
    local a_inst, b_inst = two()
    local a = a_inst:workers()[1]
    local h = a_inst:spawn({ a }, publisher(3000))
    local bw = b_inst:by_id()
    b_inst:wait_for(function()
      local n = handled(b_inst, bw[0])
      return n >= 800, n
    end, 30, "800 alerts handled at instance B")
    local new1 = b_inst:kill9(bw[1])
    b_inst:wait_for(function()
      local n = handled(b_inst, bw[0])
      return n >= 2400, n
    end, 30, "1,200 alerts handled at instance B")
    local new0 = b_inst:kill9(bw[0])
    b_inst:wait_for(function()
      return b_inst:run(new0, "return ipc.stats().cluster.reader")
    end, 20, "the replacement of worker 0 to read")
    finish(a_inst, h)
    local truth = stream_of(r)
    wait_slots(b_inst, #truth, 2)
    local again = 0
    for _, p in ipairs({ new0, new1 }) do
      local s = b_inst:run(p, "return ipc.stats().cluster")
      comment("replacement %d: redelivered %d, skipped %d, rewinds %d", p, s.redelivered, s.skipped, s.rewinds)
      again = again + s.redelivered
    end
    -- a worker killed inside a handler: the one at-least-once case, counted (not expected here)
    assert.are.equal(0, again, "alerts a replacement handled again (its predecessor died inside the handler)")
    assert_exactly_once(b_inst, "B (kill -9 of worker 1, then 0)", truth, 2)
    assert_exactly_once(a_inst, "A", truth, 2)
  end)

  it("kill -9 of a worker inside a handler, alerts piled up behind it: that alert is handled again and counted, no other", function()
    local a_inst, b_inst = two()
    local bw = b_inst:by_id()
    b_inst:run(bw[1], "T.dict:set('slow:' .. ngx.worker.pid(), 0.02) return true")
    local a = a_inst:workers()[1]
    local h = a_inst:spawn({ a }, publisher(3000))
    -- worker 1 handles 50 a second: what it took from its pipe waits in its memory
    b_inst:wait_for(function()
      local n = handled(b_inst, bw[0])
      return n >= 300, n
    end, 30, "300 alerts handled at instance B")
    local new1 = b_inst:kill9(bw[1])
    finish(a_inst, h)
    local truth = stream_of(r)
    wait_slots(b_inst, #truth, 2)
    local s1 = b_inst:run(new1, "return ipc.stats().cluster")
    local s0 = b_inst:run(bw[0], "return ipc.stats().cluster")
    local slot1 = slots_of(b_inst)[1]
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

  it("Redis (appendonly yes) restarts in the middle of a stream: each worker id handles every entry once", function()
    local a_inst, b_inst = two({ appendonly = true })
    local a = a_inst:workers()[1]
    local h = a_inst:spawn({ a }, publisher(3000))
    b_inst:wait_for(function()
      local n = handled(b_inst, b_inst:workers()[1])
      return n >= 800, n
    end, 30, "800 alerts handled at instance B")
    r:restart()
    local failed = finish(a_inst, h)
    comment("broadcasts refused while Redis was down, then sent again: %d", failed)
    local truth = stream_of(r)
    assert.is_true(#truth >= 3000, "entries in the stream: " .. #truth)
    wait_slots(b_inst, #truth, 2)
    wait_slots(a_inst, #truth, 2)
    assert_exactly_once(b_inst, "B", truth, 2)
    assert_exactly_once(a_inst, "A", truth, 2)
  end)
end)
