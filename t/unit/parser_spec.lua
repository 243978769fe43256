-- The stream parser and reassembly, driven through shim.feed with packets
-- crafted by the helper's own encoder (an oracle of docs/internals.md).
-- Every test leaves the stream at a packet boundary with nothing pending,
-- because feed shares the parser with the pipe.

local helper = require "t.unit.helper"
local shim = helper.start()

local fmt, concat = string.format, table.concat


-- several senders, several alerts each, packets interleaved round-robin;
-- returns the stream and the alerts in the order they complete
local function interleaved(base, chunk_of)
    local senders = {}
    for s = 1, 5 do
        local alerts = {}
        for a = 1, 3 do
            local size = ({ 0, 1, 4079, 4080, 4081, 9000, 12345 })
                         [(s * 3 + a) % 7 + 1]
            alerts[a] = { sender = base + s,
                          name = (a == 2) and "" or fmt("s%d-a%d", s, a),
                          data = helper.bytes(size, s * 100 + a) }
        end
        senders[s] = { alerts = alerts, a = 1, p = 1 }
        senders[s].packets = helper.packets(base + s, alerts[1].name,
                                            alerts[1].data, chunk_of(s))
    end

    local out, expected, busy = {}, {}, true
    while busy do
        busy = false
        for s, st in ipairs(senders) do
            local alert = st.alerts[st.a]
            if alert then
                busy = true
                out[#out + 1] = st.packets[st.p]
                st.p = st.p + 1
                if st.p > #st.packets then
                    expected[#expected + 1] = alert
                    st.a, st.p = st.a + 1, 1
                    local nxt = st.alerts[st.a]
                    if nxt then
                        st.packets = helper.packets(base + s, nxt.name,
                                                    nxt.data, chunk_of(s))
                    end
                end
            end
        end
    end
    return concat(out), expected
end

local function feed_all(pieces)
    for _, p in ipairs(pieces) do
        shim.feed(p)
    end
    return helper.take()
end

local function no_discards(before, what)
    local d = helper.delta(before, shim.counters())
    assert.are.same({ 0, 0, 0 }, { d.packets_discarded, d.bytes_discarded,
                                   d.alerts_truncated },
                    what .. ": expected no packets_discarded, "
                    .. "bytes_discarded, alerts_truncated")
end


describe("reassembly of interleaved senders", function()

    it("reassembles 5 senders x 3 alerts from full-size packets",
       function()
        helper.drain()
        local before = shim.counters()
        local stream, expected = interleaved(1000, function() return 4080 end)
        assert(helper.same_alerts(expected, feed_all{ stream },
                                  "interleaved"))
        no_discards(before, "interleaved")
    end)

    it("reassembles packets of different sizes per sender", function()
        helper.drain()
        local before = shim.counters()
        local stream, expected = interleaved(1100, function(s)
            return ({ 1, 7, 300, 4000, 4080 })[s]
        end)
        assert(helper.same_alerts(expected, feed_all{ stream },
                                  "mixed packet sizes"))
        no_discards(before, "mixed packet sizes")
    end)

    it("gives the same alerts when the stream is split at any byte",
       function()
        helper.drain()
        local before = shim.counters()
        local stream, expected = interleaved(1200, function(s)
            return 300 + s * 250
        end)
        -- keep the work bounded: the stream is ~60 KB, try every byte of
        -- the first 4 KiB and every 7th byte after it
        for k = 0, #stream do
            if k <= 4096 or k % 7 == 0 or k == #stream then
                local got = feed_all{ stream:sub(1, k), stream:sub(k + 1) }
                local ok, err = helper.same_alerts(expected, got,
                                                   "split at " .. k)
                assert(ok, err)
            end
        end
        no_discards(before, "splits")
    end)

    it("gives the same alerts fed one byte at a time", function()
        helper.drain()
        local stream, expected = interleaved(1300, function() return 1000 end)
        local pieces = {}
        for i = 1, #stream do
            pieces[i] = stream:sub(i, i)
        end
        assert(helper.same_alerts(expected, feed_all(pieces), "byte by byte"))
    end)

    it("gives the same alerts for 200 random splittings", function()
        helper.drain()
        local before = shim.counters()
        local stream, expected = interleaved(1400, function(s)
            return s * 800
        end)
        local rnd = helper.rng(4242)
        for round = 1, 200 do
            local pieces, pos = {}, 1
            while pos <= #stream do
                local n = rnd(1, (round % 3 == 0) and 20 or 9000)
                pieces[#pieces + 1] = stream:sub(pos, pos + n - 1)
                pos = pos + n
            end
            local ok, err = helper.same_alerts(expected, feed_all(pieces),
                                               "random round " .. round)
            assert(ok, err)
        end
        no_discards(before, "random splits")
    end)

    it("reassembles a 1 MiB alert from many packets", function()
        helper.drain()
        local data = helper.bytes(1024 * 1024 + 3, 5)
        local got = feed_all(helper.packets(1500, "big", data))
        assert(helper.same_alerts({ { sender = 1500, name = "big",
                                      data = data } }, got, "1 MiB"))
    end)
end)


describe("damaged streams", function()

    local function expect(before, want, what)
        local d = helper.delta(before, shim.counters())
        for k, v in pairs(want) do
            assert.are.equal(v, d[k], fmt("%s: %s: expected +%d, got +%d",
                                          what, k, v, d[k]))
        end
    end

    local function good(sender, tag)
        return helper.first(sender, "ok", 2 + #tag, "ok" .. tag)
    end

    local function check_good(got, sender, tag, what)
        assert(helper.same_alerts({ { sender = sender, name = "ok",
                                      data = "ok" .. tag } }, got, what))
    end

    it("counts a truncated alert when a new FIRST arrives from the same "
       .. "sender, and delivers the new alert", function()
        helper.drain()
        local before = shim.counters()
        local got = feed_all{
            helper.first(2001, "cut", 100, string.rep("a", 10)),
            helper.cont(2001, 10, string.rep("a", 20)),
            good(2001, "1"),
        }
        check_good(got, 2001, "1", "after truncation")
        expect(before, { alerts_truncated = 1, packets_discarded = 0,
                         bytes_discarded = 0, alerts_received = 1 },
               "truncated")
    end)

    local corrupt = {
        { "bad magic", helper.header{ magic = 0x1A1F, flags = 1,
                                      sender = 7, len = 5, arg = 5 }
                       .. "aaaaa" },
        { "bad flags", helper.header{ flags = 9, sender = 7, len = 5,
                                      arg = 5 } .. "aaaaa" },
        { "candidate without unicast", helper.header{ flags = 5, sender = 7,
                                                      len = 5, arg = 5 }
                                       .. "aaaaa" },
        { "unicast flag on a later packet", helper.header{ flags = 2,
                                                           sender = 7, len = 5,
                                                           arg = 0 }
                                            .. "aaaaa" },
        { "unknown flag bit alone", helper.header{ flags = 0x80,
                                                   sender = 7, len = 0 } },
        { "len over 4080", helper.header{ flags = 1, sender = 7,
                                          len = 4081, arg = 4081 }
                           .. "bbbbbbbbbb" },
        { "huge len", helper.header{ sender = 7, len = 0xFFFFFFFF } },
        { "sender 0", helper.header{ flags = 1, sender = 0, len = 1,
                                     arg = 1 } .. "c" },
        { "negative sender", helper.header{ flags = 1, sender = -5,
                                            len = 1, arg = 1 } .. "c" },
        { "name length on a continuation",
          helper.header{ name_len = 3, sender = 7, len = 3 } .. "ddd" },
        { "name length 255", helper.header{ flags = 1, name_len = 255,
                                            sender = 7, len = 255,
                                            arg = 0 }
                             .. string.rep("n", 255) },
        { "FIRST shorter than its name",
          helper.header{ flags = 1, name_len = 10, sender = 7, len = 4,
                         arg = 0 } .. "nnnn" },
        { "FIRST with more data than its total",
          helper.header{ flags = 1, name_len = 1, sender = 7, len = 6,
                         arg = 2 } .. "nddddd" },
        { "garbage", "this is not a packet at all, just text!" },
    }

    for i, case in ipairs(corrupt) do
        it("skips a corrupt header (" .. case[1] .. ") byte by byte and "
           .. "delivers the next alert", function()
            helper.drain()
            local before = shim.counters()
            local got = feed_all{ case[2], good(2100 + i, tostring(i)) }
            check_good(got, 2100 + i, tostring(i), case[1])
            expect(before, { packets_discarded = 1,
                             bytes_discarded = #case[2],
                             alerts_truncated = 0, alerts_received = 1 },
                   case[1])
        end)
    end

    it("counts one discarded packet per corrupt run, fed in pieces",
       function()
        helper.drain()
        local before = shim.counters()
        local junk = string.rep("\0\1\2zzzz", 300)
        local got = feed_all{ junk:sub(1, 5), junk:sub(6, 1000),
                              junk:sub(1001), good(2200, "a"),
                              junk, good(2200, "b") }
        assert(helper.same_alerts({ { sender = 2200, name = "ok",
                                      data = "oka" },
                                    { sender = 2200, name = "ok",
                                      data = "okb" } }, got, "two runs"))
        expect(before, { packets_discarded = 2, bytes_discarded = 2 * #junk },
               "two runs")
    end)

    it("discards a continuation with the wrong offset, then completes "
       .. "with the right one", function()
        helper.drain()
        local before = shim.counters()
        local got = feed_all{
            helper.first(2301, "o", 20, "0123456789"),
            helper.cont(2301, 5, "56789"),             -- wrong offset
            helper.cont(2301, 10, "abcdefghij"),
        }
        assert(helper.same_alerts({ { sender = 2301, name = "o",
                                      data = "0123456789abcdefghij" } },
                                  got, "wrong offset"))
        expect(before, { packets_discarded = 1, bytes_discarded = 16 + 5,
                         alerts_truncated = 0 }, "wrong offset")
    end)

    it("discards a continuation with no alert pending", function()
        helper.drain()
        local before = shim.counters()
        local got = feed_all{ helper.cont(2302, 0, "orphan"),
                              good(2302, "x") }
        check_good(got, 2302, "x", "orphan continuation")
        expect(before, { packets_discarded = 1, bytes_discarded = 16 + 6 },
               "orphan continuation")
    end)

    it("discards a continuation that overruns the total", function()
        helper.drain()
        local before = shim.counters()
        local got = feed_all{
            helper.first(2303, "", 10, "01234"),
            helper.cont(2303, 5, "56789XYZ"),          -- 3 bytes too many
            helper.cont(2303, 5, "56789"),
        }
        assert(helper.same_alerts({ { sender = 2303, name = "",
                                      data = "0123456789" } }, got,
                                  "overrun"))
        expect(before, { packets_discarded = 1, bytes_discarded = 16 + 8 },
               "overrun")
    end)

    it("does not allocate a huge total up front: an announcement of the "
       .. "largest total followed by a new alert", function()
        helper.drain()
        local before = shim.counters()
        local got = feed_all{
            helper.first(2304, "huge", 2147483391, "abc"),
            helper.cont(2304, 3, string.rep("z", 4080)),
            good(2304, "after"),
        }
        check_good(got, 2304, "after", "after a huge announcement")
        -- taken (nothing else was held), then cut short by the next alert
        expect(before, { dropped_memory = 0, alerts_truncated = 1,
                         packets_discarded = 0 }, "huge announcement")
    end)

    it("takes a total over the longest LuaJIT string for corruption",
       function()
        helper.drain()
        local before = shim.counters()
        local got = feed_all{
            helper.first(2305, "huge", 2147483392, "abc"),
            good(2305, "after"),
        }
        check_good(got, 2305, "after", "after an impossible total")
        expect(before, { packets_discarded = 1, alerts_truncated = 0 },
               "impossible total")
    end)

    it("keeps other senders' pending alerts when one sender's alert is "
       .. "truncated (senders sharing a hash bucket)", function()
        helper.drain()
        local before = shim.counters()
        -- 5, 261 and 517 fall into one of 256 buckets
        local got = feed_all{
            helper.first(5, "a", 6, "aaa"),
            helper.first(261, "b", 6, "bbb"),
            helper.first(517, "c", 6, "ccc"),
            helper.first(261, "b2", 4, "BB"),        -- truncates 261's "b"
            helper.cont(517, 3, "CCC"),
            helper.cont(5, 3, "AAA"),
            helper.cont(261, 2, "BB"),
        }
        assert(helper.same_alerts({
            { sender = 517, name = "c", data = "cccCCC" },
            { sender = 5, name = "a", data = "aaaAAA" },
            { sender = 261, name = "b2", data = "BBBB" },
        }, got, "bucket"))
        expect(before, { alerts_truncated = 1, packets_discarded = 0 },
               "bucket")
    end)
end)
