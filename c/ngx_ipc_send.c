/*
 * ngx_ipc_send.c: send and broadcast.  Which destination a pid is (routes,
 * cached until the directory changes), worker ids of the generation, copies
 * to a worker still starting, alerts to this process itself, the counters
 * of what was sent or refused, and the messages that say why.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_ipc_internal.h"


#define NGX_IPC_ROUTES       256            /* hash buckets */

/* how long a route to a worker reached by its id is trusted without
 * asking whether its pid is still running */
#define NGX_IPC_ALIVE_NS     1000000


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

static ngx_ipc_route_t  *ngx_ipc_routes[NGX_IPC_ROUTES];


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

    if (ngx_ipc_hooks.exiting()) {
        ngx_ipc_set_error("ngx.ipc: this worker is shutting down (reload or "
                          "quit) and sends no more alerts: they could reach "
                          "the next generation");
        return -1;
    }

    return 0;
}


/*
 * Lending (ngx_ipc.h): the ref the next send may refer to, and whether the
 * current one did.  A copy to oneself that refers to the caller's string
 * saves a copy into C and one back into Lua.
 */

static uint32_t  ngx_ipc_loan;
static int       ngx_ipc_loan_taken;


void
ngx_ipc_lend(uint32_t ref)
{
    ngx_ipc_loan = ref;
}


/* the loan for the send that starts (first thing: even a refused send
 * ends it), or 0 */

static uint32_t
ngx_ipc_loan_end(void)
{
    uint32_t  ref;

    ref = ngx_ipc_loan;
    ngx_ipc_loan = 0;
    ngx_ipc_loan_taken = 0;

    return ref;
}


/* a send's result: 1 instead of 0 when the copy to oneself took the loan */

static int
ngx_ipc_sent(int rc)
{
    return rc == 0 ? ngx_ipc_loan_taken : -1;
}


/* to this very process: no pipe, no packets, no write */

