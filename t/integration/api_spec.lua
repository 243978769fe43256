-- The public API of ngx.ipc between the workers of a real nginx.
local nginx = require "nginx"
local q = nginx.q

local seq = 0
local function tag(s)
  seq = seq + 1
  return (s or "t") .. seq
end

-- a handler `name` in every worker that records "sender|data|type(sender)"
-- under "<name>:<receiver pid>"
local function recorder(inst, name)
  inst:install(([[
    local me = ngx.worker.pid()
    local name = %s
    ipc.receive(name, function(data)
      T.add(name .. ":" .. me, tostring(ipc.sender) .. "|" .. data .. "|" .. type(ipc.sender))
    end)
  ]]):format(q(name)))
end

local function sorted(t)
  table.sort(t, function(a, b) return tostring(a) < tostring(b) end)
  return t
end

for _, nworkers in ipairs { 2, 4 } do
  describe(("ngx.ipc with %d workers"):format(nworkers), function()
    local inst, pids

    setup(function()
      inst = nginx.start {
        workers = nworkers,
        server = [[
          location = /sender {
            content_by_lua_block { ngx.say(type(require("ngx.ipc").sender)) }
          }
          location = /ok { return 200 "ok\n"; }
        ]],
      }
      pids = inst:workers()
      assert.are.equal(nworkers, #pids, "registered workers")
    end)

    teardown(function()
      if inst then inst:stop() end
    end)

    it("delivers a send to the sending worker itself, asynchronously", function()
      local name = tag("self")
      recorder(inst, name)
      local a = pids[1]
      -- the handler must not run inside send: nothing is recorded right after it
      local ok, err, right_after = inst:run(a, ([[
        local ok, err = ipc.send(ngx.worker.pid(), %s, "to me")
        return ok, err, T.count(%s)
      ]]):format(q(name), q(name .. ":" .. a)))
      assert.are.same({ true, nil, 0 }, { ok, err, right_after })
      local got = inst:wait_count(name .. ":" .. a, 1, 5)
      assert.are.same({ a .. "|to me|number" }, got)
    end)

    it("wakes its own receive loop for a send to itself from a request", function()
      -- Without the wake-up the loop would see the alert only at its semaphore
      -- wait's timeout, once a second: each alert would then wait 0-1 s, and
      -- ten in a row would all come within 0.3 s about once in 170,000 runs.
      -- Woken, each comes within a few ms; 0.3 s leaves room for a busy host.
      local name = tag("wake")
      recorder(inst, name)
      local a = pids[1]
      local r = inst:run(a, ([[
        local late, counts = {}, {}
        for i = 1, 10 do
          local t0 = ngx.now()
          assert(ipc.send(ngx.worker.pid(), %s, "w" .. i))
          repeat
            ngx.sleep(0.002)
            ngx.update_time()
          until T.count(%s) == i or ngx.now() - t0 > 0.3
          counts[i] = T.count(%s)
          if ngx.now() - t0 > 0.3 then late[#late + 1] = i end
        end
        return { counts = counts, late = late }
      ]]):format(q(name), q(name .. ":" .. a), q(name .. ":" .. a)))
      assert.are.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, r.counts)
      assert.are.same({}, r.late, "alerts handled only after 0.3 s")
    end)

    it("delivers a send to another worker and to no one else", function()
      local name = tag("other")
      recorder(inst, name)
      local a, b = pids[1], pids[#pids]
      assert.is_true(inst:run(a, ("return ipc.send(%d, %s, 'hello b')"):format(b, q(name))))
      assert.are.same({ a .. "|hello b|number" }, inst:wait_count(name .. ":" .. b, 1, 5))
      -- a marker from the same sender proves the rest are not merely late
      local marker = tag("marker")
      recorder(inst, marker)
      inst:run(a, ([[for _, p in ipairs(%s) do assert(ipc.send(p, %s, "m")) end]]):format(
        nginx.lua_list(pids), q(marker)))
      for _, p in ipairs(pids) do
        inst:wait_count(marker .. ":" .. p, 1, 5)
        if p ~= b then
          assert.are.same({}, inst:list(name .. ":" .. p), "alerts recorded by worker " .. p)
        end
      end
    end)

    it("delivers a numeric-string pid like a number", function()
      local name = tag("strpid")
      recorder(inst, name)
      local a, b = pids[1], pids[2]
      assert.is_true(inst:run(a, ("return ipc.send(%q, %s, 'via string')"):format(tostring(b), q(name))))
      assert.are.same({ a .. "|via string|number" }, inst:wait_count(name .. ":" .. b, 1, 5))
    end)

    it("delivers a broadcast to every worker exactly once", function()
      local name = tag("bcast")
      recorder(inst, name)
      local a = pids[1]
      assert.is_true(inst:run(a, ("return ipc.broadcast(%s, 'to all')"):format(q(name))))
      for _, p in ipairs(pids) do
        inst:wait_count(name .. ":" .. p, 1, 5)
      end
      require("socket").sleep(0.3) -- give duplicates a chance to show up
      for _, p in ipairs(pids) do
        assert.are.same({ a .. "|to all|number" }, inst:list(name .. ":" .. p), "alerts seen by worker " .. p)
      end
    end)

    it("delivers broadcasts from every worker at once to every worker exactly once", function()
      local name = tag("bcastall")
      recorder(inst, name)
      inst:run_all(("return ipc.broadcast(%s, 'from ' .. ngx.worker.pid())"):format(q(name)))
      local expected = {}
      for _, s in ipairs(pids) do
        expected[#expected + 1] = s .. "|from " .. s .. "|number"
      end
      sorted(expected)
      for _, p in ipairs(pids) do
        inst:wait_count(name .. ":" .. p, #pids, 5)
      end
      require("socket").sleep(0.3)
      for _, p in ipairs(pids) do
        assert.are.same(expected, sorted(inst:list(name .. ":" .. p)), "alerts seen by worker " .. p)
      end
    end)

    it("sets ipc.sender to the sender's ngx.worker.pid() and routes reply back to it", function()
      local ping, pong = tag("ping"), tag("pong")
      inst:install(([[
        local me = ngx.worker.pid()
        ipc.receive(%s, function(data)
          T.add(%s .. ":" .. me, ipc.sender .. "|" .. type(ipc.sender) .. "|" .. data)
          assert(ipc.reply(%s, "pong from " .. me))
        end)
        ipc.receive(%s, function(data)
          T.add(%s .. ":" .. me, ipc.sender .. "|" .. type(ipc.sender) .. "|" .. data .. "|" .. ngx.worker.pid())
        end)
      ]]):format(q(ping), q(ping), q(pong), q(pong), q(pong)))
      local a, b = pids[1], pids[2]
      local a_pid = inst:run(a, ("assert(ipc.send(%d, %s, 'ping')) return ngx.worker.pid()"):format(b, q(ping)))
      assert.are.equal(a, a_pid)
      assert.are.same({ a .. "|number|ping" }, inst:wait_count(ping .. ":" .. b, 1, 5))
      assert.are.same({ b .. "|number|pong from " .. b .. "|" .. a }, inst:wait_count(pong .. ":" .. a, 1, 5))
      -- and to itself: the reply comes back to the same worker
      inst:run(a, ("assert(ipc.send(ngx.worker.pid(), %s, 'self ping'))"):format(q(ping)))
      local got = inst:wait_count(pong .. ":" .. a, 2, 5)
      assert.are.equal(a .. "|number|pong from " .. a .. "|" .. a, got[2])
    end)

    it("leaves ipc.sender nil outside handlers", function()
      local name = tag("after")
      recorder(inst, name)
      local a = pids[1]
      assert.is_nil(inst:run(a, "return ipc.sender"))
      inst:run(a, ("assert(ipc.send(ngx.worker.pid(), %s, 'x'))"):format(q(name)))
      inst:wait_count(name .. ":" .. a, 1, 5)
      -- after a handler ran, and in a timer that runs while alerts are handled
      assert.are.same({ "nil" }, { tostring(inst:run(a, "return ipc.sender")) })
      assert.is_nil(inst:run(a, ([[
        local seen = {}
        ipc.send(ngx.worker.pid(), %s, 'y')
        for i = 1, 20 do seen[#seen + 1] = ipc.sender; ngx.sleep(0.001) end
        return next(seen)
      ]]):format(q(name))))
      -- and in a request handler
      local status, body = inst:get("/sender")
      assert.are.same({ 200, "nil\n" }, { status, body }, "status and type(ipc.sender) in a request")
    end)

    it("accepts a 254-byte alert name and refuses 255 bytes with nil, err", function()
      local n254 = string.rep("n", 253) .. "4"
      recorder(inst, n254)
      local a, b = pids[1], pids[2]
      assert.is_true(inst:run(a, ("return ipc.send(%d, %s, 'long name')"):format(b, q(n254))))
      assert.are.same({ a .. "|long name|number" }, inst:wait_count(n254 .. ":" .. b, 1, 5))
      local n255 = string.rep("n", 255)
      local r = { inst:run(a, ([[
        local s1, e1 = ipc.send(%d, %s, "x")
        local s2, e2 = ipc.broadcast(%s, "x")
        return s1, type(e1), e1, s2, type(e2), e2
      ]]):format(b, q(n255), q(n255))) }
      assert.is_nil(r[1], "send with a 255-byte name")
      assert.are.equal("string", r[2], "send's error type")
      assert.is_nil(r[4], "broadcast with a 255-byte name")
      assert.are.equal("string", r[5], "broadcast's error type")
    end)

    it("raises errors naming the function and the argument for wrong types", function()
      local b = pids[2]
      local msgs = inst:run(pids[1], ([[
        local b = %d
        local cases = {
          { "send", function() return ipc.send(b, {}, "d") end },
          { "send", function() return ipc.send(b, "n", function() end) end },
          { "send", function() return ipc.send({}, "n", "d") end },
          { "send", function() return ipc.send(nil, "n", "d") end },
          { "broadcast", function() return ipc.broadcast({}, "d") end },
          { "broadcast", function() return ipc.broadcast("n", function() end) end },
          { "receive", function() return ipc.receive(true, function() end) end },
          { "receive", function() return ipc.receive("n", "not a function") end },
        }
        local out = {}
        for i, c in ipairs(cases) do
          local ok, err = pcall(c[2])
          out[i] = ok and "no error" or tostring(err)
        end
        return out
      ]]):format(b))
      local expected = {
        "bad argument #2 to 'send' (string expected, got table)",
        "bad argument #3 to 'send' (string expected, got function)",
        "bad argument #1 to 'send' (number expected, got table)",
        "bad argument #1 to 'send' (number expected, got nil)",
        "bad argument #1 to 'broadcast' (string expected, got table)",
        "bad argument #2 to 'broadcast' (string expected, got function)",
        "bad argument #1 to 'receive' (string expected, got boolean)",
        "bad argument #2 to 'receive' (function expected, got string)",
      }
      for i, want in ipairs(expected) do
        assert.is_truthy(msgs[i]:find(want, 1, true),
          ("case %d: expected an error containing %q, got %q"):format(i, want, msgs[i]))
      end
    end)

    it("raises a bad-argument error for a wrong type in reply inside a handler", function()
      local name = tag("badreply")
      local a = pids[1]
      inst:install(([[
        local me = ngx.worker.pid()
        ipc.receive(%s, function()
          local ok, err = pcall(ipc.reply, {}, "d")
          T.add(%s .. ":" .. me, tostring(ok) .. "|" .. tostring(err))
        end)
      ]]):format(q(name), q(name)))
      inst:run(a, ("assert(ipc.send(ngx.worker.pid(), %s, ''))"):format(q(name)))
      local got = inst:wait_count(name .. ":" .. a, 1, 5)[1]
      assert.is_truthy(got:find("false|", 1, true) and got:find("bad argument #1 to 'reply'", 1, true),
        "expected a bad argument #1 to 'reply' error, got " .. got)
    end)

    it("returns nil, err for a send to a pid that is not a live worker", function()
      local a = pids[1]
      for _, bogus in ipairs { inst.master, 1, 2147483646, 0, -5, 99999999 } do
        local ok, err = inst:run(a, ("return ipc.send(%d, 'x', 'y')"):format(bogus))
        assert.is_nil(ok, "send to pid " .. bogus .. " returned " .. tostring(ok))
        assert.are.equal("string", type(err), "error for pid " .. bogus)
        assert.is_true(#err > 0, "error message for pid " .. bogus)
      end
    end)

    it("registers several handlers with the table form of receive", function()
      local n1, n2 = tag("tbl"), tag("tbl")
      inst:install(([[
        local me = ngx.worker.pid()
        assert(ipc.receive {
          [%s] = function(d) T.add(%s .. ":" .. me, "one " .. d) end,
          [%s] = function(d) T.add(%s .. ":" .. me, "two " .. d) end,
        } == true)
      ]]):format(q(n1), q(n1), q(n2), q(n2)))
      local a, b = pids[1], pids[2]
      inst:run(a, ("assert(ipc.send(%d, %s, 'x')) assert(ipc.send(%d, %s, 'y'))"):format(b, q(n1), b, q(n2)))
      assert.are.same({ "one x" }, inst:wait_count(n1 .. ":" .. b, 1, 5))
      assert.are.same({ "two y" }, inst:wait_count(n2 .. ":" .. b, 1, 5))
    end)

    it("deletes a handler with receive(name, nil)", function()
      local name, marker = tag("del"), tag("delmark")
      recorder(inst, name)
      recorder(inst, marker)
      local a, b = pids[1], pids[2]
      inst:run(a, ("assert(ipc.send(%d, %s, 'before'))"):format(b, q(name)))
      inst:wait_count(name .. ":" .. b, 1, 5)
      assert.is_true(inst:run(b, ("return ipc.receive(%s, nil)"):format(q(name))))
      inst:run(a, ("assert(ipc.send(%d, %s, 'after')) assert(ipc.send(%d, %s, 'm'))"):format(b, q(name), b, q(marker)))
      inst:wait_count(marker .. ":" .. b, 1, 5)
      assert.are.same({ a .. "|before|number" }, inst:list(name .. ":" .. b))
    end)

    it("drops an alert with no handler quietly and delivers the next one", function()
      local marker = tag("nohandler")
      recorder(inst, marker)
      local a, b = pids[1], pids[2]
      local mark = inst:log_mark()
      inst:run(a, ("assert(ipc.send(%d, 'nobody-listens', 'lost')) assert(ipc.send(%d, %s, 'next'))"):format(b, b, q(marker)))
      assert.are.same({ a .. "|next|number" }, inst:wait_count(marker .. ":" .. b, 1, 5))
      assert.are.same({}, inst:error_lines(mark))
    end)

    it("raises when reply is called outside a handler", function()
      local ok, err = inst:run(pids[1], "local ok, err = pcall(ipc.reply, 'x', 'y') return ok, tostring(err)")
      assert.is_false(ok)
      assert.is_truthy(err:find("reply", 1, true), "error should name reply, got " .. err)
    end)

    it("logs a handler's error with alert name and sender pid and delivers the next alert", function()
      local bad, good = tag("fails"), tag("afterfail")
      recorder(inst, good)
      inst:install(([[ipc.receive(%s, function() error("handler exploded") end)]]):format(q(bad)))
      local a, b = pids[1], pids[2]
      local mark = inst:log_mark()
      inst:run(a, ("assert(ipc.send(%d, %s, '')) assert(ipc.send(%d, %s, 'still here'))"):format(b, q(bad), b, q(good)))
      assert.are.same({ a .. "|still here|number" }, inst:wait_count(good .. ":" .. b, 1, 5))
      local lines = inst:wait_for(function()
        local l = inst:log_lines("handler exploded", mark)
        return #l > 0 and l
      end, 5, "the handler's error in error.log")
      local line = lines[1]
      assert.is_truthy(line:find("[error]", 1, true), "logged at error level: " .. line)
      assert.is_truthy(line:find(bad, 1, true), "alert name in: " .. line)
      assert.is_truthy(line:find(tostring(a), 1, true), "sender pid in: " .. line)
      assert.is_truthy(line:find(b .. "#", 1, true), "logged by the receiver " .. b .. ": " .. line)
    end)

    it("keeps later alerts in order behind a handler that yields with ngx.sleep", function()
      local slow, fast, key = tag("slow"), tag("fast"), tag("order")
      inst:install(([[
        local key = %s .. ":" .. ngx.worker.pid()
        ipc.receive(%s, function(d) ngx.sleep(0.01) T.add(key, d) end)
        ipc.receive(%s, function(d) T.add(key, d) end)
      ]]):format(q(key), q(slow), q(fast)))
      local a, b = pids[1], pids[2]
      inst:run(a, ([[
        for i = 1, 40 do
          assert(ipc.send(%d, (i %% 2 == 1) and %s or %s, tostring(i)))
        end
      ]]):format(b, q(slow), q(fast)))
      local got = inst:wait_count(key .. ":" .. b, 40, 10)
      local expected = {}
      for i = 1, 40 do expected[i] = tostring(i) end
      assert.are.same(expected, got)
    end)

    it("lets a handler send, broadcast and start timers", function()
      local first, second, key = tag("chain"), tag("chain2"), tag("chainrec")
      inst:install(([[
        local me = ngx.worker.pid()
        ipc.receive(%s, function(d)
          assert(ngx.timer.at(0, function() T.add(%s .. ":" .. me, "timer") end))
          assert(ipc.broadcast(%s, "from handler of " .. me))
        end)
        ipc.receive(%s, function(d) T.add(%s .. ":" .. me, d) end)
      ]]):format(q(first), q(key), q(second), q(second), q(key)))
      local a, b = pids[1], pids[2]
      inst:run(a, ("assert(ipc.send(%d, %s, ''))"):format(b, q(first)))
      for _, p in ipairs(pids) do
        local want = p == b and 2 or 1
        local got = sorted(inst:wait_count(key .. ":" .. p, want, 5))
        assert.is_truthy(table.concat(got, ","):find("from handler of " .. b, 1, true), "worker " .. p .. " got " .. table.concat(got, ","))
      end
    end)

    it("lets a handler use a cosocket, and delivers the next alert after it", function()
      local name, key = tag("cosock"), tag("cosockrec")
      inst:install(([[
        local me = ngx.worker.pid()
        ipc.receive(%s, function(d)
          local sock = ngx.socket.tcp()
          sock:settimeout(2000)
          assert(sock:connect("127.0.0.1", %d))
          assert(sock:send("GET /ok HTTP/1.0\r\nHost: t\r\n\r\n"))
          local body = assert(sock:receive("*a"))
          sock:close()
          T.add(%s .. ":" .. me, d .. "|" .. body:match("\r\n\r\n(.-)\n$"))
        end)
      ]]):format(q(name), inst.port, q(key)))
      local a, b = pids[1], pids[#pids]
      inst:run(a, ("assert(ipc.send(%d, %s, 'one')) assert(ipc.send(%d, %s, 'two'))")
        :format(b, q(name), b, q(name)))
      assert.are.same({ "one|ok", "two|ok" }, inst:wait_count(key .. ":" .. b, 2, 10))
    end)

    it("keeps the master process free of ngx_ipc pipes and of the shim", function()
      inst:run_all("assert(ipc.broadcast('nobody-listens', 'x'))")
      assert.are.same({}, nginx.ipc_fds(inst.master), "ngx_ipc files open in the master")
      assert.is_false(nginx.maps_shim(inst.master), "shim mapped into the master")
      for _, p in ipairs(pids) do
        assert.is_true(nginx.maps_shim(p), "shim mapped into worker " .. p)
      end
    end)
  end)
end
