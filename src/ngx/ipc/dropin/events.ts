// ngx.ipc.events: the API of lua-resty-events' `resty.events` on ngx.ipc's pipes.
// The library passes every event through a broker worker over a unix socket; here
// "all" is an ngx.ipc broadcast, a unique hash is sent to the one worker that the
// hash names (which drops the same hash again within unique_timeout), and
// "current" never leaves the worker. Events of one instance travel under one alert
// name, derived from its `listening` option: instances that name the same socket
// share their events, as they share a broker in the library.
//
// Handlers run one event at a time, in order of arrival, from one queue per
// worker: "current" events enter it when published, the others when ngx.ipc
// delivers them, so a "current" event is handled before an "all" event published
// after it in the same worker, as with the library, whose broker round trip is
// always longer than a local push.
import ipc = require("../../ipc");
import * as semaphore from "ngx.semaphore";
import * as value from "./value";

/** The lua-resty-events release whose API this module implements. */
const VERSION = "0.3.1";

/** Alert names of this module: no user of ngx.ipc picks a name starting with SOH. */
const PREFIX = "\x01ngx.ipc.events\x01";
const MAX_NAME = 254;

const UNIX_PREFIX = "unix:";
const DEFAULT_UNIQUE_TIMEOUT = 5;
const DEFAULT_MAX_QUEUE_LEN = 1024 * 10;
const DEFAULT_MAX_PAYLOAD_LEN = 1024 * 64;
const LIMIT_MAX_PAYLOAD_LEN = 1024 * 1024 * 16;

/** Unique hashes remembered before expired ones are swept. */
const UNIQUE_SWEEP_MIN = 1024;

export type Callback = (this: void, data: unknown, event: string, source: string, wid: number | undefined) => void;

/** The options of `new`, defaults filled in (in the caller's table, as the library does). */
export interface Options {
    listening: string;
    broker_id: number;
    unique_timeout: number;
    max_queue_len: number;
    max_payload_len: number;
    enable_privileged_agent?: boolean;
    testing: boolean;
}

/** One event on its way to handlers; `unique` set for a unique target. */
interface Message {
    source: string;
    event: string;
    data: unknown;
    wid?: number;
    unique?: string;
    /** The privileged agent has called init_worker: send it what was kept for it. */
    agent_joined?: boolean;
}

type IdList = LuaTable<number, string>;
type EventLists = LuaTable<string, IdList>;

export interface Events {
    /** The options as given, defaults filled in (code written for the library reads them). */
    opts: Options;
    /** The alert name of this instance's events. */
    name: string;
    /** Subscriptions: lists of ids by source, then event ("*" included). */
    lists: LuaTable<string, EventLists>;
    funcs: LuaTable<string, Callback>;
    /** Where each id is listed: its source and event. */
    where: LuaTable<string, [string, string]>;
    counter: number;
    /** Unique hashes handled here, with the time each may be handled again. */
    uniques: LuaTable<string, number>;
    unique_count: number;
    unique_sweep: number;
    started: boolean;
    ready: boolean;
}

/**
 * An alert name this worker receives: the instances that handle it, and the
 * events that arrived before any of them called init_worker (a worker that
 * publishes joins ngx.ipc before it may have subscribed), kept for the first.
 */
interface Channel {
    name: string;
    instances: LuaTable<number, Events>;
    held: LuaTable<number, string>;
    /**
     * The "all" events this worker published before the privileged agent joined
     * ngx.ipc (a broadcast reaches it only from then on), sent to it when it says
     * it has joined; undefined once it has, or when there is none to wait for.
     */
    for_agent?: LuaTable<number, string>;
    for_agent_bytes: number;
    /** Until when to keep them when enable_privileged_agent is not set (an agent may not exist). */
    agent_until: number;
}

/** How long after its start a worker keeps events for an agent that may not exist, in seconds. */
const AGENT_GRACE = 10;

/** What a worker keeps for an agent that has not joined yet, at most. */
const AGENT_KEEP_BYTES = 16 * 1024 * 1024;
const channels = new LuaTable<string, Channel>();

// The queue of events to handle, in order: parallel arrays from `head` to `tail`.
const q_inst = new LuaTable<number, Events>();
const q_msg = new LuaTable<number, Message>();
/** Queued "current" events whose handling has not begun. */
let current_pending = 0;
/**
 * "all" and unique events published while "current" events of this worker wait:
 * sent once the last of those is being handled, so that no worker handles them
 * first (the library's broker round trip gives the same order).
 */
