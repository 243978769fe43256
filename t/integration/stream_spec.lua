-- ngx.ipc in stream {} Lua (OpenResty's ngx_stream_lua_module): a worker that
-- runs Lua in http {} and stream {} holds two Lua VMs over one copy of the shim.
-- One pipe per worker; an alert reaches every VM of the destination that has a
-- handler for its name; send, broadcast and call work from either VM, with the
-- sender right in each. Needs an nginx with stream Lua (NGX_IPC_T_NGINX, e.g.
-- an OpenResty build, with NGX_IPC_T_MODULES=none); Debian's nginx has none,
-- and there every case is pending.
local nginx = require "nginx"

local NGINX = os.getenv("NGX_IPC_T_NGINX") or "/usr/sbin/nginx"

local function has_stream_lua()
  local ok, out = nginx.sh("nm -D " .. nginx.shq(NGINX) .. " | grep -c ngx_stream_lua_ffi_sema_post")
  return ok and (tonumber(out:match("%d+")) or 0) > 0
end

-- the http VM's handlers, in the harness's init_worker
local HTTP = [[
  local ipc = require "ngx.ipc"
  local me = ngx.worker.pid()
  local function rec(kind)
    return function(d)
      T.add(kind .. ":" .. me, table.concat({ "http", tostring(ipc.sender), tostring(ipc.sender_id), d }, "|"))
    end
  end
  ipc.receive { rec = rec("rec"), honly = rec("honly"), hecho = function(d) return "http echo " .. d end,
    big = function(d) T.add("big:" .. me, "http|" .. #d .. "|" .. ngx.crc32_long(d)) end,
    both = function(d) T.add("both", "http|" .. me .. "|" .. d); return "http" end }
  -- before the stream VM has joined: its copy to this worker waits in the queue
  assert(ipc.broadcast("early", "from " .. me))
]]

-- the stream VM: its handlers, a shared dict of what they got, and a server that
-- runs one line of Lua per connection (in the content phase) and answers with
-- the pid of the worker that ran it and what the line returned
local STREAM = [[
  lua_shared_dict ngx_ipc_s 8m;
  init_worker_by_lua_block {
    local ipc = require "ngx.ipc"
    local S = ngx.shared.ngx_ipc_s
    local me = ngx.worker.pid()
    function add(key, v)
      local n = S:incr(key .. "#", 1, 0)
      S:set(key .. "@" .. n, v)
    end
    function list(key)
      local out = {}
      for i = 1, S:get(key .. "#") or 0 do out[i] = S:get(key .. "@" .. i) end
      return out
    end
    local function rec(kind)
      return function(d)
        add(kind .. ":" .. me, table.concat({ "stream", tostring(ipc.sender), tostring(ipc.sender_id), d }, "|"))
      end
    end
    local ok, err = pcall(ipc.receive, { rec = rec("rec"), sonly = rec("sonly"), early = rec("early"),
      secho = function(d) return "stream echo " .. d .. " from " .. me end,
      big = function(d) add("big:" .. me, "stream|" .. #d .. "|" .. ngx.crc32_long(d)) end,
      both = function(d) add("both", "stream|" .. me .. "|" .. d); return "stream" end,
      sslow = function(d) ngx.sleep(tonumber(d)); add("sslow:" .. me, "done") end })
    if not ok then add("init_errors", tostring(err)) end
  }
  server {
    listen 127.0.0.1:STREAM_PORT;
    preread_by_lua_block {
      -- a call from preread, when a line asked for one (the flag is set first)
      local S = ngx.shared.ngx_ipc_s
      local to = S:get("preread_call")
      if to and S:delete("preread_call") then
        local v, err = require("ngx.ipc").call(to, "hecho", "from preread")
        add("preread", tostring(v) .. "|" .. tostring(err))
      end
    }
    content_by_lua_block {
      local sock = ngx.req.socket()
      local line = sock:receive()
      local f, err = loadstring(line or "")
      local res
      if f then
        setfenv(f, setmetatable({ ipc = require "ngx.ipc" }, { __index = _G }))
        local ok, v = pcall(f)
        res = ok and { v = v } or { err = tostring(v) }
      else
        res = { err = err }
      end
      ngx.print(ngx.worker.pid(), "\n", require("ngx_ipc_t").serialize(res))
    }
  }
]]

local function ask(inst, code)
  local body = assert(inst:stream_ask(code))
  local pid, ser = body:match("^(%d+)\n(.*)$")
  assert(pid, "stream answer: " .. tostring(body))
  local res = assert(loadstring("return " .. ser))()
  if res.err then
    error("stream line failed in " .. pid .. ": " .. res.err, 2)
  end
  return res.v, tonumber(pid)
end

local function slist(inst, key)
  return ask(inst, ("return list(%q)"):format(key))
end

local function has(l, v)
  for _, x in ipairs(l) do
    if x == v then return true end
  end
  return false
end

-- waits until worker `pid`'s http VM has "http" .. want under "<key>:<pid>",
-- and its stream VM "stream" .. want
local function wait_both(inst, key, pid, want, what)
  inst:wait_for(function()
    local l = inst:list(key .. ":" .. pid)
    return has(l, "http" .. want), table.concat(l, "; ")
  end, 10, what .. " in the http VM of " .. pid)
  inst:wait_for(function()
    local l = slist(inst, key .. ":" .. pid)
    return has(l, "stream" .. want), table.concat(l, "; ")
  end, 10, what .. " in the stream VM of " .. pid)
end

describe("stream {} Lua beside http {} Lua", function()
  if not has_stream_lua() then
    pending("needs an nginx with stream Lua (NGX_IPC_T_NGINX=" .. NGINX .. " has none)")
    return
  end

  local inst, pids, by_id, id_of

  setup(function()
    inst = nginx.start { workers = 2, init_worker = HTTP, stream = STREAM }
    pids = inst:workers()
    by_id = inst:by_id()
    id_of = {}
    for id, pid in pairs(by_id) do id_of[pid] = id end
    -- every worker's stream VM has run its init_worker: a line from each
    inst:wait_for(function()
      local seen = {}
      for _ = 1, 20 do
        local _, pid = ask(inst, "return true")
        seen[pid] = true
      end
      return seen[pids[1]] and seen[pids[2]], "stream lines served by one worker only"
    end, 20, "both workers' stream servers")
  end)

  teardown(function()
    if inst then inst:stop() end
  end)

  it("runs ipc.receive in stream init_worker without error, one pipe per worker", function()
    assert.are.same({}, slist(inst, "init_errors"), "errors from ipc.receive in stream init_worker")
    local dir = inst:run(pids[1], "return require('ngx.ipc.shim').dir()")
    local names = nginx.listdir(dir)
    table.sort(names)
    local want = { tostring(pids[1]), tostring(pids[2]), "w0", "w1" }
    table.sort(want)
    assert.are.same(want, names, "the instance directory: two pipes, each a w<id> and a pid name")
    for _, pid in ipairs(pids) do
      local fifos = 0
      for _, fd in ipairs(nginx.ipc_fds(pid)) do
        if fd:find("/" .. pid .. "$") or fd:find("/w" .. id_of[pid] .. "$") then fifos = fifos + 1 end
      end
      -- its read end and its own write end: one pipe
      assert.are.equal(2, fifos, "descriptors on worker " .. pid .. "'s own pipe: "
        .. table.concat(nginx.ipc_fds(pid), ", "))
    end
  end)

  it("a broadcast from http reaches the http and the stream handlers of every worker", function()
    local a = pids[1]
    assert.is_true(inst:run(a, "return ipc.broadcast('rec', 'from http')"))
    for _, pid in ipairs(pids) do
      wait_both(inst, "rec", pid, "|" .. a .. "|" .. id_of[a] .. "|from http", "the broadcast from http")
    end
  end)

  it("a broadcast from stream Lua reaches both VMs of every worker, with the sender right", function()
    local ok, from = ask(inst, "return ipc.broadcast('rec', 'from stream')")
    assert.is_true(ok)
    for _, pid in ipairs(pids) do
      wait_both(inst, "rec", pid, "|" .. from .. "|" .. id_of[from] .. "|from stream", "the broadcast from stream")
    end
  end)

  it("send by pid from http reaches a name only the stream VM handles, and back", function()
    local a, b = pids[1], pids[2]
    assert.is_true(inst:run(a, ("return ipc.send(%d, 'sonly', 'to stream')"):format(b)))
    inst:wait_for(function()
      local l = slist(inst, "sonly:" .. b)
      return has(l, "stream|" .. a .. "|" .. id_of[a] .. "|to stream"), table.concat(l, "; ")
    end, 10, "the stream handler of " .. b)
    local ok, from = ask(inst, ("return ipc.send(%d, 'honly', 'to http')"):format(a))
    assert.is_true(ok)
    inst:wait_for(function()
      return has(inst:list("honly:" .. a), "http|" .. from .. "|" .. id_of[from] .. "|to http"),
        inst:list("honly:" .. a)
    end, 10, "the http handler of " .. a)
    assert.are.same({}, slist(inst, "honly:" .. a), "no stream handler ran for honly")
    assert.are.same({}, inst:list("sonly:" .. b), "no http handler ran for sonly")
  end)

  it("calls cross the VMs both ways and their answers reach the VM that called", function()
    local a, b = pids[1], pids[2]
    assert.are.equal("stream echo x from " .. b, inst:run(a, ("return ipc.call(%d, 'secho', 'x')"):format(b)))
    local v = ask(inst, ("return ipc.call(%d, 'hecho', 'y')"):format(a))
    assert.are.equal("http echo y", v)
    -- to itself, across its own VMs
    local w, pid = ask(inst, "return ipc.call(ngx.worker.pid(), 'hecho', 'z')")
    assert.are.equal("http echo z", w, "a call from worker " .. pid .. "'s stream VM to its http VM")
    assert.are.equal("stream echo q from " .. a, inst:run(a, ("return ipc.call(%d, 'secho', 'q')"):format(a)))
    local _, err = inst:run(a, ("return ipc.call(%d, 'nobody', 'q', 2)"):format(b))
    assert.truthy(tostring(err):find("no handler", 1, true), "a call to a name no VM has: " .. tostring(err))
    local calls = inst:run(a, "return ipc.stats().calls")
    assert.are.equal(0, calls.late, "late answers in " .. a)
  end)

  it("an alert the http init_worker sent before the stream VM joined reaches the stream handlers", function()
    for _, pid in ipairs(pids) do
      inst:wait_for(function()
        local l = slist(inst, "early:" .. pid)
        return has(l, "stream|" .. pids[1] .. "|" .. id_of[pids[1]] .. "|from " .. pids[1])
          and has(l, "stream|" .. pids[2] .. "|" .. id_of[pids[2]] .. "|from " .. pids[2])
          and #l == 2, table.concat(l, "; ")
      end, 10, "both workers' early broadcasts in the stream VM of " .. pid)
    end
  end)

  it("a large broadcast (its own copy no longer lent) arrives whole in both VMs of the sender", function()
    local a = pids[1]
    local sum = inst:run(a, [[
      local d = string.rep("0123456789abcdef", 4096)
      assert(ipc.broadcast("big", d))
      return #d .. "|" .. ngx.crc32_long(d)
    ]])
    for _, pid in ipairs(pids) do
      wait_both(inst, "big", pid, "|" .. sum, "the large alert")
    end
  end)

  it("a call to a name both VMs handle runs one handler, the first VM's", function()
    local a, b = pids[1], pids[2]
    assert.are.equal("http", inst:run(a, ("return ipc.call(%d, 'both', 'c1')"):format(b)))
    assert.are.equal("http", (ask(inst, ("return ipc.call(%d, 'both', 'c2')"):format(b))))
    -- a plain alert to the same name reaches both; then nothing more can come
    assert.is_true(inst:run(a, ("return ipc.send(%d, 'both', 'plain')"):format(b)))
    inst:wait_for(function()
      return #slist(inst, "both") == 1 and #inst:list("both") == 3, #inst:list("both")
    end, 10, "the plain alert in both VMs")
    assert.are.same({ "http|" .. b .. "|c1", "http|" .. b .. "|c2", "http|" .. b .. "|plain" }, inst:list("both"))
    assert.are.same({ "stream|" .. b .. "|plain" }, slist(inst, "both"))
  end)

  it("while a stream handler yields, the http VM of the same worker still gets its alerts", function()
    local a, b = pids[1], pids[2]
    assert.is_true(inst:run(a, ("return ipc.send(%d, 'sslow', '4')"):format(b)))
    assert.is_true(inst:run(a, ("return ipc.send(%d, 'honly', 'meanwhile')"):format(b)))
    inst:wait_for(function()
      local l = inst:list("honly:" .. b)
      return has(l, "http|" .. a .. "|" .. id_of[a] .. "|meanwhile"), table.concat(l, "; ")
    end, 3, "the http alert while the stream handler sleeps 4 s")
    assert.are.same({}, slist(inst, "sslow:" .. b), "the stream handler is still asleep")
    inst:wait_for(function()
      return #slist(inst, "sslow:" .. b) == 1
    end, 10, "the stream handler to finish")
  end)

  it("works from preread and from a timer in stream Lua", function()
    local a = pids[1]
    ask(inst, ("return ngx.shared.ngx_ipc_s:set('preread_call', %d)"):format(a))
    -- the next connection's preread makes the call
    ask(inst, "return true")
    inst:wait_for(function()
      local l = slist(inst, "preread")
      return has(l, "http echo from preread|nil"), table.concat(l, "; ")
    end, 10, "the call from preread")
    local _, from = ask(inst, [[return ngx.timer.at(0, function() ipc.broadcast('rec', 'from a timer') end)]])
    for _, pid in ipairs(pids) do
      inst:wait_for(function()
        local l = slist(inst, "rec:" .. pid)
        return has(l, "stream|" .. from .. "|" .. id_of[from] .. "|from a timer"), table.concat(l, "; ")
      end, 10, "the timer's broadcast in the stream VM of " .. pid)
    end
  end)
end)

describe("stream {} Lua in the privileged agent", function()
  local ok_agent = nginx.sh("nm -D " .. nginx.shq(NGINX) .. " | grep -q ngx_is_privileged_agent")
  if not has_stream_lua() or not ok_agent then
    pending("needs an nginx with stream Lua and the privileged agent (NGX_IPC_T_NGINX=" .. NGINX .. ")")
    return
  end

  local inst

  teardown(function()
    if inst then inst:stop() end
  end)

  it("the agent's two VMs join as one process: a worker's broadcast reaches both", function()
    inst = nginx.start { workers = 2, agent = true, init_worker = HTTP, stream = STREAM }
    local agent = inst:agent()
    local a = inst:workers()[1]
    local id = inst:run(a, "return ngx.worker.id()")
    assert.is_true(inst:run(a, "return ipc.broadcast('rec', 'to the agent')"))
    wait_both(inst, "rec", agent, "|" .. a .. "|" .. id .. "|to the agent", "the broadcast")
    local dir = inst:run(agent, "return require('ngx.ipc.shim').dir()")
    local mine = 0
    for _, name in ipairs(nginx.listdir(dir)) do
      if name == tostring(agent) then mine = mine + 1 end
    end
    assert.are.equal(1, mine, "one pipe for the agent's two VMs")
    assert.are.equal(2, inst:run(agent, "return require('ngx.ipc.shim').consumers()"))
  end)
end)
