/*
 * fuzz/decoder_fuzz.c: libFuzzer harness over the shim's stream parser and
 * reassembly (c/ngx_ipc_wire.c, c/ngx_ipc_assemble.c), driven only through the exported
 * ngx_ipc_feed() and drained with ngx_ipc_recv().
 *
 *   make fuzz         short run (FUZZ_SECONDS, default 20 s)
 *   make fuzz-long    FUZZ_RUNS executions (default 10 M)
 *
 * Input layout
 *
 *   byte 0   bits 0-2: how the stream is cut into ngx_ipc_feed() calls
 *                      (0 whole, 1 one byte at a time, 2 chunks of 1..32,
 *                      3 chunks of 1..4200, 4 chunks of 1..70000 (across the
 *                      64 KiB stream buffer), 5 chunks of 15/16/17/4095/
 *                      4096/4097 bytes, 6 alternately 1 and 1..8192 bytes,
 *                      7 chunks of 1..512)
 *            bit 3:    drain with ngx_ipc_recv() after every feed call
 *                      (otherwise only at the end), so that handing out an
 *                      alert and reassembling others interleave
 *   byte 1   seed of the chunk sizes
 *   rest     the byte stream, as it would come out of a worker's pipe
 *
 * Oracle
 *
 *   The harness carries its own model of docs/internals.md ("Packets"): a
 *   parser over the whole stream as one flat buffer, with reassembly per
 *   sender and the same counters.  For every input the shim's alerts (sender,
 *   name, data, in order) and its counter deltas (alerts/bytes received,
 *   packets/bytes discarded, alerts truncated) must equal the model's, so a
 *   wrong decision anywhere, or one that depends on where the stream was cut,
 *   is a finding, as are ASan/UBSan reports and leaks.  Independently of the
 *   model every alert handed out must have name_len <= 254, non-NULL
 *   pointers, and readable name and data of the lengths given (all bytes are
 *   read).
 *
 * Reset between inputs
 *
 *   The parser's state is global.  After the input the harness feeds, through
 *   the same chunking, (1) zero bytes until the model's stream is idle (any
 *   partial packet completed, nothing but < 16 zero bytes left), (2) for every
 *   sender pid that occurs after a magic anywhere in the input, an empty
 *   FIRST packet (completes at once, and discards whatever that sender had
 *   pending), (3) a two-packet probe alert from pid 1.  Then it drains.  The
 *   probe must come out intact and the model must have nothing pending, so
 *   the next input starts from a clean shim: every input is reproducible on
 *   its own.  No test-only entry point is needed.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_ipc.h"


#define MAGIC        0x1A1E
#define FIRST        0x01
#define UNICAST      0x02
#define CANDIDATE    0x04
#define DEST         4            /* a unicast's dest pid leads its payload */
#define HDR          16
#define PAYLOAD_MAX  4080
#define NAME_MAX_    254
#define DATA_MAX_    2147483391u

#define PROBE_PID    1


typedef struct {
    uint16_t  magic;
    uint8_t   flags;
    uint8_t   name_len;
    int32_t   sender;
    uint32_t  len;
    uint32_t  arg;
} hdr_t;


/* growable byte buffers */

typedef struct {
    uint8_t  *p;
    size_t    len;
    size_t    cap;
} buf_t;

static void
buf_reserve(buf_t *b, size_t more)
{
    size_t  cap;

    if (b->len + more <= b->cap) {
        return;
    }

    cap = b->cap ? b->cap : 256;
    while (cap < b->len + more) {
        cap *= 2;
    }

    b->p = realloc(b->p, cap);
    if (b->p == NULL) {
        abort();
    }

    b->cap = cap;
}

static void
buf_add(buf_t *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    if (n) {
        memcpy(b->p + b->len, p, n);
    }
    b->len += n;
}

static void
buf_zeros(buf_t *b, size_t n)
{
    buf_reserve(b, n);
    memset(b->p + b->len, 0, n);
    b->len += n;
}


