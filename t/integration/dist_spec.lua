-- make dist: what a user installs without a clone. The source rock is installed
-- with luarocks into a fresh tree, offline, and that tree serves the canonical
-- example on a real nginx; luarocks remove takes it away again. (The npm tarball
-- is installed into a TypeScriptToLua project by typed_spec.) A version that one
-- place names differently stops make dist.
local nginx = require "nginx"

local sh, shq = nginx.sh, nginx.shq
local ROOT = nginx.root

local must = nginx.must

local function version()
  local pkg = assert(nginx.read_file(ROOT .. "/package.json"))
  return assert(pkg:match('\n  "version": "([^"]+)"'), "package.json: no version")
end

describe("make dist", function()
  local tmp, dist, v, inst

  setup(function()
    tmp = must("mktemp -d /tmp/ngx-ipc-dist-t.XXXXXX"):gsub("%s+$", "")
    dist = tmp .. "/dist"
    v = version()
    must(("cd %s && make --no-print-directory dist DIST=%s 2>&1"):format(shq(ROOT), shq(dist)), "make dist")
  end)

  after_each(function()
    if inst then inst:stop(); inst = nil end
  end)

  teardown(function()
    if tmp then sh("rm -rf " .. shq(tmp)) end
  end)

  it("builds the source rock, the npm tarball and checksums that verify", function()
    local rock, tgz = ("ngx-ipc-%s-1.src.rock"):format(v), ("ngx-ipc-%s.tgz"):format(v)
    local sums = must(("cd %s && sha256sum -c SHA256SUMS 2>&1"):format(shq(dist)), "sha256sum -c")
    assert.is_truthy(sums:find(rock .. ": OK", 1, true), sums)
    assert.is_truthy(sums:find(tgz .. ": OK", 1, true), sums)

    local listing = must(("unzip -Z1 %s"):format(shq(dist .. "/" .. rock)))
    local want = ("ngx-ipc-%s-1.rockspec\nngx-ipc-%s.tar.gz\n"):format(v, v)
    assert.are.equal(want, listing:gsub("\r", ""))

    local files = must(("tar -tzf %s"):format(shq(dist .. "/" .. tgz)))
    for _, f in ipairs { "package/package.json", "package/types/ngx.ipc.d.ts", "package/build/ngx/ipc.lua",
                         "package/README.md", "package/LICENSE", "package/CHANGELOG.md",
                         -- the drop-ins' declarations and every lua-language-server file
                         "package/types/ngx.ipc.events.d.ts", "package/types/ngx.ipc.events.compat.d.ts",
                         "package/types/ngx.ipc.worker_events.d.ts", "package/types/ngx.ipc.worker_events.v2.d.ts",
                         "package/types/ngx.ipc.mlcache.d.ts",
                         "package/meta/ngx/ipc.lua", "package/meta/ngx/ipc/events.lua",
                         "package/meta/ngx/ipc/events/compat.lua", "package/meta/ngx/ipc/worker_events.lua",
                         "package/meta/ngx/ipc/worker_events/v2.lua",
                         "package/meta/ngx/ipc/mlcache.lua" } do
      assert.is_truthy(files:find("\n" .. f .. "\n", 1, true) or files:find("^" .. f .. "\n"),
        f .. " in the npm tarball:\n" .. files)
    end
    -- nothing of the repository's own tests or sources of the shim's build
    assert.is_nil(files:find("package/t/", 1, true), files)
    assert.is_nil(files:find("node_modules", 1, true), files)
  end)

  it("installs the source rock into a fresh tree, offline, which serves the canonical example; luarocks remove takes it away", function()
    local tree = tmp .. "/tree"
    local rock = ("%s/ngx-ipc-%s-1.src.rock"):format(dist, v)
    -- from a directory of its own, as a user who downloaded only the rock
    local out = must(("cd %s && luarocks --lua-version 5.1 --tree %s install %s 2>&1")
      :format(shq(tmp), shq(tree), shq(rock)), "luarocks install of the source rock")
    assert.is_truthy(out:find(("ngx-ipc %s-1 is now installed"):format(v), 1, true), out)
    local installed = tree .. "/share/lua/5.1/ngx/ipc.lua"
    assert.are.equal(nginx.read_file(ROOT .. "/build/ngx/ipc.lua"), nginx.read_file(installed),
      "the installed ngx/ipc.lua is the committed build/ngx/ipc.lua")
    assert.is_truthy(nginx.read_file(tree .. "/lib/lua/5.1/ngx_ipc_shim.so"), "the shim is built and installed")
    must("chmod -R a+rX " .. shq(tmp))

    inst = nginx.start {
      workers = 2,
      raw_http = nginx.canonical(),
      lua_path = tree .. "/share/lua/5.1/?.lua;;",
      lua_cpath = tree .. "/lib/lua/5.1/?.so;;",
    }
    local a, b = inst:children()[1], inst:children()[2]
    local status, body = inst:wait_for(function()
      local s, bd = inst:curl("/send/" .. b .. "/fromdist")
      return s == 200 and s, bd
    end, 10, "a 200 from /send/" .. b)
    assert.are.equal(200, status, body)
    -- send: b logs it; reply: the sender logs b's answer
    inst:wait_for(function()
      return inst:log():match("%[alert%] " .. b .. "#%d+: [^\n]*sender%d+ says fromdist")
    end, 10, "worker " .. b .. " to log 'says fromdist'")
    inst:wait_for(function()
      return inst:log():match("%[alert%] %d+#%d+: [^\n]*" .. b .. " replied hello to you too%. you said fromdist")
    end, 10, "the reply from " .. b .. " to be logged")
    -- broadcast: both workers log it
    inst:curl("/broadcast/everyone")
    for _, pid in ipairs { a, b } do
      inst:wait_for(function()
        return inst:log():match("%[alert%] " .. pid .. "#%d+: [^\n]*says everyone")
      end, 10, "worker " .. pid .. " to log the broadcast")
    end
    inst:stop(); inst = nil

    out = must(("luarocks --lua-version 5.1 --tree %s remove ngx-ipc 2>&1"):format(shq(tree)), "luarocks remove")
    assert.is_nil(nginx.read_file(installed), "ngx/ipc.lua is gone after luarocks remove:\n" .. out)
    assert.is_nil(nginx.read_file(tree .. "/lib/lua/5.1/ngx_ipc_shim.so"), "the shim is gone after luarocks remove")
  end)

  it("refuses to build when a place names another version than package.json", function()
    local copy = tmp .. "/copy"
    must(("mkdir -p %s && cd %s && git ls-files -z | tar --null -T - -cf - | tar -xf - -C %s")
      :format(shq(copy), shq(ROOT), shq(copy)))
    must(("sed -i 's/\"version\": \"%s\"/\"version\": \"9.9.9\"/' %s/package.json"):format(v, shq(copy)))
    local ok, out = sh(("cd %s && DIST=%s bash t/dist.sh 2>&1"):format(shq(copy), shq(tmp .. "/nodist")))
    assert.is_false(ok, "make dist built with mismatching versions:\n" .. out)
    assert.is_truthy(out:find("version 9.9.9 (package.json) disagrees with:", 1, true), out)
    assert.is_truthy(out:find("src/ngx/ipc.ts", 1, true), out)
    assert.is_truthy(out:find("rockspec/ngx-ipc-9.9.9-1.rockspec: missing", 1, true), out)
    assert.is_nil(nginx.read_file(tmp .. "/nodist/ngx-ipc-9.9.9.tgz"), "no artifact")
  end)
end)
