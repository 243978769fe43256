-- The typed API: the npm package's declarations (types/ngx.ipc.d.ts, and the
-- drop-ins' types/ngx.ipc.*.d.ts it references) and the lua-language-server
-- definitions (meta/ngx/ipc.lua, meta/ngx/ipc/) name exactly what the real
-- modules have, and a TypeScriptToLua project (t/tstl-sample) built against the
-- packed npm package, installed offline as a user installs it, runs on a real nginx.
local nginx = require "nginx"

local sh, shq, q = nginx.sh, nginx.shq, nginx.q
local ROOT = nginx.root
local DTS = ROOT .. "/types/ngx.ipc.d.ts"
local META = ROOT .. "/meta/ngx/ipc.lua"
-- the drop-ins: module, its lua-language-server file
local DROPINS = {
  { "ngx.ipc.events", ROOT .. "/meta/ngx/ipc/events.lua" },
  { "ngx.ipc.events.compat", ROOT .. "/meta/ngx/ipc/events/compat.lua" },
  { "ngx.ipc.worker_events", ROOT .. "/meta/ngx/ipc/worker_events.lua" },
  { "ngx.ipc.worker_events.v2", ROOT .. "/meta/ngx/ipc/worker_events/v2.lua" },
  { "ngx.ipc.mlcache", ROOT .. "/meta/ngx/ipc/mlcache.lua" },
}

-- the fields the module serves from its metatable: nil outside a handler, so
-- pairs() cannot show them; each refuses assignment as read-only
local FIELDS = { "sender", "sender_id", "sender_instance" }

local must = nginx.must

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do
    s[v] = true
  end
  return s
end

