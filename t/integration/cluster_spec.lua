-- ipc.cluster: alerts across nginx instances through a Redis stream. Real nginx
-- masters (t/lib/nginx.lua) and private redis-servers on free ports
-- (t/lib/redis.lua). Each handler checks, as alerts arrive, that the alerts of
-- one publisher come numbered 1, 2, 3, ... with no gap, repeat or swap; the
-- specs then wait for the totals.
local nginx = require "nginx"
local redis = require "redis"

local function comment(fmt, ...)
  io.stdout:write("# ", fmt:format(...), "\n")
end

local function now()
  return require("socket").gettime()
end

-- init_worker code: configure, then a handler for "c" that keeps per publisher
-- (ipc.sender) the last number seen in T.state.c, and records anything out of
-- turn in the list "bad:<pid>"; `extra` is more configure options (Lua text).
-- A publisher marks a broadcast it sends again after nil, err with ":r": if
-- Redis had taken the first one (its reply lost when Redis went down), the
-- number comes twice, which the guarantee allows; it is counted in `dups`.
-- Without a `timeout` in `extra`, 5 s: a busy machine must not fail a publish.
local function worker_code(addr, extra)
  if not (extra or ""):find("timeout", 1, true) then
    extra = (extra and extra .. ", " or "") .. "timeout = 5"
  end
  return ([[
    local ipc = require "ngx.ipc"
    ipc.cluster.configure{ redis = %q, stream = "s" %s }
    local me = ngx.worker.pid()
    local st = { last = {}, n = 0, dups = 0, instances = {}, first = {} }
    T.state.c = st
    ipc.receive("c", function(d)
      local tag, i = d:match("^(%%d+):(%%d+)")
      i = tonumber(i)
      local from = tonumber(tag)
      local want = (st.last[from] or 0) + 1
      if i == st.last[from] and d:find(":r", 1, true) then
        st.dups = st.dups + 1
      elseif i ~= want then
        T.add("bad:" .. me, ("%%s: %%d after %%s"):format(tag, i, tostring(st.last[from])))
      end
      if ipc.sender ~= from then
        T.add("bad:" .. me, ("%%s: ipc.sender is %%s"):format(d:sub(1, 40), tostring(ipc.sender)))
      end
      if ipc.sender_id ~= 0 and ipc.sender_id ~= 1 then
        T.add("bad:" .. me, ("%%s: ipc.sender_id is %%s"):format(d:sub(1, 40), tostring(ipc.sender_id)))
      end
      st.first[from] = st.first[from] or i
      st.last[from] = i
      st.n = st.n + 1
      st.instances[tostring(ipc.sender_instance)] = true
      if T.dict:get("log:" .. me) then T.add("got:" .. me, d) end
    end)
  ]]):format(addr, extra and (", " .. extra) or "")
end

local function start_instances(n, r, opts)
  local insts = {}
  for k = 1, n do
    insts[k] = nginx.start {
      workers = opts and opts.workers or 2,
      init_worker = worker_code(r.addr, opts and opts.extra),
    }
  end
  return insts
end

-- waits until worker 0 of inst reads the stream
local function wait_reader(inst)
  local w0 = inst:by_id()[0]
  inst:wait_for(function()
    return inst:run(w0, "return ipc.stats().cluster.reader")
  end, 20, "worker 0 of the instance to read the stream")
  return w0
end

-- every worker of inst has handled `total` alerts; returns { [pid] = state }
local function wait_handled(inst, total, timeout)
  return inst:wait_for(function()
    local states = inst:run_all("return T.state.c")
    for pid, st in pairs(states) do
      if st.n < total then
        return false, ("worker %d handled %d of %d"):format(pid, st.n, total)
      end
    end
    return states
  end, timeout or 60, total .. " cluster alerts in every worker")
end

-- every worker of inst has handled alert n of publisher `from`; { [pid] = state }
local function wait_last(inst, from, n, timeout)
  return inst:wait_for(function()
    local states = inst:run_all("return T.state.c")
    for pid, st in pairs(states) do
      if st.last[from] ~= n then
        return false, ("worker %d is at %s of %d"):format(pid, tostring(st.last[from]), n)
      end
    end
    return states
  end, timeout or 60, "alert " .. n .. " of " .. from .. " in every worker")
