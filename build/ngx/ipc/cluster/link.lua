local ____exports = {}
local resp = require("ngx.ipc.resp")
local state = require("ngx.ipc.cluster.state")
--- "host:port" of the primary this worker last connected to through the sentinels.
local primary = ""
--- The primary's address according to one sentinel.
local function ask(sentinel, name, connect_ms, io_ms)
    local sock, err = resp.connect(sentinel, connect_ms, io_ms)
    if sock == nil then
        return nil, (("sentinel " .. resp.label(sentinel)) .. ": ") .. err
    end
    local a, n = resp.args("SENTINEL", "get-master-addr-by-name", name)
    local r, rerr = resp.call(sock, a, n)
    sock:close()
    if r == nil then
        return nil, (("sentinel " .. resp.label(sentinel)) .. ": ") .. rerr
    end
    if type(r) ~= "table" then
        return nil, ((("sentinel " .. resp.label(sentinel)) .. " knows no primary named \"") .. name) .. "\""
    end
    local t = r
    local port = tonumber(t[2])
    if type(t[1]) ~= "string" or port == nil then
        return nil, ("sentinel " .. resp.label(sentinel)) .. ": bad reply to get-master-addr-by-name"
    end
    return t[1], port
end
--- nil, err unless the server behind sock says it is a primary (ROLE).
local function check_role(sock, where)
    local a, n = resp.args("ROLE")
    local r, err = resp.call(sock, a, n)
    if r == nil then
        return nil, (where .. ": ") .. err
    end
    local ____temp_0
    if type(r) == "table" then
        ____temp_0 = r[1]
    else
        ____temp_0 = r
    end
    local role = ____temp_0
    if role ~= "master" then
        return nil, ((where .. " is a ") .. tostring(role)) .. ", not the primary (a failover is under way)"
    end
    return true
end
local function at(base, host, port)
    return {
        host = host,
        port = port,
        username = base.username,
        password = base.password,
        db = base.db,
        pool = (((base.pool .. ":") .. host) .. ":") .. tostring(port),
        pool_size = base.pool_size,
        tls = base.tls
    }
end
--- A connection to the current primary; `base` gives the login, TLS and db (and, without
-- sentinels, the address). With sentinels, each is asked in turn until one names a
-- server that answers ROLE as the primary.
function ____exports.connect(s, base, connect_ms, io_ms)
    if s.sentinels == nil then
        return resp.connect(base, connect_ms, io_ms)
    end
    local last = "no sentinel answered"
    for ____, sentinel in ipairs(s.sentinels) do
        local host, port = ask(sentinel, s.master_name, connect_ms, io_ms)
        if host == nil then
            last = port
        else
            local ep = at(base, host, port)
            local where = (host .. ":") .. tostring(port)
            local sock, err = resp.connect(ep, connect_ms, io_ms)
            if sock == nil then
                last = (where .. ": ") .. err
            else
                local ok, rerr = check_role(sock, where)
                if ok ~= nil then
                    if primary ~= where then
                        if primary ~= "" then
                            local ____state_counters_1, ____failovers_2 = state.counters, "failovers"
                            ____state_counters_1[____failovers_2] = ____state_counters_1[____failovers_2] + 1
                            ngx.log(
                                ngx.NOTICE,
                                "ngx.ipc: cluster: the primary of ",
                                s.master_name,
                                " moved from ",
                                primary,
                                " to ",
                                where
                            )
                        end
                        primary = where
                    end
                    return sock
                end
                sock:close()
                last = rerr
            end
        end
    end
    return nil, (("no primary for \"" .. s.master_name) .. "\" from the sentinels: ") .. last
end
--- Where connect() would go, for messages: "host:port", or the master name with sentinels.
function ____exports.label(s, base)
    if s.sentinels == nil then
        return resp.label(base)
    end
    return primary == "" and ("\"" .. s.master_name) .. "\"" or ((("\"" .. s.master_name) .. "\" (") .. primary) .. ")"
end
return ____exports
