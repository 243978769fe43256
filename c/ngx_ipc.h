/*
 * ngx_ipc.h: the whole FFI surface of the ngx.ipc shim.
 *
 * build/ngx/ipc/shim.lua declares exactly the block between the BEGIN/END
 * markers with ffi.cdef; t/unit/cdef_spec.lua fails when the two differ.
 * Every function returns 0 on success and -1 on failure; after a failure
 * ngx_ipc_last_error() describes it.  Nothing here blocks.  Exceptions:
 * ngx_ipc_recv returns 1 when it filled in an alert, 0 when none waits;
 * ngx_ipc_backlog and ngx_ipc_workers return how many entries there are
 * (they store at most n); ngx_ipc_send_any returns the pid it chose, and
 * ngx_ipc_worker_id a joined worker's id, both -1 on failure.
 * ngx_ipc_configure takes 0 for "keep the current value".
 *
 * Consumers: each Lua VM of the process (http, stream) that starts is one.
 * ngx_ipc_start returns its number (0 for the first, which joins the
 * process; later ones share its pipe), or -1; "subsystem" ("http" or
 * "stream") names the module whose ngx_<subsystem>_lua_ffi_sema_post
 * posts "sema".  ngx_ipc_recv and ngx_ipc_release act for one consumer.
 * ngx_ipc_want says which names a consumer has handlers for; while there
 * are several, each alert goes to every consumer that wants its name (a
 * lone consumer gets every alert).  ngx_ipc_wanted_by returns the lowest
 * consumer that wants a name, or -1; ngx_ipc_consumers how many started.
 * ngx_ipc_workers gives worker id -1 for a process without one (the
 * privileged agent), after the workers.
 *
 * Lending: ngx_ipc_lend(ref) says that the data of the next send, send_worker
 * or broadcast of this process stays alive in the caller under "ref" (not 0)
 * until ngx_ipc_recv hands back an alert whose "lent" is ref; the copy to this
 * process itself then refers to it instead of copying it ("data" is NULL),
 * and the call returns 1 instead of 0 to say the loan was taken.  Any of
 * those calls ends the loan, taken or not.
 *
 * Counters: writes counts write() calls that put packets into a pipe;
 * refused_* count sends refused with an error to the caller
 * (send_backlog full; no such worker), lost_exited queued alerts dropped
 * because their destination exited, dropped_memory alerts dropped because
 * this process ran out of memory assembling them; send_queued, receive_ready and receive_partial are
 * the bytes held now.
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
    uint32_t     lent;
    const char  *name;
    const char  *data;
} ngx_ipc_alert_t;

typedef struct {
    uint64_t     alerts_sent;
    uint64_t     bytes_sent;
    uint64_t     writes;
    uint64_t     alerts_received;
    uint64_t     bytes_received;
    uint64_t     packets_discarded;
    uint64_t     bytes_discarded;
    uint64_t     alerts_truncated;
    uint64_t     refused_backlog;
    uint64_t     refused_no_worker;
    uint64_t     lost_exited;
    uint64_t     dropped_memory;
    uint64_t     send_queued;
    uint64_t     receive_ready;
    uint64_t     receive_partial;
} ngx_ipc_counters_t;

int ngx_ipc_configure(uint64_t send_backlog, uint64_t receive_backlog);
int ngx_ipc_start(void *sema, const char *subsystem, int32_t id,
    int32_t count);
int ngx_ipc_start_standalone(const char *dir, int32_t pid);
int ngx_ipc_send(int32_t pid, const char *name, size_t name_len,
    const char *data, size_t data_len);
int ngx_ipc_broadcast(const char *name, size_t name_len,
    const char *data, size_t data_len);
int ngx_ipc_send_worker(int32_t id, const char *name, size_t name_len,
    const char *data, size_t data_len);
int32_t ngx_ipc_send_any(const char *name, size_t name_len,
    const char *data, size_t data_len);
int32_t ngx_ipc_worker_id(int32_t pid);
int ngx_ipc_workers(int32_t *ids, int32_t *pids, int n);
void ngx_ipc_lend(uint32_t ref);
int ngx_ipc_recv(int32_t consumer, ngx_ipc_alert_t *alert);
int ngx_ipc_poll(void);
int ngx_ipc_feed(const char *buf, size_t len);
void ngx_ipc_counters(ngx_ipc_counters_t *out);
double ngx_ipc_dropped(void);
int ngx_ipc_backlog(int32_t *pids, uint64_t *bytes, int n);
void ngx_ipc_release(int32_t consumer);
int ngx_ipc_want(int32_t consumer, const char *name, size_t name_len, int on);
int32_t ngx_ipc_wanted_by(const char *name, size_t name_len);
int ngx_ipc_consumers(void);
const char *ngx_ipc_last_error(void);
const char *ngx_ipc_dir(void);
/* END FFI */

#pragma GCC visibility pop

#endif /* NGX_IPC_H */
