-- t/lib/nginx.lua: start real nginx masters for the integration specs.
--
--   local nginx = require "nginx"
--   local inst = nginx.start{ workers = 2, init_worker = [[ ... ]] }
--   local pids = inst:workers()
--   local v = inst:run(pids[1], "return ngx.worker.pid()")
--   inst:stop()                      -- always, from after_each/teardown/finally
--
-- Every instance lives in its own prefix under /tmp with a copy of build/ and
-- lib/ngx_ipc_shim.so (workers run as `nobody` when nginx starts as root).
--
-- The control path never uses ngx.ipc: a lua_shared_dict "ngx_ipc_t" where each
-- worker registers its pid and generation at the end of its init_worker (after
-- the spec's own init_worker code, so after its join), and where commands (Lua
-- source) addressed to a worker pid are queued.  Each worker polls its queue with
-- ngx.timer.every and runs each command in its own timer, storing the result
-- back.  A separate control server on its own port carries the commands
-- between this process and the dict.
--
-- Code running inside nginx (commands and snippets) can `require "ngx_ipc_t"`
-- (the worker side of this harness, named T in commands):
--   T.add(key, value)   append a string/number to a list in the shared dict
--   T.list(key)         that list as a table;  T.count(key)  its length
--   T.dict              the shared dict;  T.state  a per-worker scratch table
--   T.wait(fn, timeout) poll fn() with ngx.sleep until truthy (timer/request)
--   T.gen               this worker's generation (changes on inst:reload())
-- Commands run with an environment that falls back to _G, has T, and `ipc`
-- (require "ngx.ipc", loaded on first use).  Globals they set stay in it.

local ffi = require "ffi"
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"

ffi.cdef [[
int kill(int pid, int sig);
]]

local M = {}

local NGINX = os.getenv("NGX_IPC_T_NGINX") or "/usr/sbin/nginx"
local MODULES = os.getenv("NGX_IPC_T_MODULES") or "/usr/lib/nginx/modules"
local KEEP = os.getenv("NGX_IPC_T_KEEP") == "1"
local CORES = os.getenv("NGX_IPC_T_CORES")
-- t/asan_integration.sh: the shim to copy (an ASan build), and the environment nginx
-- starts with (LD_PRELOAD of libasan, its options)
local SHIM = os.getenv("NGX_IPC_T_SHIM")
local NGINX_ENV = os.getenv("NGX_IPC_T_NGINX_ENV")
local DEFAULT_TIMEOUT = 10
-- How long a control-server request may take: generous, since the worker that
-- serves it may be one a spec keeps busy for seconds (building or hashing a
-- 2 GiB string); a crashed worker is still noticed by its pid, not by this.
local CONTROL_TIMEOUT = 60

local function repo_root()
  local src = debug.getinfo(1, "S").source
  local file = src:sub(1, 1) == "@" and src:sub(2) or src
  local dir = file:match("^(.*)/t/lib/[^/]+$")
  if not dir then
    dir = "."
  end
  if dir:sub(1, 1) ~= "/" then
    local pwd = os.getenv("PWD") or io.popen("pwd"):read("*l")
    dir = (dir == "." or dir == "") and pwd or (pwd .. "/" .. dir)
  end
  return dir
end
M.root = os.getenv("NGX_IPC_ROOT") or repo_root()

---------------------------------------------------------------------------
-- small utilities
---------------------------------------------------------------------------

local function now()
  return socket.gettime()
end

local function sleep(s)
  socket.sleep(s)
end

