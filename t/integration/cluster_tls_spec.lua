-- ipc.cluster over TLS: a redis-server that listens only on a TLS port, with a CA,
-- server and client certificates made for the test with Debian's openssl
-- (t/lib/redis.lua make_certs). nginx verifies through lua_ssl_trusted_certificate.
local nginx = require "nginx"
local redis = require "redis"

local function comment(fmt, ...)
  io.stdout:write("# ", fmt:format(...), "\n")
end

-- init_worker: configure with `opts` (Lua text), count "t" alerts per worker
local function worker_code(opts)
  return ([[
    local ipc = require "ngx.ipc"
    ipc.cluster.configure{ stream = "s", timeout = 5, %s }
    local st = { n = 0, last = {} , bad = 0 }
    T.state.t = st
    ipc.receive("t", function(d)
      local from, i = d:match("^(%%d+):(%%d+)$")
      from, i = tonumber(from), tonumber(i)
      if i ~= (st.last[from] or 0) + 1 then st.bad = st.bad + 1 end
      st.last[from] = i
      st.n = st.n + 1
    end)
  ]]):format(opts)
end

local function start(ca, opts, workers)
  return nginx.start {
    workers = workers or 2,
    http = ("lua_ssl_trusted_certificate %s;\nlua_ssl_verify_depth 2;"):format(ca),
    init_worker = worker_code(opts),
  }
end