const later_name = new LuaTable<number, string>();
const later_target = new LuaTable<number, string>();
const later_data = new LuaTable<number, string>();
let later_n = 0;
let head = 1;
let tail = 0;
/** The coroutine handling the queue, if any. */
let drainer: LuaThread | undefined;
/** Receive handlers waiting for the queue to shrink (while a timer's handler yields). */
let waiting = 0;
let shrunk: NgxSemaphore | undefined;
/** A timer is on its way to handle "current" events. */
let timer_pending = false;

const traceback = debug.traceback;
const log = ngx.log;
const DEBUG = ngx.DEBUG;
const ERR = ngx.ERR;

/** ngx.worker.id(), or -1 in the privileged agent (the library's number for it). */
function worker_id(): number {
    return ngx.worker.id() ?? -1;
}

function worker_name(id: number): string {
    return id === -1 ? "privileged agent" : `worker #${id}`;
}

let debug_level: boolean | undefined;

/** Whether error_log writes debug lines (where ngx.errlog is missing, say yes). */
function debug_logged(): boolean {
    if (debug_level === undefined) {
        const [ok, errlog] = pcall(require, "ngx.errlog");
        debug_level = !ok
            || (errlog as { get_sys_filter_level(this: void): number }).get_sys_filter_level() >= DEBUG;
    }
    return debug_level;
}

function check_nonempty(fn: string, n: number, v: unknown, what: string): string {
    if (type(v) !== "string" || v === "") {
        error(`bad argument #${n} to '${fn}' (${what}: non-empty string expected, got ${type(v)})`, 3);
    }
    return v as string;
}

function run_list(funcs: LuaTable<string, Callback>, list: IdList | undefined, m: Message): void {
    if (list === undefined) {
        return;
    }
    // `list` is replaced, never changed in place, when an id leaves it: a handler
    // that unsubscribes does not disturb this loop.
    const n = list.length();
    for (let i = 1; i <= n; i++) {
        const fn = funcs.get(list.get(i));
        if (fn !== undefined) {
            const [ok, err] = xpcall(fn, traceback, m.data, m.event, m.source, m.wid);
            if (!ok) {
                log(ERR, "ngx.ipc.events: event handler failed; source=", m.source, ", event=", m.event,
                    ", wid=", tostring(m.wid), ": ", tostring(err));
            }
        }
    }
}

function lists_of(ev: Events, source: string): EventLists | undefined {
    return ev.lists.get(source);
}

/** Sends what waited for this worker's "current" events, once none is left unhandled. */
function send_later(): void {
    if (later_n === 0 || current_pending > 0) {
        return;
    }
    for (let i = 1; i <= later_n; i++) {
        const [ok, err] = send_event(later_name.get(i), later_target.get(i), later_data.get(i));
        if (ok === undefined) {
            log(ERR, "ngx.ipc.events: failed to publish event: ", err);
        }
        later_name.delete(i);
        later_target.delete(i);
        later_data.delete(i);
    }
    later_n = 0;
}

/** Runs the handlers of one event: "*" "*" first, then source "*", then source event. */
function do_event(ev: Events, m: Message): void {
    // the library's debug line, which tools and its tests grep for
    log(DEBUG, "worker-events: handling event; source=", m.source, ", event=", m.event, ", wid=", tostring(m.wid));
    send_later();
    const funcs = ev.funcs;
    const any = lists_of(ev, "*");
    run_list(funcs, any?.get("*"), m);
    const by_source = lists_of(ev, m.source);
    if (by_source !== undefined) {
        run_list(funcs, by_source.get("*"), m);
        run_list(funcs, by_source.get(m.event), m);
    }
}

function queued(): number {
    return tail - head + 1;
}

function push(ev: Events, m: Message): void {
    tail = tail + 1;
    q_inst.set(tail, ev);
    q_msg.set(tail, m);
}

/**
 * Handles the queue in this coroutine, unless another is at it (a handler of it
 * yielded): that one takes what was just queued, in order.
 */
function drain(): void {
    if (drainer !== undefined && coroutine.status(drainer) !== "dead") {
        return;
    }
    drainer = coroutine.running();
    while (head <= tail) {
        const ev = q_inst.get(head);
        const m = q_msg.get(head);
        q_inst.delete(head);
        q_msg.delete(head);
        head = head + 1;
        if (m.wid === undefined) {
            current_pending = current_pending - 1;
        }
        do_event(ev, m);
    }
    head = 1;
    tail = 0;
    drainer = undefined;
    if (waiting > 0) {
        shrunk!.post(waiting);
    }
}

