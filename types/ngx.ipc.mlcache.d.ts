/// <reference types="@typescript-to-lua/language-extensions" />
/**
 * Types of the `ngx.ipc.mlcache` drop-in: the table lua-resty-mlcache 2.x takes
 * as `opts.ipc` (docs/dropins-mlcache.md). In a TypeScriptToLua project,
 * `import * as mlcache_ipc from "ngx.ipc.mlcache"` compiles to
 * `local mlcache_ipc = require("ngx.ipc.mlcache")` when the project lists
 * "ngx.ipc.mlcache" in its tstl `noResolvePaths`; pass `mlcache_ipc` itself as
 * `opts.ipc`. mlcache calls its functions with `.`. Lua users:
 * meta/ngx/ipc/mlcache.lua.
 *
 * @noSelfInFile
 */

/** @noSelf */
declare module "ngx.ipc.mlcache" {
    /** `true`, or `nil` and why not. */
    export type Result = LuaMultiReturn<[true] | [undefined, string]>;

    /** Runs in every worker for each broadcast on its channel, with the broadcast's data. */
    export type Listener = (this: void, data: string) => void;

    /** One of an mlcache instance's events (`invalidation`, `purge`). */
    export interface Channel {
        channel: string;
        handler: Listener;
    }

    /** What mlcache passes to `register_listeners`: its instance's events by name. */
    export type Listeners = Readonly<Record<string, Channel>> | LuaTable<string, Channel>;

    /**
     * What lua-resty-mlcache requires of `opts.ipc` and calls: this module is one
     * (`const ipc: MlcacheIpc = mlcache_ipc` type-checks).
     */
    export interface MlcacheIpc {
        /** From `mlcache.new`: its events; `nil, err` makes `new` fail with it. */
        register_listeners(this: void, events: Listeners): Result;
        /** From `set` and `delete` (data: the key) and `purge` (data: `""`). */
        broadcast(this: void, channel: string, data: string): Result;
        /** From `update(timeout)`; optional for mlcache (then `update` raises). */
        poll?(this: void, timeout?: number): Result;
    }

    /**
     * Records each `{ channel, handler }` and starts listening in this worker.
     * @returns `true`, or `nil, err` when ngx.ipc cannot start here. A wrong
     * argument raises.
     */
    export function register_listeners(events: Listeners): Result;
    /**
     * Sends `data` on `channel` to every worker, this one included (one
     * ngx.ipc broadcast); in init_by_lua* nothing is sent.
     * @returns `true`, or ngx.ipc's `nil, err`.
     */
    export function broadcast(channel: string, data: string): Result;
    /**
     * Nothing to catch up with: events are handled as they arrive.
     * @param timeout seconds, checked and ignored.
     * @returns `true` (`nil, err` as `register_listeners` when this worker cannot listen).
     */
    export function poll(timeout?: number): Result;
}
