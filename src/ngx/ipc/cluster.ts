// ngx.ipc across hosts: alerts that reach every worker of every nginx instance that
// shares a Redis stream. Publishers add entries to the stream (one script call: a
// sequence number and XADD with a length bound); one reader per instance (worker 0
// while it holds a lease in Redis) reads the stream with a blocking XREAD and hands
// each entry to its own instance with the local broadcast, under a reserved name that
// every worker decodes and hands to the user's handler (dispatch.invoke).
//
// Keys, for stream S and instance I (host/master pid/master start time):
//   S                 the stream; fields s (sequence), i, p, w (origin instance, pid,
//                     worker id), n (name), d (data)
//   S:seq             the last sequence number given out; a jump between two entries
//                     the reader gets is the count of entries trimmed before it read them
//   S:reader:I        the lease: the reading worker's token, with a TTL it renews
//   S:pos:I           "id seq" of the last entry the instance's reader handed over; the
//                     next reader (after a reload or a crash) starts after it
import type { ClusterStats } from "ngx.ipc";
import { check_string } from "./args";
import * as dispatch from "./dispatch";
import * as resp from "./resp";
import * as shim from "./shim";

type Result = LuaMultiReturn<[true] | [undefined, string]>;

/** Joins this worker to its instance (ipc.ts's start); `fn` names the caller in errors. */
export type Join = (this: void, fn: string) => void;

/** The local alert that carries a stream entry to every worker of the instance. */
const LOCAL_NAME = `${dispatch.RESERVED}cluster`;
/** Alert names travel in one byte locally (ipc.ts's MAX_NAME). */
const MAX_NAME = 254;
/**
 * The smallest send_backlog and receive_backlog the shim accepts. The reader hands
 * an entry over only while what waits for any destination, itself included, plus the
 * entry fits in it (or nothing waits), so the local broadcast is never refused for a
 * full backlog, which would leave the entry with some workers and not others.
 */
const FLOW = 65536;
/** Bytes a local broadcast adds per packet, and per alert, beyond name and data (an upper bound). */
const PACKET_OVERHEAD = 64;
const PACKET_PAYLOAD = 4000;
/** How long a reader's lease lasts without renewal; it renews at least every BLOCK_MS. */
const LEASE_MS = 5000;
/** XREAD's BLOCK: also how long a quitting reader may wait before it notices. */
const BLOCK_MS = 1000;
/** The reader saves its position (and renews the lease) at most this often, in seconds. */
const SAVE_EVERY = 0.1;
/**
 * Entries per XREAD: at most BATCH, and few enough that a reply of entries of
 * max_data bytes stays within BATCH_BYTES (it is held whole while relayed).
 */
const BATCH = 512;
const BATCH_BYTES = 33554432;
/** How often a worker 0 that does not hold the lease asks for it again. */
const LEASE_POLL = 0.2;
/** Reconnect backoff: from BACKOFF_MIN doubling to BACKOFF_MAX seconds. */
const BACKOFF_MIN = 0.05;
const BACKOFF_MAX = 2;
/** Position keys outlive their instance by this long (seconds), renewed by the reader. */
const POS_TTL = 604800;

interface Settings {
    endpoint: resp.Endpoint;
    reader_endpoint: resp.Endpoint;
    stream: string;
    seq_key: string;
    maxlen: string;
    max_data: number;
    batch: string;
    timeout_ms: number;
    keepalive_ms: number;
}

let settings: Settings | undefined;
let join: Join | undefined;
/** This worker has joined and set up its part (handler, and reader for worker 0). */
let running = false;
let instance = "";
let lease_key = "";
let pos_key = "";
/** The master's pid: a lease holder that is not its child is gone. */
let master_pid = 0;
/** Publishers in this worker have made sure the instance's position exists (see FLOOR). */
let floor_done = false;

const counters = {
    published: 0,
    publish_errors: 0,
    received: 0,
    relayed: 0,
    gaps: 0,
    lost: 0,
    reconnects: 0,
    malformed: 0,
};

