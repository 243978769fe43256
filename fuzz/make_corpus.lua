-- fuzz/make_corpus.lua: writes the seed corpus of fuzz/decoder_fuzz.c into
-- fuzz/corpus/ (or the directory given as the first argument).
--
--   luajit fuzz/make_corpus.lua [dir]
--
-- Each seed is two control bytes (see decoder_fuzz.c: byte 0 = how the
-- stream is cut into ngx_ipc_feed calls and whether to drain between them,
-- byte 1 = seed of the chunk sizes) followed by a byte stream in the wire
-- format of docs/internals.md ("Packets"), built by the small encoder below
-- (independent of the shim).  Deterministic: running it again gives the
-- same files.

local bit = require "bit"

local char, concat, fmt = string.char, table.concat, string.format

local dir = arg[1] or (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/corpus"
os.execute("mkdir -p '" .. dir .. "'")

local MAGIC, FIRST, PAYLOAD_MAX, WRITE_MAX = 0x1A1E, 1, 4080, 4096

local function le(v, n)
  local t = {}
  for i = 1, n do
    t[i] = bit.band(bit.rshift(v, 8 * (i - 1)), 0xff)
  end
  return char(unpack(t))
end

-- a raw header: any field may be set to anything
local function header(h)
  return le(h.magic or MAGIC, 2) .. char(h.flags or 0) .. char(h.name_len or 0)
    .. le(h.sender or 1, 4) .. le(h.len or 0, 4) .. le(h.arg or 0, 4)
end

local function first(sender, name, total, data)
  return header { flags = FIRST, name_len = #name, sender = sender, len = #name + #data, arg = total }
    .. name .. data
end

local function cont(sender, off, data)
  return header { sender = sender, len = #data, arg = off } .. data
end

-- the packets of one alert, cut the way a sender cuts them: each write of at
-- most 4096 bytes filled, the first payload holding the name ("chunk" bounds
-- the data per packet instead, when given)
local function packets(sender, name, data, chunk)
  local list, off = {}, 0
  local room = chunk and (chunk + #name) or PAYLOAD_MAX
  local n = math.min(room - #name, #data)
  list[1] = first(sender, name, #data, data:sub(1, n))
  off = n
  while off < #data do
    n = math.min(chunk or PAYLOAD_MAX, #data - off)
    list[#list + 1] = cont(sender, off, data:sub(off + 1, off + n))
    off = off + n
  end
  return list
end

local function alert(sender, name, data, chunk)
  return concat(packets(sender, name, data, chunk))
end

-- deterministic bytes, NULs included
local function bytes(n, seed)
  local t, x = {}, seed
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    t[i] = char(bit.band(bit.rshift(x, 16), 0xff))
  end
  return concat(t)
end

local function flip(s, positions)
  for _, p in ipairs(positions) do
    s = s:sub(1, p - 1) .. char(bit.bxor(s:byte(p), 0x5a)) .. s:sub(p + 1)
  end
  return s
end

local count = 0
local function seed(name, mode, stream)
  local f = assert(io.open(dir .. "/" .. name, "wb"))
  f:write(char(mode, (#stream * 7) % 256), stream)
  f:close()
  count = count + 1
end

-- the modes of decoder_fuzz.c (byte 0): bits 0-2 chunking, bit 3 drain,
-- bits 4-5 receive_backlog (128 MiB, 64 KiB, 100 KiB, 1 MiB)
local WHOLE, BYTES, SMALL, MEDIUM, LARGE, EDGES, ALTERNATE, UPTO512, DRAIN = 0, 1, 2, 3, 4, 5, 6, 7, 8
local CAP64K, CAP100K, CAP1M = 16, 32, 48

-- single alerts
seed("single-small", WHOLE, alert(4242, "hello", "world"))
seed("single-empty", WHOLE, alert(7, "", ""))
seed("single-empty-data", SMALL, alert(7, "n", ""))
seed("single-name254", MEDIUM, alert(31337, ("N"):rep(254), "x"))
seed("single-binary-nul", BYTES, alert(99, "bin\0ary", "\0\1\2\0\255\0"))
seed("single-fills-packet", EDGES, alert(1234, "full", bytes(PAYLOAD_MAX - 4, 1)))

-- multi-packet alerts
seed("multi-4081", EDGES, alert(500, "m", bytes(4081, 2)))
seed("multi-12345", MEDIUM + DRAIN, alert(501, "multi", bytes(12345, 3)))
seed("multi-small-chunks", UPTO512, alert(502, "chunks", bytes(3000, 4), 100))
seed("multi-minimal-packets", SMALL, alert(503, "tiny", bytes(40, 5), 1))
seed("multi-name254-9000", ALTERNATE, alert(504, ("z"):rep(254), bytes(9000, 6)))

-- several alerts, one sender, in order
do
  local t = {}
  for i = 1, 20 do
    t[i] = alert(600, "seq", fmt("%08d", i) .. bytes(i * 37, i))
  end
  seed("sequence-20", SMALL + DRAIN, concat(t))
end

-- interleaved senders, packet by packet
do
  local queues, out = {}, {}
  for s = 1, 4 do
    local list = {}
    for a = 1, 2 do
      for _, p in ipairs(packets(700 + s, "s" .. s .. "a" .. a, bytes(s * 1500 + a * 700, s * 10 + a), 900 + s * 300)) do
        list[#list + 1] = p
      end
    end
    queues[s] = list
  end
  local more = true
  while more do
    more = false
    for s = 1, 4 do
      local p = table.remove(queues[s], 1)
      if p then
        out[#out + 1] = p
        more = true
      end
    end
  end
  local stream = concat(out)
  seed("interleaved-4-senders", MEDIUM, stream)
  seed("interleaved-4-senders-drain", SMALL + DRAIN, stream)
  seed("interleaved-4-senders-bytes", BYTES, stream:sub(1, 6000))
end

-- a stream longer than the shim's 64 KiB stream buffer, fed whole
do
  local t = {}
  for i = 1, 20 do
    t[i] = alert(800 + i % 3, "big" .. i, bytes(4000, 100 + i))
  end
  seed("long-stream-whole", WHOLE, concat(t))
  seed("long-stream-large-chunks", LARGE, concat(t))
end

-- what the receiver must discard or resynchronise from
local good = alert(900, "after", "still here")
seed("truncated-then-new-first", SMALL,
  first(901, "cut", 10000, bytes(2000, 7)) .. alert(901, "next", "complete") .. good)
seed("continuation-without-first", WHOLE, cont(902, 0, "orphan") .. good)
seed("continuation-wrong-offset", WHOLE,
  first(903, "w", 100, bytes(10, 8)) .. cont(903, 50, bytes(10, 9)) .. cont(903, 10, bytes(90, 10)) .. good)
seed("continuation-overruns-total", WHOLE,
  first(904, "o", 20, bytes(10, 11)) .. cont(904, 10, bytes(30, 12)) .. cont(904, 10, bytes(10, 13)) .. good)
seed("garbage-prefix", SMALL, bytes(300, 14) .. good)
seed("magic-in-garbage", MEDIUM, le(MAGIC, 2) .. bytes(40, 15) .. le(MAGIC, 2) .. "\1" .. good)
seed("bad-flags", WHOLE, header { flags = 3, sender = 905, len = 0 } .. good)
seed("name-len-255", WHOLE, header { flags = FIRST, name_len = 255, sender = 906, len = 255, arg = 0 }
  .. ("n"):rep(255) .. good)
seed("name-longer-than-payload", WHOLE, header { flags = FIRST, name_len = 10, sender = 907, len = 5, arg = 0 }
  .. "abcde" .. good)
seed("first-data-above-total", WHOLE, header { flags = FIRST, name_len = 1, sender = 908, len = 11, arg = 5 }
  .. "n" .. bytes(10, 16) .. good)
seed("sender-zero-negative", WHOLE, header { flags = FIRST, sender = 0 } .. header { flags = FIRST, sender = -5 } .. good)
seed("len-above-payload-max", WHOLE, header { flags = FIRST, sender = 909, len = PAYLOAD_MAX + 1, arg = 5000 } .. good)
seed("cont-with-name-len", WHOLE, first(910, "c", 20, "0123456789")
  .. header { name_len = 1, sender = 910, len = 10, arg = 10 } .. "0123456789" .. good)
seed("huge-total-then-stop", MEDIUM, first(911, "huge", 0xFFFFFFFF, bytes(4000, 17))
  .. cont(911, 4000, bytes(4080, 18)) .. good)
seed("header-at-end", WHOLE, good .. header { flags = FIRST, name_len = 3, sender = 912, len = 4000, arg = 4000 } .. "abc")
seed("partial-header-at-end", BYTES, good .. header { flags = FIRST, sender = 913, len = 3, arg = 3 }:sub(1, 9))

-- valid streams with a few bytes flipped
do
  local base = alert(920, "flip", bytes(9000, 19)) .. alert(921, "other", bytes(300, 20)) .. good
  seed("corrupt-magic", SMALL, flip(base, { 1 }))
  seed("corrupt-length", MEDIUM, flip(base, { 9, 10 }))
  seed("corrupt-offset", EDGES, flip(base, { 4096 + 13 }))
  seed("corrupt-payload-and-header", SMALL + DRAIN, flip(base, { 100, 4096 + 5, 8200 }))
  seed("corrupt-sender", ALTERNATE, flip(base, { 5 }))
end

-- writes of 4096 bytes packed like ngx_ipc_pack: several small alerts, then
-- a large one starting in the same write
do
  local s = alert(930, "a", "1") .. alert(930, "b", "22") .. alert(930, "c", bytes(5000, 21))
  seed("packed-writes", EDGES + DRAIN, s)
end

-- receive_backlog: alerts that would take held bytes past the cap are dropped
-- at their FIRST packet, and their continuations swallowed
do
  local a = packets(940, "a", bytes(40000, 22))
  local b = packets(941, "b", bytes(40000, 23))
  local t = {}
  for i = 1, math.max(#a, #b) do
    t[#t + 1] = a[i]
    t[#t + 1] = b[i]
  end
  seed("cap-64k-two-partials", CAP64K + MEDIUM, concat(t) .. good)
  seed("cap-64k-over-cap-swallowed", CAP64K + SMALL,
    alert(942, "big", bytes(70000, 24)) .. alert(943, "small", "fits") .. good)
  local three = alert(944, "one", bytes(40000, 25)) .. alert(944, "two", bytes(40000, 26))
    .. alert(944, "three", bytes(40000, 27)) .. good
  seed("cap-100k-ready-fills", CAP100K + LARGE, three)
  seed("cap-100k-ready-drained", CAP100K + MEDIUM + DRAIN, three)
  seed("cap-1m-huge-announcement", CAP1M + EDGES, first(945, "huge", 2000000, bytes(4000, 28))
    .. cont(945, 4000, bytes(4080, 29)) .. alert(946, "next", bytes(5000, 30)) .. first(945, "again", 3, "abc"))
end

print(fmt("make_corpus: %d seeds in %s", count, dir))