/* alerts as lists of (sender, name, data) */

typedef struct {
    int32_t   sender;
    uint32_t  name_len;
    uint32_t  data_len;
    uint8_t  *bytes;               /* name then data */
} alert_t;

typedef struct {
    alert_t  *a;
    size_t    n;
    size_t    cap;
} alerts_t;

static void
alerts_add(alerts_t *l, int32_t sender, const uint8_t *name, uint32_t name_len,
    const uint8_t *data, uint32_t data_len)
{
    alert_t  *a;

    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->a = realloc(l->a, l->cap * sizeof(alert_t));
        if (l->a == NULL) {
            abort();
        }
    }

    a = &l->a[l->n++];
    a->sender = sender;
    a->name_len = name_len;
    a->data_len = data_len;
    a->bytes = malloc((size_t) name_len + data_len + 1);
    if (a->bytes == NULL) {
        abort();
    }
    if (name_len) {
        memcpy(a->bytes, name, name_len);
    }
    if (data_len) {
        memcpy(a->bytes + name_len, data, data_len);
    }
}

static void
alerts_clear(alerts_t *l)
{
    size_t  i;

    for (i = 0; i < l->n; i++) {
        free(l->a[i].bytes);
    }
    l->n = 0;
}


/* ------------------------------------------------------------------------
 * The model: docs/internals.md ("Packets", "Receiving") over one flat
 * stream.  Framing and reassembly per sender.  The receive_backlog cap
 * drops nothing (it only pauses reading, which feeding does not model), so
 * the model has no cap: every input runs under each cap all the same, and
 * an alert is dropped only when the shim runs out of memory, which the
 * fuzzer never makes happen (dropped_memory must stay 0).
 */

typedef struct {
    int32_t   sender;
    uint32_t  name_len;
    uint32_t  total;
    int       skip;                /* a unicast to another pid: passes by */
    uint32_t  received;
    buf_t     buf;                 /* name then data so far */
} pend_t;

typedef struct {
    buf_t      stream;
    size_t     pos;
    int        corrupt;
    pend_t    *pend;
    size_t     npend;
    size_t     pend_cap;
    alerts_t   out;
    uint64_t   cap;                /* receive_backlog; 0: none */
    uint64_t   ready;              /* complete, not yet handed out */
    uint64_t   partial;
    uint64_t   alerts_received, bytes_received, dropped_memory;
    uint64_t   packets_discarded, bytes_discarded, alerts_truncated;
} model_t;

static model_t  M;

static int
model_header_ok(const hdr_t *h)
{
    uint32_t  d;

    if (h->magic != MAGIC || (h->flags & ~(FIRST|UNICAST|CANDIDATE))
        || h->sender <= 0 || h->len > PAYLOAD_MAX)
    {
        return 0;
    }

    if (h->flags & FIRST) {
        if ((h->flags & CANDIDATE) && !(h->flags & UNICAST)) {
            return 0;
        }

        /* dest and name fit, first data part not above the total */
        d = (h->flags & UNICAST) ? DEST : 0;
        return h->name_len <= NAME_MAX_ && h->arg <= DATA_MAX_
               && h->len >= d + h->name_len
               && (uint64_t) (h->len - d - h->name_len) <= h->arg;
    }

    return h->name_len == 0 && h->flags == 0;
}

static pend_t *
model_find(int32_t sender)
{
    size_t  i;

    for (i = 0; i < M.npend; i++) {
        if (M.pend[i].sender == sender) {
            return &M.pend[i];
        }
    }

    return NULL;
}

static uint64_t
model_size(const pend_t *p)
{
    return p->skip ? 0 : (uint64_t) p->name_len + p->total;
}

/* takes p out of the reassembly table */
static void
model_drop(pend_t *p)
{
    M.partial -= model_size(p);
    free(p->buf.p);
    *p = M.pend[--M.npend];
}

