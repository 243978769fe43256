/*
 * ngx_ipc_cache.c: buffers kept for reuse instead of freed.
 *
 * A stream of alerts allocates and frees buffers all the time: send-queue
 * items while a pipe is full, reassembly buffers, copies a worker sends
 * itself.  Freed in bursts (a queue drains, the receive loop hands a batch
 * to Lua), they leave the top of glibc's heap free, glibc gives it back to
 * the kernel, and the next burst faults every page in again: measured, 64
 * KiB broadcasts to 2 workers ran at a quarter of their speed in about half
 * the runs, the sender faulting 190,000 pages for 20,000 alerts.
 *
 * So a cache keeps what it is given back, up to the most that was in use
 * at once in this second or the one before (never less than its floor,
 * never more than its ceiling); when a new second starts, spares over that
 * bound are freed.  A burst's memory is thus kept while bursts go on and
 * given back about two seconds after they stop, at the cache's next use
 * (an idle worker keeps its spares until then; the ceiling bounds them).
 *
 * Free buffers are listed by size class (a power of two) through their own
 * first bytes; a buffer is reused for a need of at most twice less.
 * No nginx, and no I/O but a look at /proc/self/statm under an address-space
 * limit: the lowest layer, beside ngx_ipc_core.c.
 */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "ngx_ipc_internal.h"


struct ngx_ipc_spare_s {
    ngx_ipc_spare_t  *next;
    size_t            cap;
};


#define NGX_IPC_CACHE_LOOKS  8

/*
 * Under an address-space limit (RLIMIT_AS), an allocation of at least
 * NGX_IPC_AS_CHECK bytes that would leave the process less than
 * NGX_IPC_AS_RESERVE of it is refused, as if malloc() had failed: the rest
 * of the worker (nginx's pools, LuaJIT) allocates between two reads too, and
 * a failure there aborts the worker, where a refused buffer only drops the
 * alert it was for (counted and logged).  Seen: a reassembly buffer grown
 * in place (mremap) to within a few KiB of the limit, then the worker gone.
 */
#define NGX_IPC_AS_CHECK    (1024 * 1024)
#define NGX_IPC_AS_RESERVE  (16 * 1024 * 1024)


/* 1 when "more" bytes fit under RLIMIT_AS with the reserve left over */

static int
ngx_ipc_cache_room(size_t more)
{
    int                 fd;
    char                buf[64];
    ssize_t             n;
    struct rlimit       rl;
    unsigned long long  pages;

    if (more < NGX_IPC_AS_CHECK
        || getrlimit(RLIMIT_AS, &rl) != 0
        || rl.rlim_cur == RLIM_INFINITY)
    {
        return 1;
    }

    fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return 1;
    }

    n = read(fd, buf, sizeof(buf) - 1);
    (void) close(fd);

    if (n <= 0) {
        return 1;
    }

    buf[n] = '\0';

    if (sscanf(buf, "%llu", &pages) != 1) {
        return 1;
    }

    return (unsigned long long) rl.rlim_cur
           >= pages * (unsigned long long) sysconf(_SC_PAGESIZE)
              + more + NGX_IPC_AS_RESERVE;
}


static unsigned
ngx_ipc_cache_class(size_t n)
{
    unsigned  k;

    k = 0;
    while (n > 1 && k < NGX_IPC_CACHE_CLASSES - 1) {
        n >>= 1;
        k++;
    }

    return k;
}


static size_t
ngx_ipc_cache_limit(const ngx_ipc_cache_t *c)
{
    size_t  limit;

    limit = c->peak > c->peak_before ? c->peak : c->peak_before;

    if (limit < c->floor) {
        limit = c->floor;
    }

    return limit < c->ceiling ? limit : c->ceiling;
}


/* frees the largest spares first until the cache is within its limit */

