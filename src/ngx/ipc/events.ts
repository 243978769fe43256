// `require "ngx.ipc.events"`: the drop-in for lua-resty-events' `resty.events`
// (docs/dropins.md); the implementation is in ./dropin/events.
import events = require("./dropin/events");
export = events;