end

local function assert_no_bad(inst, pids)
  for _, pid in ipairs(pids or inst:workers()) do
    assert.are.same({}, inst:list("bad:" .. pid), "alerts out of turn at worker " .. pid)
  end
end

-- a publisher loop run in a worker: numbers 1..n, each retried until Redis takes it
local function publisher(n, opts)
  return ([[
    local me = ngx.worker.pid()
    local failed = 0
    for i = 1, %d do
      local again = ""
      while true do
        local ok, err = ipc.cluster.broadcast("c", me .. ":" .. i .. again .. "%s")
        if ok then break end
        again = ":r"
        failed = failed + 1
        if failed > 2000 then return nil, "giving up at " .. i .. ": " .. tostring(err) end
        ngx.sleep(0.02)
      end
      %s
    end
    return true, failed
  ]]):format(n, opts and opts.pad or "", opts and opts.pace or "")
end

describe("ipc.cluster", function()
  local r, insts

  before_each(function()
    insts = {}
  end)

  -- n instances of 2 workers on their own redis-server, every reader reading
  local function cluster_of(n, redis_opts, extra)
    r = redis.start(redis_opts)
    insts = start_instances(n, r, { extra = extra })
    for _, inst in ipairs(insts) do
      wait_reader(inst)
    end
    return unpack(insts)
  end

  after_each(function()
    for _, inst in ipairs(insts) do
      inst:stop()
    end
    insts = {}
    if r then
      r:stop()
      r = nil
    end
  end)

  it("delivers 10,000 broadcasts of 5 publishers on 3 instances to all 6 workers exactly once, in order per publisher", function()
    cluster_of(3, {})
    -- the publishers: both workers of instances 1 and 2, worker 0 of instance 3
    local handles = {}
    local t0 = now()
    for k, inst in ipairs(insts) do
      local pids = inst:workers()
      for j = 1, (k == 3 and 1 or 2) do
        handles[#handles + 1] = { inst = inst, h = inst:spawn({ pids[j] }, publisher(2000)) }
      end
    end
    assert.are.equal(5, #handles)
    local senders = {}
    for _, p in ipairs(handles) do
      for pid, res in pairs(p.inst:collect(p.h, 120)) do
        assert.is_true(res.ok, tostring(res.err))
        assert.is_true(res.v[1], "publisher " .. pid .. ": " .. tostring(res.v[2]))
        assert.are.equal(0, res.v[2], "broadcasts of publisher " .. pid .. " refused")
        senders[#senders + 1] = pid
      end
    end
    local published = now() - t0
    local seen_instances = {}
    for _, inst in ipairs(insts) do
      local states = wait_handled(inst, 10000, 90)
      for pid, st in pairs(states) do
        assert.are.equal(10000, st.n, "alerts handled by worker " .. pid)
        for _, s in ipairs(senders) do
          assert.are.equal(2000, st.last[s], ("the last alert of publisher %d at worker %d"):format(s, pid))
          assert.are.equal(1, st.first[s], ("the first alert of publisher %d at worker %d"):format(s, pid))
        end
        local names = {}
        for name in pairs(st.instances) do
          names[#names + 1] = name
          seen_instances[name] = true
        end
        assert.are.equal(3, #names, "instances named by ipc.sender_instance at " .. pid .. ": " .. table.concat(names, ", "))
      end
      assert_no_bad(inst)
    end
    for name in pairs(seen_instances) do
      assert.is_truthy(name:match("^[^/]+/%d+/%d+%.%d%d$"), "ipc.sender_instance " .. name)
    end
    local handled = now() - t0
    -- the counters: each instance relayed all 10,000 once, nothing lost
    for _, inst in ipairs(insts) do
      local w = inst:by_id()
      local s0 = inst:run(w[0], "return ipc.stats().cluster")
      assert.are.equal(10000, s0.relayed, "entries relayed by worker 0")
      assert.are.equal(0, s0.lost, "entries lost")
      assert.are.equal(0, s0.gaps, "gaps")
      assert.are.equal(10000, s0.received, "alerts received by worker 0")
      local s1 = inst:run(w[1], "return ipc.stats().cluster")
      assert.are.equal(0, s1.relayed, "entries relayed by worker 1")
    end
    comment("10,000 alerts published in %.2f s, handled by all 6 workers after %.2f s", published, handled)
  end)

  it("loses nothing when Redis (appendonly yes) restarts in the middle of a stream", function()
    cluster_of(2, { appendonly = true })
    local w0s = { insts[1]:by_id()[0], insts[2]:by_id()[0] }
    local a = insts[1]:workers()[2]
    -- about 3,000 alerts over a second or two, each retried until Redis takes it
    local h = insts[1]:spawn({ a }, publisher(3000, { pace = "if i % 20 == 0 then ngx.sleep(0.01) end" }))
    insts[2]:wait_for(function()
      local n = insts[2]:run(w0s[2], "return T.state.c.n")
      return n >= 300, n
    end, 30, "300 alerts at the second instance")
    local t0 = now()
    r:restart()
    comment("redis restarted in %.2f s", now() - t0)
    local res = insts[1]:collect(h, 120)[a]
    assert.is_true(res.ok, tostring(res.err))
    assert.is_true(res.v[1], tostring(res.v[2]))
    comment("broadcasts refused while Redis was down, then retried: %d", res.v[2])
    for k, inst in ipairs(insts) do
      local states = wait_last(inst, a, 3000, 60)
      for pid, st in pairs(states) do
        -- an alert whose broadcast failed was sent again under the same number
        assert.are.equal(3000, st.n - st.dups, "alerts handled by worker " .. pid)
        assert.is_true(st.dups <= res.v[2], ("numbers handled twice at %d: %d"):format(pid, st.dups))
      end
      assert_no_bad(inst)
      local s = inst:run(w0s[k], "return ipc.stats().cluster")
      assert.is_true(s.reconnects >= 1, "reconnects of reader " .. k .. ": " .. s.reconnects)
      assert.are.equal(0, s.lost, "lost at reader " .. k)
    end
  end)

  it("reload: each new worker goes on after the last alert the old worker with its id handled", function()
    local a_inst, b_inst = cluster_of(2, {})
    -- instance B logs each alert in its shared dict (it outlives the old generation)
    local old = b_inst:workers()
    local old_by_id = b_inst:by_id()
    b_inst:run(old[1], ("for _, p in ipairs(%s) do T.dict:set('log:' .. p, true) end return true"):format(nginx.lua_list(old)))
    local a = a_inst:workers()[1]
    local h = a_inst:spawn({ a }, publisher(3000, { pace = "if i % 10 == 0 then ngx.sleep(0.005) end" }))
    b_inst:wait_for(function()
      return b_inst:run(old[1], ("return T.count('got:%d')"):format(old[1])) >= 500
    end, 30, "500 alerts at the old generation")
    -- the new generation logs too, from its first alert (set before it starts)
    b_inst.opts.init_worker = "T.dict:set('log:' .. ngx.worker.pid(), true)\n" .. b_inst.opts.init_worker
    local _, new = b_inst:reload()
    local new_by_id = b_inst:by_id()
    local res = a_inst:collect(h, 120)[a]
    assert.is_true(res.ok, tostring(res.err))
    assert.is_true(res.v[1], tostring(res.v[2]))
    -- every number reached either both old workers or both new ones, once, in order
    local function list_of(pid)
      local out = {}
      for i, d in ipairs(b_inst:list("got:" .. pid, new[1])) do
        out[i] = tonumber(d:match(":(%d+)$"))
      end
      return out
    end
    local lists = {}
    b_inst:wait_for(function()
      for _, p in ipairs(new) do
        lists[p] = list_of(p)
      end
      for _, p in ipairs(old) do
        lists[p] = list_of(p)
      end
      local last = lists[new[1]][#lists[new[1]]]
      return last == 3000 and lists[new[2]][#lists[new[2]]] == 3000, ("new generation at %s"):format(tostring(last))
    end, 60, "the new generation to handle the last alert")
    nginx.wait_for(function()
      for _, p in ipairs(old) do
        if nginx.alive(p) then return false, "old worker " .. p .. " still running" end
      end
      return true
    end, 30, "the old workers to exit")
    for _, p in ipairs(old) do
      lists[p] = list_of(p)
    end
    -- per worker id: the old worker handled 1..k (it stops when it begins to shut
    -- down), the new one with its id k+1..3000
    local ks = {}
    for id = 0, 1 do
      local ol, nl = lists[old_by_id[id]], lists[new_by_id[id]]
      local k = #ol
      assert.is_true(k >= 1, ("old worker %d handled %d"):format(id, k))
      for i = 1, k do
        assert.are.equal(i, ol[i], ("old worker %d's alert #%d"):format(id, i))
      end
      assert.are.equal(3000 - k, #nl, ("alerts new worker %d handled (old: %d)"):format(id, k))
      for i = 1, #nl do
        assert.are.equal(k + i, nl[i], ("new worker %d's alert #%d"):format(id, i))
      end
      ks[#ks + 1] = ("worker id %d: old 1..%d, new %d..3000"):format(id, k, k + 1)
    end
    comment("%s", table.concat(ks, "; "))
    -- the instance that did not reload got everything
    local states = wait_handled(a_inst, 3000, 30)
    for pid, st in pairs(states) do
      assert.are.equal(3000, st.n, "alerts at " .. pid)
    end
    -- (instance B's lists were checked whole above)
    assert_no_bad(a_inst)
  end)

  it("kill -9 of the reading worker: its replacement reads on, nothing lost, nothing handled twice", function()
    local a_inst, b_inst = cluster_of(2, {})
    local bw = b_inst:by_id()
    local a = a_inst:workers()[1]
    local h = a_inst:spawn({ a }, publisher(3000, { pace = "if i % 10 == 0 then ngx.sleep(0.003) end" }))
    b_inst:wait_for(function()
      local n = b_inst:run(bw[1], "return T.state.c.n")
      return n >= 500, n
    end, 30, "500 alerts at instance B")
    local t0 = now()
    local new0 = b_inst:kill9(bw[0])
    b_inst:wait_for(function()
      return b_inst:run(new0, "return ipc.stats().cluster.reader")
    end, 20, "the replacement of worker 0 to read")
    local took = now() - t0
    local res = a_inst:collect(h, 120)[a]
    assert.is_true(res.ok, tostring(res.err))
    assert.is_true(res.v[1], tostring(res.v[2]))
    local st = b_inst:wait_for(function()
      local s = b_inst:run(bw[1], "return T.state.c")
      return s.last[a] == 3000 and s, "last " .. tostring(s.last[a])
    end, 60, "the last alert at the surviving worker")
    -- what the dead reader handed over after its last save comes again, and the
    -- surviving worker passes over what it had handled: 1..3000 once, in order
    assert_no_bad(b_inst, { bw[1] })
    assert.are.equal(3000, st.n, "alerts handled by the surviving worker")
    local s0 = b_inst:run(new0, "return ipc.stats().cluster")
    assert.are.equal(0, s0.lost, "lost")
    local s1 = b_inst:run(bw[1], "return ipc.stats().cluster")
    comment("the replacement read after %.2f s; the surviving worker passed over %d alert(s) sent again",
      took, s1.skipped)
  end)

  it("counts and logs the gap when a reader fell behind the stream's length bound", function()
    local a_inst, b_inst = cluster_of(2, { node_entries = 10 }, "maxlen = 100")
    local bw = b_inst:by_id()
    local mark = b_inst:log_mark()
    -- B's reader stops (SIGSTOP) while A publishes 2,000 alerts into a stream of ~100
    local a = a_inst:workers()[1]
    assert.is_true(a_inst:run(a, "return ipc.cluster.broadcast('c', ngx.worker.pid() .. ':1')"))
    wait_handled(b_inst, 1, 20)
    os.execute("kill -STOP " .. bw[0])
    local ok, err = pcall(function()
      local res = a_inst:collect(a_inst:spawn({ a }, [[
        local me = ngx.worker.pid()
        for i = 2, 2000 do assert(ipc.cluster.broadcast("c", me .. ":" .. i)) end
        return true
      ]]), 60)
      assert.is_true(res[a].ok, tostring(res[a].err))
      local len = tonumber(r:cli("XLEN", "s"):match("%d+"))
      assert.is_true(len < 200, "stream length " .. len)
    end)
    os.execute("kill -CONT " .. bw[0])
    assert(ok, err)
    -- B handles the last one, with what was trimmed counted as lost
    local st = b_inst:wait_for(function()
      local s = b_inst:run(bw[1], "return T.state.c")
      return s.last[a] == 2000 and s, "last " .. tostring(s.last[a])
    end, 30, "the last alert at instance B")
    local s0 = b_inst:run(bw[0], "return ipc.stats().cluster")
    assert.is_true(s0.gaps >= 1, "gaps counted")
    assert.are.equal(2000, st.n + s0.lost, ("handled %d + lost %d"):format(st.n, s0.lost))
    assert.is_true(s0.lost >= 1700, "lost " .. s0.lost)
    assert.is_true(#b_inst:log_lines("were trimmed from s (maxlen 100)", mark) >= 1, "the gap in error.log")
    -- the gaps were the only disorder: everything B handled came in increasing order
    for _, p in pairs(bw) do
      for _, line in ipairs(b_inst:list("bad:" .. p)) do
        local i, prev = line:match(": (%d+) after (%d+)$")
        assert.is_truthy(i and tonumber(i) > tonumber(prev), "out of turn at " .. p .. ": " .. line)
      end
    end
    -- A's readers kept up
    local sa = a_inst:run(a_inst:by_id()[0], "return ipc.stats().cluster")
    assert.are.equal(0, sa.lost, "lost at instance A")
    comment("instance B handled %d, lost %d in %d gap(s)", st.n, s0.lost, s0.gaps)
  end)

  -- in a worker: ok, err and the seconds a cluster.broadcast took
  local PROBE = [[
    ngx.update_time()
    local t0 = ngx.now()
    local ok, err = ipc.cluster.broadcast("c", ngx.worker.pid() .. ":1")
    ngx.update_time()
    return ok, err, ngx.now() - t0
  ]]

  it("returns nil, err within its timeout when Redis does not answer", function()
    -- a listening socket that never accepts: the kernel completes each connection
    -- and takes the request, and no answer ever comes
    local silent = assert(require("socket").bind("127.0.0.1", 0))
    local _, port = silent:getsockname()
    local ok, err = pcall(function()
      insts[1] = nginx.start { workers = 2, init_worker = worker_code("127.0.0.1:" .. port, "timeout = 0.3") }
      local inst = insts[1]
      local pid = inst:workers()[2]
      local took = {}
      for i = 1, 2 do
        local v1, v2, v3 = inst:run(pid, PROBE)
        assert.is_nil(v1, "broadcast " .. i .. " to a Redis that does not answer")
        assert.are.equal("ngx.ipc: cluster: redis at 127.0.0.1:" .. port .. ": timeout", v2)
        -- bounds with room for a busy machine: the point is that 0.3 s bounds the wait
        assert.is_true(v3 >= 0.25 and v3 < 2, ("broadcast %d took %.3f s (timeout 0.3)"):format(i, v3))
        took[i] = v3
      end
      assert.are.equal(2, inst:run(pid, "return ipc.stats().cluster.publish_errors"))
      assert.is_false(inst:run(inst:by_id()[0], "return ipc.stats().cluster.reader"), "a reader without Redis")
      comment("no answer: nil, err after %.3f s and %.3f s (timeout 0.3)", took[1], took[2])
    end)
    silent:close()
    assert(ok, err)
  end)

  it("returns nil, err at once when Redis is gone for good, and nginx still quits promptly", function()
    local inst = cluster_of(1, {})
    local pid = inst:workers()[2]
    assert.is_true(inst:run(pid, "return ipc.cluster.broadcast('c', ngx.worker.pid() .. ':1')"))
    r:kill()
    for i = 1, 2 do
      local x1, x2, x3 = inst:run(pid, PROBE)
      assert.is_nil(x1, "broadcast " .. i .. " after Redis was killed")
      assert.is_truthy(x2:find("redis at " .. r.addr, 1, true), x2)
      assert.is_true(x3 < 1, ("broadcast %d took %.3f s"):format(i, x3))
    end
    -- the reader is reconnecting with backoff meanwhile; it does not hold nginx back
    local secs, qerr = inst:quit(10)
    assert.is_truthy(secs, qerr)
    assert.is_true(secs < 5, ("nginx took %.2f s to quit"):format(secs))
    comment("Redis killed: quit in %.2f s", secs)
  end)

  it("refuses alerts over max_data and over-long names with nil, err, and wrong types with a bad-argument error", function()
    local inst = cluster_of(1, {}, "max_data = 1000")
    local pid = inst:workers()[1]
    local res = inst:run(pid, [[
      local out = {}
      out.over = { ipc.cluster.broadcast("c", string.rep("x", 1001)) }
      out.name = { ipc.cluster.broadcast(string.rep("n", 255), "x") }
      out.reserved = { ipc.cluster.broadcast("\0cluster", "x") }
      out.at = { ipc.cluster.broadcast("c", ngx.worker.pid() .. ":1:" .. string.rep("x", 1000 - #tostring(ngx.worker.pid()) - 3)) }
      out.num = { ipc.cluster.broadcast(12, 34) }
      out.e1 = { pcall(ipc.cluster.broadcast, {}, "x") }
      out.e2 = { pcall(ipc.cluster.broadcast, "x", function() end) }
      out.e3 = { pcall(ipc.cluster.broadcast) }
      out.c1 = { pcall(ipc.cluster.configure, "x") }
      out.c2 = { pcall(ipc.cluster.configure, { redis = "127.0.0.1:1", colour = 1 }) }
      out.c3 = { pcall(ipc.cluster.configure, { stream = "s" }) }
      out.c4 = { pcall(ipc.cluster.configure, { redis = "nohost" }) }
      out.c5 = { pcall(ipc.cluster.configure, { redis = "127.0.0.1:1", maxlen = 0 }) }
      out.c6 = { pcall(ipc.cluster.configure, { redis = "127.0.0.1:1" }) }
      return out
    ]])
    assert.are.same({ nil, "alert data is 1001 bytes, more than max_data (1000 bytes) for cluster broadcasts" }, res.over)
    assert.are.same({ nil, "alert name is longer than 254 bytes" }, res.name)
    assert.are.same({ nil, "alert names starting with a NUL byte are reserved for ngx.ipc" }, res.reserved)
    assert.are.same({ true }, res.at)
    assert.are.same({ true }, res.num)
    assert.is_false(res.e1[1])
    assert.is_truthy(res.e1[2]:find("bad argument #1 to 'broadcast' (string expected, got table)", 1, true), res.e1[2])
    assert.is_truthy(res.e2[2]:find("bad argument #2 to 'broadcast' (string expected, got function)", 1, true), res.e2[2])
    assert.is_truthy(res.e3[2]:find("bad argument #1 to 'broadcast' (string expected, got nil)", 1, true), res.e3[2])
    assert.is_truthy(res.c1[2]:find("bad argument #1 to 'configure' (table expected, got string)", 1, true), res.c1[2])
    assert.is_truthy(res.c2[2]:find("bad argument #1 to 'configure' (unknown option 'colour')", 1, true), res.c2[2])
    assert.is_truthy(res.c3[2]:find("bad argument #1 to 'configure' (redis (\"host:port\") is required)", 1, true), res.c3[2])
    assert.is_truthy(res.c4[2]:find("redis must be \"host:port\"", 1, true), res.c4[2])
    assert.is_truthy(res.c5[2]:find("maxlen must be a whole number, at least 1", 1, true), res.c5[2])
    assert.is_truthy(res.c6[2]:find("has started already", 1, true), res.c6[2])
    -- the two accepted ones are in the stream, the refused ones not
    wait_handled(inst, 1, 20)
    assert.are.equal("2", r:cli("XLEN", "s"):match("%d+"), "entries in the stream")
  end)

  it("configured in init_by_lua: each worker starts its part when it joins; reply reaches only this instance", function()
    r = redis.start {}
    local handler = [[
      local ipc = require "ngx.ipc"
      ipc.receive("c", function(d)
        local ok, err = ipc.reply("noop", "x")
        T.add("got:" .. ngx.worker.pid(), ("%s|%s|%s|%s"):format(d, tostring(ipc.sender_instance),
          tostring(ok), tostring(err)))
      end)
    ]]
    insts[1] = nginx.start { workers = 2, init = ("require('ngx.ipc').cluster.configure{ redis = %q, stream = 's' }")
      :format(r.addr), init_worker = handler }
    insts[2] = nginx.start { workers = 2, init_worker = worker_code(r.addr) .. handler }
    for _, inst in ipairs(insts) do
      wait_reader(inst)
    end
    local a = insts[1]:by_id()[1]
    assert.is_true(insts[1]:run(a, "return ipc.cluster.broadcast('c', 'from A')"))
    local own
    for k, inst in ipairs(insts) do
      for _, p in ipairs(inst:workers()) do
        local line = inst:wait_count("got:" .. p, 1, 20)[1]
        local d, instance, ok, err = line:match("^(.-)|(.-)|(.-)|(.*)$")
        assert.are.equal("from A", d)
        own = own or instance
        assert.are.equal(own, instance, "ipc.sender_instance at instance " .. k)
        if k == 1 then
          assert.are.equal("true", ok, "reply to a worker of this instance: " .. err)
        else
          assert.are.equal("nil", ok, "reply to a worker of another instance")
          assert.is_truthy(err:find("is on another host", 1, true), err)
        end
      end
    end
    assert.is_truthy(own:match("/" .. insts[1].master .. "/"), "instance " .. own .. " names master " .. insts[1].master)
  end)

  it("stats().cluster has the fields types/ngx.ipc.d.ts (ClusterStats) and meta/ngx/ipc.lua declare, no other", function()
    local inst = cluster_of(1, {})
    local pid = inst:by_id()[0]
    assert.is_true(inst:run(pid, "return ipc.cluster.broadcast('c', ngx.worker.pid() .. ':1')"))
    wait_handled(inst, 1, 20)
    local real = {}
    for k in pairs(inst:run(pid, "return ipc.stats().cluster")) do
      real[#real + 1] = k
    end
    table.sort(real)
    local function read(path)
      local f = assert(io.open(nginx.root .. "/" .. path))
      local text = f:read("*a")
      f:close()
      return text
    end
    local dts = {}
    local body = read("types/ngx.ipc.d.ts"):match("export interface ClusterStats {\n(.-)\n    }")
    for name in ("\n" .. body):gmatch("\n%s+([%w_]+)%??:") do
      dts[#dts + 1] = name
    end
    table.sort(dts)
    local meta = {}
    for name in read("meta/ngx/ipc.lua"):match("%-%-%-@class ngx%.ipc%.stats%.cluster\n(.-)\n\n"):gmatch("%-%-%-@field ([%w_]+)") do
      meta[#meta + 1] = name
    end
    table.sort(meta)
    assert.are.same(real, dts, "ClusterStats in types/ngx.ipc.d.ts")
    assert.are.same(real, meta, "ngx.ipc.stats.cluster in meta/ngx/ipc.lua")
  end)

  it("logs in with a password and uses the configured db", function()
    local inst = cluster_of(1, { password = "s3cret pass" }, "password = 's3cret pass', db = 3")
    local pid = inst:workers()[1]
    assert.is_true(inst:run(pid, "return ipc.cluster.broadcast('c', ngx.worker.pid() .. ':1')"))
    wait_handled(inst, 1, 20)
    assert.are.equal("1", r:cli("-n", "3", "XLEN", "s"):match("%d+"), "entries in db 3")
    assert.are.equal("0", r:cli("-n", "0", "XLEN", "s"):match("%d+"), "entries in db 0")
  end)
end)
