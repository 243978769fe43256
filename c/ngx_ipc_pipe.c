/*
 * ngx_ipc_pipe.c: the pipe directory, this process's FIFO, destinations
 * (cached write fds and send queues), send, broadcast and clean-up.
 *
 *   /tmp/ngx_ipc.<euid>/                       root, 0700, checked
 *       <pidns>-<master>-<start>-<cycle>/      instance, 0700, checked
 *           <pid>                              one FIFO per worker, 0600
 *
 * Everything below the root is reached with *at() calls and O_NOFOLLOW.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "ngx_ipc_internal.h"


#define NGX_IPC_DESTS        64             /* hash buckets */
#define NGX_IPC_NAME_SIZE    32             /* "<pid>.new" */

#define NGX_IPC_OPEN_WRITE   (O_WRONLY|O_NONBLOCK|O_CLOEXEC|O_NOFOLLOW)


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
    int32_t          pid;
    int              fd;            /* cached write fd, -1: not open */
    int              wfd;           /* write event fd, -1: not armed */
    int              dirty;         /* on the dirty list */
    uint32_t         oalerts;       /* alerts that started in obuf */
    size_t           olen;
    u_char           obuf[NGX_IPC_WRITE_MAX];
};

typedef struct {
    int32_t          pid;           /* identity */
    pid_t            os_pid;        /* getpid() at start, for atexit */
    int              root_fd;       /* -1 in standalone mode */
    int              inst_fd;
    int              rfd;           /* own read end */
    int              wfd;           /* own write end */
    int              ino_fd;        /* inotify on the instance, or -1 */
    int              atexit_set;
    int              scanned;
    int              watched;       /* ino_fd has a read event in nginx */
    int32_t         *pids;          /* broadcast list */
    size_t           npids;
    size_t           pids_cap;
    char             inst[128];
    char             path[PATH_MAX];
    ngx_ipc_dest_t  *dests[NGX_IPC_DESTS];
} ngx_ipc_pipe_t;


static ngx_ipc_pipe_t  ngx_ipc_pipe = {
    .root_fd = -1, .inst_fd = -1, .rfd = -1, .wfd = -1, .ino_fd = -1
};

static ngx_ipc_dest_t  *ngx_ipc_dirty;
static int64_t          ngx_ipc_lone_end;   /* see ngx_ipc_burst() */

static void ngx_ipc_dest_dirty(ngx_ipc_dest_t *d);
static int ngx_ipc_dest_put(ngx_ipc_dest_t *d, const ngx_ipc_packet_t *p,
    ngx_ipc_out_t *out, int counted);


/* names and processes */

static void
ngx_ipc_pipe_name(char *buf, int32_t pid, const char *suffix)
{
    (void) snprintf(buf, NGX_IPC_NAME_SIZE, "%" PRId32 "%s", pid, suffix);
}


/* "<pid>" or "<pid>.new" → pid, or -1 for any other name */

static int32_t
ngx_ipc_parse_pid(const char *name, int *tmp)
{
    int64_t      pid;
    const char  *p;

    pid = 0;

    for (p = name; *p >= '0' && *p <= '9'; p++) {
        pid = pid * 10 + (*p - '0');
        if (pid > INT32_MAX) {
            return -1;
        }
    }

    if (p == name || name[0] == '0') {
        return -1;
    }

    if (*p == '\0') {
        *tmp = 0;

    } else if (strcmp(p, ".new") == 0) {
        *tmp = 1;

    } else {
        return -1;
    }

    return (int32_t) pid;
}


static int
ngx_ipc_alive(pid_t pid)
{
    return kill(pid, 0) == 0 || errno != ESRCH;
}


static int
ngx_ipc_start_time(pid_t pid, uint64_t *start)
{
    int       fd, field;
    char      path[64], buf[1024], *p, *end;
    ssize_t   n;

    (void) snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);

    fd = open(path, O_RDONLY|O_CLOEXEC);
    if (fd == -1) {
        return -1;
    }

    n = read(fd, buf, sizeof(buf) - 1);
    (void) close(fd);

    if (n <= 0) {
        errno = EIO;
        return -1;
    }

    buf[n] = '\0';

    /* field 2 (comm) ends at the last ')'; starttime is field 22 */

    p = strrchr(buf, ')');
    if (p == NULL) {
        errno = EIO;
        return -1;
    }

    for (field = 2; *p && field < 22; p++) {
        if (*p == ' ') {
            field++;
        }
    }

    errno = 0;
    *start = strtoull(p, &end, 10);

    if (field != 22 || end == p || errno != 0) {
        errno = EIO;
        return -1;
    }

    return 0;
}


