// Misuses the declaration must refuse (t/integration/typed_spec.lua type-checks
// this file alone): each line that ends in "// TSnnnn" must fail with that code,
// and nothing else may fail.
import * as ipc from "ngx.ipc";

ipc.send(1, {}, "x"); // TS2345
ipc.send(1, "name"); // TS2554
ipc.receive("n", (data: string) => data.length); // TS2345
ipc.sender = 1; // TS2540
const [answer] = ipc.call_worker(0, "n", "d");
const n: number = answer; // TS2322
export const size = answer.length; // TS18048
ipc.configure({ send_backlog: 65536, size: 1 }); // TS2353
export const w: number = ipc.workers()[0].name; // TS2339
export { n };

// the drop-ins: a line that ends in "// TSnnnn: text" must fail with that code
// and a message that holds the text
import * as events from "ngx.ipc.events";
import * as compat from "ngx.ipc.events.compat";
import * as worker_events from "ngx.ipc.worker_events";
import * as mlcache_ipc from "ngx.ipc.mlcache";
import type { MlcacheIpc } from "ngx.ipc.mlcache";

const ev = events.new({ listening: "/tmp/events.sock" }); // TS2322: is not assignable to type '`unix:${string}`'
ev.publish(1, "source", "event", {}); // TS2345: Argument of type '1' is not assignable to parameter of type '"all" | "current" | (string & {})'
ev.subscribe("*", "*", (data: string) => data); // TS2345: Type 'unknown' is not assignable to type 'string'
ev.subscribe("*", "*", (_d: unknown, _e: string, _s: string, wid: string) => wid); // TS2345: Type 'number | undefined' is not assignable to type 'string'
const { publish } = ev;
publish("all", "source", "event"); // TS2684: The 'this' context of type 'void' is not assignable to method's 'this' of type 'Events'
events.publish("all", "source", "event", {}); // TS2345: Argument of type 'string' is not assignable to parameter of type 'Events'
compat.post(1, "event"); // TS2345: Argument of type 'number' is not assignable to parameter of type 'string'
worker_events.register((_d: unknown, _e: string, _s: string, pid: string) => pid); // TS2345: Type 'number | undefined' is not assignable to type 'string'
export const status: "done" = worker_events.post("source", "event")[0]; // TS2322: Type '"done" | "recursive" | undefined' is not assignable to type '"done"'
export const missing = worker_events.events.started_; // TS2551: Property 'started_' does not exist on type 'EventList<"resty-worker-events", "started" | "stopping">'
mlcache_ipc.broadcast("mlcache:invalidations:x", 1); // TS2345: Argument of type 'number' is not assignable to parameter of type 'string'
export const not_ipc: MlcacheIpc = { broadcast: mlcache_ipc.broadcast }; // TS2741: Property 'register_listeners' is missing
