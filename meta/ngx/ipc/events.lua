---@meta ngx.ipc.events
-- lua-language-server definitions of the ngx.ipc.events drop-in (the API of
-- lua-resty-events 0.3.1's resty.events; docs/dropins-events.md). The module's
-- functions are called with `.` (`events.new(opts)`), the object's methods with
-- `:` (`ev:publish(...)`).

---Runs for each event subscribed to, one at a time; it may yield. `data` is a
---decoded copy (for `"current"` events the value itself); `wid` is the
---publisher's `ngx.worker.id()`, -1 for the privileged agent, nil for `"current"`.
---@alias ngx.ipc.events.handler fun(data: any, event: string, source: string, wid: integer?)

---The options of `new`, as the library checks them.
---@class ngx.ipc.events.options
---@field listening string required, `"unix:..."`: names the channel (no socket is opened)
---@field broker_id? integer checked, then ignored (there is no broker)
---@field unique_timeout? number seconds a unique hash is remembered (default 5)
---@field max_queue_len? integer this worker's queue of events not yet handled (default 10240)
---@field max_payload_len? integer the longest encoded event (default 65536, at most 16 MiB)
---@field enable_privileged_agent? boolean false: the agent does not take part; true: it gets "all" events published before it joined
---@field testing? boolean every event is handled at once, inside `publish`, in the publishing worker only

---What `new` returns; call its methods with `:`.
---@class ngx.ipc.events.object
---@field opts ngx.ipc.events.options the options given to `new`, defaults filled in
local object = {}

---Joins this worker to the instance's channel; call it in `init_worker_by_lua*`.
---@return true|nil ok
---@return string? err when ngx.ipc cannot start here
function object:init_worker() end

---The library's broker loop: does nothing.
---@return nil
function object:run() end

---Publishes an event: `"all"` (every worker, this one included), `"current"`
---(this worker, after the calling code yields or returns; data passed as is), or
---a unique hash (one worker, which drops the same hash for `unique_timeout`).
---@param target "all"|"current"|string
---@param source string non-empty
---@param event string non-empty
---@param data? any what LuaJIT's string.buffer encodes: nil, booleans, numbers, strings, tables of those
---@return true|nil ok
---@return string? err "failed to publish event: ..." (not encodable, too long, queue full, ngx.ipc refused)
function object:publish(target, source, event, data) end

---Calls `handler(data, event, source, wid)` for the events of `source` named
---`event`; `"*"` matches any.
---@param source string
---@param event string
---@param handler ngx.ipc.events.handler
---@return string id for `unsubscribe`
function object:subscribe(source, event, handler) end

---Stops a subscription.
---@param id string|integer what `subscribe` returned
---@return boolean existed
function object:unsubscribe(id) end

---Whether `init_worker` has run and the event loop has turned since.
---@return boolean
function object:is_ready() end

---The drop-in for lua-resty-events' `resty.events`.
---@class ngx.ipc.events
local events = {}

---The lua-resty-events release whose API this is.
events._VERSION = "0.3.1"

---A new events object; wrong options raise, with the library's messages.
---@param opts ngx.ipc.events.options
---@return ngx.ipc.events.object
function events.new(opts) end

---`ev:init_worker()`, as a module function (so in the library too).
---@param ev ngx.ipc.events.object
---@return true|nil ok
---@return string? err
function events.init_worker(ev) end

---`ev:run()`: does nothing.
---@param ev ngx.ipc.events.object
---@return nil
function events.run(ev) end

---`ev:publish(target, source, event, data)`.
---@param ev ngx.ipc.events.object
---@param target "all"|"current"|string
---@param source string
---@param event string
---@param data? any
---@return true|nil ok
---@return string? err
function events.publish(ev, target, source, event, data) end

---`ev:subscribe(source, event, handler)`.
---@param ev ngx.ipc.events.object
---@param source string
---@param event string
---@param handler ngx.ipc.events.handler
---@return string id
function events.subscribe(ev, source, event, handler) end

---`ev:unsubscribe(id)`.
---@param ev ngx.ipc.events.object
---@param id string|integer
---@return boolean existed
function events.unsubscribe(ev, id) end

---`ev:is_ready()`.
---@param ev ngx.ipc.events.object
---@return boolean
function events.is_ready(ev) end

return events