static uint64_t
ngx_ipc_pidns(void)
{
    struct stat  st;

    if (stat("/proc/self/ns/pid", &st) == -1) {
        return 0;
    }

    return (uint64_t) st.st_ino;
}


/* directories */

static int
ngx_ipc_open_dir(int at, const char *name, const char *path)
{
    int          fd, err;
    struct stat  st;

    if (mkdirat(at, name, 0700) == -1 && errno != EEXIST) {
        ngx_ipc_set_error("ngx.ipc: cannot create %s: %s",
                          path, strerror(errno));
        return -1;
    }

    /* O_DIRECTORY|O_NOFOLLOW says ENOTDIR for a symlink: name it first */

    if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) == 0
        && S_ISLNK(st.st_mode))
    {
        ngx_ipc_set_error("ngx.ipc: cannot open %s: it is a symbolic link",
                          path);
        errno = ELOOP;
        return -1;
    }

    fd = openat(at, name, O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC);

    if (fd == -1) {
        err = errno;
        ngx_ipc_set_error("ngx.ipc: cannot open %s: %s", path,
                          err == ELOOP ? "it is a symbolic link"
                          : err == ENOTDIR ? "it is not a directory"
                          : strerror(err));
        errno = err;
        return -1;
    }

    if (fstat(fd, &st) == -1) {
        ngx_ipc_set_error("ngx.ipc: cannot stat %s: %s",
                          path, strerror(errno));
        goto failed;
    }

    if (!S_ISDIR(st.st_mode)) {
        ngx_ipc_set_error("ngx.ipc: %s is not a directory", path);
        goto failed;
    }

    if (st.st_uid != geteuid()) {
        ngx_ipc_set_error("ngx.ipc: %s is owned by uid %u, not by uid %u",
                          path, (unsigned) st.st_uid, (unsigned) geteuid());
        goto failed;
    }

    if (st.st_mode & 077) {
        ngx_ipc_set_error("ngx.ipc: %s is open to group or others "
                          "(mode %04o, needs 0700)",
                          path, (unsigned) (st.st_mode & 07777));
        goto failed;
    }

    return fd;

failed:

    (void) close(fd);
    errno = EPERM;
    return -1;
}


static DIR *
ngx_ipc_opendir(int dfd)
{
    int   fd;
    DIR  *dir;

    fd = openat(dfd, ".", O_RDONLY|O_DIRECTORY|O_CLOEXEC);
    if (fd == -1) {
        return NULL;
    }

    dir = fdopendir(fd);
    if (dir == NULL) {
        (void) close(fd);
    }

    return dir;
}


/* removes pipes of dead processes (and of "self": a previous holder) */

/*
 * nginx retitles a worker that got QUIT (a reload or a quit) "worker process
 * is shutting down".  Such a worker belongs to an older generation even when
 * its instance directory is ours: nginx may give a later cycle the address
 * of a freed earlier one, while that cycle's workers are still finishing.
 */

static int
ngx_ipc_shutting_down(pid_t pid)
{
    int      fd;
    char     path[64], buf[256];
    ssize_t  n, i;

    (void) snprintf(path, sizeof(path), "/proc/%d/cmdline", (int) pid);

    fd = open(path, O_RDONLY|O_CLOEXEC);
    if (fd == -1) {
        return 0;
    }

    n = read(fd, buf, sizeof(buf) - 1);
    (void) close(fd);

    if (n <= 0) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (buf[i] == '\0') {
            buf[i] = ' ';
        }
    }

    buf[n] = '\0';

    return strstr(buf, "is shutting down") != NULL;
}


/* dead pids' pipes; with "older", also those of workers shutting down */

static void
ngx_ipc_sweep_pipes(int dfd, int32_t self, int older)
{
    int             tmp;
    DIR            *dir;
    int32_t         pid;
    struct dirent  *de;

    dir = ngx_ipc_opendir(dfd);
    if (dir == NULL) {
        return;
    }

    while ((de = readdir(dir)) != NULL) {
        pid = ngx_ipc_parse_pid(de->d_name, &tmp);

        if (pid > 0
            && (pid == self || !ngx_ipc_alive(pid)
                || (older && ngx_ipc_shutting_down(pid))))
        {
            (void) unlinkat(dfd, de->d_name, 0);
        }
    }

    (void) closedir(dir);
}


