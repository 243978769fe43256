/*
 * ngx_ipc_assemble.c: reassembly of alerts per sender from the packets the
 * parser (ngx_ipc_wire.c) hands over, the ready queue Lua takes them from,
 * alerts a process sends to itself, and the counters.
 *
 * Nothing here touches nginx or the pipe directory; it reaches the nginx
 * glue only through ngx_ipc_hooks (resume reading, drained).
 */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ngx_ipc_internal.h"


/*
 * An alert being reassembled, then waiting in the ready queue.  "buf" holds
 * the name followed by the data; while the alert is pending it grows with
 * what arrives, doubling, never to more than twice that plus
 * NGX_IPC_AHEAD_MAX: a header that claims 2 GiB reserves nothing for it.
 */

typedef struct ngx_ipc_msg_s  ngx_ipc_msg_t;

struct ngx_ipc_msg_s {
    ngx_ipc_msg_t  *next;       /* hash chain, then ready queue */
    u_char         *buf;
    size_t          cap;
    int32_t         sender;
    uint32_t        name_len;
    uint32_t        total;
    uint32_t        received;   /* data bytes so far */
    uint32_t        skip;       /* dropped: swallow the rest unseen */
    uint64_t        doomed;     /* its sender seen dead: drop it once the
                                   pipe was emptied this many times */
    uint32_t        lent;       /* to oneself: the data stays with the
                                   caller under this ref (buf: the name) */
    uint32_t        refs;       /* ready: consumers yet to pass it */
};

#define NGX_IPC_SENDERS      256            /* buckets of pending alerts */
#define NGX_IPC_AHEAD_MAX    (1024 * 1024)

ngx_ipc_counters_t  ngx_ipc_counters_data;
int                 ngx_ipc_paused;
int32_t             ngx_ipc_self;
int                 ngx_ipc_notice;      /* something for Lua */

ngx_ipc_limits_t    ngx_ipc_limits = {
    NGX_IPC_SEND_BACKLOG, NGX_IPC_RECEIVE_BACKLOG
};

static ngx_ipc_msg_t     *ngx_ipc_pending[NGX_IPC_SENDERS];
static ngx_ipc_msg_t     *ngx_ipc_ready_head;
static ngx_ipc_msg_t     *ngx_ipc_ready_tail;

/*
 * Each consumer (ngx_ipc_consumer.c) walks the ready queue on its own: the
 * next alert it has not looked at, and the one recv handed it (valid until
 * its next recv or release).  An alert leaves the queue once every consumer
 * has passed it and none holds it; alone, a consumer passes the head.
 */
static ngx_ipc_msg_t     *ngx_ipc_cursor[NGX_IPC_CONSUMERS_MAX];
static ngx_ipc_msg_t     *ngx_ipc_held[NGX_IPC_CONSUMERS_MAX];
static size_t             ngx_ipc_pending_n;   /* alerts being reassembled */
static time_t             ngx_ipc_swept;       /* last ngx_ipc_pending_sweep */


/* reassembly */

static ngx_ipc_msg_t **
ngx_ipc_pending_slot(int32_t sender)
{
    ngx_ipc_msg_t  **p;

    p = &ngx_ipc_pending[(uint32_t) sender % NGX_IPC_SENDERS];

    while (*p && (*p)->sender != sender) {
        p = &(*p)->next;
    }

    return p;
}


/* what a pending alert counts in receive_partial: all it will hold */

static uint64_t
ngx_ipc_msg_size(const ngx_ipc_msg_t *m)
{
    return m->skip ? 0 : (uint64_t) m->name_len + m->total;
}


/*
 * Buffers of alerts that needed one of their own (up to 1 MiB and a name)
 * go back to a cache (ngx_ipc_cache.c): a stream of such alerts would
 * otherwise allocate and free one per alert, and glibc hands the top of its
 * heap back and takes it again, a page fault per page each time.  8 MiB are
 * always worth keeping, a burst's worth while bursts go on.  Alerts a
 * worker sends itself take theirs here too from NGX_IPC_POOL_MIN on.
 */

