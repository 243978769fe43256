// `require "ngx.ipc.events.compat"`: the drop-in for lua-resty-events'
// `resty.events.compat` (docs/dropins.md); the implementation is in ../dropin/events_compat.
import compat = require("../dropin/events_compat");
export = compat;