// ---------------------------------------------------------------------------
// scripts (run with EVALSHA, EVAL when Redis does not know them yet)
// ---------------------------------------------------------------------------

interface Script {
    body: string;
    sha: string;
}

/** The instance's start position, made once: after the last entry of the stream. */
const FLOOR_BODY = `
local function floor(stream, seq_key, pos_key)
  local pos = redis.call('GET', pos_key)
  if pos then return pos, 0 end
  local seq = tonumber(redis.call('GET', seq_key) or '0')
  local id = '0-0'
  local e = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
  if e then
    id = e[1]
    for i = 1, #e[2], 2 do
      if e[2][i] == 's' then seq = tonumber(e[2][i + 1]) end
    end
  end
  pos = id .. ' ' .. seq
  redis.call('SET', pos_key, pos, 'EX', ${POS_TTL})
  return pos, 1
end
`;

function script(body: string): Script {
    return { body, sha: "" };
}

/** KEYS: stream, seq, pos. Returns the position. */
const FLOOR = script(`${FLOOR_BODY}
return (floor(KEYS[1], KEYS[2], KEYS[3]))`);

/** KEYS: stream, seq. ARGV: maxlen, instance, pid, worker id, name, data. Returns the id. */
const PUBLISH = script(`
local seq = redis.call('INCR', KEYS[2])
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 's', seq,
  'i', ARGV[2], 'p', ARGV[3], 'w', ARGV[4], 'n', ARGV[5], 'd', ARGV[6])`);

/**
 * KEYS: lease, pos, stream, seq. ARGV: token, lease ms, the token of a holder known
 * to be dead (or ""). Returns {1, position, 1 if the position was made now} or {0, holder}.
 */
const ACQUIRE = script(`${FLOOR_BODY}
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] and cur ~= ARGV[3] then return {0, cur} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local pos, fresh = floor(KEYS[3], KEYS[4], KEYS[2])
return {1, pos, fresh}`);

/**
 * KEYS: lease, pos. ARGV: token, lease ms, position, 1 to release. Saves the position
 * and renews (or releases) the lease, only while the token holds it: 1, else 0.
 */
const COMMIT = script(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[3], 'EX', ${POS_TTL})
if ARGV[4] == '1' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1`);

function sha_of(sc: Script): string {
    if (sc.sha === "") {
        sc.sha = string.gsub(ngx.sha1_bin(sc.body), ".",
            (c: string) => string.format("%02x", string.byte(c)))[0];
    }
    return sc.sha;
}

/** args[1] and args[2] are left for EVALSHA sha / EVAL body. */
function script_args(sc: Script, args: LuaTable<number, string>, evalsha: boolean): void {
    args.set(1, evalsha ? "EVALSHA" : "EVAL");
    args.set(2, evalsha ? sha_of(sc) : sc.body);
}

/** Runs a script; falls back to EVAL (which loads it) when Redis answers NOSCRIPT. */
function run(sock: NgxTcpSocket, sc: Script, args: LuaTable<number, string>, count: number): resp.ReadResult {
    script_args(sc, args, true);
    const [v, err, usable] = resp.call(sock, args, count);
    if (v !== undefined) {
        return $multi(v);
    }
    if (usable && string.sub(err, 1, 8) === "NOSCRIPT") {
        script_args(sc, args, false);
        return resp.call(sock, args, count);
    }
    return $multi(undefined, err, usable);
}

function args_of(...list: string[]): LuaMultiReturn<[LuaTable<number, string>, number]> {
    const t = new LuaTable<number, string>();
    t.set(1, "");
    t.set(2, "");
    let n = 2;
    for (const a of list) {
        n += 1;
        t.set(n, a);
    }
    return $multi(t, n);
}

// ---------------------------------------------------------------------------
// arguments and configuration
// ---------------------------------------------------------------------------

function option_error(msg: string): never {
    error(`bad argument #1 to 'configure' (${msg})`, 4);
}

