local ____exports = {}
local more, line_of, bulk_of, number_in, line_end, parse, aggregate, CHUNK
function more(sock, p)
    local chunk, err = sock:receiveany(CHUNK)
    if chunk == nil then
        return err
    end
    p.buf = p.pos > #p.buf and chunk or string.sub(p.buf, p.pos) .. chunk
    p.pos = 1
    return nil
end
function line_of(sock, p)
    local e, err = line_end(sock, p)
    if e == nil then
        return nil, err
    end
    local l = string.sub(p.buf, p.pos, e - 2)
    p.pos = e + 1
    return l, nil
end
function bulk_of(sock, p, size)
    local have = #p.buf - p.pos + 1
    if have >= size + 2 then
        local d = string.sub(p.buf, p.pos, p.pos + size - 1)
        p.pos = p.pos + (size + 2)
        return d, nil
    end
    local rest, err = sock:receive(size + 2 - have)
    if rest == nil then
        return nil, err
    end
    local d = have >= size and string.sub(p.buf, p.pos, p.pos + size - 1) or string.sub(p.buf, p.pos) .. string.sub(rest, 1, size - have)
    p.buf = ""
    p.pos = 1
    return d, nil
end
function number_in(buf, from, to)
    local sign = 1
    local i = from
    if string.byte(buf, i) == 45 then
        sign = -1
        i = i + 1
    end
    if i >= to then
        return nil
    end
    local n = 0
    do
        while i < to do
            local c = string.byte(buf, i) - 48
            if c < 0 or c > 9 then
                return nil
            end
            n = n * 10 + c
            i = i + 1
        end
    end
    return sign * n
end
function line_end(sock, p)
    while true do
        local ____, e = string.find(p.buf, "\r\n", p.pos, true)
        if e ~= nil then
            return e, nil
        end
        local err = more(sock, p)
        if err ~= nil then
            return nil, err
        end
    end
end
function parse(sock, p)
    local e, lerr = line_end(sock, p)
    if e == nil then
        return nil, lerr, false
    end
    local head = string.byte(p.buf, p.pos)
    if head == 36 or head == 42 then
        local count = number_in(p.buf, p.pos + 1, e - 1)
        if count ~= nil then
            p.pos = e + 1
            return aggregate(sock, p, head, count)
        end
    end
    local line, err = line_of(sock, p)
    if line == nil then
        return nil, err, false
    end
    local kind = string.byte(line, 1)
    if kind == 43 then
        return string.sub(line, 2)
    end
    if kind == 45 then
        return nil, string.sub(line, 2), true
    end
    local n = tonumber(string.sub(line, 2))
    if n == nil then
        return nil, "bad reply from redis: " .. string.sub(line, 1, 80), false
    end
    if kind == 58 then
        return n
    end
    if kind == 36 or kind == 42 then
        return aggregate(sock, p, kind, n)
    end
    return nil, "bad reply from redis: " .. string.sub(line, 1, 80), false
end
function aggregate(sock, p, kind, n)
    if kind == 36 then
        if n < 0 then
            return false
        end
        local d, derr = bulk_of(sock, p, n)
        if d == nil then
            return nil, derr, false
        end
        return d
    end
    if kind == 42 then
        if n < 0 then
            return false
        end
        local list = {}
        local first_error = nil
        do
            local i = 1
            while i <= n do
                local v, verr, usable = parse(sock, p)
                if v == nil then
                    if not usable then
                        return nil, verr, false
                    end
                    first_error = first_error or verr
                    list[i] = false
                else
                    list[i] = v
                end
                i = i + 1
            end
        end
        if first_error ~= nil then
            return nil, first_error, true
        end
        return list
    end
    return nil, "bad reply from redis", false
