// ngx.ipc.mlcache: the table lua-resty-mlcache takes as `opts.ipc`, so that set(),
// delete() and purge() in one worker evict the key (or everything) from every
// worker's L1 as the alert arrives, with no shared dict and no update() polling.
//
// mlcache hands register_listeners its instance's events, { name = { channel =,
// handler = } }, then calls broadcast(channel, data) and poll(timeout). Every
// channel travels in one alert name of ours, the channel inside the data, so a
// channel of any length fits and one receive handler serves every instance:
//     data = <decimal length of channel> ":" <channel> <mlcache's data>
// Listeners are held weakly: mlcache keeps its events table, hence its handlers,
// for as long as the instance lives, and an instance made per request must not
// live forever for being listened to (resty.mlcache.ipc dies with its instance too).
import { bad_argument, check_string } from "../args";
import ipc = require("../../ipc");

/** The alert name of every mlcache event (names starting with NUL are the core's). */
export const ALERT = "ngx.ipc.mlcache";

type Listener = (this: void, data: string) => unknown;
type Result = LuaMultiReturn<[true] | [undefined, string]>;

/** The listeners of one channel, in the order registered; holes are listeners collected. */
interface Listeners {
    fns: LuaTable<number, Listener>;
    n: number;
}

const WEAK_VALUES = { __mode: "v" as const };

const channels = new LuaTable<string, Listeners>();
/**
 * The purge handlers of instances made before the fork (init_by_lua*): a worker
 * that starts listening late runs them once, since it may have missed
 * invalidations meanwhile (alerts that reached it before it listened, when
 * something else in it had already joined ngx.ipc, had no handler).
 */
const early = setmetatable(new LuaTable<number, Listener>(), WEAK_VALUES);
let early_n = 0;
let listening = false;

const find = string.find;
const sub = string.sub;
const log = ngx.log;
const get_phase = ngx.get_phase;
const ERR = ngx.ERR;

function add(channel: string, fn: Listener): void {
    let list = channels.get(channel);
    if (list === undefined) {
        list = { fns: setmetatable(new LuaTable<number, Listener>(), WEAK_VALUES), n: 0 };
        channels.set(channel, list);
    }
    list.n += 1;
    list.fns.set(list.n, fn);
}

/** Closes the holes that collected listeners left, keeping the order. */
function compact(channel: string, list: Listeners): void {
    const fns = list.fns;
    let kept = 0;
    for (const i of $range(1, list.n)) {
        const fn = fns.get(i);
        if (fn !== undefined) {
            kept += 1;
            if (kept !== i) {
                fns.set(kept, fn);
                fns.delete(i);
            }
        }
    }
    list.n = kept;
    if (kept === 0) {
        channels.delete(channel);
    }
}

function call(channel: string, fn: Listener, data: string): void {
    const [ok, err] = pcall(fn, data);
    if (!ok) {
        log(ERR, `ngx.ipc.mlcache: listener of channel "${channel}" failed: `, tostring(err));
    }
}

/** Runs every listener of `channel`; an error in one is logged and the others still run. */
function run(channel: string, data: string): void {
    const list = channels.get(channel);
    if (list === undefined) {
        return;
    }
    const fns = list.fns;
    let holes = false;
    for (const i of $range(1, list.n)) {
        const fn = fns.get(i);
        if (fn === undefined) {
            holes = true;
        } else {
            call(channel, fn, data);
        }
    }
    if (holes) {
        compact(channel, list);
    }
}

function on_alert(this: void, frame: string): void {
    const [colon] = find(frame, ":", 1, true);
    const len = colon === undefined ? undefined : tonumber(sub(frame, 1, colon - 1));
    if (colon === undefined || len === undefined || len < 0 || len % 1 !== 0 || colon + len > frame.length) {
        log(ERR, `ngx.ipc.mlcache: dropped an alert "${ALERT}" that is no mlcache event (${frame.length} bytes)`);
        return;
    }
    run(sub(frame, colon + 1, colon + len), sub(frame, colon + len + 1));
}

// A function of its own rather than a closure in listen(): a function that makes
// closures is not compiled by LuaJIT, and poll() runs in update() loops.
function receive(this: void): void {
    ipc.receive(ALERT, on_alert);
}

/**
 * Starts receiving in this worker, once: true, or nil and why ngx.ipc cannot
 * (tried again at the next call). In init_by_lua* (the master) listeners are only
 * recorded, and every worker inherits them.
 */
function listen(): Result {
    if (listening || get_phase() === "init") {
        return $multi(true);
    }
    const [ok, err] = pcall(receive);
    if (!ok) {
        return $multi(undefined, tostring(err));
    }
    listening = true;
    for (const i of $range(1, early_n)) {
        const fn = early.get(i);
        if (fn !== undefined) {
            call("(purge of an instance made in init_by_lua)", fn, "");
        }
    }
    early_n = 0;
    return $multi(true);
}

/** Checks the whole table before any listener is added. */
function check_events(events: unknown): LuaTable<AnyNotNil, { channel: string; handler: Listener }> {
    if (type(events) !== "table") {
        bad_argument("register_listeners", 1, "table", events);
    }
    const list = events as LuaTable<AnyNotNil, unknown>;
    for (const [, ev] of pairs(list)) {
        const e = ev as { channel?: unknown; handler?: unknown };
        if (type(ev) !== "table" || type(e.channel) !== "string" || type(e.handler) !== "function") {
            error("bad argument #1 to 'register_listeners' (table of { channel = string, handler = function } expected)", 3);
        }
    }
    return list as LuaTable<AnyNotNil, { channel: string; handler: Listener }>;
}

function check_timeout(timeout: unknown): void {
    if (timeout !== undefined && type(timeout) !== "number") {
        bad_argument("poll", 1, "number", timeout);
    }
}

/**
 * Registers each `{ channel = ..., handler = ... }` of `events` (mlcache's
 * instance events): the handler runs in every worker, once per broadcast on its
 * channel, as the alert arrives. Several instances may listen to one channel.
 */
export function register_listeners(events: unknown): Result {
    const list = check_events(events);
    const before_fork = get_phase() === "init";
    for (const [key, ev] of pairs(list)) {
        add(ev.channel, ev.handler);
        if (before_fork && key === "purge") {
            early_n += 1;
            early.set(early_n, ev.handler);
        }
    }
    return listen();
}

/**
 * Sends `data` on `channel` to every worker, this one included: true, or nil and
 * the reason. In init_by_lua* there is no worker yet: nothing to invalidate, true.
 */
export function broadcast(channel: unknown, data: unknown): Result {
    const c = check_string("broadcast", 1, channel);
    const d = check_string("broadcast", 2, data);
    if (get_phase() === "init") {
        return $multi(true);
    }
    const [ok, err] = listen();
    if (ok === undefined) {
        return $multi(undefined, err);
    }
    return ipc.broadcast(ALERT, `${c.length}:${c}${d}`);
}

/**
 * What update() calls: events are handled as they arrive, so there is nothing to
 * catch up with; true. `timeout` (seconds) is checked and ignored.
 */
export function poll(timeout?: unknown): Result {
    check_timeout(timeout);
    return listen();
}
