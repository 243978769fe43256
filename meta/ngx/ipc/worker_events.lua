---@meta ngx.ipc.worker_events
-- lua-language-server definitions of the ngx.ipc.worker_events drop-in (the API
-- of lua-resty-worker-events 1.0.0's resty.worker.events;
-- docs/dropins-worker-events.md). Every function is called with `.`.

---Runs for each event registered for: `data` a decoded copy (for `post_local`
---the value itself), `pid` the poster's `ngx.worker.pid()` (nil for `post_local`).
---@alias ngx.ipc.worker_events.callback fun(data: any, event: string, source: string, pid: integer?)

---The options of `configure`: `timeout` is used, the others are checked, then ignored.
---@class ngx.ipc.worker_events.options
---@field timeout? number seconds a unique value is remembered (default 2)
---@field shm? string
---@field interval? number
---@field wait_interval? number
---@field wait_max? number
---@field shm_retries? integer
---@field debug? boolean

---`event_list`'s table: each name maps to itself, `_source` is the source;
---reading a name it does not hold raises.
---@class ngx.ipc.worker_events.event_list
---@field _source string
---@field [string] string

---The module's own events.
---@class ngx.ipc.worker_events.own_events: ngx.ipc.worker_events.event_list
---@field _source "resty-worker-events"
---@field started "started" posted by `configure`
---@field stopping "stopping" at this worker's exit

---The drop-in for lua-resty-worker-events.
---@class ngx.ipc.worker_events
---@field events ngx.ipc.worker_events.own_events
local worker_events = {}

---"0.3.3": what lua-resty-worker-events 1.0.0 reports (lua-resty-healthcheck checks it).
worker_events._VERSION = "0.3.3"

---Starts the module in this worker (`init_worker_by_lua*` or later) and posts
---`started`; later calls change `timeout`. A non-table raises.
---@param opts ngx.ipc.worker_events.options
---@return true|nil ok
---@return string? err the option that is wrong
function worker_events.configure(opts) end

---Whether `configure` has started the module in this worker.
---@return boolean
function worker_events.configured() end

---Posts an event to every worker (this worker's callbacks run before it
---returns); with `unique`, to the one worker that value names.
---@param source string non-empty
---@param event string non-empty
---@param data? any what LuaJIT's string.buffer encodes
---@param unique? string|number
---@return "done"|"recursive"|nil ok
---@return string? err
function worker_events.post(source, event, data, unique) end

---Runs this worker's callbacks only (`data` passed as is, `pid` nil).
---@param source string
---@param event string
---@param data? any
---@return "done"|"recursive"|nil ok
---@return string? err
function worker_events.post_local(source, event, data) end

---Runs what waits (events posted from inside a callback); nothing to fetch.
---@return "done"|"recursive"
function worker_events.poll() end

---Calls `callback(data, event, source, pid)` for every event (no `source`),
---every event of `source` (no names), or the named events of `source`.
---@param callback ngx.ipc.worker_events.callback
---@param source? string
---@param ... string event names
---@return true
function worker_events.register(callback, source, ...) end

---As `register`, but the registration does not keep `callback` from being collected.
---@param callback ngx.ipc.worker_events.callback
---@param source? string
---@param ... string event names
---@return true
function worker_events.register_weak(callback, source, ...) end

---Removes `callback`'s registrations at the level named as when registering.
---@param callback ngx.ipc.worker_events.callback
---@param source? string
---@param ... string event names
---@return boolean removed
function worker_events.unregister(callback, source, ...) end

---A table of `source`'s event names.
---@param source string
---@param ... string event names
---@return ngx.ipc.worker_events.event_list
function worker_events.event_list(source, ...) end

return worker_events
