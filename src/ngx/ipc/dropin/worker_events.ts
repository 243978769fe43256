// ngx.ipc.worker_events: the API of lua-resty-worker-events' `resty.worker.events`
// on ngx.ipc's pipes instead of a shared dict that every worker polls, in the two
// flavours of the library's releases (create(V1), create(V2): each call makes one
// module with its own handlers, queues and alerts).
//
// What callers of release 1.0.0 (`_VERSION` "0.3.3", the one lua-resty-healthcheck
// accepts; `ngx.ipc.worker_events`) observe, and V1 keeps:
// - `post` runs the posting worker's handlers before it returns ("done"), and
//   `post_local` likewise; posted from inside a handler, the event waits until the
//   running handler returns and `post` answers "recursive" (the event is still
//   handled before the outer `post` or `poll` returns).
// - Other workers handle the event when it arrives: no interval, no `poll` needed.
// - Handlers get `data, event, source, pid` (pid nil for `post_local`); a handler
//   that raises is logged with its traceback and the next one still runs.
// - A unique event is handled by one worker only: the worker picked by a hash of
//   the unique value, which ignores the same value again within `timeout`.
// Events go out as one alert (string.buffer encodes source, event and data); the
// poster's own copy of a broadcast is dropped on arrival, it was handled in `post`.
//
// Release 2.x (`_VERSION` "2.0.1"; `ngx.ipc.worker_events.v2`) handles nothing
// inside the call: `post` returns true and the poster handles its own copy when it
// arrives, as every other worker does; `post_local` queues the event and returns
// true, and the next "poll" runs that queue before any other event. With no
// polling timer, the next poll is whichever comes first: the arrival of an event
// of the module, `poll()`, or a zero-delay timer `post_local` starts.
import ipc = require("../../ipc");
import * as process from "ngx.process";
import { decode, encode } from "./value";

type Callback = (this: void, data: unknown, event: unknown, source: unknown, pid: number | undefined) => unknown;
type Posted = LuaMultiReturn<[string | true] | [undefined, string]>;

/** Handlers of one level (all events, one source, one event of a source), in registration order. */
interface List {
    n: number;
    /** May have holes: unregister leaves one, the collector another in a weak list. */
    fns: LuaTable<number, Callback>;
}

interface Level {
    weak: List;
    strong: List;
}

interface SourceLevel extends Level {
    events: LuaMap<AnyNotNil, Level>;
}

/** What an event carries from the poster to the other workers. */
interface Wire {
    s: string;
    e: string;
    d: unknown;
    /** The unique value, as text: set only for a unique event. */
    u?: string;
}

/** What tells the releases apart. */
export interface Flavour {
    /** `_VERSION`. */
    version: string;
    /** The module's name: its alerts' names start with it. */
    name: string;
    /**
     * 1.0.0: `post` and `post_local` run this worker's handlers before they return
     * (and the poster drops its own copy of a broadcast). 2.x: they return true,
     * the poster handles its copy on arrival, `post_local` waits for the next poll.
     */
    handle_in_post: boolean;
    /** 1.0.0's "handling event" debug line ends in ", data=..."; 2.x dropped it. */
    log_data: boolean;
}

export const V1: Flavour = { version: "0.3.3", name: "ngx.ipc.worker_events", handle_in_post: true, log_data: true };
// Its own alerts, not V1's: a module made for one release cannot tell which
// release posted an alert it shares (V1 posters handle their copy in post and drop
// it on arrival, V2 posters on arrival), and each has its own handlers, as two
// copies of the library on two shared dicts would.
export const V2: Flavour = { version: "2.0.1", name: "ngx.ipc.worker_events.v2", handle_in_post: false, log_data: false };

const LOG = "worker-events: ";

const DEFAULT_UNIQUE_TIMEOUT = 2;
/** The watch for the worker's exit re-arms itself this often, in seconds. */
const EXIT_WATCH = 3600;
/** Remembered unique values are swept when this many were added since the last sweep. */
const SWEEP_EVERY = 1000;