function opt_string(o: LuaTable<string, unknown>, key: string, def: string | undefined): string | undefined {
    const v = o.get(key);
    if (v === undefined) {
        return def;
    }
    if (type(v) !== "string" || (v as string) === "") {
        option_error(`${key} must be a non-empty string`);
    }
    return v as string;
}

function opt_number(o: LuaTable<string, unknown>, key: string, def: number, min: number, whole: boolean): number {
    const v = o.get(key);
    if (v === undefined) {
        return def;
    }
    if (type(v) !== "number" || (v as number) < min || (whole && (v as number) % 1 !== 0)) {
        option_error(`${key} must be a ${whole ? "whole " : ""}number, at least ${min}`);
    }
    return v as number;
}

const KNOWN = new LuaTable<string, boolean>();
for (const k of ["redis", "username", "password", "db", "stream", "maxlen", "max_data", "timeout", "pool_size", "keepalive"]) {
    KNOWN.set(k, true);
}

function parse_address(redis: string): LuaMultiReturn<[string, number | undefined]> {
    if (string.sub(redis, 1, 5) === "unix:") {
        return $multi(redis, undefined);
    }
    const [host, port] = string.match(redis, "^%[?([^%[%]]+)%]?:(%d+)$");
    const p = tonumber(port);
    if (host === undefined || p === undefined || p < 1 || p > 65535) {
        option_error(`redis must be "host:port" or "unix:/path", got "${redis}"`);
    }
    return $multi(host, p);
}

function check_options(options: unknown): Settings {
    if (type(options) !== "table") {
        error(`bad argument #1 to 'configure' (table expected, got ${type(options)})`, 3);
    }
    const o = options as LuaTable<string, unknown>;
    for (const [key] of pairs(o)) {
        if (!KNOWN.get(key as string)) {
            option_error(`unknown option '${tostring(key)}'`);
        }
    }
    const redis = opt_string(o, "redis", undefined);
    if (redis === undefined) {
        option_error(`redis ("host:port") is required`);
    }
    const [host, port] = parse_address(redis);
    const db = opt_number(o, "db", 0, 0, true);
    const stream = opt_string(o, "stream", "ngx.ipc")!;
    const max_data = opt_number(o, "max_data", 1048576, 0, true);
    const endpoint: resp.Endpoint = {
        host,
        port,
        username: opt_string(o, "username", undefined),
        password: opt_string(o, "password", undefined),
        db,
        pool: `ngx.ipc.cluster:${redis}:${db}`,
        pool_size: opt_number(o, "pool_size", 16, 1, true),
    };
    return {
        endpoint,
        // its own pool name: the reader keeps its connection to itself
        reader_endpoint: {
            host, port, username: endpoint.username, password: endpoint.password, db,
            pool: `${endpoint.pool}:reader`, pool_size: 1,
        },
        stream,
        seq_key: `${stream}:seq`,
        maxlen: tostring(opt_number(o, "maxlen", 100000, 1, true)),
        max_data,
        batch: tostring(math.max(1, math.min(BATCH, math.floor(BATCH_BYTES / (max_data + 512))))),
        timeout_ms: math.ceil(opt_number(o, "timeout", 1, 0.001, false) * 1000),
        keepalive_ms: math.ceil(opt_number(o, "keepalive", 60, 0, false) * 1000),
    };
}

/** ipc.ts hands over its join function once, at load. */
export function attach(fn: Join): void {
    join = fn;
}

/**
 * Sets where the cluster's Redis is and starts this worker's part (its handler, and
 * the reader in worker 0) when the worker has joined or joins now; in init_by_lua*
 * the workers inherit the settings and start their part when they join.
 */
export function configure(options: unknown): true {
    const s = check_options(options);
    if (running) {
        error("ngx.ipc: ipc.cluster.configure: this worker's cluster part has started already; configure once, in init_by_lua* or init_worker_by_lua*", 2);
    }
    settings = s;
    if (ngx.get_phase() !== "init") {
        join!("cluster.configure");
        // joining calls joined() when the worker was not in yet; when it was, start here
        joined();
    }
    return true;
}

