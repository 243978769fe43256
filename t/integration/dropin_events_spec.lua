-- ngx.ipc.events and ngx.ipc.events.compat, the drop-ins for lua-resty-events'
-- resty.events and resty.events.compat, on a real nginx with several workers:
-- targets "all", "current" and unique hashes, wildcards, unsubscribe, any Lua value
-- as data, de-duplication of unique events, order, and the compat API.
-- Every "did not happen" is asserted after a later marker event has arrived
-- through the same path.
local nginx = require "nginx"

local seq = 0
local function tag(s)
  seq = seq + 1
  return (s or "t") .. seq
end

-- every worker records what its subscriptions get under "ev:<worker id>":
-- "<subscription>|<source>|<event>|<wid>|<data, serialized>"
local INIT = [[
  _G.ev = require("ngx.ipc.events").new {
    listening = "unix:/nonexistent/events.sock",
    unique_timeout = 0.5,
    max_payload_len = 300,
  }
]]

local INIT_WORKER = [[
  local ev = _G.ev
  _G.ready_before = ev:is_ready()
  assert(ev:init_worker())
  _G.ready_after = ev:is_ready()
  local me = ngx.worker.id()
  local function rec(name)
    return function(data, event, source, wid)
      T.add("ev:" .. me, table.concat({ name, source, event, tostring(wid), T.serialize(data) }, "|"))
    end
  end
  _G.ids = {
    any = ev:subscribe("*", "*", rec("any")),
    src = ev:subscribe("src", "*", rec("src")),
    src_e = ev:subscribe("src", "e", rec("src.e")),
  }
  ev:subscribe("uq", "*", function(data, event, source, wid)
    T.add("uq:" .. data, me)
  end)
  ev:subscribe("boom", "*", function() error("handler raised on purpose") end)
  ev:subscribe("boom", "*", function(data) T.add("after-boom:" .. me, data) end)
]]

