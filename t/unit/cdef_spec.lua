-- The Lua binding declares exactly the FFI surface of c/ngx_ipc.h.

local helper = require "t.unit.helper"

local function normalise(s)
    s = s:gsub("/%*.-%*/", " ")          -- comments
    s = s:gsub("%s+", " ")
    s = s:gsub(" ?([%(%)%*,;{}]) ?", "%1")
    return (s:gsub("^ ", ""):gsub(" $", ""))
end

describe("shim.cdef", function()

    it("equals the block between BEGIN FFI and END FFI in c/ngx_ipc.h",
       function()
        local f = assert(io.open("c/ngx_ipc.h"))
        local h = f:read("*a")
        f:close()
        local block = h:match("/%* BEGIN FFI %*/(.-)/%* END FFI %*/")
        assert.truthy(block, "no BEGIN FFI/END FFI block in c/ngx_ipc.h")
        assert.is_string(helper.shim.cdef, "shim.cdef")
        local want, got = normalise(block), normalise(helper.shim.cdef)
        if want ~= got then
            local i = 1
            while want:byte(i) == got:byte(i) do i = i + 1 end
            error(string.format("cdef differs from c/ngx_ipc.h at "
                  .. "character %d:\n  header: ...%s...\n  shim:   ...%s...",
                  i, want:sub(math.max(1, i - 30), i + 30),
                  got:sub(math.max(1, i - 30), i + 30)))
        end
    end)
end)
