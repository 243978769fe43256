-- OpenResty's privileged agent as a full participant: the init_worker code the
-- workers run joins it too; it receives broadcasts and unicasts, sends, calls
-- and answers; workers() lists it; it survives its own kill -9, a reload and a
-- quit like a worker. Needs an nginx with the agent (NGX_IPC_T_NGINX, e.g. an
-- OpenResty build, with NGX_IPC_T_MODULES=none); Debian's nginx has none, and
-- there every case is pending.
local nginx = require "nginx"

local NGINX = os.getenv("NGX_IPC_T_NGINX") or "/usr/sbin/nginx"

local function has_agent()
  local ok, out = nginx.sh("nm -D " .. nginx.shq(NGINX) .. " | grep -c ngx_is_privileged_agent")
  return ok and tonumber(out:match("%d+")) ~= nil and tonumber(out:match("%d+")) > 0
end

-- run in every worker and in the agent, from the harness's init_worker
local HANDLERS = [[
  local ipc = require "ngx.ipc"
  local me = ngx.worker.pid()
  local ok, err = pcall(ipc.receive, {
    rec = function(d)
      T.add("rec:" .. me, table.concat({ tostring(ipc.sender), tostring(ipc.sender_id), d }, "|"))
    end,
    echo = function(d) return "echo " .. d .. " from " .. me end,
    hello = function(d) assert(ipc.reply("rec", "reply to " .. d)) end,
  })
  if not ok then
    T.add("init_errors", tostring(err))
  end
]]

local seq = 0
local function tag(s)
  seq = seq + 1
  return (s or "t") .. seq
end

