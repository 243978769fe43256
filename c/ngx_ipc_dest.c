/*
 * ngx_ipc_dest.c: destinations (cached write fds, the packets small alerts
 * share, send queues), and send and broadcast on top of them.
 *
 * A destination is one pipe: a worker reached by its id (the FIFO w<id>,
 * which outlives a killed worker and exists before one joins) or, for a
 * process without an id, by its pid.  ngx_ipc_dir.c names and opens them;
 * ngx_ipc_packet.c packs what is written.
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
#define NGX_IPC_ROUTES       256            /* hash buckets */

/* how long a route to a worker reached by its id is trusted without
 * asking whether its pid is still alive */
#define NGX_IPC_ALIVE_NS     1000000


/*
 * What waits in a send queue: one write's worth of whole packets, packed
 * when the alert was sent (the caller's memory is gone by the time the pipe
 * has room).  Items fill up in order: only the last one has room left.
 */

typedef struct ngx_ipc_item_s  ngx_ipc_item_t;

struct ngx_ipc_item_s {
    ngx_ipc_item_t  *next;
    uint32_t         len;           /* packet bytes in buf */
    uint32_t         alerts;        /* alerts with their first bytes here */
    u_char           buf[NGX_IPC_WRITE_MAX];
};

typedef struct ngx_ipc_dest_s  ngx_ipc_dest_t;

/*
 * Small alerts sent in one event-loop turn share writes: packets collect in
 * "obuf" until it is full or the turn ends (ngx_ipc_pipe_flush_dirty).  obuf
 * holds bytes only while the queue is empty, so order is kept.
 */

struct ngx_ipc_dest_s {
    ngx_ipc_dest_t  *next;          /* hash chain */
    ngx_ipc_dest_t  *dirty_next;    /* obuf to write at the end of the turn */
    ngx_ipc_item_t  *head;
    ngx_ipc_item_t  *tail;
    uint64_t         queued;        /* bytes of name and data queued */
    int32_t          key;           /* > 0: a pid; < 0: worker id -1 - key */
    int              fd;            /* cached write fd, -1: not open */
    int              wfd;           /* write event fd, -1: not armed */
    int              dirty;         /* on the dirty list */
    int              kept;          /* a worker id's pipe held open both
                                       ways: no worker holds the id */
    uint32_t         generation;    /* of the names when kept was checked */
    uint32_t         oalerts;       /* alerts that started in obuf */
    size_t           olen;
    u_char           obuf[NGX_IPC_WRITE_MAX];
};

/*
 * What send(pid) resolved that pid to, trusted while the directory did not
 * change (and, for a worker reached by id, for NGX_IPC_ALIVE_NS after its pid
 * was last seen alive): a worker killed with kill -9 leaves its w<id> to its
 * replacement, and a send to the dead pid must fail rather than go there.
 */

typedef struct ngx_ipc_route_s  ngx_ipc_route_t;

struct ngx_ipc_route_s {
    ngx_ipc_route_t  *next;
    int32_t           pid;
    int32_t           key;
    uint32_t          generation;
    uint32_t          epoch;
    int64_t           alive_at;
};

static ngx_ipc_dest_t   *ngx_ipc_dests[NGX_IPC_DESTS];
static ngx_ipc_route_t  *ngx_ipc_routes[NGX_IPC_ROUTES];
static ngx_ipc_dest_t   *ngx_ipc_dirty;
static int64_t           ngx_ipc_lone_end;   /* see ngx_ipc_burst() */
static uint32_t          ngx_ipc_epoch;      /* routes older are stale */

static void ngx_ipc_dest_dirty(ngx_ipc_dest_t *d);
static int32_t ngx_ipc_holder(int32_t id);
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


