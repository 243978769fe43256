/*
 * ngx_ipc_deliver.c: one alert to one destination (ngx_ipc_dest.c): small
 * alerts of a burst share writes through the destination's obuf, written at
 * the end of the event-loop turn; a large packet goes out straight from the
 * caller's memory, whole pages of them in one write; what the pipe does not
 * take waits in the destination's queue, in order.
 */

#include <inttypes.h>
#include <string.h>
#include <sys/uio.h>

#include "ngx_ipc_internal.h"


static ngx_ipc_dest_t  *ngx_ipc_dirty;       /* obufs to write at the end
                                                of the turn */
static int64_t          ngx_ipc_lone_end;    /* see ngx_ipc_burst() */

static int ngx_ipc_dest_put(ngx_ipc_dest_t *d, const ngx_ipc_packet_t *p,
    ngx_ipc_out_t *out, int counted);


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

/*
 * Inside a broadcast: whether it is part of a burst, decided before its first
 * copy (-1 outside one).  Its copies go to different pipes, so the second is
 * no burst to its destination: every copy of a broadcast on its own goes out
 * at once, not only the first (the others used to wait for the turn's end).
 */
static int  ngx_ipc_fanout_burst = -1;

static int
ngx_ipc_burst(void)
{
    if (ngx_ipc_fanout_burst >= 0) {
        return ngx_ipc_fanout_burst;
    }

    if (ngx_ipc_mode == NGX_IPC_MODE_STANDALONE) {
        return ngx_ipc_lone_end != 0;
    }

    return ngx_ipc_now() - ngx_ipc_lone_end < NGX_IPC_BURST_NS;
}


void
ngx_ipc_fanout_begin(void)
{
    ngx_ipc_fanout_burst = -1;
    ngx_ipc_fanout_burst = ngx_ipc_burst();
}


void
ngx_ipc_fanout_end(void)
{
    ngx_ipc_fanout_burst = -1;
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


/* the end of an event-loop turn: what small alerts left in obufs, and what
 * a burst gathered in a queue, goes out */

void
ngx_ipc_pipe_flush_dirty(void)
{
    ngx_ipc_dest_t  *d;

    while (ngx_ipc_dirty) {
        d = ngx_ipc_dirty;
        ngx_ipc_dirty = d->dirty_next;
        d->dirty = 0;

        if (d->gathering && d->fd != -1) {
            if (ngx_ipc_dest_flush(d) == 0) {
                ngx_ipc_dest_arm(d);    /* the pipe is full: wait for room */
            }
            continue;
        }

        if (d->olen == 0 || d->fd == -1) {
            ngx_ipc_dest_release(d);
            continue;
        }

        (void) ngx_ipc_dest_put(d, NULL, NULL, 0);
    }
}


/* a packet's header, dest pid, name and data as iovecs (at most 4) */

static int
ngx_ipc_packet_iov(const ngx_ipc_packet_t *p, struct iovec *iov)
{
    int  n;

    n = 0;
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

    return n;
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
        n += ngx_ipc_packet_iov(p, iov + n);
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

/*
 * While a queue waits, every this many bytes queued a send tries to write
 * it; each try that finds the pipe still full doubles the step, up to
 * NGX_IPC_RETRY_MAX, a quarter of the pipe.  A try takes the pipe's mutex,
 * which the reader holds while it copies out, so a try for every 64 KiB
 * alert (one writev returning EAGAIN per alert, all of them spinning on
 * that mutex) cost as much as the writes themselves.
 */
#define NGX_IPC_RETRY_BYTES  (64 * 1024)
#define NGX_IPC_RETRY_MAX    (256 * 1024)

/*
 * A burst's alerts from NGX_IPC_SLICE_MIN of data up to NGX_IPC_GATHER_MAX
 * packed are gathered in the queue and written NGX_IPC_GATHER_BYTES at a
 * time (or at the turn's end), not one write or two each.  With reader and
 * writer on two CPUs, every write woke the reader or met it on the pipe's
 * mutex, and the reader, as fast as the writer, read a few KiB per wake-up
 * (W2 10 KiB, workers on separate CPUs: 1.02 writes and 0.38 epoll_wait
 * per alert, a quarter of the reader's time spinning on the mutex).  The
 * copy into the queue costs less than that.  Larger alerts already go out
 * in large writes of their own (whole pages straight from the caller).
 */
#define NGX_IPC_GATHER_MAX    (32 * 1024)
#define NGX_IPC_GATHER_BYTES  (64 * 1024)

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
        n += ngx_ipc_packet_iov(&p[np], iov + n);
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
ngx_ipc_gather(const ngx_ipc_out_t *out)
{
    return out->total - out->off >= NGX_IPC_SLICE_MIN
           && ngx_ipc_out_packed(out) < NGX_IPC_GATHER_MAX;
}


/* the first alert of a burst to gather, behind what obuf holds */

static int
ngx_ipc_dest_gather(ngx_ipc_dest_t *d, ngx_ipc_out_t *out)
{
    int  rc;

    if (ngx_ipc_dest_hold(d) != 0) {
        return NGX_IPC_FAILED;
    }

    rc = ngx_ipc_queue_add(&d->queue, out, 0);

    d->gathering = 1;
    d->retry_at = d->queue.added + NGX_IPC_GATHER_BYTES;

    /* last: without the end-of-turn hook, this writes the queue at once */
    ngx_ipc_dest_dirty(d);

    return rc == 0 ? 0 : NGX_IPC_FAILED;
}


static int
ngx_ipc_deliver_to(ngx_ipc_dest_t *d, const ngx_ipc_out_t *alert)
{
    int               rc, lone, wrote, counted;
    size_t            k, room;
    int32_t           key;
    uint64_t          queued;
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

        queued = d->queue.queued;
        key = d->key;

        if (ngx_ipc_dest_flush(d) != 0) {
            return key > 0 ? NGX_IPC_GONE : NGX_IPC_FAILED;   /* d is gone */
        }

        if (d->queue.queued != queued || d->retry_step == 0) {
            d->retry_step = NGX_IPC_RETRY_BYTES;

        } else if (d->retry_step < NGX_IPC_RETRY_MAX) {
            d->retry_step *= 2;
        }

        d->retry_at = d->queue.added + d->retry_step;
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

        if (d->gathering) {
            return 0;                   /* written at the turn's end */
        }

        ngx_ipc_dest_arm(d);
        return 0;
    }

    lone = !d->dirty && !ngx_ipc_burst();

    if (!lone && ngx_ipc_gather(&out)) {
        return ngx_ipc_dest_gather(d, &out);
    }
    wrote = 0;
    counted = 0;

    while (!ngx_ipc_out_done(&out)) {

        /* whole pages: only for what is left of a large alert */

        if (d->olen == 0 && out.total - out.off > NGX_IPC_PAYLOAD_MAX
            && ngx_ipc_pages_max() > 1)
        {
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
    ngx_ipc_dest_t  *d;

    d = ngx_ipc_dest_ready(key, &rc);
    if (d == NULL) {
        return rc;
    }

    return ngx_ipc_deliver_to(d, alert);
}


/* standalone: ngx_ipc_poll() ends a turn */

void
ngx_ipc_pipe_flush_all(void)
{
    ngx_ipc_lone_end = 0;
    ngx_ipc_dest_flush_all();
}
