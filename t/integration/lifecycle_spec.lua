-- Reload, quit and a killed worker.
local nginx = require "nginx"
local sleep = require("socket").sleep

-- every worker records "<sender>|<data>" for alerts named "rec" under "rec:<pid>"
local RECORDER = [[
  local ipc = require "ngx.ipc"
  local T = require "ngx_ipc_t"
  local me = ngx.worker.pid()
  ipc.receive("rec", function(data)
    T.add("rec:" .. me, ipc.sender .. "|" .. data)
  end)
]]

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

local function senders(records)
  local out = {}
  for _, r in ipairs(records) do
    out[#out + 1] = tonumber(r:match("^(%d+)|"))
  end
  return out
end

describe("nginx -s reload", function()
  local inst

  after_each(function()
    if inst then inst:stop(); inst = nil end
  end)

  it("gives new workers that send and receive, and no alert crosses generations", function()
    inst = nginx.start { workers = 2, init_worker = RECORDER }
    local old = inst:workers()
    -- keep each old worker busy across the reload; on "go" it broadcasts and
    -- sends to every new-generation worker, then lingers so late deliveries show
    local busy = inst:spawn(old, [[
      T.add("started", ngx.worker.pid())
      assert(T.wait(function() return T.dict:get("go") end, 15), "no go")
      local me, res = ngx.worker.pid(), { exiting = ngx.worker.exiting(), sends = {} }
      local newer = {}
      for _, k in ipairs(T.dict:get_keys(0)) do
        local pid = k:match("^w:(%d+)$")
        if pid and T.dict:get(k) ~= T.gen then newer[#newer + 1] = tonumber(pid) end
      end
      res.newer = newer
      res.bcast = ipc.broadcast("rec", "old broadcast")
      for _, p in ipairs(newer) do
        local ok, err = ipc.send(p, "rec", "old send")
        res.sends[#res.sends + 1] = { pid = p, ok = ok, err = err }
      end
      ngx.sleep(0.5)
      return res
    ]])
    inst:wait_count("started", #old, 5)

    local before, new = inst:reload()
    assert.are.same(old, before)
    assert.are.equal(2, #new, "new workers")
    local old_set, new_set = set_of(old), set_of(new)
    for _, p in ipairs(new) do
      assert.is_nil(old_set[p], "new worker " .. p .. " reuses an old pid")
    end
    for _, p in ipairs(old) do
      assert.is_true(nginx.alive(p), "old worker " .. p .. " kept alive by its pending command")
    end

    -- the new generation: a broadcast, a send between new workers, and a send
    -- to every old worker (which must fail: they are not of this generation)
    local new_res = inst:run_all(([[
      local res = { bcast = ipc.broadcast("rec", "new broadcast"), to_old = {} }
      for _, p in ipairs(%s) do
        local ok, err = ipc.send(p, "rec", "new to old")
        res.to_old[#res.to_old + 1] = { pid = p, ok = ok, err = err }
      end
      local other = %s
      res.peer = ipc.send(other[1] == ngx.worker.pid() and other[2] or other[1], "rec", "new peer send")
      return res
    ]]):format(nginx.lua_list(old), nginx.lua_list(new)), 10, new)
    inst:run(new[1], "T.dict:set('go', true)")

    local old_res = inst:collect(busy, 20)
    for p, r in pairs(old_res) do
      assert.is_true(r.ok, "command in old worker " .. p .. ": " .. tostring(r.err))
      local v = r.v[1]
      assert.is_true(v.exiting, "old worker " .. p .. " was exiting when it sent")
      assert.are.same(new, (function() table.sort(v.newer) return v.newer end)(), "new pids seen by old worker " .. p)
      for _, s in ipairs(v.sends) do
        assert.is_not_true(s.ok, ("send from old worker %d to new worker %d returned true"):format(p, s.pid))
      end
    end
    for p, r in pairs(new_res) do
      assert.is_true(r.bcast, "broadcast from new worker " .. p)
      assert.is_true(r.peer, "send between new workers from " .. p)
      for _, s in ipairs(r.to_old) do
        assert.is_not_true(s.ok, ("send from new worker %d to old worker %d returned true"):format(p, s.pid))
      end
    end

    -- each new worker hears both new broadcasts and its peer's send
    for _, p in ipairs(new) do
      inst:wait_count("rec:" .. p, 3, 5)
    end
    sleep(0.5)
    for _, p in ipairs(new) do
      local recs = inst:list("rec:" .. p)
      assert.are.equal(3, #recs, "alerts at new worker " .. p .. ": " .. table.concat(recs, ", "))
      for _, s in ipairs(senders(recs)) do
        assert.is_true(new_set[s] == true, ("new worker %d got an alert from %d (old: %s)"):format(p, s, table.concat(old, ",")))
      end
    end
    for _, p in ipairs(old) do
      for _, s in ipairs(senders(inst:list("rec:" .. p))) do
        assert.is_true(old_set[s] == true, ("old worker %d got an alert from new worker %d"):format(p, s))
      end
    end
    inst:wait_for(function()
      return not nginx.alive(old[1]) and not nginx.alive(old[2])
    end, 10, "old workers to exit")
  end)
end)

describe("nginx -s quit", function()
  local inst

  after_each(function()
    if inst then inst:stop(); inst = nil end
  end)

  for _, nworkers in ipairs { 2, 4 } do
    it(("completes within 5 s with %d workers after alerts flowed, and removes the workers' pipes"):format(nworkers), function()
      inst = nginx.start { workers = nworkers, init_worker = RECORDER }
      local pids = inst:workers()
      inst:run_all("assert(ipc.broadcast('rec', 'x'))")
      for _, p in ipairs(pids) do
        inst:wait_count("rec:" .. p, nworkers, 5)
      end
      local pipes = {}
      for _, p in ipairs(pids) do
        for _, fd in ipairs(nginx.ipc_fds(p)) do
          local path = fd:match("%-> (/.*)$")
          -- worker ids' pipes (its own, which its pid's name links to, and
          -- those it sent to)
          if path and path:match("/w%d+$") and not pipes[path] then
            pipes[path] = true
            pipes[#pipes + 1] = path
          end
        end
      end
      local took, err = inst:quit(10)
      assert.is_truthy(took, err)
      assert.is_true(took < 5, ("nginx -s quit took %.2f s"):format(took))
      for _, p in ipairs(pids) do
        assert.is_false(nginx.alive(p), "worker " .. p .. " still running after quit")
      end
      assert.are.equal(nworkers, #pipes, "pipes the workers had open")
      for _, path in ipairs(pipes) do
        assert.is_nil(io.open(path, "r"), "pipe left behind: " .. path)
      end
    end)
  end
end)

describe("nginx -s quit while a handler yields", function()
  local inst

  after_each(function()
    if inst then inst:stop(); inst = nil end
  end)

  it("lets the sleeping handler finish and completes within 5 s without a crash", function()
    inst = nginx.start { workers = 2, init_worker = RECORDER .. [[
      ipc.receive("slow", function(d)
        T.add("slow:" .. me, "started")
        ngx.sleep(1.5)
        ngx.log(ngx.NOTICE, "ngx_ipc_t: the slow handler finished")
      end)
    ]] }
    local pids = inst:workers()
    local a, b = pids[1], pids[2]
    inst:run(a, ("assert(ipc.send(%d, 'slow', '')) assert(ipc.send(%d, 'rec', 'queued'))"):format(b, b))
    inst:wait_count("slow:" .. b, 1, 5)
    local took, err = inst:quit(10)
    assert.is_truthy(took, err)
    assert.is_true(took < 5, ("nginx -s quit took %.2f s"):format(took))
    assert.are.same({}, inst:crashes(), "workers that crashed")
    assert.are.equal(1, #inst:log_lines("ngx_ipc_t: the slow handler finished"), "the handler finished before exit")
  end)
end)

describe("a worker killed with kill -9", function()
  local inst

  after_each(function()
    if inst then inst:stop(); inst = nil end
  end)

  for _, nworkers in ipairs { 2, 4 } do
    it(("is replaced by one that receives broadcasts and sends, and sends to the dead pid fail (%d workers)"):format(nworkers), function()
      inst = nginx.start { workers = nworkers, init_worker = RECORDER }
      local pids = inst:workers()
      local a, victim = pids[1], pids[#pids]
      inst:run(a, ("assert(ipc.send(%d, 'rec', 'before'))"):format(victim))
      inst:wait_count("rec:" .. victim, 1, 5)
      -- a's list of pipes is cached from here: the new worker's pipe must
      -- reach it through the directory watch
      assert.is_true(inst:run(a, "return ipc.broadcast('rec', 'list cached')"))
      inst:wait_count("rec:" .. victim, 2, 5)

      local fresh = inst:kill9(victim)
      assert.is_false(nginx.alive(victim))
      local now = inst:workers()
      assert.are.equal(nworkers, #now, "workers after respawn")

      local ok, err = inst:run(a, ("return ipc.send(%d, 'rec', 'to the dead')"):format(victim))
      assert.is_nil(ok, "send to the killed worker " .. victim)
      assert.are.equal("string", type(err))

      assert.is_true(inst:run(a, "return ipc.broadcast('rec', 'after kill')"))
      for _, p in ipairs(now) do
        local recs = inst:wait_for(function()
          for _, r in ipairs(inst:list("rec:" .. p)) do
            if r == a .. "|after kill" then return true end
          end
          return false
        end, 5, "worker " .. p .. " to hear the broadcast after the kill")
      end
      -- the new worker sends, and is sent to
      assert.is_true(inst:run(fresh, ("return ipc.send(%d, 'rec', 'from the new one')"):format(a)))
      assert.is_true(inst:run(a, ("return ipc.send(%d, 'rec', 'to the new one')"):format(fresh)))
      inst:wait_for(function()
        local got = set_of(inst:list("rec:" .. a))
        return got[fresh .. "|from the new one"]
      end, 5, "the new worker's alert at " .. a)
      inst:wait_for(function()
        local got = set_of(inst:list("rec:" .. fresh))
        return got[a .. "|to the new one"]
      end, 5, "an alert at the new worker " .. fresh)
      sleep(0.2)
      local after_kill = 0
      for _, r in ipairs(inst:list("rec:" .. fresh)) do
        if r == a .. "|after kill" then after_kill = after_kill + 1 end
      end
      assert.are.equal(1, after_kill, "copies of the broadcast at the new worker")
      assert.are.same({}, inst:error_lines())
    end)
  end
end)
