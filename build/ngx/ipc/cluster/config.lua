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
    "keepalive",
    "ssl",
    "ssl_verify",
    "server_name",
    "ssl_cert",
    "ssl_key",
    "sentinels",
    "master_name",
    "sentinel_username",
    "sentinel_password",
    "wait"
}) do
    KNOWN[k] = true
end
local function parse_address(key, redis)
    if string.sub(redis, 1, 5) == "unix:" then
        return redis, nil
    end
    local host, port = string.match(redis, "^%[?([^%[%]]+)%]?:(%d+)$")
    local p = tonumber(port)
    if host == nil or p == nil or p < 1 or p > 65535 then
        option_error(((key .. " must be \"host:port\" or \"unix:/path\", got \"") .. redis) .. "\"")
    end
    return host, p
end
local function opt_boolean(o, key, def)
    local v = o[key]
    if v == nil then
        return def
    end
    if type(v) ~= "boolean" then
        option_error(key .. " must be a boolean")
    end
    return v
end
local function read_pem(key, path)
    local f, err = io.open(path, "r")
    if f == nil then
        option_error((((key .. ": cannot read ") .. path) .. ": ") .. err)
    end
    local pem = f:read("*a")
    f:close()
    if pem == nil or (string.find(pem, "-----BEGIN", 1, true)) == nil then
        option_error(((key .. ": ") .. path) .. " holds no PEM data")
    end
    return pem
end
--- A host name (not an address): the default server_name, checked against the certificate.
local function is_name(host)
    return (string.find(host, ":", 1, true)) == nil and (string.match(host, "^[%d%.]+$")) == nil and string.sub(host, 1, 5) ~= "unix:"
end
local function tls_of(o, host)
    local ssl = opt_boolean(o, "ssl", false)
    local cert = opt_string(o, "ssl_cert", nil)
    local key = opt_string(o, "ssl_key", nil)
    if not ssl then
        for ____, k in ipairs({"ssl_verify", "server_name", "ssl_cert", "ssl_key"}) do
            if o[k] ~= nil then
                option_error(k .. " needs ssl = true")
            end
        end
        return nil
    end
    if cert == nil ~= (key == nil) then
        option_error("ssl_cert and ssl_key go together")
    end
    local ____opt_boolean_result_2 = opt_boolean(o, "ssl_verify", true)
    local ____opt_string_result_3 = opt_string(
        o,
        "server_name",
        host ~= nil and is_name(host) and host or nil
    )
    local ____temp_0
    if cert == nil then
        ____temp_0 = nil
    else
        ____temp_0 = read_pem("ssl_cert", cert)
    end
    local ____temp_1
    if key == nil then
        ____temp_1 = nil
    else
        ____temp_1 = read_pem("ssl_key", key)
    end
    return {verify = ____opt_boolean_result_2, server_name = ____opt_string_result_3, cert_pem = ____temp_0, key_pem = ____temp_1}
end
--- `sentinels`: a non-empty list of "host:port", each an endpoint with the sentinel's login.
local function sentinels_of(o, tls)
    local v = o.sentinels
    if v == nil then
        for ____, k in ipairs({"master_name", "sentinel_username", "sentinel_password"}) do
            if o[k] ~= nil then
                option_error(k .. " needs sentinels")
            end
        end
        return nil
    end
    local list = v
    if type(v) ~= "table" or #list == 0 then
        option_error("sentinels must be a list of \"host:port\"")
    end
    if o.redis ~= nil then
        option_error("redis and sentinels exclude each other: with sentinels, they name the primary")
    end
    if opt_string(o, "master_name", nil) == nil then
        option_error("master_name is required with sentinels")
    end
    local username = opt_string(o, "sentinel_username", nil)
    local password = opt_string(o, "sentinel_password", nil)
    local out = {}
    do
        local i = 1
        while i <= #list do
            local a = list[i]
            if type(a) ~= "string" then
                option_error("sentinels must be a list of \"host:port\"")
            end
            local host, port = parse_address("each of sentinels", a)
            out[#out + 1] = {
                host = host,
                port = port,
                username = username,
                password = password,
                db = 0,
                pool = "ngx.ipc.sentinel:" .. a,
                pool_size = 1,
                tls = tls
            }
            i = i + 1
        end
    end
    return out
end
local function wait_of(o)
    local v = o.wait
    if v == nil then
        return 0, 0
    end
    if type(v) ~= "table" then
        option_error("wait must be a table { replicas = n, timeout = ms }")
    end
    local w = v
    for k in pairs(w) do
        if k ~= "replicas" and k ~= "timeout" then
            option_error(("unknown option 'wait." .. tostring(k)) .. "'")
        end
    end
    local replicas = w.replicas
    local ____w_timeout_4 = w.timeout
    if ____w_timeout_4 == nil then
        ____w_timeout_4 = 100
    end
    local ms = ____w_timeout_4
    if type(replicas) ~= "number" or replicas < 1 or replicas % 1 ~= 0 then
        option_error("wait.replicas must be a whole number, at least 1")
    end
    if type(ms) ~= "number" or ms < 1 or ms % 1 ~= 0 then
        option_error("wait.timeout must be a whole number of milliseconds, at least 1")
    end
    return replicas, ms
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
    if redis == nil and o.sentinels == nil then
        option_error("redis (\"host:port\") is required")
    end
    local host = ""
    local port = nil
    if redis ~= nil then
        host, port = parse_address("redis", redis)
    end
    local ____tls_of_6 = tls_of
    local ____temp_5
    if redis == nil then
        ____temp_5 = nil
    else
        ____temp_5 = host
    end
    local tls = ____tls_of_6(o, ____temp_5)
    local sentinels = sentinels_of(o, tls)
    local wait_replicas, wait_ms = wait_of(o)
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
        pool = ((("ngx.ipc.cluster:" .. (redis or "")) .. ":") .. tostring(db)) .. (tls == nil and "" or ":tls"),
        pool_size = opt_number(
            o,
            "pool_size",
            16,
            1,
            true
        ),
        tls = tls
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
            pool_size = 1,
            tls = tls
        },
        sentinels = sentinels,
        master_name = o.master_name or "",
        wait_replicas = wait_replicas,
        wait_ms = wait_ms,
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
