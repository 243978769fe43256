/*
 * ngx_ipc.h: the whole FFI surface of the ngx.ipc shim.
 *
 * build/ngx/ipc/shim.lua declares exactly the block between the BEGIN/END
 * markers with ffi.cdef; t/unit/cdef_spec.lua fails when the two differ.
 * Every function returns 0 on success and -1 on failure; after a failure
 * ngx_ipc_last_error() describes it.  Nothing here blocks.
 */

#ifndef NGX_IPC_H
#define NGX_IPC_H

#include <stddef.h>
#include <stdint.h>

/* the shim is built with -fvisibility=hidden: only this block is exported */
#pragma GCC visibility push(default)

/* BEGIN FFI */
typedef struct {
    int32_t      sender;
    uint32_t     name_len;
    uint32_t     data_len;
    const char  *name;
    const char  *data;
} ngx_ipc_alert_t;

typedef struct {
    uint64_t     alerts_sent;
    uint64_t     bytes_sent;
    uint64_t     alerts_received;
    uint64_t     bytes_received;
    uint64_t     packets_discarded;
    uint64_t     bytes_discarded;
    uint64_t     alerts_truncated;
    uint64_t     send_errors;
} ngx_ipc_counters_t;

int ngx_ipc_start(void *sema);
int ngx_ipc_start_standalone(const char *dir, int32_t pid);
int ngx_ipc_send(int32_t pid, const char *name, size_t name_len,
    const char *data, size_t data_len);
int ngx_ipc_broadcast(const char *name, size_t name_len,
    const char *data, size_t data_len);
int ngx_ipc_recv(ngx_ipc_alert_t *alert);
int ngx_ipc_poll(void);
int ngx_ipc_feed(const char *buf, size_t len);
void ngx_ipc_counters(ngx_ipc_counters_t *out);
const char *ngx_ipc_last_error(void);
const char *ngx_ipc_dir(void);
/* END FFI */

#pragma GCC visibility pop

#endif /* NGX_IPC_H */
