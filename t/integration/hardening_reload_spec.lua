-- Reload under traffic (issue 3, item 2), short version of t/stress/reload.lua
-- (`make stress` runs 100 reloads), and generations kept apart while old
-- workers live on.
local nginx = require "nginx"
local reload = require "t.stress.reload"

describe("nginx -s reload under traffic", function()
  it("10 reloads: no crash, alerts whole, in order and in their generation, old workers gone", function()
    local r = reload.run(10)
    reload.print(r, io.stderr)
    assert.are.same({}, r.failures)
    assert.are.equal(40, r.figures.old_workers, "old workers replaced")
    assert.is_true(r.figures.alerts_received > 1000, "alerts handled: " .. r.figures.alerts_received)
  end)
end)

describe("old workers that outlive several reloads", function()
  local inst

  after_each(function()
    if inst then inst:stop(); inst = nil end
  end)

  -- An old worker lives on as long as it serves something (here: a command
  -- that sleeps); meanwhile the master reloads again and again.  nginx may
  -- give a later cycle a freed cycle's address, so two generations can share
  -- an instance directory (this test sees it happen); a broadcast or send of
  -- the newest generation must still reach its own workers only, and the old
  -- workers send nothing.
  it("never hear broadcasts or sends of a later generation, and send nothing themselves", function()
    inst = nginx.start { workers = 1, init_worker = [[
      local ipc = require "ngx.ipc"
      ipc.receive("x", function(d) T.add("x:" .. ngx.worker.pid(), d) end)
    ]] }
    local GENS = 10
    local pids, dirs, olds = {}, {}, nil
    for g = 1, GENS do
      local p = inst:workers()[1]
      pids[g] = p
      dirs[g] = inst:run(p, "return require('ngx.ipc.shim').dir()")
      -- keeps it alive; on "go" it tries a broadcast of its own
      olds = olds or {}
      olds[g] = g < GENS and inst:spawn({ p }, [[
        assert(T.wait(function() return T.dict:get("go") end, 25), "no go")
        local ok, err = ipc.broadcast("x", "from an old generation")
        ngx.sleep(0.3)
        return { ok = ok, err = err }
      ]])
      if g < GENS then inst:reload() end
    end
    local last = pids[GENS]
    assert.is_true(inst:run(last, "return ipc.broadcast('x', 'from the last generation')"))
    for g = 1, GENS - 1 do
      local ok, err = inst:run(last, ("return ipc.send(%d, 'x', 'to an old one')"):format(pids[g]))
      assert.is_nil(ok, "send from the last generation to the worker of generation " .. g)
      assert.are.equal("no such worker: " .. pids[g], err)
    end
    inst:wait_count("x:" .. last, 1, 5)
    require("socket").sleep(0.3)
    local reached, shared = {}, {}
    for g = 1, GENS - 1 do
      assert.is_true(nginx.alive(pids[g]), "the worker of generation " .. g .. " is still running")
      if #inst:list("x:" .. pids[g], last) > 0 then
        reached[#reached + 1] = ("generation %d (worker %d)"):format(g, pids[g])
      end
      for h = g + 1, GENS do
        if dirs[g] == dirs[h] then
          shared[#shared + 1] = ("generations %d and %d: %s"):format(g, h, dirs[g])
        end
      end
    end
    if #shared > 0 then
      io.stderr:write("instance directories shared (kept apart all the same): ", table.concat(shared, "; "), "\n")
    end
    assert.are.same({}, reached, "old workers that received the last generation's broadcast")
    inst:run(last, "T.dict:set('go', true)")
    for g = 1, GENS - 1 do
      local r = inst:collect(olds[g], 10)[pids[g]]
      assert.is_true(r.ok, "command in the worker of generation " .. g .. ": " .. tostring(r.err))
      local v = r.v[1]
      assert.is_nil(v.ok, "broadcast from the worker of generation " .. g)
      assert.is_truthy(tostring(v.err):find("this worker is shutting down", 1, true), tostring(v.err))
    end
    require("socket").sleep(0.3)
    assert.are.same({ "from the last generation" }, inst:list("x:" .. last, last),
      "alerts at the last generation's worker")
  end)
end)
