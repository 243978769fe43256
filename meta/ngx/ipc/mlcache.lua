---@meta ngx.ipc.mlcache
-- lua-language-server definitions of the ngx.ipc.mlcache drop-in: the table
-- lua-resty-mlcache 2.x takes as `opts.ipc` (docs/dropins-mlcache.md), which
-- calls its functions with `.`.

---One of an mlcache instance's events (`invalidation`, `purge`).
---@class ngx.ipc.mlcache.channel
---@field channel string
---@field handler fun(data: string)

---lua-resty-mlcache's `opts.ipc` for ngx.ipc.
---@class ngx.ipc.mlcache
local mlcache = {}

---From `mlcache.new`: records each `{ channel, handler }` and starts listening
---in this worker. A wrong argument raises.
---@param events table<string, ngx.ipc.mlcache.channel>
---@return true|nil ok
---@return string? err when ngx.ipc cannot start here
function mlcache.register_listeners(events) end

---From `set`, `delete` (data: the key) and `purge` (data: `""`): sends `data` on
---`channel` to every worker, this one included.
---@param channel string
---@param data string
---@return true|nil ok
---@return string? err ngx.ipc's
function mlcache.broadcast(channel, data) end

---From `update`: nothing to catch up with, events are handled as they arrive.
---@param timeout? number seconds, checked and ignored
---@return true|nil ok
---@return string? err when this worker cannot listen
function mlcache.poll(timeout) end

return mlcache
