-- ngx_ipc_start checks the nginx it runs in before touching anything: an event
-- method other than epoll, a process that is neither a worker nor OpenResty's
-- privileged agent, an unknown subsystem, or no cycle yet are
-- refused with a message that says which. The nginx symbols come from a small
-- library (fixtures/fake_nginx.c) loaded globally, whose values each test sets.

local ffi = require "ffi"
local helper = require "t.unit.helper"

describe("ngx_ipc_start's checks of the nginx it runs in", function()
    local fake, C, sema

    setup(function()
        fake = helper.fake_nginx()
        C = helper.lib()
        sema = ffi.new("char[64]")
    end)

    local function start_error()
        assert.are.equal(-1, C.ngx_ipc_start(sema, "http", 0, 1))
        return ffi.string(C.ngx_ipc_last_error())
    end

    before_each(function()
        fake.ngx_event_flags = 0x40 + 0x20 + 0x4   -- epoll, as nginx sets it
        fake.ngx_process = 3                        -- a worker
        fake.ngx_cycle = sema
    end)

    it("refuses an event method other than epoll", function()
        fake.ngx_event_flags = 0x2                  -- e.g. poll's flags
        assert.are.equal("ngx.ipc needs the epoll event method", start_error())
    end)

    -- kind 4 without ngx_is_privileged_agent set: a cache manager or loader
    it("refuses the master, the signaller and helpers other than the privileged agent", function()
        for _, kind in ipairs { 1, 2, 4 } do
            fake.ngx_process = kind
            assert.are.equal("ngx.ipc: only nginx worker processes and OpenResty's privileged agent can use ngx.ipc",
                             start_error(), "ngx_process = " .. kind)
        end
    end)

    it("refuses a subsystem other than http and stream", function()
        assert.are.equal(-1, C.ngx_ipc_start(sema, "mail", 0, 1))
        assert.are.equal('ngx.ipc: unknown subsystem "mail" (http or stream)',
                         ffi.string(C.ngx_ipc_last_error()))
    end)

    it("refuses to start before nginx has a cycle", function()
        fake.ngx_cycle = nil
        assert.are.equal("ngx.ipc: ngx_cycle is NULL", start_error())
    end)
end)