static void
model_complete(pend_t *p)
{
    static const uint8_t  none[1];
    const uint8_t        *b = p->buf.p ? p->buf.p : none;

    alerts_add(&M.out, p->sender, b, p->name_len, b + p->name_len, p->total);
    M.alerts_received++;
    M.bytes_received += p->total;
    M.ready += (uint64_t) p->name_len + p->total;
    model_drop(p);
}

static pend_t *
model_new(const hdr_t *h)
{
    pend_t  *p;

    if (M.npend == M.pend_cap) {
        M.pend_cap = M.pend_cap ? M.pend_cap * 2 : 16;
        M.pend = realloc(M.pend, M.pend_cap * sizeof(pend_t));
        if (M.pend == NULL) {
            abort();
        }
    }

    p = &M.pend[M.npend++];
    memset(p, 0, sizeof(*p));
    p->sender = h->sender;
    p->name_len = h->name_len;
    p->total = h->arg;
    p->received = h->len - h->name_len;

    return p;
}

static void
model_packet(const hdr_t *h, const uint8_t *payload)
{
    int32_t  dest;
    pend_t  *p;

    p = model_find(h->sender);

    if (h->flags & FIRST) {
        if (p) {
            if (!p->skip) {
                M.alerts_truncated++;
            }
            model_drop(p);
        }

        if (h->flags & UNICAST) {
            memcpy(&dest, payload, DEST);
            p = model_new(h);
            p->received -= DEST;

            if (dest != 0) {            /* the shim never started: pid 0 */
                p->skip = 1;
                if (p->received == p->total) {
                    model_drop(p);
                }
                return;
            }

            buf_add(&p->buf, payload + DEST, h->len - DEST);

        } else {
            p = model_new(h);
            buf_add(&p->buf, payload, h->len);
        }

        M.partial += model_size(p);

        if (p->received == p->total) {
            model_complete(p);
        }

        return;
    }

    if (p == NULL || h->arg != p->received
        || (uint64_t) h->len > (uint64_t) p->total - p->received)
    {
        M.packets_discarded++;
        M.bytes_discarded += HDR + h->len;
        return;
    }

    p->received += h->len;

    if (p->skip) {
        if (p->received == p->total) {
            model_drop(p);
        }
        return;
    }

    buf_add(&p->buf, payload, h->len);

    if (p->received == p->total) {
        model_complete(p);
    }
}

/* appends bytes to the model's stream and parses what it can */
static void
model_push(const uint8_t *b, size_t n)
{
    hdr_t  h;

    buf_add(&M.stream, b, n);

    while (M.stream.len - M.pos >= HDR) {
        memcpy(&h, M.stream.p + M.pos, HDR);

        if (!model_header_ok(&h)) {
            if (!M.corrupt) {
                M.corrupt = 1;
                M.packets_discarded++;
            }
            M.bytes_discarded++;
            M.pos++;
            continue;
        }

        if (M.stream.len - M.pos - HDR < h.len) {
            break;                             /* wait for the payload */
        }

        M.corrupt = 0;
        model_packet(&h, M.stream.p + M.pos + HDR);
        M.pos += HDR + h.len;
    }
}

/* zero bytes the model's stream needs to become idle: 0 when what is left
 * is fewer than 16 bytes, all zero (they can never start a header) */
static size_t
model_pad_needed(void)
{
    size_t  left, i;
    hdr_t   h;

    left = M.stream.len - M.pos;

    if (left >= HDR) {
        memcpy(&h, M.stream.p + M.pos, HDR);
        return HDR + h.len - left;             /* a header waits */
    }

    for (i = M.pos; i < M.stream.len; i++) {
        if (M.stream.p[i] != 0) {
            return HDR;
        }
    }

    return 0;
}