/*
 * Instances in our pid namespace whose master is gone (or whose pid now
 * belongs to another process), and older generations of our own master:
 * their dead pipes are removed, then the directory if that emptied it.
 */

static void
ngx_ipc_sweep_instances(uint64_t ns, pid_t master, uint64_t start)
{
    int             fd, n, mpid;
    DIR            *dir;
    uint64_t        ens, estart, now;
    uintptr_t       ecycle;
    struct dirent  *de;

    dir = ngx_ipc_opendir(ngx_ipc_pipe.root_fd);
    if (dir == NULL) {
        return;
    }

    while ((de = readdir(dir)) != NULL) {

        if (strcmp(de->d_name, ngx_ipc_pipe.inst) == 0) {
            continue;
        }

        n = 0;
        if (sscanf(de->d_name, "%" SCNu64 "-%d-%" SCNu64 "-%" SCNxPTR "%n",
                   &ens, &mpid, &estart, &ecycle, &n) != 4
            || de->d_name[n] != '\0'
            || ens != ns
            || mpid <= 0)
        {
            continue;
        }

        if (!(mpid == master && estart == start)
            && ngx_ipc_alive(mpid)
            && !(ngx_ipc_start_time(mpid, &now) == 0 && now != estart))
        {
            continue;                       /* another live instance */
        }

        fd = openat(ngx_ipc_pipe.root_fd, de->d_name,
                    O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC);
        if (fd == -1) {
            continue;
        }

        ngx_ipc_sweep_pipes(fd, 0, 0);
        (void) close(fd);

        /* fails (ENOTEMPTY) while live pipes remain */
        (void) unlinkat(ngx_ipc_pipe.root_fd, de->d_name, AT_REMOVEDIR);
    }

    (void) closedir(dir);
}


/* own FIFO: created as <pid>.new, opened both ways, renamed to <pid> */

static int
ngx_ipc_make_fifo(void)
{
    int    rfd, wfd, err;
    char   tmp[NGX_IPC_NAME_SIZE], name[NGX_IPC_NAME_SIZE];
    struct stat  st;

    ngx_ipc_pipe_name(tmp, ngx_ipc_pipe.pid, ".new");
    ngx_ipc_pipe_name(name, ngx_ipc_pipe.pid, "");

    rfd = -1;
    wfd = -1;

    if (mkfifoat(ngx_ipc_pipe.inst_fd, tmp, 0600) == -1) {
        err = errno;
        ngx_ipc_set_error("ngx.ipc: cannot create pipe %s/%s: %s",
                          ngx_ipc_pipe.path, tmp, strerror(err));
        errno = err;
        return -1;
    }

    rfd = openat(ngx_ipc_pipe.inst_fd, tmp,
                 O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_NOFOLLOW);
    if (rfd == -1) {
        goto failed;
    }

    if (fstat(rfd, &st) == -1) {
        goto failed;
    }

    if (!S_ISFIFO(st.st_mode)) {
        errno = EINVAL;
        goto failed;
    }

    wfd = openat(ngx_ipc_pipe.inst_fd, tmp, NGX_IPC_OPEN_WRITE);
    if (wfd == -1) {
        goto failed;
    }

    /* best effort: the unprivileged maximum is usually 1 MiB */
    (void) fcntl(wfd, F_SETPIPE_SZ, NGX_IPC_PIPE_SIZE);

    if (renameat(ngx_ipc_pipe.inst_fd, tmp, ngx_ipc_pipe.inst_fd, name)
        == -1)
    {
        goto failed;
    }

    ngx_ipc_pipe.rfd = rfd;
    ngx_ipc_pipe.wfd = wfd;

    return 0;

failed:

    err = errno;

    ngx_ipc_set_error("ngx.ipc: cannot set up pipe %s/%s: %s",
                      ngx_ipc_pipe.path, tmp, strerror(err));

    if (rfd != -1) {
        (void) close(rfd);
    }

    if (wfd != -1) {
        (void) close(wfd);
    }

    (void) unlinkat(ngx_ipc_pipe.inst_fd, tmp, 0);

    errno = err;
    return -1;
}


