/*
 * ngx_ipc_dest.c: a destination: one pipe, a worker id's (the FIFO w<id>,
 * which outlives a killed worker and exists before one joins) or, for a
 * process without an id, a pid's.  Its cached write fd, the packets small
 * alerts share (obuf), its send queue and the write event that drains it.
 * ngx_ipc_names.c opens the pipes; ngx_ipc_wire.c packs what is written.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "ngx_ipc_internal.h"


#define NGX_IPC_DESTS        64             /* hash buckets */


typedef struct ngx_ipc_dest_s  ngx_ipc_dest_t;

/*
 * Small alerts sent in one event-loop turn share writes: packets collect in
 * "obuf" until it is full or the turn ends (ngx_ipc_pipe_flush_dirty).  obuf
 * holds bytes only while the queue is empty, so order is kept.
 */

struct ngx_ipc_dest_s {
    ngx_ipc_dest_t  *next;          /* hash chain */
    ngx_ipc_dest_t  *dirty_next;    /* obuf to write at the end of the turn */
    ngx_ipc_queue_t  queue;         /* what waits for room in the pipe */
    int32_t          key;           /* > 0: a pid; < 0: worker id -1 - key */
    int              fd;            /* cached write fd, -1: not open */
    int              wfd;           /* write event fd, -1: not armed */
    int              dirty;         /* on the dirty list */
    int              kept;          /* a worker id's pipe held open both
                                       ways: no worker holds the id */
    uint32_t         generation;    /* of the names when kept was checked */
    uint32_t         oalerts;       /* alerts that started in obuf */
    uint64_t         retry_at;      /* queue.added that makes a send try
                                       to write the queue */
    size_t           olen;
    u_char           obuf[NGX_IPC_WRITE_MAX];
};


static ngx_ipc_dest_t   *ngx_ipc_dests[NGX_IPC_DESTS];
static ngx_ipc_dest_t   *ngx_ipc_dirty;
static int64_t           ngx_ipc_lone_end;   /* see ngx_ipc_burst() */
static uint32_t          ngx_ipc_epoch;      /* routes older are stale */

static void ngx_ipc_dest_dirty(ngx_ipc_dest_t *d);
static int ngx_ipc_dest_put(ngx_ipc_dest_t *d, const ngx_ipc_packet_t *p,
    ngx_ipc_out_t *out, int counted);


/* what error messages call a destination */

static const char *
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

static void
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

static void
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

static int
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

#define NGX_IPC_PAGES_MAX  64               /* pages in one write: 256 KiB */

static int
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

static ssize_t
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

static int
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

static int
ngx_ipc_dest_flush(ngx_ipc_dest_t *d)
{
    int           n;
    size_t        size;
    ssize_t       w;
    struct iovec  iov[NGX_IPC_PAGES_MAX];

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

static void
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
ngx_ipc_pipe_flush_all(void)
{
    size_t           i;
    ngx_ipc_dest_t  *d, *next;

    ngx_ipc_lone_end = 0;                    /* standalone: a new turn */

    for (i = 0; i < NGX_IPC_DESTS; i++) {
        for (d = ngx_ipc_dests[i]; d; d = next) {
            next = d->next;

            if (d->queue.head && d->fd != -1 && ngx_ipc_dest_flush(d) == 0) {
                ngx_ipc_dest_arm(d);
            }
        }
    }
}


/*
 * Is this alert part of a burst?  A burst's alerts share writes, flushed at
 * the end of the turn; an alert on its own (a reply in a ping-pong, say) is
 * written at once, without the cost of arming the end of the turn.  nginx
 * does not tell where a turn starts, so a burst is an alert that starts less
 * than NGX_IPC_BURST_NS after the last write of an alert on its own ended,
 * whatever its destination: a process that sends again that soon is in a
 * loop of sends (or a broadcast), however long the write took to wake its
 * reader.  In standalone mode ngx_ipc_poll() ends a turn, so a burst is any
 * alert after the first one written on its own in the turn.
 */

#define NGX_IPC_BURST_NS  2000

int64_t
ngx_ipc_now(void)
{
    struct timespec  ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1) {
        return 0;
    }

    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}


static int
ngx_ipc_burst(void)
{
    if (ngx_ipc_mode == NGX_IPC_MODE_STANDALONE) {
        return ngx_ipc_lone_end != 0;
    }

    return ngx_ipc_now() - ngx_ipc_lone_end < NGX_IPC_BURST_NS;
}


