-- t/stress/reload.lua: nginx -s reload under traffic (issue 3, item 2).
--
--   luajit t/stress/reload.lua [reloads]      (default 100; also RELOADS=n)
--   make stress
--
-- 4 workers send, broadcast and reply to each other without pause (checked
-- traffic, see t/stress/traffic.lua) while the master is told to reload
-- `reloads` times.  Then:
--   - no worker died by a signal (error.log "exited on signal");
--   - no alert was damaged, reordered, or reached a worker of another
--     generation, and sends to workers of other generations all failed;
--   - between workers alive at the end, everything sent arrived; between the
--     others (old generations), what arrived is the start of what was sent:
--     only the tail in flight when a worker exited may be missing (counted);
--   - every old worker exited, and only the current generation's instance
--     directory is left under /tmp/ngx_ipc.w<wire>.<euid>.
-- Prints the figures; exits 1 on a failure.  Used with a small count by
-- t/integration/hardening_reload_spec.lua.

local here = debug.getinfo(1, "S").source:match("^@(.*)/t/stress/[^/]+$") or "."
package.path = here .. "/?.lua;" .. here .. "/t/lib/?.lua;" .. package.path

local nginx = require "nginx"
local traffic = require "t.stress.traffic"
local socket = require "socket"

local M = {}

local function now() return socket.gettime() end

-- runs the scenario; returns { failures = {...}, figures = {...} }
function M.run(reloads, opts)
  opts = opts or {}
  local out = opts.out or io.stdout
  local t0 = now()
  local inst = nginx.start {
    workers = 4,
    init_worker = traffic.worker_code {
      cross = true, big_every = 40, big_size = 100000, interval = opts.interval or 0.005,
    },
  }
  local ok, res = pcall(function()
    local master = inst.master
    local first = inst:workers()
    local all_old, old_count = {}, 0
    traffic.start(inst)
    socket.sleep(0.5)
    local max_old_alive, slow = 0, 0
    for i = 1, reloads do
      local ts = now()
      local old = inst:reload(nil, 20)
      if now() - ts > 5 then slow = slow + 1 end
      for _, p in ipairs(old) do
        if not all_old[p] then old_count = old_count + 1 end
        all_old[p] = true
      end
      local alive_old = 0
      for p in pairs(all_old) do
        if nginx.alive(p) then alive_old = alive_old + 1 end
      end
      if alive_old > max_old_alive then max_old_alive = alive_old end
      if opts.progress and i % 10 == 0 then
        out:write(("  %d reloads, %.1f s, old workers still running: %d\n"):format(i, now() - t0, alive_old))
        out:flush()
      end
      socket.sleep(opts.pause or 0.1)
    end
    local reload_time = now() - t0

    -- every old worker exits
    local deadline = now() + 20
    local left
    repeat
      left = {}
      for p in pairs(all_old) do
        if nginx.alive(p) then left[#left + 1] = p end
      end
      if #left > 0 then socket.sleep(0.1) end
    until #left == 0 or now() > deadline

    traffic.stop(inst)
    local stats, behind = traffic.quiesce(inst, 20)
    local r = traffic.verify(stats, {})
    local f = r.figures
    f.reloads = reloads
    f.reload_seconds = reload_time
    f.old_workers = old_count
    f.max_old_alive = max_old_alive
    f.behind = behind
    if #left > 0 then
      table.insert(r.failures, 1, ("%d old workers still running 20 s after the last reload: %s"):format(
        #left, table.concat(left, " ")))
    end
    for _, line in ipairs(inst:crashes()) do
      table.insert(r.failures, 1, "crash: " .. line)
    end
    -- the current workers are the last generation's
    local now_pids = inst:workers()
    if #now_pids ~= 4 then
      r.failures[#r.failures + 1] = ("%d current workers instead of 4"):format(#now_pids)
    end
    for _, p in ipairs(first) do
      if nginx.alive(p) then
        r.failures[#r.failures + 1] = ("first-generation worker %d still running"):format(p)
      end
    end
    -- instance directories of this master: the current generation's only
    local _, dir = traffic.instance_dir(inst, now_pids[1])
    local root = dir:match("^(.*)/[^/]+$")
    local mine = {}
    for _, name in ipairs(nginx.listdir(root)) do
      if name:match("^%d+%-" .. master .. "%-") then mine[#mine + 1] = name end
    end
    f.instance_dirs = #mine
    if #mine ~= 1 then
      r.failures[#r.failures + 1] = ("%d instance directories of master %d under %s (expected 1): %s"):format(
        #mine, master, root, table.concat(mine, " "))
    end
    -- and it holds the pipes of the current workers, nothing else
    traffic.check_pipes(inst, now_pids, r)
    return r
  end)
  return traffic.finish(inst, ok, res)
end

function M.print(r, out)
  out = out or io.stdout
  local f = r.figures
  out:write(("reloads: %d done in %.1f s, %d old workers all exited (at most %d running at once), %d instance dir left\n"):format(
    f.reloads, f.reload_seconds, f.old_workers, f.max_old_alive, f.instance_dirs or -1))
  traffic.report(r, out)
  out:write(#r.failures == 0 and "reload: PASS\n" or ("reload: FAIL (%d)\n"):format(#r.failures))
end

if not package.loaded["t.stress.reload"] and arg and arg[0] and arg[0]:match("reload%.lua$") then
  package.loaded["t.stress.reload"] = M
  local n = tonumber(arg[1] or os.getenv("RELOADS") or 100)
  io.stdout:write(("reload stress: %d reloads of a 4-worker nginx under traffic\n"):format(n))
  local r = M.run(n, { progress = true })
  M.print(r)
  os.exit(#r.failures == 0 and 0 or 1)
end

return M
