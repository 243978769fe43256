// `require "ngx.ipc.worker_events"`: the drop-in for lua-resty-worker-events 1.0.0
// (./dropin/worker_events has it all; ./worker_events/v2 is release 2.x's).
import { create, V1 } from "./dropin/worker_events";

const worker_events = create(V1);

export = worker_events;
