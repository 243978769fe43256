-- Every worker of the generation is reachable from the moment nginx forks it to
-- its exit: alerts to a worker that has not joined wait for it, broadcasts on
-- their way to a worker killed with kill -9 are handled by its replacement, and
-- unicasts to the dead pid by nobody.
local nginx = require "nginx"

local function comment(fmt, ...)
  io.stdout:write("# ", fmt:format(...), "\n")
end

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = (s[v] or 0) + 1 end
  return s
end

describe("a worker that has not joined yet", function()
  local inst

  after_each(function()
    if inst then inst:stop(); inst = nil end
  end)

  -- the SPEC's example: each worker registers its handler, then broadcasts
  local VARIANTS = {
    { "from init_worker", [[
      ipc.receive("hi", function(d) T.add("hi:" .. ngx.worker.pid(), d) end)
      assert(ipc.broadcast("hi", tostring(ngx.worker.pid())))
    ]] },
    { "from ngx.timer.at(0) in init_worker", [[
      ipc.receive("hi", function(d) T.add("hi:" .. ngx.worker.pid(), d) end)
      assert(ngx.timer.at(0, function() assert(ipc.broadcast("hi", tostring(ngx.worker.pid()))) end))
    ]] },
  }

  for _, v in ipairs(VARIANTS) do
    it(("gets every start-up broadcast of 4 workers, broadcasting %s, at 20 starts"):format(v[1]), function()
      local delivered = 0
      for start = 1, 20 do
        inst = nginx.start { workers = 4, init_worker = "local ipc = require 'ngx.ipc'\n" .. v[2] }
        local pids = inst:workers()
        for _, p in ipairs(pids) do
          local got = inst:wait_count("hi:" .. p, 4, 10)
          local want = {}
          for _, q in ipairs(pids) do want[tostring(q)] = 1 end
          assert.are.same(want, set_of(got), ("start %d: the broadcasts worker %d handled"):format(start, p))
          delivered = delivered + #got
        end
        inst:stop()
        inst = nil
      end
      comment("%s: %d of %d broadcasts handled over 20 starts", v[1], delivered, 20 * 16)
    end)
  end

  it("is sent to (by pid and by id) while still in its init_worker, and handles what waited, in order, once it joins", function()
    -- worker id 1 spins in init_worker until told to go on
    inst = nginx.start { workers = 2, min_workers = 1, init_worker = [[
      local ipc = require "ngx.ipc"
      if ngx.worker.id() == 1 then
        T.dict:set("starting", ngx.worker.pid())
        local deadline = os.time() + 30
        while not T.dict:get("go on") and os.time() < deadline do end
      end
      ipc.receive("early", function(d) T.add("early:" .. ngx.worker.pid(), d) end)
    ]] }
    local a = inst:workers()[1]
    local b = inst:wait_for(function()
      return inst:run(a, "return T.dict:get('starting')")
    end, 10, "worker id 1 to start its init_worker")
    assert.are_not.equal(a, b)
    local res = inst:run(a, ([[
      local out = {}
      out[1] = { ipc.send(%d, "early", "one") }
      out[2] = { ipc.broadcast("early", "two") }
      out[3] = { ipc.send(%d, "early", "three") }
      out[4] = { ipc.send_worker(1, "early", "four") }
      out[5] = ipc.workers()
      return out
    ]]):format(b, b))
    for i = 1, 4 do
      assert.are.same({ true }, res[i], "call " .. i .. " to the starting worker")
    end
    assert.are.same({ { id = 0, pid = a } }, res[5], "ipc.workers() while worker id 1 has not joined")
    -- nothing can be handled before it joins
    assert.are.same({}, inst:list("early:" .. b), "handled before it joined")
    inst:run(a, "T.dict:set('go on', true) return true")
    local got = inst:wait_count("early:" .. b, 4, 10)
    assert.are.same({ "one", "two", "three", "four" }, got, "what the starting worker handled")
    assert.are.same({ "two" }, inst:wait_count("early:" .. a, 1, 5), "what the sender handled")
    -- the copies that went to other worker ids in case one of them was b's
    -- are let go quietly: nothing counted as lost
    local s = inst:run(b, "return ipc.stats()")
    assert.are.equal(0, s.dropped.exited, "dropped.exited at the starting worker")
  end)

  it("is not a pid that never was a worker: a send to it is refused", function()
    inst = nginx.start { workers = 2 }
    local a = inst:workers()[1]
    local ok, err = inst:run(a, ("return ipc.send(%d, 'x', 'y')"):format(inst.master))
    assert.is_nil(ok, "a send to the master")
    assert.are.equal(("no such worker: %d"):format(inst.master), err)
  end)
end)

