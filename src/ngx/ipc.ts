// ngx.ipc: alerts between the worker processes of one nginx instance.
// The public API: argument checks, then the pieces that do the work: the handler
// tables and the sender fields (./ipc/dispatch), request/response (./ipc/call),
// waiting and draining (./ipc/loop), pipes and packets in the shim (./ipc/shim).
// The module is a table whose metatable serves the read-only sender fields, so
// that each coroutine reads its own.
import { bad_argument, check_string } from "./ipc/args";
import * as call_ from "./ipc/call";
import * as cluster_ from "./ipc/cluster";
import * as dispatch from "./ipc/dispatch";
import * as loop from "./ipc/loop";
import * as shim from "./ipc/shim";
// The published declaration (types/ngx.ipc.d.ts) is the one statement of what
// users may pass and get back; the implementation takes those types from it.
import type { Agent, Handler, Stats, Worker } from "ngx.ipc";

/** This release (package.json is the source; `make dist` checks every copy). */
const VERSION = "1.0.0";

/** The longest alert name: its length travels in one byte, 255 is reserved. */
const MAX_NAME = 254;
/**
 * The longest alert data: LuaJIT's longest string (LJ_MAX_STR - 1, on Debian's
 * luajit2 and OpenResty's alike), since the receiver gets the data as one string.
 */
const MAX_DATA = 2147483391;
/** The largest pid a pipe can be named after (pid_t is a signed 32-bit number). */
const MAX_PID = 2147483647;

/** The smallest backlog the shim accepts, in bytes. */
const MIN_BACKLOG = 65536;

/** How long ipc.call waits for the answer by default, in seconds. */
const CALL_TIMEOUT = 5;

let started = false;

/**
 * What ipc.configure set, kept until the worker joins (configure may run in the
 * master); 0 leaves the shim's default.
 */
const settings = { send_backlog: 0, receive_backlog: 0 };

type Result = LuaMultiReturn<[true] | [undefined, string]>;
type Answer = LuaMultiReturn<[string] | [undefined, string]>;

/** A pid or a worker id: a number or a numeric string (ngx.var values are strings). */
function check_number(fn: string, value: unknown): number {
    const t = type(value);
    const n = t === "number" || t === "string" ? tonumber(value) : undefined;
    if (n === undefined) {
        bad_argument(fn, 1, "number", value);
    }
    return n;
}

function check_timeout(fn: string, value: unknown): number {
    if (value === undefined) {
        return CALL_TIMEOUT;
    }
    if (type(value) !== "number" || (value as number) < 0) {
        bad_argument(fn, 4, "non-negative number", value);
    }
    return value as number;
}

/** Called only from a check_* function that receive calls directly: level 4 is receive's caller. */
function check_unreserved(name: string): void {
    if (dispatch.is_reserved(name)) {
        error("bad argument #1 to 'receive' (names starting with a NUL byte are reserved for ngx.ipc)", 4);
    }
}

