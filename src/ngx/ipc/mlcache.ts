// ngx.ipc.mlcache: `mlcache.new(name, shm, { ipc = require "ngx.ipc.mlcache" })`.
// The implementation is in ./dropin/mlcache (docs/dropins-mlcache.md).
export { register_listeners, broadcast, poll } from "./dropin/mlcache";