static void
model_reset(uint64_t cap)
{
    while (M.npend) {
        model_drop(&M.pend[0]);
    }

    M.stream.len = 0;
    M.pos = 0;
    M.corrupt = 0;
    alerts_clear(&M.out);
    M.cap = cap;
    M.ready = M.partial = 0;
    M.alerts_received = M.bytes_received = M.dropped_memory = 0;
    M.packets_discarded = M.bytes_discarded = M.alerts_truncated = 0;
}


/* ------------------------------------------------------------------------
 * Encoding (for the reset packets and the probe)
 */

static void
put_header(buf_t *b, uint8_t flags, uint8_t name_len, int32_t sender,
    uint32_t len, uint32_t arg)
{
    hdr_t  h;

    h.magic = MAGIC;
    h.flags = flags;
    h.name_len = name_len;
    h.sender = sender;
    h.len = len;
    h.arg = arg;
    buf_add(b, &h, HDR);
}


/* ------------------------------------------------------------------------
 * Chunking and the shim side
 */

typedef struct {
    uint32_t  x;
    int       mode;
    int       drain;
    int       toggle;
} cut_t;

static uint32_t
rnd(cut_t *c)
{
    c->x ^= c->x << 13;
    c->x ^= c->x >> 17;
    c->x ^= c->x << 5;
    return c->x;
}

static size_t
next_chunk(cut_t *c)
{
    static const size_t  edges[] = { 15, 16, 17, 4095, 4096, 4097 };

    switch (c->mode) {
    case 0:  return SIZE_MAX;
    case 1:  return 1;
    case 2:  return 1 + rnd(c) % 32;
    case 3:  return 1 + rnd(c) % 4200;
    case 4:  return 1 + rnd(c) % 70000;
    case 5:  return edges[rnd(c) % 6];
    case 6:  return (c->toggle ^= 1) ? 1 : 1 + rnd(c) % 8192;
    default: return 1 + rnd(c) % 512;
    }
}

/* receive_backlog per input (byte 0, bits 4-5) */
static const uint64_t  caps[] = {
    (uint64_t) 128 * 1024 * 1024, 64 * 1024, 100 * 1024, 1024 * 1024
};

static alerts_t  got;

static void
check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "decoder_fuzz: invariant broken: %s\n", what);
        abort();
    }
}

static void
shim_drain(void)
{
    ngx_ipc_alert_t  a;

    while (ngx_ipc_recv(0, &a) == 1) {
        check(a.sender > 0, "alert with sender <= 0");
        check(a.name_len <= NAME_MAX_, "alert with name_len > 254");
        check(a.name_len == 0 || a.name != NULL, "NULL name");
        check(a.data_len == 0 || a.data != NULL, "NULL data");

        /* copies every byte handed out: ASan checks the whole ranges */
        alerts_add(&got, a.sender, (const uint8_t *) a.name, a.name_len,
                   (const uint8_t *) a.data, a.data_len);
    }

    M.ready = 0;                              /* the model's side of it */
}

static void
gauges(const char *when)
{
    ngx_ipc_counters_t  c;

    ngx_ipc_counters(&c);

    if (c.receive_ready != M.ready || c.receive_partial != M.partial) {
        fprintf(stderr, "decoder_fuzz: %s: receive_ready %llu (model %llu), "
                "receive_partial %llu (model %llu)\n", when,
                (unsigned long long) c.receive_ready,
                (unsigned long long) M.ready,
                (unsigned long long) c.receive_partial,
                (unsigned long long) M.partial);
        abort();
    }
}

/* the same chunks to the shim and to the model, draining both between
 * chunks in drain mode */
static void
feed_both(cut_t *c, const uint8_t *p, size_t n)
{
    size_t  k;

    while (n) {
        k = next_chunk(c);
        if (k > n) {
            k = n;
        }

        check(ngx_ipc_feed((const char *) p, k) == 0, "ngx_ipc_feed failed");
        model_push(p, k);
        p += k;
        n -= k;

        if (c->drain) {
            shim_drain();
            gauges("after a chunk");
        }
    }
}


