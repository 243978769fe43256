-- Past the original's API, on a real nginx: worker ids (send_worker, workers,
-- sender_id), request/response (call, call_worker), one of the workers
-- (send_any) and the per-coroutine sender fields.
local nginx = require "nginx"
local q = nginx.q

local seq = 0
local function tag(s)
  seq = seq + 1
  return (s or "t") .. seq
end

-- handlers used by several cases, registered in every worker's init_worker
local HANDLERS = [[
  local ipc = require "ngx.ipc"
  local me = ngx.worker.pid()
  ipc.receive {
    rec = function(d)
      T.add("rec:" .. me, table.concat({ tostring(ipc.sender), tostring(ipc.sender_id), d }, "|"))
    end,
    echo = function(d) return "echo " .. d .. " from " .. me end,
    number = function() return 42 end,
    refuse = function(d) return nil, "refused " .. d end,
    raise = function(d) error("raised " .. d) end,
    silent = function() end,
    table = function() return {} end,
    slow = function(d)
      ngx.sleep(tonumber(d))
      return "slow done"
    end,
    self_call = function()
      return ipc.call(ngx.worker.pid(), "echo", "me", 0.3)
    end,
    cycle_a = function(d)
      -- a handler of this worker calls the other one, whose handler calls back
      return ipc.call(tonumber(d), "cycle_b", tostring(me), 5)
    end,
    cycle_b = function(d)
      local v, err = ipc.call(tonumber(d), "echo", "back", 0.3)
      T.add("cycle_b:" .. me, tostring(v) .. "|" .. tostring(err))
      return v, err
    end,
  }
]]