// ---------------------------------------------------------------------------
// the instance, and the local side: every worker's reserved handler
// ---------------------------------------------------------------------------

function read_text(path: string): string | undefined {
    const [f] = io.open(path, "r");
    if (f === undefined) {
        return undefined;
    }
    const s = f.read("*a");
    f.close();
    return s;
}

/**
 * "host/master pid/master start" (the start as Unix time to 1/100 s), from the shim's
 * instance directory (<pidns>-<master pid>-<start in clock ticks>-<cycle>).
 */
function find_instance(): string {
    const host = string.match(read_text("/proc/sys/kernel/hostname") ?? "", "^%s*(.-)%s*$")[0];
    const [master, start] = string.match(shim.dir(), "%d+%-(%d+)%-(%d+)%-%x+/?$");
    const [btime] = string.match(read_text("/proc/stat") ?? "", "\nbtime (%d+)");
    master_pid = tonumber(master) ?? 0;
    // clock ticks are 1/100 s on Linux (USER_HZ)
    const started = (tonumber(btime) ?? 0) + (tonumber(start) ?? 0) / 100;
    return `${host === "" ? "localhost" : host}/${master ?? "?"}/${string.format("%.2f", started)}`;
}

/** Header "instance_len pid worker_id name_len\n", then instance, name and data. */
function envelope(inst: string, pid: string, wid: string, name: string, data: string): string {
    return `${inst.length} ${pid} ${wid} ${name.length}\n${inst}${name}${data}`;
}

function on_local(_from: number, env: string): void {
    const [nl] = string.find(env, "\n", 1, true);
    if (nl === undefined) {
        counters.malformed += 1;
        return;
    }
    const [ilen, pid, wid, nlen] = string.match(string.sub(env, 1, nl - 1), "^(%d+) (%d+) (%-?%d+) (%d+)$");
    if (nlen === undefined) {
        counters.malformed += 1;
        return;
    }
    const i = tonumber(ilen)!;
    const n = tonumber(nlen)!;
    const inst = string.sub(env, nl + 1, nl + i);
    const name = string.sub(env, nl + i + 1, nl + i + n);
    const id = tonumber(wid)!;
    counters.received += 1;
    dispatch.invoke(name, string.sub(env, nl + i + n + 1), tonumber(pid)!, id < 0 ? undefined : id,
        inst, inst !== instance);
}

/**
 * Called by ipc.ts once this worker has joined (and by configure): registers the
 * handler of the local alert and, in worker 0, starts the reader.
 */
export function joined(): void {
    if (running || settings === undefined) {
        return;
    }
    running = true;
    instance = find_instance();
    lease_key = `${settings.stream}:reader:${instance}`;
    pos_key = `${settings.stream}:pos:${instance}`;
    dispatch.reserve(LOCAL_NAME, on_local);
    if (ngx.worker.id() === 0) {
        const [ok, err] = ngx.timer.at(0, reader);
        if (ok === undefined) {
            ngx.log(ngx.ERR, "ngx.ipc: cannot start the cluster reader: ", err);
        }
    }
}

// ---------------------------------------------------------------------------
// publishing
// ---------------------------------------------------------------------------

/** Phases without cosockets. */
const NO_SOCKETS = new LuaTable<string, boolean>();
for (const p of ["init", "init_worker", "set", "header_filter", "body_filter", "log", "balancer", "exit_worker", "ssl_session_store"]) {
    NO_SOCKETS.set(p, true);
}