static void
ngx_ipc_lone_written(void)
{
    ngx_ipc_lone_end = (ngx_ipc_mode == NGX_IPC_MODE_STANDALONE)
                       ? 1 : ngx_ipc_now();
}


/* the pipe is full: obuf's packets become the head of the (empty) queue */

static int
ngx_ipc_dest_hold(ngx_ipc_dest_t *d)
{
    if (d->olen == 0) {
        return 0;
    }

    if (ngx_ipc_queue_push_front(&d->queue, d->obuf, d->olen, d->oalerts)
        != 0)
    {
        return -1;
    }

    d->olen = 0;
    d->oalerts = 0;

    return 0;
}


static void
ngx_ipc_dest_dirty(ngx_ipc_dest_t *d)
{
    if (d->dirty) {
        return;
    }

    d->dirty = 1;
    d->dirty_next = ngx_ipc_dirty;
    ngx_ipc_dirty = d;

    ngx_ipc_hooks.arm_turn();
}


/* the end of an event-loop turn: what small alerts left in obufs goes out */

void
ngx_ipc_pipe_flush_dirty(void)
{
    ngx_ipc_dest_t  *d;

    while (ngx_ipc_dirty) {
        d = ngx_ipc_dirty;
        ngx_ipc_dirty = d->dirty_next;
        d->dirty = 0;

        if (d->olen == 0 || d->fd == -1) {
            ngx_ipc_dest_release(d);
            continue;
        }

        (void) ngx_ipc_dest_put(d, NULL, NULL, 0);
    }
}


/*
 * Writes obuf's packets, then, if p is not NULL, that packet with its name
 * and data straight from the caller's memory: one write, no copy.
 */

static int
ngx_ipc_dest_write_packet(ngx_ipc_dest_t *d, const ngx_ipc_packet_t *p)
{
    int           n;
    size_t        size;
    struct iovec  iov[5];

    n = 0;
    size = d->olen;

    if (d->olen) {
        iov[n].iov_base = d->obuf;
        iov[n++].iov_len = d->olen;
    }

    if (p) {
        iov[n].iov_base = (void *) &p->h;
        iov[n++].iov_len = NGX_IPC_HDR_SIZE;

        if (p->h.flags & NGX_IPC_FLAG_UNICAST) {
            iov[n].iov_base = (void *) &p->dest;
            iov[n++].iov_len = NGX_IPC_DEST_SIZE;
        }

        if (p->h.name_len) {
            iov[n].iov_base = (void *) p->name;
            iov[n++].iov_len = p->h.name_len;
        }

        if (p->data_len) {
            iov[n].iov_base = (void *) p->data;
            iov[n++].iov_len = p->data_len;
        }

        size += NGX_IPC_HDR_SIZE + p->h.len;
    }

    return ngx_ipc_dest_writev(d, iov, n, size);
}


/*
 * One write of obuf's packets and p (if not NULL).  Returns 0 when written
 * (obuf is empty then), 1 when the pipe was full and obuf's packets and the
 * rest of "out" (p included; out may be NULL) now wait in the queue, or an
 * error.  "counted": the alert being sent has packets in obuf already, so
 * obuf counts it (once, for lost_exited), and if the write fails it is not
 * lost: the send that returns the error does not take it.
 */

static int
ngx_ipc_dest_put(ngx_ipc_dest_t *d, const ngx_ipc_packet_t *p,
    ngx_ipc_out_t *out, int counted)
{
    int  rc;

    rc = ngx_ipc_dest_write_packet(d, p);

    if (rc == NGX_IPC_GONE && ngx_ipc_dest_keep(d) == 0) {
        if (out != NULL && out->dest > 0) {

            /* a unicast to the pid that just died is refused; obuf's
             * packets (earlier alerts) go at the turn's end */

            if (d->olen) {
                ngx_ipc_dest_dirty(d);
            }

            ngx_ipc_set_error("no such worker: %" PRId32 " (exited)",
                              out->dest);
            return NGX_IPC_GONE;
        }

        rc = ngx_ipc_dest_write_packet(d, p);
    }

    if (rc == 1) {
        if (ngx_ipc_dest_hold(d) != 0
            || (out && ngx_ipc_queue_add(&d->queue, out, counted) != 0))
        {
            return NGX_IPC_FAILED;
        }

        ngx_ipc_dest_arm(d);
        return 1;
    }

    if (rc < 0) {
        d->oalerts -= counted;
        ngx_ipc_dest_forget(d);
        return rc;
    }

    d->olen = 0;
    d->oalerts = 0;

    return 0;
}


