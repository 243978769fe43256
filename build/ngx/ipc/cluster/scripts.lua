local ____exports = {}
local resp = require("ngx.ipc.resp")
--- Position keys outlive their instance by this long (seconds), renewed by the reader.
local POS_TTL = 604800
--- The instance's start position, made once: after the last entry of the stream.
local FLOOR_BODY = ("\nlocal function floor(stream, seq_key, pos_key)\n  local pos = redis.call('GET', pos_key)\n  if pos then return pos, 0 end\n  local seq = tonumber(redis.call('GET', seq_key) or '0')\n  local id = '0-0'\n  local e = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]\n  if e then\n    id = e[1]\n    for i = 1, #e[2], 2 do\n      if e[2][i] == 's' then seq = tonumber(e[2][i + 1]) end\n    end\n  end\n  pos = id .. ' ' .. seq\n  redis.call('SET', pos_key, pos, 'EX', " .. tostring(POS_TTL)) .. ")\n  return pos, 1\nend\n"
local function script(body)
    return {body = body, sha = ""}
end
--- KEYS: stream, seq, pos. Returns the position.
____exports.FLOOR = script(FLOOR_BODY .. "\nreturn (floor(KEYS[1], KEYS[2], KEYS[3]))")
--- KEYS: stream, seq. ARGV: maxlen, instance, pid, worker id, floor, then name and data
-- of each alert (a publisher's batch). Returns the last sequence number given out.
-- floor is the highest number the caller has seen given out: after a failover that
-- lost the last entries (and the counter's last increments), numbering goes on above
-- it, so readers see the loss as a gap.
____exports.PUBLISH = script("\nlocal n = (#ARGV - 5) / 2\nlocal last = redis.call('INCRBY', KEYS[2], n)\nlocal floor = tonumber(ARGV[5])\nif last - n < floor then\n  last = floor + n\n  redis.call('SET', KEYS[2], last)\nend\nfor k = 1, n do\n  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 's', last - n + k,\n    'i', ARGV[2], 'p', ARGV[3], 'w', ARGV[4], 'n', ARGV[4 + 2 * k], 'd', ARGV[5 + 2 * k])\nend\nreturn last")
--- KEYS: seq. ARGV: floor. Raises the counter to floor (a reader's last number, after a reconnect).
____exports.RAISE = script("\nif tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then\n  redis.call('SET', KEYS[1], ARGV[1])\nend\nreturn 1")
--- KEYS: lease, pos, stream, seq. ARGV: token, lease ms, the token of a holder known
-- to be dead (or ""). Returns {1, position, 1 if the position was made now} or {0, holder}.
____exports.ACQUIRE = script(FLOOR_BODY .. "\nlocal cur = redis.call('GET', KEYS[1])\nif cur and cur ~= ARGV[1] and cur ~= ARGV[3] then return {0, cur} end\nredis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\nlocal pos, fresh = floor(KEYS[3], KEYS[4], KEYS[2])\nreturn {1, pos, fresh}")
--- KEYS: lease, pos. ARGV: token, lease ms, position, 1 to release. Saves the position
-- and renews (or releases) the lease, only while the token holds it: 1, else 0.
____exports.COMMIT = script(("\nif redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\nredis.call('SET', KEYS[2], ARGV[3], 'EX', " .. tostring(POS_TTL)) .. ")\nif ARGV[4] == '1' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\nreturn 1")
local function sha_of(sc)
    if sc.sha == "" then
        sc.sha = (string.gsub(
            ngx.sha1_bin(sc.body),
            ".",
            function(c) return string.format(
                "%02x",
                string.byte(c)
            ) end
        ))
    end
    return sc.sha
end
--- args[1] and args[2] are left for EVALSHA sha / EVAL body.
function ____exports.script_args(sc, args, evalsha)
    args[1] = evalsha and "EVALSHA" or "EVAL"
    args[2] = evalsha and sha_of(sc) or sc.body
end
--- SCRIPT LOAD: for a script pipelined with EVALSHA, where NOSCRIPT could not fall back to EVAL.
function ____exports.load(sock, sc)
    local a, n = resp.args("SCRIPT", "LOAD", sc.body)
    return resp.call(sock, a, n)
end
--- Runs a script; falls back to EVAL (which loads it) when Redis answers NOSCRIPT.
function ____exports.run(sock, sc, args, count)
    ____exports.script_args(sc, args, true)
    local v, err, usable = resp.call(sock, args, count)
    if v ~= nil then
        return v
    end
    if usable and string.sub(err, 1, 8) == "NOSCRIPT" then
        ____exports.script_args(sc, args, false)
        return resp.call(sock, args, count)
    end
    return nil, err, usable
end
--- A script's arguments (numkeys, keys, argv) from index 3, and their count.
function ____exports.args_of(...)
    local list = {...}
    local t = {}
    t[1] = ""
    t[2] = ""
    local n = 2
    for ____, a in ipairs(list) do
        n = n + 1
        t[n] = a
    end
    return t, n
end
return ____exports
