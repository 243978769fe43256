# t/with_worker-events: the tests load ngx.ipc.worker_events where they loaded
# lua-resty-worker-events (events_module = "resty.worker.events" stays: healthcheck
# takes no other name; setup.sh makes that name load the drop-in)
s/require "resty\.worker\.events"/require "ngx.ipc.worker_events"/g