function publish(s: Settings, name: string, data: string): Result {
    ngx.update_time();
    const t0 = ngx.now();
    const [sock, err] = resp.connect(s.endpoint, s.timeout_ms, s.timeout_ms);
    if (sock === undefined) {
        return $multi(undefined, `ngx.ipc: cluster: cannot reach redis at ${resp.label(s.endpoint)}: ${err}`);
    }
    // connect and the script together take at most `timeout`
    ngx.update_time();
    const left = s.timeout_ms - math.floor((ngx.now() - t0) * 1000);
    if (left < 1) {
        sock.close();
        return $multi(undefined, `ngx.ipc: cluster: redis at ${resp.label(s.endpoint)}: timeout`);
    }
    sock.settimeouts(left, left, left);
    if (!floor_done) {
        const [fargs, fcount] = args_of("3", s.stream, s.seq_key, pos_key);
        const [pos, ferr] = run(sock, FLOOR, fargs, fcount);
        if (pos === undefined) {
            sock.close();
            return $multi(undefined, `ngx.ipc: cluster: redis at ${resp.label(s.endpoint)}: ${ferr}`);
        }
        floor_done = true;
    }
    const [args, count] = args_of("2", s.stream, s.seq_key, s.maxlen, instance, tostring(ngx.worker.pid()),
        tostring(ngx.worker.id() ?? -1), name, data);
    const [id, perr, usable] = run(sock, PUBLISH, args, count);
    if (id === undefined) {
        if (usable) {
            sock.setkeepalive(s.keepalive_ms, s.endpoint.pool_size);
        } else {
            sock.close();
        }
        return $multi(undefined, `ngx.ipc: cluster: redis at ${resp.label(s.endpoint)}: ${perr}`);
    }
    sock.setkeepalive(s.keepalive_ms, s.endpoint.pool_size);
    return $multi(true);
}

/**
 * Sends an alert to every worker of every instance that shares the stream, this one
 * included. `true` once Redis has it; nil, err when Redis cannot be reached within
 * `timeout` or refuses it, or the alert is over the caps.
 */
export function broadcast(name: unknown, data: unknown): Result {
    const n = check_string("broadcast", 1, name);
    const d = check_string("broadcast", 2, data);
    const s = settings;
    if (s === undefined) {
        error("ngx.ipc: ipc.cluster.broadcast: call ipc.cluster.configure first", 2);
    }
    const phase = ngx.get_phase();
    if (NO_SOCKETS.get(phase)) {
        error(`ngx.ipc: ipc.cluster.broadcast cannot be used in ${phase} (no cosockets there); use ngx.timer.at(0, ...)`, 2);
    }
    join!("cluster.broadcast");
    if (dispatch.is_reserved(n)) {
        return $multi(undefined, "alert names starting with a NUL byte are reserved for ngx.ipc");
    }
    if (n.length > MAX_NAME) {
        return $multi(undefined, `alert name is longer than ${MAX_NAME} bytes`);
    }
    if (d.length > s.max_data) {
        counters.publish_errors += 1;
        return $multi(undefined, `alert data is ${d.length} bytes, more than max_data (${s.max_data} bytes) for cluster broadcasts`);
    }
    const [ok, err] = publish(s, n, d);
    if (ok === undefined) {
        counters.publish_errors += 1;
        return $multi(undefined, err);
    }
    counters.published += 1;
    return $multi(true);
}

// ---------------------------------------------------------------------------
// the reader (worker 0 while it holds the lease)
// ---------------------------------------------------------------------------

let sock: NgxTcpSocket | undefined;
let holding = false;
let token = "";
/**
 * The last entry handed over and its sequence number; "" until the lease is first
 * taken, then the instance's saved position ("0-0 0" for an empty stream).
 */
let last_id = "";
let last_seq = 0;
let failures = 0;
/** When the position was last saved (ngx.now()). */
let saved_at = 0;
let down_since: number | undefined;
/** Upper bounds of what waits for one destination, and in this worker, since the last look (FLOW). */
let queued = 0;
let held = 0;

function position(): string {
    return `${last_id} ${last_seq}`;
}

/** Whether stream id a comes after b ("ms-seq"). */
function after(a: string, b: string): boolean {
    const [am, as] = string.match(a, "^(%d+)%-(%d+)$");
    const [bm, bs] = string.match(b, "^(%d+)%-(%d+)$");
    const ma = tonumber(am) ?? 0;
    const mb = tonumber(bm) ?? 0;
    return ma > mb || (ma === mb && (tonumber(as) ?? 0) > (tonumber(bs) ?? 0));
}