const DEBUG = ngx.DEBUG;
const ERR = ngx.ERR;
const WARN = ngx.WARN;
const log = ngx.log;
const get_phase = ngx.get_phase;
const timer_at = ngx.timer.at;
const now = ngx.now;
const crc32 = ngx.crc32_short;
const worker_id = ngx.worker.id;
const worker_count = ngx.worker.count;
const traceback = debug.traceback;
const running = coroutine.running;
const co_status = coroutine.status;

const WEAK_VALUES = { __mode: "v" as const };

function new_list(weak: boolean): List {
    const fns = new LuaTable<number, Callback>();
    if (weak) {
        setmetatable(fns, WEAK_VALUES);
    }
    return { n: 0, fns };
}

function new_level(): Level {
    return { weak: new_list(true), strong: new_list(false) };
}

/** `v` as ngx.log takes it: strings, numbers, booleans and nil as they are (no new string). */
function describe(v: unknown): unknown {
    const t = type(v);
    return t === "string" || t === "number" || t === "boolean" || t === "nil" ? v : tostring(v);
}

function call(fn: Callback, data: unknown, event: string, source: string, pid: number | undefined): void {
    const [ok, err] = xpcall(fn, traceback, data, event, source, pid);
    if (!ok) {
        log(ERR, LOG, "handler failed for event '", event, "' of source '", source,
            "' (pid ", tostring(pid), "): ", describe(err));
    }
}

/** Closes the holes in `list`, keeping the order of what is left. */
function compact(list: List): void {
    const fns = list.fns;
    const n = list.n;
    let j = 0;
    for (let i = 1; i <= n; i++) {
        const fn = fns.get(i);
        if (fn !== undefined) {
            j++;
            fns.set(j, fn);
        }
    }
    for (let i = j + 1; i <= n; i++) {
        fns.delete(i);
    }
    list.n = j;
}

function run_list(list: List, data: unknown, event: string, source: string, pid: number | undefined): void {
    let holes = false;
    // list.n is read on every turn: a handler may register another one
    for (let i = 1; i <= list.n; i++) {
        const fn = list.fns.get(i);
        if (fn === undefined) {
            holes = true;
        } else {
            call(fn, data, event, source, pid);
        }
    }
    if (holes) {
        compact(list);
    }
}

function run_level(level: Level, data: unknown, event: string, source: string, pid: number | undefined): void {
    run_list(level.weak, data, event, source, pid);
    run_list(level.strong, data, event, source, pid);
}

function check_names(source: unknown, event: unknown): string | undefined {
    if (type(source) !== "string" || source === "") {
        return "source is required";
    }
    if (type(event) !== "string" || event === "") {
        return "event is required";
    }
    return undefined;
}

function add(level: Level, weak: boolean, callback: Callback): void {
    const list = weak ? level.weak : level.strong;
    list.n++;
    list.fns.set(list.n, callback);
}

function remove(level: Level | undefined, callback: unknown): boolean {
    if (level === undefined) {
        return false;
    }
    let found = false;
    for (const list of [level.weak, level.strong]) {
        for (let i = 1; i <= list.n; i++) {
            if (list.fns.get(i) === callback) {
                list.fns.delete(i);
                found = true;
            }
        }
    }
    return found;
}

/**
 * Events waiting for this worker's handlers, first in first out, kept in parallel
 * arrays (no table per event).
 */
interface Queue {
    source: LuaTable<number, string>;
    event: LuaTable<number, string>;
    data: LuaTable<number, unknown>;
    pid: LuaTable<number, number>;
    unique: LuaTable<number, string>;
    head: number;
    tail: number;
}

function new_queue(): Queue {
    return {
        source: new LuaTable(), event: new LuaTable(), data: new LuaTable(), pid: new LuaTable(),
        unique: new LuaTable(), head: 1, tail: 0,
    };
}

