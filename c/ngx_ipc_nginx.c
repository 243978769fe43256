/*
 * ngx_ipc_nginx.c: the nginx ABI, start-up, the read and write event
 * handlers, reading this process's pipe, the semaphore post, pausing
 * reads; the only file that knows nginx, and the top of the shim's layers.
 *
 * No nginx header is used: every nginx symbol is looked up with
 * dlsym(RTLD_DEFAULT, ...) and checked in ngx_ipc_start(), so the same
 * library loads in a plain LuaJIT process (ngx_ipc_start_standalone).
 * The layout facts relied on are listed in docs/internals.md.
 */

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>

#include "ngx_ipc_internal.h"


typedef intptr_t   ngx_ipc_int_t;              /* ngx_int_t */
typedef uintptr_t  ngx_ipc_uint_t;             /* ngx_uint_t */

typedef void (*ngx_ipc_handler_pt)(void *ev);
typedef ngx_ipc_int_t (*ngx_ipc_event_pt)(void *ev, ngx_ipc_int_t event,
    ngx_ipc_uint_t flags);
typedef ngx_ipc_int_t (*ngx_ipc_add_channel_pt)(void *cycle, int fd,
    ngx_ipc_int_t event, ngx_ipc_handler_pt handler);
typedef void (*ngx_ipc_close_pt)(void *c);

#define NGX_IPC_USE_EPOLL_EVENT   0x40
#define NGX_IPC_READ_EVENT_RDHUP  0x2001         /* EPOLLIN|EPOLLRDHUP */
#define NGX_IPC_READ_EVENT_PLAIN  0x1            /* EPOLLIN */
#define NGX_IPC_WRITE_EVENT       0x4            /* EPOLLOUT */

#define NGX_IPC_PROCESS_SINGLE    0
#define NGX_IPC_PROCESS_WORKER    3
#define NGX_IPC_PROCESS_HELPER    4      /* OpenResty's privileged agent */

/* how long the privileged agent waits for a worker to show its user */
#define NGX_IPC_OWNER_WAIT_MS     2000

/* offsets in ngx_event_t and ngx_connection_t (x86-64 and other LP64) */
#define NGX_IPC_EV_DATA           0
#define NGX_IPC_C_READ            8
#define NGX_IPC_C_FD              24

#define ngx_ipc_at(p, off, type)  (*(type *) ((u_char *) (p) + (off)))


typedef struct {
    void *volatile         *cycle;            /* &ngx_cycle */
    ngx_ipc_uint_t         *event_flags;
    void                   *event_actions;    /* struct of fn pointers */
    ngx_ipc_uint_t         *process;
    ngx_ipc_uint_t         *exiting;          /* optional */
    int                    *quit;             /* sig_atomic_t, optional */
    ngx_ipc_add_channel_pt  add_channel_event;
    ngx_ipc_close_pt        close_connection;
    ngx_ipc_int_t           read_event;
    int                     agent;            /* the privileged agent */
} ngx_ipc_abi_t;


static ngx_ipc_abi_t   ngx_ipc_abi;
static void           *ngx_ipc_read_ev;      /* known after the first event */

/*
 * The end of an event-loop turn: an eventfd is always writable, so its write
 * event, enabled when a send leaves packets in an obuf, fires at the next
 * epoll_wait, after everything this turn does; its handler writes them and
 * disables it again.
 */
static int             ngx_ipc_turn_fd = -1;
static void           *ngx_ipc_turn_ev;      /* known after the first event */
static int             ngx_ipc_turn_armed;


static void ngx_ipc_nginx_notify(void);


/* the ABI */

static void *
ngx_ipc_symbol(const char *name)
{
    void  *p;

    p = dlsym(RTLD_DEFAULT, name);
    if (p == NULL) {
        ngx_ipc_set_error("ngx.ipc: nginx symbol %s not found", name);
    }

    return p;
}


/* OpenResty's privileged agent: a helper process that runs Lua */

static int
ngx_ipc_privileged_agent(void)
{
    ngx_ipc_uint_t  *flag;

    flag = dlsym(RTLD_DEFAULT, "ngx_is_privileged_agent");

    return flag != NULL && *flag != 0;
}


/* the function that posts a Lua semaphore of "subsystem" (http, stream) */

