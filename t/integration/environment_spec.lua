-- What ngx.ipc does in the environments it must refuse or adapt to: no shim in
-- package.cpath and `master_process off`. (Debian's nginx has no event method but
-- epoll: the refusal of others is in t/unit/abi_spec.lua.)
local nginx = require "nginx"

describe("ngx.ipc without its shim in package.cpath", function()
  local inst
  after_each(function() if inst then inst:stop(); inst = nil end end)

  it("raises an error naming the shim and every path searched, and nginx keeps serving", function()
    inst = nginx.start { workers = 1, no_shim = true }
    local pid = inst:workers()[1]
    local ok, err = inst:try(pid, "return ipc.receive('x', function() end)")
    assert.is_false(ok, "receive without a shim")
    err = tostring(err)
    assert.is_truthy(err:find("cannot find the shim ngx_ipc_shim.so in package.cpath", 1, true),
      "expected the shim's name in the error, got: " .. err)
    assert.is_truthy(err:find(inst.prefix .. "/lib/ngx_ipc_shim.so", 1, true),
      "expected the searched path " .. inst.prefix .. "/lib/ngx_ipc_shim.so in: " .. err)
    -- the same worker still runs Lua and serves
    assert.are.equal(pid, inst:run(pid, "return ngx.worker.pid()"))
    assert.are.same({}, inst:crashes())
  end)
end)

describe("ngx.ipc with master_process off", function()
  local inst
  after_each(function() if inst then inst:stop(); inst = nil end end)

  it("delivers a send to itself, a broadcast once and a reply, from its loop", function()
    inst = nginx.start { master_process = false }
    local pids = inst:workers()
    assert.are.equal(1, #pids, "processes running Lua")
    local me = pids[1]
    assert.are.equal(inst.master, me, "the single process is the one in the pid file")
    inst:run(me, [[
      local me = ngx.worker.pid()
      ipc.receive("ping", function(data)
        T.add("got", "ping|" .. data .. "|" .. ipc.sender)
        assert(ipc.reply("pong", data))
      end)
      ipc.receive("pong", function(data) T.add("got", "pong|" .. data .. "|" .. ipc.sender) end)
      assert(ipc.send(me, "ping", "direct"))
      -- nothing is delivered inside send
      assert(T.count("got") == 0, "delivered inside send")
      assert(ipc.broadcast("ping", "all"))
    ]])
    local got = inst:wait_count("got", 4, 5)
    table.sort(got)
    assert.are.same({
      "ping|all|" .. me, "ping|direct|" .. me, "pong|all|" .. me, "pong|direct|" .. me,
    }, got)
    require("socket").sleep(0.3)
    assert.are.equal(4, #inst:list("got"), "alerts delivered once each")
  end)
end)
