-- A slow receiver (issue 3, item 4): a handler that sleeps 1 s per alert while
-- two other workers send it 1 MiB alerts as fast as they can.
--   - the senders never block: the latency of plain requests they serve stays
--     near a baseline measured in the same run (generous factor);
--   - memory stays bounded: the receiver's RSS grows by no more than
--     receive_backlog (plus slack), its receive_ready + receive_partial stay
--     within receive_backlog, each sender's backlog within send_backlog;
--   - the only errors are the documented "send backlog to <pid> is full";
--   - nothing accepted is lost: once the flood stops and the handler stops
--     sleeping, the receiver handles every alert that send accepted, in order.
local nginx = require "nginx"
local socket = require "socket"
local traffic = require "t.stress.traffic"

local MiB = 1024 * 1024

local WORKER = [[
  local ipc = require "ngx.ipc"
  local me = ngx.worker.pid()
  local dict = T.dict
  -- the receiver: checks the order per sender, sleeps 1 s unless told "fast"
  ipc.receive("slow", function(d)
    local src, seq = d:match("^(%d+)|(%d+)|")
    src, seq = tonumber(src), tonumber(seq)
    local last = dict:get("last:" .. src) or 0
    if seq ~= last + 1 or src ~= ipc.sender or #d ~= 1048576 then
      dict:incr("disorder", 1, 0)
    end
    dict:set("last:" .. src, seq)
    dict:incr("handled:" .. src, 1, 0)
    if not dict:get("fast") then ngx.sleep(1) end
  end)
]]

