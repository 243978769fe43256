-- ngx.ipc loaded in init_by_lua (the master): allowed, inert, and receive refused.
local nginx = require "nginx"

describe("ngx.ipc in init_by_lua", function()
  local inst

  after_each(function()
    if inst then inst:stop(); inst = nil end
  end)

  it("can be required there, refuses receive with an error naming init_by_lua, and nginx still serves", function()
    inst = nginx.start {
      workers = 2,
      init = [[
        local ipc = require "ngx.ipc"
        local ok, err = pcall(ipc.receive, "x", function() end)
        NGX_IPC_T_INIT = { required = type(ipc) == "table", ok = ok, err = tostring(err) }
        ngx.log(ngx.NOTICE, "ngx_ipc_t init_by_lua receive: ", tostring(ok), ": ", tostring(err))
      ]],
      server = [[
        location = /ping { content_by_lua_block { ngx.say("pong") } }
      ]],
    }
    local status, body = inst:get("/ping")
    assert.are.same({ 200, "pong\n" }, { status, body }, "status and body of GET /ping")
    local pids = inst:workers()
    local init = inst:run(pids[1], "return NGX_IPC_T_INIT")
    assert.is_true(init.required, "require 'ngx.ipc' in init_by_lua returned a table")
    assert.is_false(init.ok, "receive in init_by_lua should raise")
    assert.is_truthy(init.err:find("init_by_lua", 1, true),
      "the error should name init_by_lua, got: " .. init.err)
    assert.are.equal(1, #inst:log_lines("ngx_ipc_t init_by_lua receive: false"), "the logged refusal")
  end)

  it("creates nothing in the master and still works in the workers", function()
    inst = nginx.start {
      workers = 2,
      init = [[
        local ipc = require "ngx.ipc"
        NGX_IPC_T_MASTER = { sender = ipc.sender }
      ]],
      init_worker = [[
        local ipc = require "ngx.ipc"
        local me = ngx.worker.pid()
        ipc.receive("hi", function(d) T.add("hi:" .. me, ipc.sender .. "|" .. d) end)
      ]],
    }
    local pids = inst:workers()
    assert.are.same({}, nginx.ipc_fds(inst.master), "ngx_ipc files open in the master")
    assert.is_false(nginx.maps_shim(inst.master), "shim mapped into the master")
    local a, b = pids[1], pids[2]
    inst:run(a, ("assert(ipc.send(%d, 'hi', 'after init'))"):format(b))
    assert.are.same({ a .. "|after init" }, inst:wait_count("hi:" .. b, 1, 5))
    inst:run(b, "assert(ipc.broadcast('hi', 'all'))")
    inst:wait_count("hi:" .. a, 1, 5)
    assert.are.same({}, nginx.ipc_fds(inst.master), "ngx_ipc files open in the master after traffic")
    assert.is_false(nginx.maps_shim(inst.master), "shim mapped into the master after traffic")
    for _, p in ipairs(pids) do
      assert.is_true(#nginx.ipc_fds(p) > 0, "worker " .. p .. " has its pipe open")
    end
    assert.are.same({}, inst:error_lines())
  end)

  it("refuses send and broadcast in init_by_lua without breaking startup", function()
    inst = nginx.start {
      workers = 2,
      init = [[
        local ipc = require "ngx.ipc"
        local ok1, r1 = pcall(ipc.broadcast, "x", "y")
        local ok2, r2 = pcall(ipc.send, 1, "x", "y")
        NGX_IPC_T_INIT = { sent1 = ok1 and r1 == true, sent2 = ok2 and r2 == true }
      ]],
      server = [[ location = /ping { return 204; } ]],
    }
    assert.are.equal(204, (inst:get("/ping")))
    local r = inst:run(inst:workers()[1], "return NGX_IPC_T_INIT")
    assert.is_false(r.sent1, "broadcast in init_by_lua reported success")
    assert.is_false(r.sent2, "send in init_by_lua reported success")
    assert.are.same({}, nginx.ipc_fds(inst.master), "ngx_ipc files open in the master")
  end)
end)