-- waits until `pid` has handled "rec" with `want` ("sender|sender_id|data"; a
-- leading "*" matches any sender); how many times it did
local function wait_rec(inst, pid, want, what)
  local any = want:sub(1, 1) == "*"
  local function hits(l)
    local n = 0
    for _, v in ipairs(l) do
      if v == want or (any and v:sub(-(#want - 1)) == want:sub(2)) then n = n + 1 end
    end
    return n
  end
  local l = inst:wait_for(function()
    local got = inst:list("rec:" .. pid)
    return hits(got) > 0 and got, table.concat(got, "; ")
  end, 10, what .. " in " .. pid)
  return hits(l)
end

-- the owner and type of the pipe named after `pid` in `dir`, seen from the test
local function pipe_of(dir, pid)
  local ok, out = nginx.sh("stat -c '%u %F' " .. nginx.shq(dir .. "/" .. pid))
  return ok and out:gsub("%s+$", "") or nil
end

describe("the privileged agent", function()
  if not has_agent() then
    pending("needs an nginx with OpenResty's privileged agent (NGX_IPC_T_NGINX=" .. NGINX .. " has none)")
    return
  end

  local inst, workers, agent

  setup(function()
    inst = nginx.start { workers = 2, agent = true, init_worker = HANDLERS }
    workers = inst:workers()
    agent = inst:agent()
  end)

  teardown(function()
    if inst then inst:stop() end
  end)

  it("runs the workers' init_worker code: ipc.receive there joins it without error", function()
    assert.are.same({}, inst:list("init_errors"), "errors from ipc.receive in init_worker")
    assert.is_nil(inst:log():find("only nginx worker processes", 1, true),
      "error.log says the agent was refused")
    assert.are.same("agent", inst:run(agent, "return require('ngx.process').type() == 'privileged agent' and 'agent'"))
    local dir = inst:run(workers[1], "return require('ngx.ipc.shim').dir()")
    assert.are.equal(dir, inst:run(agent, "return require('ngx.ipc.shim').dir()"),
      "the agent's instance directory is the workers'")
    -- the agent runs as root, its pipe belongs to the workers' user
    local wuid = nginx.read_file("/proc/" .. workers[1] .. "/status"):match("Uid:%s+%d+%s+(%d+)")
    assert.are.equal(wuid .. " fifo", pipe_of(dir, agent), "owner and type of the agent's pipe")
  end)

  it("ipc.workers() lists it after the workers as { pid, agent = true }, in the workers and in itself", function()
    local by_id = inst:by_id()
    local want = { { id = 0, pid = by_id[0] }, { id = 1, pid = by_id[1] }, { pid = agent, agent = true } }
    for _, pid in ipairs { workers[1], workers[2], agent } do
      assert.are.same(want, inst:run(pid, "return ipc.workers()"), "ipc.workers() in " .. pid)
    end
  end)

  it("gets a worker's broadcast once, as every worker does", function()
    local t = tag("b")
    assert.is_true(inst:run(workers[1], ("return ipc.broadcast('rec', %q)"):format(t)))
    local from = workers[1] .. "|" .. inst:run(workers[1], "return ngx.worker.id()") .. "|"
    -- a second one after it: once it is in, a duplicate of the first would be too
    assert.is_true(inst:run(workers[1], ("return ipc.broadcast('rec', %q)"):format(t .. "-after")))
    for _, pid in ipairs { workers[1], workers[2], agent } do
      wait_rec(inst, pid, from .. t .. "-after", "the second broadcast")
      assert.are.equal(1, wait_rec(inst, pid, from .. t, "the broadcast"), "copies of the broadcast handled by " .. pid)
    end
  end)

  it("broadcasts to every worker and itself; sender is its pid, sender_id nil", function()
    local t = tag("a")
    assert.is_true(inst:run(agent, ("return ipc.broadcast('rec', %q)"):format(t)))
    for _, pid in ipairs { workers[1], workers[2], agent } do
      wait_rec(inst, pid, agent .. "|nil|" .. t, "the agent's broadcast")
    end
  end)

  it("is reached by send and call to its pid; it replies, sends and calls workers", function()
    local t = tag("s")
    assert.is_true(inst:run(workers[2], ("return ipc.send(%d, 'hello', %q)"):format(agent, t)))
    wait_rec(inst, workers[2], agent .. "|nil|reply to " .. t, "the agent's reply")
    assert.are.equal("echo x from " .. agent, inst:run(workers[1], ("return ipc.call(%d, 'echo', 'x')"):format(agent)))
    assert.are.equal("echo y from " .. workers[1],
      inst:run(agent, ("return ipc.call(%d, 'echo', 'y')"):format(workers[1])))
    assert.are.equal("echo z from " .. inst:by_id()[1],
      inst:run(agent, "return ipc.call_worker(1, 'echo', 'z')"))
    local id = inst:run(workers[1], "return ngx.worker.id()")
    assert.is_true(inst:run(workers[1], ("return ipc.send(%d, 'rec', 'u')"):format(agent)))
    wait_rec(inst, agent, workers[1] .. "|" .. id .. "|u", "the unicast with sender and sender_id")
  end)
end)

describe("the privileged agent's life", function()
  if not has_agent() then
    pending("needs an nginx with OpenResty's privileged agent (NGX_IPC_T_NGINX=" .. NGINX .. " has none)")
    return
  end

  local inst

  after_each(function()
    if inst then inst:stop() end
    inst = nil
  end)

  it("after kill -9, the respawned agent joins and gets broadcasts; the dead pid is refused", function()
    inst = nginx.start { workers = 2, agent = true, init_worker = HANDLERS }
    local w = inst:workers()
    local old = inst:agent()
    local dir = inst:run(w[1], "return require('ngx.ipc.shim').dir()")
    nginx.sh("kill -9 " .. old)
    local new = inst:wait_for(function()
      local pid = inst:agent()
      return pid ~= old and pid, "still " .. tostring(pid)
    end, 10, "a new agent")
    local ok, err = inst:run(w[1], ("return ipc.send(%d, 'rec', 'to the dead')"):format(old))
    assert.is_nil(ok, "send to the killed agent's pid")
    assert.truthy(tostring(err):find("no such worker", 1, true), "its error: " .. tostring(err))
    local t = tag("k")
    assert.is_true(inst:run(w[2], ("return ipc.broadcast('rec', %q)"):format(t)))
    wait_rec(inst, new, "*|" .. t, "the broadcast in the respawned agent")
    assert.is_nil(pipe_of(dir, old), "the killed agent's pipe is swept")
    local list = inst:run(w[1], "return ipc.workers()")
    assert.are.same({ pid = new, agent = true }, list[3], "ipc.workers() names the new agent")
    assert.are.equal(3, #list, "two workers and one agent listed")
  end)

  it("a reload: the old agent leaves, the new one joins the new generation only", function()
    inst = nginx.start { workers = 2, agent = true, init_worker = HANDLERS }
    local old = inst:agent()
    local old_dir = inst:run(old, "return require('ngx.ipc.shim').dir()")
    inst:reload()
    local new = inst:agent()
    assert.are_not.equal(old, new, "a new agent after the reload")
    inst:wait_for(function() return not nginx.alive(old) end, 10, "the old agent to exit")
    local w = inst:workers()
    local t = tag("r")
    assert.is_true(inst:run(w[1], ("return ipc.broadcast('rec', %q)"):format(t)))
    wait_rec(inst, new, "*|" .. t, "the new generation's broadcast in the new agent")
    assert.are.same({}, inst:list("rec:" .. old), "the old agent handled nothing")
    assert.are_not.equal(old_dir, inst:run(new, "return require('ngx.ipc.shim').dir()"),
      "the new agent's directory is the new generation's")
    assert.is_nil(pipe_of(old_dir, old), "the old agent's pipe is gone")
  end)

  it("a quit leaves no pipe and no instance directory", function()
    inst = nginx.start { workers = 2, agent = true, init_worker = HANDLERS }
    local agent = inst:agent()
    local dir = inst:run(agent, "return require('ngx.ipc.shim').dir()")
    assert.truthy(pipe_of(dir, agent), "the agent's pipe while it runs")
    assert(inst:quit(10))
    local ok = nginx.sh("test -e " .. nginx.shq(dir))
    assert.is_false(ok, dir .. " after quit: " .. table.concat(nginx.listdir(dir), " "))
  end)
end)
