// The drop-ins' implementations must accept what their published declarations
// (types/ngx.ipc.{events,events.compat,worker_events,mlcache}.d.ts) let a caller
// pass, under every name declared: a type error here means the two disagree.
// Return types are narrower in the declarations than in the implementations
// (literals such as "done" | "recursive"); typed_spec's sample checks the values
// at run time. typed_spec runs tsc on this file with conformance.ts; nothing is emitted.
import events_impl = require("../../src/ngx/ipc/events");
import compat_impl = require("../../src/ngx/ipc/events/compat");
import worker_events_impl = require("../../src/ngx/ipc/worker_events");
import * as mlcache_impl from "../../src/ngx/ipc/mlcache";
import type * as events from "ngx.ipc.events";
import type * as compat from "ngx.ipc.events.compat";
import type * as worker_events from "ngx.ipc.worker_events";
import type * as mlcache from "ngx.ipc.mlcache";

/** Each function of `T` as a function taking its parameters; any other member as present. */
type Accepts<T> = {
    [K in keyof T]-?: T[K] extends (this: void, ...args: infer A) => unknown ? (this: void, ...args: A) => unknown : unknown;
};

/**
 * The methods of the object `new` returns, as the module functions they also are
 * (the implementation's object type does not show its metatable, nor the
 * declared object the implementation's fields).
 */
type AsFunctions<T> = {
    [K in keyof T]-?: T[K] extends (this: events.Events, ...args: infer A) => unknown
        ? (this: void, ev: never, ...args: A) => unknown
        : never;
};

export const events_module: Accepts<Omit<typeof events, keyof events.Events>> & AsFunctions<Omit<events.Events, "opts">> =
    events_impl;
export const compat_module: Accepts<typeof compat> = compat_impl;
export const worker_events_module: Accepts<typeof worker_events> = worker_events_impl;
export const mlcache_module: Accepts<typeof mlcache> = mlcache_impl;
// what lua-resty-mlcache requires of opts.ipc, the published module is
export const mlcache_ipc = (m: typeof mlcache): mlcache.MlcacheIpc => m;
