-- ngx.ipc.mlcache, the table lua-resty-mlcache takes as opts.ipc, on several real
-- workers. lua-resty-mlcache is not packaged by Debian and make test cannot fetch
-- it, so each worker drives the table through the calls mlcache makes:
-- register_listeners with an instance's events ({ invalidation = { channel,
-- handler }, purge = { channel, handler } }), broadcast(channel, data) from set(),
-- delete() and purge(), and poll(timeout) from update(). The instance below holds
-- its L1 and its events as mlcache does, so the handlers stay alive with it.
-- `make compat` runs lua-resty-mlcache's own suite with the real library.
local nginx = require "nginx"

-- In every worker: INSTANCE(name, tag) makes a stand-in for mlcache.new(name, ...,
-- { ipc = require "ngx.ipc.mlcache" }); its handlers record what they did under
-- "<what>:<tag>:<pid>". SET/DELETE/PURGE do what mlcache's do: their own L1, then
-- the broadcast, whose result they return.
local STANDIN = [[
  local T = require "ngx_ipc_t"
  local mc = require "ngx.ipc.mlcache"
  INSTANCES = {}
  function INSTANCE(name, tag)
    local self = { l1 = {}, name = name }
    self.events = {
      invalidation = {
        channel = "mlcache:invalidations:" .. name,
        handler = function(key)
          self.l1[key] = nil
          T.add("evict:" .. tag .. ":" .. ngx.worker.pid(), key)
        end,
      },
      purge = {
        channel = "mlcache:purge:" .. name,
        handler = function()
          self.l1 = {}
          T.add("purge:" .. tag .. ":" .. ngx.worker.pid(), "purge")
        end,
      },
    }
    local ok, err = mc.register_listeners(self.events)
    if not ok and err ~= nil then
      error("register_listeners: " .. err)
    end
    INSTANCES[tag] = self
    return self
  end
  function SET(tag, key, value)
    local self = INSTANCES[tag]
    self.l1[key] = value
    return mc.broadcast(self.events.invalidation.channel, key)
  end
  function DELETE(tag, key)
    local self = INSTANCES[tag]
    self.l1[key] = nil
    return mc.broadcast(self.events.invalidation.channel, key)
  end
  function PURGE(tag)
    local self = INSTANCES[tag]
    self.l1 = {}
    return mc.broadcast(self.events.purge.channel, "")
  end
  function FILL(tag, key, value)
    INSTANCES[tag].l1[key] = value
    return true
  end
]]

-- opts.init_worker: code run after STANDIN (default: one instance "a" of name "c");
-- false: nothing (the instances come from opts.init)
local function start(opts)
  opts = opts or {}
  local iw = opts.init_worker
  return nginx.start {
    workers = opts.workers or 3,
    init = opts.init,
    init_worker = iw == false and "" or (STANDIN .. (iw or [[ INSTANCE("c", "a") ]])),
  }
end

-- what every worker's instance `tag` holds under `key` in its L1: { [pid] = value or false }
local function l1_of(inst, tag, key)
  local out = {}
  for pid, v in pairs(inst:run_all(("local v = INSTANCES[%q].l1[%q]; if v == nil then return false end; return v")
    :format(tag, key))) do
    out[pid] = v
  end
  return out
end

local function all_equal(pids, value)
  local t = {}
  for _, p in ipairs(pids) do
    t[p] = value
  end
  return t
end