static ngx_ipc_post_pt
ngx_ipc_sema_post(const char *subsystem)
{
    char  name[64];

    if (subsystem == NULL
        || (strcmp(subsystem, "http") != 0
            && strcmp(subsystem, "stream") != 0))
    {
        ngx_ipc_set_error("ngx.ipc: unknown subsystem \"%s\" (http or "
                          "stream)", subsystem ? subsystem : "(null)");
        return NULL;
    }

    (void) snprintf(name, sizeof(name), "ngx_%s_lua_ffi_sema_post",
                    subsystem);

    return (ngx_ipc_post_pt) ngx_ipc_symbol(name);
}


static int
ngx_ipc_resolve(ngx_ipc_abi_t *abi)
{
    if ((abi->cycle = ngx_ipc_symbol("ngx_cycle")) == NULL
        || (abi->event_flags = ngx_ipc_symbol("ngx_event_flags")) == NULL
        || (abi->event_actions = ngx_ipc_symbol("ngx_event_actions")) == NULL
        || (abi->process = ngx_ipc_symbol("ngx_process")) == NULL
        || (abi->add_channel_event = (ngx_ipc_add_channel_pt)
                ngx_ipc_symbol("ngx_add_channel_event")) == NULL
        || (abi->close_connection = (ngx_ipc_close_pt)
                ngx_ipc_symbol("ngx_close_connection")) == NULL)
    {
        return -1;
    }

    abi->exiting = dlsym(RTLD_DEFAULT, "ngx_exiting");
    abi->quit = dlsym(RTLD_DEFAULT, "ngx_quit");

    abi->read_event = dlsym(RTLD_DEFAULT, "ngx_use_epoll_rdhup")
                      ? NGX_IPC_READ_EVENT_RDHUP : NGX_IPC_READ_EVENT_PLAIN;

    if ((*abi->event_flags & NGX_IPC_USE_EPOLL_EVENT) == 0) {
        ngx_ipc_set_error("ngx.ipc needs the epoll event method");
        return -1;
    }

    abi->agent = *abi->process == NGX_IPC_PROCESS_HELPER
                 && ngx_ipc_privileged_agent();

    if (*abi->process != NGX_IPC_PROCESS_SINGLE
        && *abi->process != NGX_IPC_PROCESS_WORKER
        && !abi->agent)
    {
        ngx_ipc_set_error("ngx.ipc: only nginx worker processes and "
                          "OpenResty's privileged agent can use ngx.ipc");
        return -1;
    }

    if (*abi->cycle == NULL) {
        ngx_ipc_set_error("ngx.ipc: ngx_cycle is NULL");
        return -1;
    }

    return 0;
}


static ngx_ipc_event_pt
ngx_ipc_action(size_t off)
{
    return ngx_ipc_at(ngx_ipc_abi.event_actions, off, ngx_ipc_event_pt);
}


/* a worker that got QUIT: ngx_quit until its loop sees it, then ngx_exiting */

static int
ngx_ipc_nginx_exiting(void)
{
    if (ngx_ipc_mode != NGX_IPC_MODE_NGINX) {
        return 0;
    }

    return (ngx_ipc_abi.quit && *ngx_ipc_abi.quit)
           || (ngx_ipc_abi.exiting && *ngx_ipc_abi.exiting);
}


/* receiving */

static void
ngx_ipc_pause(void)
{
    if (ngx_ipc_mode == NGX_IPC_MODE_NGINX) {
        if (ngx_ipc_read_ev == NULL
            || ngx_ipc_action(8)(ngx_ipc_read_ev, ngx_ipc_abi.read_event, 0)
               != 0)
        {
            return;                      /* keep reading rather than stall */
        }
    }

    ngx_ipc_paused = 1;
}


static void
ngx_ipc_nginx_resume(void)
{
    if (ngx_ipc_mode == NGX_IPC_MODE_NGINX) {
        if (ngx_ipc_read_ev == NULL
            || ngx_ipc_action(0)(ngx_ipc_read_ev, ngx_ipc_abi.read_event, 0)
               != 0)
        {
            return;                      /* tried again at the next recv */
        }
    }

    ngx_ipc_paused = 0;
}


static void
ngx_ipc_nginx_drained(void)
{
    if (ngx_ipc_paused) {
        ngx_ipc_nginx_resume();
    }
}


/*
 * Reads up to "max" bytes from this process's pipe into the parser; stops
 * early when the pipe is empty or the ready queue is over the pause mark.
 * Returns the bytes read, or -1 with errno set.
 */