/**
 * In ngx.ipc's receive loop, while another coroutine handles the queue (a timer
 * whose handler yields): past max_queue_len events, waits until it has handled
 * them, so that ngx.ipc stops reading (back-pressure) instead of the queue growing.
 */
function wait_room(limit: number): void {
    while (queued() >= limit && drainer !== undefined && coroutine.status(drainer) !== "dead") {
        let sema = shrunk;
        if (sema === undefined) {
            const [s, err] = semaphore.new();
            if (s === undefined) {
                log(ERR, "ngx.ipc.events: no semaphore: ", err);
                return;
            }
            sema = s;
            shrunk = s;
        }
        waiting = waiting + 1;
        sema.wait(1);
        waiting = waiting - 1;
    }
}

function on_timer(this: void, _premature: boolean): void {
    timer_pending = false;
    drain();
}

/** Makes sure a timer will handle the queue. */
function schedule(): LuaMultiReturn<[true] | [undefined, string]> {
    if (!timer_pending) {
        const [ok, err] = ngx.timer.at(0, on_timer);
        if (ok === undefined) {
            return $multi(undefined, err!);
        }
        timer_pending = true;
    }
    return $multi(true);
}

/** Whether `hash` was handled here less than unique_timeout ago; records it if not. */
function seen(ev: Events, hash: string): boolean {
    const now = ngx.now();
    const until = ev.uniques.get(hash);
    if (until !== undefined && until > now) {
        return true;
    }
    if (until === undefined) {
        ev.unique_count = ev.unique_count + 1;
    }
    ev.uniques.set(hash, now + ev.opts.unique_timeout);
    if (ev.unique_count > ev.unique_sweep) {
        for (const [h, t] of pairs(ev.uniques)) {
            if (t <= now) {
                ev.uniques.delete(h);
                ev.unique_count = ev.unique_count - 1;
            }
        }
        ev.unique_sweep = math.max(UNIQUE_SWEEP_MIN, ev.unique_count * 2);
    }
    return false;
}

function decode(data: string): Message | undefined {
    const [ok, m] = value.decode(data);
    if (!ok || type(m) !== "table") {
        log(ERR, "ngx.ipc.events: dropped an alert that is no event (", ok ? type(m) : m, ")");
        return undefined;
    }
    return m as Message;
}

/** Queues an event from another worker (or this one) for `ev`, unless it is a duplicate. */
function accept(ev: Events, m: Message): void {
    if (m.unique !== undefined && seen(ev, m.unique)) {
        log(DEBUG, "unique event is duplicate on ", worker_name(worker_id()), ": ", m.unique);
        return;
    }
    push(ev, m);
}

/** The ngx.ipc handler of one alert name: an event from a worker (this one included). */
function on_alert(ch: Channel, data: string): void {
    const list = ch.instances;
    const n = list.length();
    if (data === AGENT_JOINED) {
        send_to_agent(ch);
        return;
    }
    if (n === 0) {
        const held = ch.held;
        if (held.length() >= DEFAULT_MAX_QUEUE_LEN) {
            log(ERR, "ngx.ipc.events: dropped an event: ", DEFAULT_MAX_QUEUE_LEN,
                " events wait for init_worker in this worker already");
            return;
        }
        held.set(held.length() + 1, data);
        return;
    }
    const m = decode(data);
    if (m === undefined) {
        return;
    }
    for (let i = 1; i <= n; i++) {
        const ev = list.get(i);
        wait_room(ev.opts.max_queue_len);
        accept(ev, m);
    }
    drain();
}

/** The agent's announcement: one byte, which encodes no table (events are tables). */
const AGENT_JOINED = "\x7f";

/** The privileged agent has joined: it gets what this worker kept for it. */
function send_to_agent(ch: Channel): void {
    const kept = ch.for_agent;
    const agent = (ipc as unknown as { sender?: number }).sender;
    ch.for_agent = undefined;
    ch.for_agent_bytes = 0;
    if (kept === undefined || agent === undefined || agent === ngx.worker.pid()) {
        return;
    }
    for (let i = 1; i <= kept.length(); i++) {
        const [ok, err] = ipc.send(agent, ch.name, kept.get(i));
        if (ok === undefined) {
            log(ERR, "ngx.ipc.events: an event kept for the privileged agent is lost: ", err);
        }
    }
}

