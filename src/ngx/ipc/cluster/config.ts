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
