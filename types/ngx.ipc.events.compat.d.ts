/// <reference types="@typescript-to-lua/language-extensions" />
/// <reference path="ngx.ipc.events.d.ts" />
/**
 * Types of the `ngx.ipc.events.compat` drop-in (lua-resty-events 0.3.1's
 * `resty.events.compat`: lua-resty-worker-events style functions over one
 * `ngx.ipc.events` object per worker; docs/dropins-events.md). Every function is
 * called with `.`. Lua users: meta/ngx/ipc/events/compat.lua.
 *
 * @noSelfInFile
 */

/** @noSelf */
declare module "ngx.ipc.events.compat" {
    import type { Handler, Options } from "ngx.ipc.events";

    /** `"done"`, or `nil` and why not. */
    export type Result = LuaMultiReturn<["done"] | [undefined, string]>;

    /**
     * Creates this worker's events object with the options of
     * `ngx.ipc.events.new` and starts it; call it in init_worker_by_lua*.
     * Wrong options raise.
     */
    export function configure(opts: Options): LuaMultiReturn<[true] | [undefined, string]>;
    /** Whether `configure` has started this worker's events object. */
    export function configured(): boolean;
    /** Does nothing: no broker, no socket. */
    export function run(): void;
    /**
     * Publishes to every worker, or with `unique` to the one worker that hash names.
     * @returns `"done"`, or `nil, err` as `ev:publish`. Raises before `configure`.
     */
    export function post(source: string, event: string, data?: unknown, unique?: string): Result;
    /** Publishes to this worker only (`data` passed as is). @returns as `post`. */
    export function post_local(source: string, event: string, data?: unknown): Result;
    /**
     * Calls `callback(data, event, source, wid)` for every event (no `source`),
     * every event of `source` (no `event`), or the named events of `source`.
     */
    export function register(callback: Handler, source?: string, event?: string, ...events: string[]): void;
    /** The same as `register` (the library's compat module makes no weak registrations either). */
    export function register_weak(callback: Handler, source?: string, event?: string, ...events: string[]): void;
    /** Removes every registration of `callback`. @returns whether it had one. */
    export function unregister(callback: Handler): boolean;
    /** Nothing to poll: yields 2 ms where it can, as the library's does. */
    export function poll(): "done";
    /** The lua-resty-events release whose API this is. */
    export const _VERSION: "0.3.1";
}
