-- receive_backlog bounds the complete alerts a receiver holds for its handlers:
-- reading pauses while they fill half of it and resumes as they are taken. What
-- arrives is never dropped for it: a receiver holding nothing else takes one
-- alert of any size, and an alert arriving while others are held is taken too
-- (the senders learned of the cap through their own send_backlog).

local helper = require "t.unit.helper"

local MiB = 1024 * 1024

local function stream(sender, name, data)
    return table.concat(helper.packets(sender, name, data))
end

describe("receive_backlog", function()
    local shim

    setup(function()
        shim = helper.start()
    end)

    after_each(function()
        assert(shim.configure(0, 128 * MiB))
        helper.drain()
    end)

    it("takes an alert larger than the cap whole when it holds nothing else",
       function()
        helper.drain()
        assert(shim.configure(0, 1 * MiB))
        local before = shim.counters()
        local big = helper.bytes(2 * MiB, 7)
        assert(shim.feed(stream(4242, "big", big)))
        assert(shim.feed(stream(4242, "small", "after")))
        local got = helper.take()
        local d = helper.delta(before, shim.counters())
        assert.are.equal(0, d.dropped_memory, "dropped_memory")
        assert.are.equal(0, d.packets_discarded, "packets taken for corrupt")
        assert.are.equal(2, #got, "alerts delivered")
        assert.are.equal("big", got[1].name)
        assert.is_true(got[1].data == big, "the 2 MiB alert arrived whole")
        assert.are.same({ sender = 4242, name = "small", data = "after" }, got[2])
        assert.are.equal(0, shim.counters().receive_partial, "partial bytes left")
    end)

    it("takes an alert that arrives while another is pending past the cap, "
       .. "and delivers both whole", function()
        helper.drain()
        assert(shim.configure(0, 1 * MiB))
        local half = helper.bytes(600 * 1024, 3)
        local a = stream(5001, "a", half)
        -- only the first packet of a: 600 KiB are now promised
        local first_len = 16 + 1 + 4079
        assert(shim.feed(a:sub(1, first_len)))
        assert.are.equal(1 + #half, shim.counters().receive_partial)
        local before = shim.counters()
        assert(shim.feed(stream(5002, "b", half)))
        assert(shim.feed(a:sub(first_len + 1)))
        local got = helper.take()
        assert.are.equal(0, helper.delta(before, shim.counters()).dropped_memory)
        assert.are.equal(2, #got, "alerts delivered")
        assert.are.equal("b", got[1].name)
        assert.is_true(got[1].data == half, "b's data arrived whole")
        assert.are.equal("a", got[2].name)
        assert.is_true(got[2].data == half, "a's data arrived whole")
    end)

    it("pauses reading at half the cap and resumes as alerts are taken, "
       .. "losing nothing", function()
        helper.drain()
        assert(shim.configure(0, 1 * MiB))
        local payload = helper.bytes(100 * 1024, 11)
        local dropped = shim.dropped()
        -- 2 MB from another worker: more than the 1 MiB pipe holds
        local pending = {}
        for i = 1, 20 do
            pending[i] = stream(4194000 + i, "p" .. i, payload)
        end
        pending = table.concat(pending)
        local peak, got = 0, {}
        for _ = 1, 10000 do
            if #pending > 0 then
                local n = helper.inject(pending)
                pending = pending:sub(n + 1)
            end
            assert(shim.poll())
            local ready = shim.counters().receive_ready
            if ready > peak then peak = ready end
            local sender, name, data = shim.recv()
            if sender then got[#got + 1] = name .. ":" .. #data end
            if #got == 20 then break end
        end
        assert.are.equal(20, #got, "alerts received")
        for i = 1, 20 do
            assert.are.equal("p" .. i .. ":" .. #payload, got[i])
        end
        -- a read that starts below half the cap reads at most 64 KiB more
        -- than that before the next check; alerts finish inside it
        assert.is_true(peak <= 512 * 1024 + 200 * 1024,
                       "receive_ready peaked at " .. peak .. " bytes")
        assert.are.equal(dropped, shim.dropped(),
                         "alerts dropped")
    end)
end)
