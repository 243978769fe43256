/// <reference types="@typescript-to-lua/language-extensions" />
/**
 * Types of the `ngx.ipc.events` drop-in (lua-resty-events 0.3.1's `resty.events`,
 * docs/dropins-events.md) for TypeScriptToLua projects:
 * `import * as events from "ngx.ipc.events"` compiles to
 * `local events = require("ngx.ipc.events")` when the project lists
 * "ngx.ipc.events" in its tstl `noResolvePaths`.
 *
 * The module's functions are called with `.` (`events.new(opts)`); the object
 * `new` returns has methods, called with `:` (`ev:publish(...)`): each method
 * names its `this`, so that TypeScriptToLua passes the object whatever
 * `noImplicitSelf` says, and a method taken off its object cannot be called.
 * Lua users have the same API in meta/ngx/ipc/events.lua (lua-language-server).
 */

/** @noSelf */
declare module "ngx.ipc.events" {
    /** `true`, or `nil` and why not. */
    export type Result = LuaMultiReturn<[true] | [undefined, string]>;

    /**
     * Runs for each event subscribed to, one at a time, in the order of arrival;
     * it may yield. `data` is a decoded copy of what was published (for
     * `"current"` events the value itself); `wid` is the publisher's
     * `ngx.worker.id()`, -1 for the privileged agent, `undefined` for `"current"`
     * events and with `testing`. What it returns is ignored.
     */
    export type Handler = (this: void, data: unknown, event: string, source: string, wid: number | undefined) => void;

    /** The options of `new`: those of the library, checked as it checks them. */
    export interface Options {
        /**
         * Required: names the channel (instances with the same `listening`
         * share their events). No socket is opened.
         */
        listening: `unix:${string}`;
        /** Checked (0 … `ngx.worker.count()` − 1), then ignored: there is no broker. */
        broker_id?: number;
        /** Seconds a unique hash is remembered by the worker that handled it (default 5). */
        unique_timeout?: number;
        /** This worker's queue of events not yet handled (default 10240). */
        max_queue_len?: number;
        /** The longest encoded event, in bytes (default 65536, at most 16 MiB). */
        max_payload_len?: number;
        /** `false`: the privileged agent does not take part; `true`: it gets the "all" events published before it joined. */
        enable_privileged_agent?: boolean;
        /** Every event is handled at once, inside `publish`, in the publishing worker only. */
        testing?: boolean;
    }

    /** `ev.opts`: the options table given to `new`, its defaults filled in. */
    export interface FilledOptions extends Options {
        broker_id: number;
        unique_timeout: number;
        max_queue_len: number;
        max_payload_len: number;
        testing: boolean;
    }

    /** What `new` returns; its methods are called with `:`. */
    export interface Events {
        readonly opts: FilledOptions;
        /**
         * Joins this worker to the instance's channel; call it in
         * init_worker_by_lua*. Events published here before are handled once the
         * calling code has returned.
         */
        init_worker(this: Events): Result;
        /** The library's broker loop: does nothing. */
        run(this: Events): void;
        /**
         * Publishes an event: to every worker, this one included (`"all"`), to
         * this worker only (`"current"`, handled after the calling code yields or
         * returns; `data` passed as is), or to the one worker a unique hash names
         * (any other string; that worker drops the same hash for `unique_timeout`).
         * `data` is what LuaJIT's string.buffer encodes (nil, booleans, numbers,
         * strings, tables of those).
         * @returns `true`; `nil, "failed to publish event: ..."` when the data
         * cannot be encoded, exceeds `max_payload_len`, the queue is full, or
         * ngx.ipc refuses the alert. A wrong argument type raises.
         */
        publish(this: Events, target: "all" | "current" | (string & {}), source: string, event: string, data?: unknown): Result;
        /**
         * Calls `handler(data, event, source, wid)` for the events of `source`
         * named `event`; `"*"` matches any.
         * @returns the id to unsubscribe with.
         */
        subscribe(this: Events, source: string, event: string, handler: Handler): string;
        /** @returns whether the subscription `id` existed. */
        unsubscribe(this: Events, id: string | number): boolean;
        /** Whether `init_worker` has run and the event loop has turned since. */
        is_ready(this: Events): boolean;
    }

    /**
     * A new events object (call it in init_by_lua* or init_worker_by_lua*).
     * Wrong options raise, with the library's messages.
     */
    function new_(opts: Options): Events;
    export { new_ as new };

    /** The lua-resty-events release whose API this is. */
    export const _VERSION: "0.3.1";

    // The methods are in the module table too, as in the library
    // (`events.publish(ev, ...)` is `ev:publish(...)`).
    /** `ev:init_worker()`. */
    export function init_worker(ev: Events): Result;
    /** `ev:run()`. */
    export function run(ev: Events): void;
    /** `ev:publish(target, source, event, data)`. */
    export function publish(ev: Events, target: "all" | "current" | (string & {}), source: string, event: string, data?: unknown): Result;
    /** `ev:subscribe(source, event, handler)`. */
    export function subscribe(ev: Events, source: string, event: string, handler: Handler): string;
    /** `ev:unsubscribe(id)`. */
    export function unsubscribe(ev: Events, id: string | number): boolean;
    /** `ev:is_ready()`. */
    export function is_ready(ev: Events): boolean;
}
