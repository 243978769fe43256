/// <reference types="@typescript-to-lua/language-extensions" />
/**
 * Types of the `ngx.ipc.worker_events` drop-in (lua-resty-worker-events 1.0.0's
 * `resty.worker.events`, docs/dropins-worker-events.md) for TypeScriptToLua
 * projects: `import * as worker_events from "ngx.ipc.worker_events"` compiles to
 * `local worker_events = require("ngx.ipc.worker_events")` when the project
 * lists "ngx.ipc.worker_events" in its tstl `noResolvePaths`. Every function is
 * called with `.`. Lua users: meta/ngx/ipc/worker_events.lua.
 *
 * @noSelfInFile
 */

/** @noSelf */
declare module "ngx.ipc.worker_events" {
    /**
     * Runs for each event registered for: `data` is a decoded copy of what was
     * posted (for `post_local` the value itself), `pid` the poster's
     * `ngx.worker.pid()` (`undefined` for `post_local`). It may yield; what it
     * returns is ignored; an error it raises is logged and the next one runs.
     */
    export type Callback = (this: void, data: unknown, event: string, source: string, pid: number | undefined) => void;

    /**
     * `"done"`; `"recursive"` from inside a callback (the event runs once the
     * running callback returns); or `nil` and why not.
     */
    export type Result = LuaMultiReturn<["done" | "recursive"] | [undefined, string]>;

    /**
     * The options of `configure`. `timeout` is used; the others tuned the
     * library's shared-dict transport: checked as it checks them, then ignored.
     */
    export interface Options {
        /** Seconds a unique value is remembered (default 2, above 0). */
        timeout?: number;
        shm?: string;
        interval?: number;
        wait_interval?: number;
        wait_max?: number;
        shm_retries?: number;
        debug?: boolean;
    }

    /**
     * `event_list`'s table: each name maps to itself, `_source` holds the
     * source; reading a name it does not hold raises.
     */
    export type EventList<Source extends string, Name extends string> =
        { readonly _source: Source } & { readonly [K in Name]: K };

    /**
     * Starts the module in this worker (init_worker_by_lua* or later; it raises
     * in init_by_lua*) and posts `started`; later calls change `timeout`.
     * A non-table raises.
     * @returns `true`, or `nil` and the option that is wrong.
     */
    export function configure(opts: Options): LuaMultiReturn<[true] | [undefined, string]>;
    /** Whether `configure` has started the module in this worker. */
    export function configured(): boolean;
    /**
     * Posts an event to every worker, this worker's callbacks run before it
     * returns; with `unique`, to the one worker that value names (it ignores the
     * same value for `timeout` seconds). `data`: what LuaJIT's string.buffer
     * encodes (nil, booleans, numbers, strings, tables of those).
     * @returns `"done"`, `"recursive"`, or `nil, err` (source or event empty,
     * data not encodable, not configured, ngx.ipc refused).
     */
    export function post(source: string, event: string, data?: unknown, unique?: string | number): Result;
    /** Runs this worker's callbacks only (`data` passed as is, `pid` undefined). @returns as `post`. */
    export function post_local(source: string, event: string, data?: unknown): Result;
    /** Runs what waits (events posted from inside a callback); nothing to fetch. */
    export function poll(): "done" | "recursive";
    /**
     * Calls `callback(data, event, source, pid)` for every event (no `source`),
     * every event of `source` (no event names), or the named events of `source`.
     * @returns `true`; a callback that is no function raises.
     */
    export function register(callback: Callback, source?: string, ...events: string[]): true;
    /** As `register`, but the registration does not keep `callback` from being collected. */
    export function register_weak(callback: Callback, source?: string, ...events: string[]): true;
    /**
     * Removes `callback`'s registrations at the level named as when registering
     * (no `source`: those for every event only).
     * @returns whether one was removed.
     */
    export function unregister(callback: Callback, source?: string, ...events: string[]): boolean;
    /** A table of `source`'s event names (see `EventList`). */
    export function event_list<const Source extends string, const Name extends string>(
        source: Source,
        ...names: Name[]
    ): EventList<Source, Name>;
    /** The module's own events: `started` (posted by `configure`) and `stopping` (at this worker's exit). */
    export const events: EventList<"resty-worker-events", "started" | "stopping">;
    /** `"0.3.3"`: what lua-resty-worker-events 1.0.0 reports (lua-resty-healthcheck checks it). */
    export const _VERSION: "0.3.3";
}
