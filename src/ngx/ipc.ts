// ngx.ipc: alerts between the worker processes of one nginx instance.
// The public API: argument checks, the handler table, and dispatch, which sets
// ipc.sender while a handler runs. Pipes and packets live in the shim (./ipc/shim),
// waiting and draining in the receive loop (./ipc/loop).
import * as cluster_ from "./ipc/cluster";
import * as dispatch_ from "./ipc/dispatch";
import * as loop from "./ipc/loop";
import * as shim from "./ipc/shim";

export type Handler = (this: void, data: string) => void;

/** The longest alert name: its length travels in one byte, 255 is reserved. */
const MAX_NAME = 254;
/**
 * The longest alert data: LuaJIT's longest string (LJ_MAX_STR - 1, on Debian's
 * luajit2 and OpenResty's alike), since the receiver gets the data as one string.
 */
const MAX_DATA = 2147483391;
/** The largest pid a pipe can be named after (pid_t is a signed 32-bit number). */
const MAX_PID = 2147483647;

/** Inside a receive handler: the sending worker's pid; nil at all other times. */
export let sender: number | undefined = undefined;
// STUB (until main's dispatch.ts): the origin of a cluster alert, for its handler only.
export let sender_id: number | undefined = undefined;
export let sender_instance: string | undefined = undefined;
let sender_remote = false;

/** Alerts across hosts (./ipc/cluster). */
export const cluster = { configure: cluster_.configure, broadcast: cluster_.broadcast };

/** The smallest backlog the shim accepts, in bytes. */
const MIN_BACKLOG = 65536;

const handlers = new LuaTable<string, Handler>();
let started = false;

/**
 * What ipc.configure set, kept until the worker joins (configure may run in the
 * master); 0 leaves the shim's default.
 */
const settings = { send_backlog: 0, receive_backlog: 0 };

type Result = LuaMultiReturn<[true] | [undefined, string]>;

// Argument errors read like Lua's own and point at the caller of the public function:
// bad_argument is called only from a check_* function, which the public function
// calls directly (never as a tail call), hence level 4.
function bad_argument(fn: string, n: number, expected: string, got: unknown): never {
    error(`bad argument #${n} to '${fn}' (${expected} expected, got ${type(got)})`, 4);
}

function check_string(fn: string, n: number, value: unknown): string {
    const t = type(value);
    if (t === "string") {
        return value as string;
    }
    if (t === "number") {
        return tostring(value);
    }
    bad_argument(fn, n, "string", value);
}

function check_pid(fn: string, value: unknown): number {
    const t = type(value);
    const pid = t === "number" || t === "string" ? tonumber(value) : undefined;
    if (pid === undefined) {
        bad_argument(fn, 1, "number", value);
    }
    return pid;
}

function check_handler(n: number, value: unknown): void {
    if (value !== undefined && type(value) !== "function") {
        bad_argument("receive", n, "function", value);
    }
}

/** Checks the whole table form of receive before anything changes. */
function check_handlers(list: LuaTable<AnyNotNil, unknown>): void {
    for (const [key, fn] of pairs(list)) {
        const kt = type(key);
        if (kt !== "string" && kt !== "number") {
            bad_argument("receive", 1, "table of name = function", key);
        }
        if (type(fn) !== "function") {
            bad_argument("receive", 1, "table of name = function", fn);
        }
    }
}

/** Joins the worker to the instance on first use; refuses the master (init_by_lua*). */
function start(fn: string): void {
    if (started) {
        return;
    }
    if (ngx.get_phase() === "init") {
        error(`ngx.ipc: ${fn} cannot be used in init_by_lua*; use init_worker_by_lua* or a later phase`, 3);
    }
    const [ok, err] = loop.start(dispatch);
    if (ok === undefined) {
        error(err, 3);
    }
    shim.configure(settings.send_backlog, settings.receive_backlog);
    started = true;
    cluster_.joined();
}
cluster_.attach(start);

function limits(name: string, data: string): string | undefined {
    if (name.length > MAX_NAME) {
        return `alert name is longer than ${MAX_NAME} bytes`;
    }
    if (data.length > MAX_DATA) {
        return `alert data is longer than ${MAX_DATA} bytes (the longest LuaJIT string)`;
    }
    return undefined;
}

function send_checked(pid: number, name: string, data: string): Result {
    const err = limits(name, data);
    if (err !== undefined) {
        return $multi(undefined, err);
    }
    if (pid < 1 || pid > MAX_PID || pid % 1 !== 0) {
        return $multi(undefined, `no such worker: ${pid}`);
    }
    return shim.send(pid, name, data);
}

/** Sends an alert to one worker of this nginx instance (itself included). */
export function send(pid: unknown, name: unknown, data: unknown): Result {
    const p = check_pid("send", pid);
    const n = check_string("send", 2, name);
    const d = check_string("send", 3, data);
    start("send");
    return send_checked(p, n, d);
}

/** Sends an alert to every worker of this nginx instance, the sender included. */
export function broadcast(name: unknown, data: unknown): Result {
    const n = check_string("broadcast", 1, name);
    const d = check_string("broadcast", 2, data);
    start("broadcast");
    const err = limits(n, d);
    if (err !== undefined) {
        return $multi(undefined, err);
    }
    return shim.broadcast(n, d);
}

