-- ngx.ipc.worker_events, the drop-in for lua-resty-worker-events: events posted
-- in one worker are handled in every worker (or, unique, in exactly one), the
-- poster's own handlers have run when post returns, data is any Lua value, and
-- what cannot be encoded is refused with nil, err.  Something that must NOT have
-- happened is checked after a later marker event has arrived in the same worker
-- (events from one poster arrive in order).
local nginx = require "nginx"

-- every worker records what its handlers get: "<list>:<pid>" lists of
-- "source|event|pid|data" lines, data written out by a canonical dumper
local INIT = [[
  local we = require "ngx.ipc.worker_events"
  local me = ngx.worker.pid()
  local function dump(v)
    local t = type(v)
    if t == "table" then
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = k end
      table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
      local out = {}
      for _, k in ipairs(keys) do out[#out + 1] = dump(k) .. "=" .. dump(v[k]) end
      return "{" .. table.concat(out, ",") .. "}"
    elseif t == "string" then
      return string.format("%q", v)
    end
    return tostring(v)
  end
  T.state.dump = dump
  T.state.record = function(list)
    return function(data, event, source, pid)
      T.add(list .. ":" .. me, source .. "|" .. event .. "|" .. tostring(pid) .. "|" .. dump(data))
    end
  end
  T.dict:set("configured-before:" .. me, we.configured())
  -- the shm does not exist: it only tuned the library's transport
  assert(we.configure { shm = "no_such_dict", interval = 0.5, timeout = 1 })
  we.register(function(data, event, source, pid)
    if source == "resty-worker-events" then
      T.add(event .. ":" .. me, tostring(pid))
    else
      T.state.record("all")(data, event, source, pid)
    end
  end)
  -- its own "started" ran inside configure, before this handler existed:
  -- record it from a handler registered first, by source
]]

local INIT_FIRST = [[
  local we = require "ngx.ipc.worker_events"
  local me = ngx.worker.pid()
  we.register(function(data, event, source, pid)
    T.add("own-" .. event .. ":" .. me, tostring(pid))
  end, "resty-worker-events", "started")
]]

local function others(pids, p)
  local out = {}
  for _, q in ipairs(pids) do
    if q ~= p then out[#out + 1] = q end
  end
  return out
end

-- the lines of list `key` that are events of `source`
local function source_lines(inst, key, source)
  local out = {}
  for _, line in ipairs(inst:list(key)) do
    if line:sub(1, #source + 1) == source .. "|" then out[#out + 1] = line end
  end
  return out
end

-- `module`'s _VERSION in worker p is `version`, configured() false before its
-- configure (as INIT recorded it under `before_key`) and true after
local function check_version(inst, p, module, version, before_key)
  local v, before, now = inst:run(p, ([[
    local we = require %q
    return we._VERSION, T.dict:get(%q .. ngx.worker.pid()), we.configured()
  ]]):format(module, before_key))
  assert.are.equal(version, v)
  assert.are.equal(false, before, "configured() before configure in worker " .. p)
  assert.are.equal(true, now, "configured() after configure in worker " .. p)
end

describe("ngx.ipc.worker_events", function()
  local inst, pids

  setup(function()
    inst = nginx.start { workers = 3, init_worker = INIT_FIRST .. INIT }
    pids = inst:workers()
  end)

  teardown(function()
    if inst then inst:stop(); inst = nil end
  end)

  -- posts `marker` from `from` and waits until every pid in `to` has it in list
  -- `all`; what `from` posted earlier has then been handled there too
  local function marker(from, to, name)
    assert.are.equal("done", inst:run(from, ("return (require 'ngx.ipc.worker_events').post('marker', %q)"):format(name)))
    for _, p in ipairs(to) do
      inst:wait_for(function()
        for _, line in ipairs(inst:list("all:" .. p)) do
          if line:find("marker|" .. name .. "|", 1, true) then return true end
        end
        return false, "no marker " .. name .. " in worker " .. p
      end, 10, "marker " .. name .. " in worker " .. p)
    end
  end

  local function lines(p, source)
    return source_lines(inst, "all:" .. p, source)
  end

  it("reports _VERSION 0.3.3 (lua-resty-healthcheck accepts no other) and is configured in every worker", function()
    for _, p in ipairs(pids) do
      check_version(inst, p, "ngx.ipc.worker_events", "0.3.3", "configured-before:")
    end
  end)

  it("handles each worker's own 'started' event inside configure, with its pid", function()
    for _, p in ipairs(pids) do
      local own = inst:list("own-started:" .. p)
      -- its own, and maybe those of workers that configured after it
      local found = false
      for _, pid in ipairs(own) do
        if tonumber(pid) == p then found = true end
      end
      assert.is_true(found, ("worker %d: started events handled: %s"):format(p, table.concat(own, ",")))
    end
  end)

  it("post: the poster's handlers have run when it returns 'done'; every other worker handles it with the poster's pid", function()
    local a = pids[1]
    local ret, seen = inst:run(a, [[
      local we = require "ngx.ipc.worker_events"
      local r = we.post("reach", "hello", "world")
      return r, T.count("all:" .. ngx.worker.pid())
    ]])
    assert.are.equal("done", ret)
    local mine = lines(a, "reach")
    assert.are.same({ ("reach|hello|%d|\"world\""):format(a) }, mine)
    assert.is_true(seen >= 1)
    for _, p in ipairs(others(pids, a)) do
      inst:wait_for(function()
        local got = lines(p, "reach")
        if #got == 1 then return true end
        return false, got
      end, 10, "worker " .. p .. " to handle the event")
      assert.are.same({ ("reach|hello|%d|\"world\""):format(a) }, lines(p, "reach"))
    end
  end)

  it("post_local: only the poster handles it, before returning, with pid nil", function()
    local a, b = pids[1], pids[2]
    assert.are.equal("done", inst:run(b, [[
      return (require "ngx.ipc.worker_events").post_local("local", "only", { 1, 2 })
    ]]))
    assert.are.same({ "local|only|nil|{1=1,2=2}" }, lines(b, "local"))
    marker(b, pids, "after-local")
    assert.are.same({}, lines(a, "local"), "worker " .. a .. " handled a local event of " .. b)
    assert.are.same({}, lines(pids[3], "local"))
  end)

  it("data: tables, numbers, booleans and nil arrive as posted", function()
    local a = pids[2]
    inst:run(a, [[
      local we = require "ngx.ipc.worker_events"
      assert(we.post("values", "t", { x = { 1, "two", true }, [5] = 0.5, s = "\0bin" }))
      assert(we.post("values", "n", 42))
      assert(we.post("values", "b", false))
      assert(we.post("values", "nil", nil))
    ]])
    local want = {
      ("values|t|%d|{5=0.5,\"s\"=\"\\0bin\",\"x\"={1=1,2=\"two\",3=true}}"):format(a),
      ("values|n|%d|42"):format(a),
      ("values|b|%d|false"):format(a),
      ("values|nil|%d|nil"):format(a),
    }
    for _, p in ipairs(pids) do
      inst:wait_for(function()
        return #lines(p, "values") == 4, lines(p, "values")
      end, 10, "4 events in worker " .. p)
      local got = lines(p, "values")
      -- %q writes "\0" as "\0" on LuaJIT: compare with what this Lua makes of it
      for i, line in ipairs(got) do got[i] = line:gsub("\\000", "\\0") end
      assert.are.same(want, got, "worker " .. p)
    end
  end)

  it("a value string.buffer cannot encode: nil, err to the poster, and no worker handles anything", function()
    local a = pids[1]
    local ok, err = inst:run(a, [[
      return (require "ngx.ipc.worker_events").post("bad", "fn", { f = function() end })
    ]])
    assert.is_nil(ok)
    assert.matches('failed posting event "fn" by "bad"', err, 1, true)
    local ok2, err2 = inst:run(a, [[
      return (require "ngx.ipc.worker_events").post("", "x")
    ]])
    assert.is_nil(ok2)
    assert.are.equal("source is required", err2)
    marker(a, pids, "after-bad")
    for _, p in ipairs(pids) do
      assert.are.same({}, lines(p, "bad"), "worker " .. p)
    end
  end)

  it("keeps each poster's order (200 events from each of two workers)", function()
    local a, b = pids[1], pids[3]
    local code = [[
      local we = require "ngx.ipc.worker_events"
      for i = 1, 200 do assert(we.post("order", "e", i)) end
    ]]
    local h = inst:spawn({ a, b }, code)
    inst:collect(h, 30)
    for _, p in ipairs(pids) do
      local got
      inst:wait_for(function()
        got = lines(p, "order")
        return #got == 400, #got .. " events"
      end, 20, "400 events in worker " .. p)
      local last = {}
      for _, line in ipairs(got) do
        local from, n = line:match("^order|e|(%d+)|(%d+)$")
        from, n = tonumber(from), tonumber(n)
        assert.are.equal((last[from] or 0) + 1, n, ("worker %d: from %d after %s"):format(p, from, tostring(last[from])))
        last[from] = n
      end
      assert.are.same({ [a] = 200, [b] = 200 }, last)
    end
  end)

  it("register: all events, one source, some events of a source; unregister says whether it removed one", function()
    local a = pids[1]
    local code = [[
      local we = require "ngx.ipc.worker_events"
      local rec = T.state.record
      T.state.src = rec("lv-source")
      T.state.ev = rec("lv-events")
      T.state.glob = function(data, event, source, pid)
        if source == "levels" then rec("lv-global")(data, event, source, pid) end
      end
      assert(we.register(T.state.glob))
      assert(we.register(T.state.src, "levels"))
      assert(we.register(T.state.ev, "levels", "e1", "e2"))
      return true
    ]]
    inst:run_all(code)
    inst:run(a, [[
      local we = require "ngx.ipc.worker_events"
      for _, e in ipairs { "e1", "e2", "e3" } do assert(we.post("levels", e, 1)) end
      assert(we.post("other", "e1", 1))
    ]])
    marker(a, pids, "levels-1")
    for _, p in ipairs(pids) do
      local function of(list)
        local out = {}
        for _, line in ipairs(inst:list(list .. ":" .. p)) do
          out[#out + 1] = line:match("^[^|]*|([^|]*)|")
        end
        return out
      end
      assert.are.same({ "e1", "e2", "e3" }, of("lv-global"), "global, worker " .. p)
      assert.are.same({ "e1", "e2", "e3" }, of("lv-source"), "source, worker " .. p)
      assert.are.same({ "e1", "e2" }, of("lv-events"), "events, worker " .. p)
    end
    local r = inst:run_all([[
      local we = require "ngx.ipc.worker_events"
      return table.concat({
        tostring(we.unregister(T.state.ev, "levels", "e1")),
        tostring(we.unregister(T.state.ev, "levels", "e1")),
        tostring(we.unregister(T.state.src)),          -- registered by source: not global
        tostring(we.unregister(T.state.src, "levels")),
        tostring(we.unregister(T.state.glob)),
      }, ",")
    ]])
    for p, v in pairs(r) do
      assert.are.equal("true,false,false,true,true", v, "unregister results in worker " .. p)
    end
    inst:run(a, [[
      local we = require "ngx.ipc.worker_events"
      for _, e in ipairs { "e1", "e2", "e3" } do assert(we.post("levels", e, 2)) end
    ]])
    marker(a, pids, "levels-2")
    for _, p in ipairs(pids) do
      assert.are.equal(3, #inst:list("lv-global:" .. p), "global after unregister, worker " .. p)
      assert.are.equal(3, #inst:list("lv-source:" .. p), "source after unregister, worker " .. p)
      local ev = inst:list("lv-events:" .. p)
      assert.are.equal(3, #ev, "events after unregister, worker " .. p)
      assert.matches("^levels|e2|%d+|2$", ev[3])
    end
  end)

  it("register_weak: a handler only the module refers to is collected, one still referred to is called", function()
    local r = inst:run(pids[2], [[
      local we = require "ngx.ipc.worker_events"
      local count = { kept = 0, dropped = 0 }
      T.state.kept = function(_, _, source) count.kept = count.kept + 1 end
      local tmp = function() count.dropped = count.dropped + 1 end
      we.register_weak(T.state.kept, "weak")
      we.register_weak(tmp, "weak")
      assert(we.post("weak", "one"))
      local before = count.kept + count.dropped
      tmp = nil
      collectgarbage()
      collectgarbage()
      assert(we.post("weak", "two"))
      return { before, count.kept, count.dropped }
    ]])
    assert.are.same({ 2, 2, 1 }, r, "{ calls before the collection, calls of the kept one, of the dropped one }")
  end)

  it("a handler that raises is logged with its traceback and the next handler still runs", function()
    local a = pids[3]
    local mark = inst:log_mark()
    local got = inst:run(a, [[
      local we = require "ngx.ipc.worker_events"
      local ran = false
      local function deep() error("boom in handler") end
      local bad = function() deep() end
      local good = function() ran = true end
      we.register(bad, "raise")
      we.register(good, "raise")
      assert(we.post_local("raise", "x"))
      we.unregister(bad, "raise")
      we.unregister(good, "raise")
      return ran
    ]])
    assert.is_true(got)
    local err = table.concat(inst:log_lines("boom in handler", mark), "\n")
    assert.matches("handler failed for event 'x' of source 'raise'", err, 1, true)
    assert.matches("in function 'deep'", inst:log(mark), 1, true)
  end)

  it("an event posted by a handler waits ('recursive') and is handled before the outer post returns", function()
    local a = pids[1]
    local r = inst:run(a, [[
      local we = require "ngx.ipc.worker_events"
      local order = {}
      local h = function(_, event)
        order[#order + 1] = event
        if event == "outer" then
          order[#order + 1] = we.post("nest", "inner")
          order[#order + 1] = we.poll()
        end
      end
      we.register(h, "nest")
      local ret = we.post("nest", "outer")
      we.unregister(h, "nest")
      return table.concat(order, ",") .. ";" .. ret
    ]])
    assert.are.equal("outer,recursive,recursive,inner;done", r)
  end)

  it("unique: exactly one worker handles it, the same value again within timeout is ignored, later handled again", function()
    inst:run_all([[ assert((require "ngx.ipc.worker_events").configure { timeout = 3 }) ]])
    -- 4 values, each posted twice by every worker, all at once
    local post = [[
      local we = require "ngx.ipc.worker_events"
      for i = 1, 4 do
        for _ = 1, 2 do assert(we.post("uniq", "u", i, "key-" .. i)) end
      end
    ]]
    inst:collect(inst:spawn(pids, post), 10)
    for _, p in ipairs(pids) do
      marker(p, pids, "uniq-" .. p)
    end
    local function count()
      local handled, total = {}, 0
      for _, p in ipairs(pids) do
        for _, line in ipairs(lines(p, "uniq")) do
          local v = line:match("|(%d+)$")
          handled[v] = (handled[v] or 0) + 1
          total = total + 1
        end
      end
      return handled, total
    end
    local handled, total = count()
    assert.are.same({ ["1"] = 1, ["2"] = 1, ["3"] = 1, ["4"] = 1 }, handled)
    assert.are.equal(4, total)
    -- past the timeout, the same values are handled once more
    require("socket").sleep(3.2)
    inst:run(pids[1], [[
      local we = require "ngx.ipc.worker_events"
      for i = 1, 4 do assert(we.post("uniq", "u", i, "key-" .. i)) end
    ]])
    marker(pids[1], pids, "uniq-again")
    handled = count()
    assert.are.same({ ["1"] = 2, ["2"] = 2, ["3"] = 2, ["4"] = 2 }, handled)
  end)

  it("event_list: names as keys, _source, an unknown name raises; the module's own list", function()
    local r = inst:run(pids[1], [[
      local we = require "ngx.ipc.worker_events"
      local l = we.event_list("src", "a", "b")
      local ok, err = pcall(function() return l.c end)
      return table.concat({ l._source, l.a, l.b, tostring(ok), tostring(err:find("unknown event", 1, true) ~= nil),
        we.events._source, we.events.started, we.events.stopping }, ",")
    ]])
    assert.are.equal("src,a,b,false,true,resty-worker-events,started,stopping", r)
  end)

  it("configure: checks its options as the library does, raises on a non-table", function()
    local r = inst:run(pids[1], [[
      local we = require "ngx.ipc.worker_events"
      local out = {}
      for _, o in ipairs {
        { timeout = 0 }, { timeout = "x" }, { interval = -1 }, { wait_max = -1 },
        { wait_interval = "no" }, { shm_retries = -1 }, { shm = 5 }, { shm = "other" },
      } do
        local ok, err = we.configure(o)
        out[#out + 1] = tostring(ok) .. ":" .. tostring(err)
      end
      local ok, err = pcall(we.configure, "x")
      out[#out + 1] = tostring(err)
      we.configure { timeout = 1 }
      return table.concat(out, "\n")
    ]])
    assert.are.equal(table.concat({
      'nil:"timeout" must be greater than 0',
      'nil:optional "timeout" option must be a number',
      'nil:"interval" must be greater than or equal to 0',
      'nil:"wait_max" must be greater than or equal to 0',
      'nil:optional "wait_interval" option must be a number',
      'nil:"shm_retries" must be greater than or equal to 0',
      'nil:optional "shm" option must be a string',
      'true:nil',
    }, "\n") .. "\n", r:match("^(.*\n)"))
    assert.matches("bad argument #1 to 'configure' (table expected, got string)", r, 1, true)
  end)

  it("register, register_weak and unregister raise for a callback that is no function, at the caller's line", function()
    local r = inst:run(pids[1], [[
      local we = require "ngx.ipc.worker_events"
      local out = {}
      for _, fn in ipairs { "register", "register_weak", "unregister" } do
        local ok, err = pcall(function() we[fn]("x", "src") end)
        out[#out + 1] = tostring(ok) .. " " .. tostring(err)
      end
      return out
    ]])
    for i, fn in ipairs { "register", "register_weak", "unregister" } do
      assert.matches(("bad argument #1 to '%s' (function expected, got string)"):format(fn), r[i], 1, true)
      assert.matches("^false .*:%d+: bad argument", r[i])
      assert.is_nil(r[i]:find("worker_events.lua", 1, true), "the error points into the module: " .. r[i])
    end
  end)

  it("logged no errors but the handler error provoked above", function()
    local bad = {}
    for _, line in ipairs(inst:error_lines()) do
      if not line:find("boom in handler", 1, true) and not line:find('failed posting event "fn" by "bad"', 1, true) then
        bad[#bad + 1] = line
      end
    end
    assert.are.same({}, bad)
  end)
end)

describe("ngx.ipc.worker_events at a worker's exit", function()
  it("runs each old worker's handlers for 'stopping' on reload (with its own pid)", function()
    local inst = nginx.start { workers = 2, init_worker = INIT }
    local ok, err = pcall(function()
      local old = inst:workers()
      inst:reload()
      -- the stopping events are recorded in the shared dict by the old workers
      for _, p in ipairs(old) do
        inst:wait_for(function()
          local got = inst:list("stopping:" .. p, inst:workers()[1])
          for _, pid in ipairs(got) do
            if tonumber(pid) == p then return true end
          end
          return false, got
        end, 10, "worker " .. p .. " to handle its own stopping event")
      end
    end)
    inst:stop()
    assert(ok, err)
  end)
end)

-- ngx.ipc.worker_events.v2, release 2.x's flavour: post returns true and the
-- poster handles its own copy when it arrives; post_local waits for the next
-- poll (an arriving event of the module, poll() or a zero-delay timer) and runs
-- before the events that arrived. Its handlers are its own: the 1.0.0 flavour is
-- configured in the same workers, each sees only its own events.
local INIT_V2 = [[
  local we2 = require "ngx.ipc.worker_events.v2"
  local me = ngx.worker.pid()
  -- how many events of `source` this worker's v2 handler has recorded
  T.state.count = function(source)
    local n = 0
    for _, line in ipairs(T.list("v2:" .. me)) do
      if line:sub(1, #source + 1) == source .. "|" then n = n + 1 end
    end
    return n
  end
  T.dict:set("v2-configured-before:" .. me, we2.configured())
  we2.register(function(data, event, source, pid)
    T.add("v2:" .. me, source .. "|" .. event .. "|" .. tostring(pid) .. "|" .. tostring(data))
  end)
  -- 2.x accepts interval 0 (no polling timer); the shm is not used
  assert(we2.configure { shm = "no_such_dict", interval = 0 })
  local we1 = require "ngx.ipc.worker_events"
  assert(we1.configure {})
  we1.register(function(data, event, source, pid)
    T.add("v1:" .. me, source .. "|" .. event .. "|" .. tostring(pid))
  end)
]]

describe("ngx.ipc.worker_events.v2", function()
  local inst, pids

  setup(function()
    inst = nginx.start { workers = 2, init_worker = INIT_V2 }
    pids = inst:workers()
  end)

  teardown(function()
    if inst then inst:stop(); inst = nil end
  end)

  local function lines(list, p, source)
    return source_lines(inst, list .. ":" .. p, source)
  end

  -- waits until worker p has n lines of `source` in list `list`, and returns them
  local function wait_lines(list, p, source, n)
    inst:wait_for(function()
      local got = lines(list, p, source)
      return #got >= n, got
    end, 10, ("%d %s events of %s in worker %d"):format(n, list, source, p))
    return lines(list, p, source)
  end

  it("reports _VERSION 2.0.1; each worker handles its own 'started' on arrival, with its pid", function()
    for _, p in ipairs(pids) do
      check_version(inst, p, "ngx.ipc.worker_events.v2", "2.0.1", "v2-configured-before:")
      inst:wait_for(function()
        for _, line in ipairs(lines("v2", p, "resty-worker-events")) do
          if line == ("resty-worker-events|started|%d|nil"):format(p) then return true end
        end
        return false, lines("v2", p, "resty-worker-events")
      end, 10, "worker " .. p .. " to handle its own started event")
    end
  end)

  it("post returns true before any handler ran; every worker, the poster included, handles it with the poster's pid", function()
    local a = pids[1]
    local ret, during = inst:run(a, [[
      local we = require "ngx.ipc.worker_events.v2"
      local r = we.post("reach", "hello", "world")
      return r, T.state.count("reach")
    ]])
    assert.are.equal(true, ret)
    assert.are.equal(0, during, "reach events the poster had handled when post returned")
    for _, p in ipairs(pids) do
      assert.are.same({ ("reach|hello|%d|world"):format(a) }, wait_lines("v2", p, "reach", 1), "worker " .. p)
    end
  end)

  it("post_local returns true, and at the next poll, with no poll() call, runs before the broadcasts posted around it", function()
    local a, b = pids[2], pids[1]
    local r1, r2, r3, during = inst:run(a, [[
      local we = require "ngx.ipc.worker_events.v2"
      local r1 = we.post("order", "request1", "x")
      local r2 = we.post_local("order", "request2", "y")
      local r3 = we.post("order", "request3", "z")
      return r1, r2, r3, T.state.count("order")
    ]])
    assert.are.same({ true, true, true }, { r1, r2, r3 })
    assert.are.equal(0, during, "order events the poster had handled when the posts returned")
    assert.are.same({
      "order|request2|nil|y",
      ("order|request1|%d|x"):format(a),
      ("order|request3|%d|z"):format(a),
    }, wait_lines("v2", a, "order", 3))
    -- the other worker gets the broadcasts only
    assert.are.same({ ("order|request1|%d|x"):format(a), ("order|request3|%d|z"):format(a) },
      wait_lines("v2", b, "order", 2))
  end)

  it("post_local alone is handled by the zero-delay timer; poll() runs it at once", function()
    local a = pids[1]
    local r, during = inst:run(a, [[
      local we = require "ngx.ipc.worker_events.v2"
      local r = we.post_local("alone", "timer", 1)
      return r, T.state.count("alone")
    ]])
    assert.are.equal(true, r)
    assert.are.equal(0, during, "handled inside post_local")
    assert.are.same({ "alone|timer|nil|1" }, wait_lines("v2", a, "alone", 1))
    local polled = inst:run(a, [[
      local we = require "ngx.ipc.worker_events.v2"
      assert(we.post_local("polled", "now", 2) == true)
      local before = T.state.count("polled")
      local r = we.poll()
      return before .. "," .. tostring(r) .. "," .. T.state.count("polled")
    ]])
    assert.are.equal("0,done,1", polled)
    assert.are.same({}, lines("v2", pids[2], "alone"))
    assert.are.same({}, lines("v2", pids[2], "polled"))
  end)

  it("unique: one worker handles it, whichever worker posts it", function()
    inst:collect(inst:spawn(pids, [[
      local we = require "ngx.ipc.worker_events.v2"
      assert(we.post("uniq", "u", "once", "the-key") == true)
    ]]), 10)
    -- a broadcast after it from each worker: once it is in, the unique one is too
    for _, p in ipairs(pids) do
      inst:run(p, [[ assert((require "ngx.ipc.worker_events.v2").post("uniq-mark", "m")) ]])
    end
    local total = 0
    for _, p in ipairs(pids) do
      wait_lines("v2", p, "uniq-mark", #pids)
      total = total + #lines("v2", p, "uniq")
    end
    assert.are.equal(1, total)
  end)

  it("has its own handlers and alerts: the 1.0.0 flavour in the same workers sees none of its events, nor it theirs", function()
    local a = pids[1]
    inst:run(a, [[
      assert((require "ngx.ipc.worker_events").post("from-v1", "e") == "done")
      assert((require "ngx.ipc.worker_events.v2").post("from-v2", "e") == true)
    ]])
    for _, p in ipairs(pids) do
      wait_lines("v2", p, "from-v2", 1)
      wait_lines("v1", p, "from-v1", 1)
      assert.are.same({}, lines("v2", p, "from-v1"), "worker " .. p)
      assert.are.same({}, lines("v1", p, "from-v2"), "worker " .. p)
    end
  end)

  it("bad arguments: nil, err for names and data as 2.x returns them, raises for a callback or options of the wrong type", function()
    local r = inst:run(pids[1], [[
      local we = require "ngx.ipc.worker_events.v2"
      local out = {}
      local function add(...) out[#out + 1] = table.concat({ tostring(select(1, ...)), tostring(select(2, ...)) }, ":") end
      add(we.post("", "x"))
      add(we.post("s", nil))
      add(we.post_local(nil, "x"))
      add(we.post_local("s", ""))
      add(we.post("bad", "fn", { f = function() end }))
      add(pcall(we.register, "x"))
      add(pcall(we.unregister, 1))
      add(pcall(we.configure, "x"))
      add(we.configure { timeout = 0 })
      return table.concat(out, "\n")
    ]])
    local got = {}
    for line in r:gmatch("[^\n]+") do got[#got + 1] = line end
    assert.are.equal(9, #got, r)
    assert.are.equal("nil:source is required", got[1])
    assert.are.equal("nil:event is required", got[2])
    assert.are.equal("nil:source is required", got[3])
    assert.are.equal("nil:event is required", got[4])
    assert.matches('^nil:failed posting event "fn" by "bad"', got[5])
    assert.matches("^false:.*bad argument #1 to 'register' %(function expected, got string%)", got[6])
    assert.matches("^false:.*bad argument #1 to 'unregister' %(function expected, got number%)", got[7])
    assert.matches("^false:.*bad argument #1 to 'configure' %(table expected, got string%)", got[8])
    assert.are.equal('nil:"timeout" must be greater than 0', got[9])
  end)

  it("logged no errors but the refused post above", function()
    local bad = {}
    for _, line in ipairs(inst:error_lines()) do
      if not line:find('failed posting event "fn" by "bad"', 1, true) then
        bad[#bad + 1] = line
      end
    end
    assert.are.same({}, bad)
  end)
end)