function push(q: Queue, source: string, event: string, data: unknown, pid: number | undefined,
    unique: string | undefined): void {
    const i = q.tail + 1;
    q.tail = i;
    q.source.set(i, source);
    q.event.set(i, event);
    q.data.set(i, data);
    q.pid.set(i, pid!);
    q.unique.set(i, unique!);
}

/** Takes the first event off `q` (which holds one). */
function shift(q: Queue): LuaMultiReturn<[string, string, unknown, number | undefined, string | undefined]> {
    const i = q.head;
    const source = q.source.get(i);
    const event = q.event.get(i);
    const data = q.data.get(i);
    const pid = q.pid.get(i);
    const unique = q.unique.get(i);
    q.source.delete(i);
    q.event.delete(i);
    q.data.delete(i);
    q.pid.delete(i);
    q.unique.delete(i);
    q.head = i + 1;
    return $multi(source, event, data, pid, unique);
}

/** Checks an optional number option; @returns the error, if any. */
function check_option(opts: LuaTable<string, unknown>, name: string, min: number, strict: boolean): string | undefined {
    const v = opts.get(name);
    if (v === undefined) {
        return undefined;
    }
    if (type(v) !== "number") {
        return `optional "${name}" option must be a number`;
    }
    const n = v as number;
    if (strict ? n <= min : n < min) {
        return `"${name}" must be ${strict ? "greater than" : "greater than or equal to"} ${min}`;
    }
    return undefined;
}

type EventList = LuaTable<AnyNotNil, unknown> & { _source: unknown };

const UNKNOWN_EVENT = {
    __index(this: void, _t: unknown, key: unknown): never {
        error(`event '${tostring(key)}' is an unknown event`, 2);
    },
};

/**
 * A table of `source`'s event names, `_source` holding the source; reading a
 * name it does not hold raises, which catches typos in event names.
 */
function event_list(this: void, source: unknown, ...names: unknown[]): EventList {
    const list = new LuaTable<AnyNotNil, unknown>();
    list.set("_source", source);
    for (const [, name] of pairs(names)) {
        list.set(name as AnyNotNil, name);
    }
    return setmetatable(list, UNKNOWN_EVENT) as unknown as EventList;
}

function failed(source: string, event: string, err: string): LuaMultiReturn<[undefined, string]> {
    const msg = `failed posting event "${event}" by "${source}"; ${err}`;
    log(ERR, LOG, msg);
    return $multi(undefined, msg);
}

