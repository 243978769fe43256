# lua-resty-mlcache's tests in `ours` mode: the instances that take the bundled
# IPC (`ipc_shm = "ipc_shm"`, the shared dict TestMLCache declares for it) take
# ngx.ipc.mlcache instead. Only that spelling is mapped: the tests of ipc_shm's
# own checks (a number, a dict that does not exist, ipc_shm and ipc together) name
# other values and keep testing mlcache.new as it is.
s/ipc_shm = "ipc_shm",/ipc = require "ngx.ipc.mlcache",/