static int
ngx_ipc_deliver_self(const ngx_ipc_out_t *alert)
{
    int  rc;

    rc = ngx_ipc_local(ngx_ipc_self, alert);
    if (rc == NGX_IPC_LENT) {
        ngx_ipc_loan_taken = 1;
        rc = 0;
    }

    if (rc != 0) {
        return rc;
    }

    ngx_ipc_hooks.notify();             /* as the read event would */

    /*
     * The post lands in nginx's posted events.  OpenResty runs zero-delay
     * timers and what ngx.sleep(0) resumes from its delayed queue, after the
     * posted events, and does not shorten the next epoll_wait for them: a
     * send to oneself from there would wait for some other event (the loop's
     * 1 s wait at worst).  The end of the turn is an event that is ready at
     * once.
     */

    ngx_ipc_hooks.arm_turn();
    return 0;
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

    if (r && r->generation == gen && r->epoch == ngx_ipc_dest_epoch()) {
        if (r->key > 0) {
            return r->key;              /* its death shows as EPIPE */
        }

        now = ngx_ipc_now();

        if (now - r->alive_at < NGX_IPC_ALIVE_NS) {
            return r->key;
        }

        if (ngx_ipc_proc_running(pid)) {
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

    if (i < n && names[i].id >= 0 && !ngx_ipc_proc_running(pid)) {
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
    r->epoch = ngx_ipc_dest_epoch();
    r->alive_at = ngx_ipc_now();

    return r->key;
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
    int32_t  id, count, holder;

    count = ngx_ipc_dir_count();
    sent = 0;
    rc = 0;

    out->dest = pid;
    out->candidate = 1;

    for (id = 0; id < count && rc == 0; id++) {
        if (id == ngx_ipc_dir_id()) {
            continue;
        }

        /* the names are as of the last change in the directory: a holder
         * killed since then left its id to the worker that is starting */

        holder = ngx_ipc_names_holder(id);
        if (holder != 0 && ngx_ipc_proc_running(holder)) {
            continue;
        }

        rc = ngx_ipc_dest_deliver(-1 - id, out);
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
    uint32_t       lent;
    int32_t        key;
    ngx_ipc_out_t  out;

    lent = ngx_ipc_loan_end();

    if (ngx_ipc_check(name_len, data_len) != 0) {
        return -1;
    }

    ngx_ipc_out_init(&out, name, name_len, data, data_len);
    out.lent = lent;

    if (pid <= 0) {
        ngx_ipc_set_error("no such worker: %" PRId32, pid);
        rc = NGX_IPC_GONE;

    } else if (pid == ngx_ipc_self) {
        rc = ngx_ipc_deliver_self(&out);

    } else {
        key = ngx_ipc_route(pid);

        if (key == 0) {
            rc = (ngx_ipc_dir_count() > 0
                  && ngx_ipc_proc_starting(pid, ngx_ipc_dir_master()))
                 ? ngx_ipc_send_starting(pid, &out) : NGX_IPC_GONE;

        } else {
            if (key < 0) {
                out.dest = pid;     /* not for a replacement of a dead pid */
            }

            rc = ngx_ipc_dest_deliver(key, &out);
        }
    }

    return ngx_ipc_sent(ngx_ipc_count(rc, &out));
}


/* worker ids: 0 ... count - 1 of this generation */

static int
ngx_ipc_check_id(int32_t id)
{
    int32_t  count;

    count = ngx_ipc_dir_count();

    if (count <= 0) {
        ngx_ipc_set_error("no worker ids: this process is not an nginx "
                          "worker");
        return -1;
    }

    if (id < 0 || id >= count) {
        ngx_ipc_set_error("no such worker id: %" PRId32 " (ids are 0 to %"
                          PRId32 ")", id, count - 1);
        return -1;
    }

    return 0;
}


/*
 * To whichever worker holds id "id", now or once it joins: the alert waits
 * in w<id> like a broadcast's copy, so a replacement of a killed holder
 * handles it.
 */

static int
ngx_ipc_send_id(int32_t id, ngx_ipc_out_t *out)
{
    if (id == ngx_ipc_dir_id()) {
        return ngx_ipc_deliver_self(out);
    }

    return ngx_ipc_dest_deliver(-1 - id, out);
}


int
ngx_ipc_send_worker(int32_t id, const char *name, size_t name_len,
    const char *data, size_t data_len)
{
    int            rc;
    uint32_t       lent;
    ngx_ipc_out_t  out;

    lent = ngx_ipc_loan_end();

    if (ngx_ipc_check(name_len, data_len) != 0) {
        return -1;
    }

    if (ngx_ipc_check_id(id) != 0) {
        ngx_ipc_counters_data.refused_no_worker++;
        return -1;
    }

    ngx_ipc_out_init(&out, name, name_len, data, data_len);
    out.lent = lent;
    rc = ngx_ipc_send_id(id, &out);

    return ngx_ipc_sent(ngx_ipc_count(rc, &out));
}


/*
 * One joined worker, taking turns over the ids (this worker only when no
 * other has joined).  Its pid, or -1.
 */

static int32_t  ngx_ipc_any_next;

int32_t
ngx_ipc_send_any(const char *name, size_t name_len, const char *data,
    size_t data_len)
{
    int            rc;
    int32_t        i, id, count, holder;
    ngx_ipc_out_t  out;

    (void) ngx_ipc_loan_end();          /* no loan: it may go elsewhere */

    if (ngx_ipc_check(name_len, data_len) != 0) {
        return -1;
    }

    count = ngx_ipc_dir_count();
    holder = 0;
    id = -1;

    for (i = 0; i < count; i++) {
        id = (ngx_ipc_any_next + i) % count;

        if (id != ngx_ipc_dir_id()) {
            holder = ngx_ipc_names_holder(id);
            if (holder > 0) {
                break;
            }
        }
    }

    if (holder > 0) {
        ngx_ipc_any_next = id + 1;

    } else if (ngx_ipc_dir_id() >= 0) {
        id = ngx_ipc_dir_id();
        holder = ngx_ipc_self;

    } else {
        ngx_ipc_counters_data.refused_no_worker++;
        ngx_ipc_set_error("no worker has joined yet");
        return -1;
    }

    ngx_ipc_out_init(&out, name, name_len, data, data_len);
    rc = ngx_ipc_send_id(id, &out);

    return ngx_ipc_count(rc, &out) == 0 ? holder : -1;
}


/* the worker id of a joined worker's pid, or -1 */

int32_t
ngx_ipc_worker_id(int32_t pid)
{
    size_t                 i, n;
    int                    pass;
    const ngx_ipc_name_t  *names;

    if (pid == ngx_ipc_self) {
        return ngx_ipc_dir_id();
    }

    /* a worker that joined this very turn may not be in the list yet */

    for (pass = 0; pass < 2; pass++) {
        names = ngx_ipc_dir_names(&n);

        for (i = 0; i < n; i++) {
            if (names[i].pid == pid) {
                return names[i].id;
            }
        }

        ngx_ipc_pipe_watch_event();
    }

    return -1;
}


/*
 * The joined processes without a worker id, after the workers (id -1): in
 * nginx, the privileged agent (its pipe is named after its pid only), this
 * process included when it is the agent.
 */

static int
ngx_ipc_agents(int32_t *ids, int32_t *pids, int n, int k)
{
    size_t                 i, count;
    int32_t                pid;
    const ngx_ipc_name_t  *names;

    if (ngx_ipc_mode != NGX_IPC_MODE_NGINX) {
        return k;
    }

    names = ngx_ipc_dir_names(&count);

    for (i = 0; i < count; i++) {
        pid = names[i].pid;

        if (pid <= 0 || names[i].id >= 0
            || (pid != ngx_ipc_self && !ngx_ipc_proc_running(pid)))
        {
            continue;
        }

        if (k < n) {
            ids[k] = -1;
            pids[k] = pid;
        }

        k++;
    }

    return k;
}


/* the joined workers with an id, sorted by id, then the agent: how many
 * there are (at most n are stored) */

int
ngx_ipc_workers(int32_t *ids, int32_t *pids, int n)
{
    int32_t  id, count, pid;
    int      k;

    count = ngx_ipc_dir_count();
    k = 0;

    for (id = 0; id < count; id++) {
        pid = (id == ngx_ipc_dir_id()) ? ngx_ipc_self
                                       : ngx_ipc_names_holder(id);

        if (pid <= 0 || (pid != ngx_ipc_self && !ngx_ipc_proc_running(pid))) {
            continue;
        }

        if (k < n) {
            ids[k] = id;
            pids[k] = pid;
        }

        k++;
    }

    return ngx_ipc_agents(ids, pids, n, k);
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
    uint32_t               lent;
    size_t                 i, n;
    int32_t                id, count, pid;
    ngx_ipc_out_t          out;
    ngx_ipc_skipped_t      sk;
    const ngx_ipc_name_t  *names;

    lent = ngx_ipc_loan_end();

    if (ngx_ipc_check(name_len, data_len) != 0) {
        return -1;
    }

    ngx_ipc_out_init(&out, name, name_len, data, data_len);
    out.lent = lent;

    sk.len = 0;
    sk.n = 0;
    sk.text[0] = '\0';

    count = ngx_ipc_dir_count();

    ngx_ipc_fanout_begin();

    for (id = 0; id < count; id++) {
        if (id == ngx_ipc_dir_id()) {
            rc = ngx_ipc_count(ngx_ipc_deliver_self(&out), &out);
            pid = ngx_ipc_self;

        } else {
            rc = ngx_ipc_count(ngx_ipc_dest_deliver(-1 - id, &out), &out);
            pid = (rc == NGX_IPC_FULL) ? ngx_ipc_names_holder(id) : 0;
        }

        if (rc == NGX_IPC_FULL) {
            ngx_ipc_skip(&sk, pid, id);
        }
    }

    names = ngx_ipc_dir_names(&n);

    for (i = 0; i < n; i++) {
        pid = names[i].pid;

        if (pid <= 0 || names[i].id >= 0
            || (pid == ngx_ipc_self && ngx_ipc_dir_id() >= 0))
        {
            continue;                   /* reached by its worker id above */
        }

        rc = (pid == ngx_ipc_self) ? ngx_ipc_deliver_self(&out)
                                   : ngx_ipc_dest_deliver(pid, &out);

        /* a process that exited is skipped silently: it is no destination */

        if (ngx_ipc_count(rc, &out) == NGX_IPC_FULL) {
            ngx_ipc_skip(&sk, pid, -1);
        }
    }

    ngx_ipc_fanout_end();

    if (sk.n) {
        ngx_ipc_set_error("send backlog full for %zu worker(s): %s%s "
                          "(send_backlog is %" PRIu64 " bytes); the others "
                          "got the alert", sk.n, sk.text,
                          sk.len >= sizeof(sk.text) ? "..." : "",
                          ngx_ipc_limits.send_backlog);
        return -1;
    }

    return ngx_ipc_loan_taken;
}


/* the destinations with bytes queued, by pid, at most n of them (a worker
 * id not joined yet as -1 - id) */

int
ngx_ipc_backlog(int32_t *pids, uint64_t *bytes, int n)
{
    int      i, k;
    int32_t  pid;

    k = ngx_ipc_dest_queued(pids, bytes, n);

    for (i = 0; i < k && i < n; i++) {
        if (pids[i] < 0) {
            pid = ngx_ipc_names_holder(-1 - pids[i]);
            pids[i] = pid ? pid : pids[i];
        }
    }

    return k;
}