local function sorted_keys(s)
  local out = {}
  for k in pairs(s) do
    out[#out + 1] = k
  end
  table.sort(out)
  return out
end

-- "" when `declared` and `real` are the same set, else one line per difference
local function differences(where, declared, real, prefix)
  prefix = prefix or "ipc."
  local lines = {}
  for _, name in ipairs(sorted_keys(real)) do
    if not declared[name] then
      lines[#lines + 1] = ("%s does not declare %s%s, which the module has"):format(where, prefix, name)
    end
  end
  for _, name in ipairs(sorted_keys(declared)) do
    if not real[name] then
      lines[#lines + 1] = ("%s declares %s%s, which the module does not have"):format(where, prefix, name)
    end
  end
  return table.concat(lines, "\n")
end

-- the names a meta file gives: its functions (it is plain Lua returning the
-- module table) and the ---@field lines of the module's class (ngx.ipc)
local function meta_names(path, class)
  path, class = path or META, class or "ngx.ipc"
  local ipc = assert(dofile(path), path .. " returns no table")
  local names = {}
  for k, v in pairs(ipc) do
    names[k] = true
    if k == "cluster" then
      for ck in pairs(v) do
        names["cluster." .. ck] = true
      end
    end
  end
  local in_class = false
  for line in io.lines(path) do
    if line == "---@class " .. class then
      in_class = true
    elseif in_class then
      local field = line:match("^%-%-%-@field%s+([%w_]+)")
      if field then
        names[field] = true
      elseif not line:match("^%-%-%-") then
        in_class = false
      end
    end
  end
  return names
end

local function dts_names(module)
  module = module or "ngx.ipc"
  local out = must("node " .. shq(ROOT .. "/t/lib/dts_exports.js") .. " " .. shq(DTS) .. " " .. shq(module) .. " 2>&1",
    "listing the exports of " .. module .. " (types/ngx.ipc.d.ts and its references)")
  local names = {}
  for name in out:gmatch("[^\n]+") do
    names[name] = true
  end
  return names
end

describe("the typed API names exactly the module's public API", function()
  local inst, real, has_cluster

  setup(function()
    inst = nginx.start { workers = 1 }
    local list
    list, has_cluster = inst:run(inst:workers()[1], ([[
      local names = {}
      for k in pairs(ipc) do names[#names + 1] = k end
      for _, f in ipairs(%s) do
        local ok, err = pcall(function() ipc[f] = 1 end)
        if not ok and tostring(err):find(f .. " is read-only", 1, true) then
          names[#names + 1] = f
        else
          rawset(ipc, f, nil)
        end
      end
      if type(ipc.cluster) == "table" then
        for k in pairs(ipc.cluster) do names[#names + 1] = "cluster." .. k end
      end
      return table.concat(names, " "), type(ipc.cluster) == "table"
    ]]):format(nginx.lua_list(FIELDS)))
    real = {}
    for name in list:gmatch("%S+") do
      real[name] = true
    end
  end)

  teardown(function()
    if inst then inst:stop() end
  end)

  -- until the cluster module is part of this build, its names are compared once it is
  local function without_cluster(names)
    if has_cluster then
      return names
    end
    local out = {}
    for k in pairs(names) do
      if k ~= "cluster" and not k:match("^cluster%.") then
        out[k] = true
      end
    end
    return out
  end

  it("in the lua-language-server meta file", function()
    assert.are.equal("", differences("meta/ngx/ipc.lua", without_cluster(meta_names()), real))
  end)

  it("in the TypeScript declaration", function()
    assert.are.equal("", differences("types/ngx.ipc.d.ts", without_cluster(dts_names()), real))
  end)

  it("ipc.cluster included", function()
    if not has_cluster then
      pending("ipc.cluster is not in this build: its declared names are not compared")
      return
    end
    assert.is_true(real["cluster.configure"] and real["cluster.broadcast"], "ipc.cluster's functions")
  end)
end)

describe("the drop-ins' typed APIs name exactly each module's table", function()
  local inst
  local real = {}

  setup(function()
    inst = nginx.start { workers = 1 }
    for _, d in ipairs(DROPINS) do
      local list = inst:run(inst:workers()[1], ([[
        local names = {}
        for k in pairs(require(%s)) do names[#names + 1] = k end
        return table.concat(names, " ")
      ]]):format(q(d[1])))
      real[d[1]] = {}
      for name in list:gmatch("%S+") do
        real[d[1]][name] = true
      end
    end
  end)

  teardown(function()
    if inst then inst:stop() end
  end)

  for _, d in ipairs(DROPINS) do
    local module, meta = d[1], d[2]
    it(module .. ": in its meta file and its declaration", function()
      assert.is_truthy(next(real[module]), module .. " has names")
      local where = meta:sub(#ROOT + 2)
      assert.are.equal("", differences(where, meta_names(meta, module), real[module], module .. "."))
      assert.are.equal("", differences("types/ (module \"" .. module .. "\")", dts_names(module), real[module], module .. "."))
    end)
  end
end)

describe("types/ngx.ipc.d.ts", function()
  it("promises what src/ngx/ipc.ts implements (t/typed/conformance.ts type-checks)", function()
    local ok, out = sh(("cd %s && node_modules/.bin/tsc -p t/typed/tsconfig.json --pretty false 2>&1"):format(shq(ROOT)))
    assert.is_true(ok, "the declaration and the implementation disagree:\n" .. out)
  end)

  it("and the drop-ins' declarations what their implementations accept (t/typed/dropins.ts)", function()
    -- the same tsc run checks t/typed/dropins.ts; that it is part of it is checked here
    local cfg = assert(nginx.read_file(ROOT .. "/t/typed/tsconfig.json"))
    assert.is_truthy(cfg:find('"dropins.ts"', 1, true), "t/typed/tsconfig.json includes dropins.ts:\n" .. cfg)
    local dts = assert(nginx.read_file(DTS))
    for _, d in ipairs(DROPINS) do
      local file = "types/" .. d[1] .. ".d.ts"
      assert.is_truthy(dts:find('/// <reference path="' .. d[1] .. '.d.ts" />', 1, true), "types/ngx.ipc.d.ts references " .. file)
      assert.is_truthy((nginx.read_file(ROOT .. "/" .. file) or ""):find('declare module "' .. d[1] .. '"', 1, true),
        file .. " declares the module " .. d[1])
    end
  end)
end)

-- the problems of a meta file's functions (---@param for each parameter, a
-- ---@return, a description), and how many functions it has
local function meta_doc_problems(path)
  local problems, functions = {}, 0
  local doc = {}
  for line in io.lines(path) do
    local fname, params = line:match("^function ([%w_.:]+)%(([^)]*)%)")
    if fname then
      functions = functions + 1
      local block = table.concat(doc, "\n")
      for p in params:gmatch("[%w_]+") do
        if not block:find("---@param " .. p .. "%??%s") then
          problems[#problems + 1] = fname .. ": no ---@param " .. p
        end
      end
      if not block:find("---@return ", 1, true) then
        problems[#problems + 1] = fname .. ": no ---@return"
      end
      if not block:match("^%-%-%-[^@]") then
        problems[#problems + 1] = fname .. ": no description"
      end
    end
    if line:match("^%-%-%-") then
      doc[#doc + 1] = line
    else
      doc = {}
    end
  end
  return table.concat(problems, "\n"), functions
end

describe("meta/ngx/ipc.lua", function()
  it("starts with ---@meta ngx.ipc and documents every parameter and return value", function()
    local text = nginx.read_file(META)
    assert.are.equal("---@meta ngx.ipc\n", text:sub(1, 17))
    local problems, functions = meta_doc_problems(META)
    assert.is_true(functions >= 13, "functions found: " .. functions)
    assert.are.equal("", problems)
  end)

  it("and the drop-ins' meta/ngx/ipc/ files, each ---@meta <module>", function()
    for _, d in ipairs(DROPINS) do
      local head = "---@meta " .. d[1] .. "\n"
      assert.are.equal(head, nginx.read_file(d[2]):sub(1, #head), d[2])
      local problems, functions = meta_doc_problems(d[2])
      assert.is_true(functions >= 3, d[2] .. ": functions found: " .. functions)
      assert.are.equal("", problems, d[2])
    end
  end)
end)

describe("a TypeScriptToLua project built against the released ngx-ipc package (make dist)", function()
  local tmp, sample, inst, pids, ids

  setup(function()
    tmp = must("mktemp -d /tmp/ngx-ipc-typed.XXXXXX"):gsub("%s+$", "")
    sample = tmp .. "/sample"
    -- the package as released: the tarball make dist builds; then a copy of the
    -- sample project with the toolchain the repository has (no network here), and
    -- the tarball installed into it by npm, offline, as a user installs it
    must(("cd %s && make --no-print-directory dist DIST=%s 2>&1"):format(shq(ROOT), shq(tmp .. "/dist")), "make dist")
    must(("cp -R %s %s && mkdir %s/node_modules && cp -R %s/. %s/node_modules/")
      :format(shq(ROOT .. "/t/tstl-sample"), shq(sample), shq(sample), shq(ROOT .. "/node_modules"), shq(sample)))
    -- npm's record of the repository's own install, not of this project's
    must("rm -f " .. shq(sample .. "/node_modules/.package-lock.json"))
    must(("cd %s && npm install --offline --no-audit --no-fund --no-package-lock ../dist/ngx-ipc-*.tgz 2>&1")
      :format(shq(sample)), "npm install of the packed tarball")
    -- the README's example is compiled with it, so that it stays true
    local readme = assert(nginx.read_file(ROOT .. "/README.md"))
    local example = assert(readme:match("\n## TypeScript\n.-\n```ts\n(.-)```\n"), "README: no ```ts example under ## TypeScript")
    local f = assert(io.open(sample .. "/src/readme_example.ts", "w"))
    f:write(example)
    f:close()
    must(("cd %s && node_modules/.bin/tstl -p tsconfig.json 2>&1"):format(shq(sample)), "tstl")
    must("chmod -R a+rX " .. shq(tmp))

    inst = nginx.start {
      workers = 2,
      init_worker = ([[
        package.path = %s .. "/?.lua;" .. package.path
        require("sample").init()
        require("dropins").init()
      ]]):format(q(sample .. "/lua")),
    }
    pids = inst:workers()
    ids = {}
    for _, pid in ipairs(pids) do
      ids[pid] = inst:run(pid, "return ngx.worker.id()")
    end
  end)

  teardown(function()
    if inst then inst:stop() end
    if tmp then sh("rm -rf " .. shq(tmp)) end
  end)

  it("installs the declaration and the generated Lua from the tarball", function()
    for _, f in ipairs { "types/ngx.ipc.d.ts", "build/ngx/ipc.lua", "README.md", "LICENSE", "CHANGELOG.md", "package.json",
                         "meta/ngx/ipc.lua" } do
      assert.is_truthy(nginx.read_file(sample .. "/node_modules/ngx-ipc/" .. f), "node_modules/ngx-ipc/" .. f)
    end
  end)

  it("compiles import * as ipc from \"ngx.ipc\" to require(\"ngx.ipc\"), with no lualib (the README's example too)", function()
    for _, file in ipairs { "sample.lua", "readme_example.lua" } do
      local lua = assert(nginx.read_file(sample .. "/lua/" .. file), "lua/" .. file)
      assert.is_truthy(lua:find('local ipc = require("ngx.ipc")', 1, true), lua)
      assert.is_nil(lua:find("lualib", 1, true), lua)
      assert.is_nil(lua:find("ipc:", 1, true), "no method calls on the module:\n" .. lua)
    end
  end)

  it("installs the drop-ins' declarations and meta files", function()
    for _, d in ipairs(DROPINS) do
      for _, f in ipairs { "types/" .. d[1] .. ".d.ts", d[2]:sub(#ROOT + 2), "build/" .. d[1]:gsub("%.", "/") .. ".lua" } do
        assert.is_truthy(nginx.read_file(sample .. "/node_modules/ngx-ipc/" .. f), "node_modules/ngx-ipc/" .. f)
      end
    end
  end)

  it("compiles the drop-ins' imports to require, module functions with '.', the events object's methods with ':'", function()
    local lua = assert(nginx.read_file(sample .. "/lua/dropins.lua"), "lua/dropins.lua")
    for _, want in ipairs {
      'local events = require("ngx.ipc.events")', 'local worker_events = require("ngx.ipc.worker_events")',
      'local mlcache_ipc = require("ngx.ipc.mlcache")', "events.new(", "e:subscribe(", "e:init_worker()",
      "ev:publish(", "worker_events.register(", "worker_events.configure(", "worker_events.post(",
      "ipc.register_listeners(", "ipc.broadcast(", "ipc.poll(",
    } do
      assert.is_truthy(lua:find(want, 1, true), "'" .. want .. "' in:\n" .. lua)
    end
    -- the code, without its comments (which may say "opts.ipc: ...")
    local code = lua:gsub("%-%-[^\n]*", "")
    for _, unwanted in ipairs { "events:", "worker_events:", "ipc:", "e.subscribe", "e.init_worker", "ev.publish", "lualib" } do
      assert.is_nil(code:find(unwanted, 1, true), "no '" .. unwanted .. "' in:\n" .. lua)
    end
  end)

  it("compiles the drop-in calls the same without noImplicitSelf: the declarations say where a self goes", function()
    local f = assert(io.open(sample .. "/tsconfig.self.json", "w"))
    f:write('{ "extends": "./tsconfig.json", "compilerOptions": { "outDir": "lua-self" }, "tstl": { "noImplicitSelf": false } }\n')
    f:close()
    must(("cd %s && node_modules/.bin/tstl -p tsconfig.self.json 2>&1"):format(shq(sample)), "tstl without noImplicitSelf")
    local lua = assert(nginx.read_file(sample .. "/lua-self/dropins.lua"), "lua-self/dropins.lua")
    -- the sample's own functions take a self now: the setting did apply
    assert.is_truthy(lua:find("function ____exports.init(self)", 1, true), lua)
    for _, want in ipairs {
      'events.new({listening = "unix:', "e:subscribe(", "function(data, event, source, wid)", "e:init_worker()",
      'ev:publish("all", "sample", "news"', "function(data, event, source, pid)", 'worker_events.post("sample", "note"',
      "ipc.register_listeners(listeners)", "handler = function(key)", "ipc.broadcast(INVALIDATION, key)", "ipc.poll(0.3)",
    } do
      assert.is_truthy(lua:find(want, 1, true), "'" .. want .. "' in:\n" .. lua)
    end
  end)

  it("ngx.ipc.events: publish(\"all\") reaches every worker's subscribe(\"*\", \"*\") handler, with the data and wid", function()
    local a = pids[1]
    assert.are.same({ true }, { inst:run(a, "return require('dropins').publish_all('hi')") })
    for _, pid in ipairs(pids) do
      local got = inst:wait_for(function()
        local p = inst:run(pid, "return (require('dropins').heard())")
        return p ~= "" and p, "no event yet"
      end, 10, "worker " .. pid .. " to handle the event")
      assert.are.equal("sample/news:hi:" .. ids[a], got)
    end
  end)

  it("ngx.ipc.worker_events: configure posts started; post runs the poster's callback before \"done\", then the other's", function()
    local a, b = pids[1], pids[2]
    local status, heard = inst:run(a, "return require('dropins').post('x')")
    assert.are.equal("done", status, heard)
    assert.is_truthy(heard:find("sample/note:x:" .. a, 1, true), "the poster's callback ran before post returned: " .. tostring(heard))
    assert.is_truthy(heard:find("resty-worker-events/started", 1, true), "configure's started event: " .. tostring(heard))
    local other = inst:wait_for(function()
      local _, p = inst:run(b, "return require('dropins').heard()")
      return p:find("sample/note:", 1, true) and p, "no note yet: " .. p
    end, 10, "worker " .. b .. " to handle the posted event")
    assert.is_truthy(other:find("sample/note:x:" .. a, 1, true), other)
  end)

  it("ngx.ipc.mlcache, called as mlcache calls its opts.ipc: set's broadcast and purge's evict in every worker", function()
    local a = pids[1]
    assert.are.same({ true }, { inst:run(a, "return require('dropins').invalidate('user:1')") })
    assert.are.same({ true }, { inst:run(a, "return require('dropins').purge()") })
    for _, pid in ipairs(pids) do
      local got = inst:wait_for(function()
        local _, _, e = inst:run(pid, "return require('dropins').heard()")
        return e:find("(purge)", 1, true) and e, "evicted so far: " .. e
      end, 10, "worker " .. pid .. " to run both listeners")
      assert.are.equal("user:1,(purge)", got)
    end
  end)

  it("lists both workers with workers()", function()
    local want = {}
    for _, pid in ipairs(pids) do
      want[ids[pid] + 1] = ids[pid] .. "=" .. pid
    end
    assert.are.equal(table.concat(want, ","), inst:run(pids[1], 'return require("sample").workers()'))
  end)

  it("delivers every worker's init_worker broadcast to every worker, with sender_id", function()
    local want = {}
    for _, pid in ipairs(pids) do
      want[#want + 1] = ids[pid] .. ":worker " .. ids[pid] .. " is up"
    end
    table.sort(want)
    for _, pid in ipairs(pids) do
      local got = inst:wait_for(function()
        local news = inst:run(pid, 'return (require("sample").heard())')
        local list = {}
        for item in news:gmatch("[^,]+") do list[#list + 1] = item end
        table.sort(list)
        return #list >= #want and list, #list .. " of " .. #want .. " broadcasts"
      end, 10, "worker " .. pid .. " to hear every broadcast")
      assert.are.same(want, got)
    end
  end)

  it("reaches the other worker with send_worker, which sees sender and sender_id", function()
    local a, b = pids[1], pids[2]
    assert.are.equal(1, inst:run(a, "return require('sample').tell_others('psst')"))
    local notes = inst:wait_for(function()
      local _, n = inst:run(b, "return require('sample').heard()")
      return n ~= "" and n, "no note yet"
    end, 10, "worker " .. b .. " to get the note")
    assert.are.equal(ids[a] .. "/" .. a .. ":psst", notes)
  end)

  it("answers call_worker with the handler's return value, both ways", function()
    for _, pid in ipairs(pids) do
      local me = ids[pid]
      local other = 1 - me
      local answer, err = inst:run(pid, ("return require('sample').ask(%d, 'hello')"):format(other))
      assert.are.same({ "HELLO from " .. other .. " to " .. me, nil }, { answer, err })
      answer, err = inst:run(pid, ("return require('sample').ask(%d, '')"):format(other))
      assert.are.same({ nil, "nothing to upper-case" }, { answer, err })
    end
  end)

  it("refuses misuse at compile time (t/tstl-sample/misuse.ts)", function()
    local ok, out = sh(("cd %s && node_modules/.bin/tsc -p tsconfig.misuse.json --pretty false 2>&1"):format(shq(sample)))
    assert.is_false(ok, "tsc accepted misuse.ts:\n" .. out)
    -- "// TSnnnn" ends a line that must fail with that code; "// TSnnnn: text"
    -- one whose message (with its elaboration lines) must hold the text too
    local want, texts, n = {}, {}, 0
    for line in io.lines(sample .. "/misuse.ts") do
      n = n + 1
      local code, text = line:match("// (TS%d+): (.+)$")
      code = code or line:match("// (TS%d+)$")
      if code then
        want[#want + 1] = n .. " " .. code
        texts[n] = text
      end
    end
    local got, messages = {}, {}
    local current
    for line in (out .. "\n"):gmatch("([^\n]*)\n") do
      local l, code = line:match("^misuse%.ts%((%d+),%d+%): error (TS%d+)")
      if l then
        got[#got + 1] = l .. " " .. code
        current = tonumber(l)
        messages[current] = line
      elseif current and line:match("^%s") then
        messages[current] = messages[current] .. "\n" .. line
      else
        current = nil
      end
    end
    assert.is_true(#want >= 19, "misuse.ts lists its expected errors")
    assert.are.same(want, got, "tsc said:\n" .. out)
    for l, text in pairs(texts) do
      assert.is_truthy(messages[l]:find(text, 1, true), ("misuse.ts line %d: '%s' in:\n%s"):format(l, text, messages[l]))
    end
    assert.is_truthy(out:find("misuse.ts(6,13): error TS2345: Argument of type '{}' is not assignable to parameter of type 'string'.", 1, true), out)
  end)
end)