static void
ngx_ipc_cache_trim(ngx_ipc_cache_t *c)
{
    int               k;
    size_t            limit;
    ngx_ipc_spare_t  *s;

    limit = ngx_ipc_cache_limit(c);

    for (k = NGX_IPC_CACHE_CLASSES - 1; k >= 0; k--) {
        while (c->kept && c->used + c->kept > limit && c->free[k]) {
            s = c->free[k];
            c->free[k] = s->next;
            c->kept -= s->cap;
            free(s);
        }
    }
}


/* a new second: the peak of the one that ended becomes the one before */

static void
ngx_ipc_cache_tick(ngx_ipc_cache_t *c)
{
    struct timespec  ts;

    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == -1
        || ts.tv_sec == c->second)
    {
        return;
    }

    c->peak_before = ts.tv_sec == c->second + 1 ? c->peak : c->used;
    c->peak = c->used;
    c->second = ts.tv_sec;

    ngx_ipc_cache_trim(c);
}


/*
 * A buffer of at least "need" bytes, at most twice that when it is a spare;
 * "*cap" is its size.  NULL when out of memory.
 */

u_char *
ngx_ipc_cache_get(ngx_ipc_cache_t *c, size_t need, size_t *cap)
{
    unsigned          k, j, looks;
    ngx_ipc_spare_t  *s, **p;

    ngx_ipc_cache_tick(c);

    if (need < sizeof(ngx_ipc_spare_t)) {
        need = sizeof(ngx_ipc_spare_t);
    }

    s = NULL;
    k = ngx_ipc_cache_class(need);

    /*
     * Class k holds [2^k, 2^(k+1)), class k + 1 up to 2^(k+2).  A few looks
     * in each: a list of spares just too small for this need must not make
     * every get walk all of it.
     */

    for (j = k; s == NULL && j <= k + 1 && j < NGX_IPC_CACHE_CLASSES; j++) {
        looks = 0;

        for (p = &c->free[j]; *p && looks++ < NGX_IPC_CACHE_LOOKS;
             p = &(*p)->next)
        {
            if ((*p)->cap >= need && (*p)->cap / 2 <= need) {
                s = *p;
                *p = s->next;
                c->kept -= s->cap;
                break;
            }
        }
    }

    if (s) {
        *cap = s->cap;

    } else {
        s = ngx_ipc_cache_room(need) ? malloc(need) : NULL;
        if (s == NULL) {
            return NULL;
        }

        *cap = need;
    }

    c->used += *cap;
    if (c->used > c->peak) {
        c->peak = c->used;
    }

    return (u_char *) s;
}


/* gives back a buffer that ngx_ipc_cache_get() or _resize() made */

void
ngx_ipc_cache_put(ngx_ipc_cache_t *c, u_char *buf, size_t cap)
{
    unsigned          k;
    ngx_ipc_spare_t  *s;

    if (buf == NULL) {
        return;
    }

    c->used -= cap;

    ngx_ipc_cache_tick(c);

    if (cap > c->largest || c->used + c->kept + cap > ngx_ipc_cache_limit(c)) {
        free(buf);
        return;
    }

    k = ngx_ipc_cache_class(cap);
    s = (ngx_ipc_spare_t *) (void *) buf;
    s->cap = cap;
    s->next = c->free[k];
    c->free[k] = s;
    c->kept += cap;
}


/* realloc() for a buffer of the cache's; NULL (the old one kept) when out
 * of memory */

u_char *
ngx_ipc_cache_resize(ngx_ipc_cache_t *c, u_char *buf, size_t cap,
    size_t new_cap)
{
    u_char  *p;

    /* all of new_cap: where realloc() copies, both buffers live at once */
    if (new_cap > cap && !ngx_ipc_cache_room(new_cap)) {
        return NULL;
    }

    p = realloc(buf, new_cap);
    if (p == NULL) {
        return NULL;
    }

    c->used = c->used - cap + new_cap;
    if (c->used > c->peak) {
        c->peak = c->used;
    }

    return p;
}
