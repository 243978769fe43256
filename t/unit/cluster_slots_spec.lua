-- ngx.ipc.cluster.slots outside nginx: the worker slots' file, what a worker does
-- with a relayed entry (handle, pass, ask for a resend), and taking a slot over
-- from a holder that died (inside a handler, inside the position's write), that
-- shuts down, or that still runs. Each "process" is a fresh load of the module
-- with its own ngx.worker stub; they share the file as workers do (two mappings
-- of one file in this process are as coherent as in two).

local DIR = "/tmp/ngx_ipc_slots_unit." .. tostring(os.time()) .. "." .. math.random(1, 1e6)
-- the instance directory's name, as the shim makes it: <ns>-<master>-<start>-<cycle>
local GEN1 = DIR .. "/4026531836-4242-777-aa00"
local GEN2 = DIR .. "/4026531836-4242-777-bb00"

local function self_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = tonumber(f:read("*l"):match("^(%d+)"))
  f:close()
  return pid
end

-- a pid that is no process now
local function dead_pid()
  for pid = 4000000, 4100000, 997 do
    if not io.open("/proc/" .. pid .. "/stat") then
      return pid
    end
  end
  error("no free pid found")
end

-- the module as worker `id` of `pid` (of `count` workers) in generation `dir` sees
-- it, in its http Lua VM or (`sub`) its stream one; worker id i has slots 2i (http)
-- and 2i + 1 (stream)
local function worker(pid, id, count, dir, sub)
  _G.ngx = {
    config = { subsystem = sub or "http" },
    worker = {
      id = function() return id end,
      pid = function() return pid end,
      count = function() return count end,
      exiting = function() return false end,
    },
    sha1_bin = function(s) return ("%-20s"):format(s):sub(1, 20) end,
  }
  package.loaded["ngx.ipc.shim"] = { dir = function() return dir end }
  package.loaded["ngx.ipc.cluster.state"] = nil
  package.loaded["ngx.ipc.cluster.slots"] = nil
  local slots = require "ngx.ipc.cluster.slots"
  assert(slots.open("s\nredis", count))
  return slots
end

describe("cluster worker slots", function()
  setup(function()
    os.execute("mkdir -p " .. DIR)
  end)

  teardown(function()
    os.execute("rm -rf " .. DIR)
    _G.ngx = nil
    package.loaded["ngx.ipc.shim"] = nil
    package.loaded["ngx.ipc.cluster.state"] = nil
    package.loaded["ngx.ipc.cluster.slots"] = nil
  end)

  local gone, me = dead_pid(), self_pid()

  it("handles the entry after its position, passes resends, asks once for a missing one", function()
    local w = worker(gone, 1, 2, GEN1)
    assert.are.same({ true, 0 }, { w.take() })
    -- no position yet (never held, no reader of its generation): the first entry that comes
    assert.are.same({ w.HANDLE, 0 }, { w.verdict(0, 0, 100, 0, 1) })
    w.begin(100, 0, 1)
    w.finish()
    assert.are.same({ ms = 100, n = 0, seq = 1 }, w.done_of(2))
    assert.are.same({ w.PASS, 0 }, { w.verdict(0, 0, 100, 0, 1) }, "the same entry again")
    assert.are.same({ w.HANDLE, 0 }, { w.verdict(100, 0, 100, 1, 2) }, "the next one")
    assert.are.same({ w.GAP, 0 }, { w.verdict(100, 1, 101, 0, 3) }, "one after a missing entry")
    assert.are.same({ w.HANDLE, 2 }, { w.verdict(100, 0, 105, 0, 4) }, "after two trimmed ones: 2 lost")
    assert.are.equal("", w.want_of(2))
    w.want()
    local first = w.want_of(2)
    assert.are.equal(gone .. ":0:1", first)
    w.want()
    assert.are.equal(first, w.want_of(2), "a second request at the same position")
  end)

  it("the least position is the instance's; the reader's base stands for a slot of its generation with none", function()
    local r = worker(gone + 1, 0, 2, GEN1)
    r.set_base({ ms = 50, n = 0, seq = 0 })
    assert.are.same({ ms = 100, n = 0, seq = 1 }, r.least(2), "worker 0's slots never held, worker 1's http one at 100-0")
    -- taken after its generation's reader started: its position is that reader's start
    assert.are.same({ true, 0 }, { r.take() })
    assert.are.same({ ms = 50, n = 0, seq = 0 }, r.least(2))
    r.begin(120, 3, 7)
    r.finish()
    assert.are.same({ ms = 100, n = 0, seq = 1 }, r.least(2))
  end)

  it("a replacement of a holder killed inside a handler goes on from its position, runs that entry again, and asks for a resend", function()
    local dead = worker(gone, 1, 2, GEN1)
    dead.take()
    dead.begin(100, 1, 2)                 -- then killed: busy, the position still 100-0
    local w = worker(me, 1, 2, GEN1)
    assert.are.same({ true, 1 }, { w.take() }, "taken, one entry to run again")
    assert.are.same({ ms = 100, n = 0, seq = 1 }, w.done_of(2))
    assert.are.same({ w.HANDLE, 0 }, { w.verdict(100, 0, 100, 1, 2) }, "the entry its predecessor began")
    assert.are.equal(me .. ":", w.want_of(2):sub(1, #tostring(me) + 1), "a request to resend, under the new holder")
  end)

  it("a replacement of a holder killed inside the position's write completes it from begun", function()
    -- a holder of slot 0 in generation 2 (whose reader has not started) is killed in finish()
    local w0 = worker(gone + 2, 0, 2, GEN2)
    w0.take()
    w0.begin(200, 0, 9)
    w0.finish()
    w0.begin(200, 1, 10)
    -- a second mapping of the file, to leave its seqlock odd as a killed writer would
    local ffi = require "ffi"
    local f = assert(io.open(DIR .. "/" .. (function()
      for name in io.popen("ls " .. DIR):lines() do
        if name:match("^cluster1_") then return name end
      end
    end)(), "r+b"))
    local bytes = f:read("*a")
    -- `buf` keeps the copy alive while `p` points into it
    local buf = ffi.new("char[?]", #bytes)
    ffi.copy(buf, bytes, #bytes)
    local p = ffi.cast("double *", buf)
    local SLOT0 = 8
    p[SLOT0] = p[SLOT0] + 1               -- seqlock odd
    p[SLOT0 + 3] = 200                    -- ms written, n and seq not yet
    f:seek("set", 0)
    f:write(ffi.string(buf, #bytes))
    f:close()
    local w = worker(me, 0, 2, GEN2)
    assert.are.same({ true, 0 }, { w.take() }, "taken; the handler had returned: nothing to run again")
    assert.are.same({ ms = 200, n = 1, seq = 10 }, w.done_of(0))
    assert.are.same({ w.PASS, 0 }, { w.verdict(200, 0, 200, 1, 10) })
  end)

  it("a stream Lua VM has a slot of its own beside the http VM's; a slot never held holds nothing back", function()
    local st = worker(me, 1, 2, GEN2, "stream")
    assert.are.same({ true, 0 }, { st.take() }, "the stream VM of the process that holds worker 1's http slot")
    st.set_base({ ms = 90, n = 0, seq = 0 })
    assert.are.same({ ms = 90, n = 0, seq = 0 }, st.done_of(3), "the stream slot: the base of its generation's reader")
    assert.are.same({ st.HANDLE, 0 }, { st.verdict(90, 0, 95, 0, 2) })
    st.begin(95, 0, 2)
    st.finish()
    assert.are.same({ ms = 100, n = 0, seq = 1 }, st.done_of(2), "the http slot of worker 1 did not move")
    -- worker 0's stream slot was never held; 1's http at 100-0, its stream at 95-0, 0's http at 200-1
    assert.are.same({ ms = 95, n = 0, seq = 2 }, st.least(2))
    assert.are.same({ ms = 95, n = 0, seq = 2 }, st.least(3), "worker 2's slots never held")
  end)

  it("waits while the holder runs and is not shutting down", function()
    local holder = worker(me, 1, 2, GEN2)
    holder.take()
    local w = worker(gone + 3, 1, 2, GEN2)
    assert.are.same({ false, 0 }, { w.take() }, "a live holder that is not shutting down keeps its slot")
  end)
end)
