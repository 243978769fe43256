// The drop-ins from TypeScriptToLua: the same application's events through
// ngx.ipc.events (lua-resty-events' API), ngx.ipc.worker_events
// (lua-resty-worker-events') and ngx.ipc.mlcache (lua-resty-mlcache's opts.ipc,
// driven here as mlcache drives it: Debian packages no lua-resty-mlcache). Its
// init_worker_by_lua* calls init(); the spec's commands call the rest.
import * as events from "ngx.ipc.events";
import * as worker_events from "ngx.ipc.worker_events";
import * as mlcache_ipc from "ngx.ipc.mlcache";
import type { Listeners, MlcacheIpc } from "ngx.ipc.mlcache";

/** "<source>/<event>:<text>:<wid>" of each resty.events event this worker handled. */
const published: string[] = [];
/** "<source>/<event>:<text>:<pid>" of each worker event this worker handled. */
const posted: string[] = [];
/** The keys mlcache's invalidation listener evicted here, "(purge)" for a purge. */
const evicted: string[] = [];

const INVALIDATION = "mlcache:invalidations:sample";
const PURGE = "mlcache:purge:sample";

let ev: events.Events | undefined;
/** What lua-resty-mlcache would be given as opts.ipc: the module, as it is. */
const ipc: MlcacheIpc = mlcache_ipc;
/**
 * An mlcache instance's events: the drop-in holds listeners weakly, as long as
 * their instance lives; this module plays the instance, so it keeps them.
 */
const listeners: Listeners = {
    invalidation: { channel: INVALIDATION, handler: (key) => { evicted.push(key); } },
    purge: { channel: PURGE, handler: () => { evicted.push("(purge)"); } },
};

/** The "text" field of an event's table, or the value itself. */
function text_of(data: unknown): string {
    if (type(data) === "table") {
        return tostring((data as LuaTable<string, unknown>).get("text"));
    }
    return tostring(data);
}

export function init(): void {
    const e = events.new({ listening: "unix:/tmp/ngx-ipc-tstl-sample.sock" });
    e.subscribe("*", "*", (data, event, source, wid) => {
        published.push(`${source}/${event}:${text_of(data)}:${wid}`);
    });
    const [ok, err] = e.init_worker();
    if (!ok) {
        error(`events init_worker: ${err}`);
    }
    ev = e;

    const own = worker_events.events;
    worker_events.register((data, event, source, pid) => {
        posted.push(`${source}/${event}:${text_of(data)}:${pid}`);
    }, "sample", "note", "news");
    worker_events.register((_data, event, source, _pid) => {
        posted.push(`${source}/${event}`);
    }, own._source, own.started);
    const [wok, werr] = worker_events.configure({ timeout: 2 });
    if (!wok) {
        error(`worker_events configure: ${werr}`);
    }

    const [lok, lerr] = ipc.register_listeners(listeners);
    if (!lok) {
        error(`register_listeners: ${lerr}`);
    }
}

/** ev:publish("all", ...) of `{ text }`: true, or nil and why not. */
export function publish_all(text: string): LuaMultiReturn<[true] | [undefined, string]> {
    if (ev === undefined) {
        return $multi(undefined, "init() has not run");
    }
    return ev.publish("all", "sample", "news", { text });
}

/** worker_events.post of `{ text }`, and what this worker had heard when it returned. */
export function post(text: string): LuaMultiReturn<["done" | "recursive", string] | [undefined, string]> {
    const [status, err] = worker_events.post("sample", "note", { text });
    if (status === undefined) {
        return $multi(undefined, err);
    }
    return $multi(status, table.concat(posted, ","));
}

/** What mlcache's set(key) and then update() call. */
export function invalidate(key: string): LuaMultiReturn<[true] | [undefined, string]> {
    const [ok, err] = ipc.broadcast(INVALIDATION, key);
    if (!ok) {
        return $multi(undefined, `could not broadcast update: ${err}`);
    }
    // mlcache's update(): a poll is optional in opts.ipc, this one has it
    if (ipc.poll === undefined) {
        return $multi(undefined, "no poll");
    }
    return ipc.poll(0.3);
}

/** What mlcache's purge() calls. */
export function purge(): LuaMultiReturn<[true] | [undefined, string]> {
    return ipc.broadcast(PURGE, "");
}

/** What this worker heard: resty.events events, worker events, evicted keys, each joined by ",". */
export function heard(): LuaMultiReturn<[string, string, string]> {
    return $multi(table.concat(published, ","), table.concat(posted, ","), table.concat(evicted, ","));
}