#define NGX_IPC_POOL_MIN     8192

static ngx_ipc_cache_t  ngx_ipc_bufs = {
    .floor = 8 * 1024 * 1024,
    .ceiling = 64 * 1024 * 1024,
    .largest = NGX_IPC_AHEAD_MAX + NGX_IPC_NAME_MAX
};


/* a buffer of its own for an alert of "size" bytes of name and data */

static int
ngx_ipc_msg_buf(ngx_ipc_msg_t *m, size_t size)
{
    m->buf = ngx_ipc_cache_get(&ngx_ipc_bufs, size, &m->cap);

    return m->buf ? 0 : -1;
}


static void
ngx_ipc_msg_free(ngx_ipc_msg_t *m)
{
    if (m->buf && m->buf != (u_char *) (m + 1)) {
        ngx_ipc_cache_put(&ngx_ipc_bufs, m->buf, m->cap);
    }

    free(m);
}


/* a pending alert leaves the reassembly table, complete or not */

static void
ngx_ipc_pending_remove(ngx_ipc_msg_t **slot)
{
    ngx_ipc_msg_t  *m;

    m = *slot;
    *slot = m->next;
    ngx_ipc_counters_data.receive_partial -= ngx_ipc_msg_size(m);
    ngx_ipc_pending_n--;
}


/*
 * A sender killed mid-alert never sends the rest: at most once a second,
 * while alerts are pending, those of dead senders are dropped (counted as
 * truncated), so they hold no memory and no receive_backlog.  Not at once:
 * the rest of such an alert may be in the pipe still, written before the
 * sender died, and it is dropped only once the pipe was read empty after
 * the death was seen (ngx_ipc_stream_emptied), or is empty now, when
 * nothing of it can be left there (a writer never leaves half a packet).
 */

static uint64_t  ngx_ipc_emptied;


void
ngx_ipc_stream_emptied(void)
{
    ngx_ipc_emptied++;
}


void
ngx_ipc_pending_sweep(void)
{
    size_t           i;
    ngx_ipc_msg_t   *m, **p;
    struct timespec  ts;

    /* feed-driven tests and fuzzers use made-up sender pids */

    if (ngx_ipc_mode != NGX_IPC_MODE_NGINX
        || ngx_ipc_pending_n == 0
        || clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == -1
        || ts.tv_sec == ngx_ipc_swept)
    {
        return;
    }

    ngx_ipc_swept = ts.tv_sec;

    for (i = 0; i < NGX_IPC_SENDERS; i++) {
        p = &ngx_ipc_pending[i];

        while (*p) {
            m = *p;

            if (kill(m->sender, 0) == 0 || errno != ESRCH) {
                m->doomed = 0;
                p = &m->next;
                continue;
            }

            if (m->doomed == 0) {
                m->doomed = ngx_ipc_emptied + 1;
            }

            if (ngx_ipc_emptied < m->doomed && ngx_ipc_hooks.unread()) {
                p = &m->next;
                continue;
            }

            ngx_ipc_pending_remove(p);

            if (!m->skip) {
                ngx_ipc_counters_data.alerts_truncated++;
                ngx_ipc_notice = 1;
            }

            ngx_ipc_msg_free(m);
        }
    }
}


void
ngx_ipc_discard(size_t bytes)
{
    ngx_ipc_counters_data.packets_discarded++;
    ngx_ipc_counters_data.bytes_discarded += bytes;
    ngx_ipc_notice = 1;
}


static void
ngx_ipc_ready_push(ngx_ipc_msg_t *m)
{
    int  c, n;

    n = ngx_ipc_consumer_n();
    m->next = NULL;
    m->refs = (uint32_t) n;

    for (c = 0; c < n; c++) {
        if (ngx_ipc_cursor[c] == NULL) {
            ngx_ipc_cursor[c] = m;
        }
    }

    if (ngx_ipc_ready_tail) {
        ngx_ipc_ready_tail->next = m;

    } else {
        ngx_ipc_ready_head = m;
    }

    ngx_ipc_ready_tail = m;
    ngx_ipc_counters_data.receive_ready += (uint64_t) m->name_len + m->total;

    ngx_ipc_counters_data.alerts_received++;
    ngx_ipc_counters_data.bytes_received += m->total;
    ngx_ipc_notice = 1;
}


