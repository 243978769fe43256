/*
 * ngx_ipc_consumer.c: the Lua VMs of this process that take alerts.
 *
 * A worker that runs Lua in both http {} and stream {} holds two Lua VMs
 * that load this one library: one pipe, one ready queue, and a consumer per
 * VM, each with its semaphore, the function that posts it (the http or the
 * stream module's), and the names it has handlers for.  Every complete
 * alert goes to each consumer that has a handler for its name when it takes
 * it (ngx_ipc_assemble.c keeps a place in the ready queue per consumer).
 * Alone, a consumer takes every alert and its Lua side lets go of names it
 * does not handle, as before there were several.
 */

#include <stdlib.h>
#include <string.h>

#include "ngx_ipc_internal.h"


#define NGX_IPC_WANT_BUCKETS  64


typedef struct ngx_ipc_want_s  ngx_ipc_want_t;

struct ngx_ipc_want_s {
    ngx_ipc_want_t   *next;
    uint32_t          len;
    u_char            name[];
};

typedef struct {
    void             *sema;
    ngx_ipc_post_pt   post;
    int               posted;         /* a post is outstanding */
    ngx_ipc_want_t   *names[NGX_IPC_WANT_BUCKETS];
} ngx_ipc_consumer_t;


static ngx_ipc_consumer_t  ngx_ipc_consumers_list[NGX_IPC_CONSUMERS_MAX];
static int                 ngx_ipc_nconsumers;


/* FNV-1a */

static uint32_t
ngx_ipc_want_hash(const u_char *name, size_t len)
{
    size_t    i;
    uint32_t  h;

    h = 2166136261u;

    for (i = 0; i < len; i++) {
        h = (h ^ name[i]) * 16777619u;
    }

    return h % NGX_IPC_WANT_BUCKETS;
}


static ngx_ipc_want_t **
ngx_ipc_want_slot(ngx_ipc_consumer_t *c, const u_char *name, size_t len)
{
    ngx_ipc_want_t  **w;

    w = &c->names[ngx_ipc_want_hash(name, len)];

    while (*w && ((*w)->len != len || memcmp((*w)->name, name, len) != 0)) {
        w = &(*w)->next;
    }

    return w;
}


int
ngx_ipc_consumer_add(void *sema, ngx_ipc_post_pt post)
{
    int                  n;
    ngx_ipc_consumer_t  *c;

    if (ngx_ipc_nconsumers == NGX_IPC_CONSUMERS_MAX) {
        ngx_ipc_set_error("ngx.ipc: more than %d Lua VMs in one process",
                          NGX_IPC_CONSUMERS_MAX);
        return -1;
    }

    n = ngx_ipc_nconsumers++;
    c = &ngx_ipc_consumers_list[n];
    c->sema = sema;
    c->post = post;
    c->posted = 0;

    return n;
}


/* at least one: without nginx (tests, fuzzers) consumer 0 takes alerts
 * without a semaphore */

int
ngx_ipc_consumer_n(void)
{
    return ngx_ipc_nconsumers > 1 ? ngx_ipc_nconsumers : 1;
}


int
ngx_ipc_consumer_wants(int n, const u_char *name, size_t len)
{
    if (ngx_ipc_nconsumers <= 1) {
        return 1;
    }

    return *ngx_ipc_want_slot(&ngx_ipc_consumers_list[n], name, len) != NULL;
}


void
ngx_ipc_consumer_post(int n)
{
    ngx_ipc_consumer_t  *c;

    c = &ngx_ipc_consumers_list[n];

    if (c->sema != NULL && !c->posted) {
        c->posted = 1;
        (void) c->post(c->sema, 1);
    }
}


void
ngx_ipc_consumer_drained(int n)
{
    ngx_ipc_consumers_list[n].posted = 0;
}


/* the FFI surface */

int
ngx_ipc_want(int32_t consumer, const char *name, size_t name_len, int on)
{
    ngx_ipc_want_t  *w, **slot;

    if (consumer < 0 || consumer >= NGX_IPC_CONSUMERS_MAX
        || name_len > NGX_IPC_NAME_MAX)
    {
        ngx_ipc_set_error("ngx.ipc: bad consumer or name");
        return -1;
    }

    slot = ngx_ipc_want_slot(&ngx_ipc_consumers_list[consumer],
                             (const u_char *) name, name_len);

    if (!on) {
        if (*slot) {
            w = *slot;
            *slot = w->next;
            free(w);
        }

        return 0;
    }

    if (*slot) {
        return 0;
    }

    w = malloc(sizeof(ngx_ipc_want_t) + name_len);
    if (w == NULL) {
        ngx_ipc_set_error("ngx.ipc: out of memory");
        return -1;
    }

    w->next = NULL;
    w->len = (uint32_t) name_len;
    memcpy(w->name, name, name_len);
    *slot = w;

    return 0;
}


int32_t
ngx_ipc_wanted_by(const char *name, size_t name_len)
{
    int  n;

    for (n = 0; n < ngx_ipc_nconsumers; n++) {
        if (*ngx_ipc_want_slot(&ngx_ipc_consumers_list[n],
                               (const u_char *) name, name_len))
        {
            return n;
        }
    }

    return -1;
}


int
ngx_ipc_consumers(void)
{
    return ngx_ipc_nconsumers;
}
