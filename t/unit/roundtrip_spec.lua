-- Alerts come back byte-exact and in order, sent to another worker (the
-- helper's peer: packed, written to its pipe, read back and parsed) and sent
-- to the own pid (no pipe: straight into the ready queue).  The real shim,
-- standalone: helper.poll does what the nginx events do.

local helper = require "t.unit.helper"
local shim, pid = helper.start()
local peer = helper.peer

local fmt = string.format
local MiB = 1024 * 1024

-- backlog caps for the running test only (0 keeps one); the defaults after it
local function caps(send_backlog, receive_backlog)
    assert(shim.configure(send_backlog, receive_backlog))
    finally(function() assert(shim.configure(64 * MiB, 128 * MiB)) end)
end

local function roundtrip(dst, name, data)
    helper.drain()
    local ok, err = shim.send(dst, name, data)
    assert.is_true(ok, fmt("send(%d bytes of name, %d bytes of data) "
                           .. "failed: %s", #name, #data, tostring(err)))
    local got = helper.collect(1)
    assert(helper.same_alerts({ { sender = pid, name = name, data = data } },
                              got, "round trip"))
    -- nothing more arrives
    local extra = helper.collect(1, 3)
    assert.are.equal(0, #extra, "expected no further alert, got "
                                .. #extra)
end


for _, case in ipairs{ { "another worker", peer }, { "the own pid", pid } } do
  local to, dst = case[1], case[2]

  describe("an alert sent to " .. to, function()

    for _, size in ipairs{ 0, 1, 4095, 4096, 4097, 4080, 4081, 8161,
                           1024 * 1024 } do
        it(fmt("round-trips %d bytes of data byte-exact", size), function()
            roundtrip(dst, "size", helper.bytes(size, size + 7))
        end)
    end

    it("round-trips binary data with NULs and every byte value", function()
        local t = {}
        for rep = 1, 40 do
            for b = 0, 255 do t[#t + 1] = string.char(b) end
            t[#t + 1] = "\0\0\0"
        end
        roundtrip(dst, "bin\0ary", table.concat(t))
    end)

    it("round-trips an empty name", function()
        roundtrip(dst, "", "data with an empty name")
    end)

    it("round-trips a 254-byte name with data filling the first packet",
       function()
        roundtrip(dst, string.rep("n", 253) .. "\0", helper.bytes(5000, 3))
    end)

    it("round-trips an empty name with empty data", function()
        roundtrip(dst, "", "")
    end)

    it("keeps the order of 1000 alerts", function()
        helper.drain()
        local expected = {}
        for i = 1, 1000 do
            local data = "alert " .. i .. string.rep(".", i % 50)
            expected[i] = { sender = pid, name = "seq", data = data }
            local ok, err = shim.send(dst, "seq", data)
            assert.is_true(ok, fmt("send %d: %s", i, tostring(err)))
        end
        assert(helper.same_alerts(expected, helper.collect(1000), "1000"))
    end)

    it("counts alerts and data bytes sent and received", function()
        helper.drain()
        local before = shim.counters()
        assert(shim.send(dst, "count", "12345"))
        assert(shim.send(dst, "count", ""))
        local got = helper.collect(2)
        assert.are.equal(2, #got, "expected 2 alerts, got " .. #got)
        local d = helper.delta(before, shim.counters())
        -- two writes to a pipe (the second alert of a turn waits for the
        -- turn's end); none to the own pid
        assert.are.same({ alerts_sent = 2, bytes_sent = 5,
                          writes = dst == pid and 0 or 2,
                          alerts_received = 2, bytes_received = 5,
                          packets_discarded = 0, bytes_discarded = 0,
                          alerts_truncated = 0, refused_backlog = 0,
                          refused_no_worker = 0, lost_exited = 0,
                          dropped_memory = 0, send_queued = 0,
                          receive_ready = 0, receive_partial = 0 }, d)
    end)
  end)
end


describe("an alert sent to another worker", function()

    it("writes an alert on its own at once and packs a burst into shared "
       .. "writes until the turn ends, keeping order", function()
        helper.drain()
        local before = shim.counters().writes
        assert(shim.send(peer, "pack", "first"))
        assert.are.equal(1, shim.counters().writes - before,
                         "writes after the first send of the turn")
        local expected = { { sender = pid, name = "pack", data = "first" } }
        for i = 1, 200 do
            local data = ("%010d"):format(i)
            assert(shim.send(peer, "pack", data))
            expected[#expected + 1] = { sender = pid, name = "pack", data = data }
        end
        -- 200 packets of 30 bytes in the same turn (standalone: until poll):
        -- shared writes of at most 4096 bytes, one when the buffer filled,
        -- one at the end of the turn
        assert.are.equal(2, shim.counters().writes - before,
                         "writes before the turn ends")
        assert(helper.same_alerts(expected, helper.collect(#expected), "packed"))
        assert.are.equal(3, shim.counters().writes - before, "writes in all")
    end)

end)


describe("names and lengths", function()

    it("refuses a 255-byte name", function()
        helper.drain()
        local name = string.rep("x", 255)
        local ok, res, err = pcall(shim.send, pid, name, "data")
        -- the Lua binding may raise or return nil, err: never true
        assert.is_not_true(ok and res, "send with a 255-byte name "
                                       .. "succeeded")

        -- and the C function refuses it on its own
        local C = helper.lib()
        local rc = C.ngx_ipc_send(pid, name, 255, "data", 4)
        assert.are.equal(-1, rc, "ngx_ipc_send with name_len 255")
        local msg = require("ffi").string(C.ngx_ipc_last_error())
        assert.truthy(msg:find("name too long", 1, true),
                      "expected 'name too long', got: " .. msg)

        rc = C.ngx_ipc_broadcast(name, 255, "data", 4)
        assert.are.equal(-1, rc, "ngx_ipc_broadcast with name_len 255")

        local got = helper.collect(1, 3)
        assert.are.equal(0, #got, "a refused alert arrived")
    end)

    it("refuses data one byte longer than the longest LuaJIT string "
       .. "(2147483391 bytes) without reading it", function()
        local ffi = require "ffi"
        local C = helper.lib()
        for _, len in ipairs { 2147483392, 2 ^ 32 } do
            local rc = C.ngx_ipc_send(pid, "big", 3, "x", len)
            assert.are.equal(-1, rc, "ngx_ipc_send with data_len " .. len)
            local msg = ffi.string(C.ngx_ipc_last_error())
            assert.truthy(msg:find("data too long: " .. ("%d"):format(len)
                                   .. " bytes (at most 2147483391", 1, true),
                          "expected 'data too long', got: " .. msg)
        end
    end)

    it("the limit is LuaJIT's: a string one byte longer cannot be made",
       function()
        local ok, err = pcall(string.rep, "x", 2147483392)
        assert.is_false(ok, "LuaJIT made a 2147483392-byte string")
        assert.truthy(tostring(err):find("string length overflow", 1, true),
                      "expected 'string length overflow', got: "
                      .. tostring(err))
    end)
end)


describe("ordering, to another worker", function()

    it("queues a 1 MiB alert the full pipe refuses, and later small "
       .. "alerts arrive after it", function()
        helper.drain()
        -- the pipe holds at most 1 MiB: 1 MiB of data plus headers
        -- cannot be written at once, so the rest waits in the queue and
        -- the small alerts behind it
        local big = helper.bytes(1024 * 1024, 99)
        local expected = { { sender = pid, name = "big", data = big } }
        assert(shim.send(peer, "big", big))
        for i = 1, 100 do
            local data = "small " .. i
            expected[#expected + 1] = { sender = pid, name = "s",
                                        data = data }
            local ok, err = shim.send(peer, "s", data)
            assert.is_true(ok, fmt("send small %d: %s", i, tostring(err)))
        end
        assert(helper.same_alerts(expected, helper.collect(#expected),
                                  "big then small"))
    end)

    it("queues small alerts behind a queued large one even when the pipe "
       .. "has room again", function()
        helper.drain()
        -- 4 MiB: after each poll (flush 1 MiB, read 1 MiB) the pipe is
        -- empty while the rest of the large alert still waits in the queue
        local big = helper.bytes(4 * 1024 * 1024, 11)
        local expected = { { sender = pid, name = "big", data = big } }
        assert(shim.send(peer, "big", big))
        for i = 1, 40 do
            if i % 10 == 0 then
                helper.poll()
            end
            local data = "behind " .. i
            expected[#expected + 1] = { sender = pid, name = "b",
                                        data = data }
            assert(shim.send(peer, "b", data))
        end
        assert(helper.same_alerts(expected, helper.collect(#expected),
                                  "behind the queue"))
    end)

    it("keeps the order of several large alerts mixed with small ones",
       function()
        helper.drain()
        local expected = {}
        for i = 1, 6 do
            local data = (i % 2 == 0) and helper.bytes(700 * 1024 + i, i)
                         or ("small " .. i)
            expected[i] = { sender = pid, name = "mix" .. i, data = data }
            assert(shim.send(peer, "mix" .. i, data))
        end
        assert(helper.same_alerts(expected, helper.collect(#expected),
                                  "mixed"))
    end)

    it("refuses sends once send_backlog bytes wait in the queue, names the "
       .. "cap, and delivers what it accepted", function()
        helper.drain()
        local cap = 32 * 1024 * 1024
        caps(cap, 0)
        local chunk = string.rep("q", 4 * 1024 * 1024)
        local accepted, err = 0, nil
        local refused = shim.counters().refused_backlog
        for _ = 1, 40 do
            local ok, e = shim.send(peer, "", chunk)
            if not ok then
                err = e
                break
            end
            accepted = accepted + 1
        end
        assert.truthy(err, "expected a refusal within 160 MiB, all "
                           .. accepted .. " sends were accepted")
        local want = "send backlog to " .. peer .. " is full (send_backlog is "
                     .. cap .. " bytes)"
        assert.are.equal(want, err)
        -- 32 MiB queued plus what the 1 MiB pipe took directly
        assert.is_true(accepted >= 8 and accepted <= 10,
                       "expected 8 to 10 accepted 4 MiB alerts, got "
                       .. accepted)
        assert.are.equal(1, shim.counters().refused_backlog - refused,
                         "refused_backlog: expected +1")
        local got = helper.collect(accepted)
        assert.are.equal(accepted, #got, fmt("expected %d alerts back, "
                                             .. "got %d", accepted, #got))
        for i = 1, #got do
            assert.are.equal(#chunk, #got[i].data,
                             "alert " .. i .. " length")
        end
        assert.are.equal(0, shim.counters().send_queued, "bytes still queued")
    end)

    it("never queues more than send_backlog bytes: an alert whose data fits "
       .. "but whose packet headers would not is refused", function()
        helper.drain()
        local cap = 4 * 1024 * 1024
        caps(cap, 0)
        -- 2 MiB to the 1 MiB pipe: the rest waits in the queue
        assert(shim.send(peer, "", string.rep("a", 2 * 1024 * 1024)))
        local queued = shim.backlog()[peer]
        assert.truthy(queued, "nothing queued for the peer")
        -- exactly the room left, counting data only
        local ok, err = shim.send(peer, "", string.rep("b", cap - queued))
        local after = shim.backlog()[peer]
        assert.is_true(after <= cap, ("%d bytes queued, send_backlog %d")
                                     :format(after, cap))
        assert.is_nil(ok, "an alert that fills the cap with its data alone")
        assert.truthy(err:find("send backlog to " .. peer .. " is full", 1,
                               true), err)
        assert.are.equal(1, #helper.collect(1), "the first alert, whole")
    end)
end)


describe("alerts to the own pid", function()

    it("are refused, not dropped, when they would take what this worker "
       .. "holds past receive_backlog, and the others are delivered",
       function()
        helper.drain()
        caps(0, MiB)
        local data = helper.bytes(600 * 1024, 5)
        local refused = shim.counters().refused_backlog
        assert(shim.send(pid, "one", data))
        local ok, err = shim.send(pid, "two", data)
        assert.is_nil(ok, "a second 600 KiB alert under a 1 MiB cap")
        assert.are.equal("receive backlog of this worker is full "
                         .. "(receive_backlog is 1048576 bytes)", err)
        assert.are.equal(1, shim.counters().refused_backlog - refused,
                         "refused_backlog: expected +1")
        assert(helper.same_alerts({ { sender = pid, name = "one",
                                      data = data } },
                                  helper.collect(1), "accepted"))
        assert(shim.send(pid, "three", "small"))
        assert(helper.same_alerts({ { sender = pid, name = "three",
                                      data = "small" } },
                                  helper.collect(1), "after the refusal"))
    end)

    it("are named with the cap that refused them when a broadcast reaches "
       .. "the others but not this worker", function()
        helper.drain()
        caps(0, MiB)
        local data = helper.bytes(600 * 1024, 6)
        assert(shim.send(pid, "held", data))          -- 600 KiB held here
        local ok, err = shim.broadcast("b", data)
        assert.is_nil(ok, "a broadcast over this worker's receive_backlog")
        assert.are.equal("send backlog full for 1 worker(s): " .. pid
                         .. " (this worker: receive_backlog is 1048576 bytes)"
                         .. " (send_backlog is 67108864 bytes); the others "
                         .. "got the alert", err)
        -- this worker holds only what it held before; the peer got the
        -- broadcast (taken after "held": the peer's reading shares this
        -- process's receive_backlog)
        assert(helper.same_alerts({ { sender = pid, name = "held",
                                      data = data } },
                                  helper.take(), "held"))
        assert(helper.same_alerts({ { sender = pid, name = "b",
                                      data = data } },
                                  helper.collect(1), "the peer's copy"))
    end)
end)


-- Lending (ngx_ipc_lend): the C calls themselves, through ffi, then the
-- binding that uses them for alerts of 4 KiB and more to the own pid.
describe("a loan (ngx_ipc_lend)", function()
    local ffi = require "ffi"
    local C = helper.lib()
    local alert = ffi.new("ngx_ipc_alert_t")

    -- the next alert straight from C: sender, name, data (nil when lent), lent
    local function recv_c()
        helper.poll()
        assert.are.equal(1, C.ngx_ipc_recv(0, alert), "an alert waits")
        local data = alert.data ~= nil and ffi.string(alert.data, alert.data_len) or nil
        return alert.sender, ffi.string(alert.name, alert.name_len), data,
               alert.lent, alert.data_len
    end

    it("is taken by a send to the own pid: 1, and the alert refers to it",
       function()
        helper.drain()
        C.ngx_ipc_lend(7)
        assert.are.equal(1, C.ngx_ipc_send(pid, "lent", 4, "abcdef", 6))
        local sender, name, data, lent, len = recv_c()
        assert.are.same({ pid, "lent", nil, 7, 6 }, { sender, name, data, lent, len })
    end)

    it("is not taken by a send to another worker, and ends with it",
       function()
        helper.drain()
        C.ngx_ipc_lend(8)
        assert.are.equal(0, C.ngx_ipc_send(peer, "away", 4, "xyz", 3))
        assert.are.equal(0, C.ngx_ipc_send(pid, "own", 3, "copied", 6))
        local _, name, data, lent = recv_c()
        assert.are.same({ "own", "copied", 0 }, { name, data, lent })
        helper.collect(1)                       -- the peer's
    end)

    it("ends with a refused send", function()
        helper.drain()
        C.ngx_ipc_lend(9)
        assert.are.equal(-1, C.ngx_ipc_send(pid, string.rep("n", 255), 255, "x", 1))
        assert.are.equal(0, C.ngx_ipc_send(pid, "after", 5, "copied", 6))
        local _, name, data, lent = recv_c()
        assert.are.same({ "after", "copied", 0 }, { name, data, lent })
    end)

    it("is ended, never taken, by send_any", function()
        helper.drain()
        C.ngx_ipc_lend(10)
        C.ngx_ipc_send_any("any", 3, "x", 1)
        helper.drain()
        assert.are.equal(0, C.ngx_ipc_send(pid, "after", 5, "copied", 6))
        local _, name, data, lent = recv_c()
        assert.are.same({ "after", "copied", 0 }, { name, data, lent })
    end)

    it("keeps the order of lent and copied alerts to the own pid, byte-exact",
       function()
        helper.drain()
        local sent = {}
        for i = 1, 50 do
            local data = helper.bytes(i % 2 == 0 and 5000 + i or i, i)
            sent[i] = { sender = pid, name = "n" .. i, data = data }
            assert(shim.send(pid, "n" .. i, data))
        end
        assert(helper.same_alerts(sent, helper.collect(50), "mixed"))
    end)

    it("is taken by a broadcast's copy to the own pid, byte-exact",
       function()
        helper.drain()
        local data = helper.bytes(70000, 4)
        C.ngx_ipc_lend(11)
        assert.are.equal(1, C.ngx_ipc_broadcast("b", 1, data, #data))
        local sender, name, got, lent, len = recv_c()
        assert.are.same({ pid, "b", nil, 11, #data }, { sender, name, got, lent, len })
        helper.drain()                               -- the peer's copy
        -- through the binding: its own copy, then the peer's (whose pipe
        -- this process reads too)
        assert(shim.broadcast("b", data))
        local copy = { sender = pid, name = "b", data = data }
        assert(helper.same_alerts({ copy, copy }, helper.collect(2), "lent by the binding"))
    end)
end)