end
local CRLF = "\r\n"
--- Appends one request (`*N`, then `$len` and each argument) to `out` from index `n`.
function ____exports.encode(out, n, args, count)
    out[n] = ("*" .. tostring(count)) .. "\r\n"
    n = n + 1
    do
        local i = 1
        while i <= count do
            local a = args[i]
            out[n] = ("$" .. tostring(#a)) .. "\r\n"
            out[n + 1] = a
            out[n + 2] = CRLF
            n = n + 3
            i = i + 1
        end
    end
    return n
end
--- Per socket object, forgotten with it.
local pending = setmetatable({}, {__mode = "k"})
CHUNK = 65536
function ____exports.cursor(sock)
    local p = pending[sock]
    if p == nil then
        p = {buf = "", pos = 1}
        pending[sock] = p
    end
    return p
end
--- The next element's header, for a reply read element by element (no table per
-- element): its kind (36 `$`, 42 `*`, 58 `:`) and number (a length, a count, -1 for
-- null, or the integer). nil, message, usable: an error reply (usable), or I/O
-- failed or the reply is not RESP2 (not usable).
function ____exports.head(sock, p)
    local e, lerr = line_end(sock, p)
    if e == nil then
        return nil, lerr, false
    end
    local kind = string.byte(p.buf, p.pos)
    local n = number_in(p.buf, p.pos + 1, e - 1)
    if kind == 45 then
        local msg = string.sub(p.buf, p.pos + 1, e - 2)
        p.pos = e + 1
        return nil, msg, true
    end
    if kind ~= 36 and kind ~= 42 and kind ~= 58 or n == nil then
        return nil, "bad reply from redis: " .. string.sub(
            p.buf,
            p.pos,
            math.min(e - 2, p.pos + 80)
        ), false
    end
    p.pos = e + 1
    return kind, n
end
--- The body of a bulk string of `size` bytes whose header head() read.
function ____exports.body(sock, p, size)
    return bulk_of(sock, p, size)
end
--- The body of a bulk string of `size` bytes read as a decimal integer, in place when
-- it is buffered (no string); undefined, undefined when it is not one; undefined, err
-- when I/O failed.
function ____exports.body_number(sock, p, size)
    if #p.buf - p.pos + 1 >= size + 2 then
        local ____temp_0
        if size > 0 then
            ____temp_0 = number_in(p.buf, p.pos, p.pos + size)
        else
            ____temp_0 = nil
        end
        local v = ____temp_0
        p.pos = p.pos + (size + 2)
        return v, nil
    end
    local d, err = bulk_of(sock, p, size)
    if d == nil then
        return nil, err
    end
    return tonumber(d), nil
end
--- The byte of a one-byte bulk string (a stream field's name here), in place; 0 for any other size.
function ____exports.body_byte(sock, p, size)
    if size == 1 and #p.buf - p.pos + 1 >= 3 then
        local b = string.byte(p.buf, p.pos)
        p.pos = p.pos + 3
        return b, nil
    end
    local d, err = bulk_of(sock, p, size)
    if d == nil then
        return nil, err
    end
    return size == 1 and string.byte(d) or 0, nil
end
--- Reads one reply; arrays are read whole even when an element is an error.
function ____exports.read(sock)
    return parse(
        sock,
        ____exports.cursor(sock)
    )
end
--- A request's arguments as call() and encode() take them, and their count.
function ____exports.args(...)
    local list = {...}
    local t = {}
    do
        local i = 0
        while i < #list do
            t[i + 1] = list[i + 1]
            i = i + 1
        end
    end
    return t, #list
end
--- Sends one request and reads its reply.
function ____exports.call(sock, args, count)
    local out = {}
    ____exports.encode(out, 1, args, count)
    local sent, err = sock:send(out)
    if sent == nil then
        return nil, err, false
    end
    return ____exports.read(sock)
end
local function login(sock, ep)
    local out = {}
    local n = 1
    local replies = 0
    if ep.password ~= nil then
        local args = {}
        args[1] = "AUTH"
        local count = 1
        if ep.username ~= nil then
            count = count + 1
            args[count] = ep.username
        end
        args[count + 1] = ep.password
        n = ____exports.encode(out, n, args, count + 1)
        replies = replies + 1
    end
    if ep.db ~= 0 then
        local args = {}
        args[1] = "SELECT"
        args[2] = tostring(ep.db)
        n = ____exports.encode(out, n, args, 2)
        replies = replies + 1
    end
    if replies == 0 then
        return true
    end
    local sent, err = sock:send(out)
    if sent == nil then
        return nil, err
    end
    local failed = nil
    do
        local i = 1
        while i <= replies do
            local v, rerr = ____exports.read(sock)
            if v == nil then
                failed = failed or rerr
            end
            i = i + 1
        end
    end
    if failed ~= nil then
        return nil, failed
    end
    return true
end
--- Parses the client certificate and key once per worker; nil, err when they cannot be used.
local function client_cert(tls, sock)
    if sock.setclientcert == nil then
        return nil, "a client certificate needs tcpsock:setclientcert (lua-resty-core 0.1.18 or later), which this nginx lacks"
    end
    if tls.cert == nil then
        local ssl = require("ngx.ssl")
        local cert, cerr = ssl.parse_pem_cert(tls.cert_pem)
        if cert == nil then
            return nil, "bad client certificate (ssl_cert): " .. cerr
        end
        local key, kerr = ssl.parse_pem_priv_key(tls.key_pem)
        if key == nil then
            return nil, "bad client key (ssl_key): " .. kerr
        end
        tls.cert = cert
        tls.key = key
    end
    local ok, err = sock:setclientcert(tls.cert, tls.key)
    if ok == nil then
        return nil, err
    end
    return true
end
local function handshake(sock, tls)
    if tls.cert_pem ~= nil then
        local ok, err = client_cert(tls, sock)
        if ok == nil then
            return nil, err
        end
    end
    local called, ok, err = pcall(
        sock.sslhandshake,
        sock,
        false,
        tls.server_name,
        tls.verify
    )
    if not called then
        return nil, "TLS handshake failed: " .. tostring(ok)
    end
    if ok == nil then
        return nil, "TLS handshake failed: " .. tostring(err)
    end
    local ping, n = ____exports.args("PING")
    local pong, perr = ____exports.call(sock, ping, n)
    if pong == nil and (perr == "closed" or (string.find(perr, "NOAUTH", 1, true)) == nil) then
        return nil, "TLS handshake failed: " .. (perr == "closed" and "the connection was closed right after it (a failed certificate verification: see the error log)" or perr)
    end
    return true
end
--- A connection from the pool, or a new one (then TLS when configured, and logged in
-- with AUTH and SELECT).
-- `connect_ms` bounds the connect, `io_ms` each later send and receive.
function ____exports.connect(ep, connect_ms, io_ms)
    local sock = ngx.socket.tcp()
    sock:settimeouts(connect_ms, io_ms, io_ms)
    local options = {pool = ep.pool, pool_size = ep.pool_size}
    local ok, err = unpack(
        ep.port == nil and ({sock:connect(ep.host, options)}) or ({sock:connect(ep.host, ep.port, options)}),
        1,
        2
    )
    if ok == nil then
        return nil, err
    end
    local reused = sock:getreusedtimes()
    if reused == 0 then
        if ep.tls ~= nil then
            local shaken, herr = handshake(sock, ep.tls)
            if shaken == nil then
                sock:close()
                return nil, herr
            end
        end
        local logged, lerr = login(sock, ep)
        if logged == nil then
            sock:close()
            return nil, lerr
        end
    end
    return sock
end
--- Where a message says which Redis it is about: "127.0.0.1:6379", "unix:/path".
function ____exports.label(ep)
    return ep.port == nil and ep.host or (ep.host .. ":") .. tostring(ep.port)
end
return ____exports
