/*
 * ngx_ipc_wire.c: the wire format: packing alerts into packets, and parsing
 * a stream of them (whatever the pipe gave, cut anywhere) into the calls
 * that reassemble them (ngx_ipc_assemble.c).  No I/O: ngx_ipc_dir.c reads
 * the pipe into the stream buffer, ngx_ipc_feed() copies into it, so tests
 * and the fuzzer drive the same parser the read event does.
 */

#include <inttypes.h>
#include <string.h>

#include "ngx_ipc_internal.h"


typedef struct {
    u_char          buf[NGX_IPC_STREAM_SIZE];
    size_t          len;
    int             corrupt;    /* inside a run of bad bytes */
} ngx_ipc_stream_t;


static ngx_ipc_stream_t   ngx_ipc_stream;


/* encoding */

void
ngx_ipc_out_init(ngx_ipc_out_t *out, const char *name, size_t name_len,
    const char *data, size_t data_len)
{
    out->name = (const u_char *) name;
    out->data = (const u_char *) data;
    out->name_len = (uint32_t) name_len;
    out->total = (uint32_t) data_len;
    out->off = 0;
    out->first = 1;
    out->dest = 0;
    out->candidate = 0;
    out->lent = 0;
}


/* the bytes a FIRST packet spends on the dest pid of a unicast */

static size_t
ngx_ipc_out_dest_size(const ngx_ipc_out_t *out)
{
    return (out->first && out->dest) ? NGX_IPC_DEST_SIZE : 0;
}


int
ngx_ipc_out_done(const ngx_ipc_out_t *out)
{
    return !out->first && out->off == out->total;
}


uint64_t
ngx_ipc_out_left(const ngx_ipc_out_t *out)
{
    return (uint64_t) (out->first ? out->name_len : 0)
           + ngx_ipc_out_dest_size(out) + (out->total - out->off);
}


/*
 * At most the bytes the rest of "out" takes as packets in a send queue: its
 * name and data, and a header for each full packet plus one for a packet cut
 * short by the room left in the queue's last item.
 */

uint64_t
ngx_ipc_out_packed(const ngx_ipc_out_t *out)
{
    uint64_t  left;

    left = ngx_ipc_out_left(out);

    return left + NGX_IPC_HDR_SIZE * (left / NGX_IPC_PAYLOAD_MAX + 2);
}


/*
 * Describes in p the next packet of "out" if it fits in "room" and returns
 * its size, or returns 0 (alert done, or not enough room for a useful
 * packet).  A packet never holds more than NGX_IPC_PAYLOAD_MAX bytes.  Its
 * name and data stay where the caller has them: ngx_ipc_packet_take()
 * moves "out" past it once it is written or copied.
 */

size_t
ngx_ipc_packet_next(ngx_ipc_packet_t *p, size_t room, int32_t sender,
    const ngx_ipc_out_t *out)
{
    size_t  name_len, dest_len, left, need, n;

    if (ngx_ipc_out_done(out)) {
        return 0;
    }

    name_len = out->first ? out->name_len : 0;
    dest_len = ngx_ipc_out_dest_size(out);
    left = out->total - out->off;

    need = NGX_IPC_HDR_SIZE + dest_len + name_len
           + (left < NGX_IPC_PACK_MIN ? left : NGX_IPC_PACK_MIN);
    if (room < need) {
        return 0;
    }

    n = room - NGX_IPC_HDR_SIZE - dest_len - name_len;
    if (n > NGX_IPC_PAYLOAD_MAX - dest_len - name_len) {
        n = NGX_IPC_PAYLOAD_MAX - dest_len - name_len;
    }
    if (n > left) {
        n = left;
    }

    p->h.magic = NGX_IPC_MAGIC;
    p->h.flags = out->first ? NGX_IPC_FLAG_FIRST : 0;
    if (dest_len) {
        p->h.flags |= NGX_IPC_FLAG_UNICAST
                      | (out->candidate ? NGX_IPC_FLAG_CANDIDATE : 0);
    }
    p->h.name_len = (uint8_t) name_len;
    p->h.sender = sender;
    p->h.len = (uint32_t) (dest_len + name_len + n);
    p->h.arg = out->first ? out->total : out->off;
    p->dest = out->dest;
    p->name = out->name;
    p->data = out->data;
    p->data_len = n;
    p->last = (n == left);

    return NGX_IPC_HDR_SIZE + dest_len + name_len + n;
}


void
ngx_ipc_packet_take(ngx_ipc_out_t *out, const ngx_ipc_packet_t *p)
{
    out->data += p->data_len;
    out->off += (uint32_t) p->data_len;
    out->first = 0;
}


/* copies a packet that ngx_ipc_packet_next() described into dst */