/** Sleeps `seconds` in steps, returning early (false) once the worker is exiting. */
function pause(seconds: number): boolean {
    ngx.update_time();
    const deadline = ngx.now() + seconds;
    while (!ngx.worker.exiting()) {
        const left = deadline - ngx.now();
        if (left <= 0) {
            return true;
        }
        // never below 1 ms: ngx.sleep(0) logs a warning on every call on stock nginx
        ngx.sleep(math.max(0.001, math.min(left, 0.25)));
        ngx.update_time();
    }
    return false;
}

function drop_connection(err: string): void {
    if (sock !== undefined) {
        sock.close();
        sock = undefined;
    }
    failures += 1;
    ngx.update_time();
    if (down_since === undefined) {
        down_since = ngx.now();
        ngx.log(ngx.ERR, "ngx.ipc: cluster reader: redis at ", resp.label(settings!.reader_endpoint), ": ", err,
            "; reconnecting with backoff, resuming after ", last_id === "" ? "the instance's position" : last_id);
    }
    const delay = math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** math.min(failures - 1, 10));
    pause(delay * (0.5 + math.random() * 0.5));
}

function open(): boolean {
    const s = settings!;
    const [c, err] = resp.connect(s.reader_endpoint, s.timeout_ms, BLOCK_MS + s.timeout_ms);
    if (c === undefined) {
        drop_connection(err);
        return false;
    }
    // step() pipelines COMMIT with XREAD, where a NOSCRIPT could not fall back to EVAL
    const load = new LuaTable<number, string>();
    load.set(1, "SCRIPT");
    load.set(2, "LOAD");
    load.set(3, COMMIT.body);
    const [sha, lerr] = resp.call(c, load, 3);
    if (sha === undefined) {
        c.close();
        drop_connection(lerr);
        return false;
    }
    sock = c;
    if (down_since !== undefined) {
        counters.reconnects += 1;
        ngx.update_time();
        ngx.log(ngx.NOTICE, "ngx.ipc: cluster reader: redis at ", resp.label(s.reader_endpoint), " is back after ",
            string.format("%.1f", ngx.now() - down_since), " s");
        down_since = undefined;
    }
    return true;
}

/** A holder on this host that is no longer a worker of this master has died: its lease can go. */
function holder_dead(holder: string): boolean {
    const [pid] = string.match(holder, "^(%d+):");
    if (pid === undefined) {
        return false;
    }
    const stat = read_text(`/proc/${pid}/stat`);
    if (stat === undefined) {
        return true;
    }
    const [state, ppid] = string.match(stat, "%) (%a) (%d+)");
    return state === "Z" || state === "X" || tonumber(ppid) !== master_pid;
}

/** Takes the lease when it is free (or its holder died); false when someone else holds it. */
function acquire(expect: string): boolean | undefined {
    const [args, count] = args_of("4", lease_key, pos_key, settings!.stream, settings!.seq_key,
        token, tostring(LEASE_MS), expect);
    const [r, err] = run(sock!, ACQUIRE, args, count);
    if (r === undefined || type(r) !== "table") {
        drop_connection(err ?? "bad reply to the lease script");
        return undefined;
    }
    const reply = r as LuaTable<number, resp.Reply>;
    if (reply.get(1) !== 1) {
        const holder = tostring(reply.get(2));
        if (expect === "" && holder_dead(holder)) {
            return acquire(holder);
        }
        return false;
    }
    const [id, seq] = string.match(tostring(reply.get(2)), "^(%S+) (%d+)$");
    // This worker's own position wins over one made fresh (the key had expired or was
    // lost) and over an older one (the last save did not reach Redis).
    if (last_id === "" || (reply.get(3) !== 1 && after(id, last_id))) {
        last_id = id ?? "0-0";
        last_seq = tonumber(seq) ?? 0;
    }
    holding = true;
    ngx.log(ngx.NOTICE, "ngx.ipc: cluster reader: worker ", ngx.worker.pid(), " reads ", settings!.stream,
        " for ", instance, " after ", last_id);
    return true;
}

