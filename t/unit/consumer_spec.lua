-- Two Lua VMs in one process (an http and a stream one): two consumers of one
-- ready queue (c/ngx_ipc_consumer.c, the cursors of ngx_ipc_assemble.c). The
-- shim starts in "nginx mode" against a fake nginx (fixtures/fake_nginx.c, its
-- channel events accepted and never fired), and alerts this process sends
-- itself fill the queue, so every step is the shim's own code, no event loop.

local ffi = require "ffi"
local helper = require "t.unit.helper"

describe("two consumers of one process (http and stream Lua VMs)", function()
    local fake, C, sema, alert
    local pid = helper.pid

    local function send(name, data)
        return C.ngx_ipc_send(pid, name, #name, data, #data)
    end

    local function want(c, name)
        assert.are.equal(0, C.ngx_ipc_want(c, name, #name, 1))
    end

    -- what consumer c takes now: "name=data" each
    local function take(c)
        local out = {}
        while C.ngx_ipc_recv(c, alert) == 1 do
            out[#out + 1] = ffi.string(alert.name, alert.name_len) .. "="
                .. ffi.string(alert.data, alert.data_len)
        end
        return out
    end

    setup(function()
        fake = helper.fake_nginx()
        C = helper.lib()
        sema = { ffi.new("char[64]"), ffi.new("char[64]") }
        alert = ffi.new("ngx_ipc_alert_t")
        fake.ngx_event_flags = 0x40 + 0x20 + 0x4
        fake.ngx_process = 3
        fake.ngx_cycle = sema[1]
        fake.ngx_ipc_fake_channel_rc = 0
    end)

    it("the first start joins as consumer 0, a later VM shares it as consumer 1", function()
        assert.are.equal(0, C.ngx_ipc_start(sema[1], "http", 0, 1),
                         ffi.string(C.ngx_ipc_last_error()))
        want(0, "a")
        want(0, "both")
        -- sent while consumer 0 is alone: it wakes only that one
        assert.are.equal(0, send("early", "e"))
        assert.are.equal(1, fake.ngx_ipc_fake_posts[0], "http posts")
        assert.are.equal(1, C.ngx_ipc_start(sema[2], "stream", 0, 1),
                         ffi.string(C.ngx_ipc_last_error()))
        assert.are.equal(2, C.ngx_ipc_consumers())
        want(1, "b")
        want(1, "both")
        want(1, "early")
        -- the stream VM joined after "early" was queued and still gets it
        assert.are.same({ "early=e" }, take(1))
        assert.are.same({}, take(0), "the http VM has no handler for early")
        assert.are.equal(0, tonumber(C.ngx_ipc_dropped()))
    end)

    it("each consumer gets, in order, the alerts whose names it wants; both when both want one", function()
        local before = { fake.ngx_ipc_fake_posts[0], fake.ngx_ipc_fake_posts[1] }
        for i, name in ipairs { "a", "b", "both", "none", "a" } do
            assert.are.equal(0, send(name, tostring(i)))
        end
        assert.are.equal(before[1] + 1, fake.ngx_ipc_fake_posts[0], "http posts: one until drained")
        assert.are.equal(before[2] + 1, fake.ngx_ipc_fake_posts[1], "stream posts: one until drained")
        assert.are.same({ "a=1", "both=3", "a=5" }, take(0))
        assert.are.same({ "b=2", "both=3" }, take(1))
        local counters = ffi.new("ngx_ipc_counters_t")
        C.ngx_ipc_counters(counters)
        assert.are.equal(0, tonumber(counters.receive_ready), "nothing held once both passed")
    end)

    it("a consumer that takes its alerts does not wait for the other one", function()
        assert.are.equal(0, send("both", "x"))
        assert.are.equal(0, send("b", "y"))
        assert.are.same({ "both=x", "b=y" }, take(1))
        local counters = ffi.new("ngx_ipc_counters_t")
        C.ngx_ipc_counters(counters)
        assert.is_true(tonumber(counters.receive_ready) > 0, "held until consumer 0 passes it")
        assert.are.same({ "both=x" }, take(0))
        C.ngx_ipc_counters(counters)
        assert.are.equal(0, tonumber(counters.receive_ready))
    end)

    it("wanted_by names the lowest consumer with a handler; a name can be let go", function()
        assert.are.equal(0, C.ngx_ipc_wanted_by("both", 4))
        assert.are.equal(1, C.ngx_ipc_wanted_by("b", 1))
        assert.are.equal(-1, C.ngx_ipc_wanted_by("none", 4))
        assert.are.equal(0, C.ngx_ipc_want(0, "both", 4, 0))
        assert.are.equal(1, C.ngx_ipc_wanted_by("both", 4))
        assert.are.equal(0, send("both", "z"))
        assert.are.same({}, take(0))
        assert.are.same({ "both=z" }, take(1))
        want(0, "both")
    end)

    it("a loan is not taken with two consumers: both get the data, whole", function()
        local data = string.rep("0123456789abcdef", 1024)
        C.ngx_ipc_lend(7)
        assert.are.equal(0, send("both", data), "0, not 1: the loan was not taken")
        assert.are.equal(1, C.ngx_ipc_recv(0, alert))
        assert.are.equal(0, alert.lent)
        assert.are.equal(data, ffi.string(alert.data, alert.data_len))
        -- consumer 0 lets its copy go early: it stays for consumer 1
        C.ngx_ipc_release(0)
        assert.are.same({ "both=" .. data }, take(1))
        assert.are.same({}, take(0))
    end)

    it("refuses an unknown consumer or a name past 254 bytes", function()
        assert.are.equal(-1, C.ngx_ipc_want(9, "a", 1, 1))
        assert.are.equal(-1, C.ngx_ipc_want(0, string.rep("n", 255), 255, 1))
        assert.are.equal(0, C.ngx_ipc_recv(9, alert))
    end)
end)
