-- bench/profile.lua: where the time goes (luajit bench/run.lua --profile=DIR).
--
-- For each workload (W1 and W2 unless --only says otherwise) on a fresh nginx,
-- once with the two workers on separate CPUs and once on one CPU:
--   a. a plain run: CPU time (/proc/<pid>/schedstat, stat), context switches
--      (status) and read/write system calls (io) of each worker, per alert;
--   b. the system calls by name (perf stat on syscall tracepoints);
--   c. malloc/free/realloc and the shim's entry points, counted with uprobes
--      (perf probe): FFI calls, read events, semaphore posts per alert;
--   e. a CPU profile of both workers (perf record -e cpu-clock), by library
--      and by symbol (LuaJIT's compiled traces show as unknown/JIT);
--   f. LuaJIT's own profiler (jit.p) inside each worker: by VM state and by
--      function (it samples only while Lua runs, so it says little here);
--   g. jit.v: the traces compiled during a run and the aborts on the hot path.
-- (There is no pass d: Lua heap growth with the GC stopped proved
-- meaningless, LuaJIT's string interning hands back still-live strings.)
-- Pass c (uprobes, ~1-2 µs per hit) slows the workers down: its counts are
-- right per call, but timing-dependent paths (send queues, alerts per read)
-- differ from the plain run; a and b are the reference.
-- Raw outputs go to DIR/<workload>/, the digest to DIR/summary.txt (printed)
-- and DIR/summary.json.  Needs root (perf), installs linux-perf if missing
-- and mounts tracefs if it is not mounted.

return function(ctx)
  local opts, say, sh, si = ctx.opts, ctx.say, ctx.sh, ctx.si
  local shq = require("nginx").shq
  local socket = require "socket"
  local DIR = opts.profile

  local function must(cmd)
    local ok, out = sh(cmd)
    if not ok then error("failed: " .. cmd .. "\n" .. out) end
    return out
  end

  local function read_file(p)
    local f = io.open(p, "rb")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return s
  end

  local function write_file(p, s)
    local f = assert(io.open(p, "wb"))
    f:write(s)
    f:close()
  end

  ---------------------------------------------------------------------------
  -- tools
  ---------------------------------------------------------------------------

  if not sh("command -v perf >/dev/null") then
    say("profile: installing linux-perf")
    must("DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends linux-perf"
      .. " || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends linux-perf)")
  end
  if not sh("test -e /sys/kernel/tracing/events/syscalls") then
    sh("mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing")
  end
  local have_tracepoints = sh("perf stat -e raw_syscalls:sys_enter true")
  if not have_tracepoints then
    say("profile: syscall tracepoints unavailable; system calls by name will be missing")
  end

  local LIBC = must("ldconfig -p | awk '/libc.so.6 .*x86-64/ {print $NF; exit}'"):gsub("%s+$", "")
  local LUA_MODULE = "/usr/lib/nginx/modules/ngx_http_lua_module.so"

  -- a background process; returns its pid
  local function spawn_bg(cmd)
    local out = must(cmd .. " >/dev/null 2>&1 & echo $!")
    return tonumber(out:match("%d+"))
  end

  local function stop_bg(pid)
    os.execute("kill -INT " .. pid .. " 2>/dev/null")
    for _ = 1, 500 do
      if not sh("kill -0 " .. pid .. " 2>/dev/null") then return end
      socket.sleep(0.02)
    end
    os.execute("kill -KILL " .. pid .. " 2>/dev/null")
  end

  ---------------------------------------------------------------------------
  -- /proc
  ---------------------------------------------------------------------------

  local CLK_TCK = tonumber((select(2, sh("getconf CLK_TCK")))) or 100

  local function proc(pid)
    local st = read_file("/proc/" .. pid .. "/stat") or ""
    local fields = {}
    for f in st:gsub("^.-%) ", ""):gmatch("%S+") do fields[#fields + 1] = f end
    local status = read_file("/proc/" .. pid .. "/status") or ""
    local io_ = read_file("/proc/" .. pid .. "/io") or ""
    local sched = read_file("/proc/" .. pid .. "/schedstat") or "0"
    return {
      cpu_ns = tonumber(sched:match("^(%d+)")) or 0,
      runq_ns = tonumber(sched:match("^%d+%s+(%d+)")) or 0,
      utime = (tonumber(fields[12]) or 0) / CLK_TCK,
      stime = (tonumber(fields[13]) or 0) / CLK_TCK,
      vcsw = tonumber(status:match("voluntary_ctxt_switches:%s*(%d+)")) or 0,
      ivcsw = tonumber(status:match("nonvoluntary_ctxt_switches:%s*(%d+)")) or 0,
      syscr = tonumber(io_:match("syscr:%s*(%d+)")) or 0,
      syscw = tonumber(io_:match("syscw:%s*(%d+)")) or 0,
    }
  end

  local function proc_delta(a, b)
    local d = {}
    for k, v in pairs(b) do d[k] = v - (a[k] or 0) end
    return d
  end

  ---------------------------------------------------------------------------
  -- perf stat, per thread, CSV: { [pid] = { [event] = count } }
  ---------------------------------------------------------------------------

  local function perf_stat_parse(path)
    local out = {}
    for line in (read_file(path) or ""):gmatch("[^\n]+") do
      local tid, count, event = line:match("^.-%-(%d+),([^,]*),[^,]*,([^,]+),")
      if tid then
        tid = tonumber(tid)
        out[tid] = out[tid] or {}
        out[tid][event] = tonumber(count) or 0
      end
    end
    return out
  end

  local SYSCALLS = { "read", "write", "epoll_wait", "epoll_ctl", "openat", "close", "futex", "mmap",
    "munmap", "brk", "madvise", "mprotect", "getpid", "clock_gettime", "gettimeofday", "writev",
    "readv", "recvfrom", "sendto", "accept4", "fcntl", "fstat", "newfstatat", "getdents64",
    "rt_sigreturn", "setitimer" }

  -- one run (run(hooks)) with `perf stat` counting `events` (its -e
  -- arguments) for each of `pids`, into `file`
  local function perf_stat_during(run, events, pids, file)
    local perf
    run {
      before = function()
        perf = spawn_bg(("perf stat -x, --per-thread %s -p %s -o %s"):format(events, table.concat(pids, ","), shq(file)))
        socket.sleep(0.5)
      end,
      after = function() stop_bg(perf) end,
    }
  end

  -- writes DIR/<name>.txt (the lines printed) and DIR/<name>.json
  local function finish(name, lines, data, more)
    write_file(("%s/%s.txt"):format(DIR, name), table.concat(lines, "\n") .. "\n")
    write_file(("%s/%s.json"):format(DIR, name), ctx.json(data) .. "\n")
    say("profile written to %s (%s.txt, %s.json%s)", DIR, name, name, more)
    return 0
  end

  -- prints a line (a format and its arguments) and keeps it in `list`
  local function printer(list)
    return function(fmt, ...)
      local l = select("#", ...) > 0 and fmt:format(...) or fmt
      list[#list + 1] = l
      print(l)
    end
  end

  ---------------------------------------------------------------------------
  -- --waits=DIR: who waits for whom in the bulk rows (issue 18)
  ---------------------------------------------------------------------------

  -- Counts, not times (on a busy machine only counts repeat): per alert,
  -- for the sender and the receiver(s), with the workers on separate CPUs
  -- (split), on one CPU (shared) and where the scheduler puts them (auto):
  --   a. /proc: CPU and run-queue time (schedstat), the rest of the run is
  --      time asleep, i.e. waiting for the other side or for a yield's timer;
  --      voluntary context switches (each one a sleep the other side or a
  --      timer ends);
  --   b. perf stat: system calls by name; writes refused with EAGAIN (pipe
  --      full); reads that found the pipe empty (EAGAIN) and epoll_wait
  --      calls that returned nothing; wake-ups this process issued
  --      (sched_waking: a write that wakes the reader, a read that wakes a
  --      writer waiting for room); context switches, CPU migrations;
  --   c. uprobes: read events handled, semaphore posts (receive-loop
  --      wake-ups), write events (a full pipe drained), end-of-turn events,
  --      alerts put in a send queue.  The probes slow the workers (~1 µs a
  --      hit), so c's counts are right per call but its rates are not.
  local function waits()
    local WSPECS = {
      { id = "W2", what = "send 10 KiB", workers = 2, bcast = false, size = 10240 },
      { id = "W2_64k", what = "send 64 KiB", workers = 2, bcast = false, size = 65536 },
      { id = "W4", what = "broadcast 10 KiB to 2 workers", workers = 2, bcast = true, size = 10240 },
      { id = "W4_64k", what = "broadcast 64 KiB to 2 workers", workers = 2, bcast = true, size = 65536 },
    }
    local yield = opts.yield:match("^[%w]+$") and opts.yield or "timer"
    local placements = { "split", "shared", "auto" }
    local EVENTS = { { "raw_syscalls:sys_enter", nil, "system calls" } }
    for _, name in ipairs { "writev", "write", "read", "epoll_wait", "epoll_ctl", "openat", "close" } do
      EVENTS[#EVENTS + 1] = { "syscalls:sys_enter_" .. name, nil, "  " .. name }
    end
    for _, e in ipairs {
      { "syscalls:sys_exit_writev", "ret == -11", "writev EAGAIN (pipe full)" },
      { "syscalls:sys_exit_write", "ret == -11", "write EAGAIN (pipe full)" },
      { "syscalls:sys_exit_read", "ret == -11", "read EAGAIN (pipe empty)" },
      { "syscalls:sys_exit_epoll_wait", "ret == 0", "epoll_wait with no event" },
      { "sched:sched_waking", nil, "wake-ups issued (sched_waking)" },
      { "context-switches", nil, "context switches" },
      { "cpu-migrations", nil, "CPU migrations" },
    } do EVENTS[#EVENTS + 1] = e end
    local shim_probes = { "ngx_ipc_read_handler", "ngx_ipc_write_handler", "ngx_ipc_turn_handler", "ngx_ipc_recv" }
    must("mkdir -p " .. shq(DIR))
    local results, lines = {}, {}
    local out = printer(lines)
    for _, spec in ipairs(WSPECS) do
      if not opts.only or ctx.wanted(spec.id:upper()) then
        local R = { id = spec.id, what = spec.what, size = spec.size, yield = yield, by = {} }
        results[#results + 1] = R
        for _, placement in ipairs(placements) do
          ctx.wait_quiet(opts.quiet)
          say("waits %s (%s, %s, yield %s) ...", spec.id, spec.what, placement, yield)
          local inst = ctx.start(spec.workers, placement ~= "auto" and placement or nil)
          local sender = inst.by_id[1]
          local receivers = {}
          for _, pid in ipairs(inst.all) do
            if pid ~= sender then receivers[#receivers + 1] = pid end
          end
          local n = spec.size == 65536 and 4000 or 20000
          local function run(hooks)
            local r = ctx.stream_run(inst, spec.bcast, n, spec.size, false, hooks, yield)
            if not r.ok then error(spec.id .. ": " .. table.concat(r.errors, "; ")) end
            return r
          end
          ctx.stream_run(inst, spec.bcast, math.floor(n / 4), spec.size, true, nil, yield)
          n = math.max(1000, math.floor(run().alerts_per_s * math.max(0.5, opts.seconds) / 100) * 100)
          local P = { n = n }
          R.by[placement] = P
          -- a
          local before, after = {}, {}
          local r = run {
            before = function() for _, pid in ipairs(inst.all) do before[pid] = proc(pid) end end,
            after = function() for _, pid in ipairs(inst.all) do after[pid] = proc(pid) end end,
          }
          P.alerts_per_s, P.seconds, P.throttled = r.alerts_per_s, r.seconds, r.throttled
          local function role(pids, f)
            local sum = 0
            for _, pid in ipairs(pids) do sum = sum + f(pid) end
            return sum / #pids / n
          end
          local function proc_role(pids)
            local function d(k) return function(pid) return after[pid][k] - before[pid][k] end end
            local cpu, runq = role(pids, d("cpu_ns")), role(pids, d("runq_ns"))
            return { cpu_us = cpu / 1e3, runq_us = runq / 1e3, asleep_us = r.seconds * 1e6 / n - cpu / 1e3 - runq / 1e3,
              vcsw = role(pids, d("vcsw")), ivcsw = role(pids, d("ivcsw")) }
          end
          P.sender, P.receiver = { proc = proc_role { sender } }, { proc = proc_role(receivers) }
          -- b
          local file = ("%s/%s-%s-events.csv"):format(DIR, spec.id, placement)
          local args = {}
          for _, e in ipairs(EVENTS) do
            args[#args + 1] = "-e " .. e[1] .. (e[2] and (" --filter " .. shq(e[2])) or "")
          end
          perf_stat_during(run, table.concat(args, " "), inst.all, file)
          -- (one event may appear twice, with and without a filter: keyed by
          -- the order in the file)
          local counts = {}
          for line in (read_file(file) or ""):gmatch("[^\n]+") do
            local tid, count, event = line:match("^.-%-(%d+),([^,]*),[^,]*,([^,]+),")
            if tid then
              tid = tonumber(tid)
              counts[tid] = counts[tid] or {}
              local list = counts[tid]
              list[#list + 1] = { event, tonumber(count) or 0 }
            end
          end
          local function ev_role(pids)
            local t = {}
            for i, e in ipairs(EVENTS) do
              t[e[3]] = role(pids, function(pid)
                local x = (counts[pid] or {})[i]
                return x and x[1] == e[1] and x[2] or 0
              end)
            end
            return t
          end
          P.sender.events, P.receiver.events = ev_role { sender }, ev_role(receivers)
          -- c
          sh("perf probe -q -d 'ngxbench:*'")
          local shim = inst.prefix .. "/lib/ngx_ipc_shim.so"
          local probes = {}
          for _, f in ipairs(shim_probes) do
            if sh(("perf probe -q -x %s -a 'ngxbench:%s=%s'"):format(shq(shim), f, f)) then
              probes[#probes + 1] = f
            end
          end
          if sh(("perf probe -q -x %s -a 'ngxbench:sema_post=ngx_http_lua_ffi_sema_post'"):format(shq(LUA_MODULE))) then
            probes[#probes + 1] = "sema_post"
          end
          local pfile = ("%s/%s-%s-calls.csv"):format(DIR, spec.id, placement)
          local ev = {}
          for i, f in ipairs(probes) do ev[i] = "ngxbench:" .. f end
          if #ev > 0 then
            perf_stat_during(run, "-e " .. table.concat(ev, ","), inst.all, pfile)
            local pc = perf_stat_parse(pfile)
            for _, x in ipairs { { P.sender, { sender } }, { P.receiver, receivers } } do
              x[1].calls = {}
              for _, e in ipairs(ev) do
                x[1].calls[e:gsub("^ngxbench:", "")] = role(x[2], function(pid) return (pc[pid] or {})[e] or 0 end)
              end
            end
          end
          sh("perf probe -q -d 'ngxbench:*'")
          ctx.stop_all()
        end
        -- the digest
        out("")
        out("== %s: %s, yield %s; per alert (receiver: each other worker)", spec.id, spec.what, yield)
        local head = { ("%-34s"):format("") }
        for _, pl in ipairs(placements) do
          head[#head + 1] = ("%21s"):format(pl .. (R.by[pl] and (" " .. si(R.by[pl].alerts_per_s) .. "/s") or ""))
        end
        out(table.concat(head, " "))
        local sub = { ("%-34s"):format("") }
        for _ = 1, #placements do sub[#sub + 1] = ("%10s %10s"):format("sender", "receiver") end
        out(table.concat(sub, " "))
        local function row(label, f, fmt)
          local cells = { ("%-34s"):format(label) }
          for _, pl in ipairs(placements) do
            local P = R.by[pl]
            for _, side in ipairs { "sender", "receiver" } do
              local ok, v = pcall(f, P[side])
              cells[#cells + 1] = ("%10s"):format(ok and v and (fmt or "%.3g"):format(v) or "-")
            end
          end
          out(table.concat(cells, " "))
        end
        row("CPU µs", function(x) return x.proc.cpu_us end, "%.2f")
        row("run-queue µs", function(x) return x.proc.runq_us end, "%.2f")
        row("asleep µs (waiting)", function(x) return x.proc.asleep_us end, "%.2f")
        row("voluntary switches (sleeps)", function(x) return x.proc.vcsw end)
        row("involuntary switches", function(x) return x.proc.ivcsw end)
        for _, e in ipairs(EVENTS) do
          row(e[3], function(x) return x.events[e[3]] end)
        end
        for _, f in ipairs(shim_probes) do
          row("uprobe " .. f:gsub("^ngx_ipc_", ""), function(x) return x.calls[f] end)
        end
        row("uprobe sema_post (loop wake-ups)", function(x) return x.calls.sema_post end)
        local thr = { ("%-34s"):format("bench flow-control sleeps (run)") }
        for _, pl in ipairs(placements) do thr[#thr + 1] = ("%10s %10s"):format(tostring(R.by[pl].throttled), "") end
        out(table.concat(thr, " "))
      end
    end
    return finish("waits", lines, results, "")
  end
  if opts.waits then return waits() end

  ---------------------------------------------------------------------------
  -- the workloads
  ---------------------------------------------------------------------------

  -- Unpinned, the scheduler sometimes keeps both workers on one CPU and
  -- sometimes not, and the profiles differ completely: each workload is
  -- profiled with the workers on separate CPUs ("split", worker_cpu_affinity
  -- 01 10) and on one CPU ("shared", 01 01).
  local specs = {
    { id = "W1", what = "send 10 B, 2 workers", workers = 2, bcast = false, size = 10, n = 300000 },
    { id = "W2", what = "send 10 KiB, 2 workers", workers = 2, bcast = false, size = 10240, n = 40000 },
    { id = "W3", what = "broadcast 10 B, 5 workers", workers = 5, bcast = true, size = 10, n = 100000 },
    { id = "W4", what = "broadcast 10 KiB, 2 workers", workers = 2, bcast = true, size = 10240, n = 20000 },
  }
  local chosen = {}
  for _, s in ipairs(specs) do
    if (opts.only and ctx.wanted(s.id)) or (not opts.only and (s.id == "W1" or s.id == "W2")) then
      for _, placement in ipairs { "split", "shared" } do
        local c = {}
        for k, v in pairs(s) do c[k] = v end
        c.placement = placement
        c.key = s.id .. "-" .. placement
        chosen[#chosen + 1] = c
      end
    end
  end

  must("mkdir -p " .. shq(DIR))
  local summary, text = {}, {}
  local out = printer(text)

  for _, spec in ipairs(chosen) do
    local wdir = DIR .. "/" .. spec.key
    must("mkdir -p " .. shq(wdir))
    ctx.wait_quiet(opts.quiet)
    local quiet_before = ctx.background.samples[#ctx.background.samples].cpus
    say("profile %s (%s, %s, N = %d) ...", spec.id, spec.what, spec.placement, spec.n)
    local inst = ctx.start(spec.workers, spec.placement)
    local sender = inst.by_id[1]
    local others = {}
    for _, pid in ipairs(inst.all) do
      if pid ~= sender then others[#others + 1] = pid end
    end
    local roles = { sender = { sender }, receiver = others }
    local S = { id = spec.id, what = spec.what, size = spec.size, workers = spec.workers,
      placement = spec.placement }
    summary[#summary + 1] = S

    local function run(hooks, n)
      local r = ctx.stream_run(inst, spec.bcast, n or spec.n, spec.size, false, hooks)
      if not r.ok then error(spec.id .. ": " .. table.concat(r.errors, "; ")) end
      return r
    end

    -- per alert, averaged over the pids of a role
    local function per_alert(by_pid, key, pids)
      local sum = 0
      for _, pid in ipairs(pids) do sum = sum + ((by_pid[pid] or {})[key] or 0) end
      return sum / #pids / spec.n
    end

    -- warm-up (and a check), then N for about 1 s per run (passes a, b, e,
    -- g); the uprobe pass (c) keeps spec.n, the heap pass (d) 4096
    ctx.stream_run(inst, spec.bcast, math.floor(spec.n / 4), spec.size, true)
    local probe_n = spec.n
    do
      local w = run(nil, spec.n)
      spec.n = math.max(spec.n, math.floor(w.alerts_per_s * (opts.seconds > 0.8 and opts.seconds or 1) / 1000) * 1000)
      S.n, S.n_uprobes = spec.n, probe_n
    end
    local before, deltas = {}, {}
    local r = run {
      before = function()
        for _, pid in ipairs(inst.all) do before[pid] = proc(pid) end
      end,
      after = function()
        for _, pid in ipairs(inst.all) do deltas[pid] = proc_delta(before[pid], proc(pid)) end
      end,
    }
    S.alerts_per_s = r.alerts_per_s
    S.deliveries_per_s = r.deliveries_per_s
    S.seconds = r.seconds
    S.proc = {}
    for role, pids in pairs(roles) do
      S.proc[role] = {
        cpu_us = per_alert(deltas, "cpu_ns", pids) / 1e3,
        user_us = per_alert(deltas, "utime", pids) * 1e6,
        sys_us = per_alert(deltas, "stime", pids) * 1e6,
        voluntary_switches = per_alert(deltas, "vcsw", pids),
        involuntary_switches = per_alert(deltas, "ivcsw", pids),
        read_syscalls = per_alert(deltas, "syscr", pids),
        write_syscalls = per_alert(deltas, "syscw", pids),
        cpu_utilisation = (function()
          local ns = 0
          for _, pid in ipairs(pids) do ns = ns + deltas[pid].cpu_ns end
          return ns / 1e9 / r.seconds / #pids
        end)(),
      }
    end

    -- b: system calls by name
    if have_tracepoints then
      local events = { "raw_syscalls:sys_enter" }
      for _, name in ipairs(SYSCALLS) do
        if sh("test -d /sys/kernel/tracing/events/syscalls/sys_enter_" .. name) then
          events[#events + 1] = "syscalls:sys_enter_" .. name
        end
      end
      local file = wdir .. "/syscalls.csv"
      local perf
      run {
        before = function()
          perf = spawn_bg(("perf stat -x, --per-thread -e %s -p %s -o %s"):format(
            table.concat(events, ","), table.concat(inst.all, ","), shq(file)))
          socket.sleep(0.5)
        end,
        after = function() stop_bg(perf) end,
      }
      local counts = perf_stat_parse(file)
      S.syscalls = {}
      for role, pids in pairs(roles) do
        local t = {}
        for _, ev in ipairs(events) do
          local v = per_alert(counts, ev, pids)
          if v > 0 then t[ev:gsub("^.*sys_enter_?", ""):gsub("^$", "total")] = v end
        end
        S.syscalls[role] = t
      end
    end

    -- c: uprobes (C calls per alert)
    do
      local shim = inst.prefix .. "/lib/ngx_ipc_shim.so"
      local probes = {
        { LIBC, "malloc" }, { LIBC, "free" }, { LIBC, "realloc" }, { LIBC, "calloc" },
        { shim, "ngx_ipc_send" }, { shim, "ngx_ipc_broadcast" }, { shim, "ngx_ipc_recv" },
        { shim, "ngx_ipc_read_handler" }, { shim, "ngx_ipc_stream_read" },
        { shim, "ngx_ipc_dest_enqueue" }, { shim, "ngx_ipc_dest_flush" }, { shim, "ngx_ipc_write_handler" },
        { LUA_MODULE, "ngx_http_lua_ffi_sema_post" },
      }
      sh("perf probe -q -d 'ngxbench:*'")
      local events = {}
      for _, p in ipairs(probes) do
        local ok = sh(("perf probe -q -x %s -a 'ngxbench:%s=%s'"):format(shq(p[1]), p[2], p[2]))
        if ok then events[#events + 1] = "ngxbench:" .. p[2] end
      end
      if #events > 0 then
        local file = wdir .. "/calls.csv"
        local perf
        run({
          before = function()
            perf = spawn_bg(("perf stat -x, --per-thread -e %s -p %s -o %s"):format(
              table.concat(events, ","), table.concat(inst.all, ","), shq(file)))
            socket.sleep(0.5)
          end,
          after = function() stop_bg(perf) end,
        }, probe_n)
        local counts = perf_stat_parse(file)
        S.calls = {}
        for role, pids in pairs(roles) do
          local t = {}
          for _, ev in ipairs(events) do
            local v = per_alert(counts, ev, pids) * spec.n / probe_n
            if v > 0 then t[ev:gsub("^ngxbench:", "")] = v end
          end
          S.calls[role] = t
        end
      end
      sh("perf probe -q -d 'ngxbench:*'")
    end

    -- e: perf record
    do
      local file = wdir .. "/perf.data"
      local perf
      run {
        before = function()
          perf = spawn_bg(("perf record -q -e cpu-clock -F 4999 -p %s -o %s"):format(
            table.concat(inst.all, ","), shq(file)))
          socket.sleep(0.5)
        end,
        after = function() stop_bg(perf) end,
      }
      -- (perf report's --pid filter loses entries with --sort dso: split by
      -- pid here, each percentage taken of that role's own samples)
      local dso = select(2, sh(("perf report -q --stdio -i %s --sort pid,dso --percent-limit 0 2>/dev/null")
        :format(shq(file))))
      local sym = select(2, sh(("perf report -q --stdio -i %s --sort pid,dso,sym --percent-limit 0.05 2>/dev/null")
        :format(shq(file))))
      write_file(wdir .. "/perf-dso.txt", dso)
      write_file(wdir .. "/perf-sym.txt", sym)
      local function parse(txt)
        local t = {}
        for line in txt:gmatch("[^\n]+") do
          local pct, pid, rest = line:match("^%s*([%d.]+)%%%s+(%d+):%S+%s+(.-)%s*$")
          if pct then t[#t + 1] = { tonumber(pct), tonumber(pid), (rest:gsub("%s+", " ")) } end
        end
        return t
      end
      local dsos, syms = parse(dso), parse(sym)
      S.perf = {}
      for role, pids in pairs(roles) do
        local mine = {}
        for _, pid in ipairs(pids) do mine[pid] = true end
        local total = 0
        for _, x in ipairs(dsos) do if mine[x[2]] then total = total + x[1] end end
        local function pick(list, max)
          local agg, order = {}, {}
          for _, x in ipairs(list) do
            if mine[x[2]] then
              local key = x[3]:gsub("%[JIT%] tid %d+", "[JIT] (LuaJIT traces)")
              if not agg[key] then order[#order + 1] = key end
              agg[key] = (agg[key] or 0) + x[1]
            end
          end
          table.sort(order, function(a, b) return agg[a] > agg[b] end)
          local t = {}
          for i = 1, math.min(max, #order) do
            t[i] = { total > 0 and agg[order[i]] / total * 100 or 0, order[i] }
          end
          return t
        end
        S.perf[role] = { dso = pick(dsos, 10), sym = pick(syms, 22), share_of_samples = total }
      end
    end

    -- f: jit.p inside the workers
    do
      local jp = {}
      for _, mode in ipairs { "v", "F" } do
        local files = {}
        run {
          before = function()
            for _, pid in ipairs(inst.all) do
              files[pid] = ("%s/logs/jitp-%s-%d.txt"):format(inst.prefix, mode, pid)
              inst:run(pid, ctx.B(("jitp_start(%q, %q)"):format(mode .. "i1", files[pid])))
            end
          end,
          after = function()
            for _, pid in ipairs(inst.all) do inst:run(pid, ctx.B("jitp_stop()")) end
          end,
        }
        for role, pids in pairs(roles) do
          local txt = read_file(files[pids[1]]) or ""
          write_file(("%s/jitp-%s-%s.txt"):format(wdir, mode, role), txt)
          jp[role] = jp[role] or {}
          jp[role][mode] = {}
          for line in txt:gmatch("[^\n]+") do
            local pct, what = line:match("^%s*(%d+)%%%s+(.-)%s*$")
            if pct and #jp[role][mode] < 12 then jp[role][mode][#jp[role][mode] + 1] = { tonumber(pct), what } end
          end
        end
      end
      S.jitp = jp
    end

    -- g: jit.v: which traces the hot paths compile to, and what aborts
    do
      local files = {}
      run {
        before = function()
          for _, pid in ipairs(inst.all) do
            files[pid] = ("%s/logs/jitv-%d.txt"):format(inst.prefix, pid)
            inst:run(pid, ("require('jit.v').on(%q) return true"):format(files[pid]))
          end
        end,
        after = function()
          for _, pid in ipairs(inst.all) do inst:run(pid, "require('jit.v').off() return true") end
        end,
      }
      S.jitv = {}
      for role, pids in pairs(roles) do
        local txt = read_file(files[pids[1]]) or ""
        write_file(("%s/jitv-%s.txt"):format(wdir, role), txt)
        local traces, aborts = 0, {}
        for line in txt:gmatch("[^\n]+") do
          if line:match("^%[TRACE%s+%d") then traces = traces + 1 end
          -- aborts in ngx.ipc's own files or the bench's hot path
          if line:match("^%[TRACE %-%-%-") and (line:match("ipc") or line:match("loop%.lua")
              or line:match("shim%.lua") or line:match("bench")) and not line:match("ngx_ipc_t%.lua") then
            aborts[#aborts + 1] = line
          end
        end
        S.jitv[role] = { traces = traces, aborts = aborts }
      end
    end

    ctx.stop_all()
    S.background_cpus = math.max(quiet_before, ctx.sample_background("after " .. spec.key, 0.5))

    -- the digest
    out("")
    out("== %s: %s, workers on %s, N = %d; %s alerts/s, %s deliveries/s in the plain run (a)", spec.id,
      spec.what, spec.placement == "split" and "separate CPUs" or "one CPU", spec.n,
      si(S.alerts_per_s), si(S.deliveries_per_s))
    if S.background_cpus >= 0.15 then
      out("  WARNING: other processes used %.2f CPUs around this profile: figures disturbed", S.background_cpus)
    end
    local role_names = { "sender", "receiver" }
    local function row(label, f)
      local cells = {}
      for i, role in ipairs(role_names) do
        local ok, v = pcall(f, role)
        cells[i] = ok and v or "-"
      end
      out("  %-34s %14s %14s", label, cells[1], cells[2])
    end
    out("  %-34s %14s %14s", "per alert" .. (spec.bcast and " (receiver: each other worker)" or ""),
      "sender", "receiver")
    row("CPU µs (schedstat)", function(r) return ("%.3f"):format(S.proc[r].cpu_us) end)
    row("  user / sys µs (stat, 10 ms ticks)", function(r) return ("%.2f / %.2f"):format(S.proc[r].user_us, S.proc[r].sys_us) end)
    row("CPU busy during the run", function(r) return ("%.0f%%"):format(S.proc[r].cpu_utilisation * 100) end)
    row("context switches vol / invol", function(r)
      return ("%.3g / %.3g"):format(S.proc[r].voluntary_switches, S.proc[r].involuntary_switches)
    end)
    if S.syscalls then
      local names = {}
      for _, role in ipairs(role_names) do
        for k in pairs(S.syscalls[role] or {}) do names[k] = true end
      end
      local list = {}
      for k in pairs(names) do if k ~= "total" then list[#list + 1] = k end end
      table.sort(list)
      row("system calls", function(r) return ("%.4g"):format(S.syscalls[r].total or 0) end)
      for _, k in ipairs(list) do
        row("  " .. k, function(r) return ("%.4g"):format(S.syscalls[r][k] or 0) end)
      end
    end
    if S.calls then
      local names = {}
      for _, role in ipairs(role_names) do
        for k in pairs(S.calls[role] or {}) do names[k] = true end
      end
      local list = {}
      for k in pairs(names) do list[#list + 1] = k end
      table.sort(list)
      out(("  C calls (uprobes, N = %d; the probes slow the workers down, so the send"):format(probe_n))
      out("  queue path (dest_enqueue, malloc in the sender) is taken far more than in (a))")
      for _, k in ipairs(list) do
        row("  " .. k, function(r) return ("%.4g"):format(S.calls[r][k] or 0) end)
      end
    end
    row("read / write syscalls (/proc io)", function(r)
      return ("%.3g / %.3g"):format(S.proc[r].read_syscalls, S.proc[r].write_syscalls)
    end)
    for _, role in ipairs(role_names) do
      out("  perf, %s: by library", role)
      for _, x in ipairs(S.perf[role].dso) do out("    %5.1f%%  %s", x[1], x[2]) end
      out("  perf, %s: top symbols", role)
      for _, x in ipairs(S.perf[role].sym) do out("    %5.1f%%  %s", x[1], x[2]) end
      for _, mode in ipairs { "v", "F" } do
        out("  jit.p %s, %s", mode == "v" and "VM states" or "functions", role)
        for _, x in ipairs(S.jitp[role][mode]) do out("    %3d%%  %s", x[1], x[2]) end
      end
      out("  jit.v, %s: %d traces compiled during the run; aborts on ngx.ipc/bench code: %s", role,
        S.jitv[role].traces, #S.jitv[role].aborts == 0 and "none" or "")
      for i = 1, math.min(8, #S.jitv[role].aborts) do out("    %s", S.jitv[role].aborts[i]) end
    end
  end

  return finish("summary", text, summary, ", one folder per workload")
end
