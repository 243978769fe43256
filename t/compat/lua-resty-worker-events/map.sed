# lua-resty-worker-events' suite (release 2.x, PEERS/lua-resty-worker-events) on
# ngx.ipc.worker_events, which behaves as release 1.0.0 (see skip)
s/resty\.worker\.events/ngx.ipc.worker_events/g
