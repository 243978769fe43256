/*
 * ngx_ipc_queue.c: a send queue: what waits for room in one pipe, as items
 * of one write's worth of whole packets, packed when the alert was sent
 * (the caller's memory is gone by the time the pipe has room).  Items fill
 * up in order: only the last one has room left.  Knows nothing of fds:
 * ngx_ipc_dest.c writes the head (with the whole pages after it) and says
 * how much was written.
 */

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_ipc_internal.h"


struct ngx_ipc_item_s {
    ngx_ipc_item_t  *next;
    uint32_t         len;           /* packet bytes in buf */
    uint32_t         alerts;        /* alerts with their first bytes here */
    u_char           buf[NGX_IPC_WRITE_MAX];
};


/*
 * Written items go back to a cache for the next ones (ngx_ipc_cache.c): a
 * queue that fills and drains all the time would otherwise make malloc grow
 * and trim the heap's top at every burst, faulting its pages in again.
 * 256 items are always worth keeping; a burst's worth while bursts go on.
 */

static ngx_ipc_cache_t  ngx_ipc_items = {
    .floor = 256 * sizeof(ngx_ipc_item_t),
    .ceiling = 64 * 1024 * 1024,
    .largest = sizeof(ngx_ipc_item_t)
};


static ngx_ipc_item_t *
ngx_ipc_item_new(void)
{
    size_t           cap;
    ngx_ipc_item_t  *it;

    it = (ngx_ipc_item_t *) (void *) ngx_ipc_cache_get(&ngx_ipc_items,
                                                        sizeof(ngx_ipc_item_t),
                                                        &cap);
    if (it == NULL) {
        return NULL;
    }

    it->next = NULL;
    it->len = 0;
    it->alerts = 0;

    return it;
}


static void
ngx_ipc_item_free(ngx_ipc_item_t *it)
{
    ngx_ipc_cache_put(&ngx_ipc_items, (u_char *) it, sizeof(ngx_ipc_item_t));
}


/*
 * Packs the rest of an alert into the queue: into the room the last item
 * has, then into new items.  All or nothing: on failure (out of memory,
 * the error set) the queue is as it was.  "counted": the alert started in
 * an earlier item, which counts it already.
 */

int
ngx_ipc_queue_add(ngx_ipc_queue_t *q, ngx_ipc_out_t *out, int counted)
{
    size_t           k, added;
    uint32_t         len0, alerts0;
    ngx_ipc_item_t  *it, *tail0, *next;

    tail0 = q->tail;
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
            it = ngx_ipc_item_new();
            if (it == NULL) {
                goto failed;
            }

            if (q->tail) {
                q->tail->next = it;

            } else {
                q->head = it;
            }

            q->tail = it;
            continue;
        }

        if (added == 0 && !counted) {
            it->alerts++;            /* counted once, where its bytes start */
        }

        it->len += (uint32_t) k;
        added += k;
    }

    q->queued += added;
    q->added += added;
    ngx_ipc_counters_data.send_queued += added;

    return 0;

failed:

    ngx_ipc_set_error("out of memory queueing %" PRIu64 " bytes",
                      ngx_ipc_out_left(out) + added);

    it = tail0 ? tail0->next : q->head;

    while (it) {
        next = it->next;
        ngx_ipc_item_free(it);
        it = next;
    }

    if (tail0) {
        tail0->next = NULL;
        tail0->len = len0;
        tail0->alerts = alerts0;

    } else {
        q->head = NULL;
    }

    q->tail = tail0;

    return -1;
}


/* packets that were to go first (a full write buffer) head the queue */

int
ngx_ipc_queue_push_front(ngx_ipc_queue_t *q, const u_char *buf, size_t len,
    uint32_t alerts)
{
    ngx_ipc_item_t  *it;

    it = ngx_ipc_item_new();
    if (it == NULL) {
        ngx_ipc_set_error("out of memory queueing %zu bytes", len);
        return -1;
    }

    memcpy(it->buf, buf, len);
    it->len = (uint32_t) len;
    it->alerts = alerts;
    it->next = q->head;
    q->head = it;
    if (q->tail == NULL) {
        q->tail = it;
    }

    q->queued += len;
    q->added += len;
    ngx_ipc_counters_data.send_queued += len;

    return 0;
}


/*
 * iovecs for one write: the head item and, when it is a whole page
 * (NGX_IPC_WRITE_MAX bytes), the whole pages that follow it, at most "max"
 * in all; the number of iovecs (0: empty queue), their bytes in *size.  A
 * write of whole pages splits only between them (ngx_ipc_dest.c).
 */

int
ngx_ipc_queue_iov(const ngx_ipc_queue_t *q, struct iovec *iov, int max,
    size_t *size)
{
    int              n;
    ngx_ipc_item_t  *it;

    n = 0;
    *size = 0;

    for (it = q->head; it && n < max; it = it->next) {
        if (n && it->len != NGX_IPC_WRITE_MAX) {
            break;
        }

        iov[n].iov_base = it->buf;
        iov[n++].iov_len = it->len;
        *size += it->len;

        if (it->len != NGX_IPC_WRITE_MAX) {
            break;
        }
    }

    return n;
}


/*
 * "n" bytes from the head were written: whole items are popped; a part of
 * one (a write that stopped inside a page, which Linux does not do) leaves
 * the rest of that item at the head, to go first.
 */

void
ngx_ipc_queue_written(ngx_ipc_queue_t *q, size_t n)
{
    ngx_ipc_item_t  *it;

    while (n && (it = q->head) != NULL) {
        if (n >= it->len) {
            n -= it->len;
            ngx_ipc_queue_pop(q);
            continue;
        }

        memmove(it->buf, it->buf + n, it->len - n);
        it->len -= (uint32_t) n;
        q->queued -= n;
        ngx_ipc_counters_data.send_queued -= n;
        n = 0;
    }
}


/* the head was written */

void
ngx_ipc_queue_pop(ngx_ipc_queue_t *q)
{
    ngx_ipc_item_t  *it;

    it = q->head;
    q->head = it->next;
    if (q->head == NULL) {
        q->tail = NULL;
    }

    q->queued -= it->len;
    ngx_ipc_counters_data.send_queued -= it->len;
    ngx_ipc_item_free(it);
}


/* drops everything; returns how many alerts that loses */

uint64_t
ngx_ipc_queue_clear(ngx_ipc_queue_t *q)
{
    uint64_t         lost;
    ngx_ipc_item_t  *it;

    lost = 0;

    while (q->head) {
        it = q->head;
        q->head = it->next;
        lost += it->alerts;
        ngx_ipc_item_free(it);
    }

    q->tail = NULL;
    ngx_ipc_counters_data.send_queued -= q->queued;
    q->queued = 0;

    return lost;
}