static void
ngx_ipc_watch(void)
{
    int   fd;
    char  path[64];

    fd = inotify_init1(IN_NONBLOCK|IN_CLOEXEC);
    if (fd == -1) {
        return;                 /* no inotify: rescan at every broadcast */
    }

    /* the directory we hold open, whatever its path now names */
    (void) snprintf(path, sizeof(path), "/proc/self/fd/%d",
                    ngx_ipc_pipe.inst_fd);

    if (inotify_add_watch(fd, path, IN_CREATE|IN_DELETE|IN_MOVED_FROM
                                    |IN_MOVED_TO|IN_ONLYDIR)
        == -1)
    {
        (void) close(fd);
        return;
    }

    ngx_ipc_pipe.ino_fd = fd;
}


static void
ngx_ipc_close(int *fd)
{
    if (*fd != -1) {
        (void) close(*fd);
        *fd = -1;
    }
}


static void
ngx_ipc_pipe_exit(void)
{
    char  name[NGX_IPC_NAME_SIZE];

    /* a forked child exiting must not take its parent's pipe along */

    if (ngx_ipc_pipe.rfd == -1 || getpid() != ngx_ipc_pipe.os_pid) {
        return;
    }

    /* what this turn packed and no turn's end will write now */
    ngx_ipc_pipe_flush_dirty();

    ngx_ipc_pipe_name(name, ngx_ipc_pipe.pid, "");
    (void) unlinkat(ngx_ipc_pipe.inst_fd, name, 0);

    /* the last one out removes the instance; ENOTEMPTY otherwise */

    if (ngx_ipc_pipe.root_fd != -1) {
        (void) unlinkat(ngx_ipc_pipe.root_fd, ngx_ipc_pipe.inst,
                        AT_REMOVEDIR);

    } else {
        (void) rmdir(ngx_ipc_pipe.path);
    }
}


void
ngx_ipc_pipe_stop(void)
{
    ngx_ipc_pipe_exit();

    ngx_ipc_close(&ngx_ipc_pipe.rfd);
    ngx_ipc_close(&ngx_ipc_pipe.wfd);
    ngx_ipc_close(&ngx_ipc_pipe.ino_fd);
    ngx_ipc_close(&ngx_ipc_pipe.inst_fd);
    ngx_ipc_close(&ngx_ipc_pipe.root_fd);

    ngx_ipc_pipe.path[0] = '\0';
}


/*
 * dir != NULL: standalone, dir is the instance directory.
 * dir == NULL: nginx, the instance is derived from master and cycle.
 */

int
ngx_ipc_pipe_start(const char *dir, int32_t pid, pid_t master,
    uintptr_t cycle)
{
    int        attempt;
    char       root[64];
    uint64_t   ns, start;
    ngx_ipc_pipe_t  *pp;

    pp = &ngx_ipc_pipe;
    pp->pid = pid;
    pp->os_pid = getpid();
    ns = 0;
    start = 0;

    if (dir) {
        if (strlen(dir) >= sizeof(pp->path)) {
            ngx_ipc_set_error("ngx.ipc: directory name too long");
            return -1;
        }

        (void) strcpy(pp->path, dir);
        pp->inst[0] = '\0';

        pp->inst_fd = ngx_ipc_open_dir(AT_FDCWD, dir, dir);
        if (pp->inst_fd == -1) {
            goto failed;
        }

        ngx_ipc_sweep_pipes(pp->inst_fd, pid, 1);

        if (ngx_ipc_make_fifo() != 0) {
            goto failed;
        }

    } else {
        (void) snprintf(root, sizeof(root), "/tmp/ngx_ipc.%u",
                        (unsigned) geteuid());

        pp->root_fd = ngx_ipc_open_dir(AT_FDCWD, root, root);
        if (pp->root_fd == -1) {
            goto failed;
        }

        ns = ngx_ipc_pidns();

        if (ngx_ipc_start_time(master, &start) != 0) {
            ngx_ipc_set_error("ngx.ipc: cannot read the start time of "
                              "process %d: %s", (int) master,
                              strerror(errno));
            goto failed;
        }

        (void) snprintf(pp->inst, sizeof(pp->inst),
                        "%" PRIu64 "-%d-%" PRIu64 "-%" PRIxPTR,
                        ns, (int) master, start, cycle);
        if (snprintf(pp->path, sizeof(pp->path), "%s/%s", root, pp->inst)
            >= (int) sizeof(pp->path))
        {
            ngx_ipc_set_error("ngx.ipc: instance path too long");
            goto failed;
        }

        /* a departing last worker may remove the instance under us */

        for (attempt = 0; /* void */; attempt++) {
            pp->inst_fd = ngx_ipc_open_dir(pp->root_fd, pp->inst, pp->path);
            if (pp->inst_fd == -1) {
                goto failed;
            }

            ngx_ipc_sweep_pipes(pp->inst_fd, pid, 1);

            if (ngx_ipc_make_fifo() == 0) {
                break;
            }

            if (errno != ENOENT || attempt == 2) {
                goto failed;
            }

            ngx_ipc_close(&pp->inst_fd);
        }

        ngx_ipc_sweep_instances(ns, master, start);
    }

    ngx_ipc_watch();
    pp->scanned = 0;
    pp->watched = 0;

    if (!pp->atexit_set) {
        if (atexit(ngx_ipc_pipe_exit) != 0) {
            ngx_ipc_set_error("ngx.ipc: atexit() failed");
            goto failed;
        }

        pp->atexit_set = 1;
    }

    return 0;

failed:

    ngx_ipc_pipe_stop();
    return -1;
}