/* makes room for "need" bytes of name and data; need <= name_len + total */

static int
ngx_ipc_msg_grow(ngx_ipc_msg_t *m, size_t need)
{
    size_t   cap, full;
    u_char  *p;

    if (need <= m->cap) {
        return 0;
    }

    full = (size_t) m->name_len + m->total;

    cap = m->cap * 2;
    if (cap < need) {
        cap = need;
    }
    if (cap < NGX_IPC_AHEAD_MAX) {
        cap = NGX_IPC_AHEAD_MAX;     /* alerts up to 1 MiB: one allocation */
    }

    /*
     * Doubling, not a step at a time: few copies for a large alert, and a
     * process short of memory finds out while it still holds half of what
     * it asked for, not when the last step takes its last megabyte (other
     * code of the worker, LuaJIT's included, runs between reads).
     */

    if (cap > 2 * need + NGX_IPC_AHEAD_MAX) {
        cap = 2 * need + NGX_IPC_AHEAD_MAX;
    }
    if (cap > full) {
        cap = full;
    }

    if (m->buf == NULL) {
        return ngx_ipc_msg_buf(m, cap);
    }

    p = ngx_ipc_cache_resize(&ngx_ipc_bufs, m->buf, m->cap, cap);
    if (p == NULL) {
        return -1;
    }

    m->buf = p;
    m->cap = cap;

    return 0;
}


/*
 * Would an alert of "size" bytes of name and data take us past the cap?
 * Only alerts to this process itself are refused by it (the sender is told);
 * what arrives through the pipe is never dropped for the cap, which bounds
 * the complete alerts waiting instead (reading pauses, ngx_ipc_ready_full).
 * A process holding nothing else takes one alert of any size.
 */

static int
ngx_ipc_over_backlog(uint64_t size)
{
    uint64_t  held;

    held = ngx_ipc_counters_data.receive_ready
           + ngx_ipc_counters_data.receive_partial;

    return held != 0 && held + size > ngx_ipc_limits.receive_backlog;
}


/*
 * Lets the rest of an alert that is not to be assembled go by unseen: a
 * bufferless pending entry swallows its later packets, so they are not
 * counted as corrupt.  "received": the data bytes its FIRST packet held.
 */

static void
ngx_ipc_pass_by(const ngx_ipc_hdr_t *h, uint32_t received,
    ngx_ipc_msg_t **slot)
{
    ngx_ipc_msg_t  *m;

    if (received == h->arg) {
        return;                              /* nothing follows */
    }

    m = calloc(1, sizeof(ngx_ipc_msg_t));
    if (m == NULL) {
        return;            /* its later packets are discarded as orphans */
    }

    m->sender = h->sender;
    m->total = h->arg;
    m->received = received;
    m->skip = 1;
    m->next = *slot;
    *slot = m;
    ngx_ipc_pending_n++;
}


/*
 * Out of memory while assembling: the alert is dropped, counted and logged
 * (through the notice), and the rest of it passes by, so the sender's next
 * alert is assembled as usual.  "m": the pending entry to turn into the one
 * that swallows the rest.
 */

static void
ngx_ipc_swallow(ngx_ipc_msg_t *m)
{
    ngx_ipc_counters_data.dropped_memory++;
    ngx_ipc_notice = 1;

    ngx_ipc_counters_data.receive_partial -= ngx_ipc_msg_size(m);

    if (m->buf != (u_char *) (m + 1)) {
        ngx_ipc_cache_put(&ngx_ipc_bufs, m->buf, m->cap);
    }

    m->buf = NULL;
    m->cap = 0;
    m->skip = 1;
}


