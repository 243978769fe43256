-- ngx.ipc.cluster.envelope outside nginx: a local alert that carries several
-- stream entries (what the reader makes of one XREAD reply) is handled entry by
-- entry with the worker's slot, as one alert per entry was: each once, in order,
-- a resend passed over where this slot had it, a missing entry before one (a gap)
-- asked for once and the entries after it passed until the resend comes, and bad
-- bytes counted, never handled. The slot file is the real one (cluster/slots);
-- dispatch is a stub that records what the user's handler would get.

local DIR = "/tmp/ngx_ipc_envelope_unit." .. tostring(os.time()) .. "." .. math.random(1, 1e6)
local GEN = DIR .. "/4026531836-4242-777-cc00"
local LOCAL = "\0cluster"

local function self_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = tonumber(f:read("*l"):match("^(%d+)"))
  f:close()
  return pid
end

-- worker 1 of 2 of `pid`, with its slot taken; returns the envelope module, the
-- slots module, the local alert's handler and the list of handled alerts
local function worker(pid)
  _G.ngx = {
    config = { subsystem = "http" },
    worker = {
      id = function() return 1 end,
      pid = function() return pid end,
      count = function() return 2 end,
      exiting = function() return false end,
    },
    sha1_bin = function(s) return ("%-20s"):format(s):sub(1, 20) end,
    log = function() end,
  }
  local handled, on_local = {}, nil
  package.loaded["ngx.ipc.shim"] = { dir = function() return GEN end }
  package.loaded["ngx.ipc.dispatch"] = {
    RESERVED = "\0",
    reserve = function(name, fn) assert(name == LOCAL, "reserved " .. name) on_local = fn end,
    invoke = function(name, data, from, id, inst, remote)
      handled[#handled + 1] = { name = name, data = data, from = from, id = id, inst = inst, remote = remote }
    end,
  }
  for _, m in ipairs { "ngx.ipc.cluster.state", "ngx.ipc.cluster.slots", "ngx.ipc.cluster.envelope" } do
    package.loaded[m] = nil
  end
  local envelope = require "ngx.ipc.cluster.envelope"
  local slots = require "ngx.ipc.cluster.slots"
  envelope.listen("s\nredis")
  assert(slots.ready(), "the slot file is mapped")
  return envelope, slots, on_local, handled, require("ngx.ipc.cluster.state").counters
end

-- entries ms-a .. ms-b of one envelope, the first naming `prev` before it; entry
-- ms-k carries data "d<k>" from pid 100 + k, worker id k % 2 (-1 for none at k = 0)
local function envelope_of(env, prev, ms, a, b)
  local parts = {}
  for k = a, b do
    parts[#parts + 1] = env.encode("host/1/2.00", 100 + k, k == 0 and -1 or k % 2, "name" .. k, prev.ms, prev.n,
      ms, k, k + 1, "d" .. k)
    prev = { ms = ms, n = k }
  end
  return table.concat(parts)
end

local function data_of(handled)
  local out = {}
  for i, h in ipairs(handled) do out[i] = h.data end
  return table.concat(out, " ")
end

describe("cluster envelope of several entries", function()
  setup(function()
    os.execute("mkdir -p " .. DIR)
  end)

  teardown(function()
    os.execute("rm -rf " .. DIR)
    _G.ngx = nil
    for _, m in ipairs { "ngx.ipc.shim", "ngx.ipc.dispatch", "ngx.ipc.cluster.state", "ngx.ipc.cluster.slots",
      "ngx.ipc.cluster.envelope" } do
      package.loaded[m] = nil
    end
  end)

  it("handles each entry once, in order, with its origin; a resend is passed over; a gap is asked for once and resent", function()
    local env, slots, on_local, handled, counters = worker(self_pid())
    on_local(0, envelope_of(env, { ms = 0, n = 0 }, 500, 0, 4))
    assert.are.equal("d0 d1 d2 d3 d4", data_of(handled), "five entries of one envelope")
    assert.are.same({ name = "name0", data = "d0", from = 100, inst = "host/1/2.00", remote = true }, handled[1],
      "worker id -1: none")
    assert.are.same({ name = "name3", data = "d3", from = 103, id = 1, inst = "host/1/2.00", remote = true }, handled[4])
    assert.are.same({ ms = 500, n = 4, seq = 5 }, slots.done_of(2), "the slot's position: the last entry")

    -- a resend from 500-2: 500-3 and 500-4 passed over, 500-5 and 500-6 handled
    on_local(0, envelope_of(env, { ms = 500, n = 2 }, 500, 3, 6))
    assert.are.equal("d0 d1 d2 d3 d4 d5 d6", data_of(handled))
    assert.are.equal(2, counters.skipped, "the two it had")

    -- 500-7 and 500-8 never came: 500-9 .. 500-11 name 500-8 before them
    assert.are.equal("", slots.want_of(2))
    on_local(0, envelope_of(env, { ms = 500, n = 8 }, 500, 9, 11))
    assert.are.equal(7, #handled, "nothing after a gap is handled")
    assert.are.equal(5, counters.skipped)
    local asked = slots.want_of(2)
    assert.are_not.equal("", asked, "a resend asked for")
    on_local(0, envelope_of(env, { ms = 500, n = 10 }, 500, 11, 12))
    assert.are.equal(asked, slots.want_of(2), "asked once for the same position")

    -- the reader goes back to 500-6 and relays what follows in one envelope
    on_local(0, envelope_of(env, { ms = 500, n = 6 }, 500, 7, 12))
    assert.are.equal("d0 d1 d2 d3 d4 d5 d6 d7 d8 d9 d10 d11 d12", data_of(handled), "each once, in order")
    assert.are.equal(13, counters.received)
    assert.are.equal(0, counters.malformed)
  end)

  it("counts bad bytes and handles nothing after them; the next envelope's gap brings them again", function()
    local env, slots, on_local, handled, counters = worker(self_pid())
    local before = #handled
    local asked = slots.want_of(2)
    local good = envelope_of(env, { ms = 500, n = 12 }, 500, 13, 15)
    on_local(0, good:sub(1, -2))
    assert.are.equal(1, counters.malformed, "a length not a multiple of 8")
    -- the first entry whole, the second's header cut: the first is handled
    local first = envelope_of(env, { ms = 500, n = 12 }, 500, 13, 13)
    on_local(0, first .. good:sub(#first + 1, #first + 40))
    assert.are.equal(2, counters.malformed, "a header cut short")
    -- a data length past the end
    local bad = envelope_of(env, { ms = 500, n = 13 }, 500, 14, 14)
    local ffi = require "ffi"
    local buf = ffi.new("char[?]", #bad)
    ffi.copy(buf, bad, #bad)
    ffi.cast("double *", buf)[9] = 1e9
    on_local(0, ffi.string(buf, #bad))
    assert.are.equal(3, counters.malformed, "a data length past the end")
    assert.are.equal(before + 1, #handled, "only the whole entry before the bad bytes")
    assert.are.equal("d13", handled[#handled].data)
    -- 500-14 and 500-15 were lost with the bad bytes: the next entry shows the gap
    on_local(0, envelope_of(env, { ms = 500, n = 15 }, 500, 16, 16))
    assert.are.equal(before + 1, #handled)
    assert.are_not.equal(asked, slots.want_of(2), "a resend asked for")
    on_local(0, envelope_of(env, { ms = 500, n = 13 }, 500, 14, 16))
    assert.are.equal("d13 d14 d15 d16", data_of({ unpack(handled, before + 1) }))
  end)
end)
