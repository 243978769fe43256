-- A reload onto another release: the running workers were started with this
-- build, the new generation loads a "next release" (another _VERSION, and a
-- shim built with another wire format, NGX_IPC_WIRE=2). Workers that speak
-- different formats never share a pipe directory: each root is named after its
-- wire format, the new generation talks among itself, and the old one finishes
-- in its own root and removes its instance when its last worker leaves.
local nginx = require "nginx"

local sh, shq = nginx.sh, nginx.shq
local ROOT = nginx.root

local must = nginx.must

-- what a process has open under /tmp/ngx_ipc* (its pipes, the directories' fds)
local function ipc_paths(pid)
  local out = must(("for f in /proc/%d/fd/*; do readlink \"$f\"; done 2>/dev/null; true"):format(pid))
  local paths = {}
  for line in out:gmatch("[^\n]+") do
    if line:sub(1, 1) == "/" and line:find("/tmp/ngx_ipc", 1, true) then
      paths[#paths + 1] = line
    end
  end
  return paths
end

local function prefix_of(list, root)
  for _, p in ipairs(list) do
    if p ~= root and p:sub(1, #root + 1) ~= root .. "/" then
      return p
    end
  end
end

describe("a reload onto a release with another wire format", function()
  local inst, tmp

  teardown(function()
    if inst then inst:stop() end
    if tmp then sh("rm -rf " .. shq(tmp)) end
  end)

  it("starts the new generation in its own root; the old one finishes in its own and shares no pipe with it", function()
    tmp = must("mktemp -d /tmp/ngx-ipc-upgrade.XXXXXX"):gsub("%s+$", "")
    -- the next release: the same sources, wire format 2, another _VERSION
    must(("cd %s && make --no-print-directory -B shim SHIM=%s CFLAGS='-O2 -g -DNGX_IPC_WIRE=2' 2>&1")
      :format(shq(ROOT), shq(tmp .. "/ngx_ipc_shim.so")), "building the wire-2 shim")
    local lua = assert(nginx.read_file(ROOT .. "/build/ngx/ipc.lua"))
    local v1 = assert(lua:match('local VERSION = "([^"]+)"'), "build/ngx/ipc.lua names no VERSION")
    local next_lua, n = lua:gsub('local VERSION = "[^"]+"', 'local VERSION = "' .. v1 .. '-next"')
    assert.are.equal(1, n)
    local f = assert(io.open(tmp .. "/ipc.lua", "w"))
    f:write(next_lua)
    f:close()

    inst = nginx.start { workers = 2, init_worker = [[
      local ipc = require "ngx.ipc"
      ipc.receive("up", function(d) T.add("up:" .. ngx.worker.pid(), d) end)
    ]] }
    local old = inst:workers()
    local info = [[return { v = ipc._VERSION, dir = require("ngx.ipc.shim").dir() }]]
    local old_dir = inst:run(old[1], info).dir
    assert.are.equal(v1, inst:run(old[1], info).v)
    local euid = old_dir:match("^/tmp/ngx_ipc%.w1%.(%d+)/")
    assert.is_truthy(euid, "the running generation's directory is under /tmp/ngx_ipc.w1.<euid>: " .. old_dir)

    -- one old worker is kept busy across the reload (a command waiting for "go")
    local busy = inst:spawn({ old[1] }, [[
      assert(T.wait(function() return T.dict:get("go") end, 30), "no go")
      local ok, err = ipc.broadcast("up", "from the old generation")
      return { ok = ok, err = err }
    ]])

    -- replaced by rename, never rewritten: the running workers have them mapped
    local lib = inst.prefix .. "/lib"
    must(("cp %s %s/.next.so && mv %s/.next.so %s/ngx_ipc_shim.so && cp %s %s/ngx/.next.lua && mv %s/ngx/.next.lua %s/ngx/ipc.lua && chmod -R a+rX %s")
      :format(shq(tmp .. "/ngx_ipc_shim.so"), shq(lib), shq(lib), shq(lib), shq(tmp .. "/ipc.lua"), shq(lib),
        shq(lib), shq(lib), shq(lib)))
    local _, new = inst:reload()
    assert.is_true(nginx.alive(old[1]), "the busy old worker still runs")

    local root2 = "/tmp/ngx_ipc.w2." .. euid
    for _, pid in ipairs(new) do
      local r = inst:run(pid, info)
      assert.are.equal(v1 .. "-next", r.v, "the new generation runs the next release")
      assert.are.equal(root2 .. "/", r.dir:sub(1, #root2 + 1), "worker " .. pid .. "'s directory")
    end

    -- the new generation talks among itself
    assert.is_true(inst:run(new[1], "return ipc.broadcast('up', 'from the new generation')"))
    for _, pid in ipairs(new) do
      inst:wait_count("up:" .. pid, 1, 10)
      assert.are.same({ "from the new generation" }, inst:list("up:" .. pid, new[1]))
    end

    -- no process has a pipe in the other's root
    local root1 = "/tmp/ngx_ipc.w1." .. euid
    local old_fifos = ipc_paths(old[1])
    assert.is_true(#old_fifos > 0, "the old worker's pipes")
    assert.is_nil(prefix_of(old_fifos, root1), "an old worker's pipe outside " .. root1)
    for _, pid in ipairs(new) do
      local fifos = ipc_paths(pid)
      assert.is_true(#fifos > 0, "worker " .. pid .. "'s pipes")
      assert.is_nil(prefix_of(fifos, root2), "a new worker's pipe outside " .. root2)
    end
    for _, pid in ipairs(new) do
      assert.is_nil(nginx.read_file(old_dir .. "/" .. pid), "a name of new worker " .. pid .. " in the old directory")
    end

    -- the old worker, shutting down, sends nothing; once it leaves, its instance goes
    inst:run(new[1], "T.dict:set('go', true)")
    local r = inst:collect(busy, 20)[old[1]]
    assert.is_true(r.ok, tostring(r.err))
    assert.is_nil(r.v[1].ok, "a broadcast from the old generation")
    assert.is_truthy(tostring(r.v[1].err):find("shutting down", 1, true), tostring(r.v[1].err))
    inst:wait_for(function()
      return not nginx.alive(old[1]) and not sh("test -e " .. shq(old_dir))
    end, 20, "the old worker to exit and its instance directory " .. old_dir .. " to go")
    for _, pid in ipairs(new) do
      assert.are.same({ "from the new generation" }, inst:list("up:" .. pid, new[1]), "alerts at " .. pid)
    end
  end)
end)