/*
 * A packet carrying at least this much data goes out from the caller's
 * memory (writev) rather than being copied into obuf: the copy would cost
 * more than the extra iovecs.
 */

#define NGX_IPC_SLICE_MIN  1024

/* while a queue waits, every this many bytes queued a send tries to write it */
#define NGX_IPC_RETRY_BYTES  (64 * 1024)

/*
 * The whole-page packets that "out" has next, in one write (obuf must be
 * empty: its bytes go first).  Returns 0 when they were written, or when
 * there were fewer than two or the write failed (the packet-by-packet path
 * then goes on, and meets the error itself); 1 when the pipe filled up and
 * the rest of the alert now waits in the queue; NGX_IPC_FAILED when out of
 * memory queueing it.
 */

static int
ngx_ipc_deliver_pages(ngx_ipc_dest_t *d, ngx_ipc_out_t *out)
{
    int               i, n, np;
    size_t            k, r;
    ssize_t           w;
    ngx_ipc_out_t     next;
    ngx_ipc_packet_t  p[NGX_IPC_PAGES_MAX];
    struct iovec      iov[4 * NGX_IPC_PAGES_MAX];
    u_char            page[NGX_IPC_WRITE_MAX];

    next = *out;
    n = 0;

    for (np = 0; np < ngx_ipc_pages_max(); np++) {
        k = ngx_ipc_packet_next(&p[np], NGX_IPC_WRITE_MAX, ngx_ipc_self,
                                &next);
        if (k != NGX_IPC_WRITE_MAX) {
            break;
        }

        ngx_ipc_packet_take(&next, &p[np]);

        iov[n].iov_base = (void *) &p[np].h;
        iov[n++].iov_len = NGX_IPC_HDR_SIZE;

        if (p[np].h.flags & NGX_IPC_FLAG_UNICAST) {
            iov[n].iov_base = (void *) &p[np].dest;
            iov[n++].iov_len = NGX_IPC_DEST_SIZE;
        }

        if (p[np].h.name_len) {
            iov[n].iov_base = (void *) p[np].name;
            iov[n++].iov_len = p[np].h.name_len;
        }

        iov[n].iov_base = (void *) p[np].data;
        iov[n++].iov_len = p[np].data_len;
    }

    if (np < 2) {
        return 0;
    }

    w = ngx_ipc_dest_write_some(d, iov, n);
    if (w < 0) {
        return 0;
    }

    for (i = 0; i < np && (size_t) w >= (size_t) (i + 1) * NGX_IPC_WRITE_MAX;
         i++)
    {
        ngx_ipc_packet_take(out, &p[i]);
    }

    if ((size_t) w == (size_t) np * NGX_IPC_WRITE_MAX) {
        return 0;
    }

    /* the pipe is full: the rest waits, a part of a page first (see above:
     * Linux does not leave one; if it did, it is the part to go next) */

    r = (size_t) w - (size_t) i * NGX_IPC_WRITE_MAX;
    if (r) {
        ngx_ipc_packet_copy(page, &p[i]);
        ngx_ipc_packet_take(out, &p[i]);
    }

    if (ngx_ipc_queue_add(&d->queue, out, r && (p[i].h.flags
                                                & NGX_IPC_FLAG_FIRST)) != 0
        || (r && ngx_ipc_queue_push_front(&d->queue, page + r,
                                          NGX_IPC_WRITE_MAX - r,
                                          (p[i].h.flags & NGX_IPC_FLAG_FIRST)
                                          != 0) != 0))
    {
        return NGX_IPC_FAILED;
    }

    ngx_ipc_dest_arm(d);
    return 1;
}


