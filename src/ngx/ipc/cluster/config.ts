// The options of ipc.cluster.configure: their checks and defaults, turned into the
// settings every other part of the cluster reads (through ./state). Nothing here
// keeps state or talks to Redis.
import * as resp from "../resp";

/**
 * Entries per XREAD: at most BATCH, and few enough that a reply of entries of
 * max_data bytes stays within BATCH_BYTES (it is held whole while relayed).
 */
const BATCH = 512;
const BATCH_BYTES = 33554432;

export interface Settings {
    /** The primary (with sentinels: its login, TLS and db; host and port come from them). */
    endpoint: resp.Endpoint;
    reader_endpoint: resp.Endpoint;
    /** The sentinels to ask for the primary, or undefined: `redis` is the primary. */
    sentinels: resp.Endpoint[] | undefined;
    master_name: string;
    /** WAIT after each pipelined batch of publishes: replicas (0: no WAIT) and its timeout in ms. */
    wait_replicas: number;
    wait_ms: number;
    stream: string;
    seq_key: string;
    maxlen: string;
    max_data: number;
    batch: string;
    timeout_ms: number;
    keepalive_ms: number;
}

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
for (const k of ["redis", "username", "password", "db", "stream", "maxlen", "max_data", "timeout", "pool_size", "keepalive",
    "ssl", "ssl_verify", "server_name", "ssl_cert", "ssl_key", "sentinels", "master_name", "sentinel_username",
    "sentinel_password", "wait"]) {
    KNOWN.set(k, true);
}

function parse_address(key: string, redis: string): LuaMultiReturn<[string, number | undefined]> {
    if (string.sub(redis, 1, 5) === "unix:") {
        return $multi(redis, undefined);
    }
    const [host, port] = string.match(redis, "^%[?([^%[%]]+)%]?:(%d+)$");
    const p = tonumber(port);
    if (host === undefined || p === undefined || p < 1 || p > 65535) {
        option_error(`${key} must be "host:port" or "unix:/path", got "${redis}"`);
    }
    return $multi(host, p);
}

function opt_boolean(o: LuaTable<string, unknown>, key: string, def: boolean): boolean {
    const v = o.get(key);
    if (v === undefined) {
        return def;
    }
    if (type(v) !== "boolean") {
        option_error(`${key} must be a boolean`);
    }
    return v as boolean;
}

function read_pem(key: string, path: string): string {
    const [f, err] = io.open(path, "r");
    if (f === undefined) {
        option_error(`${key}: cannot read ${path}: ${err}`);
    }
    const pem = f.read("*a");
    f.close();
    if (pem === undefined || string.find(pem, "-----BEGIN", 1, true)[0] === undefined) {
        option_error(`${key}: ${path} holds no PEM data`);
    }
    return pem;
}

/** A host name (not an address): the default server_name, checked against the certificate. */
function is_name(host: string): boolean {
    return string.find(host, ":", 1, true)[0] === undefined && string.match(host, "^[%d%.]+$")[0] === undefined
        && string.sub(host, 1, 5) !== "unix:";
}

function tls_of(o: LuaTable<string, unknown>, host: string | undefined): resp.Tls | undefined {
    const ssl = opt_boolean(o, "ssl", false);
    const cert = opt_string(o, "ssl_cert", undefined);
    const key = opt_string(o, "ssl_key", undefined);
    if (!ssl) {
        for (const k of ["ssl_verify", "server_name", "ssl_cert", "ssl_key"]) {
            if (o.get(k) !== undefined) {
                option_error(`${k} needs ssl = true`);
            }
        }
        return undefined;
    }
    if ((cert === undefined) !== (key === undefined)) {
        option_error("ssl_cert and ssl_key go together");
    }
    return {
        verify: opt_boolean(o, "ssl_verify", true),
        server_name: opt_string(o, "server_name", host !== undefined && is_name(host) ? host : undefined),
        cert_pem: cert === undefined ? undefined : read_pem("ssl_cert", cert),
        key_pem: key === undefined ? undefined : read_pem("ssl_key", key!),
    };
}

