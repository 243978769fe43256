-- bench/worker_events.lua: WE1 of `make bench` (bench/run.lua --only=WE1): an
-- event posted with ngx.ipc.worker_events in one worker and handled in every
-- worker, and, with --worker-events=PATH (a lua-resty-worker-events checkout),
-- the same with that library on a second and third nginx, in the same run:
-- once polling at its default interval (1 s) and once at 0.01 s (2.0.1, the
-- latest release, or 1.0.0, the one the drop-in follows: PATH says).  Both use
-- the shm its README configures (lua_shared_dict process_events 1m); ours
-- takes it and the interval and ignores them.
--
-- The workloads, the clock and the counts are E1's (bench/events.lua:
-- latency paced one event every 2 ms, a burst with a yield every 100 posts;
-- 10 B and 10 KiB data, 2 and 5 workers; refused = post returned nil, err;
-- lost = an event some worker never handled).  The library only sees an
-- event when its poll timer fires, so its latency is about its interval and
-- an event whose data the shm evicted before every worker polled is lost:
-- a run stops waiting once no event has been handled for 3 intervals + 2 s.

local socket = require "socket"

local ROOT = debug.getinfo(1, "S").source:sub(2):match("^(.*)/bench/[^/]+$") or "."
local E = dofile(ROOT .. "/bench/events.lua")

local INTERVALS = { 1, 0.01 }

-- init_by_lua for E's measure (see bench/events.lua, INIT). The module is
-- required in the worker, as users do: release 1.0.0 loaded in the master
-- loses its handler table when configure() sees a new pid.
local INIT = [[
local we
function BENCH_READY() return we ~= nil and we.configured() end
function BENCH_SUBSCRIBE(h)
  we = require(%q)
  assert(we.configure { shm = "process_events", interval = %s })
  we.register(function(data, event) h(data, event) end, "bench")
end
function BENCH_PUBLISH(run, data) return we.post("bench", run, data) end
]]

local function lib(ctx, real, interval)
  return {
    init = INIT:format(real and "resty.worker.events" or "ngx.ipc.worker_events", interval),
    http = "lua_shared_dict process_events 1m;",
    -- the library and no ngx.ipc
    lua_path = real and (ctx.opts.worker_events .. "/lib/?.lua;;") or nil,
    stall = real and interval * 3 + 2 or nil,
  }
end

return function(ctx)
  local say, si, opts = ctx.say, ctx.si, ctx.opts
  local t_start = socket.gettime()
  local out = { name = "WE1 worker_events", rows = {}, intervals = INTERVALS }
  for _, workers in ipairs({ 2, 5 }) do
    for _, size in ipairs({ 10, 10240 }) do
      local row = { workers = workers, size = size, real = {} }
      row.ours = E.measure(ctx, lib(ctx, false, 1), workers, size)
      say("  WE1 %d workers, %5d B: ngx.ipc.worker_events %s", workers, size, E.show(si, row.ours))
      if opts.worker_events then
        for i, interval in ipairs(INTERVALS) do
          row.real[i] = E.measure(ctx, lib(ctx, true, interval), workers, size)
          say("  WE1 %d workers, %5d B: lua-resty-worker-events, interval %g s: %s", workers, size, interval,
            E.show(si, row.real[i]))
        end
      end
      out.rows[#out.rows + 1] = row
    end
  end
  return E.finish(out, say, "WE1", t_start)
end