describe("worker ids", function()
  local inst, pids, by_id

  setup(function()
    inst = nginx.start { workers = 3, init_worker = HANDLERS }
    pids = inst:workers()
    by_id = inst:by_id()
  end)

  teardown(function()
    if inst then inst:stop() end
  end)

  it("ipc.workers() lists every joined worker of the generation by id, the same in each worker", function()
    local want = {}
    for id = 0, 2 do
      want[#want + 1] = { id = id, pid = by_id[id] }
    end
    for pid, list in pairs(inst:run_all("return ipc.workers()")) do
      assert.are.same(want, list, "ipc.workers() in worker " .. pid)
    end
  end)

  it("send_worker(id) reaches the worker with that id, with ipc.sender and ipc.sender_id set", function()
    local a = by_id[0]
    for id = 0, 2 do
      assert.is_true(inst:run(a, ("return ipc.send_worker(%d, 'rec', 'to %d')"):format(id, id)))
    end
    for id = 0, 2 do
      local got = inst:wait_count("rec:" .. by_id[id], 1, 10)
      assert.are.same({ a .. "|0|to " .. id }, got, "handled by worker id " .. id)
    end
  end)

  it("send_worker refuses an id outside 0 ... count - 1 with nil, err, and raises on a wrong type", function()
    local a = pids[1]
    for _, id in ipairs { -1, 3, 1000, 1.5 } do
      local ok, err = inst:run(a, ("return ipc.send_worker(%s, 'rec', 'x')"):format(tostring(id)))
      assert.is_nil(ok, "send_worker(" .. id .. ")")
      assert.truthy(err:find("no such worker id", 1, true), err)
    end
    local ok, err = inst:try(a, "return ipc.send_worker({}, 'rec', 'x')")
    assert.is_false(ok)
    assert.truthy(err:find("bad argument #1 to 'send_worker' (number expected, got table)", 1, true), err)
  end)

  it("keeps names that start with a NUL byte for itself: receive raises where it is called, sends refuse", function()
    local r = inst:run(pids[1], [[
      local out = {}
      out.one = select(2, pcall(function() ipc.receive("\0call", print) end))
      out.table = select(2, pcall(function() ipc.receive { ["\0answer"] = print } end))
      out.send = { ipc.send(ngx.worker.pid(), "\0call", "1 0 ") }
      out.broadcast = { ipc.broadcast("\0answer", "1 1x") }
      return out
    ]])
    local want = "bad argument #1 to 'receive' (names starting with a NUL byte are reserved for ngx.ipc)"
    for _, k in ipairs { "one", "table" } do
      assert.truthy(r[k]:find("^command:%d+: "), "the error points at the caller: " .. r[k])
      assert.truthy(r[k]:find(want, 1, true), r[k])
    end
    local refused = { nil, "alert names starting with a NUL byte are reserved for ngx.ipc" }
    assert.are.same(refused, r.send)
    assert.are.same(refused, r.broadcast)
  end)

  it("ipc.sender_id is nil outside a handler", function()
    assert.are.same({ "nil", "nil", "nil" },
      { inst:run(pids[1], "return tostring(ipc.sender), tostring(ipc.sender_id), tostring(ipc.sender_instance)") })
  end)
end)

describe("ipc.call", function()
  local inst, a, b

  setup(function()
    inst = nginx.start {
      workers = 2,
      init_worker = HANDLERS .. [[
        local ok, err = pcall(ipc.call, me, "echo", "x")
        T.dict:set("init_worker_call:" .. me, tostring(ok) .. "|" .. tostring(err))
      ]],
      server = [[
        location = /filter {
          content_by_lua_block { ngx.say("body") }
          header_filter_by_lua_block {
            local ok, err = pcall(require("ngx.ipc").call, ngx.worker.pid(), "echo", "x")
            ngx.shared.ngx_ipc_t:set("header_filter_call", tostring(ok) .. "|" .. tostring(err))
          }
        }
        location = /call {
          content_by_lua_block {
            local ipc = require "ngx.ipc"
            local v, err = ipc.call_worker(tonumber(ngx.var.arg_id), "echo", ngx.var.arg_d)
            ngx.say(tostring(v), "|", tostring(err))
          }
        }
      ]],
    }
    local by_id = inst:by_id()
    a, b = by_id[0], by_id[1]
  end)

  teardown(function()
    if inst then inst:stop() end
  end)

  it("returns what the other worker's handler returns", function()
    assert.are.same({ "echo hi from " .. b }, { inst:run(a, ("return ipc.call(%d, 'echo', 'hi')"):format(b)) })
    assert.are.same({ "echo by id from " .. b }, { inst:run(a, "return ipc.call_worker(1, 'echo', 'by id')") })
    assert.are.same({ "42" }, { inst:run(a, ("return ipc.call(%d, 'number', '')"):format(b)) })
    -- to itself, from outside its handlers, and from a request
    assert.are.same({ "echo me from " .. a }, { inst:run(a, ("return ipc.call(%d, 'echo', 'me')"):format(a)) })
    local status, body = inst:get("/call?id=1&d=req")
    assert.are.equal(200, status)
    assert.are.equal(("echo req from %d|nil\n"):format(b), body)
  end)

  it("returns nil and the handler's message, or its error, which is logged too", function()
    assert.are.same({ nil, "refused r" }, { inst:run(a, ("return ipc.call(%d, 'refuse', 'r')"):format(b)) })
    local mark = inst:log_mark()
    local v, err = inst:run(a, ("return ipc.call(%d, 'raise', 'boom')"):format(b))
    assert.is_nil(v)
    assert.truthy(err:find("raised boom", 1, true), err)
    inst:wait_for(function()
      return #inst:log_lines('handler for alert "raise" from worker ' .. a .. " failed", mark) > 0
    end, 5, "the handler's error in error.log")
    local v2, err2 = inst:run(a, ("return ipc.call(%d, 'silent', '')"):format(b))
    assert.is_nil(v2)
    assert.truthy(err2:find("returned no answer", 1, true), err2)
    local v3, err3 = inst:run(a, ("return ipc.call(%d, 'table', '')"):format(b))
    assert.is_nil(v3)
    assert.truthy(err3:find("answered with a table (string expected)", 1, true), err3)
    local v4, err4 = inst:run(a, ("return ipc.call(%d, 'nobody handles this', '')"):format(b))
    assert.is_nil(v4)
    assert.truthy(err4:find('no handler for alert "nobody handles this" in worker ' .. b, 1, true), err4)
  end)

  it("times out, and drops and counts the answer that comes too late", function()
    local before = inst:run(a, "return ipc.stats().calls")
    local v, err = inst:run(a, ("return ipc.call(%d, 'slow', '0.5', 0.1)"):format(b))
    assert.are.same({ nil, "timeout" }, { v, err })
    inst:wait_for(function()
      return inst:run(a, "return ipc.stats().calls.late") == before.late + 1
    end, 10, "the late answer to be counted")
    local after = inst:run(a, "return ipc.stats().calls")
    assert.are.equal(before.timeouts + 1, after.timeouts)
    assert.are.equal(before.answered, after.answered)
  end)

  it("ends in nil, 'timeout' for a handler calling its own worker, and for a cycle of calls", function()
    -- the handler holds its worker's receive loop: the call it makes to that
    -- worker cannot be handled until it returns
    assert.are.same({ nil, "timeout" }, { inst:run(a, ("return ipc.call(%d, 'self_call', '')"):format(b)) })
    -- a's handler calls b, b's handler calls a back: a's loop is busy waiting
    local v, err = inst:run(a, ("return ipc.call(%d, 'cycle_a', '%d')"):format(a, b))
    assert.are.same({ nil, "timeout" }, { v, err })
    assert.are.same({ "nil|timeout" }, inst:wait_count("cycle_b:" .. b, 1, 10))
  end)

  it("resolves 1,000 calls in flight at once from one worker", function()
    local r = inst:run(a, ([[
      local threads = {}
      for i = 1, 1000 do
        threads[i] = ngx.thread.spawn(function()
          return ipc.call(%d, "echo", tostring(i), 30)
        end)
      end
      local wrong = {}
      for i = 1, 1000 do
        local ok, v, err = ngx.thread.wait(threads[i])
        if not ok or v ~= "echo " .. i .. " from %d" then
          wrong[#wrong + 1] = i .. ": " .. tostring(v) .. " " .. tostring(err)
        end
      end
      return { wrong = wrong, calls = ipc.stats().calls }
    ]]):format(b, b), 60)
    assert.are.same({}, r.wrong)
    assert.is_true(r.calls.answered >= 1000)
  end)

  it("raises naming the context where it cannot wait, and on wrong argument types", function()
    for _, p in ipairs { a, b } do
      local s = inst:run(p, ("return T.dict:get('init_worker_call:%d')"):format(p))
      assert.truthy(s:find("^false|.*call cannot be used in the init_worker phase"), s)
    end
    local status = inst:get("/filter")
    assert.are.equal(200, status)
    local s = inst:run(a, "return T.dict:get('header_filter_call')")
    assert.truthy(s:find("^false|.*call cannot be used in the header_filter phase"), s)
    local ok, err = inst:try(a, ("return ipc.call(%d, {}, 'x')"):format(b))
    assert.is_false(ok)
    assert.truthy(err:find("bad argument #2 to 'call' (string expected, got table)", 1, true), err)
    ok, err = inst:try(a, "return ipc.call_worker(1, 'echo', 'x', 'soon')")
    assert.is_false(ok)
    assert.truthy(err:find("bad argument #4 to 'call_worker' (non-negative number expected, got string)", 1, true), err)
    local v, e = inst:run(a, "return ipc.call_worker(7, 'echo', 'x')")
    assert.is_nil(v)
    assert.truthy(e:find("no such worker id: 7", 1, true), e)
  end)
end)

describe("ipc.sender in its handler's coroutine only", function()
  local inst

  after_each(function()
    if inst then inst:stop(); inst = nil end
  end)

  it("reads nil in a request, and in another timer, while the handler yields", function()
    inst = nginx.start {
      workers = 2,
      init_worker = [[
        local ipc = require "ngx.ipc"
        ipc.receive("hold", function()
          T.add("hold", "in:" .. tostring(ipc.sender) .. ":" .. tostring(ipc.sender_id))
          T.dict:set("holding", ngx.worker.pid())
          T.wait(function() return T.dict:get("release") end, 30)
          T.add("hold", "after:" .. tostring(ipc.sender) .. ":" .. tostring(ipc.sender_id))
        end)
      ]],
      server = [[
        location = /sender {
          content_by_lua_block {
            local ipc = require "ngx.ipc"
            ngx.say(tostring(ipc.sender), "|", tostring(ipc.sender_id), "|", ngx.worker.pid())
          }
        }
      ]],
    }
    local by_id = inst:by_id()
    local a, b = by_id[0], by_id[1]
    assert.is_true(inst:run(a, "return ipc.send_worker(1, 'hold', '')"))
    inst:wait_for(function()
      return inst:run(a, "return T.dict:get('holding')") == b
    end, 10, "the handler to hold")
    -- another timer in the same worker (the harness runs commands in timers)
    assert.are.same({ "nil", "nil" }, { inst:run(b, "return tostring(ipc.sender), tostring(ipc.sender_id)") })
    -- requests, until one is served by the worker whose handler yields
    inst:wait_for(function()
      local status, body = inst:get("/sender")
      assert.are.equal(200, status)
      local s, id, pid = body:match("^(%S+)|(%S+)|(%d+)")
      assert.are.same({ "nil", "nil" }, { s, id }, "sender fields in a request: " .. body)
      return tonumber(pid) == b
    end, 20, "a request served by worker " .. b)
    inst:run(a, "T.dict:set('release', true)")
    assert.are.same({ "in:" .. a .. ":0", "after:" .. a .. ":0" }, inst:wait_count("hold", 2, 10))
  end)

  it("cannot be assigned", function()
    inst = nginx.start { workers = 1 }
    local ok, err = inst:try(inst:workers()[1], "ipc.sender = 1")
    assert.is_false(ok)
    assert.truthy(err:find("sender is read-only", 1, true), err)
  end)
end)

describe("ipc.send_any", function()
  local inst

  after_each(function()
    if inst then inst:stop(); inst = nil end
  end)

  it("takes turns over the other joined workers, and each alert is handled once, where it said", function()
    inst = nginx.start { workers = 3, init_worker = HANDLERS }
    local by_id = inst:by_id()
    local a = by_id[0]
    local chosen = { inst:run(a, [[
      local out = {}
      for i = 1, 6 do
        local ok, pid = ipc.send_any("rec", "any " .. i)
        assert(ok, pid)
        out[i] = pid
      end
      return unpack(out)
    ]]) }
    assert.are.equal(6, #chosen)
    local per = {}
    for i, pid in ipairs(chosen) do
      assert.are_not.equal(a, pid, "send_any chose the sender while others had joined")
      per[pid] = per[pid] or {}
      per[pid][#per[pid] + 1] = a .. "|0|any " .. i
      if i > 1 then
        assert.are_not.equal(chosen[i - 1], pid, "the same worker twice in a row")
      end
    end
    for _, pid in ipairs { by_id[1], by_id[2] } do
      assert.are.same(per[pid], inst:wait_count("rec:" .. pid, #per[pid], 10), "handled by " .. pid)
    end
    assert.are.same({}, inst:list("rec:" .. a), "handled by the sender")
  end)

  it("goes to the sender itself when it is alone", function()
    inst = nginx.start { workers = 1, init_worker = HANDLERS }
    local a = inst:workers()[1]
    assert.are.same({ true, a }, { inst:run(a, "return ipc.send_any('rec', 'alone')") })
    assert.are.same({ a .. "|0|alone" }, inst:wait_count("rec:" .. a, 1, 10))
  end)

  it("is handled by the replacement when the chosen worker is killed before handling it", function()
    -- the chosen worker stops reading (a small receive_backlog full of what its
    -- sleeping handler has not taken): what send_any sends next waits in its pipe
    inst = nginx.start { workers = 2, init_worker = nginx.STALL_HANDLERS }
    local by_id = inst:by_id()
    local a, victim = by_id[0], by_id[1]
    inst:stall(a, victim)
    local chosen = { inst:run(a, [[
      local out = {}
      for i = 1, 50 do
        local ok, pid = ipc.send_any("m", "job " .. i)
        assert(ok, pid)
        out[#out + 1] = pid
      end
      return unpack(out)
    ]]) }
    for i = 1, 50 do
      assert.are.equal(victim, chosen[i], "send_any " .. i .. " went to")
    end
    local fresh = inst:kill9(victim)
    local want = {}
    for i = 1, 50 do want[i] = "job " .. i end
    assert.are.same(want, inst:wait_count("m:" .. fresh, 50, 20), "what the replacement handled, in order")
    assert.are.same({}, inst:list("m:" .. a), "what the sender handled")
  end)
end)