/** Saves the position and renews the lease (or releases it): false when it was lost. */
function commit(release: boolean): boolean | undefined {
    const [args, count] = args_of("2", lease_key, pos_key, token, tostring(LEASE_MS), position(), release ? "1" : "0");
    const [r, err] = run(sock!, COMMIT, args, count);
    if (r === undefined) {
        drop_connection(err);
        return undefined;
    }
    if (r !== 1) {
        lost_lease();
        return false;
    }
    return true;
}

function lost_lease(): void {
    holding = false;
    ngx.log(ngx.WARN, "ngx.ipc: cluster reader: worker ", ngx.worker.pid(), " lost the lease of ", instance,
        " (it was not renewed in time); stops reading after ", last_id);
}

/** Upper bound of the bytes a local broadcast of `size` envelope bytes puts in a queue. */
function packed(size: number): number {
    return LOCAL_NAME.length + size + PACKET_OVERHEAD * (2 + math.floor(size / PACKET_PAYLOAD));
}

function fits(size: number): boolean {
    return (queued === 0 || queued + size <= FLOW) && (held === 0 || held + size <= FLOW);
}

/**
 * Waits until an entry of `size` bytes can be handed over without a backlog refusing
 * it (FLOW), renewing the lease meanwhile. false: the worker is exiting, or the lease
 * or the connection was lost.
 */
function room(size: number): boolean {
    let renewed = ngx.now();
    while (!fits(size)) {
        const c = shim.counters();
        queued = c.send_queued;
        held = c.receive_ready + c.receive_partial;
        if (fits(size)) {
            break;
        }
        // the receive loop of this worker, and the pipes, drain meanwhile
        if (!pause(0.001)) {
            return false;
        }
        if (ngx.now() - renewed >= BLOCK_MS / 1000) {
            if (commit(false) !== true) {
                return false;
            }
            renewed = ngx.now();
        }
    }
    queued += size;
    held += size;
    return true;
}

/** Field value of a stream entry's field list, or undefined. */
function field(f: LuaTable<number, resp.Reply>, key: string): string | undefined {
    for (let i = 1; i < f.length(); i += 2) {
        if (f.get(i) === key) {
            const v = f.get(i + 1);
            return type(v) === "string" ? (v as string) : undefined;
        }
    }
    return undefined;
}

function count_gap(seq: number, id: string): void {
    if (last_seq > 0 && seq > last_seq + 1) {
        const n = seq - last_seq - 1;
        counters.gaps += 1;
        counters.lost += n;
        ngx.log(ngx.ERR, "ngx.ipc: cluster reader: ", n, " alert(s) between ", last_id, " and ", id,
            " were trimmed from ", settings!.stream, " (maxlen ", settings!.maxlen,
            ") before this instance read them; they are lost for it");
    }
}

/** Hands one entry to every worker of the instance; false when it must stop first. */
function hand_over(id: string, f: LuaTable<number, resp.Reply>): boolean {
    const seq = tonumber(field(f, "s"));
    const inst = field(f, "i");
    const pid = field(f, "p");
    const wid = field(f, "w");
    const name = field(f, "n");
    const data = field(f, "d");
    if (seq === undefined || inst === undefined || pid === undefined || wid === undefined
        || name === undefined || data === undefined) {
        counters.malformed += 1;
        ngx.log(ngx.WARN, "ngx.ipc: cluster reader: entry ", id, " of ", settings!.stream,
            " is not an ngx.ipc alert; skipped");
        last_id = id;
        return true;
    }
    count_gap(seq, id);
    const env = envelope(inst, pid, wid, name, data);
    let delay = 0.01;
    while (true) {
        if (ngx.worker.exiting() || !room(packed(env.length))) {
            return false;
        }
        const [ok, err] = shim.broadcast(LOCAL_NAME, env);
        if (ok !== undefined) {
            break;
        }
        // Not expected (room() keeps the backlogs from refusing): retry after a pause.
        ngx.log(ngx.ERR, "ngx.ipc: cluster reader: handing ", id, " to the workers failed: ", err, "; retrying");
        queued = FLOW;
        if (!pause(delay)) {
            return false;
        }
        delay = math.min(delay * 2, 0.5);
    }
    last_id = id;
    last_seq = seq;
    counters.relayed += 1;
    return true;
}