static int
cmp_i32(const void *a, const void *b)
{
    int32_t  x = *(const int32_t *) a, y = *(const int32_t *) b;

    return (x > y) - (x < y);
}


static void
report_alert(const char *who, const alert_t *a)
{
    fprintf(stderr, "  %s: sender %d name_len %u data_len %u\n", who,
            (int) a->sender, (unsigned) a->name_len, (unsigned) a->data_len);
}


static void
report_counters(const ngx_ipc_counters_t *b, const ngx_ipc_counters_t *a,
    size_t fed)
{
    fprintf(stderr, "  fed %zu bytes, receive_backlog %llu\n"
            "  shim : received %llu/%llu discarded %llu/%llu truncated %llu "
            "dropped %llu\n"
            "  model: received %llu/%llu discarded %llu/%llu truncated %llu "
            "dropped %llu\n",
            fed, (unsigned long long) M.cap,
            (unsigned long long) (a->alerts_received - b->alerts_received),
            (unsigned long long) (a->bytes_received - b->bytes_received),
            (unsigned long long) (a->packets_discarded - b->packets_discarded),
            (unsigned long long) (a->bytes_discarded - b->bytes_discarded),
            (unsigned long long) (a->alerts_truncated - b->alerts_truncated),
            (unsigned long long) (a->dropped_memory - b->dropped_memory),
            (unsigned long long) M.alerts_received,
            (unsigned long long) M.bytes_received,
            (unsigned long long) M.packets_discarded,
            (unsigned long long) M.bytes_discarded,
            (unsigned long long) M.alerts_truncated,
            (unsigned long long) M.dropped_memory);
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static buf_t        all;        /* input || padding || resync || probe */
    static int32_t     *senders;
    static size_t       senders_cap;
    static uint8_t      probe_data[48];
    static const uint16_t  magic = MAGIC;    /* host byte order */
    const uint8_t      *magic_bytes = (const uint8_t *) &magic;

    size_t              i, n, nsenders, pad, in_len;
    int32_t             s;
    uint64_t            cap;
    cut_t               cut;
    ngx_ipc_counters_t  before, after;
    const uint8_t      *in;

    memset(&cut, 0, sizeof(cut));
    cap = caps[0];

    if (size >= 2) {
        cut.mode = data[0] & 7;
        cut.drain = (data[0] >> 3) & 1;
        cap = caps[(data[0] >> 4) & 3];
        cut.x = 0x9E3779B9u ^ ((uint32_t) data[1] << 8) ^ (uint32_t) size;
        in = data + 2;
        in_len = size - 2;

    } else {
        cut.x = 0x9E3779B9u;
        in = data;
        in_len = size;
    }

    if (probe_data[0] == 0) {
        for (i = 0; i < sizeof(probe_data); i++) {
            probe_data[i] = (uint8_t) (i * 131 + 7) | 1;
        }
    }

    /* 1. the input, then zeros until the stream is idle: framing alone
     *    decides that, so a first pass of the model without cap finds it */

    model_reset(0);
    all.len = 0;
    buf_add(&all, in, in_len);
    model_push(in, in_len);

    while ((pad = model_pad_needed()) != 0) {
        n = all.len;
        buf_zeros(&all, pad);
        model_push(all.p + n, pad);
    }

    /* 2. an empty FIRST packet for every sender that may have something
     *    pending: any pid after a magic in input and padding */

    nsenders = 0;
    for (i = 0; i + HDR <= all.len; i++) {
        if (all.p[i] != magic_bytes[0] || all.p[i + 1] != magic_bytes[1]) {
            continue;
        }
        memcpy(&s, all.p + i + 4, 4);
        if (s <= 0) {
            continue;
        }
        if (nsenders == senders_cap) {
            senders_cap = senders_cap ? senders_cap * 2 : 64;
            senders = realloc(senders, senders_cap * sizeof(int32_t));
            if (senders == NULL) {
                abort();
            }
        }
        senders[nsenders++] = s;
    }

    if (nsenders) {
        qsort(senders, nsenders, sizeof(int32_t), cmp_i32);
    }

    for (i = 0; i < nsenders; i++) {
        if (i == 0 || senders[i] != senders[i - 1]) {
            put_header(&all, FIRST, 0, senders[i], 0, 0);
        }
    }

    /* 3. the probe: "probe" + 48 bytes in two packets from PROBE_PID */

    put_header(&all, FIRST, 5, PROBE_PID, 5 + 20, sizeof(probe_data));
    buf_add(&all, "probe", 5);
    buf_add(&all, probe_data, 20);
    put_header(&all, 0, 0, PROBE_PID, sizeof(probe_data) - 20, 20);
    buf_add(&all, probe_data + 20, sizeof(probe_data) - 20);

    /* the real pass: shim and model, the same chunks, the same drains */

    model_reset(cap);
    alerts_clear(&got);

    check(ngx_ipc_configure(0, cap) == 0, "ngx_ipc_configure failed");
    shim_drain();                        /* nothing should be left anyway */
    check(got.n == 0, "an alert was left over from the previous input");
    gauges("before the input");

    ngx_ipc_counters(&before);
    feed_both(&cut, all.p, all.len);
    shim_drain();
    ngx_ipc_counters(&after);

    check(M.npend == 0 && M.pos == M.stream.len,
          "harness: the model is not idle after the probe");

    /* compare */

    if (got.n != M.out.n) {
        fprintf(stderr, "decoder_fuzz: %zu alerts from the shim, %zu from "
                "the model\n", got.n, M.out.n);
        for (i = 0; i < got.n && i < 8; i++) {
            report_alert("shim ", &got.a[i]);
        }
        for (i = 0; i < M.out.n && i < 8; i++) {
            report_alert("model", &M.out.a[i]);
        }
        report_counters(&before, &after, all.len);
        abort();
    }

    for (i = 0; i < got.n; i++) {
        const alert_t  *g = &got.a[i], *e = &M.out.a[i];

        if (g->sender != e->sender || g->name_len != e->name_len
            || g->data_len != e->data_len
            || memcmp(g->bytes, e->bytes,
                      (size_t) g->name_len + g->data_len) != 0)
        {
            fprintf(stderr, "decoder_fuzz: alert %zu differs\n", i);
            report_alert("shim ", g);
            report_alert("model", e);
            abort();
        }
    }

    check(got.n >= 1 && got.a[got.n - 1].sender == PROBE_PID
          && got.a[got.n - 1].name_len == 5
          && got.a[got.n - 1].data_len == sizeof(probe_data)
          && memcmp(got.a[got.n - 1].bytes, "probe", 5) == 0
          && memcmp(got.a[got.n - 1].bytes + 5, probe_data,
                    sizeof(probe_data)) == 0,
          "the probe alert did not come out intact last");

#define COUNTER(f)                                                          \
    if (after.f - before.f != M.f) {                                        \
        fprintf(stderr, "decoder_fuzz: counter " #f ": shim +%llu, "        \
                "model +%llu\n", (unsigned long long) (after.f - before.f), \
                (unsigned long long) M.f);                                  \
        report_counters(&before, &after, all.len);                          \
        abort();                                                            \
    }

    COUNTER(alerts_received)
    COUNTER(bytes_received)
    COUNTER(packets_discarded)
    COUNTER(bytes_discarded)
    COUNTER(alerts_truncated)
    COUNTER(dropped_memory)

#undef COUNTER

    /* nothing held any more: both gauges back to 0 */
    gauges("after the input");
    check(after.receive_ready == 0 && after.receive_partial == 0,
          "receive gauges not back to 0 after the input");

    return 0;
}