/** Whether the privileged agent has joined ngx.ipc (a broadcast reaches it). */
function agent_joined(): boolean {
    const [ok, list] = pcall(ipc.workers);
    if (!ok) {
        return false;
    }
    const last = list[list.length - 1] as { agent?: boolean } | undefined;
    return last !== undefined && last.agent === true;
}

/**
 * Keeps a copy of an "all" event for the privileged agent that has not joined yet:
 * until it joins with enable_privileged_agent = true (the library's broker keeps
 * a queue for it from the start), else in the first seconds after this worker's
 * start only, when an agent that exists is about to join.
 */
function keep_for_agent(ch: Channel, s: string, forever: boolean): boolean {
    const kept = ch.for_agent;
    if (kept === undefined || worker_id() === -1) {
        return false;
    }
    if (agent_joined() || (!forever && ngx.now() > ch.agent_until)) {
        ch.for_agent = undefined;
        ch.for_agent_bytes = 0;
        return false;
    }
    if (ch.for_agent_bytes + s.length > AGENT_KEEP_BYTES) {
        log(ERR, "ngx.ipc.events: the privileged agent has not joined and ", ch.for_agent_bytes,
            " bytes of events wait for it: this one will not reach it");
        return false;
    }
    kept.set(kept.length() + 1, s);
    ch.for_agent_bytes = ch.for_agent_bytes + s.length;
    return true;
}

/** The channel of alert name `name`, its ngx.ipc handler registered on first use. */
function channel(name: string): LuaMultiReturn<[Channel] | [undefined, string]> {
    let ch = channels.get(name);
    if (ch === undefined) {
        const c: Channel = { name, instances: new LuaTable(), held: new LuaTable(), for_agent: new LuaTable(),
            for_agent_bytes: 0, agent_until: ngx.now() + AGENT_GRACE };
        const [ok, err] = pcall(() => ipc.receive(name, (data: string) => on_alert(c, data)));
        if (!ok) {
            return $multi(undefined, tostring(err));
        }
        ch = c;
        channels.set(name, ch);
    }
    return $multi(ch);
}

function check_options(opts: unknown): string | undefined {
    if (type(opts) !== "table") {
        return `options: table expected, got ${type(opts)}`;
    }
    const o = opts as Partial<Options>;
    o.broker_id = o.broker_id ?? 0;
    if (type(o.broker_id) !== "number") {
        return '"broker_id" option must be a number';
    }
    if (o.broker_id < 0 || o.broker_id >= ngx.worker.count()) {
        return '"broker_id" option is invalid';
    }
    if (o.listening === undefined) {
        return '"listening" option required to start';
    }
    if (type(o.listening) !== "string") {
        return '"listening" option must be a string';
    }
    if (string.sub(o.listening, 1, UNIX_PREFIX.length) !== UNIX_PREFIX) {
        return `"listening" option must start with ${UNIX_PREFIX}`;
    }
    o.unique_timeout = o.unique_timeout ?? DEFAULT_UNIQUE_TIMEOUT;
    if (type(o.unique_timeout) !== "number") {
        return 'optional "unique_timeout" option must be a number';
    }
    if (o.unique_timeout <= 0) {
        return '"unique_timeout" must be greater than 0';
    }
    o.max_queue_len = o.max_queue_len ?? DEFAULT_MAX_QUEUE_LEN;
    if (type(o.max_queue_len) !== "number") {
        return '"max_queue_len" option must be a number';
    }
    if (o.max_queue_len <= 0) {
        return '"max_queue_len" option is invalid';
    }
    o.max_payload_len = o.max_payload_len ?? DEFAULT_MAX_PAYLOAD_LEN;
    if (type(o.max_payload_len) !== "number") {
        return '"max_payload_len" option must be a number';
    }
    if (o.max_payload_len <= 0 || o.max_payload_len > LIMIT_MAX_PAYLOAD_LEN) {
        return '"max_payload_len" option is invalid';
    }
    if (o.enable_privileged_agent !== undefined && type(o.enable_privileged_agent) !== "boolean") {
        return '"enable_privileged_agent" option must be a boolean';
    }
    o.testing = o.testing ?? false;
    if (type(o.testing) !== "boolean") {
        return '"testing" option must be a boolean';
    }
    return undefined;
}

const methods = {} as Record<string, unknown>;
const MT = { __index: methods };

/**
 * A new events object. The options are the library's, checked as it checks them;
 * `listening` names the channel and nothing listens on it; `broker_id`,
 * `max_queue_len` (but for "current" events) and `enable_privileged_agent` tune
 * the library's broker and are otherwise ignored.
 */
