-- Whole alerts of every size, byte-exact, and order under load.
local nginx = require "nginx"
local q = nginx.q

-- deterministic data of any size, made inside a worker
local MAKE = [[
  local function make(kind, n)
    if kind == "binary" then
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      local block = table.concat(bytes) .. "\0\0\0" .. table.concat(bytes):reverse()
      return string.rep(block, math.ceil(n / #block)):sub(1, n)
    end
    local block = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
    return string.rep(block, math.ceil(n / #block)):sub(1, n)
  end
]]

describe("payloads", function()
  local inst, pids

  setup(function()
    inst = nginx.start { workers = 2 }
    pids = inst:workers()
    inst:install [[
      local me = ngx.worker.pid()
      ipc.receive("md5", function(data)
        T.add("md5:" .. me, ipc.sender .. " " .. #data .. " " .. ngx.md5(data))
      end)
    ]]
  end)

  teardown(function()
    if inst then inst:stop() end
  end)

  local cases = {
    { "text", 0 }, { "text", 1 }, { "text", 4095 }, { "text", 4096 }, { "text", 4097 },
    { "text", 1024 * 1024 }, { "text", 10 * 1024 * 1024 },
    { "binary", 3 }, { "binary", 4097 }, { "binary", 1024 * 1024 + 7 },
  }

  local n_to = { [1] = 0, [2] = 0 }
  for _, c in ipairs(cases) do
    local kind, size = c[1], c[2]
    for _, target in ipairs { "another worker", "itself" } do
      it(("delivers %s data of %d bytes to %s with the same md5"):format(kind, size, target), function()
        local a = pids[1]
        local b = target == "itself" and a or pids[2]
        local idx = target == "itself" and 1 or 2
        local sent = inst:run(a, MAKE .. ([[
          local data = make(%s, %d)
          assert(#data == %d, "made " .. #data .. " bytes")
          assert(ipc.send(%d, "md5", data))
          return ngx.worker.pid() .. " " .. #data .. " " .. ngx.md5(data)
        ]]):format(q(kind), size, size, b), 30)
        n_to[idx] = n_to[idx] + 1
        local got = inst:wait_count("md5:" .. b, n_to[idx], 30)
        assert.are.equal(sent, got[n_to[idx]], "sender, length and md5 as received")
      end)
    end
  end

  it("delivers a 1 MiB binary broadcast whole to every worker", function()
    local a = pids[1]
    local before = {}
    for i, p in ipairs(pids) do before[p] = n_to[i == 1 and 1 or 2] end
    local sent = inst:run(a, MAKE .. [[
      local data = make("binary", 1024 * 1024)
      assert(ipc.broadcast("md5", data))
      return ngx.worker.pid() .. " " .. #data .. " " .. ngx.md5(data)
    ]])
    for _, p in ipairs(pids) do
      local got = inst:wait_count("md5:" .. p, before[p] + 1, 30)
      assert.are.equal(sent, got[before[p] + 1], "received by worker " .. p)
    end
    n_to[1], n_to[2] = n_to[1] + 1, n_to[2] + 1
  end)

  it("delivers 10,000 alerts from one worker to another in order", function()
    local a, b = pids[1], pids[2]
    inst:run(b, [[
      T.state.seq = { n = 0, bad = nil }
      ipc.receive("seq", function(d)
        local s = T.state.seq
        s.n = s.n + 1
        if not s.bad and tonumber(d) ~= s.n then s.bad = "alert #" .. s.n .. " carried " .. d end
      end)
    ]])
    inst:run(a, ([[
      for i = 1, 10000 do
        local ok, err = ipc.send(%d, "seq", tostring(i))
        if not ok then error("send #" .. i .. ": " .. tostring(err)) end
      end
    ]]):format(b), 30)
    local n = inst:wait_for(function()
      local n = inst:run(b, "return T.state.seq.n")
      return n >= 10000 and n, n
    end, 30, "10,000 alerts")
    require("socket").sleep(0.2)
    assert.are.same({ 10000, nil }, { inst:run(b, "return T.state.seq.n, T.state.seq.bad") })
    assert.are.equal(10000, n)
  end)
end)

describe("payloads under contention", function()
  local inst

  after_each(function()
    if inst then inst:stop(); inst = nil end
  end)

  -- Arms worker `dst` to check alerts `name` ("<sender>:<i>:..."): each is
  -- what `check` (Lua defining expected(sender, i)) says, from the sender it
  -- names, in per-sender order; T.state[name] holds n, bad and next.
  local function arm_checker(dst, name, check)
    inst:run(dst, check .. ([[
      local st = { n = 0, next = {}, bad = {} }
      T.state[%q] = st
      ipc.receive(%q, function(d)
        st.n = st.n + 1
        local sender, i = d:match("^(%%d+):(%%d+):")
        sender, i = tonumber(sender), tonumber(i)
        if sender ~= ipc.sender then
          st.bad[#st.bad + 1] = "alert from " .. ipc.sender .. " claims sender " .. tostring(sender)
        elseif d ~= expected(sender, i) then
          st.bad[#st.bad + 1] = "alert " .. sender .. ":" .. i .. " damaged (" .. #d .. " bytes)"
        elseif i ~= (st.next[sender] or 1) then
          st.bad[#st.bad + 1] = "from " .. sender .. ": got #" .. i .. ", expected #" .. (st.next[sender] or 1)
        end
        st.next[sender] = (i or 0) + 1
      end)
    ]]):format(name, name))
  end

  it("delivers 2,000 alerts of 5 KB from each of 4 workers to one worker whole and in per-sender order", function()
    inst = nginx.start { workers = 4 }
    local pids = inst:workers()
    local dst = pids[2]
    local CHECK = [[
      local function expected(sender, i)
        local head = sender .. ":" .. i .. ":"
        return head .. string.rep(string.char(65 + i % 26), 5120 - #head)
      end
    ]]
    arm_checker(dst, "many", CHECK)
    local results = inst:run_all(CHECK .. ([[
      ngx.sleep(0.05)  -- let every worker get its command before anyone starts
      local me, failures = ngx.worker.pid(), 0
      for i = 1, 2000 do
        local ok, err = ipc.send(%d, "many", expected(me, i))
        if not ok then failures = failures + 1; T.state.send_err = err end
      end
      return failures
    ]]):format(dst), 60)
    for p, failures in pairs(results) do
      assert.are.equal(0, failures, "failed sends from worker " .. p)
    end
    inst:wait_for(function()
      local n = inst:run(dst, "return T.state.many.n")
      return n >= 8000, n
    end, 60, "8,000 alerts at worker " .. dst)
    require("socket").sleep(0.2)
    local n, bad, nexts = inst:run(dst, "local s = T.state.many return s.n, s.bad, s.next")
    assert.are.same({}, bad, "damaged or out-of-order alerts")
    assert.are.equal(8000, n, "alerts received")
    for _, p in ipairs(pids) do
      assert.are.equal(2001, nexts[p], "next expected alert number from " .. p)
    end
    assert.are.same({}, inst:error_lines())
  end)

  -- Each of `pids` (default: every worker) sends 400 alerts to `dst`, sizes
  -- `size_expr` (Lua, of i), with a 1 ms sleep every 16; every alert arrives
  -- whole and in order, no packet is corrupt.  Returns each sender's
  -- { bytes, sent, writes } for the alerts i with `count_expr` true.
  local function many_to_one(dst, name, size_expr, count_expr, pids)
    pids = pids or inst:workers()
    local total = 400 * #pids
    local CHECK = ([[
      local function expected(sender, i)
        local head = sender .. ":" .. i .. ":"
        local size = %s
        return head .. string.rep(string.char(65 + i %% 26), size - #head)
      end
    ]]):format(size_expr)
    arm_checker(dst, name, CHECK)
    local results = inst:run_all(CHECK .. ([[
      ngx.sleep(0.05)  -- let every worker get its command before anyone starts
      local me, failures, bytes, sent = ngx.worker.pid(), 0, 0, 0
      local writes = ipc.stats().writes
      for i = 1, 400 do
        local data = expected(me, i)
        local ok, err = ipc.send(%d, %q, data)
        if not ok then failures = failures + 1; T.state.send_err = err end
        if %s then bytes, sent = bytes + #data, sent + 1 end
        if i %% 16 == 0 then ngx.sleep(0.001) end
      end
      T.wait(function() return ipc.stats().send_queued == 0 end, 60, 0.001)
      return { failures = failures, bytes = bytes, sent = sent, writes = ipc.stats().writes - writes }
    ]]):format(dst, name, count_expr), 120, pids)
    for p, r in pairs(results) do
      assert.are.equal(0, r.failures, "failed sends from worker " .. p)
    end
    inst:wait_for(function()
      local n = inst:run(dst, "return T.state." .. name .. ".n")
      return n >= total, n
    end, 60, total .. " alerts at worker " .. dst)
    local n, bad, nexts, st = inst:run(dst, "local s = T.state." .. name .. " return s.n, s.bad, s.next, ipc.stats()")
    assert.are.same({}, bad, "damaged or out-of-order alerts")
    assert.are.equal(total, n, "alerts received")
    assert.are.same({ 0, 0 }, { st.dropped.corrupt_packets, st.dropped.truncated }, "corrupt packets, truncated alerts")
    for _, p in ipairs(pids) do
      assert.are.equal(401, nexts[p], "next expected alert number from " .. p)
    end
    assert.are.same({}, inst:error_lines())
    results[dst] = nil
    return results
  end

  -- Writes of whole pages (c/ngx_ipc_dest.c) are more than PIPE_BUF: they
  -- must never leave half a packet in a pipe that 4 writers fill up.
  it("delivers large and small alerts from 4 workers to one whole, in order, in writes of whole pages", function()
    local pagesize = io.popen("getconf PAGESIZE"):read("*n")
    if pagesize ~= 4096 then
      pending("page size " .. tostring(pagesize) .. ": every write is one page or less")
      return
    end
    inst = nginx.start { workers = 4 }
    local results = many_to_one(inst:workers()[3], "pages", "i % 4 == 0 and 40 + i or 150000 + i * 37", "true")
    for p, r in pairs(results) do
      -- one write per 4 KiB would be about bytes / 4080
      assert.is_true(r.writes < r.bytes / 4080 / 4, ("worker %d: %d writes for %d bytes"):format(p, r.writes, r.bytes))
    end
  end)

  -- A burst's alerts of 1-32 KiB are gathered in the send queue and written
  -- 64 KiB at a time (c/ngx_ipc_deliver.c), not in one or two writes each
  -- (one sender, paced, so that the pipe does not fill and queue them anyway)
  it("gathers a burst's alerts of 1 to 32 KiB into large writes, delivered whole and in order", function()
    inst = nginx.start { workers = 2 }
    local pids = inst:workers()
    local results = many_to_one(pids[1], "gather", "i % 4 == 0 and 40 + i or 1024 + (i * 997) % 31000",
      "i % 4 ~= 0", { pids[2] })
    local r = results[pids[2]]
    -- one or two writes per such alert before (about 550 for these 300)
    assert.is_true(r.writes < r.sent, ("%d writes for %d alerts of 1-32 KiB (%d bytes)")
      :format(r.writes, r.sent, r.bytes))
  end)
end)
