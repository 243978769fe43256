-- ipc.configure and ipc.stats on real workers: a slow receiver's caps make senders
-- get the documented errors (naming the cap, and the workers a broadcast skipped),
-- nothing accepted is lost, and the counters say what happened.
local nginx = require "nginx"

local KiB, MiB = 1024, 1024 * 1024

describe("ipc.configure and ipc.stats", function()
  local inst, pids

  setup(function()
    inst = nginx.start {
      workers = 2,
      -- set in the master, inherited by every worker
      init = ([[require("ngx.ipc").configure{ send_backlog = %d, receive_backlog = %d }]])
        :format(1 * MiB, 1 * MiB),
    }
    pids = inst:workers()
  end)

  teardown(function()
    if inst then inst:stop() end
  end)

  it("refuses wrong options with errors that name configure and the option", function()
    local res = inst:run(pids[1], [[
      local out = {}
      for _, arg in ipairs { "x", { nope = 1 }, { send_backlog = 10 }, { receive_backlog = 1.5e6 + 0.5 } } do
        local ok, err = pcall(ipc.configure, arg)
        out[#out + 1] = tostring(ok) .. " " .. tostring(err)
      end
      return out
    ]])
    assert.is_truthy(res[1]:find("bad argument #1 to 'configure' (table expected, got string)", 1, true), res[1])
    assert.is_truthy(res[2]:find("bad argument #1 to 'configure' (unknown option 'nope')", 1, true), res[2])
    assert.is_truthy(res[3]:find("send_backlog must be a whole number of bytes, at least 65536", 1, true), res[3])
    assert.is_truthy(res[4]:find("receive_backlog must be a whole number of bytes", 1, true), res[4])
  end)

  it("makes send and broadcast to a slow receiver return errors naming the cap, and delivers all it accepted", function()
    local slow, fast = pids[1], pids[2]
    -- the slow worker holds its loop 3 s on the first alert, so its pipe and the
    -- sender's queue fill; everything it gets is recorded with its sequence number
    inst:run(slow, [[
      local first = true
      ipc.receive("load", function(data)
        if first then first = false; ngx.sleep(3) end
        T.add("load", data:sub(1, 8))
      end)
    ]])
    local res = inst:run(fast, ([[
      local slow, chunk = %d, string.rep("x", %d)
      local accepted, err
      for i = 1, 200 do
        local ok, e = ipc.send(slow, "load", ("%%08d"):format(i) .. chunk)
        if not ok then err = e; break end
        accepted = i
      end
      local s = ipc.stats()
      local bok, berr = ipc.broadcast("load", ("B"):rep(#chunk + 8))
      return { accepted = accepted, err = err, backlog = s.backlog[slow],
               refused = s.refused.send_backlog, queued = s.send_queued,
               bok = bok, berr = berr }
    ]]):format(slow, 64 * KiB))
    assert.is_truthy(res.err, "no refusal in 200 sends of 64 KiB to a stalled worker")
    assert.are.equal(("send backlog to %d is full (send_backlog is %d bytes)"):format(slow, MiB), res.err)
    assert.is_true(res.backlog > 0 and res.backlog <= MiB,
      "stats().backlog[slow] between 0 and 1 MiB, got " .. tostring(res.backlog))
    assert.are.equal(res.backlog, res.queued, "send_queued is that one destination's backlog")
    assert.are.equal(1, res.refused, "refused.send_backlog")
    assert.is_nil(res.bok, "broadcast with one worker over the cap")
    assert.are.equal(("send backlog full for 1 worker(s): %d (send_backlog is %d bytes); the others got the alert")
      :format(slow, MiB), res.berr)

    -- once the handler wakes, every accepted alert arrives, in order
    local got = inst:wait_count("load", res.accepted, 30)
    assert.are.equal(res.accepted, #got, "alerts delivered to the slow worker")
    for i = 1, res.accepted do
      assert.are.equal(("%08d"):format(i), got[i], "alert " .. i .. " in order")
    end
    local after = inst:run(fast, "return ipc.stats()")
    assert.are.equal(0, after.send_queued, "bytes still queued at the sender")
    assert.are.same({}, after.backlog, "per-destination backlog after delivery")
    local recv = inst:run(slow, "return ipc.stats()")
    assert.are.equal(0, recv.dropped.out_of_memory, "alerts dropped at the receiver")
    assert.is_true(recv.alerts_received >= res.accepted, "alerts_received " .. recv.alerts_received)
    assert.is_true(recv.bytes_received >= res.accepted * 64 * KiB, "bytes_received " .. recv.bytes_received)
  end)

  it("writes a lone alert at once and packs a burst of small alerts into few writes", function()
    local a, b = pids[1], pids[2]
    inst:run(b, [[ipc.receive("burst", function(data) T.add("burst", data) end)]])
    local res = inst:run(a, ([[
      local w0 = ipc.stats().writes
      ngx.sleep(0.01)                     -- nothing sent to b just before
      assert(ipc.send(%d, "burst", "lone"))
      local lone = ipc.stats().writes - w0
      for i = 1, 1000 do assert(ipc.send(%d, "burst", ("%%04d"):format(i))) end
      return { lone = lone, burst = ipc.stats().writes - w0 - lone }
    ]]):format(b, b))
    assert.are.equal(1, res.lone, "writes for a lone alert, before the turn ends")
    assert.is_true(res.burst <= 100, "writes for 1000 alerts of 4 bytes: " .. res.burst)
    local got = inst:wait_count("burst", 1001, 10)
    assert.are.equal("lone", got[1])
    for i = 1, 1000 do
      assert.are.equal(("%04d"):format(i), got[i + 1], "alert " .. i .. " of the burst")
    end
  end)

  it("takes an alert bigger than the receiver's receive_backlog whole, and the next one after it", function()
    local a, b = pids[1], pids[2]
    inst:run(b, [[ipc.receive("big", function(data) T.add("big", #data .. " " .. ngx.md5(data)) end)]])
    -- an alert is taken whatever its size when nothing is queued for its
    -- worker (earlier cases here may have left some, and the 2 MiB one leaves
    -- about 1 MiB queued, the send_backlog of this instance): wait for that
    local sums = inst:run(a, ([[
      local function queue_empty() return ipc.stats().send_queued == 0 end
      local big = string.rep("0123456789abcdef", %d)
      assert(T.wait(queue_empty, 10), "the queue for b did not empty")
      assert(ipc.send(%d, "big", big))
      assert(T.wait(queue_empty, 10), "the 2 MiB alert did not leave the queue")
      assert(ipc.send(%d, "big", "small"))
      return { ngx.md5(big), ngx.md5("small") }
    ]]):format(2 * MiB / 16, b, b), 30)
    local got = inst:wait_count("big", 2, 10)
    assert.are.same({ ("%d %s"):format(2 * MiB, sums[1]), "5 " .. sums[2] }, got,
      "alerts delivered (2 MiB over a 1 MiB receive_backlog, then 5 bytes)")
    local s = inst:run(b, "return ipc.stats()")
    assert.are.equal(0, s.dropped.out_of_memory, "dropped.out_of_memory")
  end)
end)