/** One turn: save the position and renew the lease, read what follows, hand it over. */
function step(): void {
    const s = settings!;
    const out = new LuaTable<number, string>();
    let n = 1;
    // Saving on every turn would double the commands per entry when alerts trickle in
    // one by one; what a reader killed between saves relayed is relayed again.
    ngx.update_time();
    const save = ngx.now() - saved_at >= SAVE_EVERY;
    if (save) {
        const [cargs, ccount] = args_of("2", lease_key, pos_key, token, tostring(LEASE_MS), position(), "0");
        script_args(COMMIT, cargs, true);
        n = resp.encode(out, n, cargs, ccount);
        saved_at = ngx.now();
    }
    const xargs = new LuaTable<number, string>();
    const list = ["XREAD", "COUNT", s.batch, "BLOCK", tostring(BLOCK_MS), "STREAMS", s.stream, last_id];
    for (let i = 0; i < list.length; i++) {
        xargs.set(i + 1, list[i]);
    }
    resp.encode(out, n, xargs, list.length);
    const [sent, serr] = sock!.send(out);
    if (sent === undefined) {
        drop_connection(serr);
        return;
    }
    let c: resp.Reply | undefined = 1;
    let cerr: string | undefined = undefined;
    if (save) {
        [c, cerr] = resp.read(sock!);
    }
    const [r, rerr] = resp.read(sock!);
    if (c === undefined || r === undefined) {
        // NOSCRIPT (SCRIPT FLUSH) included: the next connection loads the script again
        drop_connection(c === undefined ? cerr! : rerr!);
        return;
    }
    failures = 0;
    if (c !== 1) {
        lost_lease();
        return;
    }
    if (r === false) {
        return;
    }
    const streams = r as LuaTable<number, LuaTable<number, resp.Reply>>;
    const entries = streams.get(1).get(2) as LuaTable<number, LuaTable<number, resp.Reply>>;
    const c0 = shim.counters();
    queued = c0.send_queued;
    held = c0.receive_ready + c0.receive_partial;
    for (let i = 1; i <= entries.length(); i++) {
        const e = entries.get(i);
        if (!hand_over(e.get(1) as string, e.get(2) as LuaTable<number, resp.Reply>) || !holding || sock === undefined) {
            return;
        }
    }
}

function reader(premature: boolean): void {
    if (premature) {
        return;
    }
    token = `${ngx.worker.pid()}:${ngx.now()}`;
    while (!ngx.worker.exiting()) {
        if (sock === undefined && !open()) {
            continue;
        }
        if (!holding) {
            const got = acquire("");
            if (got === false && !pause(LEASE_POLL)) {
                break;
            }
            continue;
        }
        step();
    }
    // The next reader (the next generation's worker 0) starts after what this one handed over.
    if (sock !== undefined && holding) {
        commit(true);
    }
    holding = false;
    if (sock !== undefined) {
        sock.close();
        sock = undefined;
    }
}

// ---------------------------------------------------------------------------
// counters
// ---------------------------------------------------------------------------

export function stats(): ClusterStats {
    return {
        running,
        reader: holding,
        position: last_id === "" ? undefined : last_id,
        published: counters.published,
        publish_errors: counters.publish_errors,
        received: counters.received,
        relayed: counters.relayed,
        gaps: counters.gaps,
        lost: counters.lost,
        reconnects: counters.reconnects,
        malformed: counters.malformed,
    };
}