local function shq(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shq = shq

-- a Lua list literal of numbers/strings, for building command code
function M.lua_list(t)
  local parts = {}
  for i, v in ipairs(t) do
    parts[i] = type(v) == "number" and tostring(v) or string.format("%q", tostring(v))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- a Lua string literal, for building command code
function M.q(v)
  return string.format("%q", tostring(v))
end

-- run a shell command: ok, output (stdout and stderr), exit code
local function sh(cmd)
  local p = assert(io.popen("( " .. cmd .. " ) 2>&1; echo \"__rc=$?\"", "r"))
  local out = p:read("*a")
  p:close()
  local body, rc = out:match("^(.-)__rc=(%d+)%s*$")
  rc = tonumber(rc) or -1
  return rc == 0, body or out, rc
end
M.sh = sh

-- a command that must succeed: its output, or an error naming `what` (or it)
local function must(cmd, what)
  local ok, out = sh(cmd)
  if not ok then
    error((what or "command") .. " failed: " .. cmd .. "\n" .. out, 2)
  end
  return out
end
M.must = must

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local s = f:read("*a")
  f:close()
  return s
end
M.read_file = read_file

-- the canonical example of SPEC.md, its http block verbatim (t/canonical.nginx)
function M.canonical()
  return assert(read_file(M.root .. "/t/canonical.nginx"), "t/canonical.nginx is missing")
end

local function write_file(path, s, mode)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
  if mode then
    must("chmod " .. mode .. " " .. shq(path))
  end
end

-- state letter of a process from /proc, nil when it does not exist
local function proc_state(pid)
  local s = read_file("/proc/" .. pid .. "/stat")
  if not s then
    return nil
  end
  return s:match("%) (%a)")
end

local function alive(pid)
  pid = tonumber(pid)
  if not pid or pid <= 0 then
    return false
  end
  if ffi.C.kill(pid, 0) ~= 0 and ffi.errno() == 3 then -- ESRCH
    return false
  end
  local st = proc_state(pid)
  return st ~= nil and st ~= "Z" and st ~= "X"
end
M.alive = alive

local function cmdline(pid)
  local s = read_file("/proc/" .. pid .. "/cmdline")
  return s and s:gsub("%z", " "):gsub("%s+$", "") or nil
end
M.cmdline = cmdline

local function ppid_of(pid)
  local s = read_file("/proc/" .. pid .. "/stat")
  if not s then
    return nil
  end
  return tonumber(s:match("%) %a (%d+)"))
end

local function children_of(ppid)
  local out = {}
  for _, name in ipairs(M.listdir("/proc")) do
    local pid = tonumber(name)
    if pid and ppid_of(pid) == ppid and alive(pid) then
      out[#out + 1] = pid
    end
  end
  table.sort(out)
  return out
end

function M.listdir(dir)
  local out = {}
  local p = io.popen("ls -1A " .. shq(dir) .. " 2>/dev/null")
  for line in p:lines() do
    out[#out + 1] = line
  end
  p:close()
  return out
end

local function send_signal(pid, sig)
  return ffi.C.kill(pid, sig) == 0
end

-- open files of a process whose path mentions ngx_ipc (its pipes, its directory)
function M.ipc_fds(pid)
  local out = {}
  for _, fd in ipairs(M.listdir("/proc/" .. pid .. "/fd")) do
    local ok, target = sh("readlink " .. shq("/proc/" .. pid .. "/fd/" .. fd))
    if ok and target:find("ngx_ipc", 1, true) then
      out[#out + 1] = fd .. " -> " .. target:gsub("%s+$", "")
    end
  end
  return out
end

-- whether the shim library is mapped into a process
function M.maps_shim(pid)
  local maps = read_file("/proc/" .. pid .. "/maps") or ""
  return maps:find("ngx_ipc_shim", 1, true) ~= nil
end

local SIG = { HUP = 1, KILL = 9, TERM = 15, QUIT = 3, USR1 = 10, CONT = 18, STOP = 19 }

-- sends signal `name` ("STOP", "CONT", ...) to pid; whether it was delivered
function M.signal(pid, name)
  return send_signal(pid, assert(SIG[name], name))
end

-- deserialize a Lua literal produced by the worker side
local function deserialize(s)
  local f, err = loadstring("return " .. s, "=result")
  if not f then
    error("cannot parse control result: " .. err .. "\n" .. s:sub(1, 500))
  end
  setfenv(f, { math = { huge = math.huge } })
  return f()
end

local function pack(...)
  return { n = select("#", ...), ... }
end

local function show(v)
  if type(v) == "string" then
    if #v > 200 then
      return string.format("%q... (%d bytes)", v:sub(1, 200), #v)
    end
    return string.format("%q", v)
  end
  return tostring(v)
end
M.show = show

-- Find n free TCP ports on 127.0.0.1.  The sockets are closed before nginx
-- binds, so the kernel may hand the same port out again on a later call: a
-- spec that takes a port for its own server and then starts nginx (which
-- takes two) once got a port twice, and nginx merged the two servers.  Ports
-- given out before in this process are skipped (their socket stays bound
-- until the end of the call, so the kernel moves on).
local given = {}
local function free_ports(n)
  local socks, ports = {}, {}
  while #ports < n do
    local s = assert(socket.tcp())
    assert(s:bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    port = tonumber(port)
    socks[#socks + 1] = s
    if not given[port] then
      given[port] = true
      ports[#ports + 1] = port
    end
    assert(#socks < n + 1000, "no free port found")
  end
  for _, s in ipairs(socks) do
    s:close()
  end
  return ports
end
M.free_ports = free_ports

-- Poll fn until it returns a truthy value (returned), or fail after timeout
-- seconds with a message naming `what` and fn's last second return value.
function M.wait_for(fn, timeout, what, interval)
  timeout = timeout or DEFAULT_TIMEOUT
  local deadline = now() + timeout
  local last
  while true do
    local r = pack(fn())
    if r[1] then
      return unpack(r, 1, r.n)
    end
    last = r[2]
    if now() >= deadline then
      error(string.format("timed out after %.1fs waiting for %s%s", timeout,
        what or "condition", last ~= nil and ("; last: " .. show(last)) or ""), 2)
    end
    sleep(interval or 0.02)
  end
end

---------------------------------------------------------------------------
-- the worker side, written into <prefix>/lib/ngx_ipc_t.lua
---------------------------------------------------------------------------

M.worker_module = [==[
-- ngx_ipc_t: worker side of the ngx.ipc test harness (t/lib/nginx.lua).
-- It never uses ngx.ipc: commands travel through a lua_shared_dict.
local M = {}
local dict = ngx.shared.ngx_ipc_t
M.dict = dict
M.state = {}

local function ser(v, seen)
  local t = type(v)
  if t == "string" then
    return string.format("%q", v)
  elseif t == "number" then
    if v ~= v then return "0/0" end
    if v == math.huge then return "math.huge" end
    if v == -math.huge then return "-math.huge" end
    if v == math.floor(v) and v > -2^53 and v < 2^53 then
      return string.format("%d", v)
    end
    return string.format("%.17g", v)
  elseif t == "boolean" or t == "nil" then
    return tostring(v)
  elseif t == "table" then
    seen = seen or {}
    if seen[v] then return '"<cycle>"' end
    seen[v] = true
    local parts = {}
    for k, x in pairs(v) do
      parts[#parts + 1] = "[" .. ser(k, seen) .. "]=" .. ser(x, seen)
    end
    seen[v] = nil
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return string.format("%q", t .. ": " .. tostring(v))
end
M.serialize = ser

function M.add(key, value)
  local n, err = dict:incr(key .. "#", 1, 0)
  if not n then error("ngx_ipc_t.add: " .. tostring(err)) end
  local ok, err2 = dict:set(key .. "@" .. n, value)
  if not ok then error("ngx_ipc_t.add: " .. tostring(err2)) end
  return n
end

function M.count(key)
  return dict:get(key .. "#") or 0
end

function M.list(key)
  local out = {}
  for i = 1, M.count(key) do
    out[i] = dict:get(key .. "@" .. i)
  end
  return out
end

function M.wait(fn, timeout, interval)
  local deadline = ngx.now() + (timeout or 5)
  while true do
    local v = fn()
    if v then return v end
    ngx.update_time()
    if ngx.now() >= deadline then return nil, "timeout" end
    ngx.sleep(interval or 0.005)
  end
end

local env_mt = {
  __index = function(_, k)
    if k == "ipc" then return require "ngx.ipc" end
    return _G[k]
  end,
}

local function exec(id)
  local code = dict:get("c:" .. id)
  local res
  if not code then
    res = { ok = false, err = "command " .. id .. " vanished" }
  else
    local f, err = loadstring(code, "=command")
    if not f then
      res = { ok = false, err = "compile error: " .. err }
    else
      setfenv(f, setmetatable({ T = M }, env_mt))
      local r = { n = 0 }
      local function collect(...) r.n = select("#", ...); for i = 1, r.n do r[i] = select(i, ...) end end
      local ok, e = xpcall(function() collect(f()) end, function(e)
        return debug.traceback(tostring(e), 2)
      end)
      if ok then
        res = { ok = true, n = r.n, v = r }
        r.n = nil
      else
        res = { ok = false, err = e }
      end
    end
  end
  local s = ser(res)
  local ok, err = dict:set("r:" .. id, s)
  if not ok then
    dict:set("r:" .. id, ser({ ok = false, err = "cannot store result: " .. tostring(err) }))
  end
end
M.exec = exec

-- before the spec's init_worker code: what that code may read
function M.init(gen)
  M.gen = gen
  M.pid = ngx.worker.pid()
end

-- after the spec's init_worker code: the worker registers only once that code
-- (its ipc.receive calls, so its join) has run, so a spec never sees a worker
-- that is registered but not yet reachable
function M.start()
  -- the privileged agent (OpenResty) has no worker id: "a:", not a worker
  local agent = ngx.worker.id() == nil
  dict:set((agent and "a:" or "w:") .. M.pid, agent and ("agent:" .. M.gen) or M.gen)
  local q = "q:" .. M.pid
  local ok, err = ngx.timer.every(0.005, function(premature)
    if premature then return end
    while true do
      local id = dict:lpop(q)
      if not id then break end
      local ok2 = ngx.timer.at(0, function() exec(id) end)
      if not ok2 then exec(id) end
    end
  end)
  if not ok then
    ngx.log(ngx.ERR, "ngx_ipc_t: cannot start the command poller: ", err)
  end
end

-- control server handlers (content phase)
function M.http_post()
  ngx.req.read_body()
  local code = ngx.req.get_body_data() or ""
  local ids = {}
  for pid in (ngx.var.arg_pids or ""):gmatch("%d+") do
    local id = dict:incr("seq", 1, 0)
    assert(dict:set("c:" .. id, code))
    assert(dict:rpush("q:" .. pid, id))
    ids[#ids + 1] = tonumber(pid) .. "=" .. id
  end
  ngx.print(table.concat(ids, ","))
end

function M.http_wait()
  local ids = {}
  for id in (ngx.var.arg_ids or ""):gmatch("%d+") do ids[#ids + 1] = id end
  local deadline = ngx.now() + (tonumber(ngx.var.arg_timeout) or 10)
  while true do
    local missing = false
    for _, id in ipairs(ids) do
      if not dict:get("r:" .. id) then missing = true; break end
    end
    ngx.update_time()
    if not missing or ngx.now() >= deadline then break end
    ngx.sleep(0.002)
  end
  local parts = {}
  for _, id in ipairs(ids) do
    local r = dict:get("r:" .. id)
    parts[#parts + 1] = "[" .. id .. "]=" .. (r or "false")
    if r then dict:delete("r:" .. id); dict:delete("c:" .. id) end
  end
  ngx.print("{" .. table.concat(parts, ",") .. "}")
end

function M.http_workers()
  local out = {}
  for _, k in ipairs(dict:get_keys(0)) do
    local pid = k:match("^[wa]:(%d+)$")
    if pid then out[tonumber(pid)] = dict:get(k) end
  end
  ngx.print(ser(out))
end

return M
]==]

---------------------------------------------------------------------------
-- configuration
---------------------------------------------------------------------------

local Inst = {}
Inst.__index = Inst

local live_instances = setmetatable({}, { __mode = "k" })

local function indent(s)
  return (s or ""):gsub("\n", "\n    ")
end

function Inst:conf_text()
  local o = self.opts
  local p = self.prefix
  -- NGX_IPC_T_MODULES=none: an nginx with the lua module built in (OpenResty)
  local modules = MODULES == "none" and "" or ("load_module " .. MODULES .. "/ndk_http_module.so;\n"
    .. "load_module " .. MODULES .. "/ngx_http_lua_module.so;")
  local lines = {
    modules,
    "worker_processes " .. self.nworkers .. ";",
    "pid " .. p .. "/logs/nginx.pid;",
    "error_log " .. p .. "/logs/error.log " .. (o.level or "notice") .. ";",
    "daemon on;",
    "master_process " .. (o.master_process == false and "off" or "on") .. ";",
    o.main or "",
    -- a crashed worker leaves its core in the instance's cores/ (stop() prints its
    -- backtrace), or in NGX_IPC_T_CORES=DIR, which outlives the instance
    "worker_rlimit_core 2g; working_directory " .. self:cores_dir() .. ";",
    "events { worker_connections " .. (o.worker_connections or 1024) .. "; }",
  }
  if o.raw_http then
    -- a user's http block taken as written; only `listen 80;` is redirected
    local text, n = o.raw_http:gsub("listen%s+80;", "listen 127.0.0.1:" .. self.port .. ";")
    if n == 0 then
      error("raw_http has no `listen 80;` to redirect")
    end
    lines[#lines + 1] = text
    return table.concat(lines, "\n") .. "\n"
  end
  if o.stream then
    -- stream {} Lua (OpenResty): STREAM_PORT in the text is inst.stream_port
    lines[#lines + 1] = ([[
stream {
  lua_package_path "%s/lib/?.lua;%s/lib/?/init.lua;;";
  lua_package_cpath "%s/lib/?.so;;";
  %s
}
]]):format(p, p, p, indent((o.stream:gsub("STREAM_PORT", tostring(self.stream_port)))))
  end
  local init = o.init
  if o.agent then
    init = 'assert(require("ngx.process").enable_privileged_agent())\n' .. (init or "")
  end
  lines[#lines + 1] = ([[
http {
  access_log off;
  lua_package_path "%s/lib/?.lua;%s/lib/?/init.lua;;";
  lua_package_cpath "%s/lib/?.so;;";
  lua_shared_dict ngx_ipc_t %s;
  %s
  init_worker_by_lua_block {
    require("ngx_ipc_t").init(%q)
    do
    local T = require "ngx_ipc_t"
    %s
    end
    require("ngx_ipc_t").start()
  }
  %s
  server {
    listen 127.0.0.1:%d;
    client_body_buffer_size 4m;
    client_max_body_size 64m;
    location = /_t/post { content_by_lua_block { require("ngx_ipc_t").http_post() } }
    location = /_t/wait { content_by_lua_block { require("ngx_ipc_t").http_wait() } }
    location = /_t/workers { content_by_lua_block { require("ngx_ipc_t").http_workers() } }
  }
  server {
    listen 127.0.0.1:%d;
    %s
  }
}
]]):format(p, p, p, o.dict_size or "64m",
    init and ("init_by_lua_block {\n    " .. indent(init) .. "\n  }") or "",
    self.gen, indent(o.init_worker), indent(o.http), self.ctl_port, self.port,
    indent(o.server))
  return table.concat(lines, "\n") .. "\n"
end

local function copy_modules(prefix, elsewhere, no_shim)
  local lib = prefix .. "/lib"
  must("mkdir -p " .. shq(lib) .. " " .. shq(prefix .. "/cores"))
  -- the workers (nobody) write their cores there
  must("chmod 1777 " .. shq(prefix .. "/cores"))
  if elsewhere then
    -- the module comes from opts.lua_path/lua_cpath only
  elseif read_file(M.root .. "/build/ngx/ipc.lua") then
    must("cp -R " .. shq(M.root .. "/build") .. "/. " .. shq(lib) .. "/")
  end
  local shim = SHIM or (M.root .. "/lib/ngx_ipc_shim.so")
  if not elsewhere and not no_shim and read_file(shim) then
    must("cp " .. shq(shim) .. " " .. shq(lib) .. "/ngx_ipc_shim.so")
  end
  write_file(lib .. "/ngx_ipc_t.lua", M.worker_module)
  must("chmod -R a+rX " .. shq(prefix))
end

function Inst:env_prefix()
  -- used for raw_http configs, which carry no lua_package_path of their own:
  -- the master's Lua VM takes LUA_PATH/LUA_CPATH when it is created
  local p = self.prefix
  return (NGINX_ENV and (NGINX_ENV .. " ") or "") .. ("LUA_PATH=%s LUA_CPATH=%s "):format(
    shq(self.opts.lua_path or (p .. "/lib/?.lua;" .. p .. "/lib/?/init.lua;;")),
    shq(self.opts.lua_cpath or (p .. "/lib/?.so;;")))
end

function Inst:nginx_cmd(extra)
  return ("%s%s -p %s -c %s -e %s %s"):format(self:env_prefix(), NGINX, shq(self.prefix .. "/"),
    shq(self.prefix .. "/conf/nginx.conf"), shq(self.prefix .. "/logs/error.log"), extra or "")
end

---------------------------------------------------------------------------
-- start
---------------------------------------------------------------------------

-- opts:
--   workers      number of worker processes (2)
--   init         Lua for init_by_lua_block
--   init_worker  Lua appended to the harness's init_worker_by_lua_block
--   http         extra text inside http {}
--   server       text inside the test server {} (listening on inst.port)
--   main         extra text at the main (top) level
--   level        error_log level ("notice")
--   raw_http     a complete `http { ... }` block used verbatim (no control
--                path: run/workers are unavailable, use children())
--   master_process  false: `master_process off` (one process serves and runs Lua)
--   no_shim      true: the prefix gets the Lua modules but not the shim
--   lua_path, lua_cpath  with raw_http: where the module is found instead of
--                the prefix's copy of build/ and lib/ (e.g. a luarocks tree)
--   start_timeout seconds (10)
--   agent        true: init_by_lua enables OpenResty's privileged agent; it
--                runs the init_worker code too and registers apart from the
--                workers (inst:agent() gives its pid)
--   stream       text inside a stream {} block (OpenResty with stream Lua),
--                which gets lua_package_path/cpath; STREAM_PORT in it is
--                inst.stream_port (inst:stream_ask(line) talks to it)
function M.start(opts)
  opts = opts or {}
  local self = setmetatable({}, Inst)
  self.opts = opts
  self.nworkers = opts.master_process == false and 1 or opts.workers or 2
  self.gen = "g1-" .. tostring(now()):gsub("%.", "") .. "-" .. math.random(1, 1e6)
  self.generation = 1
  self.raw = opts.raw_http ~= nil
  self.seen_pids = {}
  self.killed = {}
  local ports = free_ports(3)
  self.port, self.ctl_port, self.stream_port = ports[1], ports[2], ports[3]
  self.prefix = must("mktemp -d /tmp/ngx-ipc-t.XXXXXX"):gsub("%s+$", "")
  must("chmod 0755 " .. shq(self.prefix))
  must("mkdir -p " .. shq(self.prefix .. "/conf") .. " " .. shq(self.prefix .. "/logs"))
  copy_modules(self.prefix, opts.lua_path ~= nil, opts.no_shim)
  write_file(self.prefix .. "/conf/nginx.conf", self:conf_text())
  must("chmod -R a+rwX " .. shq(self.prefix .. "/logs"))
  live_instances[self] = true

  local ok, out = sh(self:nginx_cmd())
  if not ok then
    local log = self:log()
    self:stop()
    error("nginx failed to start:\n" .. out .. "\n--- error.log ---\n" .. (log or ""), 2)
  end
  local st, err = pcall(function()
    self.master = M.wait_for(function()
      local s = read_file(self.prefix .. "/logs/nginx.pid")
      local pid = s and tonumber(s:match("%d+"))
      return pid and alive(pid) and pid
    end, opts.start_timeout or DEFAULT_TIMEOUT, "the master's pid file")
    self.seen_pids[self.master] = true
    if self.raw then
      M.wait_for(function()
        return #self:children() >= self.nworkers
      end, opts.start_timeout or DEFAULT_TIMEOUT, self.nworkers .. " worker processes")
      M.wait_for(function()
        local c = socket.tcp()
        c:settimeout(0.5)
        local okc = c:connect("127.0.0.1", self.port)
        c:close()
        return okc
      end, opts.start_timeout or DEFAULT_TIMEOUT, "port " .. self.port .. " to accept")
    else
      -- opts.min_workers: a spec whose workers do not all finish their
      -- init_worker on their own waits for the others itself
      self:wait_workers(self.gen, opts.start_timeout or DEFAULT_TIMEOUT, opts.min_workers)
    end
  end)
  if not st then
    local log = self:log()
    self:stop()
    error(tostring(err) .. "\n--- error.log ---\n" .. (log or ""), 2)
  end
  return self
end

---------------------------------------------------------------------------
-- processes
---------------------------------------------------------------------------

function Inst:children()
  if not self.master then
    return {}
  end
  local out = {}
  for _, pid in ipairs(children_of(self.master)) do
    self.seen_pids[pid] = true
    local c = cmdline(pid) or ""
    if c:find("worker process", 1, true) then
      out[#out + 1] = pid
    end
  end
  return out
end

-- all processes the master has (workers, shutting-down workers, helpers)
function Inst:all_children()
  if not self.master then
    return {}
  end
  local out = children_of(self.master)
  for _, pid in ipairs(out) do
    self.seen_pids[pid] = true
  end
  return out
end

-- registrations in the shared dict: { [pid] = generation token }
-- raise a control-path failure, with what error.log says about crashes
function Inst:control_error(msg, level)
  sleep(0.2) -- the master logs a crashed worker a moment later
  local lines = {}
  for line in self:log():gmatch("[^\n]+") do
    if line:find("exited on signal", 1, true) or line:find("%[crit%]") or line:find("%[emerg%]")
      or line:find("%[error%]") then
      lines[#lines + 1] = line
    end
  end
  local tail = {}
  for i = math.max(1, #lines - 9), #lines do
    tail[#tail + 1] = lines[i]
  end
  error(msg .. (#tail > 0 and ("\nerror.log says:\n" .. table.concat(tail, "\n")) or ""), level or 2)
end

function Inst:registrations()
  assert(not self.raw, "no control path in a raw_http instance")
  local status, body = self:request("GET", "http://127.0.0.1:" .. self.ctl_port .. "/_t/workers", nil, CONTROL_TIMEOUT)
  if status ~= 200 then
    self:control_error("control server: GET /_t/workers gave " .. tostring(status) .. ": " .. tostring(body), 2)
  end
  local regs = deserialize(body)
  for pid in pairs(regs) do
    self.seen_pids[pid] = true
  end
  return regs
end

local function live_of_gen(regs, gen)
  local out = {}
  for pid, g in pairs(regs) do
    if g == gen and alive(pid) then
      out[#out + 1] = pid
    end
  end
  table.sort(out)
  return out
end

-- waits until `n` (default: all) workers of generation `gen` have registered
function Inst:wait_workers(gen, timeout, n)
  n = n or self.nworkers
  return M.wait_for(function()
    local ok, regs = pcall(self.registrations, self)
    if not ok then
      return false, regs
    end
    local pids = live_of_gen(regs, gen)
    if #pids >= n then
      return pids
    end
    return false, #pids .. " of " .. n .. " workers registered"
  end, timeout or DEFAULT_TIMEOUT, "workers of generation " .. gen .. " to register")
end

-- { [ngx.worker.id()] = pid } of the current generation's workers
function Inst:by_id()
  local out = {}
  for pid, id in pairs(self:run_all("return ngx.worker.id()")) do
    out[id] = pid
  end
  return out
end

-- the privileged agent of the current generation (opts.agent) once it has
-- run its init_worker, waiting for it; its pid
function Inst:agent(timeout)
  return M.wait_for(function()
    for pid, g in pairs(self:registrations()) do
      if g == "agent:" .. self.gen and alive(pid) then
        return pid
      end
    end
    return false, "no agent registered"
  end, timeout or DEFAULT_TIMEOUT, "the privileged agent of generation " .. self.gen .. " to register")
end

-- what a stream {} server on inst.stream_port (opts.stream) answers to `line`
function Inst:stream_ask(line, timeout)
  local c = assert(socket.tcp())
  c:settimeout(timeout or DEFAULT_TIMEOUT)
  assert(c:connect("127.0.0.1", self.stream_port))
  assert(c:send(line .. "\n"))
  local body, err, partial = c:receive("*a")
  c:close()
  return body or partial, err
end

-- live, registered worker pids of the current generation (sorted)
function Inst:workers()
  if self.raw then
    return self:children()
  end
  return live_of_gen(self:registrations(), self.gen)
end

---------------------------------------------------------------------------
-- HTTP
---------------------------------------------------------------------------

function Inst:request(method, url, body, timeout)
  local chunks = {}
  http.TIMEOUT = timeout or DEFAULT_TIMEOUT
  local headers = {}
  if body then
    headers["content-length"] = tostring(#body)
    headers["content-type"] = "application/octet-stream"
  end
  local ok, status, hdrs = http.request {
    url = url,
    method = method,
    headers = headers,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(chunks),
  }
  if not ok then
    return nil, status
  end
  return status, table.concat(chunks), hdrs
end

-- request to the test server: returns status, body, headers (nil, err on failure)
function Inst:http(method, path, body, timeout)
  return self:request(method, "http://127.0.0.1:" .. self.port .. path, body, timeout)
end

function Inst:get(path, timeout)
  return self:http("GET", path, nil, timeout)
end

-- the same through curl: returns status (number), body
function Inst:curl(path, timeout)
  local url = "http://127.0.0.1:" .. self.port .. path
  local ok, out = sh(("curl -sS -m %d -w '\\n%%{http_code}' %s"):format(timeout or DEFAULT_TIMEOUT, shq(url)))
  if not ok then
    return nil, out
  end
  local body, code = out:match("^(.*)\n(%d+)$")
  return tonumber(code), body
end

---------------------------------------------------------------------------
-- commands
---------------------------------------------------------------------------

-- queue `code` for each pid; returns a handle for :collect()
function Inst:spawn(pids, code)
  assert(not self.raw, "no control path in a raw_http instance")
  if type(pids) ~= "table" then
    pids = { pids }
  end
  local list = {}
  for i, p in ipairs(pids) do
    list[i] = tostring(assert(tonumber(p), "pid expected, got " .. show(p)))
  end
  local url = ("http://127.0.0.1:%d/_t/post?pids=%s"):format(self.ctl_port, table.concat(list, ","))
  local status, body = self:request("POST", url, code, CONTROL_TIMEOUT)
  if status ~= 200 then
    self:control_error("control server: POST of a command gave " .. tostring(status) .. ": " .. tostring(body), 3)
  end
  local handle = { ids = {}, pid_of = {} }
  for pid, id in body:gmatch("(%d+)=(%d+)") do
    handle.ids[#handle.ids + 1] = id
    handle.pid_of[id] = tonumber(pid)
  end
  return handle
end

-- wait for the results of a spawn: { [pid] = {ok=, n=, v=} or {ok=false, err=} }
function Inst:collect(handle, timeout)
  timeout = timeout or DEFAULT_TIMEOUT
  local deadline = now() + timeout
  local out, pending = {}, {}
  for _, id in ipairs(handle.ids) do
    pending[#pending + 1] = id
  end
  while #pending > 0 do
    -- wait in short rounds so that a crashed worker is noticed early
    local round = math.max(0.05, math.min(1, deadline - now()))
    local url = ("http://127.0.0.1:%d/_t/wait?ids=%s&timeout=%.3f"):format(self.ctl_port,
      table.concat(pending, ","), round)
    local status, body = self:request("GET", url, nil, round + CONTROL_TIMEOUT)
    if status ~= 200 then
      self:control_error("control server: waiting for results gave " .. tostring(status) .. ": " .. tostring(body), 3)
    end
    local res = deserialize(body)
    local still, dead = {}, 0
    for _, id in ipairs(pending) do
      local r = res[tonumber(id)]
      local pid = handle.pid_of[id]
      if r then
        out[pid] = r
      else
        still[#still + 1] = id
        if not alive(pid) then
          dead = dead + 1
        end
      end
    end
    pending = still
    if #pending > 0 and (dead == #pending or now() >= deadline) then
      local missing = {}
      for _, id in ipairs(pending) do
        local pid = handle.pid_of[id]
        missing[#missing + 1] = pid .. (alive(pid) and "" or " (not running)")
      end
      self:control_error(("no result after %.1fs from worker(s) %s"):format(timeout - (deadline - now()),
        table.concat(missing, ", ")), 3)
    end
  end
  return out
end

-- run code in one worker: ok, values...  or false, error message
function Inst:try(pid, code, timeout)
  local res = self:collect(self:spawn({ pid }, code), timeout)
  local r = res[tonumber(pid)]
  if not r.ok then
    return false, r.err
  end
  return true, unpack(r.v, 1, r.n)
end

-- run code in one worker and return what it returns; an error in it is raised here
function Inst:run(pid, code, timeout)
  local r = pack(self:try(pid, code, timeout))
  if not r[1] then
    error("command failed in worker " .. tostring(pid) .. ": " .. tostring(r[2]), 2)
  end
  return unpack(r, 2, r.n)
end

-- run code in every current worker at once: { [pid] = first return value }
-- (raises when it failed in any worker)
function Inst:run_all(code, timeout, pids)
  pids = pids or self:workers()
  local res = self:collect(self:spawn(pids, code), timeout)
  local out = {}
  for pid, r in pairs(res) do
    if not r.ok then
      error("command failed in worker " .. pid .. ": " .. tostring(r.err), 2)
    end
    out[pid] = r.v[1]
  end
  return out
end

-- install the same code in every current worker (e.g. ipc.receive calls)
function Inst:install(code, pids)
  return self:run_all(code .. "\nreturn true", nil, pids)
end

-- init_worker code for Inst:stall(): handlers "m" (records what it gets under
-- "m:<pid>") and "block" (holds the receive loop for a minute), and a 64 KiB
-- receive_backlog
M.STALL_HANDLERS = [[
  local ipc = require "ngx.ipc"
  local me = ngx.worker.pid()
  ipc.configure { receive_backlog = 65536 }
  ipc.receive("m", function(d) T.add("m:" .. me, d) end)
  ipc.receive("block", function()
    T.dict:set("blocking", me)
    ngx.sleep(60)
  end)
]]

-- with M.STALL_HANDLERS: worker `victim` stops reading its pipe, its event
-- loop free: its sleeping handler holds the receive loop, and a 40,000-byte
-- alert from `from` fills half its receive_backlog, so what comes next stays
-- in its pipe
function Inst:stall(from, victim)
  assert(self:run(from, ("return ipc.send(%d, 'block', '')"):format(victim)))
  self:wait_for(function()
    return self:run(from, "return T.dict:get('blocking')") == victim
  end, 10, "the victim's handler to hold its receive loop")
  assert(self:run(from, ("return ipc.send(%d, 'm', string.rep('f', 40000))"):format(victim)))
  self:wait_for(function()
    return self:run(victim, "return ipc.stats().receive_ready") >= 32768
  end, 10, "the victim to hold 32 KiB and stop reading")
end

-- wait until the T.add() list `key` has at least n entries; returns the list
function Inst:wait_count(key, n, timeout)
  local pid = self:workers()[1]
  return self:wait_for(function()
    local count = self:run(pid, ("return T.count(%q)"):format(key))
    if count >= n then
      return self:list(key, pid)
    end
    return false, count .. " of " .. n .. " entries in " .. key
  end, timeout or DEFAULT_TIMEOUT, n .. " entries in list " .. key)
end

-- read a T.add() list from the shared dict
function Inst:list(key, pid)
  return self:run(pid or self:workers()[1], ("return T.list(%q)"):format(key))
end

---------------------------------------------------------------------------
-- logs
---------------------------------------------------------------------------

-- error.log text, from byte `mark` on (see :log_mark())
function Inst:log(mark)
  local s = read_file(self.prefix .. "/logs/error.log") or ""
  if mark then
    return s:sub(mark + 1)
  end
  return s
end

function Inst:log_mark()
  return #self:log()
end

-- lines of error.log containing `plain` (a plain substring)
function Inst:log_lines(plain, mark)
  local out = {}
  for line in self:log(mark):gmatch("[^\n]+") do
    if not plain or line:find(plain, 1, true) then
      out[#out + 1] = line
    end
  end
  return out
end

-- [error], [crit], [alert] and [emerg] lines (ngx.ALERT lines the tests log
-- on purpose are excluded unless they contain "[alert]" from nginx itself:
-- pass `with_alert` to include them)
function Inst:error_lines(mark, with_alert)
  local out = {}
  for line in self:log(mark):gmatch("[^\n]+") do
    if line:find("%[error%]") or line:find("%[crit%]") or line:find("%[emerg%]")
      or (with_alert and line:find("%[alert%]")) then
      out[#out + 1] = line
    end
  end
  return out
end

function Inst:wait_for(fn, timeout, what)
  local ok, err = pcall(M.wait_for, fn, timeout, what)
  if not ok then
    local lines = self:error_lines()
    local tail = {}
    for i = math.max(1, #lines - 9), #lines do
      tail[#tail + 1] = lines[i]
    end
    error(tostring(err) .. (#tail > 0 and ("\nlast error.log errors:\n" .. table.concat(tail, "\n")) or ""), 2)
  end
  return err
end

---------------------------------------------------------------------------
-- lifecycle
---------------------------------------------------------------------------

-- nginx -s reload (optionally with new snippets: same keys as start's opts);
-- waits until the new generation's workers registered.
-- Returns old pids, new pids.
function Inst:reload(new_opts, timeout)
  assert(not self.raw, "reload needs the control path")
  local old = self:workers()
  if new_opts then
    for k, v in pairs(new_opts) do
      self.opts[k] = v
    end
  end
  self.generation = self.generation + 1
  self.gen = ("g%d-%s"):format(self.generation, self.gen:match("^g%d+%-(.*)$"))
  -- the module files are not copied again: rewriting the shim in place would
  -- corrupt the copy the running workers have mapped (SIGBUS)
  write_file(self.prefix .. "/conf/nginx.conf", self:conf_text())
  local ok, out = sh(self:nginx_cmd("-s reload"))
  if not ok then
    error("nginx -s reload failed: " .. out, 2)
  end
  local new = self:wait_workers(self.gen, timeout or DEFAULT_TIMEOUT)
  -- the master tells the old workers to quit ~100 ms after starting the new
  -- ones; until then they still accept connections (the control path too)
  self:wait_for(function()
    for _, pid in ipairs(old) do
      if alive(pid) and not (cmdline(pid) or ""):find("shutting down", 1, true) then
        return false, "worker " .. pid .. " not yet shutting down"
      end
    end
    return true
  end, timeout or DEFAULT_TIMEOUT, "the old workers to start shutting down")
  return old, new
end

-- kill -9 a worker; waits for the master to respawn one and (with the control
-- path) for it to register.  Returns the new worker's pid.
function Inst:kill9(pid, timeout)
  pid = tonumber(pid)
  local before = {}
  for _, p in ipairs(self:workers()) do
    before[p] = true
  end
  assert(before[pid], "kill9: " .. tostring(pid) .. " is not a current worker")
  self.killed[pid] = true
  send_signal(pid, SIG.KILL)
  self:wait_for(function()
    return not alive(pid)
  end, timeout or 5, "worker " .. pid .. " to die")
  return self:wait_for(function()
    local now_pids = self.raw and self:children() or live_of_gen(self:registrations(), self.gen)
    if #now_pids ~= self.nworkers then
      return false, #now_pids .. " workers"
    end
    for _, p in ipairs(now_pids) do
      if not before[p] then
        return p
      end
    end
    return false, "no new worker yet"
  end, timeout or DEFAULT_TIMEOUT, "a worker to replace " .. pid)
end

-- nginx -s quit; returns the seconds until the master is gone (nil, msg when
-- it did not go within `timeout`).
function Inst:quit(timeout)
  timeout = timeout or 10
  self:all_children()
  local t0 = now()
  local ok, out = sh(self:nginx_cmd("-s quit"))
  if not ok then
    return nil, "nginx -s quit failed: " .. out
  end
  local deadline = t0 + timeout
  while alive(self.master) do
    if now() >= deadline then
      return nil, ("master %d still running %.1fs after quit"):format(self.master, timeout)
    end
    sleep(0.01)
  end
  return now() - t0
end

-- where the workers run, and leave a core when they crash
function Inst:cores_dir()
  return CORES or (self.prefix .. "/cores")
end

-- the backtrace of each core a crashed worker left (gdb, when installed), for the
-- message that reports the crash
function Inst:core_backtraces()
  local out = {}
  for _, name in ipairs(M.listdir(self:cores_dir())) do
    if name:match("^core") then
      local core = self:cores_dir() .. "/" .. name
      local ok, bt = sh("timeout 60 gdb -batch -nx -ex 'info registers rip' -ex 'bt 40' "
        .. shq(NGINX) .. " " .. shq(core) .. " 2>&1 | grep -v '^\\[New LWP\\|^warning:' | head -80")
      out[#out + 1] = "--- " .. core .. (ok and (":\n" .. bt) or " (no gdb backtrace: " .. tostring(bt) .. ")")
    end
  end
  return out
end

-- "worker process N exited on signal S" lines for workers the test did not kill
function Inst:crashes()
  local out = {}
  for line in self:log():gmatch("[^\n]+") do
    local pid = line:match("worker process (%d+) exited on signal")
    if pid and not self.killed[tonumber(pid)] then
      out[#out + 1] = line
    end
  end
  return out
end

-- stop everything this instance started; safe to call more than once.
-- Raises (after cleaning up) when a worker crashed during the test, unless
-- opts.allow_crash: a crash must never pass unnoticed.
function Inst:stop()
  if self.stopped then
    return
  end
  self.stopped = true
  local crashes = self.master and self:crashes() or {}
  live_instances[self] = nil
  if self.master and alive(self.master) then
    self:all_children()
    send_signal(self.master, SIG.TERM)
    local deadline = now() + 3
    while alive(self.master) and now() < deadline do
      sleep(0.01)
    end
  end
  if self.master and alive(self.master) then
    send_signal(self.master, SIG.KILL)
  end
  -- leftovers: any process we saw that is still an nginx process
  for pid in pairs(self.seen_pids) do
    if alive(pid) and (cmdline(pid) or ""):find("^nginx:") then
      send_signal(pid, SIG.KILL)
    end
  end
  for pid in pairs(self.seen_pids) do
    local deadline = now() + 2
    while alive(pid) and now() < deadline do
      sleep(0.01)
    end
  end
  local cores = #crashes > 0 and self.prefix and self:core_backtraces() or {}
  if self.prefix and not KEEP and self.prefix:match("^/tmp/ngx%-ipc%-t%.") then
    os.execute("rm -rf " .. shq(self.prefix))
  end
  if #crashes > 0 and not self.opts.allow_crash then
    error("nginx worker(s) crashed during the test:\n" .. table.concat(crashes, "\n")
      .. (#cores > 0 and ("\n" .. table.concat(cores, "\n")) or "\n(no core in " .. self:cores_dir() .. ")"), 2)
  end
end

function M.stop_all()
  for inst in pairs(live_instances) do
    pcall(inst.stop, inst)
  end
end

-- anything else with a :stop() that a spec starts (t/lib/redis.lua's servers)
-- is stopped with the instances, by stop_all and the last resort below
function M.track(obj)
  live_instances[obj] = true
end

function M.untrack(obj)
  live_instances[obj] = nil
end

-- last resort when busted exits without teardown
M._sentinel = newproxy(true)
getmetatable(M._sentinel).__gc = function()
  M.stop_all()
end

M.Inst = Inst
return M
