# lua-resty-worker-events' suite (release 2.x, PEERS/lua-resty-worker-events) on
# ngx.ipc.worker_events.v2, the 2.x flavour (see skip)
s/resty\.worker\.events/ngx.ipc.worker_events.v2/g