-- entries of `list` that contain `plain`
local function grep(list, plain)
  local out = {}
  for _, s in ipairs(list) do
    if s:find(plain, 1, true) then
      out[#out + 1] = s
    end
  end
  return out
end

local function show(list)
  return "{" .. table.concat(list, ", ") .. "}"
end

describe("ngx.ipc.events", function()
  local inst, by_id, ids

  setup(function()
    inst = nginx.start { workers = 3, init = INIT, init_worker = INIT_WORKER }
    by_id = inst:by_id()
    ids = {}
    for id in pairs(by_id) do
      ids[#ids + 1] = id
    end
    table.sort(ids)
  end)

  teardown(function()
    if inst then inst:stop() end
  end)

  -- waits until worker `id` has recorded an entry containing `plain`; its list
  local function wait_entry(id, plain)
    return inst:wait_for(function()
      local list = inst:list("ev:" .. id)
      if #grep(list, plain) > 0 then
        return list
      end
      return false, "worker " .. id .. " has " .. show(list)
    end, 10, "worker " .. id .. " to handle an event with " .. plain)
  end

  -- publishes a marker "all" event from worker `from` and waits until every
  -- worker handled it: what was published before it from there has arrived
  local function marker(from)
    local m = tag("marker")
    assert(inst:run(by_id[from], ("return ev:publish('all', 'mark', %q, 'x')"):format(m)))
    for _, id in ipairs(ids) do
      wait_entry(id, "|mark|" .. m .. "|")
    end
  end

  it("is not ready inside init_worker, ready afterwards", function()
    for _, id in ipairs(ids) do
      local before, after, now = inst:run(by_id[id], "return ready_before, ready_after, ev:is_ready()")
      assert.is_false(before, "is_ready() before init_worker")
      assert.is_false(after, "is_ready() right after init_worker, in the same turn of the loop")
      assert.is_true(now, "is_ready() later, in worker " .. id)
    end
  end)

  it("'all' reaches every worker with data, event, source and the publisher's worker id", function()
    local e = tag("all")
    assert(inst:run(by_id[1], ("return ev:publish('all', 'src', %q, { n = 1, list = { 'a', 'b' } })"):format(e)))
    for _, id in ipairs(ids) do
      local list = wait_entry(id, "|" .. e .. "|")
      local got = grep(list, "|src|" .. e .. "|1|")
      assert.are.equal(2, #got, "worker " .. id .. ": the '*' and 'src' subscriptions, with wid 1: " .. show(list))
      assert.truthy(got[1]:find('["n"]=1', 1, true), got[1])
      assert.truthy(got[1]:find('["list"]={[1]="a",[2]="b"}', 1, true), got[1])
    end
  end)

  it("calls '*' '*' subscriptions first, then source '*', then source and event", function()
    local before = #inst:list("ev:0")
    assert(inst:run(by_id[0], "return ev:publish('all', 'src', 'e', 'order')"))
    local list = inst:wait_for(function()
      local l = inst:list("ev:0")
      return #l >= before + 3 and l
    end, 10, "three handlers of src/e in worker 0")
    local names = {}
    for i = before + 1, before + 3 do
      names[#names + 1] = list[i]:match("^[^|]+")
    end
    assert.are.same({ "any", "src", "src.e" }, names)
  end)

  it("wildcards: other/e reaches only '*' '*', src/x only '*' '*' and src '*'", function()
    local x = tag("x")
    assert(inst:run(by_id[2], ("return ev:publish('all', 'other', 'e', %q)"):format(x)))
    assert(inst:run(by_id[2], ("return ev:publish('all', 'src', %q, 'y')"):format(x)))
    marker(2)
    for _, id in ipairs(ids) do
      local list = inst:list("ev:" .. id)
      local other = grep(list, "|other|e|")
      local mine = grep(other, x)
      assert.are.equal(1, #mine, "worker " .. id .. ": other/e once: " .. show(list))
      assert.truthy(mine[1]:find("^any|"), mine[1])
      local src = grep(list, "|src|" .. x .. "|")
      assert.are.equal(2, #src, "worker " .. id .. ": src/" .. x .. " twice: " .. show(src))
      assert.are.same({ "any", "src" }, { src[1]:match("^[^|]+"), src[2]:match("^[^|]+") })
    end
  end)

  it("'current' is handled only by the publisher (wid nil), before an 'all' published after it", function()
    local c, a = tag("cur"), tag("all")
    assert(inst:run(by_id[1], ([[
      assert(ev:publish("current", "src", %q, "local"))
      assert(ev:publish("all", "src", %q, "remote"))
      return true
    ]]):format(c, a)))
    local list = wait_entry(1, "|" .. a .. "|")
    local first_c, first_a
    for i, s in ipairs(list) do
      if not first_c and s:find("|" .. c .. "|", 1, true) then first_c = i end
      if not first_a and s:find("|" .. a .. "|", 1, true) then first_a = i end
    end
    assert.truthy(first_c, "worker 1 handled the 'current' event: " .. show(list))
    assert.is_true(first_c < first_a, "'current' before the later 'all': " .. show(list))
    assert.truthy(list[first_c]:find("|src|" .. c .. "|nil|", 1, true), list[first_c])
    marker(1)
    for _, id in ipairs({ 0, 2 }) do
      local other = grep(inst:list("ev:" .. id), "|" .. c .. "|")
      assert.are.same({}, other, "worker " .. id .. " must not get worker 1's 'current' event")
    end
  end)

  it("'current' passes the data itself, unencodable values included", function()
    local same = inst:run(by_id[0], [[
      local t = { f = function() end }
      local got
      local id = ev:subscribe("ref", "*", function(d) got = d end)
      assert(ev:publish("current", "ref", "e", t))
      T.wait(function() return got ~= nil end, 5)
      ev:unsubscribe(id)
      return got == t
    ]])
    assert.is_true(same, "the handler got the very table that was published")
  end)

  it("carries any Lua value; an unencodable one gives nil, err", function()
    local res = inst:run(by_id[0], [[
      local got, n = {}, 0
      local id = ev:subscribe("val", "*", function(d, e)
        got[e] = { d }
        n = n + 1
      end)
      local sent = {
        ["nil"] = nil, ["false"] = false, num = 1.5, str = "a\0b",
        tab = { 1, { x = true }, k = "v" },
      }
      for _, e in ipairs({ "nil", "false", "num", "str", "tab" }) do
        assert(ev:publish("all", "val", e, sent[e]))
      end
      local ok, err = ev:publish("all", "val", "fn", function() end)
      T.wait(function() return n >= 5 end, 5)
      ev:unsubscribe(id)
      return T.serialize({ got = got, ok = ok, err = err, n = n })
    ]])
    local r = assert(loadstring("return " .. res))()
    assert.are.equal(5, r.n, res)
    assert.is_nil(r.got["nil"][1])
    assert.is_false(r.got["false"][1])
    assert.are.equal(1.5, r.got.num[1])
    assert.are.equal("a\0b", r.got.str[1])
    assert.are.same({ 1, { x = true }, k = "v" }, r.got.tab[1])
    assert.is_nil(r.ok)
    assert.truthy(r.err:find("^failed to publish event: cannot encode"), r.err)
  end)

  it("refuses a payload above max_payload_len with nil, err", function()
    local ok, err = inst:run(by_id[0], "return ev:publish('all', 'src', 'big', string.rep('a', 400))")
    assert.is_nil(ok)
    assert.are.equal("failed to publish event: payload exceeds the limitation (300)", err)
  end)

  it("unsubscribe stops a subscription, the others keep theirs", function()
    local e = tag("unsub")
    local removed, again = inst:run(by_id[2], "local a = ev:unsubscribe(ids.src) return a, ev:unsubscribe(ids.src)")
    assert.is_true(removed)
    assert.is_false(again, "a second unsubscribe of the same id finds nothing")
    assert(inst:run(by_id[2], ("return ev:publish('all', 'src', %q, 'u')"):format(e)))
    marker(2)
    local got = grep(inst:list("ev:2"), "|" .. e .. "|")
    assert.are.equal(1, #got, show(got))
    assert.truthy(got[1]:find("^any|"), got[1])
    local other = grep(inst:list("ev:0"), "|" .. e .. "|")
    assert.are.equal(2, #other, "worker 0 keeps its 'src' subscription: " .. show(other))
  end)

  it("a failing handler is logged and the next one still runs", function()
    local b = tag("boom")
    assert(inst:run(by_id[0], ("return ev:publish('all', 'boom', 'e', %q)"):format(b)))
    for _, id in ipairs(ids) do
      inst:wait_count("after-boom:" .. id, 1)
    end
    inst:wait_for(function()
      return #inst:log_lines("handler raised on purpose") >= 3
    end, 10, "three logged handler errors")
    local line = inst:log_lines("handler raised on purpose")[1]
    assert.truthy(line:find("source=boom", 1, true), line)
  end)

  it("keeps the order of one publisher's events in every worker", function()
    local e = tag("seq")
    assert(inst:run(by_id[1], ([[
      for i = 1, 300 do
        assert(ev:publish("all", "src", %q, i))
      end
      return true
    ]]):format(e)))
    for _, id in ipairs(ids) do
      local list = inst:wait_for(function()
        local l = grep(grep(inst:list("ev:" .. id), "|" .. e .. "|"), "any|")
        return #l >= 300 and l
      end, 20, "300 events in worker " .. id)
      for i, s in ipairs(list) do
        assert.are.equal(tostring(i), s:match("|(%d+)$"), "worker " .. id .. " entry " .. i)
      end
    end
  end)

  it("loses nothing while a 'current' handler yields and more than max_queue_len events arrive", function()
    local code = [[
      local me = ngx.worker.id()
      _G.small = require("ngx.ipc.events").new { listening = "unix:/nonexistent/small.sock", max_queue_len = 5 }
      assert(small:init_worker())
      small:subscribe("slow", "*", function() ngx.sleep(0.3) T.add("small:" .. me, "slow done") end)
      small:subscribe("many", "*", function(d) T.add("small:" .. me, d) end)
      return true
    ]]
    for _, id in ipairs(ids) do
      assert(inst:run(by_id[id], code))
    end
    assert(inst:run(by_id[0], "return small:publish('current', 'slow', 'e')"))
    assert(inst:run(by_id[1], "for i = 1, 40 do assert(small:publish('all', 'many', 'e', i)) end return true"))
    local got = inst:wait_count("small:0", 41)
    local want = {}
    for i = 1, 40 do want[i] = i end
    assert.are.equal("slow done", got[1], "the yielding handler ends before the next event is handled")
    assert.are.same(want, { unpack(got, 2) }, "worker 0 handled all 40 in order")
  end)

  it("a unique event is handled by exactly one worker, once within unique_timeout", function()
    local h = tag("hash")
    -- every worker publishes the same hash at once
    local res = inst:run_all(("return ev:publish(%q, 'uq', 'e', %q)"):format(h, h))
    for pid, ok in pairs(res) do
      assert.is_true(ok, "publish in " .. pid)
    end
    inst:wait_count("uq:" .. h, 1)
    for _, id in ipairs(ids) do
      marker(id)
    end
    local handled = inst:list("uq:" .. h)
    assert.are.equal(1, #handled, "handled once in all: " .. show(handled))
    -- the same hash is handled again once unique_timeout (0.5 s) has passed
    assert(inst:run(by_id[0], ("ngx.sleep(0.6) return ev:publish(%q, 'uq', 'e', %q)"):format(h, h)))
    local again = inst:wait_count("uq:" .. h, 2)
    assert.are.equal(handled[1], again[2], "the same worker handles the same hash")
  end)

  it("spreads unique hashes over the workers", function()
    local base = tag("spread")
    assert(inst:run(by_id[0], ([[
      for i = 1, 30 do
        assert(ev:publish(%q .. i, "uq", "e", %q .. i))
      end
      return true
    ]]):format(base, base)))
    local workers = {}
    for i = 1, 30 do
      local got = inst:wait_count("uq:" .. base .. i, 1)
      workers[got[1]] = true
    end
    local n = 0
    for _ in pairs(workers) do n = n + 1 end
    assert.is_true(n >= 2, "30 hashes reached " .. n .. " worker(s)")
  end)

  it("checks the options as lua-resty-events does", function()
    local msgs = inst:run(by_id[0], [[
      local events = require "ngx.ipc.events"
      local out = {}
      for _, o in ipairs({
        { broker_id = "1" }, { broker_id = 3 }, {}, { listening = 1 }, { listening = "/x" },
        { listening = "unix:x", unique_timeout = 0 }, { listening = "unix:x", max_payload_len = 2^24 + 1 },
        { listening = "unix:x", testing = "yes" },
      }) do
        local ok, err = pcall(events.new, o)
        out[#out + 1] = ok and "accepted" or err:gsub("^.-:%d+: ", "")
      end
      return table.concat(out, "\n")
    ]])
    assert.are.equal(table.concat({
      '"broker_id" option must be a number', '"broker_id" option is invalid',
      '"listening" option required to start', '"listening" option must be a string',
      '"listening" option must start with unix:', '"unique_timeout" must be greater than 0',
      '"max_payload_len" option is invalid', '"testing" option must be a boolean',
    }, "\n"), msgs)
  end)

  it("raises on wrong argument types", function()
    local a, b, c = inst:run(by_id[0], [[
      local _, e1 = pcall(ev.publish, ev, "all", "", "e")
      local _, e2 = pcall(ev.subscribe, ev, "s", "e", "nope")
      local _, e3 = pcall(ev.unsubscribe, ev, {})
      return e1, e2, e3
    ]])
    assert.truthy(a:find("bad argument #2 to 'publish'", 1, true), a)
    assert.truthy(b:find("bad argument #3 to 'subscribe' (function expected, got string)", 1, true), b)
    assert.truthy(c:find("bad argument #1 to 'unsubscribe'", 1, true), c)
  end)

  it("testing = true handles every event at once in the publishing worker", function()
    local r = inst:run(by_id[0], [[
      local t = require("ngx.ipc.events").new { listening = "unix:/t.sock", testing = true }
      local got = {}
      t:subscribe("*", "*", function(d, e, s, wid) got[#got + 1] = e .. "/" .. tostring(wid) end)
      assert(t:publish("all", "s", "a"))
      assert(t:publish("h", "s", "u"))
      assert(t:publish("current", "s", "c"))
      return table.concat(got, ",")
    ]])
    assert.are.equal("a/nil,u/nil,c/nil", r)
  end)

  it("leaves no error in error.log but the handler's own", function()
    local lines = {}
    for _, l in ipairs(inst:error_lines()) do
      if not l:find("handler raised on purpose", 1, true) then
        lines[#lines + 1] = l
      end
    end
    assert.are.same({}, lines)
  end)
end)

describe("ngx.ipc.events.compat", function()
  local inst, by_id

  setup(function()
    inst = nginx.start {
      workers = 2,
      init_worker = [[
        local we = require "ngx.ipc.events.compat"
        _G.configured_before = we.configured()
        assert(we.configure { listening = "unix:/nonexistent/compat.sock", unique_timeout = 5 })
        local me = ngx.worker.id()
        _G.cb = function(data, event, source, wid)
          T.add("we:" .. me, table.concat({ source, event, tostring(wid), tostring(data) }, "|"))
        end
        we.register(_G.cb, "s1", "a", "b")
        we.register(function(data, event, source)
          T.add("all:" .. me, source .. "|" .. event .. "|" .. tostring(data))
        end)
      ]],
    }
    by_id = inst:by_id()
  end)

  teardown(function()
    if inst then inst:stop() end
  end)

  local function wait_all(id, plain)
    return inst:wait_for(function()
      local l = inst:list("all:" .. id)
      return #grep(l, plain) > 0 and l
    end, 10, "worker " .. id .. " to get " .. plain)
  end

  it("configure, configured, _VERSION", function()
    local before, now, v = inst:run(by_id[0], [[
      local we = require "ngx.ipc.events.compat"
      return configured_before, we.configured(), we._VERSION == require("ngx.ipc.events")._VERSION
    ]])
    assert.is_false(before)
    assert.is_true(now)
    assert.is_true(v, "compat's _VERSION is ngx.ipc.events'")
  end)

  it("post reaches every worker; register with several events; post_local stays local", function()
    local a, b, c = inst:run(by_id[1], [[
      local we = require "ngx.ipc.events.compat"
      return we.post("s1", "a", 1), we.post("s1", "c", 2), we.post_local("s1", "b", 3)
    ]])
    assert.are.same({ "done", "done", "done" }, { a, b, c })
    assert(inst:run(by_id[1], "return require('ngx.ipc.events.compat').post('mark', 'm1', 0)"))
    for id = 0, 1 do
      wait_all(id, "mark|m1|")
      local we = inst:list("we:" .. id)
      local want = id == 1 and { "s1|a|1|1", "s1|b|nil|3" } or { "s1|a|1|1" }
      table.sort(we)
      assert.are.same(want, we, "worker " .. id)
    end
  end)

  it("post with a unique hash reaches one worker; a second post within unique_timeout is dropped", function()
    for _ = 1, 2 do
      assert.are.equal("done", inst:run(by_id[0], "return require('ngx.ipc.events.compat').post('u', 'e', 'x', 'hash1')"))
    end
    assert(inst:run(by_id[0], "return require('ngx.ipc.events.compat').post('mark', 'm2', 0)"))
    local n = 0
    for id = 0, 1 do
      n = n + #grep(wait_all(id, "mark|m2|"), "u|e|x")
    end
    assert.are.equal(1, n)
  end)

  it("unregister removes every subscription of a callback; poll returns 'done'", function()
    local ok, polled = inst:run_all([[
      local we = require "ngx.ipc.events.compat"
      return we.unregister(cb) and we.poll()
    ]])
    for pid, v in pairs(ok) do
      assert.are.equal("done", v, "worker " .. pid)
    end
    assert(inst:run(by_id[0], [[
      local we = require "ngx.ipc.events.compat"
      assert(we.post("s1", "a", "late"))
      return we.post("mark", "m3", 0)
    ]]))
    for id = 0, 1 do
      wait_all(id, "mark|m3|")
      assert.are.same({}, grep(inst:list("we:" .. id), "late"), "worker " .. id)
    end
  end)
end)

describe("ngx.ipc.events before init_worker", function()
  local inst, by_id

  setup(function()
    -- no init_worker: each worker calls it later, from a command
    inst = nginx.start {
      workers = 2,
      init = [[_G.ev = require("ngx.ipc.events").new { listening = "unix:/nonexistent/late.sock" }]],
    }
    by_id = inst:by_id()
  end)

  teardown(function()
    if inst then inst:stop() end
  end)

  it("keeps the events that reach a worker before its init_worker, for the handlers subscribed then", function()
    assert(inst:run(by_id[0], "return ev:publish('all', 'early', 'e', 'published before any init_worker')"))
    -- worker 0 joined ngx.ipc by publishing: its own event has arrived (or is in
    -- its pipe); a later one through the same path shows it has
    assert(inst:run(by_id[0], "return ev:publish('all', 'early', 'e2', 'second')"))
    for _, id in ipairs({ 0, 1 }) do
      assert(inst:run(by_id[id], [[
        local me = ngx.worker.id()
        assert(ev:init_worker())
        ev:subscribe("early", "*", function(d, e) T.add("early:" .. me, e .. "|" .. d) end)
        return true
      ]]))
    end
    for _, id in ipairs({ 0, 1 }) do
      local got = inst:wait_count("early:" .. id, 2)
      assert.are.same({ "e|published before any init_worker", "e2|second" }, got, "worker " .. id)
    end
  end)
end)
