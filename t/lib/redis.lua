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
-- Never the system's redis service: each instance binds 127.0.0.1 on a port the
-- kernel just had free, keeps its files in its own directory under /tmp, runs
-- daemonized with its own pid file, and is killed at stop (and by nginx.lua's
-- stop_all and last-resort collector, which track it).

local socket = require "socket"
local nginx = require "nginx"

local M = {}
local SERVER = os.getenv("NGX_IPC_T_REDIS") or "redis-server"
local CLI = os.getenv("NGX_IPC_T_REDIS_CLI") or "redis-cli"

local R = {}
R.__index = R

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
  local args = {
    SERVER, "--port", self.port, "--bind", "127.0.0.1", "--dir", self.dir,
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
  local ok, out = nginx.sh(table.concat(args, " "))
  if not ok then
    error("redis-server failed to start: " .. out .. (nginx.read_file(self.dir .. "/redis.log") or ""))
  end
  nginx.wait_for(function()
    return self.opts.password and self:pid() ~= nil and nginx.alive(self:pid()) or ping(self.port)
  end, 10, "redis-server on port " .. self.port)
  self.pids[#self.pids + 1] = self:pid()
  if self.opts.password then
    nginx.wait_for(function()
      local out2 = self:cli("PING")
      return out2:find("PONG", 1, true) ~= nil, out2
    end, 10, "redis-server on port " .. self.port .. " to answer")
  end
end

-- opts: appendonly (bool), password, node_entries (stream-node-max-entries)
function M.start(opts)
  local self = setmetatable({ opts = opts or {}, pids = {} }, R)
  self.port = nginx.free_ports(1)[1]
  self.addr = "127.0.0.1:" .. self.port
  local made, dir = nginx.sh("mktemp -d /tmp/ngx-ipc-redis.XXXXXX")
  assert(made, "mktemp: " .. dir)
  self.dir = dir:gsub("%s+$", "")
  nginx.track(self)
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
