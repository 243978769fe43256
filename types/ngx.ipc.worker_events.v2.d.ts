/// <reference types="@typescript-to-lua/language-extensions" />
/// <reference path="ngx.ipc.worker_events.d.ts" />
/**
 * Types of the `ngx.ipc.worker_events.v2` drop-in (lua-resty-worker-events
 * 2.x's `resty.worker.events`, docs/dropins-worker-events.md): the functions of
 * `ngx.ipc.worker_events`, but `post` and `post_local` return `true` and run no
 * callback inside the call (the next poll does: an arriving event, `poll()`, or
 * a zero-delay timer). List "ngx.ipc.worker_events.v2" in tstl's
 * `noResolvePaths`. Lua users: meta/ngx/ipc/worker_events/v2.lua.
 *
 * @noSelfInFile
 */

/** @noSelf */
declare module "ngx.ipc.worker_events.v2" {
    import type * as v1 from "ngx.ipc.worker_events";

    export type Callback = v1.Callback;
    export type Options = v1.Options;
    export type EventList<Source extends string, Name extends string> = v1.EventList<Source, Name>;

    export const configure: typeof v1.configure;
    export const configured: typeof v1.configured;
    /**
     * Posts an event to every worker, the poster included, each handling it when
     * it arrives; with `unique`, to the one worker that value names.
     * @returns `true`, or `nil, err` (source or event empty, data not encodable,
     * not configured, ngx.ipc refused).
     */
    export function post(source: string, event: string, data?: unknown, unique?: string | number):
        LuaMultiReturn<[true] | [undefined, string]>;
    /**
     * Queues an event for this worker's callbacks (`data` passed as is, `pid`
     * undefined), run at the next poll before anything that arrived.
     * @returns `true`, or `nil, err`.
     */
    export function post_local(source: string, event: string, data?: unknown):
        LuaMultiReturn<[true] | [undefined, string]>;
    /** Runs what waits: this worker's queued `post_local` events first. */
    export const poll: typeof v1.poll;
    export const register: typeof v1.register;
    export const register_weak: typeof v1.register_weak;
    export const unregister: typeof v1.unregister;
    export const event_list: typeof v1.event_list;
    export const events: typeof v1.events;
    /** `"2.0.1"`: the lua-resty-worker-events release whose contract this follows. */
    export const _VERSION: "2.0.1";
}
