-- The canonical example from the README/SPEC (t/canonical.nginx), verbatim, on a
-- real nginx, driven with curl.  Only `listen 80;` becomes `listen 127.0.0.1:<free port>;`; the
-- module is found through LUA_PATH/LUA_CPATH so the http block stays as written.
local nginx = require "nginx"

local CANONICAL = nginx.canonical()

-- the worker pid at the start of an error.log line ("... [alert] 1234#1234: ...")
local function logged_by(line)
  return tonumber(line:match("%[%a+%] (%d+)#"))
end

local function find_lines(inst, pattern)
  local out = {}
  for line in inst:log():gmatch("[^\n]+") do
    line = line:gsub(", context: [^,]*$", "")
    if line:find("[alert]", 1, true) and line:match(pattern) then
      out[#out + 1] = line
    end
  end
  return out
end

describe("the canonical example", function()
  it("is the one in SPEC.md, byte for byte", function()
    local spec = nginx.read_file(nginx.root .. "/../shared/SPEC.md")
    if not spec then
      pending("../shared/SPEC.md is not beside the repository")
      return
    end
    local block = spec:match("```nginx\n(.-)```")
    assert.are.equal(block, CANONICAL)
  end)

  for _, nworkers in ipairs { 2, 4 } do
    describe(("with %d workers"):format(nworkers), function()
      local inst

      after_each(function()
        if inst then inst:stop(); inst = nil end
      end)

      it("delivers /send and /broadcast, logs what each worker heard and the replies, and fails a bogus pid with 500", function()
        inst = nginx.start { workers = nworkers, raw_http = CANONICAL, level = "notice" }
        local pids = inst:workers()
        assert.are.equal(nworkers, #pids, "worker processes")
        -- wait until every worker has its pipe: a send to it succeeds
        for _, p in ipairs(pids) do
          inst:wait_for(function()
            local status, body = inst:curl("/send/" .. p .. "/ready" .. p)
            return status == 200, tostring(status) .. " " .. tostring(body)
          end, 10, "worker " .. p .. " to accept alerts")
        end

        -- /send/<pid>/hi to the last worker
        local dst = pids[#pids]
        local status, body = inst:curl("/send/" .. dst .. "/hi")
        assert.are.same({ 200, "Sent alert to pid " .. dst .. "\n" }, { status, body }, "/send response")
        local says = inst:wait_for(function()
          local l = find_lines(inst, "sender%d+ says hi$")
          return #l >= 1 and l
        end, 5, "'sender<pid> says hi' in error.log")
        assert.are.equal(1, #says, "lines saying hi:\n" .. table.concat(says, "\n"))
        assert.are.equal(dst, logged_by(says[1]), "the worker that logged: " .. says[1])
        local from = tonumber(says[1]:match("sender(%d+) says hi$"))
        assert.is_truthy(nginx.alive(from), "sender " .. tostring(from) .. " is a live worker")
        local replies = inst:wait_for(function()
          local l = find_lines(inst, "%d+ replied hello to you too%. you said hi$")
          return #l >= 1 and l
        end, 5, "the reply to hi in error.log")
        assert.are.equal(1, #replies, "reply lines:\n" .. table.concat(replies, "\n"))
        assert.is_truthy(replies[1]:find(dst .. " replied hello to you too. you said hi", 1, true),
          "reply names the replier " .. dst .. ": " .. replies[1])
        assert.are.equal(from, logged_by(replies[1]), "the reply is logged by the original sender")

        -- /broadcast/hey: every worker says it, and each one's reply comes back
        status = inst:curl("/broadcast/hey")
        assert.are.equal(200, status, "/broadcast status")
        local hey = inst:wait_for(function()
          local l = find_lines(inst, "sender%d+ says hey$")
          return #l >= nworkers and l, #l
        end, 5, nworkers .. " lines 'says hey'")
        local back = inst:wait_for(function()
          local l = find_lines(inst, "%d+ replied hello to you too%. you said hey$")
          return #l >= nworkers and l, #l
        end, 5, nworkers .. " replies to hey")
        require("socket").sleep(0.2)
        hey = find_lines(inst, "sender%d+ says hey$")
        back = find_lines(inst, "%d+ replied hello to you too%. you said hey$")
        assert.are.equal(nworkers, #hey, "'says hey' lines:\n" .. table.concat(hey, "\n"))
        assert.are.equal(nworkers, #back, "reply lines:\n" .. table.concat(back, "\n"))
        local broadcaster = tonumber(hey[1]:match("sender(%d+) says hey$"))
        local heard, replied = {}, {}
        for i = 1, nworkers do
          assert.are.equal(broadcaster, tonumber(hey[i]:match("sender(%d+) says hey$")), hey[i])
          heard[#heard + 1] = logged_by(hey[i])
          assert.are.equal(broadcaster, logged_by(back[i]), "reply logged by the broadcaster: " .. back[i])
          replied[#replied + 1] = tonumber(back[i]:match("(%d+) replied hello"))
        end
        table.sort(heard)
        table.sort(replied)
        assert.are.same(pids, heard, "workers that heard the broadcast")
        assert.are.same(pids, replied, "workers whose replies came back")

        -- a pid that is not a worker: 500 and the error as the body
        for _, bogus in ipairs { inst.master, 99999999 } do
          local s, b = inst:curl("/send/" .. bogus .. "/lost")
          assert.are.equal(500, s, "status for /send/" .. bogus .. " (body " .. tostring(b) .. ")")
          assert.is_truthy(b and #b > 1, "an error message as the body")
        end
        assert.are.same({}, find_lines(inst, " says lost$"), "alerts to bogus pids delivered")
        assert.are.same({}, inst:error_lines())
      end)
    end)
  end
end)