-- run in a sender: floods `dst` until "flood" is cleared
local FLOOD = [[
  local dst = %d
  local me = ngx.worker.pid()
  local dict = T.dict
  ngx.timer.at(0, function()
    local seq, errs = 0, {}
    local filler = string.rep("x", 1048576 - 64)
    local function make(n)
      local head = me .. "|" .. n .. "|"
      return head .. string.rep("-", 64 - #head) .. filler
    end
    local msg = make(1)
    while dict:get("flood") do
      for _ = 1, 4 do
        local ok, err = ipc.send(dst, "slow", msg)
        if ok then
          seq = seq + 1
          dict:set("accepted:" .. me, seq)
          msg = make(seq + 1)
        else
          local class = tostring(err):gsub("%%d+", "N")
          errs[class] = (errs[class] or 0) + 1
          dict:set("errors:" .. me, T.serialize(errs))
        end
      end
      local s = ipc.stats()
      local peak = dict:get("peak_backlog:" .. me) or 0
      if (s.backlog[dst] or 0) > peak then dict:set("peak_backlog:" .. me, s.backlog[dst]) end
      ngx.sleep(0.001)
    end
    dict:set("flood_done:" .. me, true)
  end)
  return true
]]

-- requests each sender must have served under the flood for its p99 to say something
local MIN_SERVED = 10

local function percentile(list, p)
  local t = {}
  for i, v in ipairs(list) do t[i] = v end
  table.sort(t)
  if #t == 0 then return nil end
  return t[math.max(1, math.ceil(#t * p))]
end

describe("a receiver whose handler sleeps 1 s per alert", function()
  local inst

  after_each(function()
    if inst then inst:stop(); inst = nil end
  end)

  local function scenario(opts)
    local ping_port = nginx.free_ports(1)[1]
    inst = nginx.start {
      workers = 3,
      init = opts.configure and ("require('ngx.ipc').configure{ send_backlog = %d, receive_backlog = %d }")
        :format(opts.send_backlog, opts.receive_backlog) or nil,
      init_worker = WORKER,
      -- reuseport: every worker accepts on its own socket, so new
      -- connections are spread over all of them, the senders included
      http = ([[
        server {
          listen 127.0.0.1:%d reuseport;
          location = /ping { content_by_lua_block { ngx.print(ngx.worker.pid()) } }
        }
      ]]):format(ping_port),
    }
    local pids = inst:workers()
    local r, senders = pids[1], { pids[2], pids[3] }
    local is_sender = { [pids[2]] = true, [pids[3]] = true }
    local url = "http://127.0.0.1:" .. ping_port .. "/ping"

    -- latency of /ping by serving worker, for `seconds`, and on until `enough(by)`
    -- holds (a busy machine serves fewer requests in a given time), at most a minute more
    local function measure(seconds, on_tick, enough)
      local by, all = {}, {}
      local deadline = socket.gettime() + seconds
      local last = deadline + 60
      while socket.gettime() < deadline or (enough and not enough(by) and socket.gettime() < last) do
        local t0 = socket.gettime()
        local status, body = inst:request("GET", url, nil, 10)
        local dt = socket.gettime() - t0
        assert.are.equal(200, status, "GET /ping: " .. tostring(body))
        local pid = tonumber(body)
        by[pid] = by[pid] or {}
        table.insert(by[pid], dt)
        all[#all + 1] = dt
        if on_tick then on_tick() end
        socket.sleep(0.004)      -- a few hundred connections per second at most
      end
      return by, all
    end

    local rss0 = traffic.proc(r).rss
    local _, base = measure(2)
    local base_p99 = percentile(base, 0.99)

    inst:run(pids[1], "T.dict:set('flood', true)")
    for _, s in ipairs(senders) do
      inst:run(s, FLOOD:format(r))
    end
    local peak_rss, peak_held = rss0, 0
    local function sample()
      local f = io.open("/proc/" .. r .. "/status")
      local rss = f and tonumber(f:read("*a"):match("VmRSS:%s*(%d+)"))
      if f then f:close() end
      if rss and rss > peak_rss then peak_rss = rss end
    end
    -- under the flood: the caps fill within a few seconds, then sends are refused;
    -- the latency of each sender needs some requests it served
    local by = measure(opts.flood_seconds or 6, sample, function(served)
      for _, s in ipairs(senders) do
        if #(served[s] or {}) < MIN_SERVED then
          return false
        end
      end
      return true
    end)
    local held = inst:run(r, "local s = ipc.stats() return s.receive_ready + s.receive_partial")
    if held > peak_held then peak_held = held end
    inst:run(pids[1], "T.dict:set('flood', nil)")
    for _, s in ipairs(senders) do
      inst:wait_for(function()
        return inst:run(s, ("return T.dict:get('flood_done:%d')"):format(s))
      end, 5, "the flood in " .. s .. " to stop")
    end

    -- figures
    local lines = { ("slow receiver %d; baseline p99 %.1f ms over %d requests"):format(r, base_p99 * 1000, #base) }
    for _, s in ipairs(senders) do
      local l = by[s] or {}
      lines[#lines + 1] = ("  sender %d under the flood: %d requests, p50 %.1f ms, p99 %.1f ms"):format(
        s, #l, (percentile(l, 0.5) or 0) * 1000, (percentile(l, 0.99) or 0) * 1000)
    end
    local rl = by[r] or {}
    lines[#lines + 1] = ("  receiver under the flood: %d requests, p99 %.1f ms; RSS %d -> peak %d kB; held %d bytes"):format(
      #rl, (percentile(rl, 0.99) or 0) * 1000, rss0, peak_rss, held)
    local res = inst:run(pids[1], [[
      local out = {}
      for _, k in ipairs(T.dict:get_keys(0)) do
        local a, pid = k:match("^(%a[%a_]*):(%d+)$")
        if a and (a == "accepted" or a == "errors" or a == "peak_backlog" or a == "handled") then
          out[a .. pid] = T.dict:get(k)
        end
      end
      return out
    ]])
    local accepted, errors = {}, {}
    for _, s in ipairs(senders) do
      accepted[s] = res["accepted" .. s] or 0
      local e = res["errors" .. s]
      errors[s] = e and loadstring("return " .. e)() or {}
      local classes = {}
      for k, v in pairs(errors[s]) do classes[#classes + 1] = v .. " x " .. k end
      lines[#lines + 1] = ("  sender %d: %d alerts of 1 MiB accepted, peak backlog %.1f MiB; errors: %s"):format(
        s, accepted[s], (res["peak_backlog" .. s] or 0) / MiB, table.concat(classes, ", "))
    end

    -- then the handler stops sleeping: everything accepted is handled, in order
    inst:run(pids[1], "T.dict:set('fast', true)")
    inst:wait_for(function()
      for _, s in ipairs(senders) do
        local n = inst:run(pids[1], ("return T.dict:get('handled:%d') or 0"):format(s))
        if n < accepted[s] then return false, ("%d of %d from %d"):format(n, accepted[s], s) end
      end
      return true
    end, 60, "the receiver to handle every accepted alert")
    local st = inst:run(r, [[
      local s = ipc.stats()
      return { disorder = T.dict:get("disorder") or 0, dropped = s.dropped.out_of_memory }
    ]])
    for _, s in ipairs(senders) do
      local n = inst:run(pids[1], ("return T.dict:get('handled:%d') or 0"):format(s))
      lines[#lines + 1] = ("  handled from %d after the flood: %d (accepted %d)"):format(s, n, accepted[s])
      assert.are.equal(accepted[s], n, "alerts from " .. s .. " handled, against accepted")
    end
    io.stderr:write(table.concat(lines, "\n"), "\n")

    -- the checks
    assert.are.equal(0, st.disorder, "alerts handled out of order, damaged or from the wrong sender")
    assert.are.equal(0, st.dropped, "alerts the receiver dropped for lack of memory")
    for _, s in ipairs(senders) do
      local l = by[s]
      assert.is_truthy(l and #l >= MIN_SERVED, "requests served by sender " .. s .. " under the flood: " .. (l and #l or 0))
      -- Speed is make bench's (R1); here only what would show a sender held
      -- back by the slow receiver: a request waiting on its handler's 1 s
      -- sleep.  A loaded machine alone took a p99 of 0.28 s once, so a bound
      -- tighter than the handler's sleep made this spec flaky.
      local p99 = percentile(l, 0.99)
      local limit = 1.0
      assert.is_true(p99 <= limit, ("p99 latency of sender %d under the flood %.1f ms, limit %.1f ms (baseline %.1f ms)")
        :format(s, p99 * 1000, limit * 1000, base_p99 * 1000))
      assert.is_true(accepted[s] >= 2, "alerts accepted from " .. s)
      local total = 0
      for class, n in pairs(errors[s]) do
        total = total + n
        assert.is_truthy(class:match("^send backlog to N is full"), "undocumented error: " .. class)
      end
      assert.is_true(total > 0, "the flood from " .. s .. " never reached send_backlog")
      local sb = opts.send_backlog or 64 * MiB
      assert.is_true((res["peak_backlog" .. s] or 0) <= sb, "backlog of " .. s .. " above send_backlog")
      if opts.send_backlog then
        for class in pairs(errors[s]) do
          assert.is_truthy(class:find("send_backlog is N bytes", 1, true), "the error names the cap: " .. class)
        end
      end
    end
    local rb = opts.receive_backlog or 128 * MiB
    assert.is_true(held <= rb, ("receiver holds %d bytes, receive_backlog %d"):format(held, rb))
    local grown = (peak_rss - rss0) * 1024
    assert.is_true(grown <= rb + 48 * MiB, ("receiver RSS grew by %.1f MiB, receive_backlog is %.1f MiB")
      :format(grown / MiB, rb / MiB))
  end

  it("does not slow the senders down, keeps memory within the default caps, and loses nothing", function()
    scenario {}
  end)

  it("does the same with caps set by ipc.configure", function()
    scenario { configure = true, send_backlog = 4 * MiB, receive_backlog = 8 * MiB, flood_seconds = 4 }
  end)
end)