function new_(opts: unknown): Events {
    const err = check_options(opts);
    if (err !== undefined) {
        error(err, 2);
    }
    const o = opts as Options;
    const name = PREFIX.length + o.listening.length <= MAX_NAME ? PREFIX + o.listening : PREFIX + ngx.md5(o.listening);
    const ev: Events = {
        opts: o,
        name,
        lists: new LuaTable(),
        funcs: new LuaTable(),
        where: new LuaTable(),
        counter: 0,
        uniques: new LuaTable(),
        unique_count: 0,
        unique_sweep: UNIQUE_SWEEP_MIN,
        started: false,
        ready: false,
    };
    return setmetatable(ev, MT);
}

function set_ready(this: void, _premature: boolean, ev: Events): void {
    ev.ready = true;
}

/**
 * Starts receiving this instance's events in this worker (the privileged agent
 * included, unless enable_privileged_agent is false). Events published earlier
 * in this worker are handled after the current code returns, by the handlers
 * subscribed by then.
 */
function init_worker(ev: Events): LuaMultiReturn<[true] | [undefined, string]> {
    if (ev.started) {
        return $multi(true);
    }
    if (ngx.worker.id() === undefined && ev.opts.enable_privileged_agent === false) {
        return $multi(true);
    }
    if (!ev.opts.testing) {
        const [ch, err] = channel(ev.name);
        if (ch === undefined) {
            return $multi(undefined, err!);
        }
        const list = ch.instances;
        list.set(list.length() + 1, ev);
        if (ngx.worker.id() === undefined) {
            // the workers send what they kept for the agent until now
            const [ok, berr] = ipc.broadcast(ev.name, AGENT_JOINED);
            if (ok === undefined) {
                log(ERR, "ngx.ipc.events: the privileged agent could not announce itself: ", berr);
            }
        }
        const held = ch.held;
        if (held.length() > 0) {
            ch.held = new LuaTable();
            for (let i = 1; i <= held.length(); i++) {
                const m = decode(held.get(i));
                if (m !== undefined) {
                    accept(ev, m);
                }
            }
            // handled once this code has returned: its subscriptions made by then
            const [ok, terr] = schedule();
            if (ok === undefined) {
                log(ERR, "ngx.ipc.events: could not start a timer: ", terr);
            }
        }
    }
    ev.started = true;
    // as with the library, "ready" from the next turn of the event loop on
    const [ok, err] = (ngx.timer.at as unknown as (this: void, d: number, f: typeof set_ready, s: Events) =>
        LuaMultiReturn<[number] | [undefined, string]>)(0, set_ready, ev);
    if (ok === undefined) {
        ev.ready = true;
        log(ERR, "ngx.ipc.events: could not start a timer: ", err);
    }
    return $multi(true);
}

/** The library's broker loop; nothing to run here (no socket, no broker). */
function run(_self: Events): void {
    return;
}

function failed(err: string): LuaMultiReturn<[undefined, string]> {
    return $multi(undefined, `failed to publish event: ${err}`);
}

/** The template of what "all" and unique events carry, reused. */
const OUT: Message = { source: "", event: "", data: undefined };

function publish_current(ev: Events, source: string, event: string, data: unknown): LuaMultiReturn<[true] | [undefined, string]> {
    if (queued() >= ev.opts.max_queue_len) {
        return failed("queue overflow");
    }
    push(ev, { source, event, data });
    const [ok, err] = schedule();
    if (ok === undefined) {
        q_inst.delete(tail);
        q_msg.delete(tail);
        tail = tail - 1;
        return failed(tostring(err));
    }
    current_pending = current_pending + 1;
    return $multi(true);
}

/** The processes an "all" event reaches, for the library's debug line. */
function reached(kept_for_agent: boolean): number {
    const n = ngx.worker.count();
    if (kept_for_agent) {
        return n + 1;
    }
    const [ok, list] = pcall(ipc.workers);
    return ok && list.length > n ? list.length : n;
}

/** Sends an encoded event: a broadcast, or to the worker that the unique hash names. */
function send_event(name: string, target: string, s: string): LuaMultiReturn<[true] | [undefined, string]> {
    if (target === "all") {
        return ipc.broadcast(name, s);
    }
    return ipc.send_worker(ngx.crc32_short(target) % ngx.worker.count(), name, s);
}

/**
 * Publishes an event: to every worker ("all"), to this one ("current", handled
 * later from this worker's queue, data passed as is), or to the one worker a
 * unique hash names, where the same hash is dropped until unique_timeout has
 * passed since it was handled.
 */
