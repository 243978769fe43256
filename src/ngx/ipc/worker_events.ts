// `require "ngx.ipc.worker_events"`: the drop-in for lua-resty-worker-events
// (./dropin/worker_events has it all).
import worker_events = require("./dropin/worker_events");

export = worker_events;