static int
ngx_ipc_deliver_to(ngx_ipc_dest_t *d, const ngx_ipc_out_t *alert)
{
    int               rc, lone, wrote, counted;
    size_t            k, room;
    int32_t           key;
    uint32_t          off;
    ngx_ipc_out_t     out;
    ngx_ipc_packet_t  p;

    out = *alert;

    if (d->queue.head && d->queue.added >= d->retry_at) {

        /*
         * The write event that drains the queue comes only when this worker
         * is back in its event loop; a sender that sends many alerts before
         * it yields would leave the reader idle meanwhile, its pipe empty.
         */

        d->retry_at = d->queue.added + NGX_IPC_RETRY_BYTES;
        key = d->key;

        if (ngx_ipc_dest_flush(d) != 0) {
            return key > 0 ? NGX_IPC_GONE : NGX_IPC_FAILED;   /* d is gone */
        }
    }

    if (d->queue.head) {

        /* keep the order: behind what is queued already */

        if (d->queue.queued + ngx_ipc_out_packed(&out)
            > ngx_ipc_limits.send_backlog)
        {
            if (out.dest > 0) {
                ngx_ipc_set_error("send backlog to %" PRId32 " is full "
                                  "(send_backlog is %" PRIu64 " bytes)",
                                  out.dest, ngx_ipc_limits.send_backlog);

            } else {
                ngx_ipc_set_error("send backlog to %s is full "
                                  "(send_backlog is %" PRIu64 " bytes)",
                                  ngx_ipc_dest_label(d),
                                  ngx_ipc_limits.send_backlog);
            }
            return NGX_IPC_FULL;
        }

        if (ngx_ipc_queue_add(&d->queue, &out, 0) != 0) {
            return NGX_IPC_FAILED;
        }

        ngx_ipc_dest_arm(d);
        return 0;
    }

    lone = !d->dirty && !ngx_ipc_burst();
    wrote = 0;
    counted = 0;

    while (!ngx_ipc_out_done(&out)) {

        if (d->olen == 0 && ngx_ipc_pages_max() > 1) {
            off = out.off;

            rc = ngx_ipc_deliver_pages(d, &out);
            if (rc != 0) {
                return rc == 1 ? 0 : rc;
            }

            if (out.off != off) {
                wrote = 1;
                continue;
            }
        }

        room = sizeof(d->obuf) - d->olen;
        k = ngx_ipc_packet_next(&p, room, ngx_ipc_self, &out);

        if (k && (p.data_len < NGX_IPC_SLICE_MIN
                  || (p.last && k < room && (!lone || wrote))))
        {
            /*
             * Small packets, and the tail of an alert that is to wait for
             * the turn's end, are copied into obuf to share a write with
             * what follows.
             */

            ngx_ipc_packet_copy(d->obuf + d->olen, &p);
            ngx_ipc_packet_take(&out, &p);
            d->olen += k;
            d->oalerts += !counted;
            counted = 1;
            continue;
        }

        /* obuf is full, or the packet is large: one write */

        rc = ngx_ipc_dest_put(d, k ? &p : NULL, &out, counted);
        if (rc != 0) {
            return rc == 1 ? 0 : rc;
        }

        if (k) {
            ngx_ipc_packet_take(&out, &p);
        }

        counted = 0;
        wrote = 1;
    }

    rc = 0;

    if (d->olen && (!lone || wrote)) {

        /* part of a burst, or the tail of a long alert: at the turn's end */

        ngx_ipc_dest_dirty(d);

    } else if (d->olen) {

        /*
         * An alert on its own goes out at once: no latency added, and a
         * destination that died is reported to this very send.
         */

        rc = ngx_ipc_dest_put(d, NULL, &out, counted);
        if (rc == 1) {
            rc = 0;
        }
    }

    if (lone) {
        ngx_ipc_lone_written();
    }

    return rc;
}


int
ngx_ipc_dest_deliver(int32_t key, const ngx_ipc_out_t *alert)
{
    int              rc;
    uint32_t         gen;
    ngx_ipc_dest_t  *d;

    d = ngx_ipc_dest_get(key);
    if (d == NULL) {
        ngx_ipc_set_error("out of memory");
        return NGX_IPC_FAILED;
    }

    if (d->fd == -1) {
        rc = ngx_ipc_dest_open(d);
        if (rc != 0) {
            ngx_ipc_dest_release(d);
            return rc;
        }
    }

    if (d->kept) {
        gen = ngx_ipc_dir_generation();

        if (d->generation != gen) {
            d->generation = gen;
            ngx_ipc_dest_check_kept(d);
        }
    }

    return ngx_ipc_deliver_to(d, alert);
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
