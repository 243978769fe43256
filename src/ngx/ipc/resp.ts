// A small Redis client over lua-nginx-module's cosockets: RESP2 framing, connecting
// (TLS, then AUTH and SELECT on a new connection), pipelined requests. It knows nothing of
// streams or of ngx.ipc: cluster/ says which commands to send. Every call yields,
// so it works where cosockets do (rewrite, access, content, timers), nowhere else.

/**
 * A reply: a simple or bulk string, an integer, an array, or `false` for RESP's
 * null bulk string and null array (nil would end a Lua array early).
 */
export type Reply = string | number | false | LuaTable<number, Reply>;

/** TLS to Redis: what sslhandshake verifies, and the client certificate if Redis asks for one. */
export interface Tls {
    /** Verify the chain against lua_ssl_trusted_certificate (and server_name, when set). */
    verify: boolean;
    /** SNI, and the name the certificate must carry when verify is on. */
    server_name: string | undefined;
    /** PEM of the client certificate chain and its key, read by configure. */
    cert_pem: string | undefined;
    key_pem: string | undefined;
    /** The same, parsed for setclientcert in this worker (once, at the first connect). */
    cert?: CData;
    key?: CData;
}

/** Where Redis listens and how to log in; timeouts in milliseconds. */
export interface Endpoint {
    /** An address or host name (a name needs nginx's `resolver`), or "unix:/path". */
    host: string;
    /** undefined for a unix socket. */
    port: number | undefined;
    username: string | undefined;
    password: string | undefined;
    db: number;
    /** Connections with the same pool name are reused by setkeepalive/connect. */
    pool: string;
    pool_size: number;
    /** undefined: plain TCP. */
    tls: Tls | undefined;
}

export type Result<T> = LuaMultiReturn<[T] | [undefined, string]>;

/**
 * What read() returns: the reply, or nil, the message and whether the connection is
 * still usable (true: Redis answered with an error reply; false: I/O failed).
 */
export type ReadResult = LuaMultiReturn<[Reply, undefined?, undefined?] | [undefined, string, boolean]>;

const CRLF = "\r\n";

/** Appends one request (`*N`, then `$len` and each argument) to `out` from index `n`. */
export function encode(out: LuaTable<number, string>, n: number, args: LuaTable<number, string>, count: number): number {
    out.set(n, `*${count}\r\n`);
    n += 1;
    for (let i = 1; i <= count; i++) {
        const a = args.get(i);
        out.set(n, `$${a.length}\r\n`);
        out.set(n + 1, a);
        out.set(n + 2, CRLF);
        n += 3;
    }
    return n;
}

/**
 * What was received from a connection and not parsed yet: replies are parsed from
 * chunks that receiveany returns, with string.find and string.sub (which LuaJIT
 * compiles) rather than with a receive per line and per bulk string.
 */
interface Pending {
    buf: string;
    /** The first byte not parsed yet. */
    pos: number;
}

/** Per socket object, forgotten with it. */
const pending = setmetatable(new LuaTable<NgxTcpSocket, Pending>(), { __mode: "k" });

/** How much one receiveany may take. */
const CHUNK = 65536;

/** Appends what the connection has (waiting for at least a byte); an error message or undefined. */
function more(sock: NgxTcpSocket, p: Pending): string | undefined {
    const [chunk, err] = sock.receiveany(CHUNK);
    if (chunk === undefined) {
        return err;
    }
    p.buf = p.pos > p.buf.length ? chunk : string.sub(p.buf, p.pos) + chunk;
    p.pos = 1;
    return undefined;
}

function line_of(sock: NgxTcpSocket, p: Pending): LuaMultiReturn<[string, undefined] | [undefined, string]> {
    const [e, err] = line_end(sock, p);
    if (e === undefined) {
        return $multi(undefined, err);
    }
    const l = string.sub(p.buf, p.pos, e - 2);
    p.pos = e + 1;
    return $multi(l, undefined);
}

/** `size` bytes and the CR LF after them. */
function bulk_of(sock: NgxTcpSocket, p: Pending, size: number): LuaMultiReturn<[string, undefined] | [undefined, string]> {
    const have = p.buf.length - p.pos + 1;
    if (have >= size + 2) {
        const d = string.sub(p.buf, p.pos, p.pos + size - 1);
        p.pos += size + 2;
        return $multi(d, undefined);
    }
    // a large bulk (or its CR LF still to come): what is buffered, then the rest with one receive
    const [rest, err] = sock.receive(size + 2 - have);
    if (rest === undefined) {
        return $multi(undefined, err);
    }
    const d = have >= size
        ? string.sub(p.buf, p.pos, p.pos + size - 1)
        : string.sub(p.buf, p.pos) + string.sub(rest, 1, size - have);
    p.buf = "";
    p.pos = 1;
    return $multi(d, undefined);
}