/*
 * "n": the name and first data bytes, after the dest pid of a unicast.  A
 * unicast to another pid reached this process because that pid's worker
 * had this process's worker id: either one of the copies sent to every
 * worker that might be a worker still starting (CANDIDATE: expected, let
 * go quietly), or an alert to a worker that was killed, which its
 * replacement must not handle (lost_exited, logged).
 */

void
ngx_ipc_first(const ngx_ipc_hdr_t *h, const u_char *p)
{
    size_t           n;
    int32_t          dest;
    ngx_ipc_msg_t   *m, **slot;

    slot = ngx_ipc_pending_slot(h->sender);

    if (*slot) {
        m = *slot;
        ngx_ipc_pending_remove(slot);

        if (!m->skip) {                   /* a dropped one is counted */
            ngx_ipc_counters_data.alerts_truncated++;
            ngx_ipc_notice = 1;
        }

        ngx_ipc_msg_free(m);
    }

    n = h->len;

    if (h->flags & NGX_IPC_FLAG_UNICAST) {
        memcpy(&dest, p, NGX_IPC_DEST_SIZE);
        p += NGX_IPC_DEST_SIZE;
        n -= NGX_IPC_DEST_SIZE;

        if (dest != ngx_ipc_self) {
            if (!(h->flags & NGX_IPC_FLAG_CANDIDATE)) {
                ngx_ipc_counters_data.lost_exited++;
                ngx_ipc_notice = 1;
            }

            ngx_ipc_pass_by(h, (uint32_t) (n - h->name_len), slot);
            return;
        }
    }

    if (n - h->name_len == h->arg) {

        /* the whole alert is in this packet: one allocation */

        m = malloc(sizeof(ngx_ipc_msg_t) + n);
        if (m == NULL) {
            goto no_memory;
        }

        m->buf = (u_char *) (m + 1);
        m->cap = n;

    } else {
        m = malloc(sizeof(ngx_ipc_msg_t));
        if (m == NULL) {
            goto no_memory;
        }

        m->buf = NULL;
        m->cap = 0;
    }

    m->sender = h->sender;
    m->name_len = h->name_len;
    m->total = h->arg;
    m->received = 0;
    m->skip = 0;
    m->doomed = 0;
    m->lent = 0;

    if (m->buf == NULL && ngx_ipc_msg_grow(m, n) != 0) {
        free(m);
        goto no_memory;
    }

    if (n) {
        memcpy(m->buf, p, n);
    }

    m->received = (uint32_t) (n - h->name_len);

    if (m->received == m->total) {
        ngx_ipc_ready_push(m);
        return;
    }

    /* *slot may be the rest of the chain after a truncated alert */
    m->next = *slot;
    *slot = m;
    ngx_ipc_counters_data.receive_partial += ngx_ipc_msg_size(m);
    ngx_ipc_pending_n++;
    return;

no_memory:

    ngx_ipc_counters_data.dropped_memory++;
    ngx_ipc_notice = 1;
    ngx_ipc_pass_by(h, (uint32_t) (n - h->name_len), slot);
}


void
ngx_ipc_next(const ngx_ipc_hdr_t *h, const u_char *p)
{
    size_t           have;
    ngx_ipc_msg_t   *m, **slot;

    slot = ngx_ipc_pending_slot(h->sender);
    m = *slot;

    if (m == NULL
        || h->arg != m->received
        || h->len > m->total - m->received)
    {
        ngx_ipc_discard(NGX_IPC_HDR_SIZE + h->len);
        return;
    }

    if (m->skip) {
        m->received += h->len;

        if (m->received == m->total) {
            ngx_ipc_pending_remove(slot);
            ngx_ipc_msg_free(m);
        }

        return;
    }

    have = (size_t) m->name_len + m->received;

    if (ngx_ipc_msg_grow(m, have + h->len) != 0) {
        ngx_ipc_swallow(m);
        m->received += h->len;

        if (m->received == m->total) {
            ngx_ipc_pending_remove(slot);
            ngx_ipc_msg_free(m);
        }

        return;
    }

    if (h->len) {
        memcpy(m->buf + have, p, h->len);
    }

    m->received += h->len;

    if (m->received == m->total) {
        ngx_ipc_pending_remove(slot);
        ngx_ipc_ready_push(m);
    }
}


