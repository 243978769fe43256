-- ipc.cluster publishing: the broadcasts of one worker's event loop turn go to
-- Redis in one write, yet each caller gets its own reply; replies are parsed from
-- what the connection has buffered, large bulk strings included. The entries such
-- a write adds reach the reader in one XREAD reply, and go to the workers in one
-- local alert (an envelope of several entries), each still handled once, in order.
local nginx = require "nginx"
local redis = require "redis"

local function comment(fmt, ...)
  io.stdout:write("# ", fmt:format(...), "\n")
end

-- Every worker runs `body` (the loop of one light thread, `k` its number, `me` the
-- worker's pid; nil, err on failure) in 16 light threads; each worker's
-- stats().cluster.published, or the first error
local function from_threads(inst, body)
  return inst:run_all(([[
      local me = ngx.worker.pid()
      local function one(k)
        %s
        return true
      end
      local th = {}
      for k = 1, 16 do th[k] = ngx.thread.spawn(one, k) end
      for k = 1, 16 do
        local _, ok, err = ngx.thread.wait(th[k])
        if not ok then return err end
      end
      return ipc.stats().cluster.published
  ]]):format(body), 120)
end

-- waits until `code` run in each worker returns a table whose n is at least `n`
local function wait_handled(inst, code, n)
  return inst:wait_for(function()
    local s = inst:run_all(code)
    for pid, st in pairs(s) do
      if st.n < n then return false, ("worker %d handled %d of %d"):format(pid, st.n, n) end
    end
    return s
  end, 120, n .. " alerts at both workers")
end

describe("ipc.cluster publishing", function()
  local r, inst

  after_each(function()
    if inst then inst:stop() end
    if r then r:stop() end
    inst, r = nil, nil
  end)

  it("16 light threads per worker, small and large (up to 300 KiB) alerts mixed: each caller's reply, every alert byte-exact and in order per thread", function()
    r = redis.start {}
    inst = nginx.start {
      workers = 2,
      init_worker = ([[
        local ipc = require "ngx.ipc"
        ipc.cluster.configure{ redis = %q, stream = "p", timeout = 10 }
        local st = { n = 0, bad = {}, last = {} }
        T.state.p = st
        ipc.receive("p", function(d)
          local from, i, size = d:match("^(%%d+) (%%d+) (%%d+) ")
          i, size = tonumber(i), tonumber(size)
          local body = d:sub(#from + #tostring(i) + #tostring(size) + 4)
          if #body ~= size or body ~= string.rep(string.char(i %% 256), size) then
            st.bad[#st.bad + 1] = ("%%s #%%d: %%d bytes, not %%d"):format(from, i, #body, size)
          end
          if i ~= (st.last[from] or 0) + 1 then
            st.bad[#st.bad + 1] = ("%%s: %%d after %%s"):format(from, i, tostring(st.last[from]))
          end
          st.last[from] = i
          st.n = st.n + 1
        end)
      ]]):format(r.addr),
    }
    local w0 = inst:by_id()[0]
    inst:wait_for(function() return inst:run(w0, "return ipc.stats().cluster.reader") end, 20, "the reader")
    local res = from_threads(inst, [[
        local from = me * 100 + k
        for i = 1, 40 do
          -- every 10th alert is large: 100..300 KiB
          local size = (i % 10 == 0) and (102400 * (1 + i % 3)) or (i * 7)
          local ok, err = ipc.cluster.broadcast("p", ("%d %d %d %s"):format(from, i, size, string.rep(string.char(i % 256), size)))
          if not ok then return nil, err end
        end
    ]])
    for pid, v in pairs(res) do
      assert.are.equal(640, v, "broadcasts that returned true at worker " .. pid)
    end
    local states = wait_handled(inst, "return T.state.p", 1280)
    for pid, st in pairs(states) do
      assert.are.same({}, st.bad, "damaged or out of turn at worker " .. pid)
      assert.are.equal(1280, st.n, "alerts handled by worker " .. pid)
    end
    assert.are.equal("1280", r:cli("XLEN", "p"):match("%d+"), "entries in the stream")
    comment("1280 alerts (128 of 100-300 KiB) from 32 threads handled whole at both workers")
  end)

  it("a burst of 16 threads x 50 small alerts per worker: relayed several to a local alert, each handled once, in order, at every worker", function()
    r = redis.start {}
    inst = nginx.start {
      workers = 2,
      init_worker = ([[
        local ipc = require "ngx.ipc"
        ipc.cluster.configure{ redis = %q, stream = "b", timeout = 10 }
        local st = { n = 0, bad = {}, last = {} }
        T.state.b = st
        ipc.receive("b", function(d)
          local from, i = d:match("^(%%d+) (%%d+)$")
          i = tonumber(i)
          if i ~= (st.last[from] or 0) + 1 then
            st.bad[#st.bad + 1] = ("%%s: %%d after %%s"):format(from, i, tostring(st.last[from]))
          end
          st.last[from] = i
          st.n = st.n + 1
        end)
      ]]):format(r.addr),
    }
    local w0 = inst:by_id()[0]
    inst:wait_for(function() return inst:run(w0, "return ipc.stats().cluster.reader") end, 20, "the reader")
    local before = inst:run_all("return ipc.stats().alerts_received")
    local res = from_threads(inst, [[
        for i = 1, 50 do
          local ok, err = ipc.cluster.broadcast("b", ("%d %d"):format(me * 100 + k, i))
          if not ok then return nil, err end
        end
    ]])
    for pid, v in pairs(res) do
      assert.are.equal(800, v, "broadcasts that returned true at worker " .. pid)
    end
    local states = wait_handled(inst,
      "local st = T.state.b return { n = st.n, bad = st.bad, local_alerts = ipc.stats().alerts_received }", 1600)
    local c = inst:run(w0, "return ipc.stats().cluster")
    assert.are.equal(1600, c.relayed, "entries the reader relayed")
    for pid, st in pairs(states) do
      assert.are.same({}, st.bad, "out of turn at worker " .. pid)
      assert.are.equal(1600, st.n, "alerts handled by worker " .. pid)
      -- each publisher's write adds up to 16 entries, which one XREAD reply brings
      local got = st.local_alerts - before[pid]
      assert.is_true(got <= 800, ("local alerts that carried 1600 entries to worker %d: %d, expected at most 800"):format(pid, got))
      comment("worker %d: 1600 alerts in %d local alerts", pid, got)
    end
  end)

  it("entries in the stream that are not ngx.ipc's are counted and skipped; the alerts around them are handled once, in order", function()
    r = redis.start {}
    inst = nginx.start {
      workers = 2,
      init_worker = ([[
        local ipc = require "ngx.ipc"
        ipc.cluster.configure{ redis = %q, stream = "f", timeout = 10 }
        local st = { got = {} }
        T.state.f = st
        ipc.receive("f", function(d) st.got[#st.got + 1] = d end)
      ]]):format(r.addr),
    }
    local w0 = inst:by_id()[0]
    inst:wait_for(function() return inst:run(w0, "return ipc.stats().cluster.reader") end, 20, "the reader")
    local function publish(from, to)
      local ok = inst:run(w0, ([[
        for i = %d, %d do
          local ok, err = ipc.cluster.broadcast("f", "a" .. i)
          if not ok then return err end
        end
        return true
      ]]):format(from, to))
      assert.are.equal(true, ok, "broadcasts " .. from .. ".." .. to)
    end
    publish(1, 3)
    -- in one script, so that one XREAD reply has them all: an alert as ngx.ipc writes
    -- it, other fields, a sequence number that is not one, ngx.ipc's fields under
    -- long names, and an alert again
    r:cli("EVAL", [[
      local function alert(d)
        local s = redis.call('INCR', KEYS[2])
        redis.call('XADD', KEYS[1], '*', 's', s, 'i', 'a/1/2.00', 'p', '1', 'w', '0', 'n', 'f', 'd', d)
      end
      alert('a4')
      redis.call('XADD', KEYS[1], '*', 'x', 'y')
      redis.call('XADD', KEYS[1], '*', 's', 'many', 'i', 'a/1/2.00', 'p', '1', 'w', '0', 'n', 'f', 'd', 'z')
      redis.call('XADD', KEYS[1], '*', 'seq', '7', 'instance', 'a', 'pid', '1', 'wid', '0', 'name', 'f', 'data', 'z')
      alert('a5')
      return 1
    ]], "2", "f", "f:seq")
    publish(6, 6)
    local got = inst:wait_for(function()
      local s = inst:run_all("return T.state.f.got")
      for pid, g in pairs(s) do
        if #g < 6 then return false, ("worker %d handled %d of 6"):format(pid, #g) end
      end
      return s
    end, 20, "6 alerts at both workers")
    for pid, g in pairs(got) do
      assert.are.equal("a1 a2 a3 a4 a5 a6", table.concat(g, " "), "alerts handled by worker " .. pid)
    end
    local c = inst:run(w0, "return ipc.stats().cluster")
    assert.are.equal(3, c.malformed, "entries the reader skipped")
    assert.are.equal(6, c.relayed, "entries the reader relayed")
    assert.are.equal("9", r:cli("XLEN", "f"):match("%d+"), "entries in the stream")
    assert.are.equal(0, c.gaps, "gaps counted")
  end)
end)