describe("a worker killed with kill -9 under alerts", function()
  local inst

  after_each(function()
    if inst then inst:stop(); inst = nil end
  end)

  for _, nworkers in ipairs { 2, 3 } do
    it(("leaves the broadcasts on their way to it to its replacement, and unicasts to nobody (%d workers)"):format(nworkers), function()
      -- the victim stops reading: what comes next stays in its pipe
      inst = nginx.start { workers = nworkers, init_worker = nginx.STALL_HANDLERS }
      local pids = inst:workers()
      local victim, others = pids[#pids], {}
      for i = 1, #pids - 1 do others[i] = pids[i] end
      local a = others[1]
      inst:stall(a, victim)
      -- every other worker broadcasts twice and sends the victim one unicast
      for _, p in ipairs(others) do
        assert.is_true(inst:run(p, ([[
          assert(ipc.broadcast("m", "b1 from %d"))
          assert(ipc.send(%d, "m", "u from %d"))
          assert(ipc.broadcast("m", "b2 from %d"))
          return true
        ]]):format(p, victim, p, p)))
      end
      assert.are.same({}, inst:list("m:" .. victim), "what the victim handled before it was killed")
      local fresh = inst:kill9(victim)
      local want = {}
      for _, p in ipairs(others) do
        want["b1 from " .. p] = 1
        want["b2 from " .. p] = 1
      end
      local got = inst:wait_count("m:" .. fresh, 2 * #others, 10)
      assert.are.same(want, set_of(got), "what the replacement handled")
      for _, p in ipairs(others) do
        local mine = {}
        for _, g in ipairs(got) do
          if g:find("from " .. p .. "$") then mine[#mine + 1] = g end
        end
        assert.are.same({ "b1 from " .. p, "b2 from " .. p }, mine, "order of " .. p .. "'s broadcasts")
      end
      -- the unicasts to the dead pid were let go, counted and logged
      local s = inst:run(fresh, "return ipc.stats()")
      assert.are.equal(#others, s.dropped.exited, "dropped.exited at the replacement")
      inst:wait_for(function()
        return #inst:log_lines(("%d alerts for workers that exited"):format(#others)) > 0
      end, 5, "the let-go unicasts in error.log")
      -- and a send to the dead pid is refused
      local ok, err = inst:run(a, ("return ipc.send(%d, 'm', 'late')"):format(victim))
      assert.is_nil(ok, "a send to the killed worker")
      assert.truthy(err:find("no such worker: " .. victim, 1, true), err)
      -- nothing else arrived anywhere: the others saw their own broadcasts only
      for _, p in ipairs(others) do
        for _, g in ipairs(inst:list("m:" .. p)) do
          assert.truthy(g:find("^b%d from "), "unexpected alert at " .. p .. ": " .. g)
        end
      end
    end)
  end
end)

describe("32 workers", function()
  local inst

  after_each(function()
    if inst then inst:stop(); inst = nil end
  end)

  it("each reach all the others by broadcast and by send, counted and timed", function()
    inst = nginx.start { workers = 32, start_timeout = 30, init_worker = [[
      local ipc = require "ngx.ipc"
      local me = ngx.worker.pid()
      ipc.receive("all", function(d) T.add("all:" .. me, d) end)
      assert(ipc.broadcast("all", "b" .. ngx.worker.id()))
    ]] }
    local pids = inst:workers()
    assert.are.equal(32, #pids)
    -- a ring of sends: each worker to the next
    for i, p in ipairs(pids) do
      local nxt = pids[i % #pids + 1]
      assert.is_true(inst:run(p, ("return ipc.send(%d, 'all', 's%d')"):format(nxt, i)))
    end
    for i, p in ipairs(pids) do
      local got = set_of(inst:wait_count("all:" .. p, 33, 20))
      for id = 0, 31 do
        assert.are.equal(1, got["b" .. id], ("worker %d: broadcast of worker id %d"):format(p, id))
      end
      local prev = (i - 2) % #pids + 1
      assert.are.equal(1, got["s" .. prev], ("worker %d: the ring's send"):format(p))
    end
    local fds = #nginx.ipc_fds(pids[1])
    comment("32 workers: every worker handled 32 broadcasts and 1 send; worker 1 holds %d ngx_ipc descriptors", fds)
  end)
end)