describe("ngx.ipc.mlcache (lua-resty-mlcache's opts.ipc)", function()
  local inst

  after_each(function()
    if inst then inst:stop(); inst = nil end
  end)

  it("set, delete and purge in one worker evict every worker's L1, the sender's included, with no poll", function()
    inst = start()
    local pids = inst:workers()
    inst:run_all([[return FILL("a", "k", "old") and FILL("a", "j", "old")]])
    assert.are.same(all_equal(pids, "old"), l1_of(inst, "a", "k"), "every L1 holds k before set")

    local from = pids[2]
    assert.are.same({ true }, { inst:run(from, [[return SET("a", "k", "new")]]) }, "broadcast's result for set")
    for _, p in ipairs(pids) do
      assert.are.same({ "k" }, inst:wait_count("evict:a:" .. p, 1, 5), "keys evicted in worker " .. p)
    end
    assert.are.same(all_equal(pids, false), l1_of(inst, "a", "k"), "L1 after set (nil everywhere)")
    assert.are.same(all_equal(pids, "old"), l1_of(inst, "a", "j"), "another key stays in every L1")

    assert.are.same({ true }, { inst:run(pids[3], [[return DELETE("a", "j")]]) }, "broadcast's result for delete")
    for _, p in ipairs(pids) do
      assert.are.same({ "k", "j" }, inst:wait_count("evict:a:" .. p, 2, 5), "keys evicted in worker " .. p)
    end
    assert.are.same(all_equal(pids, false), l1_of(inst, "a", "j"), "L1 after delete")

    inst:run_all([[return FILL("a", "x", 1)]])
    assert.are.same({ true }, { inst:run(pids[1], [[return PURGE("a")]]) }, "broadcast's result for purge")
    for _, p in ipairs(pids) do
      assert.are.same({ "purge" }, inst:wait_count("purge:a:" .. p, 1, 5), "purges in worker " .. p)
    end
    assert.are.same(all_equal(pids, false), l1_of(inst, "a", "x"), "L1 after purge")
    assert.are.same({}, inst:error_lines(), "error.log errors")
  end)

  it("poll (what update() calls) returns true at once, with or without a timeout, and events still arrive", function()
    inst = start { workers = 2 }
    local pids = inst:workers()
    local r = inst:run(pids[1], [[
      local mc = require "ngx.ipc.mlcache"
      local a = { mc.poll() }
      local b = { mc.poll(0.3) }
      local t0 = ngx.now()
      for _ = 1, 1000 do assert(mc.poll(1)) end
      ngx.update_time()
      return { a = a, b = b, n = select("#", mc.poll()), took = ngx.now() - t0 }
    ]])
    assert.are.same({ true }, r.a, "poll()")
    assert.are.same({ true }, r.b, "poll(0.3)")
    assert.are.equal(1, r.n, "poll returns one value")
    assert.is_true(r.took < 0.5, "1000 polls with a 1 s timeout took " .. r.took .. " s: poll must not wait")
    inst:run(pids[2], [[return SET("a", "k", "v")]])
    inst:run(pids[1], [[return require("ngx.ipc.mlcache").poll()]])
    assert.are.same({ "k" }, inst:wait_count("evict:a:" .. pids[1], 1, 5), "eviction after a poll")
  end)

  it("several instances: each name hears its own channel, and two instances of one name both hear it", function()
    inst = start { init_worker = [[
      INSTANCE("one", "a")
      INSTANCE("one", "b")
      INSTANCE("two", "c")
    ]] }
    local pids = inst:workers()
    inst:run_all([[return FILL("a", "k", 1) and FILL("b", "k", 1) and FILL("c", "k", 1)]])
    inst:run(pids[1], [[return SET("a", "k", 2)]])
    for _, p in ipairs(pids) do
      assert.are.same({ "k" }, inst:wait_count("evict:a:" .. p, 1, 5), "instance a in worker " .. p)
      assert.are.same({ "k" }, inst:wait_count("evict:b:" .. p, 1, 5), "instance b (same name) in worker " .. p)
    end
    inst:run(pids[2], [[return PURGE("b")]])
    for _, p in ipairs(pids) do
      inst:wait_count("purge:a:" .. p, 1, 5)
      inst:wait_count("purge:b:" .. p, 1, 5)
    end
    -- a marker on "two" after them: once it is handled everywhere, so were they
    inst:run(pids[3], [[return DELETE("c", "marker")]])
    for _, p in ipairs(pids) do
      assert.are.same({ "marker" }, inst:wait_count("evict:c:" .. p, 1, 5), "instance c (other name) in worker " .. p)
    end
    assert.are.same(all_equal(pids, 1), l1_of(inst, "c", "k"), "the other name's L1 kept k")
    assert.are.same({}, inst:error_lines(), "error.log errors")
  end)

  it("a listener that raises is logged and the next one still runs; a collected instance stops listening", function()
    inst = start { workers = 2, init_worker = [[
      INSTANCE("c", "a")
      INSTANCE("c", "b")
      INSTANCE("c", "gone")
      INSTANCE("c", "z")
    ]] }
    local pids = inst:workers()
    local fails = inst:run(pids[1], [[
      local mc = require "ngx.ipc.mlcache"
      local bad = { invalidation = { channel = "mlcache:invalidations:c",
        handler = function(key) error("listener fails on " .. key) end } }
      BAD = bad -- kept alive: a listener lives as long as its events table
      assert(mc.register_listeners(bad))
      INSTANCES.gone = nil
      collectgarbage()
      collectgarbage()
      return true
    ]])
    assert.is_true(fails)
    inst:run(pids[2], [[INSTANCES.gone = nil; collectgarbage(); collectgarbage(); return true]])
    inst:run(pids[2], [[return SET("z", "k", 1)]])
    for _, p in ipairs(pids) do
      assert.are.same({ "k" }, inst:wait_count("evict:z:" .. p, 1, 5), "the last listener in worker " .. p)
      assert.are.same({ "k" }, inst:list("evict:b:" .. p), "an earlier listener in worker " .. p)
      assert.are.same({}, inst:list("evict:gone:" .. p), "the collected instance in worker " .. p)
    end
    local errs = inst:error_lines()
    assert.are.equal(1, #errs, "one error logged (the listener in " .. pids[1] .. "), got:\n" .. table.concat(errs, "\n"))
    assert.is_truthy(errs[1]:find('listener of channel "mlcache:invalidations:c" failed', 1, true), errs[1])
    assert.is_truthy(errs[1]:find("listener fails on k", 1, true), errs[1])
  end)

  it("bad arguments raise naming the function; an alert that is no mlcache event is logged and dropped", function()
    inst = start { workers = 2 }
    local pids = inst:workers()
    local r = inst:run(pids[1], [[
      local mc = require "ngx.ipc.mlcache"
      -- called from a Lua function (not straight from pcall), the error names its line
      local function e(f, ...)
        local ok, err = pcall(function(...) local r = f(...); return r end, ...)
        return ok and "no error" or err
      end
      return {
        e(mc.register_listeners),
        e(mc.register_listeners, "x"),
        e(mc.register_listeners, { invalidation = { channel = 1, handler = print } }),
        e(mc.register_listeners, { invalidation = { channel = "c" } }),
        e(mc.register_listeners, { "x" }),
        e(mc.broadcast, nil, "k"),
        e(mc.broadcast, "c", {}),
        e(mc.broadcast, "c"),
        e(mc.poll, "1"),
        e(mc.poll, {}),
      }
    ]])
    local want = {
      "bad argument #1 to 'register_listeners' (table expected, got nil)",
      "bad argument #1 to 'register_listeners' (table expected, got string)",
      "bad argument #1 to 'register_listeners' (table of { channel = string, handler = function } expected)",
      "bad argument #1 to 'register_listeners' (table of { channel = string, handler = function } expected)",
      "bad argument #1 to 'register_listeners' (table of { channel = string, handler = function } expected)",
      "bad argument #1 to 'broadcast' (string expected, got nil)",
      "bad argument #2 to 'broadcast' (string expected, got table)",
      "bad argument #2 to 'broadcast' (string expected, got nil)",
      "bad argument #1 to 'poll' (number expected, got string)",
      "bad argument #1 to 'poll' (number expected, got table)",
    }
    for i, w in ipairs(want) do
      assert.is_truthy(r[i]:find(w, 1, true), ("case %d: expected %q, got %q"):format(i, w, r[i]))
      assert.is_truthy(r[i]:find("^command:4: "), ("case %d: the error should point at the caller (command:4), got %q"):format(i, r[i]))
    end
    -- an event of an unchecked table never half-registered: nothing was added on "c"
    local mark = inst:log_mark()
    inst:run(pids[2], [[
      local ipc = require "ngx.ipc"
      assert(ipc.broadcast("ngx.ipc.mlcache", "no length"))
      assert(ipc.broadcast("ngx.ipc.mlcache", "99:too short"))
      return true
    ]])
    local dropped = inst:wait_for(function()
      local lines = inst:log_lines("that is no mlcache event", mark)
      return #lines >= 4 and lines
    end, 5, "4 dropped alerts logged (2 per worker)")
    assert.are.equal(4, #dropped, table.concat(dropped, "\n"))
    inst:run(pids[2], [[return SET("a", "k", 1)]])
    for _, p in ipairs(pids) do
      assert.are.same({ "k" }, inst:wait_count("evict:a:" .. p, 1, 5), "worker " .. p .. " still evicts")
    end
  end)

  it("keeps the order of one worker's events, and carries any key byte for byte, over a channel of any length", function()
    local long = string.rep("n", 400)
    inst = start { init_worker = ([[ INSTANCE("c", "a"); INSTANCE(%q, "long") ]]):format(long) }
    local pids = inst:workers()
    local from = pids[1]
    inst:run(from, [[
      for i = 1, 300 do
        local ok, err
        if i % 3 == 0 then ok, err = DELETE("a", "k" .. i) else ok, err = SET("a", "k" .. i, i) end
        assert(ok, err)
        if i % 100 == 0 then ngx.sleep(0.001) end
      end
      return true
    ]])
    local want = {}
    for i = 1, 300 do
      want[i] = "k" .. i
    end
    for _, p in ipairs(pids) do
      assert.are.same(want, inst:wait_count("evict:a:" .. p, 300, 10), "order of evictions in worker " .. p)
    end
    local key = "a:b\0c\255" .. string.rep("x", 5000) .. ":"
    inst:run(pids[2], ([[return SET("long", %q, 1)]]):format(key))
    for _, p in ipairs(pids) do
      assert.are.same({ key }, inst:wait_count("evict:long:" .. p, 1, 5), "the key on a " .. (22 + #long) .. "-byte channel in " .. p)
    end
  end)

  it("instances made in init_by_lua: broadcast there is a no-op; a worker listens from its first call and drops its L1 then", function()
    inst = start {
      workers = 2,
      init = STANDIN .. [[
        INSTANCE("c", "a")
        FILL("a", "k", "from init")
        local ok, err = SET("a", "j", "from init")
        INIT_SET = { ok, err }
      ]],
      init_worker = false,
    }
    local pids = inst:workers()
    local a, b = pids[1], pids[2]
    assert.are.same({ true }, inst:run(a, "return INIT_SET"), "set in init_by_lua")
    assert.are.same(all_equal(pids, "from init"), l1_of(inst, "a", "k"), "L1 inherited from the master")
    -- b listens from its first poll, and then drops what the master left in its L1
    assert.are.same({ true }, { inst:run(b, [[return require("ngx.ipc.mlcache").poll()]]) }, "b's first poll")
    assert.are.same({ "purge" }, inst:wait_count("purge:a:" .. b, 1, 5), "b dropped its L1 when it started listening")
    assert.are.same({ [a] = "from init", [b] = false }, l1_of(inst, "a", "k"), "L1 after b's first poll")
    -- a has not called anything: its set starts its listening too, and reaches b
    inst:run(a, [[return FILL("a", "m", 1)]])
    inst:run(b, [[return FILL("a", "m", 1)]])
    assert.are.same({ true }, { inst:run(a, [[return SET("a", "m", 2)]]) }, "a's set")
    for _, p in ipairs(pids) do
      assert.are.same({ "m" }, inst:wait_count("evict:a:" .. p, 1, 5), "evictions in " .. p)
    end
    assert.are.same({}, inst:error_lines(), "error.log errors")
  end)
end)
