-- t/lib/redis.lua: private redis-server instances for the cluster specs and bench.
--
--   local redis = require "redis"
--   local r = redis.start{ appendonly = true }   -- 127.0.0.1:<free port>, own dir
--   r.port, r.addr ("127.0.0.1:port"), r:cli("XLEN", "ngx.ipc") -> its output
--   r:stop()     -- SHUTDOWN (AOF flushed), then the dir is removed: from teardown
--   r:restart()  -- stop and start again on the same port and dir (the data stays
--                   when appendonly is on)
--   r:kill()     -- SIGKILL, nothing flushed, not restarted
--
--   local certs = redis.make_certs()  -- a CA, a server (127.0.0.1, localhost) and a
--                                        client certificate, and a second CA
--   redis.start{ tls = certs, auth_clients = true }   -- TLS only: r.port is the
--                                        tls-port, r:cli speaks TLS
--   redis.start{ replicaof = r }          -- a replica of r
--   redis.sentinel{ primary = r, name = "m", quorum = 2 }  -- a sentinel watching r
--
-- Never the system's redis service: each instance binds 127.0.0.1 on a port the
-- kernel just had free, keeps its files in its own directory under /tmp, runs
-- daemonized with its own pid file, and is killed at stop (and by nginx.lua's
-- stop_all and last-resort collector, which track it).

local socket = require "socket"
local nginx = require "nginx"

local M = {}
local SERVER = os.getenv("NGX_IPC_T_REDIS") or "redis-server"
local CLI = os.getenv("NGX_IPC_T_REDIS_CLI") or "redis-cli"
local SENTINEL = os.getenv("NGX_IPC_T_REDIS_SENTINEL") or "redis-sentinel"

local R = {}
R.__index = R

-- A CA, a server certificate for 127.0.0.1 and localhost and a client certificate
-- signed by it, and an unrelated CA, made with Debian's openssl in a new directory
-- (readable by the workers, which run as nobody). Returns the paths.
function M.make_certs()
  local made, dir = nginx.sh("mktemp -d /tmp/ngx-ipc-certs.XXXXXX")
  assert(made, "mktemp: " .. dir)
  dir = dir:gsub("%s+$", "")
  local c = {
    dir = dir, ca = dir .. "/ca.crt", other_ca = dir .. "/other-ca.crt",
    cert = dir .. "/server.crt", key = dir .. "/server.key",
    client_cert = dir .. "/client.crt", client_key = dir .. "/client.key",
  }
  local q = nginx.shq
  local cmds = {
    "cd " .. q(dir),
    "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > server.ext",
    "printf 'extendedKeyUsage=clientAuth\n' > client.ext",
    "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ngx-ipc-test-ca -keyout ca.key -out ca.crt",
    "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ngx-ipc-other-ca -keyout other-ca.key -out other-ca.crt",
    "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr",
    "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.crt",
    "openssl req -newkey rsa:2048 -nodes -subj /CN=ngx-ipc-client -keyout client.key -out client.csr",
    "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile client.ext -out client.crt",
    "chmod 0755 .", "chmod 0644 *",
  }
  local ok, out = nginx.sh(table.concat(cmds, " && ") .. " 2>&1")
  assert(ok, "openssl: " .. out)
  return c
end

function M.remove_certs(c)
  if c and c.dir:match("^/tmp/ngx%-ipc%-certs%.") and os.getenv("NGX_IPC_T_KEEP") ~= "1" then
    os.execute("rm -rf " .. nginx.shq(c.dir))
  end
end

local function ping(port)
  local c = socket.tcp()
  c:settimeout(0.5)
  if not c:connect("127.0.0.1", port) then
    c:close()
    return false
  end
  c:send("PING\r\n")
  local line = c:receive("*l")
  c:close()
  return line == "+PONG"
end

function R:pid()
  local s = nginx.read_file(self.dir .. "/redis.pid")
  return s and tonumber(s:match("%d+"))
end