static void
ngx_ipc_close(int *fd)
{
    if (*fd != -1) {
        (void) close(*fd);
        *fd = -1;
    }
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

    if (d->fd != -1 || d->wfd != -1 || d->head != NULL || d->dirty) {
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
    ngx_ipc_item_t  *it;

    ngx_ipc_close(&d->fd);

    ngx_ipc_counters_data.lost_exited += d->oalerts;
    d->oalerts = 0;
    d->olen = 0;

    while (d->head) {
        it = d->head;
        d->head = it->next;
        ngx_ipc_counters_data.lost_exited += it->alerts;
        free(it);
    }

    d->tail = NULL;
    ngx_ipc_counters_data.send_queued -= d->queued;
    d->queued = 0;

    ngx_ipc_dest_release(d);
}


/* returns 0, or NGX_IPC_GONE or NGX_IPC_FAILED with the error set */

static int
ngx_ipc_dest_open(ngx_ipc_dest_t *d)
{
    int  fd, gone;

    fd = ngx_ipc_dir_open(d->key, 0, &gone);
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

    fd = ngx_ipc_dir_open(d->key, 0, &gone);
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
ngx_ipc_dest_check_kept(ngx_ipc_dest_t *d, int32_t holder)
{
    int  fd, gone;

    if (!d->kept || d->fd == -1) {
        return;
    }

    if (holder == 0) {
        holder = ngx_ipc_holder(-1 - d->key);
        if (holder == 0) {
            return;
        }
    }

    fd = ngx_ipc_dir_open(d->key, 1, &gone);
    if (fd == -1) {
        return;
    }

    ngx_ipc_close(&d->fd);
    d->fd = fd;
    d->kept = 0;
}


/*
 * One write of at most NGX_IPC_WRITE_MAX bytes (so the pipe takes all of it
 * or nothing).  Returns 0 when written, 1 when the pipe is full,
 * NGX_IPC_GONE or NGX_IPC_FAILED on error.
 */

static int
ngx_ipc_dest_writev(ngx_ipc_dest_t *d, const struct iovec *iov, int n,
    size_t size)
{
    ssize_t  w;

    for ( ;; ) {
        w = writev(d->fd, iov, n);

        if (w == (ssize_t) size) {
            ngx_ipc_counters_data.writes++;
            return 0;
        }

        if (w >= 0) {
            /* cannot happen for size <= PIPE_BUF on a pipe */
            ngx_ipc_set_error("short write to the pipe of worker %s",
                              ngx_ipc_dest_label(d));
            return NGX_IPC_FAILED;
        }

        if (errno == EINTR) {
            continue;
        }

        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 1;
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


static int
ngx_ipc_dest_write(ngx_ipc_dest_t *d, const u_char *buf, size_t n)
{
    struct iovec  iov;

    iov.iov_base = (void *) buf;
    iov.iov_len = n;

    return ngx_ipc_dest_writev(d, &iov, 1, n);
}


/*
 * Packs the rest of an alert into the queue: into the room the last item
 * has, then into new items.  All or nothing: on failure the queue is as it
 * was.  "counted": the alert started in an earlier item (held from obuf),
 * which counts it already.
 */

static int
ngx_ipc_dest_enqueue(ngx_ipc_dest_t *d, ngx_ipc_out_t *out, int counted)
{
    size_t           k, added;
    uint32_t         len0, alerts0;
    ngx_ipc_item_t  *it, *tail0, *next;

    tail0 = d->tail;
    len0 = tail0 ? tail0->len : 0;
    alerts0 = tail0 ? tail0->alerts : 0;
    added = 0;
    it = tail0;

    while (!ngx_ipc_out_done(out)) {

        k = 0;
        if (it) {
            k = ngx_ipc_pack(it->buf + it->len, sizeof(it->buf) - it->len,
                             ngx_ipc_self, out);
        }

        if (k == 0) {
            it = malloc(sizeof(ngx_ipc_item_t));
            if (it == NULL) {
                goto failed;
            }

            it->next = NULL;
            it->len = 0;
            it->alerts = 0;

            if (d->tail) {
                d->tail->next = it;

            } else {
                d->head = it;
            }

            d->tail = it;
            continue;
        }

        if (added == 0 && !counted) {
            it->alerts++;            /* counted once, where its bytes start */
        }

        it->len += (uint32_t) k;
        added += k;
    }

    d->queued += added;
    ngx_ipc_counters_data.send_queued += added;

    return 0;

failed:

    ngx_ipc_set_error("out of memory queueing %" PRIu64 " bytes for worker %s",
                      ngx_ipc_out_left(out) + added, ngx_ipc_dest_label(d));

    it = tail0 ? tail0->next : d->head;

    while (it) {
        next = it->next;
        free(it);
        it = next;
    }

    if (tail0) {
        tail0->next = NULL;
        tail0->len = len0;
        tail0->alerts = alerts0;

    } else {
        d->head = NULL;
    }

    d->tail = tail0;

    return -1;
}


/* writes the queue while the pipe takes it; returns -1 (and forgets d)
 * when the destination is gone */

static int
ngx_ipc_dest_flush(ngx_ipc_dest_t *d)
{
    int              rc;
    ngx_ipc_item_t  *it;

    while (d->head) {
        it = d->head;

        rc = ngx_ipc_dest_write(d, it->buf, it->len);

        if (rc == 1) {
            return 0;
        }

        if (rc == NGX_IPC_GONE && ngx_ipc_dest_keep(d) == 0) {
            continue;
        }

        if (rc < 0) {
            ngx_ipc_dest_forget(d);
            return -1;
        }

        d->head = it->next;
        if (d->head == NULL) {
            d->tail = NULL;
        }

        d->queued -= it->len;
        ngx_ipc_counters_data.send_queued -= it->len;
        free(it);
    }

    return 0;
}


/* nginx mode: wait for room with a write event on a second fd */

static void
ngx_ipc_dest_arm(ngx_ipc_dest_t *d)
{
    int  fd, gone;

    if (ngx_ipc_mode != NGX_IPC_MODE_NGINX || d->wfd != -1 || d->head == NULL)
    {
        return;
    }

    /* its own open(): closing it is what takes it out of epoll */
    fd = ngx_ipc_dir_open(d->key, 1, &gone);

    if (fd == -1 && gone && ngx_ipc_dest_keep(d) == 0) {
        fd = ngx_ipc_dir_open(d->key, 1, &gone);
    }

    if (fd == -1) {
        if (gone) {
            ngx_ipc_dest_forget(d);
        }

        return;                        /* otherwise retried at next send */
    }

    if (ngx_ipc_nginx_add_write_event(fd) != 0) {
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

            if (d->head && d->fd != -1 && ngx_ipc_dest_flush(d) == 0) {
                ngx_ipc_dest_arm(d);
            }
        }
    }
}


/* sending */

static int
ngx_ipc_check(size_t name_len, size_t data_len)
{
    if (name_len > NGX_IPC_NAME_MAX) {
        ngx_ipc_set_error("name too long: %zu bytes (at most %d)",
                          name_len, NGX_IPC_NAME_MAX);
        return -1;
    }

    if (data_len > NGX_IPC_DATA_MAX) {
        ngx_ipc_set_error("data too long: %zu bytes (at most %u, the longest "
                          "LuaJIT string)", data_len, NGX_IPC_DATA_MAX);
        return -1;
    }

    if (ngx_ipc_pipe_read_fd() == -1) {
        ngx_ipc_set_error("ngx.ipc is not started");
        return -1;
    }

    if (ngx_ipc_nginx_exiting()) {
        ngx_ipc_set_error("ngx.ipc: this worker is shutting down (reload or "
                          "quit) and sends no more alerts: they could reach "
                          "the next generation");
        return -1;
    }

    return 0;
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

static int64_t
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
    ngx_ipc_item_t  *it;

    if (d->olen == 0) {
        return 0;
    }

    it = malloc(sizeof(ngx_ipc_item_t));
    if (it == NULL) {
        ngx_ipc_set_error("out of memory queueing %zu bytes for worker %s",
                          d->olen, ngx_ipc_dest_label(d));
        return -1;
    }

    memcpy(it->buf, d->obuf, d->olen);
    it->len = (uint32_t) d->olen;
    it->alerts = d->oalerts;
    it->next = d->head;
    d->head = it;
    if (d->tail == NULL) {
        d->tail = it;
    }

    d->queued += d->olen;
    ngx_ipc_counters_data.send_queued += d->olen;
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

    ngx_ipc_nginx_arm_turn();
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

            return NGX_IPC_GONE;
        }

        rc = ngx_ipc_dest_write_packet(d, p);
    }

    if (rc == 1) {
        if (ngx_ipc_dest_hold(d) != 0
            || (out && ngx_ipc_dest_enqueue(d, out, counted) != 0))
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

static int
ngx_ipc_deliver_to(ngx_ipc_dest_t *d, const ngx_ipc_out_t *alert)
{
    int               rc, lone, wrote, counted;
    size_t            k, room;
    ngx_ipc_out_t     out;
    ngx_ipc_packet_t  p;

    out = *alert;

    if (d->head) {

        /* keep the order: behind what is queued already */

        if (d->queued + ngx_ipc_out_packed(&out)
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

        if (ngx_ipc_dest_enqueue(d, &out, 0) != 0) {
            return NGX_IPC_FAILED;
        }

        ngx_ipc_dest_arm(d);
        return 0;
    }

    lone = !d->dirty && !ngx_ipc_burst();
    wrote = 0;
    counted = 0;

    while (!ngx_ipc_out_done(&out)) {
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


/* to this very process: no pipe, no packets, no write */

static int
ngx_ipc_deliver_self(const ngx_ipc_out_t *alert)
{
    int  rc;

    rc = ngx_ipc_local(ngx_ipc_self, alert);
    if (rc != 0) {
        return rc;
    }

    ngx_ipc_nginx_notify();             /* as the read event would */
    return 0;
}


static int
ngx_ipc_deliver(int32_t key, const ngx_ipc_out_t *alert)
{
    int              rc;
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

    if (d->kept && d->generation != ngx_ipc_dir_generation()) {
        d->generation = ngx_ipc_dir_generation();
        ngx_ipc_dest_check_kept(d, 0);
    }

    return ngx_ipc_deliver_to(d, alert);
}


/* counts what happened to one copy of an alert */

static int
ngx_ipc_count(int rc, const ngx_ipc_out_t *alert)
{
    if (rc == 0) {
        ngx_ipc_counters_data.alerts_sent++;
        ngx_ipc_counters_data.bytes_sent += alert->total;

    } else if (rc == NGX_IPC_FULL) {
        ngx_ipc_counters_data.refused_backlog++;

    } else if (rc == NGX_IPC_GONE) {
        ngx_ipc_counters_data.refused_no_worker++;
    }

    return rc;
}


/* routes: pid -> destination key */

static ngx_ipc_route_t **
ngx_ipc_route_slot(int32_t pid)
{
    ngx_ipc_route_t  **r;

    r = &ngx_ipc_routes[(uint32_t) pid % NGX_IPC_ROUTES];

    while (*r && (*r)->pid != pid) {
        r = &(*r)->next;
    }

    return r;
}


/*
 * The key of pid's destination: the worker id's pipe for a worker that has
 * one, otherwise the pid's.  0 when pid is no joined worker of this instance
 * (then the error is set).
 */

static int32_t
ngx_ipc_route(int32_t pid)
{
    size_t                 i, n;
    int64_t                now;
    uint32_t               gen;
    ngx_ipc_route_t       *r, **slot;
    const ngx_ipc_name_t  *names;

    gen = ngx_ipc_dir_generation();
    slot = ngx_ipc_route_slot(pid);
    r = *slot;

    if (r && r->generation == gen && r->epoch == ngx_ipc_epoch) {
        if (r->key > 0) {
            return r->key;              /* its death shows as EPIPE */
        }

        now = ngx_ipc_now();

        if (now - r->alive_at < NGX_IPC_ALIVE_NS) {
            return r->key;
        }

        if (ngx_ipc_dir_running(pid)) {
            r->alive_at = now;
            return r->key;
        }

        *slot = r->next;
        free(r);
        ngx_ipc_set_error("no such worker: %" PRId32 " (exited)", pid);
        return 0;
    }

    names = ngx_ipc_dir_names(&n);

    for (i = 0; i < n; i++) {
        if (names[i].pid == pid) {
            break;
        }
    }

    if (i < n && names[i].id >= 0 && !ngx_ipc_dir_running(pid)) {
        i = n;                          /* killed, not reaped yet */
    }

    if (i == n) {
        if (r) {
            *slot = r->next;
            free(r);
        }

        ngx_ipc_set_error("no such worker: %" PRId32, pid);
        return 0;
    }

    if (r == NULL) {
        r = malloc(sizeof(ngx_ipc_route_t));
        if (r == NULL) {
            ngx_ipc_set_error("out of memory");
            return 0;
        }

        r->pid = pid;
        r->next = NULL;
        *slot = r;
    }

    r->key = names[i].id >= 0 ? -1 - names[i].id : pid;
    r->generation = gen;
    r->epoch = ngx_ipc_epoch;
    r->alive_at = ngx_ipc_now();

    return r->key;
}


/* the pid that holds worker id "id" now, or 0 */

static int32_t
ngx_ipc_holder(int32_t id)
{
    size_t                 i, n;
    const ngx_ipc_name_t  *names;

    names = ngx_ipc_dir_names(&n);

    for (i = 0; i < n; i++) {
        if (names[i].pid > 0 && names[i].id == id) {
            return names[i].pid;
        }
    }

    return 0;
}


/*
 * To a worker that nginx has forked but that has not joined: its worker id
 * is not known yet, so a copy goes to every id no joined worker holds; the
 * one this pid takes when it joins is handled, the others are let go.
 */

static int
ngx_ipc_send_starting(int32_t pid, ngx_ipc_out_t *out)
{
    int      rc, sent;
    int32_t  id, count;

    count = ngx_ipc_dir_count();
    sent = 0;
    rc = 0;

    out->dest = pid;
    out->candidate = 1;

    for (id = 0; id < count && rc == 0; id++) {
        if (id == ngx_ipc_dir_id() || ngx_ipc_holder(id) != 0) {
            continue;
        }

        rc = ngx_ipc_deliver(-1 - id, out);
        sent++;
    }

    if (sent == 0) {
        ngx_ipc_set_error("no such worker: %" PRId32, pid);
        return NGX_IPC_GONE;
    }

    return rc;
}


int
ngx_ipc_send(int32_t pid, const char *name, size_t name_len,
    const char *data, size_t data_len)
{
    int            rc;
    int32_t        key;
    ngx_ipc_out_t  out;

    if (ngx_ipc_check(name_len, data_len) != 0) {
        return -1;
    }

    ngx_ipc_out_init(&out, name, name_len, data, data_len);

    if (pid <= 0) {
        ngx_ipc_set_error("no such worker: %" PRId32, pid);
        rc = NGX_IPC_GONE;

    } else if (pid == ngx_ipc_self) {
        rc = ngx_ipc_deliver_self(&out);

    } else {
        key = ngx_ipc_route(pid);

        if (key == 0) {
            rc = ngx_ipc_dir_starting(pid) ? ngx_ipc_send_starting(pid, &out)
                                           : NGX_IPC_GONE;

        } else {
            if (key < 0) {
                out.dest = pid;     /* not for a replacement of a dead pid */
            }

            rc = ngx_ipc_deliver(key, &out);
        }
    }

    return ngx_ipc_count(rc, &out) == 0 ? 0 : -1;
}


/*
 * Every worker id of the generation (a worker not joined yet included: its
 * copy waits in its pipe), and every process without an id that has joined
 * (standalone mode, the privileged agent).
 */

typedef struct {
    char     text[256];
    size_t   len;
    size_t   n;
} ngx_ipc_skipped_t;


static void
ngx_ipc_skip(ngx_ipc_skipped_t *sk, int32_t pid, int32_t id)
{
    int  n;

    sk->n++;

    if (sk->len >= sizeof(sk->text)) {
        return;
    }

    if (pid > 0) {
        n = snprintf(sk->text + sk->len, sizeof(sk->text) - sk->len,
                     "%s%" PRId32, sk->len ? ", " : "", pid);

    } else {
        n = snprintf(sk->text + sk->len, sizeof(sk->text) - sk->len,
                     "%sworker id %" PRId32 " (not joined)",
                     sk->len ? ", " : "", id);
    }

    sk->len += n > 0 ? (size_t) n : 0;

    if (sk->len < sizeof(sk->text) && pid == ngx_ipc_self) {

        /* its own copy skips the pipe: another cap refused it */

        n = snprintf(sk->text + sk->len, sizeof(sk->text) - sk->len,
                     " (this worker: receive_backlog is %" PRIu64 " bytes)",
                     ngx_ipc_limits.receive_backlog);
        sk->len += n > 0 ? (size_t) n : 0;
    }
}


int
ngx_ipc_broadcast(const char *name, size_t name_len,
    const char *data, size_t data_len)
{
    int                    rc;
    size_t                 i, n;
    int32_t                id, count, pid;
    ngx_ipc_out_t          out;
    ngx_ipc_skipped_t      sk;
    const ngx_ipc_name_t  *names;

    if (ngx_ipc_check(name_len, data_len) != 0) {
        return -1;
    }

    ngx_ipc_out_init(&out, name, name_len, data, data_len);

    sk.len = 0;
    sk.n = 0;
    sk.text[0] = '\0';

    count = ngx_ipc_dir_count();

    for (id = 0; id < count; id++) {
        if (id == ngx_ipc_dir_id()) {
            rc = ngx_ipc_count(ngx_ipc_deliver_self(&out), &out);
            pid = ngx_ipc_self;

        } else {
            rc = ngx_ipc_count(ngx_ipc_deliver(-1 - id, &out), &out);
            pid = (rc == NGX_IPC_FULL) ? ngx_ipc_holder(id) : 0;
        }

        if (rc == NGX_IPC_FULL) {
            ngx_ipc_skip(&sk, pid, id);
        }
    }

    names = ngx_ipc_dir_names(&n);

    for (i = 0; i < n; i++) {
        pid = names[i].pid;

        if (pid <= 0 || names[i].id >= 0) {
            continue;
        }

        rc = (pid == ngx_ipc_self) ? ngx_ipc_deliver_self(&out)
                                   : ngx_ipc_deliver(pid, &out);

        /* a process that exited is skipped silently: it is no destination */

        if (ngx_ipc_count(rc, &out) == NGX_IPC_FULL) {
            ngx_ipc_skip(&sk, pid, -1);
        }
    }

    if (sk.n) {
        ngx_ipc_set_error("send backlog full for %zu worker(s): %s%s "
                          "(send_backlog is %" PRIu64 " bytes); the others "
                          "got the alert", sk.n, sk.text,
                          sk.len >= sizeof(sk.text) ? "..." : "",
                          ngx_ipc_limits.send_backlog);
        return -1;
    }

    return 0;
}


/* the destinations with bytes queued, at most n of them */

int
ngx_ipc_backlog(int32_t *pids, uint64_t *bytes, int n)
{
    int              k;
    size_t           i;
    ngx_ipc_dest_t  *d;

    k = 0;

    for (i = 0; i < NGX_IPC_DESTS; i++) {
        for (d = ngx_ipc_dests[i]; d; d = d->next) {
            if (d->queued == 0) {
                continue;
            }

            if (k < n) {
                pids[k] = d->key > 0 ? d->key : ngx_ipc_holder(-1 - d->key);
                if (pids[k] == 0) {
                    pids[k] = d->key;       /* a worker id not joined */
                }
                bytes[k] = d->queued;
            }

            k++;
        }
    }

    return k;
}