/** One module: `require "ngx.ipc.worker_events"` is create(V1), `...worker_events.v2` create(V2). */
export function create(this: void, f: Flavour) {
    const alert_post = f.name + ":post";
    const alert_unique = f.name + ":unique";

    const everything = new_level();
    const sources = new LuaMap<AnyNotNil, SourceLevel>();

    let configured_ = false;
    let my_pid = 0;
    let unique_timeout = DEFAULT_UNIQUE_TIMEOUT;
    /** Unique value → until when this worker ignores it. */
    const seen = new LuaMap<string, number>();
    let seen_added = 0;
    /** master_process off: one process, whatever worker_processes says. */
    let single_process = false;

    /** Events posted or arrived, in order. */
    const arrived = new_queue();
    /** 2.x's `post_local` events: the next drain runs them before any in `arrived`. */
    const local_ = new_queue();
    /** Whether a zero-delay timer will drain (2.x's `post_local`). */
    let drain_timer = false;

    /**
     * The coroutine that runs handlers now. Handlers may yield; meanwhile events from
     * other coroutines wait in the queue for it, so handlers never overlap and each
     * poster's events keep their order.
     */
    let busy: LuaThread | undefined;

    function source_level(source: AnyNotNil): SourceLevel {
        let level = sources.get(source);
        if (level === undefined) {
            level = { weak: new_list(true), strong: new_list(false), events: new LuaMap<AnyNotNil, Level>() };
            sources.set(source, level);
        }
        return level;
    }

    function event_level(source: AnyNotNil, event: AnyNotNil): Level {
        const events = source_level(source).events;
        let level = events.get(event);
        if (level === undefined) {
            level = new_level();
            events.set(event, level);
        }
        return level;
    }

    function handle(source: string, event: string, data: unknown, pid: number | undefined): void {
        const log_data = f.log_data;
        log(DEBUG, LOG, "handling event; source=", source, ", event=", event, ", pid=", pid,
            log_data ? ", data=" : "", log_data ? describe(data) : "");
        run_level(everything, data, event, source, pid);
        const s = sources.get(source);
        if (s === undefined) {
            return;
        }
        run_level(s, data, event, source, pid);
        const e = s.events.get(event);
        if (e !== undefined) {
            run_level(e, data, event, source, pid);
        }
    }

    function sweep_seen(t: number): void {
        for (const [key, until] of seen) {
            if (until <= t) {
                seen.delete(key);
            }
        }
        seen_added = 0;
    }

    /** Whether this worker is to handle the unique event `key` now (it remembers it if so). */
    function first_of(key: string, source: string, event: string): boolean {
        const t = now();
        const until = seen.get(key);
        if (until !== undefined && until > t) {
            log(DEBUG, LOG, "skipping unique event '", event, "' of source '", source, "': '", key,
                "' was handled less than ", unique_timeout, " s ago");
            return false;
        }
        seen.set(key, t + unique_timeout);
        seen_added++;
        if (seen_added >= SWEEP_EVERY) {
            sweep_seen(t);
        }
        return true;
    }

    /**
     * Runs the handlers of every queued event, `post_local`'s first, unless a
     * coroutine does so already ("recursive": that one will run them, in order).
     */
    function drain(): string {
        if (busy !== undefined) {
            // a coroutine killed while it ran handlers (its request aborted) holds the
            // queue no more
            if (co_status(busy) !== "dead") {
                return "recursive";
            }
        }
        busy = running();
        for (;;) {
            // checked before each event: a handler may post_local
            const q = local_.head <= local_.tail ? local_ : arrived.head <= arrived.tail ? arrived : undefined;
            if (q === undefined) {
                break;
            }
            const [source, event, data, pid, unique] = shift(q);
            if (unique === undefined || first_of(unique, source, event)) {
                handle(source, event, data, pid);
            }
        }
        // empty again: the next events go in from index 1
        local_.head = 1;
        local_.tail = 0;
        arrived.head = 1;
        arrived.tail = 0;
        busy = undefined;
        return "done";
    }

    function receive(data: string, unique: boolean): void {
        const from = (ipc as unknown as { sender?: number }).sender;
        if (f.handle_in_post && !unique && from === my_pid) {
            return; // the poster's own copy of a broadcast: handled in post
        }
        const [ok, v] = decode(data);
        const w = v as Wire;
        if (!ok || type(v) !== "table" || type(w.s) !== "string" || type(w.e) !== "string") {
            log(ERR, LOG, "dropped an event from pid ", tostring(from), " that is no event: ",
                ok ? "no source or event" : (v as string));
            return;
        }
        push(arrived, w.s, w.e, w.d, from, unique ? tostring(w.u) : undefined);
        drain();
    }

    function on_post(this: void, data: string): void {
        receive(data, false);
    }

    function on_unique(this: void, data: string): void {
        receive(data, true);
    }

    function on_drain_timer(this: void): void {
        drain_timer = false;
        drain();
    }

    /** 2.x's next poll, for `post_local`'s events when no event arrives first. */
    function schedule_drain(): void {
        if (drain_timer || (busy !== undefined && co_status(busy) !== "dead") || get_phase() === "init") {
            // the running drain takes them, or (init_by_lua*, no timers) configure's
            return;
        }
        const [ok] = timer_at(0, on_drain_timer);
        if (ok === undefined) {
            // no timer (exiting, too many pending): polled now rather than left waiting
            drain();
            return;
        }
        drain_timer = true;
    }

    /** The worker that handles the unique events of `key`. */
    function unique_worker(key: string): number {
        const n = single_process ? 1 : worker_count();
        return crc32(key) % n;
    }

    /** 2.x: to every worker, this one included, or to the one of `key`. */
    function send_only(payload: string, key: string | undefined): ReturnType<typeof ipc.broadcast> {
        if (key === undefined) {
            return ipc.broadcast(alert_post, payload);
        }
        const target = unique_worker(key);
        if (target === worker_id()) {
            return ipc.send(my_pid, alert_unique, payload);
        }
        return ipc.send_worker(target, alert_unique, payload);
    }

    /**
     * Posts an event to every worker (`unique`: to one). 1.0.0: runs this worker's
     * handlers for it before returning. 2.x: this worker handles it when it arrives.
     * @returns "done" ("recursive" from inside a handler), 2.x true, or nil and an error.
     */
    function post(this: void, source: unknown, event: unknown, data?: unknown, unique?: unknown): Posted {
        const bad = check_names(source, event);
        if (bad !== undefined) {
            return $multi(undefined, bad);
        }
        const s = source as string;
        const e = event as string;
        if (!configured_) {
            return failed(s, e, "not configured: call configure() first");
        }
        const key = unique === undefined ? undefined : tostring(unique);
        const [payload, err] = encode({ s, e, d: data, u: key } as Wire);
        if (payload === undefined) {
            return failed(s, e, err!);
        }
        if (!f.handle_in_post) {
            const [sent, serr] = send_only(payload, key);
            if (sent === undefined) {
                return failed(s, e, serr!);
            }
            return $multi(true);
        }
        // this worker's handlers get a copy of a table, as the others do (other
        // values cannot be changed in place)
        let mine = data;
        if (type(data) === "table") {
            const [, copy] = decode(payload);
            mine = (copy as Wire).d;
        }
        if (key !== undefined) {
            const target = unique_worker(key);
            if (target !== worker_id()) {
                const [sent, serr] = ipc.send_worker(target, alert_unique, payload);
                if (sent === undefined) {
                    return failed(s, e, serr!);
                }
                return $multi(drain());
            }
            push(arrived, s, e, mine, my_pid, key);
            return $multi(drain());
        }
        const [sent, serr] = ipc.broadcast(alert_post, payload);
        if (sent === undefined) {
            return failed(s, e, serr!);
        }
        push(arrived, s, e, mine, my_pid, undefined);
        return $multi(drain());
    }

    /**
     * An event that no other worker sees (pid nil). 1.0.0: handled before returning.
     * 2.x: queued for the next poll, which runs it before other events.
     * @returns "done" ("recursive" from inside a handler), 2.x true, or nil and an error.
     */
    function post_local(this: void, source: unknown, event: unknown, data?: unknown): Posted {
        const bad = check_names(source, event);
        if (bad !== undefined) {
            return $multi(undefined, bad);
        }
        if (!f.handle_in_post) {
            push(local_, source as string, event as string, data, undefined, undefined);
            schedule_drain();
            return $multi(true);
        }
        push(arrived, source as string, event as string, data, undefined, undefined);
        return $multi(drain());
    }

    /**
     * Nothing to fetch: events are handled as they arrive. Runs what waits (events
     * posted while a handler ran, 2.x's `post_local` events).
     * @returns "done", or "recursive" inside a handler.
     */
    function poll(this: void): string {
        return drain();
    }

    function register_as(fn: string, weak: boolean, callback: unknown, source: unknown, events: unknown[]): true {
        if (type(callback) !== "function") {
            error(`bad argument #1 to '${fn}' (function expected, got ${type(callback)})`, 3);
        }
        const cb = callback as Callback;
        if (source === undefined || source === false) {
            add(everything, weak, cb);
        } else if (events.length === 0) {
            add(source_level(source as AnyNotNil), weak, cb);
        } else {
            for (const event of events) {
                add(event_level(source as AnyNotNil, event as AnyNotNil), weak, cb);
            }
        }
        return true;
    }

    /** register or register_weak, named `fn` in its errors. */
    function registrar(fn: string, weak: boolean) {
        return (callback: unknown, source?: unknown, ...events: unknown[]): true => {
            // not a tail call: the error level of register_as counts this frame
            const ok = register_as(fn, weak, callback, source, events);
            return ok;
        };
    }

    /** Calls `callback(data, event, source, pid)` for every event, those of `source`, or those named. */
    const register = registrar("register", false);
    /** As register, but the registration does not keep `callback` from being collected. */
    const register_weak = registrar("register_weak", true);

    /**
     * Removes `callback`'s registrations (weak and strong) at the level named the
     * same way as when registering. @returns whether any was removed.
     */
    function unregister(this: void, callback: unknown, source?: unknown, ...events: unknown[]): boolean {
        if (type(callback) !== "function") {
            error(`bad argument #1 to 'unregister' (function expected, got ${type(callback)})`, 2);
        }
        if (source === undefined || source === false) {
            return remove(everything, callback);
        }
        const s = sources.get(source as AnyNotNil);
        if (events.length === 0) {
            return remove(s, callback);
        }
        let found = false;
        if (s !== undefined) {
            for (const event of events) {
                if (remove(s.events.get(event as AnyNotNil), callback)) {
                    found = true;
                }
            }
        }
        return found;
    }

    const events = event_list("resty-worker-events", "started", "stopping") as EventList & {
        started: string;
        stopping: string;
        _source: string;
    };

    function on_exit_watch(this: void, premature: boolean): void {
        if (premature) {
            // ngx.ipc sends nothing once a worker shuts down (it could reach the next
            // generation): the exiting worker's own handlers are the ones told
            push(arrived, events._source, events.stopping, undefined, my_pid, undefined);
            drain();
            return;
        }
        watch_exit();
    }

    function watch_exit(): void {
        const [ok, err] = timer_at(EXIT_WATCH, on_exit_watch);
        if (ok === undefined && err !== "process exiting") {
            log(WARN, LOG, "no 'stopping' event at this worker's exit: ", err);
        }
    }

    /**
     * Starts the module in this worker, or changes its options. `timeout` (seconds a
     * unique value is remembered) is the one that matters; `shm`, `interval`,
     * `wait_interval`, `wait_max` and `shm_retries` tuned the shared-dict transport:
     * they are checked as the library checks them, then ignored (the shm need not exist).
     * @returns true, or nil and an error.
     */
    function configure(this: void, opts: unknown): LuaMultiReturn<[true] | [undefined, string]> {
        if (type(opts) !== "table") {
            error(`bad argument #1 to 'configure' (table expected, got ${type(opts)})`, 2);
        }
        const o = opts as LuaTable<string, unknown>;
        const shm = o.get("shm");
        if (shm !== undefined && type(shm) !== "string") {
            return $multi(undefined, 'optional "shm" option must be a string');
        }
        const err = check_option(o, "timeout", 0, true)
            ?? check_option(o, "interval", 0, false)
            ?? check_option(o, "wait_interval", 0, false)
            ?? check_option(o, "wait_max", 0, false)
            ?? check_option(o, "shm_retries", 0, false);
        if (err !== undefined) {
            return $multi(undefined, err);
        }
        unique_timeout = (o.get("timeout") as number | undefined) ?? unique_timeout;
        if (configured_) {
            return $multi(true);
        }
        // raises where ngx.ipc cannot be used (init_by_lua*): so does the library
        ipc.receive(alert_post, on_post);
        ipc.receive(alert_unique, on_unique);
        my_pid = ngx.worker.pid();
        single_process = process.type() === "single";
        configured_ = true;
        watch_exit();
        post(events._source, events.started);
        // 2.x's first poll: what post_local queued before (in init_by_lua*, say)
        if (local_.head <= local_.tail) {
            schedule_drain();
        }
        return $multi(true);
    }

    /** Whether configure has started the module in this worker. */
    function configured(this: void): boolean {
        return configured_;
    }

    return {
        _VERSION: f.version,
        configure,
        configured,
        post,
        post_local,
        register,
        register_weak,
        unregister,
        poll,
        event_list,
        events,
    };
}
