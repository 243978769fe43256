# lua-resty-worker-events 1.0.0's suite (PEERS/lua-resty-worker-events-1.0.0): the
# release ngx.ipc.worker_events stands in for (_VERSION "0.3.3")
s/resty\.worker\.events/ngx.ipc.worker_events/g