function publish(ev: Events, target: unknown, source: unknown, event: unknown, data?: unknown): LuaMultiReturn<[true] | [undefined, string]> {
    const t = check_nonempty("publish", 1, target, "target");
    const s = check_nonempty("publish", 2, source, "source");
    const e = check_nonempty("publish", 3, event, "event");
    if (ev.opts.testing) {
        log(DEBUG, "event published to 1 workers");
        do_event(ev, { source: s, event: e, data });
        return $multi(true);
    }
    if (t === "current") {
        return publish_current(ev, s, e, data);
    }
    OUT.source = s;
    OUT.event = e;
    OUT.data = data;
    OUT.wid = worker_id();
    OUT.unique = t === "all" ? undefined : t;
    const [ch, cerr] = channel(ev.name);
    if (ch === undefined) {
        return failed(cerr!);
    }
    const [str, err] = value.encode(OUT);
    OUT.data = undefined;
    if (str === undefined) {
        return failed(err!);
    }
    if (str.length > ev.opts.max_payload_len) {
        return failed(`payload exceeds the limitation (${ev.opts.max_payload_len})`);
    }
    const kept = t === "all" && ch.for_agent !== undefined && ev.opts.enable_privileged_agent !== false
        && keep_for_agent(ch, str, ev.opts.enable_privileged_agent === true);
    if (current_pending > 0 || later_n > 0) {
        later_n = later_n + 1;
        later_name.set(later_n, ev.name);
        later_target.set(later_n, t);
        later_data.set(later_n, str);
    } else {
        const [ok, why] = send_event(ev.name, t, str);
        if (ok === undefined) {
            return failed(why!);
        }
    }
    // an agent counts once it has joined, or from the start when it is expected
    const n = t === "all" && debug_logged() ? reached(kept && ev.opts.enable_privileged_agent === true) : 1;
    log(DEBUG, "event published to ", n, " workers");
    return $multi(true);
}

/**
 * Calls `callback(data, event, source, wid)` for the events of `source` ("*":
 * any) named `event` ("*": any); returns the id to unsubscribe it with.
 */
function subscribe(ev: Events, source: unknown, event: unknown, callback: unknown): string {
    const s = check_nonempty("subscribe", 1, source, "source");
    const e = check_nonempty("subscribe", 2, event, "event");
    if (type(callback) !== "function") {
        error(`bad argument #3 to 'subscribe' (function expected, got ${type(callback)})`, 2);
    }
    ev.counter = ev.counter + 1;
    const id = tostring(ev.counter);
    let by_source = ev.lists.get(s);
    if (by_source === undefined) {
        by_source = new LuaTable();
        ev.lists.set(s, by_source);
    }
    let list = by_source.get(e);
    if (list === undefined) {
        list = new LuaTable();
        by_source.set(e, list);
    }
    list.set(list.length() + 1, id);
    ev.funcs.set(id, callback as Callback);
    ev.where.set(id, [s, e]);
    return id;
}

/** Stops the subscription `id`; true, or false when there is none by that id. */
function unsubscribe(ev: Events, id: unknown): boolean {
    const t = type(id);
    if (t !== "string" && t !== "number") {
        error(`bad argument #1 to 'unsubscribe' (string expected, got ${t})`, 2);
    }
    const key = tostring(id);
    const at = ev.where.get(key);
    if (at === undefined) {
        return false;
    }
    ev.funcs.delete(key);
    ev.where.delete(key);
    const by_source = ev.lists.get(at[0]);
    const old = by_source.get(at[1]);
    // a new list, so that a dispatch walking the old one is not disturbed
    const list = new LuaTable<number, string>();
    const n = old.length();
    for (let i = 1; i <= n; i++) {
        const other = old.get(i);
        if (other !== key) {
            list.set(list.length() + 1, other);
        }
    }
    by_source.set(at[1], list.length() > 0 ? list : undefined!);
    return true;
}

/** True once init_worker has run and the event loop has turned since. */
function is_ready(ev: Events): boolean {
    return ev.ready;
}

methods.init_worker = init_worker;
methods.run = run;
methods.publish = publish;
methods.subscribe = subscribe;
methods.unsubscribe = unsubscribe;
methods.is_ready = is_ready;

export { VERSION as _VERSION, new_ as new };
// the methods are reachable from the module as well (`events.publish(ev, ...)`)
export { init_worker, run, publish, subscribe, unsubscribe, is_ready };