/** Inside a receive handler: sends an alert back to the worker that sent this one. */
export function reply(name: unknown, data: unknown): Result {
    const n = check_string("reply", 1, name);
    const d = check_string("reply", 2, data);
    if (sender === undefined) {
        error("ngx.ipc: reply can only be used inside a receive handler", 2);
    }
    if (sender_remote) {
        return $multi(undefined, `ngx.ipc: reply: the alert came from another nginx instance (${sender_instance})`);
    }
    return send_checked(sender, n, d);
}

/**
 * Registers `handler` for alerts named `name`; a nil handler deletes it. A table
 * registers several: `receive{ name = handler, ... }`.
 */
export function receive(name: unknown, handler?: unknown): true {
    if (type(name) === "table") {
        const list = name as LuaTable<AnyNotNil, unknown>;
        check_handlers(list);
        start("receive");
        for (const [key, fn] of pairs(list)) {
            handlers.set(tostring(key), fn as Handler);
        }
        return true;
    }
    const n = check_string("receive", 1, name);
    check_handler(2, handler);
    start("receive");
    if (handler === undefined) {
        handlers.delete(n);
    } else {
        handlers.set(n, handler as Handler);
    }
    return true;
}

function check_settings(options: unknown): void {
    if (type(options) !== "table") {
        bad_argument("configure", 1, "table", options);
    }
    for (const [key, value] of pairs(options as LuaTable<AnyNotNil, unknown>)) {
        if (key !== "send_backlog" && key !== "receive_backlog") {
            error(`bad argument #1 to 'configure' (unknown option '${tostring(key)}')`, 3);
        }
        if (type(value) !== "number" || (value as number) % 1 !== 0 || (value as number) < MIN_BACKLOG) {
            error(`bad argument #1 to 'configure' (${key} must be a whole number of bytes, at least ${MIN_BACKLOG})`, 3);
        }
    }
}

/**
 * Sets this worker's caps: `send_backlog`, the bytes queued for one destination
 * before send refuses; `receive_backlog`, twice the bytes of complete alerts held
 * for handlers before reading pauses (nothing that arrives is dropped for it; an
 * alert to oneself is refused past it). Usable in every phase,
 * init_by_lua* included (then every worker inherits it).
 */
export function configure(options: unknown): true {
    check_settings(options);
    const o = options as { send_backlog?: number; receive_backlog?: number };
    settings.send_backlog = o.send_backlog ?? settings.send_backlog;
    settings.receive_backlog = o.receive_backlog ?? settings.receive_backlog;
    if (started) {
        shim.configure(settings.send_backlog, settings.receive_backlog);
    }
    return true;
}

export interface Stats {
    alerts_sent: number;
    bytes_sent: number;
    /** write() calls that put packets into pipes (several small alerts share one). */
    writes: number;
    alerts_received: number;
    bytes_received: number;
    /** Bytes waiting in send queues, all destinations. */
    send_queued: number;
    /** Bytes of complete alerts waiting for handlers, and of alerts still arriving. */
    receive_ready: number;
    receive_partial: number;
    /** Bytes queued per destination pid. */
    backlog: LuaTable<number, number>;
    /** Sends refused with nil, err, by reason. */
    refused: { send_backlog: number; no_worker: number };
    /** Alerts or bytes lost, by reason; each is also logged. */
    dropped: {
        corrupt_packets: number;
        corrupt_bytes: number;
        truncated: number;
        exited: number;
        out_of_memory: number;
    };
    /** The cluster part of this worker (./ipc/cluster). */
    cluster: cluster_.Stats;
}

function zero_counters(): shim.Counters {
    const zero = new LuaTable<string, number>();
    for (const name of shim.COUNTERS) {
        zero.set(name, 0);
    }
    return zero as unknown as shim.Counters;
}

/** This worker's counters; all zero before the worker has joined. */
export function stats(): Stats {
    const c = started ? shim.counters() : zero_counters();
    return {
        alerts_sent: c.alerts_sent,
        bytes_sent: c.bytes_sent,
        writes: c.writes,
        alerts_received: c.alerts_received,
        bytes_received: c.bytes_received,
        send_queued: c.send_queued,
        receive_ready: c.receive_ready,
        receive_partial: c.receive_partial,
        backlog: started ? shim.backlog() : new LuaTable<number, number>(),
        refused: { send_backlog: c.refused_backlog, no_worker: c.refused_no_worker },
        dropped: {
            corrupt_packets: c.packets_discarded,
            corrupt_bytes: c.bytes_discarded,
            truncated: c.alerts_truncated,
            exited: c.lost_exited,
            out_of_memory: c.dropped_memory,
        },
        cluster: cluster_.stats(),
    };
}

// STUB (until main's dispatch.ts): runs a handler with the sender fields set.
function run_handler(name: string, data: string, from: number, id: number | undefined,
    instance: string | undefined, remote: boolean): void {
    const handler = handlers.get(name);
    if (handler === undefined) {
        return;
    }
    sender = from;
    sender_id = id;
    sender_instance = instance;
    sender_remote = remote;
    const [ok, err] = xpcall(handler, debug.traceback, data);
    sender = undefined;
    sender_id = undefined;
    sender_instance = undefined;
    sender_remote = false;
    if (!ok) {
        ngx.log(ngx.ERR, `ngx.ipc: handler for alert "${name}" from worker ${from} failed: `,
            tostring(err));
    }
}
dispatch_.bind(run_handler);

function dispatch(from: number, name: string, data: string): void {
    if (string.sub(name, 1, 1) === dispatch_.RESERVED) {
        const fn = dispatch_.reserved_handler(name);
        if (fn !== undefined) {
            fn(from, data);
        }
        return;
    }
    run_handler(name, data, from, undefined, undefined, false);
}