int
ngx_ipc_pipe_read_fd(void)
{
    return ngx_ipc_pipe.rfd;
}


int
ngx_ipc_pipe_started_as(const char *dir, int32_t pid)
{
    return dir != NULL && pid == ngx_ipc_pipe.pid
           && strcmp(dir, ngx_ipc_pipe.path) == 0;
}


const char *
ngx_ipc_dir(void)
{
    return ngx_ipc_pipe.path;
}


/* destinations */

static ngx_ipc_dest_t **
ngx_ipc_dest_slot(int32_t pid)
{
    ngx_ipc_dest_t  **p;

    p = &ngx_ipc_pipe.dests[(uint32_t) pid % NGX_IPC_DESTS];

    while (*p && (*p)->pid != pid) {
        p = &(*p)->next;
    }

    return p;
}


static ngx_ipc_dest_t *
ngx_ipc_dest_get(int32_t pid)
{
    ngx_ipc_dest_t  *d, **slot;

    slot = ngx_ipc_dest_slot(pid);

    if (*slot) {
        return *slot;
    }

    d = calloc(1, sizeof(ngx_ipc_dest_t));
    if (d == NULL) {
        return NULL;
    }

    d->pid = pid;
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

    slot = ngx_ipc_dest_slot(d->pid);
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


static int
ngx_ipc_dest_open(ngx_ipc_dest_t *d)
{
    int          fd, err;
    char         name[NGX_IPC_NAME_SIZE];
    struct stat  st;

    ngx_ipc_pipe_name(name, d->pid, "");

    fd = openat(ngx_ipc_pipe.inst_fd, name, NGX_IPC_OPEN_WRITE);

    if (fd == -1) {
        err = errno;

        if (err == ENOENT) {
            ngx_ipc_set_error("no such worker: %" PRId32, d->pid);

        } else if (err == ENXIO) {
            /* a FIFO without reader: its worker is gone */
            (void) unlinkat(ngx_ipc_pipe.inst_fd, name, 0);
            ngx_ipc_set_error("no such worker: %" PRId32 " (exited)", d->pid);

        } else {
            ngx_ipc_set_error("cannot open the pipe of worker %" PRId32
                              ": %s", d->pid, strerror(err));
        }

        return -1;
    }

    if (fstat(fd, &st) == -1 || !S_ISFIFO(st.st_mode)) {
        (void) close(fd);
        ngx_ipc_set_error("no such worker: %" PRId32 " (not a pipe)", d->pid);
        return -1;
    }

    d->fd = fd;

    return 0;
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
            ngx_ipc_set_error("short write to the pipe of worker %" PRId32,
                              d->pid);
            return NGX_IPC_FAILED;
        }

        if (errno == EINTR) {
            continue;
        }

        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 1;
        }

        if (errno == EPIPE) {
            ngx_ipc_set_error("no such worker: %" PRId32 " (exited)", d->pid);
            return NGX_IPC_GONE;
        }

        ngx_ipc_set_error("cannot write to the pipe of worker %" PRId32
                          ": %s", d->pid, strerror(errno));
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
                             ngx_ipc_pipe.pid, out);
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

    ngx_ipc_set_error("out of memory queueing %" PRIu64 " bytes for worker %"
                      PRId32, ngx_ipc_out_left(out) + added, d->pid);

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
    int   fd;
    char  name[NGX_IPC_NAME_SIZE];

    if (ngx_ipc_mode != NGX_IPC_MODE_NGINX || d->wfd != -1 || d->head == NULL)
    {
        return;
    }

    ngx_ipc_pipe_name(name, d->pid, "");

    /* its own open(): closing it is what takes it out of epoll */
    fd = openat(ngx_ipc_pipe.inst_fd, name, NGX_IPC_OPEN_WRITE);

    if (fd == -1) {
        if (errno == ENXIO || errno == ENOENT) {
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
        for (d = ngx_ipc_pipe.dests[i]; d; d = d->next) {

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
        for (d = ngx_ipc_pipe.dests[i]; d; d = next) {
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

    if (ngx_ipc_pipe.rfd == -1) {
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
        ngx_ipc_set_error("out of memory queueing %zu bytes for worker %"
                          PRId32, d->olen, d->pid);
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
    struct iovec  iov[4];

    n = 0;
    size = d->olen;

    if (d->olen) {
        iov[n].iov_base = d->obuf;
        iov[n++].iov_len = d->olen;
    }

    if (p) {
        iov[n].iov_base = (void *) &p->h;
        iov[n++].iov_len = NGX_IPC_HDR_SIZE;

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
            ngx_ipc_set_error("send backlog to %" PRId32 " is full "
                              "(send_backlog is %" PRIu64 " bytes)",
                              d->pid, ngx_ipc_limits.send_backlog);
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
        k = ngx_ipc_packet_next(&p, room, ngx_ipc_pipe.pid, &out);

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


static int
ngx_ipc_deliver(int32_t pid, const ngx_ipc_out_t *alert)
{
    int              rc;
    ngx_ipc_dest_t  *d;

    if (pid <= 0) {
        ngx_ipc_set_error("no such worker: %" PRId32, pid);
        rc = NGX_IPC_GONE;
        goto failed;
    }

    if (pid == ngx_ipc_pipe.pid) {

        /* to this very process: no pipe, no packets, no write */

        rc = ngx_ipc_local(pid, alert);
        if (rc != 0) {
            goto failed;
        }

        ngx_ipc_nginx_notify();         /* as the read event would */
        goto sent;
    }

    d = ngx_ipc_dest_get(pid);
    if (d == NULL) {
        ngx_ipc_set_error("out of memory");
        return NGX_IPC_FAILED;
    }

    if (d->fd == -1 && ngx_ipc_dest_open(d) != 0) {
        ngx_ipc_dest_release(d);
        rc = NGX_IPC_GONE;
        goto failed;
    }

    rc = ngx_ipc_deliver_to(d, alert);
    if (rc != 0) {
        goto failed;
    }

sent:

    ngx_ipc_counters_data.alerts_sent++;
    ngx_ipc_counters_data.bytes_sent += alert->total;

    return 0;

failed:

    if (rc == NGX_IPC_FULL) {
        ngx_ipc_counters_data.refused_backlog++;

    } else if (rc == NGX_IPC_GONE) {
        ngx_ipc_counters_data.refused_no_worker++;
    }

    return rc;
}


int
ngx_ipc_send(int32_t pid, const char *name, size_t name_len,
    const char *data, size_t data_len)
{
    ngx_ipc_out_t  out;

    if (ngx_ipc_check(name_len, data_len) != 0) {
        return -1;
    }

    ngx_ipc_out_init(&out, name, name_len, data, data_len);

    return ngx_ipc_deliver(pid, &out) == 0 ? 0 : -1;
}


/* broadcast: the instance's pipes, listed by readdir, cached until
 * inotify reports a change */

/* reads every pending inotify event; returns 1 if there was one (or an
 * error: then rescanning is the safe answer) */

static int
ngx_ipc_watch_drain(void)
{
    char     buf[4096]
             __attribute__((aligned(__alignof__(struct inotify_event))));
    int      changed;
    ssize_t  n;

    changed = 0;

    for ( ;; ) {
        n = read(ngx_ipc_pipe.ino_fd, buf, sizeof(buf));

        if (n > 0) {
            changed = 1;
            continue;
        }

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return changed;
        }

        return 1;
    }
}


/*
 * nginx mode: the watch is registered for its read event, whose handler
 * marks the list stale, so a broadcast makes no system call to learn that
 * nothing changed.  A pipe that appears during a turn is seen from the next.
 */

int
ngx_ipc_pipe_watch_fd(void)
{
    return ngx_ipc_pipe.ino_fd;
}


void
ngx_ipc_pipe_watched(void)
{
    ngx_ipc_pipe.watched = 1;
}


void
ngx_ipc_pipe_watch_event(void)
{
    if (ngx_ipc_pipe.ino_fd != -1 && ngx_ipc_watch_drain()) {
        ngx_ipc_pipe.scanned = 0;
    }
}


static int
ngx_ipc_list_changed(void)
{
    if (!ngx_ipc_pipe.scanned || ngx_ipc_pipe.ino_fd == -1) {
        return 1;
    }

    if (ngx_ipc_pipe.watched) {
        return 0;
    }

    return ngx_ipc_watch_drain();
}


static int
ngx_ipc_list_scan(void)
{
    int             tmp;
    DIR            *dir;
    size_t          cap;
    int32_t         pid, *p;
    struct dirent  *de;

    dir = ngx_ipc_opendir(ngx_ipc_pipe.inst_fd);
    if (dir == NULL) {
        return -1;
    }

    ngx_ipc_pipe.npids = 0;

    while ((de = readdir(dir)) != NULL) {
        pid = ngx_ipc_parse_pid(de->d_name, &tmp);

        if (pid <= 0 || tmp) {
            continue;
        }

        if (ngx_ipc_pipe.npids == ngx_ipc_pipe.pids_cap) {
            cap = ngx_ipc_pipe.pids_cap ? ngx_ipc_pipe.pids_cap * 2 : 64;

            p = realloc(ngx_ipc_pipe.pids, cap * sizeof(int32_t));
            if (p == NULL) {
                break;
            }

            ngx_ipc_pipe.pids = p;
            ngx_ipc_pipe.pids_cap = cap;
        }

        ngx_ipc_pipe.pids[ngx_ipc_pipe.npids++] = pid;
    }

    (void) closedir(dir);

    ngx_ipc_pipe.scanned = 1;

    return 0;
}


int
ngx_ipc_broadcast(const char *name, size_t name_len,
    const char *data, size_t data_len)
{
    int            n;
    char           skipped[256];
    size_t         i, len, nskipped;
    ngx_ipc_out_t  out;

    if (ngx_ipc_check(name_len, data_len) != 0) {
        return -1;
    }

    if (ngx_ipc_list_changed()) {
        (void) ngx_ipc_list_scan();      /* on failure: the last list */
    }

    ngx_ipc_out_init(&out, name, name_len, data, data_len);

    len = 0;
    nskipped = 0;
    skipped[0] = '\0';

    for (i = 0; i < ngx_ipc_pipe.npids; i++) {

        /* a worker that exited is skipped silently: it is no destination */

        if (ngx_ipc_deliver(ngx_ipc_pipe.pids[i], &out) != NGX_IPC_FULL) {
            continue;
        }

        nskipped++;

        if (len < sizeof(skipped)) {
            n = snprintf(skipped + len, sizeof(skipped) - len, "%s%" PRId32,
                         len ? ", " : "", ngx_ipc_pipe.pids[i]);
            len += n > 0 ? (size_t) n : 0;
        }

        if (len < sizeof(skipped) && ngx_ipc_pipe.pids[i] == ngx_ipc_pipe.pid) {

            /* its own copy skips the pipe: another cap refused it */

            n = snprintf(skipped + len, sizeof(skipped) - len,
                         " (this worker: receive_backlog is %" PRIu64
                         " bytes)", ngx_ipc_limits.receive_backlog);
            len += n > 0 ? (size_t) n : 0;
        }
    }

    if (nskipped) {
        ngx_ipc_set_error("send backlog full for %zu worker(s): %s%s "
                          "(send_backlog is %" PRIu64 " bytes); the others "
                          "got the alert", nskipped, skipped,
                          len >= sizeof(skipped) ? "..." : "",
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
        for (d = ngx_ipc_pipe.dests[i]; d; d = d->next) {
            if (d->queued == 0) {
                continue;
            }

            if (k < n) {
                pids[k] = d->pid;
                bytes[k] = d->queued;
            }

            k++;
        }
    }

    return k;
}
