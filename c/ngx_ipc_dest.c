/*
 * ngx_ipc_dest.c: a destination: one pipe, a worker id's (the FIFO w<id>,
 * which outlives a killed worker and exists before one joins) or, for a
 * process without an id, a pid's.  Its cached write fd, its send queue,
 * writes to its pipe (a page or less, or whole pages) and the write event
 * that drains the queue.  ngx_ipc_names.c opens the pipes;
 * ngx_ipc_deliver.c decides what to write and when.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ngx_ipc_internal.h"


#define NGX_IPC_DESTS        64             /* hash buckets */


static ngx_ipc_dest_t   *ngx_ipc_dests[NGX_IPC_DESTS];
static uint32_t          ngx_ipc_epoch;      /* routes older are stale */



/* what error messages call a destination */

const char *
ngx_ipc_dest_label(const ngx_ipc_dest_t *d)
{
    static char  buf[48];

    if (d->key > 0) {
        (void) snprintf(buf, sizeof(buf), "%" PRId32, d->key);

    } else {
        (void) snprintf(buf, sizeof(buf), "worker id %" PRId32, -1 - d->key);
    }

    return buf;
}


/* destinations */

static ngx_ipc_dest_t **
ngx_ipc_dest_slot(int32_t key)
{
    ngx_ipc_dest_t  **p;

    p = &ngx_ipc_dests[(uint32_t) key % NGX_IPC_DESTS];

    while (*p && (*p)->key != key) {
        p = &(*p)->next;
    }

    return p;
}


static ngx_ipc_dest_t *
ngx_ipc_dest_get(int32_t key)
{
    ngx_ipc_dest_t  *d, **slot;

    slot = ngx_ipc_dest_slot(key);

    if (*slot) {
        return *slot;
    }

    d = calloc(1, sizeof(ngx_ipc_dest_t));
    if (d == NULL) {
        return NULL;
    }

    d->key = key;
    d->fd = -1;
    d->wfd = -1;

    *slot = d;

    return d;
}


/* frees d once nothing refers to it any more */

void
ngx_ipc_dest_release(ngx_ipc_dest_t *d)
{
    ngx_ipc_dest_t  **slot;

    if (d->fd != -1 || d->wfd != -1 || d->queue.head != NULL || d->dirty) {
        return;
    }

    slot = ngx_ipc_dest_slot(d->key);
    *slot = d->next;
    free(d);
}


/* the destination exited: drop its fd and queue (its write event, if
 * armed, fires with EPOLLERR and releases it) */

void
ngx_ipc_dest_forget(ngx_ipc_dest_t *d)
{
    ngx_ipc_close(&d->fd);

    ngx_ipc_counters_data.lost_exited += d->oalerts
                                         + ngx_ipc_queue_clear(&d->queue);
    d->oalerts = 0;
    d->olen = 0;

    ngx_ipc_dest_release(d);
}


/* returns 0, or NGX_IPC_GONE or NGX_IPC_FAILED with the error set */

static int
ngx_ipc_dest_open(ngx_ipc_dest_t *d)
{
    int  fd, gone;

    fd = ngx_ipc_names_open(d->key, 0, &gone);
    if (fd == -1) {
        return gone ? NGX_IPC_GONE : NGX_IPC_FAILED;
    }

    d->fd = fd;
    d->kept = d->key < 0;
    d->generation = 0;

    return 0;
}


/*
 * The worker that held this id died (EPIPE, ENXIO): from now on its pipe is
 * held open both ways, so that what is queued, and what is sent to the id
 * until a replacement joins, waits in it.  0: the destination goes on.
 */

int
ngx_ipc_dest_keep(ngx_ipc_dest_t *d)
{
    int  fd, gone;

    if (d->key > 0) {
        return -1;
    }

    fd = ngx_ipc_names_open(d->key, 0, &gone);
    if (fd == -1) {
        return -1;
    }

    ngx_ipc_close(&d->fd);
    d->fd = fd;
    d->kept = 1;
    ngx_ipc_epoch++;                 /* routes to the dead pid: look again */

    return 0;
}