static ssize_t
ngx_ipc_read_pipe(size_t max)
{
    size_t    total, room;
    u_char   *p;
    ssize_t   n;

    total = 0;

    while (total < max && !ngx_ipc_ready_full()) {
        p = ngx_ipc_stream_room(&room);
        if (room > max - total) {
            room = max - total;
        }

        n = read(ngx_ipc_pipe_read_fd(), p, room);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                ngx_ipc_stream_emptied();
                break;
            }

            return -1;
        }

        if (n == 0) {
            break;
        }

        total += (size_t) n;
        ngx_ipc_stream_added((size_t) n);

        if ((size_t) n < room) {
            ngx_ipc_stream_emptied();  /* the pipe is empty: no EAGAIN read */
            break;
        }
    }

    return (ssize_t) total;
}


static void
ngx_ipc_receive(void)
{
    if (ngx_ipc_paused) {
        return;
    }

    if (ngx_ipc_read_pipe(NGX_IPC_READ_MAX) == -1) {
        ngx_ipc_set_error("ngx.ipc: read from own pipe failed: %s",
                          strerror(errno));
    }

    if (ngx_ipc_ready_full()) {
        ngx_ipc_pause();
    }
}


static void
ngx_ipc_read_handler(void *ev)
{
    void  *c;

    c = ngx_ipc_at(ev, NGX_IPC_EV_DATA, void *);

    if (ngx_ipc_read_ev == NULL) {

        /* first event: check the layout we rely on */

        if (ngx_ipc_at(c, NGX_IPC_C_READ, void *) != ev
            || ngx_ipc_at(c, NGX_IPC_C_FD, int) != ngx_ipc_pipe_read_fd())
        {
            (void) ngx_ipc_action(8)(ev, ngx_ipc_abi.read_event, 0);
            ngx_ipc_set_error("ngx.ipc: unexpected ngx_connection_t layout, "
                              "receiving stopped");
            return;
        }

        ngx_ipc_read_ev = ev;
    }

    ngx_ipc_receive();

    if (!ngx_ipc_ready_empty() || ngx_ipc_take_notice()) {
        ngx_ipc_nginx_notify();
    }
}


/*
 * Wakes the receive loops, each once until it has drained what is there for
 * it: the first one always (it also reports what was dropped), the others
 * when the ready queue has alerts they have not looked at.
 */

static void
ngx_ipc_nginx_notify(void)
{
    int  c, n;

    if (ngx_ipc_mode != NGX_IPC_MODE_NGINX) {
        return;
    }

    n = ngx_ipc_consumer_n();

    for (c = 0; c < n; c++) {
        if (c == 0 || ngx_ipc_ready_has(c)) {
            ngx_ipc_consumer_post(c);
        }
    }
}


/* sending: the end of the turn */

static void
ngx_ipc_turn_handler(void *ev)
{
    void  *c;

    c = ngx_ipc_at(ev, NGX_IPC_EV_DATA, void *);

    if (ngx_ipc_at(c, NGX_IPC_C_FD, int) != ngx_ipc_turn_fd) {
        return;                      /* cannot happen: the layout is checked */
    }

    ngx_ipc_turn_ev = ev;
    ngx_ipc_pipe_flush_dirty();

    if (ngx_ipc_action(8)(ev, NGX_IPC_WRITE_EVENT, 0) == 0) {
        ngx_ipc_turn_armed = 0;
    }
}


static void
ngx_ipc_nginx_arm_turn(void)
{
    if (ngx_ipc_mode != NGX_IPC_MODE_NGINX) {
        return;                      /* standalone: ngx_ipc_poll() flushes */
    }

    if (ngx_ipc_turn_armed) {
        return;
    }

    if (ngx_ipc_turn_ev == NULL
        || ngx_ipc_action(0)(ngx_ipc_turn_ev, NGX_IPC_WRITE_EVENT, 0) != 0)
    {
        ngx_ipc_pipe_flush_dirty();  /* no hook: write at once */
        return;
    }

    ngx_ipc_turn_armed = 1;
}


static void
ngx_ipc_turn_start(void)
{
    int  fd;

    fd = eventfd(0, EFD_NONBLOCK|EFD_CLOEXEC);
    if (fd == -1) {
        return;                      /* every send then writes at once */
    }

    /* registered enabled: the first event tells us the event's address */

    if (ngx_ipc_abi.add_channel_event(*ngx_ipc_abi.cycle, fd,
                                      NGX_IPC_WRITE_EVENT,
                                      ngx_ipc_turn_handler)
        != 0)
    {
        (void) close(fd);
        return;
    }

    ngx_ipc_turn_fd = fd;
    ngx_ipc_turn_armed = 1;
}