/**
 * The number of a `$`, `*` or `:` line from `from` to `to` (the CR excluded), read
 * byte by byte: no string per line (an XREAD reply has two such lines per field).
 * undefined when it is not a decimal integer.
 */
function number_in(buf: string, from: number, to: number): number | undefined {
    let sign = 1;
    let i = from;
    if (string.byte(buf, i) === 45) { // -
        sign = -1;
        i += 1;
    }
    if (i >= to) {
        return undefined;
    }
    let n = 0;
    for (; i < to; i++) {
        const c = string.byte(buf, i) - 48;
        if (c < 0 || c > 9) {
            return undefined;
        }
        n = n * 10 + c;
    }
    return sign * n;
}

/** Where the next line's CR LF ends (receiving until it is buffered); undefined, err when I/O failed. */
function line_end(sock: NgxTcpSocket, p: Pending): LuaMultiReturn<[number, undefined] | [undefined, string]> {
    while (true) {
        const [, e] = string.find(p.buf, "\r\n", p.pos, true);
        if (e !== undefined) {
            return $multi(e, undefined);
        }
        const err = more(sock, p);
        if (err !== undefined) {
            return $multi(undefined, err);
        }
    }
}

function parse(sock: NgxTcpSocket, p: Pending): ReadResult {
    const [e, lerr] = line_end(sock, p);
    if (e === undefined) {
        return $multi(undefined, lerr, false);
    }
    const head = string.byte(p.buf, p.pos);
    if (head === 36 || head === 42) { // $ *
        const count = number_in(p.buf, p.pos + 1, e - 1);
        if (count !== undefined) {
            p.pos = e + 1;
            return aggregate(sock, p, head, count);
        }
    }
    const [line, err] = line_of(sock, p);
    if (line === undefined) {
        return $multi(undefined, err, false);
    }
    const kind = string.byte(line, 1);
    if (kind === 43) { // +
        return $multi(string.sub(line, 2));
    }
    if (kind === 45) { // -
        return $multi(undefined, string.sub(line, 2), true);
    }
    const n = tonumber(string.sub(line, 2));
    if (n === undefined) {
        return $multi(undefined, `bad reply from redis: ${string.sub(line, 1, 80)}`, false);
    }
    if (kind === 58) { // :
        return $multi(n);
    }
    if (kind === 36 || kind === 42) {
        return aggregate(sock, p, kind, n);
    }
    return $multi(undefined, `bad reply from redis: ${string.sub(line, 1, 80)}`, false);
}

/** A bulk string (`$`) or an array (`*`) of n, its header line read. */
function aggregate(sock: NgxTcpSocket, p: Pending, kind: number, n: number): ReadResult {
    if (kind === 36) { // $
        if (n < 0) {
            return $multi(false);
        }
        const [d, derr] = bulk_of(sock, p, n);
        if (d === undefined) {
            return $multi(undefined, derr, false);
        }
        return $multi(d);
    }
    if (kind === 42) { // *
        if (n < 0) {
            return $multi(false);
        }
        const list = new LuaTable<number, Reply>();
        let first_error: string | undefined = undefined;
        for (let i = 1; i <= n; i++) {
            const [v, verr, usable] = parse(sock, p);
            if (v === undefined) {
                if (!usable) {
                    return $multi(undefined, verr, false);
                }
                first_error = first_error ?? verr;
                list.set(i, false);
            } else {
                list.set(i, v);
            }
        }
        if (first_error !== undefined) {
            return $multi(undefined, first_error, true);
        }
        return $multi(list);
    }
    return $multi(undefined, "bad reply from redis", false);
}

/** A connection's buffered replies, for a caller that reads a large reply element by element. */
export type Cursor = Pending;

export function cursor(sock: NgxTcpSocket): Cursor {
    let p = pending.get(sock);
    if (p === undefined) {
        p = { buf: "", pos: 1 };
        pending.set(sock, p);
    }
    return p;
}