/*
 * A worker holds the id (again): write-only from now on, so that its death
 * shows as EPIPE at once.  Every sender does so once it sees the worker.
 */

static void
ngx_ipc_dest_check_kept(ngx_ipc_dest_t *d)
{
    int  fd, gone;

    if (!d->kept || d->fd == -1 || ngx_ipc_names_holder(-1 - d->key) == 0) {
        return;
    }

    fd = ngx_ipc_names_open(d->key, 1, &gone);
    if (fd == -1) {
        return;
    }

    ngx_ipc_close(&d->fd);
    d->fd = fd;
    d->kept = 0;
}


/*
 * The destination for "key", with its pipe open; NULL with *rc set to
 * NGX_IPC_GONE or NGX_IPC_FAILED (and the error) when there is none.
 */

ngx_ipc_dest_t *
ngx_ipc_dest_ready(int32_t key, int *rc)
{
    uint32_t         gen;
    ngx_ipc_dest_t  *d;

    d = ngx_ipc_dest_get(key);
    if (d == NULL) {
        ngx_ipc_set_error("out of memory");
        *rc = NGX_IPC_FAILED;
        return NULL;
    }

    if (d->fd == -1) {
        *rc = ngx_ipc_dest_open(d);
        if (*rc != 0) {
            ngx_ipc_dest_release(d);
            return NULL;
        }
    }

    if (d->kept) {
        gen = ngx_ipc_dir_generation();

        if (d->generation != gen) {
            d->generation = gen;
            ngx_ipc_dest_check_kept(d);
        }
    }

    return d;
}


/*
 * Writes of more than PIPE_BUF (NGX_IPC_WRITE_MAX) bytes: every pipe has
 * several writers, and POSIX lets such a write be split and interleaved with
 * theirs.  Linux does neither for a non-blocking write: it holds the pipe's
 * lock for the whole call, and a write whose length is a multiple of the
 * page size fills whole pages of the pipe, so that when the pipe fills up
 * the write stops between two pages (fs/pipe.c, pipe_write()).  So a write
 * of whole 4096-byte pages, each holding whole packets, never leaves half a
 * packet behind: 64 KiB alerts take one write instead of 17, and the pipe
 * moves about twice the bytes per second (docs/performance.md).  Only where
 * the page size is 4096 bytes; elsewhere every write is one page or less.
 */

int
ngx_ipc_pages_max(void)
{
    static int  max;

    if (max == 0) {
        max = (sysconf(_SC_PAGESIZE) == NGX_IPC_WRITE_MAX)
              ? NGX_IPC_PAGES_MAX : 1;
    }

    return max;
}


/*
 * One write: at most NGX_IPC_WRITE_MAX bytes (all or nothing), or whole
 * pages (see above).  Returns the bytes written (0: the pipe is full), or
 * NGX_IPC_GONE or NGX_IPC_FAILED with the error set.
 */

ssize_t
ngx_ipc_dest_write_some(ngx_ipc_dest_t *d, const struct iovec *iov, int n)
{
    ssize_t  w;

    for ( ;; ) {
        w = writev(d->fd, iov, n);

        if (w >= 0) {
            ngx_ipc_counters_data.writes++;
            return w;
        }

        if (errno == EINTR) {
            continue;
        }

        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 0;
        }

        if (errno == EPIPE) {
            ngx_ipc_set_error("no such worker: %s (exited)",
                              ngx_ipc_dest_label(d));
            return NGX_IPC_GONE;
        }

        ngx_ipc_set_error("cannot write to the pipe of worker %s: %s",
                          ngx_ipc_dest_label(d), strerror(errno));
        return NGX_IPC_FAILED;
    }
}


/*
 * One write of at most NGX_IPC_WRITE_MAX bytes.  Returns 0 when written, 1
 * when the pipe is full, NGX_IPC_GONE or NGX_IPC_FAILED on error.
 */

