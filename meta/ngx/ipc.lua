---@meta ngx.ipc
-- lua-language-server definitions of the ngx.ipc module: point
-- `workspace.library` at the folder holding this `ngx/` (see the README);
-- never on package.path, where it would shadow the real module.

---What a handler returns answers an `ipc.call`: a string, or `nil, err` (an error
---raised in it answers `nil` and its message too). Ignored for plain alerts.
---@alias ngx.ipc.handler fun(data: string): (answer: string?, err: string?)

---@class ngx.ipc.worker
---@field id integer? `ngx.worker.id()`, 0 … `ngx.worker.count()` − 1; nil for the privileged agent
---@field pid integer `ngx.worker.pid()`
---@field agent true? true for OpenResty's privileged agent (listed after the workers)

---@class ngx.ipc.options
---@field send_backlog? integer bytes that may wait in this worker for one destination (default 64 MiB, at least 65536)
---@field receive_backlog? integer bounds the complete alerts held for this worker's handlers (default 128 MiB, at least 65536)

---@class ngx.ipc.stats.refused
---@field send_backlog integer sends refused because the destination's send backlog was full
---@field no_worker integer sends refused because the pid was no live worker

---@class ngx.ipc.stats.dropped
---@field corrupt_packets integer
---@field corrupt_bytes integer
---@field truncated integer alerts whose sender died mid-alert
---@field exited integer queued alerts whose destination exited
---@field out_of_memory integer alerts this worker could not allocate memory for

---@class ngx.ipc.stats.calls
---@field sent integer calls this worker sent
---@field answered integer calls answered
---@field timeouts integer calls that ended in `nil, "timeout"`
---@field late integer answers that came after their call's timeout

---This worker's counters; all zero before it has joined.
---@class ngx.ipc.stats
---@field alerts_sent integer
---@field bytes_sent integer data bytes
---@field writes integer write() calls that put packets into pipes
---@field alerts_received integer
---@field bytes_received integer data bytes
---@field send_queued integer bytes waiting in send queues, all destinations
---@field receive_ready integer bytes of complete alerts waiting for handlers
---@field receive_partial integer bytes of alerts still arriving
---@field backlog table<integer, integer> bytes queued per destination pid
---@field refused ngx.ipc.stats.refused
---@field dropped ngx.ipc.stats.dropped
---@field calls ngx.ipc.stats.calls
---@field cluster ngx.ipc.stats.cluster

---@class ngx.ipc.stats.cluster
---@field running boolean `cluster.configure` was called and this worker's part has started
---@field reader boolean this worker reads the stream for its instance now
---@field position string? the id of the last entry this worker's reader relayed
---@field published integer alerts this worker put into the stream
---@field publish_errors integer `cluster.broadcast` calls that returned nil, err
---@field received integer cluster alerts handed to this worker's handlers
---@field relayed integer entries this worker's reader handed to its instance
---@field gaps integer times the reader found entries trimmed before it read them
---@field lost integer alerts this worker never got: trimmed before its instance's reader read them
---@field reconnects integer times the reader got its connection back
---@field malformed integer stream entries or local alerts that were not ngx.ipc's, skipped
---@field failovers integer times this worker found the sentinels naming another primary
---@field failover_lost integer alerts this worker's reader had handed over that a failover took out of the stream
---@field unreplicated integer broadcasts Redis added but `wait` could not see on enough replicas (nil, err)
---@field skipped integer relayed alerts this worker let pass: handled already, or resent later
---@field redelivered integer alerts handled again because a predecessor killed with -9 was inside their handler
---@field rewinds integer times this worker's reader handed alerts over again to a worker that missed them

