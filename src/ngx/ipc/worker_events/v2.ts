// `require "ngx.ipc.worker_events.v2"`: the drop-in for lua-resty-worker-events 2.x
// (docs/dropins-worker-events.md); the implementation is in ../dropin/worker_events.
import { create, V2 } from "../dropin/worker_events";

const worker_events = create(V2);

export = worker_events;
