-- t/stress/soak.lua: a long run of mixed traffic (issue 3, item 7).
--
--   make soak                      (10 minutes)
--   SOAK_SECONDS=60 make soak      (or: luajit t/stress/soak.lua [seconds])
--
-- 4 workers send to each other, broadcast and reply (checked traffic, see
-- t/stress/traffic.lua) with alerts of 10 B to 1 MiB (log-uniform sizes), each
-- worker within SOAK_BUDGET bytes/s of its own sends (default 8 MB/s; replies
-- come on top).  Prints each worker's RSS and open descriptors after a warm-up
-- and at the end, the alerts sent and handled, and the checks of the traffic
-- (nothing damaged, reordered or lost between live workers).  Exits 1 when a
-- check fails or a worker's descriptors grew; RSS drift is printed, not judged
-- (the allocator keeps freed 1 MiB blocks at its discretion).

local here = debug.getinfo(1, "S").source:match("^@(.*)/t/stress/[^/]+$") or "."
package.path = here .. "/?.lua;" .. here .. "/t/lib/?.lua;" .. package.path

local nginx = require "nginx"
local traffic = require "t.stress.traffic"
local socket = require "socket"

local seconds = tonumber(arg[1] or os.getenv("SOAK_SECONDS") or 600)
local budget = tonumber(os.getenv("SOAK_BUDGET") or 8e6)
local WARMUP = math.min(10, math.max(2, seconds / 20))

local function now() return socket.gettime() end
local out = io.stdout

out:write(("soak: %d s of mixed traffic (10 B .. 1 MiB, send/broadcast/reply) across 4 workers, %.0f MB/s each\n")
  :format(seconds, budget / 1e6))
out:flush()

local inst = nginx.start {
  workers = 4,
  init_worker = traffic.worker_code {
    min_size = 10, max_size = 1024 * 1024, interval = 0.002, bcast_every = 4, budget = budget,
  },
}

local failures = {}
local ok, err = pcall(function()
  local pids = inst:workers()
  traffic.start(inst)
  socket.sleep(WARMUP)
  local start = {}
  for _, p in ipairs(pids) do start[p] = traffic.proc(p) end
  local t0 = now()
  local next_report = t0 + 60
  while now() - t0 < seconds do
    socket.sleep(math.min(5, seconds - (now() - t0)))
    if now() >= next_report then
      next_report = next_report + 60
      local parts = {}
      for _, p in ipairs(pids) do
        local pr = traffic.proc(p)
        parts[#parts + 1] = pr and ("%d: %d kB/%d fds"):format(p, pr.rss, pr.fds) or (p .. ": gone")
      end
      out:write(("  %4.0f s  %s\n"):format(now() - t0, table.concat(parts, ", ")))
      out:flush()
    end
  end
  local mid = {}
  for _, p in ipairs(pids) do mid[p] = traffic.proc(p) end
  traffic.stop(inst)
  local stats, behind = traffic.quiesce(inst, 30)
  socket.sleep(0.5)
  local final = {}
  for _, p in ipairs(pids) do final[p] = traffic.proc(p) end
  local r = traffic.verify(stats, {})
  for _, f in ipairs(r.failures) do failures[#failures + 1] = f end
  for _, line in ipairs(inst:crashes()) do failures[#failures + 1] = "crash: " .. line end

  out:write(("soak: %.0f s of traffic\n"):format(now() - t0))
  out:write("  worker    RSS start -> end of traffic -> idle (kB)     fds start -> end   sent/handled alerts\n")
  for _, p in ipairs(pids) do
    local a, m, b = start[p], mid[p], final[p]
    local s = stats[p]
    local sent = s.bsent
    for _, n in pairs(s.sent) do sent = sent + n end
    out:write(("  %6d  %9d -> %9d -> %9d (%+d)   %3d -> %3d (%+d)   %d/%d\n"):format(
      p, a.rss, m.rss, b.rss, b.rss - a.rss, a.fds, b.fds, b.fds - a.fds, sent, s.nrecv))
    if not nginx.alive(p) then
      failures[#failures + 1] = ("worker %d died"):format(p)
    elseif b.fds > a.fds then
      failures[#failures + 1] = ("worker %d: open descriptors grew from %d to %d"):format(p, a.fds, b.fds)
    end
    if s.ipc then
      out:write(("          stats: sent %d (%.1f MB) received %d (%.1f MB), held %d, dropped %d/%d/%d/%d\n"):format(
        s.ipc.alerts_sent, s.ipc.bytes_sent / 1e6, s.ipc.alerts_received, s.ipc.bytes_received / 1e6,
        s.ipc.send_queued + s.ipc.receive_ready + s.ipc.receive_partial,
        s.ipc.dropped.corrupt_packets, s.ipc.dropped.truncated, s.ipc.dropped.exited, s.ipc.dropped.out_of_memory))
    end
  end
  traffic.report(r, out)
  if behind > 0 then
    failures[#failures + 1] = behind .. " alerts between live workers never arrived"
  end
end)
if not ok then failures[#failures + 1] = tostring(err) end
local stop_ok, stop_err = pcall(inst.stop, inst)
if not stop_ok then failures[#failures + 1] = tostring(stop_err) end
for _, f in ipairs(failures) do out:write("  FAIL: " .. f .. "\n") end
out:write(#failures == 0 and "soak: PASS\n" or ("soak: FAIL (%d)\n"):format(#failures))
os.exit(#failures == 0 and 0 or 1)