---Connection and stream of `ipc.cluster.configure`; the README lists every option.
---@class ngx.ipc.cluster.options
---@field redis? string `"host:port"`, `"[::1]:port"` or `"unix:/path"` of the Redis server (or `sentinels`)
---@field username? string a Redis 6 ACL user (with `password`)
---@field password? string
---@field db? integer `SELECT`ed on each new connection (default 0)
---@field stream? string the stream's name: instances sharing it reach each other
---@field maxlen? integer the stream's length bound (XADD MAXLEN)
---@field max_data? integer the longest alert data, in bytes
---@field timeout? number seconds a `broadcast` may take, connect to reply (default 1)
---@field pool_size? integer accepted, no longer used: each worker publishes over one pipelined connection
---@field keepalive? number seconds the publishing connection is kept idle (default 60)
---@field ssl? boolean TLS to Redis and the sentinels (default false)
---@field ssl_verify? boolean verify the certificate against `lua_ssl_trusted_certificate` (default true)
---@field server_name? string SNI, and the name the certificate must carry (default: `redis`'s host when a name)
---@field ssl_cert? string path of a PEM client certificate (chain), presented when Redis asks; with `ssl_key`
---@field ssl_key? string path of its unencrypted PEM private key
---@field sentinels? string[] sentinels (`"host:port"`) that name the primary, instead of `redis`
---@field master_name? string the primary's name at the sentinels (required with `sentinels`)
---@field sentinel_username? string the sentinels' own ACL user
---@field sentinel_password? string the sentinels' own password
---@field wait? ngx.ipc.cluster.wait WAIT after each pipelined batch of broadcasts

---`broadcast` returns true only once `replicas` replicas have the alert.
---@class ngx.ipc.cluster.wait
---@field replicas integer replicas that must have each alert
---@field timeout? integer milliseconds WAIT may take (default 100)

---Alerts across hosts, over Redis Streams.
---@class ngx.ipc.cluster
local cluster = {}

---Joins this instance to the cluster.
---Context: `init_by_lua*` or `init_worker_by_lua*`.
---@param options ngx.ipc.cluster.options
---@return true
function cluster.configure(options) end

---Sends an alert to every worker of every nginx instance configured with the same
---Redis and stream, this one included, each exactly once.
---@param name string
---@param data string
---@return true|nil ok
---@return string? err when Redis cannot take it, TLS fails, or too few replicas had it (`wait`)
function cluster.broadcast(name, data) end

---Alerts between the worker processes of one nginx instance.
---@class ngx.ipc
---@field sender integer? inside a receive handler's own coroutine: the sending worker's pid; nil at all other times
---@field sender_id integer? inside a receive handler's own coroutine: the sender's `ngx.worker.id()`
---@field sender_instance string? inside a handler of a `cluster.broadcast` alert: the sending nginx instance
---@field cluster ngx.ipc.cluster
local ipc = {}

---The release of the module, the same as the rock's and the npm package's.
ipc._VERSION = "1.0.0"

---Sends an alert to the worker whose pid is `pid`, this one included; it is handled
---from that worker's receive loop, never inside `send`.
---Context: `init_worker_by_lua*` and later, receive handlers included.
---@param pid integer|string a worker's pid, or a numeric string such as `ngx.var.dst_pid`
---@param name string at most 254 bytes
---@param data string
---@return true|nil ok
---@return string? err past a limit, for a pid that is no live worker, or when its send backlog is full
function ipc.send(pid, name, data) end

---Like `send`, addressed by `ngx.worker.id()` of the current generation.
---@param id integer 0 … `ngx.worker.count()` − 1
---@param name string
---@param data string
---@return true|nil ok
---@return string? err
function ipc.send_worker(id, name, data) end

---Sends an alert to every worker of this instance, the sender included.
---Context: as `send`.
---@param name string
---@param data string
---@return true|nil ok
---@return string? err past a limit, or naming the workers whose send backlog was full (the others got it)
function ipc.broadcast(name, data) end

---Sends an alert to exactly one joined worker, chosen round-robin (the sender only
---when it is alone); if that worker exits before handling it, another one does.
---@param name string
---@param data string
---@return true|nil ok
---@return integer|string pid_or_err the chosen worker's pid, or the message when none can take it
function ipc.send_any(name, data) end

---Sends an alert to the worker `pid` and waits, yielding, for its handler's answer.
---Context: wherever `ngx.sleep` works (content, access, rewrite, timers, receive
---handlers); elsewhere it raises. A call to oneself from a handler, or a cycle of
---calls between handlers, ends in `nil, "timeout"`.
---@param pid integer|string
---@param name string
---@param data string
---@param timeout? number seconds, default 5
---@return string|nil answer
---@return string? err the handler's `nil, err` or error, `"timeout"`, or why the send was refused
function ipc.call(pid, name, data, timeout) end

---`call` addressed by `ngx.worker.id()`.
---@param id integer
---@param name string
---@param data string
---@param timeout? number seconds, default 5
---@return string|nil answer
---@return string? err
function ipc.call_worker(id, name, data, timeout) end

---Registers `handler` for alerts named `name` in this worker, replacing an earlier
---one; `nil` deletes it. A table `{ name = handler, ... }` registers several (the
---whole table is checked first). Alerts with no handler are discarded.
---Context: `init_worker_by_lua*` and later; raises in `init_by_lua*`.
---@param name string at most 254 bytes
---@param handler ngx.ipc.handler|nil nil deletes the handler
---@return true
---@overload fun(handlers: table<string, ngx.ipc.handler>): true
function ipc.receive(name, handler) end

---Inside a receive handler: sends an alert back to the worker that sent the one
---being handled. Raises anywhere else.
---@param name string
---@param data string
---@return true|nil ok
---@return string? err as `send`
function ipc.reply(name, data) end

---The workers of this generation that have joined, sorted by id, then the
---privileged agent once it has joined: `{ pid = 1240, agent = true }`, no id.
---@return ngx.ipc.worker[]
function ipc.workers() end

---Sets this worker's caps; either may be left out; a wrong option raises.
---Context: any, `init_by_lua*` included (every worker then inherits it).
---@param options ngx.ipc.options
---@return true
function ipc.configure(options) end

---This worker's counters. Context: any.
---@return ngx.ipc.stats
function ipc.stats() end

ipc.cluster = cluster

return ipc
