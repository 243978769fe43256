-- kill -9 under traffic (issue 3, item 3), short version of t/stress/kill.lua
-- (`make stress` runs 20 kills), and a sender killed in the middle of a large
-- alert.
local nginx = require "nginx"
local kill = require "t.stress.kill"

describe("kill -9 of workers under traffic", function()
  it("6 kills: senders get nil, err for the dead, pipes removed, the respawned hear every broadcast sent after they started", function()
    local r = kill.run(6)
    kill.print(r, io.stderr)
    assert.are.same({}, r.failures)
    assert.is_true(r.figures.refused_dead > 0, "sends to killed workers refused")
  end)
end)

describe("a sender killed in the middle of a large alert", function()
  local inst

  after_each(function()
    if inst then inst:stop(); inst = nil end
  end)

  -- the receiver has the first packets of an alert that will never be
  -- completed: what it holds for it must be let go, or it would count
  -- against receive_backlog (and stay in memory) for the receiver's lifetime
  it("leaves nothing held by the receiver, which keeps receiving large alerts", function()
    inst = nginx.start { workers = 3, init_worker = [[
      local ipc = require "ngx.ipc"
      ipc.receive("x", function(d) T.add("x:" .. ngx.worker.pid(), #d) end)
    ]] }
    local pids = inst:workers()
    local a, b, c = pids[1], pids[2], pids[3]
    local function partial_and_truncated()
      local st = inst:run(b, "local s = ipc.stats() return { s.receive_partial, s.dropped.truncated }")
      return st[1], st[2]
    end
    local MiB = 1024 * 1024
    for round = 1, 2 do
      -- a queues 100 MiB for b and dies once part of it is in b's pipe. b is stopped
      -- meanwhile, so its pipe (1 MiB) takes only part of the alert, and however fast
      -- the machine, b never gets all of it before a dies.
      nginx.signal(b, "STOP")
      assert.is_true(inst:run(a, ("return ipc.send(%d, 'x', string.rep('z', 100 * 1024 * 1024))"):format(b), 20))
      inst:wait_for(function()
        local queued = inst:run(a, ("return ipc.stats().backlog[%d] or 0"):format(b))
        return queued < 100 * MiB, queued .. " bytes queued"
      end, 20, "the sender to write part of its alert")
      local fresh = inst:kill9(a)
      nginx.signal(b, "CONT")
      for i, p in ipairs(pids) do
        if p == a then pids[i] = fresh end
      end
      a = fresh
      -- the dead sender's half goes at the receiver's next sweep (once a second, and
      -- only with its pipe empty, so that nothing of it is still to come), counted
      inst:wait_for(function()
        local partial, truncated = partial_and_truncated()
        return partial == 0 and truncated >= round, ("%d bytes still held, %d truncated"):format(partial, truncated)
      end, 20, "the receiver to let the dead sender's alert go, counted as truncated")
    end
    -- a live worker's 40 MiB alert still gets through
    assert.is_true(inst:run(c, ("return ipc.send(%d, 'x', string.rep('y', 40 * 1024 * 1024))"):format(b), 20))
    local ok = pcall(inst.wait_count, inst, "x:" .. b, 1, 10)
    local s = inst:run(b, [[
      local s = ipc.stats()
      return { partial = s.receive_partial, dropped = s.dropped.out_of_memory, truncated = s.dropped.truncated }
    ]])
    assert.is_true(ok, ("the live worker's 40 MiB alert was not handled (receive_partial %d bytes, "
      .. "dropped for lack of memory %d)"):format(s.partial, s.dropped))
    assert.are.equal(0, s.partial, "bytes the receiver holds after the live worker's alert")
    assert.are.equal(2, s.truncated, "dead senders' alerts counted as truncated")
  end)
end)