/* broadcast: the instance directory's inotify watch */

static void
ngx_ipc_watch_handler(void *ev)
{
    (void) ev;

    ngx_ipc_pipe_watch_event();
}


static void
ngx_ipc_watch_start(void)
{
    int  fd;

    fd = ngx_ipc_pipe_watch_fd();

    if (fd == -1
        || ngx_ipc_abi.add_channel_event(*ngx_ipc_abi.cycle, fd,
                                         ngx_ipc_abi.read_event,
                                         ngx_ipc_watch_handler)
           != 0)
    {
        return;                      /* each broadcast reads the watch */
    }

    ngx_ipc_pipe_watched();
}


/* sending: the write event of a destination whose pipe was full */

static void
ngx_ipc_write_handler(void *ev)
{
    int    fd;
    void  *c;

    c = ngx_ipc_at(ev, NGX_IPC_EV_DATA, void *);
    fd = ngx_ipc_at(c, NGX_IPC_C_FD, int);

    /* closes fd and so removes it from epoll */
    ngx_ipc_abi.close_connection(c);

    ngx_ipc_pipe_write_event(fd);
}


static int
ngx_ipc_nginx_add_write_event(int fd)
{
    if (ngx_ipc_abi.add_channel_event(*ngx_ipc_abi.cycle, fd,
                                      NGX_IPC_WRITE_EVENT,
                                      ngx_ipc_write_handler)
        != 0)
    {
        return -1;
    }

    return 0;
}


/* bytes wait in this process's pipe */

static int
ngx_ipc_nginx_unread(void)
{
    int  n;

    if (ioctl(ngx_ipc_pipe_read_fd(), FIONREAD, &n) == -1) {
        return 1;                          /* unknown: assume there are */
    }

    return n > 0;
}


/* how the lower layers reach this file (ngx_ipc_core.c) */

static void
ngx_ipc_set_hooks(void)
{
    ngx_ipc_hooks.add_write_event = ngx_ipc_nginx_add_write_event;
    ngx_ipc_hooks.arm_turn = ngx_ipc_nginx_arm_turn;
    ngx_ipc_hooks.notify = ngx_ipc_nginx_notify;
    ngx_ipc_hooks.exiting = ngx_ipc_nginx_exiting;
    ngx_ipc_hooks.drained = ngx_ipc_nginx_drained;
    ngx_ipc_hooks.resume = ngx_ipc_nginx_resume;
    ngx_ipc_hooks.flush = ngx_ipc_pipe_flush_dirty;
    ngx_ipc_hooks.unread = ngx_ipc_nginx_unread;
}


/* the FFI surface */

int
ngx_ipc_configure(uint64_t send_backlog, uint64_t receive_backlog)
{
    /* 0 keeps the current value */

    if ((send_backlog && send_backlog < NGX_IPC_BACKLOG_MIN)
        || (receive_backlog && receive_backlog < NGX_IPC_BACKLOG_MIN))
    {
        ngx_ipc_set_error("ngx.ipc: a backlog below %" PRIu64 " bytes",
                          NGX_IPC_BACKLOG_MIN);
        return -1;
    }

    if (send_backlog) {
        ngx_ipc_limits.send_backlog = send_backlog;
    }

    if (receive_backlog) {
        ngx_ipc_limits.receive_backlog = receive_backlog;
    }

    /* a larger receive backlog may unpause reading at once */

    if (ngx_ipc_paused && !ngx_ipc_ready_full()) {
        ngx_ipc_nginx_resume();
    }

    return 0;
}


/*
 * The privileged agent keeps the master's user (root) while the workers
 * run as nginx's "user": it joins the workers' directory and makes what it
 * creates theirs (ngx_ipc_dir_owner).  Their user is read from a worker's
 * /proc status; a worker shows it from its first instructions on, so the
 * agent, forked after the workers, seldom waits.
 */

