-- t/stress/kill.lua: kill -9 of workers under traffic (issue 3, item 3).
--
--   luajit t/stress/kill.lua [kills]          (default 20; also KILLS=n)
--   make stress
--
-- 4 workers send (some alerts of 300 KB, so that kills land mid-alert),
-- broadcast and reply (checked traffic, see t/stress/traffic.lua) while
-- `kills` times a random worker is killed with SIGKILL and the master respawns
-- it.  Then:
--   - no worker other than the killed ones died by a signal, and no traffic
--     loop raised: every send to a dead pid returned nil, err (the documented
--     "no such worker" errors only), never true after the death;
--   - no alert was damaged or reordered; between workers alive at the end,
--     everything sent arrived;
--   - every respawned worker handled every broadcast the other workers sent
--     after it started;
--   - the instance directory holds exactly the live workers' pipes: those of
--     killed workers are removed;
--   - no live worker keeps bytes of alerts that will never complete
--     (stats().receive_partial is 0 once the traffic stopped).
-- Prints the figures; exits 1 on a failure.  Used with a small count by
-- t/integration/hardening_kill_spec.lua.

local here = debug.getinfo(1, "S").source:match("^@(.*)/t/stress/[^/]+$") or "."
package.path = here .. "/?.lua;" .. here .. "/t/lib/?.lua;" .. package.path

local ffi = require "ffi"
local nginx = require "nginx"
local traffic = require "t.stress.traffic"
local socket = require "socket"

pcall(ffi.cdef, "int kill(int pid, int sig);")

local M = {}

local function now() return socket.gettime() end

-- SIGKILL; returns the time the pid was seen gone and the respawned worker
local function kill9(inst, victim)
  local before = {}
  for _, p in ipairs(inst:workers()) do before[p] = true end
  inst.killed[victim] = true
  ffi.C.kill(victim, 9)
  local dead = nginx.wait_for(function() return not nginx.alive(victim) end, 5, "worker " .. victim .. " to die", 0.001)
  local t_dead = now()
  local fresh = inst:wait_for(function()
    local list = inst:workers()
    if #list ~= inst.nworkers then return false, #list .. " workers" end
    for _, p in ipairs(list) do
      if not before[p] then return p end
    end
    return false, "no new worker yet"
  end, 10, "a worker to replace " .. victim)
  return t_dead, fresh, dead
end

function M.run(kills, opts)
  opts = opts or {}
  local out = opts.out or io.stdout
  local t0 = now()
  local inst = nginx.start {
    workers = 4,
    allow_crash = false,
    init_worker = traffic.worker_code {
      big_every = 15, big_size = 300000, interval = opts.interval or 0.005,
    },
  }
  local ok, res = pcall(function()
    traffic.start(inst)
    socket.sleep(0.5)
    local killed, respawned = {}, {}
    for i = 1, kills do
      local list = inst:workers()
      local victim = list[math.random(#list)]
      local t_dead, fresh = kill9(inst, victim)
      killed[victim] = t_dead
      respawned[fresh] = true
      if opts.progress and i % 5 == 0 then
        out:write(("  %d kills, %.1f s\n"):format(i, now() - t0))
        out:flush()
      end
      socket.sleep(opts.pause or 0.4)
    end
    local kill_time = now() - t0
    traffic.stop(inst)
    local stats, behind = traffic.quiesce(inst, 20)
    -- receivers drop dead senders' partial alerts at most once a second, at a
    -- wake-up of their loop (which waits 1 s at most): give them that long
    socket.sleep(2.2)
    stats = traffic.quiesce(inst, 20)
    local r = traffic.verify(stats, { killed = killed, respawned = respawned })
    local f = r.figures
    f.kills = kills
    f.kill_seconds = kill_time
    f.behind = behind

    for _, line in ipairs(inst:crashes()) do
      table.insert(r.failures, 1, "crash: " .. line)
    end
    -- senders were told: every killed pid got nil, err from some sender
    f.refused_dead = 0
    for dead in pairs(killed) do
      local n = 0
      for _, s in pairs(stats) do n = n + (s.fail_to[dead] or 0) end
      f.refused_dead = f.refused_dead + n
    end
    if kills > 0 and f.refused_dead == 0 then
      r.failures[#r.failures + 1] = "no send to a killed worker returned nil, err"
    end
    -- the pipes: the live workers', nothing else
    local now_pids = inst:workers()
    traffic.check_pipes(inst, now_pids, r)
    -- partial alerts of dead senders must not stay held (and count against
    -- receive_backlog) forever
    f.partial_held = 0
    for _, p in ipairs(now_pids) do
      local s = stats[p]
      local held = s and s.ipc and s.ipc.receive_partial or 0
      f.partial_held = f.partial_held + held
      if held > 0 then
        r.failures[#r.failures + 1] = ("worker %d still holds receive_partial = %d bytes after the traffic stopped "
          .. "(alerts of killed senders that can never complete)"):format(p, held)
      end
    end
    return r
  end)
  return traffic.finish(inst, ok, res)
end

function M.print(r, out)
  out = out or io.stdout
  local f = r.figures
  out:write(("kills: %d survived in %.1f s; sends to dead pids refused: %d\n"):format(
    f.kills, f.kill_seconds, f.refused_dead or 0))
  traffic.report(r, out)
  out:write(#r.failures == 0 and "kill: PASS\n" or ("kill: FAIL (%d)\n"):format(#r.failures))
end

if not package.loaded["t.stress.kill"] and arg and arg[0] and arg[0]:match("kill%.lua$") then
  package.loaded["t.stress.kill"] = M
  local n = tonumber(arg[1] or os.getenv("KILLS") or 20)
  io.stdout:write(("kill stress: %d kill -9 of workers of a 4-worker nginx under traffic\n"):format(n))
  local r = M.run(n, { progress = true })
  M.print(r)
  os.exit(#r.failures == 0 and 0 or 1)
end

return M
