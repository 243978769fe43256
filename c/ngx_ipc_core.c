/*
 * ngx_ipc_core.c: what every layer of the shim may use: the error message,
 * the mode it runs in, and the one table through which the lower layers
 * (packets, pipes, destinations) reach the nginx glue without knowing it.
 *
 * The files, lowest first; each uses only those before it:
 *
 *   ngx_ipc_core.c     errors, mode, hooks, clock
 *   ngx_ipc_cache.c    buffers kept for reuse, freed after bursts
 *   ngx_ipc_consumer.c the Lua VMs that take alerts, their names, posts
 *   ngx_ipc_assemble.c reassembly per sender, ready queue, counters
 *   ngx_ipc_wire.c     packing alerts into packets, parsing a stream of them
 *   ngx_ipc_proc.c     facts about processes (/proc, kill(pid, 0))
 *   ngx_ipc_dir.c      the pipe directory, this process's FIFO, clean-up
 *   ngx_ipc_names.c    the instance's workers by name, opening their pipes
 *   ngx_ipc_queue.c    a send queue: packed packets waiting for room
 *   ngx_ipc_dest.c     a destination: its fd, writes, queue, write event
 *   ngx_ipc_deliver.c  an alert to a destination: shared writes, pages
 *   ngx_ipc_send.c     send and broadcast: routes, worker ids, candidates
 *   ngx_ipc_nginx.c    the nginx ABI, event handlers, start-up; sets the hooks
 */

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "ngx_ipc_internal.h"


static int   ngx_ipc_no_event(int fd) { (void) fd; return -1; }
static void  ngx_ipc_nothing(void) { }
static int   ngx_ipc_not_exiting(void) { return 0; }
static int   ngx_ipc_nothing_unread(void) { return 0; }


int              ngx_ipc_mode;

ngx_ipc_hooks_t  ngx_ipc_hooks = {
    ngx_ipc_no_event,           /* add_write_event */
    ngx_ipc_nothing,            /* arm_turn */
    ngx_ipc_nothing,            /* notify */
    ngx_ipc_not_exiting,        /* exiting */
    ngx_ipc_nothing,            /* drained */
    ngx_ipc_nothing,            /* resume */
    ngx_ipc_nothing,            /* flush */
    ngx_ipc_nothing_unread      /* unread */
};

static char      ngx_ipc_error[512];


void
ngx_ipc_set_error(const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    (void) vsnprintf(ngx_ipc_error, sizeof(ngx_ipc_error), fmt, args);
    va_end(args);
}


const char *
ngx_ipc_last_error(void)
{
    return ngx_ipc_error;
}


void
ngx_ipc_close(int *fd)
{
    if (*fd != -1) {
        (void) close(*fd);
        *fd = -1;
    }
}


/* a monotonic clock, in nanoseconds (0 if it fails) */

int64_t
ngx_ipc_now(void)
{
    struct timespec  ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1) {
        return 0;
    }

    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}