static int
ngx_ipc_agent_owner(pid_t master)
{
    int              ms;
    uid_t            uid;
    gid_t            gid;
    struct timespec  ts;

    if (geteuid() != 0) {
        return 0;                        /* nginx never changes it then */
    }

    ts.tv_sec = 0;
    ts.tv_nsec = 1000000;

    for (ms = 0; ms < NGX_IPC_OWNER_WAIT_MS; ms++) {
        if (ngx_ipc_proc_workers_user(master, &uid, &gid) == 0) {
            ngx_ipc_dir_owner(uid, gid);
            return 0;
        }

        (void) nanosleep(&ts, NULL);
    }

    ngx_ipc_set_error("ngx.ipc: the privileged agent cannot tell which user "
                      "the workers of master %d run as", (int) master);
    return -1;
}


/* another Lua VM of this process (stream after http): a consumer more */

static int
ngx_ipc_start_consumer(void *sema, ngx_ipc_post_pt post)
{
    int  c;

    c = ngx_ipc_consumer_add(sema, post);
    if (c > 0) {
        ngx_ipc_ready_join(c);
    }

    return c;
}


int
ngx_ipc_start(void *sema, const char *subsystem, int32_t id, int32_t count)
{
    pid_t            master;
    ngx_ipc_abi_t    abi;
    ngx_ipc_post_pt  post;

    if (sema == NULL) {
        ngx_ipc_set_error("ngx.ipc: no semaphore");
        return -1;
    }

    if (ngx_ipc_mode == NGX_IPC_MODE_STANDALONE) {
        ngx_ipc_set_error("ngx.ipc: already started standalone");
        return -1;
    }

    post = ngx_ipc_sema_post(subsystem);
    if (post == NULL) {
        return -1;
    }

    if (ngx_ipc_mode == NGX_IPC_MODE_NGINX) {
        return ngx_ipc_start_consumer(sema, post);
    }

    memset(&abi, 0, sizeof(abi));

    if (ngx_ipc_resolve(&abi) != 0) {
        return -1;
    }

    /* with master_process off this process stands for the master */

    master = (*abi.process == NGX_IPC_PROCESS_SINGLE) ? getpid() : getppid();

    if (abi.agent && ngx_ipc_agent_owner(master) != 0) {
        return -1;
    }

    ngx_ipc_set_hooks();

    if (ngx_ipc_pipe_start(NULL, (int32_t) getpid(), id, count, master,
                           (uintptr_t) *abi.cycle)
        != 0)
    {
        return -1;
    }

    ngx_ipc_names_start();

    ngx_ipc_abi = abi;

    if (abi.add_channel_event(*abi.cycle, ngx_ipc_pipe_read_fd(),
                              abi.read_event, ngx_ipc_read_handler)
        != 0)
    {
        ngx_ipc_names_stop();
        ngx_ipc_pipe_stop();
        ngx_ipc_set_error("ngx.ipc: cannot add the pipe's read event "
                          "(worker_connections exhausted?)");
        return -1;
    }

    ngx_ipc_mode = NGX_IPC_MODE_NGINX;
    ngx_ipc_turn_start();
    ngx_ipc_watch_start();

    return ngx_ipc_start_consumer(sema, post);
}


int
ngx_ipc_start_standalone(const char *dir, int32_t pid)
{
    if (ngx_ipc_mode != NGX_IPC_MODE_NONE) {
        if (ngx_ipc_mode == NGX_IPC_MODE_STANDALONE
            && ngx_ipc_pipe_started_as(dir, pid))
        {
            return 0;
        }

        ngx_ipc_set_error("ngx.ipc: already started in %s", ngx_ipc_dir());
        return -1;
    }

    if (dir == NULL || dir[0] == '\0' || pid <= 0) {
        ngx_ipc_set_error("ngx.ipc: bad directory or pid");
        return -1;
    }

    ngx_ipc_set_hooks();

    if (ngx_ipc_pipe_start(dir, pid, -1, 0, 0, 0) != 0) {
        return -1;
    }

    ngx_ipc_names_start();
    ngx_ipc_mode = NGX_IPC_MODE_STANDALONE;

    return 0;
}


/* what the event handlers do, by hand: flush queues, read own pipe */

int
ngx_ipc_poll(void)
{
    if (ngx_ipc_mode == NGX_IPC_MODE_NONE) {
        ngx_ipc_set_error("ngx.ipc is not started");
        return -1;
    }

    ngx_ipc_pipe_flush_dirty();
    ngx_ipc_pipe_flush_all();
    ngx_ipc_receive();

    return 0;
}
