// ngx.ipc.events.compat: the API of lua-resty-events' `resty.events.compat`, the
// lua-resty-worker-events style functions (configure, post, register, ...) over one
// ngx.ipc.events object per worker.
import * as events from "./events";

type Result = LuaMultiReturn<["done"] | [undefined, string]>;

let ev: events.Events | undefined;
let configured_ = false;

/** The subscription ids of each registered callback. */
const ids = new LuaTable<events.Callback, LuaTable<number, string>>();

function current(fn: string): events.Events {
    if (ev === undefined) {
        error(`ngx.ipc.events.compat: ${fn} before configure`, 3);
    }
    return ev;
}

/**
 * Creates this worker's events object with `opts` (those of ngx.ipc.events.new) and
 * starts it; call it from init_worker_by_lua*. true, or nil and why not.
 */
function configure(opts: unknown): LuaMultiReturn<[true] | [undefined, string]> {
    const e = events.new(opts);
    ev = e;
    const [ok, err] = events.init_worker(e);
    if (ok === undefined) {
        return $multi(undefined, err!);
    }
    configured_ = true;
    return $multi(true);
}

function configured(): boolean {
    return configured_;
}

/** Nothing to run: no broker, no socket. */
function run(): void {
    return;
}

function published(e: events.Events, target: unknown, source: unknown, event: unknown, data: unknown): Result {
    const [ok, err] = events.publish(e, target, source, event, data);
    if (ok === undefined) {
        return $multi(undefined, err!);
    }
    return $multi("done" as const);
}

/** Publishes to every worker, or to one with `unique`; "done", or nil and why not. */
function post(source: unknown, event: unknown, data?: unknown, unique?: unknown): Result {
    const e = current("post");
    return published(e, unique === undefined ? "all" : unique, source, event, data);
}

/** Publishes to this worker only; "done", or nil and why not. */
function post_local(source: unknown, event: unknown, data?: unknown): Result {
    return published(current("post_local"), "current", source, event, data);
}

/**
 * Calls `callback(data, event, source, wid)` for the events of `source` (nil: all)
 * named `event` or one of the further names (none: all events of the source).
 */
function register(callback: unknown, source?: unknown, event?: unknown, ...more: unknown[]): void {
    const e = current("register");
    if (type(callback) !== "function") {
        error(`bad argument #1 to 'register' (function expected, got ${type(callback)})`, 2);
    }
    const cb = callback as events.Callback;
    let list = ids.get(cb);
    if (list === undefined) {
        list = new LuaTable();
        ids.set(cb, list);
    }
    const s = source ?? "*";
    list.set(list.length() + 1, events.subscribe(e, s, event ?? "*", cb));
    const n = select("#", ...more);
    for (let i = 1; i <= n; i++) {
        const name = select(i, ...more)[0];
        list.set(list.length() + 1, events.subscribe(e, s, name ?? "*", cb));
    }
}

/**
 * Removes every subscription of `callback`, whatever source and events it was
 * registered for (the library's compat module does the same); true if it had one.
 */
function unregister(callback: unknown): boolean {
    const cb = callback as events.Callback;
    const list = ids.get(cb);
    if (list === undefined || ev === undefined) {
        return false;
    }
    ids.delete(cb);
    for (let i = 1; i <= list.length(); i++) {
        events.unsubscribe(ev, list.get(i));
    }
    return true;
}

/**
 * Events arrive without polling; like the library's compat module, this yields
 * briefly where yielding is possible, so that events already sent get handled.
 */
function poll(): "done" {
    const phase = ngx.get_phase();
    if (phase === "rewrite" || phase === "access" || phase === "content" || phase === "timer") {
        ngx.sleep(0.002);
    }
    return "done";
}

const _VERSION = events._VERSION;

export {
    configure, configured, run, post, post_local, register, unregister, poll,
    register as register_weak, _VERSION,
};