/**
 * The next element's header, for a reply read element by element (no table per
 * element): its kind (36 `$`, 42 `*`, 58 `:`) and number (a length, a count, -1 for
 * null, or the integer). nil, message, usable: an error reply (usable), or I/O
 * failed or the reply is not RESP2 (not usable).
 */
export function head(sock: NgxTcpSocket, p: Cursor): LuaMultiReturn<[number, number] | [undefined, string, boolean]> {
    const [e, lerr] = line_end(sock, p);
    if (e === undefined) {
        return $multi(undefined, lerr, false);
    }
    const kind = string.byte(p.buf, p.pos);
    const n = number_in(p.buf, p.pos + 1, e - 1);
    if (kind === 45) { // -
        const msg = string.sub(p.buf, p.pos + 1, e - 2);
        p.pos = e + 1;
        return $multi(undefined, msg, true);
    }
    if ((kind !== 36 && kind !== 42 && kind !== 58) || n === undefined) {
        return $multi(undefined, `bad reply from redis: ${string.sub(p.buf, p.pos, math.min(e - 2, p.pos + 80))}`, false);
    }
    p.pos = e + 1;
    return $multi(kind, n);
}

/** The body of a bulk string of `size` bytes whose header head() read. */
export function body(sock: NgxTcpSocket, p: Cursor, size: number): LuaMultiReturn<[string, undefined] | [undefined, string]> {
    return bulk_of(sock, p, size);
}

/**
 * The body of a bulk string of `size` bytes read as a decimal integer, in place when
 * it is buffered (no string); undefined, undefined when it is not one; undefined, err
 * when I/O failed.
 */
export function body_number(sock: NgxTcpSocket, p: Cursor, size: number): LuaMultiReturn<[number | undefined, string | undefined]> {
    if (p.buf.length - p.pos + 1 >= size + 2) {
        const v = size > 0 ? number_in(p.buf, p.pos, p.pos + size) : undefined;
        p.pos += size + 2;
        return $multi(v, undefined);
    }
    const [d, err] = bulk_of(sock, p, size);
    if (d === undefined) {
        return $multi(undefined, err);
    }
    return $multi(tonumber(d), undefined);
}

/** The byte of a one-byte bulk string (a stream field's name here), in place; 0 for any other size. */
export function body_byte(sock: NgxTcpSocket, p: Cursor, size: number): LuaMultiReturn<[number, undefined] | [undefined, string]> {
    if (size === 1 && p.buf.length - p.pos + 1 >= 3) {
        const b = string.byte(p.buf, p.pos);
        p.pos += 3;
        return $multi(b, undefined);
    }
    const [d, err] = bulk_of(sock, p, size);
    if (d === undefined) {
        return $multi(undefined, err);
    }
    return $multi(size === 1 ? string.byte(d) : 0, undefined);
}

/** Reads one reply; arrays are read whole even when an element is an error. */
export function read(sock: NgxTcpSocket): ReadResult {
    return parse(sock, cursor(sock));
}

/** A request's arguments as call() and encode() take them, and their count. */
export function args(...list: string[]): LuaMultiReturn<[LuaTable<number, string>, number]> {
    const t = new LuaTable<number, string>();
    for (let i = 0; i < list.length; i++) {
        t.set(i + 1, list[i]);
    }
    return $multi(t, list.length);
}

/** Sends one request and reads its reply. */
export function call(sock: NgxTcpSocket, args: LuaTable<number, string>, count: number): ReadResult {
    const out = new LuaTable<number, string>();
    encode(out, 1, args, count);
    const [sent, err] = sock.send(out);
    if (sent === undefined) {
        return $multi(undefined, err, false);
    }
    return read(sock);
}

function login(sock: NgxTcpSocket, ep: Endpoint): Result<true> {
    const out = new LuaTable<number, string>();
    let n = 1;
    let replies = 0;
    if (ep.password !== undefined) {
        const args = new LuaTable<number, string>();
        args.set(1, "AUTH");
        let count = 1;
        if (ep.username !== undefined) {
            count += 1;
            args.set(count, ep.username);
        }
        args.set(count + 1, ep.password);
        n = encode(out, n, args, count + 1);
        replies += 1;
    }
    if (ep.db !== 0) {
        const args = new LuaTable<number, string>();
        args.set(1, "SELECT");
        args.set(2, tostring(ep.db));
        n = encode(out, n, args, 2);
        replies += 1;
    }
    if (replies === 0) {
        return $multi(true);
    }
    const [sent, err] = sock.send(out);
    if (sent === undefined) {
        return $multi(undefined, err);
    }
    // Both replies are read even after an error, so that nothing is left unread.
    let failed: string | undefined = undefined;
    for (let i = 1; i <= replies; i++) {
        const [v, rerr] = read(sock);
        if (v === undefined) {
            failed = failed ?? rerr;
        }
    }
    if (failed !== undefined) {
        return $multi(undefined, failed);
    }
    return $multi(true);
}