void
ngx_ipc_packet_copy(u_char *dst, const ngx_ipc_packet_t *p)
{
    memcpy(dst, &p->h, NGX_IPC_HDR_SIZE);
    dst += NGX_IPC_HDR_SIZE;

    if (p->h.flags & NGX_IPC_FLAG_UNICAST) {
        memcpy(dst, &p->dest, NGX_IPC_DEST_SIZE);
        dst += NGX_IPC_DEST_SIZE;
    }

    if (p->h.name_len) {
        memcpy(dst, p->name, p->h.name_len);
        dst += p->h.name_len;
    }

    if (p->data_len) {
        memcpy(dst, p->data, p->data_len);
    }
}


/* the next packet, copied into dst */

size_t
ngx_ipc_pack(u_char *dst, size_t room, int32_t sender, ngx_ipc_out_t *out)
{
    size_t            k;
    ngx_ipc_packet_t  p;

    k = ngx_ipc_packet_next(&p, room, sender, out);

    if (k) {
        ngx_ipc_packet_copy(dst, &p);
        ngx_ipc_packet_take(out, &p);
    }

    return k;
}


/* stream parsing */

static int
ngx_ipc_header_ok(const ngx_ipc_hdr_t *h)
{
    size_t  dest_len;

    if (h->magic != NGX_IPC_MAGIC
        || (h->flags & ~(NGX_IPC_FLAG_FIRST|NGX_IPC_FLAG_UNICAST
                         |NGX_IPC_FLAG_CANDIDATE)) != 0
        || h->sender <= 0
        || h->len > NGX_IPC_PAYLOAD_MAX)
    {
        return 0;
    }

    if (h->flags & NGX_IPC_FLAG_FIRST) {
        if ((h->flags & NGX_IPC_FLAG_CANDIDATE)
            && !(h->flags & NGX_IPC_FLAG_UNICAST))
        {
            return 0;
        }

        dest_len = (h->flags & NGX_IPC_FLAG_UNICAST) ? NGX_IPC_DEST_SIZE : 0;

        return h->name_len <= NGX_IPC_NAME_MAX
               && h->arg <= NGX_IPC_DATA_MAX
               && h->len >= dest_len + h->name_len
               && h->len - dest_len - h->name_len <= h->arg;
    }

    return h->name_len == 0 && h->flags == 0;
}


static void
ngx_ipc_parse(void)
{
    size_t             pos, len;
    ngx_ipc_hdr_t      h;
    ngx_ipc_stream_t  *s;

    s = &ngx_ipc_stream;
    pos = 0;

    while (s->len - pos >= NGX_IPC_HDR_SIZE) {

        memcpy(&h, s->buf + pos, NGX_IPC_HDR_SIZE);

        if (!ngx_ipc_header_ok(&h)) {

            /* framing lost: skip a byte until a header passes again */

            if (!s->corrupt) {
                s->corrupt = 1;
                ngx_ipc_counters_data.packets_discarded++;
            }

            ngx_ipc_counters_data.bytes_discarded++;
            ngx_ipc_notice = 1;
            pos++;
            continue;
        }

        len = h.len;                          /* <= NGX_IPC_PAYLOAD_MAX */

        if (s->len - pos - NGX_IPC_HDR_SIZE < len) {
            break;
        }

        s->corrupt = 0;

        if (h.flags & NGX_IPC_FLAG_FIRST) {
            ngx_ipc_first(&h, s->buf + pos + NGX_IPC_HDR_SIZE);

        } else {
            ngx_ipc_next(&h, s->buf + pos + NGX_IPC_HDR_SIZE);
        }

        pos += NGX_IPC_HDR_SIZE + len;
    }

    if (pos) {
        memmove(s->buf, s->buf + pos, s->len - pos);
        s->len -= pos;
    }
}


int
ngx_ipc_feed(const char *buf, size_t len)
{
    size_t             n;
    ngx_ipc_stream_t  *s;

    s = &ngx_ipc_stream;

    while (len) {
        n = sizeof(s->buf) - s->len;
        if (n > len) {
            n = len;
        }

        memcpy(s->buf + s->len, buf, n);
        s->len += n;
        buf += n;
        len -= n;

        ngx_ipc_parse();
    }

    return 0;
}


/*
 * The stream buffer's free room, for a reader to fill (after parsing, less
 * than one packet, 4096 bytes, is left in it), and what it added.
 */

u_char *
ngx_ipc_stream_room(size_t *room)
{
    *room = sizeof(ngx_ipc_stream.buf) - ngx_ipc_stream.len;
    return ngx_ipc_stream.buf + ngx_ipc_stream.len;
}


void
ngx_ipc_stream_added(size_t n)
{
    ngx_ipc_stream.len += n;
    ngx_ipc_parse();
}