/*
 * An alert a process sends to itself skips the pipe: one copy into the ready
 * queue, which the receive loop drains as it does what the pipe brings (the
 * caller wakes it).  The receive backlog bounds it; there is no send queue to
 * hold it instead.
 */

int
ngx_ipc_local(int32_t sender, const ngx_ipc_out_t *out)
{
    size_t          size;
    uint32_t        lent;
    ngx_ipc_msg_t  *m;

    size = (size_t) out->name_len + out->total;

    if (ngx_ipc_over_backlog(size)) {
        ngx_ipc_set_error("receive backlog of this worker is full "
                          "(receive_backlog is %" PRIu64 " bytes)",
                          ngx_ipc_limits.receive_backlog);
        return NGX_IPC_FULL;
    }

    /* a loan is the lending VM's string: another VM could not read it */
    lent = ngx_ipc_consumer_n() == 1 ? out->lent : 0;

    if (lent) {
        m = malloc(sizeof(ngx_ipc_msg_t) + out->name_len);
        if (m != NULL) {
            m->buf = (u_char *) (m + 1);
            m->cap = out->name_len;
        }

    } else if (size < NGX_IPC_POOL_MIN) {
        m = malloc(sizeof(ngx_ipc_msg_t) + size);
        if (m != NULL) {
            m->buf = (u_char *) (m + 1);
            m->cap = size;
        }

    } else {
        m = malloc(sizeof(ngx_ipc_msg_t));
        if (m != NULL && ngx_ipc_msg_buf(m, size) != 0) {
            free(m);
            m = NULL;
        }
    }

    if (m == NULL) {
        ngx_ipc_set_error("out of memory queueing %zu bytes for this worker",
                          size);
        return NGX_IPC_FAILED;
    }

    m->sender = sender;
    m->name_len = out->name_len;
    m->total = out->total;
    m->received = out->total;
    m->skip = 0;
    m->doomed = 0;
    m->lent = lent;

    if (out->name_len) {
        memcpy(m->buf, out->name, out->name_len);
    }

    if (out->total && !lent) {
        memcpy(m->buf + out->name_len, out->data, out->total);
    }

    ngx_ipc_ready_push(m);

    return lent ? NGX_IPC_LENT : 0;
}


/* the ready queue */

/* no consumer has an alert to look at */

int
ngx_ipc_ready_empty(void)
{
    int  c, n;

    n = ngx_ipc_consumer_n();

    for (c = 0; c < n; c++) {
        if (ngx_ipc_cursor[c] != NULL) {
            return 0;
        }
    }

    return 1;
}


int
ngx_ipc_ready_has(int consumer)
{
    return ngx_ipc_cursor[consumer] != NULL;
}


/*
 * A consumer that starts after others (the stream VM after the http one)
 * looks at what no consumer has passed yet: alerts of this process held
 * for handlers it may have too.
 */

void
ngx_ipc_ready_join(int consumer)
{
    ngx_ipc_msg_t  *m;

    for (m = ngx_ipc_ready_head; m && m->refs == 0; m = m->next) {
        /* void */
    }

    ngx_ipc_cursor[consumer] = m;

    for ( /* void */ ; m; m = m->next) {
        m->refs++;
    }
}


/* reading pauses while complete alerts fill half the receive backlog */

int
ngx_ipc_ready_full(void)
{
    return ngx_ipc_counters_data.receive_ready
           >= ngx_ipc_limits.receive_backlog / 2;
}


int
ngx_ipc_take_notice(void)
{
    int  notice;

    notice = ngx_ipc_notice;
    ngx_ipc_notice = 0;

    return notice;
}


