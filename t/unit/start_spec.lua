-- ngx_ipc_start outside nginx refuses cleanly and says which nginx symbol
-- is missing.

local ffi = require "ffi"
local helper = require "t.unit.helper"

describe("ngx_ipc_start outside nginx", function()

    it("fails naming a missing nginx symbol, and does not crash",
       function()
        local C = helper.lib()
        local sema = ffi.new("char[64]")
        local rc = C.ngx_ipc_start(sema, "http", 0, 1)
        assert.are.equal(-1, rc, "ngx_ipc_start in a plain LuaJIT process")
        local err = ffi.string(C.ngx_ipc_last_error())
        assert.truthy(err:find("^ngx%.ipc: nginx symbol ngx_[%w_]+ not found$"),
                      "expected 'ngx.ipc: nginx symbol ngx_... not found', "
                      .. "got: " .. err)
        -- and again: still refused, same message
        assert.are.equal(-1, C.ngx_ipc_start(sema, "http", 0, 1))
        assert.are.equal(err, ffi.string(C.ngx_ipc_last_error()))
    end)
end)