-- every worker publishes n alerts; each returns its failures (nil, err) as a list
local function publish_all(inst, n)
  local h = inst:spawn(inst:workers(), ([[
    local me, errs = ngx.worker.pid(), {}
    for i = 1, %d do
      local ok, err = ipc.cluster.broadcast("t", me .. ":" .. i)
      if not ok then errs[#errs + 1] = err end
    end
    return errs
  ]]):format(n))
  local out = {}
  for pid, v in pairs(inst:collect(h, 60)) do
    assert(v.ok, "publisher " .. pid .. " raised: " .. tostring(v.err))
    out[pid] = v.v[1]
  end
  return out
end

local function wait_handled(inst, total)
  return inst:wait_for(function()
    local states = inst:run_all("return T.state.t")
    for pid, st in pairs(states) do
      if st.n < total then
        return false, ("worker %d handled %d of %d"):format(pid, st.n, total)
      end
    end
    return states
  end, 60, total .. " alerts in every worker")
end

-- `attempts` broadcasts from each worker all fail with an error naming `want`,
-- and no worker died meanwhile
local function assert_refused(inst, attempts, want)
  local before = inst:workers()
  local errs = publish_all(inst, attempts)
  for pid, list in pairs(errs) do
    assert.are.equal(attempts, #list, "broadcasts refused at worker " .. pid)
    for _, e in ipairs(list) do
      assert.is_truthy(e:find(want, 1, true), ("expected an error with %q, got %q"):format(want, e))
    end
  end
  assert.are.same(before, inst:workers(), "the workers (none may have crashed)")
  assert.are.same({}, inst:log_lines("assertion failed"), "an assertion escaped the handshake's pcall")
  return errs
end

describe("ipc.cluster over TLS", function()
  local certs, r
  local insts = {}

  setup(function()
    certs = redis.make_certs()
  end)

  teardown(function()
    redis.remove_certs(certs)
  end)

  after_each(function()
    for _, inst in ipairs(insts) do
      inst:stop()
    end
    insts = {}
    if r then
      r:stop()
      r = nil
    end
  end)

  it("publishes and reads over TLS, the server's certificate verified against lua_ssl_trusted_certificate and its name", function()
    r = redis.start { tls = certs }
    for k = 1, 2 do
      insts[k] = start(certs.ca, ("redis = %q, ssl = true, server_name = \"localhost\""):format(r.addr))
    end
    for _, inst in ipairs(insts) do
      local w0 = inst:by_id()[0]
      inst:wait_for(function() return inst:run(w0, "return ipc.stats().cluster.reader") end, 20, "the reader")
    end
    for _, inst in ipairs(insts) do
      for pid, errs in pairs(publish_all(inst, 100)) do
        assert.are.same({}, errs, "broadcasts refused at worker " .. pid)
      end
    end
    for k, inst in ipairs(insts) do
      for pid, st in pairs(wait_handled(inst, 400)) do
        assert.are.equal(400, st.n, "alerts handled by worker " .. pid .. " of instance " .. k)
        assert.are.equal(0, st.bad, "alerts out of turn at worker " .. pid)
      end
    end
    -- Redis listens on its TLS port only: every connection it served was TLS
    local clients = r:cli("CLIENT", "LIST")
    assert.is_truthy(clients:find("cmd=xread", 1, true), "the readers' connections in CLIENT LIST: " .. clients)
    comment("400 alerts over TLS at each of 4 workers; %d connections", select(2, clients:gsub("\n", "")))
  end)

  it("returns nil, err (never raises, never crashes) when verification fails: unknown CA, wrong name", function()
    r = redis.start { tls = certs }
    -- nginx trusts another CA
    insts[1] = start(certs.other_ca, ("redis = %q, ssl = true"):format(r.addr), 1)
    local errs = assert_refused(insts[1], 20, "TLS handshake failed")
    local _, one = next(errs)
    comment("unknown CA: %s", one[1])
    -- the right CA, a name the certificate does not carry
    insts[2] = start(certs.ca, ("redis = %q, ssl = true, server_name = \"wrong.example\""):format(r.addr), 1)
    errs = assert_refused(insts[2], 20, "TLS handshake failed")
    _, one = next(errs)
    comment("wrong name: %s", one[1])
    -- ssl_verify = false takes the same unknown CA
    insts[3] = start(certs.other_ca, ("redis = %q, ssl = true, ssl_verify = false"):format(r.addr), 1)
    for pid, list in pairs(publish_all(insts[3], 5)) do
      assert.are.same({}, list, "ssl_verify = false: broadcasts refused at worker " .. pid)
    end
  end)

  it("presents the client certificate when Redis requires one (tls-auth-clients yes), and fails without it", function()
    r = redis.start { tls = certs, auth_clients = true }
    insts[1] = start(certs.ca, ("redis = %q, ssl = true"):format(r.addr), 1)
    local errs = assert_refused(insts[1], 5, "ngx.ipc: cluster: cannot reach redis at " .. r.addr)
    local _, one = next(errs)
    comment("no client certificate: %s", one[1])
    insts[2] = start(certs.ca, ("redis = %q, ssl = true, ssl_cert = %q, ssl_key = %q"):format(
      r.addr, certs.client_cert, certs.client_key))
    local w0 = insts[2]:by_id()[0]
    insts[2]:wait_for(function() return insts[2]:run(w0, "return ipc.stats().cluster.reader") end, 20, "the reader")
    for pid, list in pairs(publish_all(insts[2], 50)) do
      assert.are.same({}, list, "with a client certificate: broadcasts refused at worker " .. pid)
    end
    for pid, st in pairs(wait_handled(insts[2], 100)) do
      assert.are.equal(100, st.n, "alerts handled by worker " .. pid)
    end
  end)

  it("refuses TLS, Sentinel and wait options that cannot work, at configure", function()
    insts[1] = start(certs.ca, ("redis = %q"):format("127.0.0.1:1"), 1)
    local pid = insts[1]:workers()[1]
    local res = insts[1]:run(pid, ([[
      local out = {}
      out.a = { pcall(ipc.cluster.configure, { redis = "127.0.0.1:1", server_name = "x" }) }
      out.b = { pcall(ipc.cluster.configure, { redis = "127.0.0.1:1", ssl = true, ssl_cert = %q }) }
      out.c = { pcall(ipc.cluster.configure, { redis = "127.0.0.1:1", ssl = true, ssl_cert = "/nonexistent", ssl_key = "/nonexistent" }) }
      out.d = { pcall(ipc.cluster.configure, { redis = "127.0.0.1:1", ssl = "yes" }) }
      out.e = { pcall(ipc.cluster.configure, { sentinels = { "127.0.0.1:1" } }) }
      out.f = { pcall(ipc.cluster.configure, { redis = "127.0.0.1:1", sentinels = { "127.0.0.1:1" }, master_name = "m" }) }
      out.g = { pcall(ipc.cluster.configure, { sentinels = { "nohost" }, master_name = "m" }) }
      out.h = { pcall(ipc.cluster.configure, { redis = "127.0.0.1:1", master_name = "m" }) }
      out.i = { pcall(ipc.cluster.configure, { redis = "127.0.0.1:1", wait = { replicas = 0 } }) }
      out.j = { pcall(ipc.cluster.configure, { redis = "127.0.0.1:1", wait = { replicas = 1, colour = 1 } }) }
      out.k = { pcall(ipc.cluster.configure, { sentinels = {}, master_name = "m" }) }
      return out
    ]]):format(certs.client_cert))
    assert.is_truthy(res.a[2]:find("server_name needs ssl = true", 1, true), res.a[2])
    assert.is_truthy(res.b[2]:find("ssl_cert and ssl_key go together", 1, true), res.b[2])
    assert.is_truthy(res.c[2]:find("ssl_cert: cannot read /nonexistent", 1, true), res.c[2])
    assert.is_truthy(res.d[2]:find("ssl must be a boolean", 1, true), res.d[2])
    assert.is_truthy(res.e[2]:find("master_name is required with sentinels", 1, true), res.e[2])
    assert.is_truthy(res.f[2]:find("redis and sentinels exclude each other", 1, true), res.f[2])
    assert.is_truthy(res.g[2]:find("each of sentinels must be \"host:port\"", 1, true), res.g[2])
    assert.is_truthy(res.h[2]:find("master_name needs sentinels", 1, true), res.h[2])
    assert.is_truthy(res.i[2]:find("wait.replicas must be a whole number, at least 1", 1, true), res.i[2])
    assert.is_truthy(res.j[2]:find("unknown option 'wait.colour'", 1, true), res.j[2])
    assert.is_truthy(res.k[2]:find("sentinels must be a list of \"host:port\"", 1, true), res.k[2])
    for k, v in pairs(res) do
      assert.is_false(v[1], "configure accepted case " .. k)
      assert.is_truthy(v[2]:find("bad argument #1 to 'configure'", 1, true), v[2])
    end
  end)
end)