static int
ngx_ipc_ready_held(const ngx_ipc_msg_t *m)
{
    int  c, n;

    n = ngx_ipc_consumer_n();

    for (c = 0; c < n; c++) {
        if (ngx_ipc_held[c] == m) {
            return 1;
        }
    }

    return 0;
}


/* frees the alerts at the head that every consumer passed and none holds */

static void
ngx_ipc_ready_trim(void)
{
    ngx_ipc_msg_t  *m;

    while ((m = ngx_ipc_ready_head) != NULL
           && m->refs == 0 && !ngx_ipc_ready_held(m))
    {
        ngx_ipc_ready_head = m->next;
        if (ngx_ipc_ready_head == NULL) {
            ngx_ipc_ready_tail = NULL;
        }

        ngx_ipc_msg_free(m);
    }
}


/* the consumer moves past m; the last one to do so takes it off the gauge */

static void
ngx_ipc_ready_pass(int consumer, ngx_ipc_msg_t *m)
{
    ngx_ipc_cursor[consumer] = m->next;

    if (--m->refs == 0) {
        ngx_ipc_counters_data.receive_ready -= (uint64_t) m->name_len
                                               + m->total;
    }
}


/* the next alert for "consumer": one whose name it wants (a loan: only the
 * first consumer's, which lent it), or NULL */

static ngx_ipc_msg_t *
ngx_ipc_ready_next(int consumer)
{
    ngx_ipc_msg_t  *m;

    while ((m = ngx_ipc_cursor[consumer]) != NULL) {
        ngx_ipc_ready_pass(consumer, m);

        if ((m->lent == 0 || consumer == 0)
            && ngx_ipc_consumer_wants(consumer, m->buf, m->name_len))
        {
            return m;
        }
    }

    return NULL;
}


int
ngx_ipc_recv(int32_t consumer, ngx_ipc_alert_t *alert)
{
    ngx_ipc_msg_t  *m;

    if (consumer < 0 || consumer >= ngx_ipc_consumer_n()) {
        return 0;
    }

    ngx_ipc_held[consumer] = NULL;

    m = ngx_ipc_ready_next(consumer);

    if (m == NULL) {
        ngx_ipc_ready_trim();
        ngx_ipc_pending_sweep();
        ngx_ipc_consumer_drained(consumer);

        if (ngx_ipc_ready_empty()) {
            ngx_ipc_hooks.drained();          /* Lua took every alert */

        } else if (ngx_ipc_paused
                   && ngx_ipc_counters_data.receive_ready
                      < ngx_ipc_limits.receive_backlog / 4)
        {
            ngx_ipc_hooks.resume();
        }

        return 0;
    }

    ngx_ipc_held[consumer] = m;
    ngx_ipc_ready_trim();

    alert->sender = m->sender;
    alert->name_len = m->name_len;
    alert->data_len = m->total;
    alert->lent = m->lent;
    alert->name = (const char *) m->buf;
    alert->data = m->lent ? NULL : (const char *) m->buf + m->name_len;

    if (ngx_ipc_paused
        && ngx_ipc_counters_data.receive_ready
           < ngx_ipc_limits.receive_backlog / 4)
    {
        ngx_ipc_hooks.resume();
    }

    return 1;
}


/* the alert ngx_ipc_recv handed out, freed before the next call: Lua has
 * copied it (a large one need not be held twice while its handler runs);
 * while another consumer has still to pass it, it stays for that one */

void
ngx_ipc_release(int32_t consumer)
{
    if (consumer >= 0 && consumer < ngx_ipc_consumer_n()) {
        ngx_ipc_held[consumer] = NULL;
        ngx_ipc_ready_trim();
    }
}


void
ngx_ipc_counters(ngx_ipc_counters_t *out)
{
    *out = ngx_ipc_counters_data;
}


/* exact up to 2^53 drops */

double
ngx_ipc_dropped(void)
{
    const ngx_ipc_counters_t  *c = &ngx_ipc_counters_data;

    return (double) (c->packets_discarded + c->alerts_truncated
                     + c->lost_exited + c->dropped_memory);
}
