---@meta ngx.ipc.events.compat
-- lua-language-server definitions of the ngx.ipc.events.compat drop-in (the API
-- of lua-resty-events 0.3.1's resty.events.compat; docs/dropins-events.md).
-- Every function is called with `.`.

---The lua-resty-worker-events style functions over one ngx.ipc.events object per worker.
---@class ngx.ipc.events.compat
local compat = {}

---The lua-resty-events release whose API this is.
compat._VERSION = "0.3.1"

---Creates this worker's events object and starts it; call it in
---`init_worker_by_lua*`. Wrong options raise.
---@param opts ngx.ipc.events.options
---@return true|nil ok
---@return string? err
function compat.configure(opts) end

---Whether `configure` has started this worker's events object.
---@return boolean
function compat.configured() end

---Does nothing: no broker, no socket.
---@return nil
function compat.run() end

---Publishes to every worker, or with `unique` to the one worker that hash names.
---Raises before `configure`.
---@param source string
---@param event string
---@param data? any
---@param unique? string
---@return "done"|nil ok
---@return string? err as `ev:publish`
function compat.post(source, event, data, unique) end

---Publishes to this worker only (`data` passed as is).
---@param source string
---@param event string
---@param data? any
---@return "done"|nil ok
---@return string? err
function compat.post_local(source, event, data) end

---Calls `callback(data, event, source, wid)` for every event (no `source`),
---every event of `source` (no `event`), or the named events of `source`.
---@param callback ngx.ipc.events.handler
---@param source? string
---@param event? string
---@param ... string further event names
---@return nil
function compat.register(callback, source, event, ...) end

---The same as `register`.
---@param callback ngx.ipc.events.handler
---@param source? string
---@param event? string
---@param ... string further event names
---@return nil
function compat.register_weak(callback, source, event, ...) end

---Removes every registration of `callback`.
---@param callback ngx.ipc.events.handler
---@return boolean removed
function compat.unregister(callback) end

---Nothing to poll: yields 2 ms where it can, as the library's does.
---@return "done"
function compat.poll() end

return compat