function check_name(value: unknown): string {
    const name = check_string("receive", 1, value);
    check_unreserved(name);
    return name;
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
        if (kt === "string") {
            check_unreserved(key as string);
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
    const [consumer, err] = loop.start(dispatch.run);
    if (consumer === undefined) {
        error(err, 3);
    }
    call_.joined(consumer);
    dispatch.join();
    shim.configure(settings.send_backlog, settings.receive_backlog);
    started = true;
    cluster_.joined();
}
cluster_.attach(start);

function limits(name: string, data: string): string | undefined {
    if (dispatch.is_reserved(name)) {
        return "alert names starting with a NUL byte are reserved for ngx.ipc";
    }
    if (name.length > MAX_NAME) {
        return `alert name is longer than ${MAX_NAME} bytes`;
    }
    if (data.length > MAX_DATA) {
        return `alert data is longer than ${MAX_DATA} bytes (the longest LuaJIT string)`;
    }
    return undefined;
}

/** To a pid; `name` may be a reserved one (ipc.call's). */
function send_pid(pid: number, name: string, data: string): Result {
    if (pid < 1 || pid > MAX_PID || pid % 1 !== 0) {
        return $multi(undefined, `no such worker: ${pid}`);
    }
    return shim.send(pid, name, data);
}

/** To a worker id; `name` may be a reserved one (ipc.call_worker's). */
function send_id(id: number, name: string, data: string): Result {
    if (id % 1 !== 0) {
        return $multi(undefined, `no such worker id: ${id}`);
    }
    return shim.send_worker(id, name, data);
}

function send_checked(pid: number, name: string, data: string): Result {
    const err = limits(name, data);
    if (err !== undefined) {
        return $multi(undefined, err);
    }
    return send_pid(pid, name, data);
}

/** Sends an alert to one worker of this nginx instance (itself included). */
function send(pid: unknown, name: unknown, data: unknown): Result {
    const p = check_number("send", pid);
    const n = check_string("send", 2, name);
    const d = check_string("send", 3, data);
    start("send");
    return send_checked(p, n, d);
}

/**
 * Sends an alert to the worker whose ngx.worker.id() is `id` (0 ... count - 1 of
 * this generation), now or once it joins; a replacement of a killed one included.
 */
function send_worker(id: unknown, name: unknown, data: unknown): Result {
    const i = check_number("send_worker", id);
    const n = check_string("send_worker", 2, name);
    const d = check_string("send_worker", 3, data);
    start("send_worker");
    const err = limits(n, d);
    if (err !== undefined) {
        return $multi(undefined, err);
    }
    return send_id(i, n, d);
}

/** Sends an alert to one joined worker, taking turns; true and its pid. */
function send_any(name: unknown, data: unknown): LuaMultiReturn<[true, number] | [undefined, string]> {
    const n = check_string("send_any", 1, name);
    const d = check_string("send_any", 2, data);
    start("send_any");
    const err = limits(n, d);
    if (err !== undefined) {
        return $multi(undefined, err);
    }
    return shim.send_any(n, d);
}

/** Sends an alert to every worker of this nginx instance, the sender included. */
function broadcast(name: unknown, data: unknown): Result {
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
function reply(name: unknown, data: unknown): Result {
    const n = check_string("reply", 1, name);
    const d = check_string("reply", 2, data);
    const to = dispatch.sender();
    if (to === undefined) {
        error("ngx.ipc: reply can only be used inside a receive handler", 2);
    }
    if (dispatch.sender_remote()) {
        return $multi(undefined, `worker ${to} of nginx instance ${dispatch.sender_instance()} is on another host: reply reaches only this instance's workers`);
    }
    return send_checked(to, n, d);
}

/** Where a call may wait for its answer: where ngx.sleep may. */
const YIELDING = new LuaTable<string, boolean>();
for (const phase of ["rewrite", "access", "content", "timer", "ssl_cert", "ssl_session_fetch",
    "ssl_client_hello", "preread"]) {
    YIELDING.set(phase, true);
}

function check_phase(fn: string): void {
    const phase = ngx.get_phase();
    if (!YIELDING.has(phase)) {
        error(`ngx.ipc: ${fn} cannot be used in the ${phase} phase: it waits for the answer, `
            + "which works only where ngx.sleep does (rewrite, access, content, timers, receive handlers)", 3);
    }
}

function call_checked(fn: string, send: (this: void, to: number, name: string, data: string) => Result,
    to: unknown, name: unknown, data: unknown, timeout: unknown): Answer {
    const t = check_number(fn, to);
    const n = check_string(fn, 2, name);
    const d = check_string(fn, 3, data);
    const seconds = check_timeout(fn, timeout);
    check_phase(fn);
    start(fn);
    const err = limits(n, d);
    if (err !== undefined) {
        return $multi(undefined, err);
    }
    return call_.call(send, t, n, d, seconds);
}

/**
 * Sends an alert to worker `pid` and waits (yielding) for its handler's answer:
 * what it returns, or nil and a message (its error, "timeout", ...).
 */
function call(pid: unknown, name: unknown, data: unknown, timeout?: unknown): Answer {
    return call_checked("call", send_pid, pid, name, data, timeout);
}

/** ipc.call addressed by worker id. */
function call_worker(id: unknown, name: unknown, data: unknown, timeout?: unknown): Answer {
    return call_checked("call_worker", send_id, id, name, data, timeout);
}

/**
 * The joined workers of this generation, `{ id = ..., pid = ... }`, sorted by id,
 * then the privileged agent once it has joined, `{ pid = ..., agent = true }`.
 */
function workers(): (Worker | Agent)[] {
    start("workers");
    return shim.workers();
}

/**
 * Registers `handler` for alerts named `name`; a nil handler deletes it. A table
 * registers several: `receive{ name = handler, ... }`.
 */
function receive(name: unknown, handler?: unknown): true {
    if (type(name) === "table") {
        const list = name as LuaTable<AnyNotNil, unknown>;
        check_handlers(list);
        start("receive");
        for (const [key, fn] of pairs(list)) {
            dispatch.set(tostring(key), fn as Handler);
        }
        return true;
    }
    const n = check_name(name);
    check_handler(2, handler);
    start("receive");
    dispatch.set(n, handler as Handler | undefined);
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
function configure(options: unknown): true {
    check_settings(options);
    const o = options as { send_backlog?: number; receive_backlog?: number };
    settings.send_backlog = o.send_backlog ?? settings.send_backlog;
    settings.receive_backlog = o.receive_backlog ?? settings.receive_backlog;
    if (started) {
        shim.configure(settings.send_backlog, settings.receive_backlog);
    }
    return true;
}

function zero_counters(): shim.Counters {
    const zero = new LuaTable<string, number>();
    for (const name of shim.COUNTERS) {
        zero.set(name, 0);
    }
    return zero as unknown as shim.Counters;
}

/** This worker's counters; all zero before the worker has joined. */
function stats(): Stats {
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
        calls: {
            sent: call_.counters.sent,
            answered: call_.counters.answered,
            timeouts: call_.counters.timeouts,
            late: call_.counters.late,
        },
        cluster: cluster_.stats(),
    };
}

const ipc = {
    _VERSION: VERSION,
    send, send_worker, send_any, broadcast, reply, call, call_worker, receive, workers,
    configure, stats,
    cluster: { configure: cluster_.configure, broadcast: cluster_.broadcast },
};

/** The read-only fields, each for the coroutine that reads it. */
const FIELDS = new LuaTable<string, (this: void) => unknown>();
FIELDS.set("sender", dispatch.sender);
FIELDS.set("sender_id", dispatch.sender_id);
FIELDS.set("sender_instance", dispatch.sender_instance);

setmetatable(ipc, {
    __index(this: void, _t: unknown, key: unknown): unknown {
        const field = FIELDS.get(key as string);
        return field === undefined ? undefined : field();
    },
    __newindex(this: void, t: Record<string, unknown>, key: string, value: unknown): void {
        if (FIELDS.has(key)) {
            error(`ngx.ipc: ${tostring(key)} is read-only`, 2);
        }
        rawset(t, key, value);
    },
});

export = ipc;