int
ngx_ipc_dest_writev(ngx_ipc_dest_t *d, const struct iovec *iov, int n,
    size_t size)
{
    ssize_t  w;

    w = ngx_ipc_dest_write_some(d, iov, n);

    if (w < 0) {
        return (int) w;
    }

    if (w == 0) {
        return 1;
    }

    if ((size_t) w != size) {
        /* cannot happen for size <= PIPE_BUF on a pipe */
        ngx_ipc_set_error("short write to the pipe of worker %s",
                          ngx_ipc_dest_label(d));
        return NGX_IPC_FAILED;
    }

    return 0;
}


/* writes the queue while the pipe takes it; returns -1 (and forgets d)
 * when the destination is gone */

int
ngx_ipc_dest_flush(ngx_ipc_dest_t *d)
{
    int           n;
    size_t        size;
    ssize_t       w;
    struct iovec  iov[NGX_IPC_PAGES_MAX];

    /* what this leaves queued, the pipe had no room for */
    d->gathering = 0;

    while ((n = ngx_ipc_queue_iov(&d->queue, iov, ngx_ipc_pages_max(), &size))
           > 0)
    {
        w = ngx_ipc_dest_write_some(d, iov, n);

        if (w == NGX_IPC_GONE && ngx_ipc_dest_keep(d) == 0) {
            continue;
        }

        if (w < 0) {
            ngx_ipc_dest_forget(d);
            return -1;
        }

        ngx_ipc_queue_written(&d->queue, (size_t) w);

        if ((size_t) w < size) {
            return 0;                   /* the pipe is full */
        }
    }

    return 0;
}


/* nginx mode: wait for room with a write event on a second fd */

void
ngx_ipc_dest_arm(ngx_ipc_dest_t *d)
{
    int  fd, gone;

    if (ngx_ipc_mode != NGX_IPC_MODE_NGINX || d->wfd != -1
        || d->queue.head == NULL)
    {
        return;
    }

    /* its own open(): closing it is what takes it out of epoll */
    fd = ngx_ipc_names_open(d->key, 1, &gone);

    if (fd == -1 && gone && ngx_ipc_dest_keep(d) == 0) {
        fd = ngx_ipc_names_open(d->key, 1, &gone);
    }

    if (fd == -1) {
        if (gone) {
            ngx_ipc_dest_forget(d);
        }

        return;                        /* otherwise retried at next send */
    }

    if (ngx_ipc_hooks.add_write_event(fd) != 0) {
        (void) close(fd);
        return;                        /* retried at the next send */
    }

    d->wfd = fd;
}


void
ngx_ipc_pipe_write_event(int fd)
{
    size_t           i;
    ngx_ipc_dest_t  *d;

    for (i = 0; i < NGX_IPC_DESTS; i++) {
        for (d = ngx_ipc_dests[i]; d; d = d->next) {

            if (d->wfd != fd) {
                continue;
            }

            d->wfd = -1;

            if (d->fd == -1) {
                ngx_ipc_dest_release(d);
                return;
            }

            if (ngx_ipc_dest_flush(d) == 0) {
                ngx_ipc_dest_arm(d);
            }

            return;
        }
    }
}


void
ngx_ipc_dest_flush_all(void)
{
    size_t           i;
    ngx_ipc_dest_t  *d, *next;

    for (i = 0; i < NGX_IPC_DESTS; i++) {
        for (d = ngx_ipc_dests[i]; d; d = next) {
            next = d->next;

            if (d->queue.head && d->fd != -1 && ngx_ipc_dest_flush(d) == 0) {
                ngx_ipc_dest_arm(d);
            }
        }
    }
}


/* routes to a worker id made before its worker died are to be looked at
 * again */

uint32_t
ngx_ipc_dest_epoch(void)
{
    return ngx_ipc_epoch;
}


/* the destinations with bytes queued, by key, at most n of them */

int
ngx_ipc_dest_queued(int32_t *keys, uint64_t *bytes, int n)
{
    int              k;
    size_t           i;
    ngx_ipc_dest_t  *d;

    k = 0;

    for (i = 0; i < NGX_IPC_DESTS; i++) {
        for (d = ngx_ipc_dests[i]; d; d = d->next) {
            if (d->queue.queued == 0) {
                continue;
            }

            if (k < n) {
                keys[k] = d->key;
                bytes[k] = d->queue.queued;
            }

            k++;
        }
    }

    return k;
}