/** `sentinels`: a non-empty list of "host:port", each an endpoint with the sentinel's login. */
function sentinels_of(o: LuaTable<string, unknown>, tls: resp.Tls | undefined): resp.Endpoint[] | undefined {
    const v = o.get("sentinels");
    if (v === undefined) {
        for (const k of ["master_name", "sentinel_username", "sentinel_password"]) {
            if (o.get(k) !== undefined) {
                option_error(`${k} needs sentinels`);
            }
        }
        return undefined;
    }
    const list = v as LuaTable<number, unknown>;
    if (type(v) !== "table" || list.length() === 0) {
        option_error(`sentinels must be a list of "host:port"`);
    }
    if (o.get("redis") !== undefined) {
        option_error("redis and sentinels exclude each other: with sentinels, they name the primary");
    }
    if (opt_string(o, "master_name", undefined) === undefined) {
        option_error("master_name is required with sentinels");
    }
    const username = opt_string(o, "sentinel_username", undefined);
    const password = opt_string(o, "sentinel_password", undefined);
    const out: resp.Endpoint[] = [];
    for (let i = 1; i <= list.length(); i++) {
        const a = list.get(i);
        if (type(a) !== "string") {
            option_error(`sentinels must be a list of "host:port"`);
        }
        const [host, port] = parse_address("each of sentinels", a as string);
        out.push({ host, port, username, password, db: 0, pool: `ngx.ipc.sentinel:${a as string}`, pool_size: 1, tls });
    }
    return out;
}

function wait_of(o: LuaTable<string, unknown>): LuaMultiReturn<[number, number]> {
    const v = o.get("wait");
    if (v === undefined) {
        return $multi(0, 0);
    }
    if (type(v) !== "table") {
        option_error("wait must be a table { replicas = n, timeout = ms }");
    }
    const w = v as LuaTable<string, unknown>;
    for (const [k] of pairs(w)) {
        if (k !== "replicas" && k !== "timeout") {
            option_error(`unknown option 'wait.${tostring(k)}'`);
        }
    }
    const replicas = w.get("replicas");
    const ms = w.get("timeout") ?? 100;
    if (type(replicas) !== "number" || (replicas as number) < 1 || (replicas as number) % 1 !== 0) {
        option_error("wait.replicas must be a whole number, at least 1");
    }
    if (type(ms) !== "number" || (ms as number) < 1 || (ms as number) % 1 !== 0) {
        option_error("wait.timeout must be a whole number of milliseconds, at least 1");
    }
    return $multi(replicas as number, ms as number);
}

export function check_options(options: unknown): Settings {
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
    if (redis === undefined && o.get("sentinels") === undefined) {
        option_error(`redis ("host:port") is required`);
    }
    let host = "";
    let port: number | undefined = undefined;
    if (redis !== undefined) {
        [host, port] = parse_address("redis", redis);
    }
    const tls = tls_of(o, redis === undefined ? undefined : host);
    const sentinels = sentinels_of(o, tls);
    const [wait_replicas, wait_ms] = wait_of(o);
    const db = opt_number(o, "db", 0, 0, true);
    const stream = opt_string(o, "stream", "ngx.ipc")!;
    const max_data = opt_number(o, "max_data", 1048576, 0, true);
    const endpoint: resp.Endpoint = {
        host,
        port,
        username: opt_string(o, "username", undefined),
        password: opt_string(o, "password", undefined),
        db,
        pool: `ngx.ipc.cluster:${redis ?? ""}:${db}${tls === undefined ? "" : ":tls"}`,
        pool_size: opt_number(o, "pool_size", 16, 1, true),
        tls,
    };
    return {
        endpoint,
        // its own pool name: the reader keeps its connection to itself
        reader_endpoint: {
            host, port, username: endpoint.username, password: endpoint.password, db,
            pool: `${endpoint.pool}:reader`, pool_size: 1, tls,
        },
        sentinels,
        master_name: (o.get("master_name") as string | undefined) ?? "",
        wait_replicas,
        wait_ms,
        stream,
        seq_key: `${stream}:seq`,
        maxlen: tostring(opt_number(o, "maxlen", 100000, 1, true)),
        max_data,
        batch: tostring(math.max(1, math.min(BATCH, math.floor(BATCH_BYTES / (max_data + 512))))),
        timeout_ms: math.ceil(opt_number(o, "timeout", 1, 0.001, false) * 1000),
        keepalive_ms: math.ceil(opt_number(o, "keepalive", 60, 0, false) * 1000),
    };
}
