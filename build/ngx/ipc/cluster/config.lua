local ____exports = {}
--- Entries per XREAD: at most BATCH, and few enough that a reply of entries of
-- max_data bytes stays within BATCH_BYTES (it is held whole while relayed).
local BATCH = 512
local BATCH_BYTES = 33554432
local function option_error(msg)
    error(("bad argument #1 to 'configure' (" .. msg) .. ")", 4)
end
local function opt_string(o, key, def)
    local v = o[key]
    if v == nil then
        return def
    end
    if type(v) ~= "string" or v == "" then
        option_error(key .. " must be a non-empty string")
    end
    return v
end
local function opt_number(o, key, def, min, whole)
    local v = o[key]
    if v == nil then
        return def
    end
    if type(v) ~= "number" or v < min or whole and v % 1 ~= 0 then
        option_error((((key .. " must be a ") .. (whole and "whole " or "")) .. "number, at least ") .. tostring(min))
    end
    return v
end
local KNOWN = {}
for ____, k in ipairs({
    "redis",
    "username",
    "password",
    "db",
    "stream",
    "maxlen",
    "max_data",
    "timeout",
    "pool_size",
    "keepalive"
}) do
    KNOWN[k] = true
end
local function parse_address(redis)
    if string.sub(redis, 1, 5) == "unix:" then
        return redis, nil
    end
    local host, port = string.match(redis, "^%[?([^%[%]]+)%]?:(%d+)$")
    local p = tonumber(port)
    if host == nil or p == nil or p < 1 or p > 65535 then
        option_error(("redis must be \"host:port\" or \"unix:/path\", got \"" .. redis) .. "\"")
    end
    return host, p
end
function ____exports.check_options(options)
    if type(options) ~= "table" then
        error(
            ("bad argument #1 to 'configure' (table expected, got " .. type(options)) .. ")",
            3
        )
    end
    local o = options
    for key in pairs(o) do
        if not KNOWN[key] then
            option_error(("unknown option '" .. tostring(key)) .. "'")
        end
    end
    local redis = opt_string(o, "redis", nil)
    if redis == nil then
        option_error("redis (\"host:port\") is required")
    end
    local host, port = parse_address(redis)
    local db = opt_number(
        o,
        "db",
        0,
        0,
        true
    )
    local stream = opt_string(o, "stream", "ngx.ipc")
    local max_data = opt_number(
        o,
        "max_data",
        1048576,
        0,
        true
    )
    local endpoint = {
        host = host,
        port = port,
        username = opt_string(o, "username", nil),
        password = opt_string(o, "password", nil),
        db = db,
        pool = (("ngx.ipc.cluster:" .. redis) .. ":") .. tostring(db),
        pool_size = opt_number(
            o,
            "pool_size",
            16,
            1,
            true
        )
    }
    return {
        endpoint = endpoint,
        reader_endpoint = {
            host = host,
            port = port,
            username = endpoint.username,
            password = endpoint.password,
            db = db,
            pool = endpoint.pool .. ":reader",
            pool_size = 1
        },
        stream = stream,
        seq_key = stream .. ":seq",
        maxlen = tostring(opt_number(
            o,
            "maxlen",
            100000,
            1,
            true
        )),
        max_data = max_data,
        batch = tostring(math.max(
            1,
            math.min(
                BATCH,
                math.floor(BATCH_BYTES / (max_data + 512))
            )
        )),
        timeout_ms = math.ceil(opt_number(
            o,
            "timeout",
            1,
            0.001,
            false
        ) * 1000),
        keepalive_ms = math.ceil(opt_number(
            o,
            "keepalive",
            60,
            0,
            false
        ) * 1000)
    }
end
return ____exports