function R:launch()
  local o = self.opts
  if o.sentinel then
    return self:launch_sentinel()
  end
  local args = {
    SERVER, "--port", o.tls and 0 or self.port, "--bind", "127.0.0.1", "--dir", self.dir,
    "--daemonize", "yes", "--pidfile", self.dir .. "/redis.pid",
    "--logfile", self.dir .. "/redis.log", "--save", "''",
    "--appendonly", o.appendonly and "yes" or "no",
    -- small nodes: MAXLEN ~ trims at node boundaries, so the bound stays close
    "--stream-node-max-entries", tostring(o.node_entries or 100),
  }
  if o.password then
    args[#args + 1] = "--requirepass"
    args[#args + 1] = nginx.shq(o.password)
  end
  if o.tls then
    local t = o.tls
    for _, a in ipairs { "--tls-port", self.port, "--tls-cert-file", t.cert, "--tls-key-file", t.key,
      "--tls-ca-cert-file", t.ca, "--tls-auth-clients", o.auth_clients and "yes" or "no" } do
      args[#args + 1] = nginx.shq(a)
    end
  end
  if o.replicaof then
    args[#args + 1] = "--replicaof 127.0.0.1 " .. o.replicaof.port
  end
  for _, a in ipairs(o.args or {}) do
    args[#args + 1] = nginx.shq(a)
  end
  local ok, out = nginx.sh(table.concat(args, " "))
  if not ok then
    error("redis-server failed to start: " .. out .. (nginx.read_file(self.dir .. "/redis.log") or ""))
  end
  nginx.wait_for(function()
    return (self.opts.password or self.opts.tls) and self:pid() ~= nil and nginx.alive(self:pid())
      or ping(self.port)
  end, 10, "redis-server on port " .. self.port)
  self.pids[#self.pids + 1] = self:pid()
  if self.opts.password or self.opts.tls then
    nginx.wait_for(function()
      local out2 = self:cli("PING")
      return out2:find("PONG", 1, true) ~= nil, out2
    end, 10, "redis-server on port " .. self.port .. " to answer")
  end
end

function R:launch_sentinel()
  local ok, out = nginx.sh(table.concat({ SENTINEL, nginx.shq(self.dir .. "/sentinel.conf"), "--port", self.port,
    "--bind 127.0.0.1 --daemonize yes --dir", nginx.shq(self.dir), "--pidfile", nginx.shq(self.dir .. "/redis.pid"),
    "--logfile", nginx.shq(self.dir .. "/redis.log") }, " "))
  if not ok then
    error("redis-sentinel failed to start: " .. out .. (nginx.read_file(self.dir .. "/redis.log") or ""))
  end
  nginx.wait_for(function() return ping(self.port) end, 10, "redis-sentinel on port " .. self.port)
  self.pids[#self.pids + 1] = self:pid()
end

-- opts: appendonly (bool), password, node_entries (stream-node-max-entries),
-- tls (make_certs()'s table: TLS only), auth_clients (with tls: client
-- certificates required), replicaof (another instance), args (more arguments)
function M.start(opts)
  local self = setmetatable({ opts = opts or {}, pids = {} }, R)
  self.port = nginx.free_ports(1)[1]
  self.addr = "127.0.0.1:" .. self.port
  local made, dir = nginx.sh("mktemp -d /tmp/ngx-ipc-redis.XXXXXX")
  assert(made, "mktemp: " .. dir)
  self.dir = dir:gsub("%s+$", "")
  nginx.track(self)
  if self.opts.sentinel then
    -- a sentinel rewrites its configuration file: it lives in the instance's dir
    local f = assert(io.open(self.dir .. "/sentinel.conf", "w"))
    f:write(self.opts.sentinel)
    f:close()
  end
  local ok, err = pcall(self.launch, self)
  if not ok then
    self:stop()
    error(err, 2)
  end
  return self
end

-- redis-cli's output for one command (arguments shell-quoted)
function R:cli(...)
  local parts = { CLI, "-h 127.0.0.1", "-p", self.port }
  local t = self.opts.tls
  if t then
    parts[#parts + 1] = "--tls --cacert " .. nginx.shq(t.ca) .. " --cert " .. nginx.shq(t.client_cert)
      .. " --key " .. nginx.shq(t.client_key)
  end
  if self.opts.password then
    parts[#parts + 1] = "--no-auth-warning -a " .. nginx.shq(self.opts.password)
  end
  for _, a in ipairs({ ... }) do
    parts[#parts + 1] = nginx.shq(a)
  end
  local _, out = nginx.sh(table.concat(parts, " "))
  return out
end

-- waits until every process this instance started is gone
function R:wait_gone(timeout)
  nginx.wait_for(function()
    for _, pid in ipairs(self.pids) do
      if nginx.alive(pid) then
        return false, "redis-server " .. pid .. " still running"
      end
    end
    return true
  end, timeout or 10, "redis-server to exit")
end

function R:kill()
  for _, pid in ipairs(self.pids) do
    if nginx.alive(pid) then
      os.execute("kill -9 " .. pid)
    end
  end
  self:wait_gone()
end

-- SHUTDOWN: with appendonly, what Redis holds is on disk when it has exited
function R:shutdown()
  local pid = self:pid()
  if pid and nginx.alive(pid) then
    self:cli("SHUTDOWN")
    if nginx.alive(pid) then
      os.execute("kill " .. pid .. " 2>/dev/null")
    end
  end
  self:wait_gone()
  os.remove(self.dir .. "/redis.pid")
end

-- A sentinel watching `primary` (an instance of M.start) under `name`, with the
-- short timeouts tests need: down after `down_ms` (default 1000), failover
-- timeout `failover_ms` (default 5000).
function M.sentinel(o)
  local conf = table.concat({
    ("sentinel monitor %s 127.0.0.1 %d %d"):format(o.name, o.primary.port, o.quorum or 2),
    ("sentinel down-after-milliseconds %s %d"):format(o.name, o.down_ms or 1000),
    ("sentinel failover-timeout %s %d"):format(o.name, o.failover_ms or 5000),
    ("sentinel parallel-syncs %s 1"):format(o.name),
    "",
  }, "\n")
  return M.start { sentinel = conf }
end

function R:restart()
  self:shutdown()
  self:launch()
end

function R:stop()
  if self.stopped then
    return
  end
  self.stopped = true
  nginx.untrack(self)
  pcall(self.kill, self)
  if self.dir and self.dir:match("^/tmp/ngx%-ipc%-redis%.") and os.getenv("NGX_IPC_T_KEEP") ~= "1" then
    os.execute("rm -rf " .. nginx.shq(self.dir))
  end
end

return M