/** Parses the client certificate and key once per worker; nil, err when they cannot be used. */
function client_cert(tls: Tls, sock: NgxTcpSocket): Result<true> {
    if (sock.setclientcert === undefined) {
        return $multi(undefined, "a client certificate needs tcpsock:setclientcert (lua-resty-core 0.1.18 or later), which this nginx lacks");
    }
    if (tls.cert === undefined) {
        // ngx.ssl is required here, not at load: it is only needed with a client certificate
        const ssl = require("ngx.ssl") as typeof import("ngx.ssl");
        const [cert, cerr] = ssl.parse_pem_cert(tls.cert_pem!);
        if (cert === undefined) {
            return $multi(undefined, `bad client certificate (ssl_cert): ${cerr}`);
        }
        const [key, kerr] = ssl.parse_pem_priv_key(tls.key_pem!);
        if (key === undefined) {
            return $multi(undefined, `bad client key (ssl_key): ${kerr}`);
        }
        tls.cert = cert;
        tls.key = key;
    }
    const [ok, err] = sock.setclientcert(tls.cert, tls.key!);
    if (ok === undefined) {
        return $multi(undefined, err);
    }
    return $multi(true);
}

function handshake(sock: NgxTcpSocket, tls: Tls): Result<true> {
    if (tls.cert_pem !== undefined) {
        const [ok, err] = client_cert(tls, sock);
        if (ok === undefined) {
            return $multi(undefined, err);
        }
    }
    // pcall: Debian's lua-resty-core can raise an assertion on a failed verification
    const [called, ok, err] = pcall(sock.sslhandshake, sock, false, tls.server_name, tls.verify);
    if (!called) {
        return $multi(undefined, `TLS handshake failed: ${tostring(ok)}`);
    }
    if (ok === undefined) {
        return $multi(undefined, `TLS handshake failed: ${err}`);
    }
    // On a failed verification, lua-nginx-module (0.10.23 and 0.10.28 alike) sometimes
    // reports success and closes the connection: the first request finds out.
    const [ping, n] = args("PING");
    const [pong, perr] = call(sock, ping, n);
    if (pong === undefined && (perr === "closed" || string.find(perr, "NOAUTH", 1, true)[0] === undefined)) {
        return $multi(undefined, `TLS handshake failed: ${perr === "closed"
            ? "the connection was closed right after it (a failed certificate verification: see the error log)"
            : perr}`);
    }
    return $multi(true);
}

/**
 * A connection from the pool, or a new one (then TLS when configured, and logged in
 * with AUTH and SELECT).
 * `connect_ms` bounds the connect, `io_ms` each later send and receive.
 */
export function connect(ep: Endpoint, connect_ms: number, io_ms: number): Result<NgxTcpSocket> {
    const sock = ngx.socket.tcp();
    sock.settimeouts(connect_ms, io_ms, io_ms);
    const options = { pool: ep.pool, pool_size: ep.pool_size };
    const [ok, err] = ep.port === undefined
        ? sock.connect(ep.host, options)
        : sock.connect(ep.host, ep.port, options);
    if (ok === undefined) {
        return $multi(undefined, err);
    }
    const [reused] = sock.getreusedtimes();
    if (reused === 0) {
        if (ep.tls !== undefined) {
            const [shaken, herr] = handshake(sock, ep.tls);
            if (shaken === undefined) {
                sock.close();
                return $multi(undefined, herr);
            }
        }
        const [logged, lerr] = login(sock, ep);
        if (logged === undefined) {
            sock.close();
            return $multi(undefined, lerr);
        }
    }
    return $multi(sock);
}

/** Where a message says which Redis it is about: "127.0.0.1:6379", "unix:/path". */
export function label(ep: Endpoint): string {
    return ep.port === undefined ? ep.host : `${ep.host}:${ep.port}`;
}
