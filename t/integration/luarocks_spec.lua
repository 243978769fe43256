-- `luarocks make` with Debian's luarocks builds the shim from a copy of the sources
-- (no lib/, no node_modules: what a user has) and installs Lua and shim into a tree
-- from which the canonical example runs on a real nginx.
local nginx = require "nginx"

local sh, shq = nginx.sh, nginx.shq

describe("luarocks make rockspec/ngx-ipc-scm-1.rockspec", function()
  local inst, tmp

  after_each(function()
    if inst then inst:stop(); inst = nil end
    if tmp then sh("rm -rf " .. shq(tmp)); tmp = nil end
  end)

  it("installs ngx/ipc.lua and ngx_ipc_shim.so into a tree from which the canonical example works", function()
    local ok, out = sh("mktemp -d /tmp/ngx-ipc-rock.XXXXXX")
    assert.is_true(ok, out)
    tmp = out:gsub("%s+$", "")
    local src, tree = tmp .. "/src", tmp .. "/tree"
    -- only what a source checkout has: the sources, the generated Lua, the rockspec
    ok, out = sh(("mkdir -p %s && cd %s && cp -R c build meta rockspec Makefile README.md %s/")
      :format(shq(src), shq(nginx.root), shq(src)))
    assert.is_true(ok, out)

    ok, out = sh(("cd %s && luarocks --lua-version 5.1 --tree %s make rockspec/ngx-ipc-scm-1.rockspec")
      :format(shq(src), shq(tree)))
    assert.is_true(ok, "luarocks make failed:\n" .. out)
    for _, f in ipairs { "/share/lua/5.1/ngx/ipc.lua", "/share/lua/5.1/ngx/ipc/loop.lua",
                         "/share/lua/5.1/ngx/ipc/shim.lua", "/share/lua/5.1/ngx/ipc/cluster.lua",
                         "/share/lua/5.1/ngx/ipc/cluster/reader.lua", "/share/lua/5.1/ngx/ipc/worker_events/v2.lua",
                         "/lib/lua/5.1/ngx_ipc_shim.so" } do
      assert.is_truthy(nginx.read_file(tree .. f), "installed file " .. tree .. f)
    end
    -- the lua-language-server definitions stay in the rock's directory, off package.path
    local meta = tree .. "/lib/luarocks/rocks-5.1/ngx-ipc/scm-1/meta/ngx/ipc.lua"
    assert.are.equal("---@meta ngx.ipc", (nginx.read_file(meta) or ""):match("^[^\n]*"), "installed file " .. meta)
    -- and the drop-ins' (make install installs all of meta/)
    local dropin = tree .. "/lib/luarocks/rocks-5.1/ngx-ipc/scm-1/meta/ngx/ipc/events/compat.lua"
    assert.are.equal("---@meta ngx.ipc.events.compat", (nginx.read_file(dropin) or ""):match("^[^\n]*"), "installed file " .. dropin)
    ok, out = sh("chmod -R a+rX " .. shq(tmp))
    assert.is_true(ok, out)

    inst = nginx.start {
      workers = 2,
      raw_http = nginx.canonical(),
      lua_path = tree .. "/share/lua/5.1/?.lua;;",
      lua_cpath = tree .. "/lib/lua/5.1/?.so;;",
    }
    local dst = inst:children()[1]
    local status, body = inst:wait_for(function()
      local s, b = inst:curl("/send/" .. dst .. "/fromrocks")
      return s == 200 and s, b
    end, 10, "a 200 from /send/" .. dst)
    assert.are.equal(200, status, body)
    local line = inst:wait_for(function()
      return inst:log():match("%[alert%] " .. dst .. "#%d+: [^\n]*sender%d+ says fromrocks")
    end, 5, "worker " .. dst .. " to log 'says fromrocks'")
    assert.is_truthy(line)
  end)
end)
