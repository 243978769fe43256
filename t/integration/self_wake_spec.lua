-- An alert a worker sends to itself is handled in the next turn of its event
-- loop, whatever ran the send: a zero-delay timer, or code that ngx.sleep(0)
-- resumed.  OpenResty runs both from its delayed posted-event queue, after the
-- posted events and without shortening the next epoll_wait for them; there the
-- receive loop's wake-up used to wait for some other event (the loop's 1 s wait
-- at worst).  On Debian's nginx both are plain events and the spec shows the
-- same order.
--
-- No harness here (raw_http): its control timers would wake the worker and hide
-- the wait.  Nothing else happens in the worker, so a check timer armed 0.5 s
-- after the sends runs before the handlers only if the wake-up waited for it.
local nginx = require "nginx"

local HTTP = [[
http {
  init_worker_by_lua_block {
    local ipc = require "ngx.ipc"
    local got = {}
    ipc.receive("self", function(data) got[#got + 1] = data end)
    local function check()
      ngx.log(ngx.ALERT, "self-wake: handled before the check: [", table.concat(got, ","), "]")
    end
    -- from plain timers, once the start-up's own zero-delay timers are done
    assert(ngx.timer.at(0.1, function()
      assert(ngx.timer.at(0, function()
        assert(ipc.broadcast("self", "timer0"))
      end))
    end))
    assert(ngx.timer.at(0.2, function()
      ngx.sleep(0)
      assert(ipc.send(ngx.worker.pid(), "self", "sleep0"))
    end))
    assert(ngx.timer.at(0.7, check))
  }
  server {
    listen 80;
  }
}
]]

describe("an alert to oneself", function()
  local inst

  after_each(function()
    if inst then inst:stop(); inst = nil end
  end)

  it("from a zero-delay timer or after ngx.sleep(0) is handled at once, not at the next unrelated event", function()
    inst = nginx.start { workers = 1, raw_http = HTTP, level = "notice" }
    local line = inst:wait_for(function()
      return inst:log():match("self%-wake: handled before the check: %[[^\n]*%]")
    end, 10, "the check timer's log line")
    local list = line:match("%[(.*)%]")
    local seen = {}
    for v in list:gmatch("[^,]+") do seen[v] = true end
    assert.is_true(seen.timer0 and seen.sleep0 or false,
      "both alerts handled before a timer 0.5 s after the sends; handled by then: [" .. list .. "]")
  end)
end)
