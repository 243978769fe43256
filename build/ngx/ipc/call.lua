local ____exports = {}
local semaphore = require("ngx.semaphore")
local dispatch = require("ngx.ipc.dispatch")
local shim = require("ngx.ipc.shim")
local REQUEST = "\0call"
local ANSWER = "\0answer"
local ANSWER_OK = "1"
local ANSWER_ERR = "0"
local pending = {}
--- This VM's consumer number, and the name its answers come back under.
local consumer = 0
local answer_name = ANSWER
local spare = {}
local last_id = 0
____exports.counters = {sent = 0, answered = 0, timeouts = 0, late = 0}
local function take_sema()
    local sema = table.remove(spare)
    if sema ~= nil then
        return sema
    end
    return semaphore.new(0)
end
--- Sends `name`/`data` as a call with `send` (to a pid or a worker id) and waits up
-- to `timeout` seconds for the answer.
function ____exports.call(send, to, name, data, timeout)
    local sema, serr = take_sema()
    if sema == nil then
        return nil, "ngx.ipc: cannot create a semaphore: " .. serr
    end
    last_id = last_id + 1
    local id = last_id
    local ok, err = send(
        to,
        REQUEST,
        ((((((tostring(id) .. " ") .. tostring(consumer)) .. " ") .. tostring(#name)) .. " ") .. name) .. data
    )
    if ok == nil then
        spare[#spare + 1] = sema
        return nil, err
    end
    local ____exports_counters_0, ____sent_1 = ____exports.counters, "sent"
    ____exports_counters_0[____sent_1] = ____exports_counters_0[____sent_1] + 1
    local p = {sema = sema}
    pending[id] = p
    local woke = sema:wait(timeout)
    pending[id] = nil
    spare[#spare + 1] = sema
    if woke ~= true then
        local ____exports_counters_2, ____timeouts_3 = ____exports.counters, "timeouts"
        ____exports_counters_2[____timeouts_3] = ____exports_counters_2[____timeouts_3] + 1
        return nil, "timeout"
    end
    local ____exports_counters_4, ____answered_5 = ____exports.counters, "answered"
    ____exports_counters_4[____answered_5] = ____exports_counters_4[____answered_5] + 1
    if p.value ~= nil then
        return p.value
    end
    return nil, p.err
end
--- What a handler's results answer: a string, or nil and a message.
local function answer_of(name, status, a, b)
    if status == "none" then
        return ANSWER_ERR, (("no handler for alert \"" .. name) .. "\" in worker ") .. tostring(ngx.worker.pid())
    end
    if status == "error" then
        return ANSWER_ERR, tostring(a)
    end
    local t = type(a)
    if t == "string" or t == "number" then
        return ANSWER_OK, tostring(a)
    end
    if a == nil then
        return ANSWER_ERR, b == nil and ("the handler for alert \"" .. name) .. "\" returned no answer" or tostring(b)
    end
    ngx.log(ngx.ERR, ((("ngx.ipc: the handler for alert \"" .. name) .. "\" answered a call with a ") .. t) .. " (string expected)")
    return ANSWER_ERR, ((("the handler for alert \"" .. name) .. "\" answered with a ") .. t) .. " (string expected)"
end
--- Whether this VM answers a call to `name`: with several VMs in the process,
-- the first with a handler for it, or, when none has one, the first that takes
-- calls (it answers that there is no handler).
local function answers(name)
    if shim.consumers() < 2 then
        return true
    end
    local first = shim.wanted_by(name)
    return first == consumer or first < 0 and shim.wanted_by(REQUEST) == consumer
end
local function on_request(from, envelope)
    local id, caller, len, at = string.match(envelope, "^(%d+) (%d+) (%d+) ()")
    if id == nil then
        return
    end
    local start = tonumber(at)
    local stop = start + tonumber(len)
    local name = string.sub(envelope, start, stop - 1)
    if not answers(name) then
        return
    end
    local status, a, b = dispatch.invoke(
        name,
        string.sub(envelope, stop),
        from,
        nil,
        nil,
        false
    )
    local kind, text = answer_of(name, status, a, b)
    local back = caller == "0" and ANSWER or ANSWER .. caller
    local ok, err = shim.send(from, back, ((id .. " ") .. kind) .. text)
    if ok == nil then
        ngx.log(
            ngx.ERR,
            (((("ngx.ipc: cannot answer the call \"" .. name) .. "\" of worker ") .. tostring(from)) .. ": ") .. err
        )
    end
end
local function on_answer(_from, envelope)
    local id, kind, at = string.match(envelope, "^(%d+) ([01])()")
    local ____temp_6
    if id == nil then
        ____temp_6 = nil
    else
        ____temp_6 = pending[tonumber(id)]
    end
    local p = ____temp_6
    if p == nil then
        local ____exports_counters_7, ____late_8 = ____exports.counters, "late"
        ____exports_counters_7[____late_8] = ____exports_counters_7[____late_8] + 1
        return
    end
    local text = string.sub(
        envelope,
        tonumber(at)
    )
    if kind == ANSWER_OK then
        p.value = text
    else
        p.err = text
    end
    p.sema:post(1)
end
dispatch.reserve(REQUEST, on_request)
dispatch.reserve(ANSWER, on_answer)
--- This VM joined as consumer `c`: answers to its calls come under a name of its own.
function ____exports.joined(c)
    if c == consumer then
        return
    end
    dispatch.reserve(answer_name, nil)
    consumer = c
    answer_name = c == 0 and ANSWER or ANSWER .. tostring(c)
    dispatch.reserve(answer_name, on_answer)
end
return ____exports
