---@meta ngx.ipc.worker_events.v2
-- lua-language-server definitions of the ngx.ipc.worker_events.v2 drop-in (the
-- API of lua-resty-worker-events 2.x's resty.worker.events;
-- docs/dropins-worker-events.md): ngx.ipc.worker_events' functions, but `post`
-- and `post_local` return `true` and run no callback inside the call.

---The drop-in for lua-resty-worker-events 2.x.
---@class ngx.ipc.worker_events.v2
---@field events ngx.ipc.worker_events.own_events
local worker_events = {}

---"2.0.1": the lua-resty-worker-events release whose contract this follows.
worker_events._VERSION = "2.0.1"

---As ngx.ipc.worker_events.configure.
---@param opts ngx.ipc.worker_events.options
---@return true|nil ok
---@return string? err the option that is wrong
function worker_events.configure(opts) end

---Whether `configure` has started the module in this worker.
---@return boolean
function worker_events.configured() end

---Posts an event to every worker, the poster included, each handling it when it
---arrives; with `unique`, to the one worker that value names.
---@param source string non-empty
---@param event string non-empty
---@param data? any what LuaJIT's string.buffer encodes
---@param unique? string|number
---@return true|nil ok
---@return string? err
function worker_events.post(source, event, data, unique) end

---Queues an event for this worker's callbacks (`data` passed as is, `pid` nil),
---run at the next poll (an arriving event, `poll()` or a zero-delay timer)
---before anything that arrived.
---@param source string
---@param event string
---@param data? any
---@return true|nil ok
---@return string? err
function worker_events.post_local(source, event, data) end

---Runs what waits: this worker's queued `post_local` events first.
---@return "done"|"recursive"
function worker_events.poll() end

---As ngx.ipc.worker_events.register.
---@param callback ngx.ipc.worker_events.callback
---@param source? string
---@param ... string event names
---@return true
function worker_events.register(callback, source, ...) end

---As ngx.ipc.worker_events.register_weak.
---@param callback ngx.ipc.worker_events.callback
---@param source? string
---@param ... string event names
---@return true
function worker_events.register_weak(callback, source, ...) end

---As ngx.ipc.worker_events.unregister.
---@param callback ngx.ipc.worker_events.callback
---@param source? string
---@param ... string event names
---@return boolean removed
function worker_events.unregister(callback, source, ...) end

---As ngx.ipc.worker_events.event_list.
---@param source string
---@param ... string event names
---@return ngx.ipc.worker_events.event_list
function worker_events.event_list(source, ...) end

return worker_events
