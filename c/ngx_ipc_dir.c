/*
 * ngx_ipc_dir.c: the pipe directory.  Its private root and instance
 * directories, this process's FIFO, the names of the instance's workers
 * (scanned, and watched with inotify), the facts about processes the names
 * stand for, and clean-up.
 *
 *   /tmp/ngx_ipc.<euid>/                       root, 0700, checked
 *       <pidns>-<master>-<start>-<cycle>/      instance, 0700, checked
 *           w<id>                              the FIFO of worker id <id>
 *           <pid>                              the same FIFO (a hard link)
 *                                              once that worker has joined
 *
 * A FIFO named after a worker id exists from the first alert anyone sends
 * to that id: senders create it and hold it open both ways, so what they
 * write waits in it until the worker joins, and a worker killed with
 * kill -9 leaves it (and what was on its way) to its replacement.  A worker
 * without an id (standalone mode, the privileged agent) has a FIFO named
 * after its pid only.  Everything below the root is reached with *at()
 * calls and O_NOFOLLOW.  Nothing here sends or parses: ngx_ipc_dest.c
 * opens destinations through ngx_ipc_dir_open().
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
#include <unistd.h>

#include "ngx_ipc_internal.h"


#define NGX_IPC_NAME_SIZE    32             /* "<pid>.new", "w<id>" */

#define NGX_IPC_OPEN_WRITE   (O_WRONLY|O_NONBLOCK|O_CLOEXEC|O_NOFOLLOW)
#define NGX_IPC_OPEN_HOLD    (O_RDWR|O_NONBLOCK|O_CLOEXEC|O_NOFOLLOW)


/* what a scan found: a FIFO name and the pipe (inode) behind it */

typedef struct {
    int32_t          pid;           /* > 0: "<pid>"; 0: "w<id>" */
    int32_t          id;
    uint64_t         ino;
} ngx_ipc_found_t;

typedef struct {
    int32_t          pid;           /* identity */
    int32_t          id;            /* worker id, -1: none */
    int32_t          count;         /* workers of the generation, 0: unknown */
    pid_t            master;        /* 0 in standalone mode */
    pid_t            os_pid;        /* getpid() at start, for atexit */
    uint64_t         ino;           /* own FIFO */
    int              root_fd;       /* -1 in standalone mode */
    int              inst_fd;
    int              rfd;           /* own read end */
    int              wfd;           /* own write end */
    int              ino_fd;        /* inotify on the instance, or -1 */
    int              atexit_set;
    int              scanned;
    int              watched;       /* ino_fd has a read event in nginx */
    uint32_t         generation;    /* of the scan */
    ngx_ipc_name_t  *names;         /* the scan's result */
    size_t           nnames;
    size_t           names_cap;
    char             inst[128];
    char             path[PATH_MAX];
} ngx_ipc_dir_t;


static ngx_ipc_dir_t  ngx_ipc_d = {
    .id = -1, .root_fd = -1, .inst_fd = -1, .rfd = -1, .wfd = -1,
    .ino_fd = -1
};


/* names */

static void
ngx_ipc_pid_name(char *buf, int32_t pid, const char *suffix)
{
    (void) snprintf(buf, NGX_IPC_NAME_SIZE, "%" PRId32 "%s", pid, suffix);
}


static void
ngx_ipc_mailbox_name(char *buf, int32_t id)
{
    (void) snprintf(buf, NGX_IPC_NAME_SIZE, "w%" PRId32, id);
}


/* digits only, no leading zero, at most INT32_MAX; returns the end */

static const char *
ngx_ipc_parse_number(const char *p, int32_t *out)
{
    int64_t      n;
    const char  *start;

    n = 0;
    start = p;

    for ( /* void */ ; *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (*p - '0');
        if (n > INT32_MAX) {
            return NULL;
        }
    }

    if (p == start || (*start == '0' && p - start > 1)) {
        return NULL;
    }

    *out = (int32_t) n;
    return p;
}


/*
 * "<pid>" (kind 'p'), "<pid>.new" ('n', a FIFO being set up) or "w<id>"
 * ('w'); 0 for any other name.
 */

static int
ngx_ipc_parse_name(const char *name, int32_t *n)
{
    const char  *p;

    if (name[0] == 'w') {
        p = ngx_ipc_parse_number(name + 1, n);
        return (p && *p == '\0') ? 'w' : 0;
    }

    p = ngx_ipc_parse_number(name, n);

    if (p == NULL || *n == 0) {
        return 0;
    }

    if (*p == '\0') {
        return 'p';
    }

    return strcmp(p, ".new") == 0 ? 'n' : 0;
}


/* processes */

int
ngx_ipc_dir_alive(int32_t pid)
{
    return kill(pid, 0) == 0 || errno != ESRCH;
}


/*
 * Alive and not a zombie: a worker killed with kill -9 stays a zombie until
 * the master reaps it, and kill(pid, 0) still succeeds meanwhile.
 */

int
ngx_ipc_dir_running(int32_t pid)
{
    int      fd;
    char     path[64], buf[512], *p;
    ssize_t  n;

    if (kill(pid, 0) == -1 && errno == ESRCH) {
        return 0;
    }

    (void) snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);

    fd = open(path, O_RDONLY|O_CLOEXEC);
    if (fd == -1) {
        return errno != ENOENT;
    }

    n = read(fd, buf, sizeof(buf) - 1);
    (void) close(fd);

    if (n <= 0) {
        return 1;
    }

    buf[n] = '\0';

    /* "pid (comm) state ...": comm ends at the last ')' */

    p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ') {
        return 1;
    }

    return p[2] != 'Z' && p[2] != 'X';
}


/* the start of /proc/<pid>/cmdline, NULs as spaces; "" when unreadable */

static void
ngx_ipc_cmdline(pid_t pid, char *buf, size_t size)
{
    int      fd;
    char     path[64];
    ssize_t  n, i;

    buf[0] = '\0';

    (void) snprintf(path, sizeof(path), "/proc/%d/cmdline", (int) pid);

    fd = open(path, O_RDONLY|O_CLOEXEC);
    if (fd == -1) {
        return;
    }

    n = read(fd, buf, size - 1);
    (void) close(fd);

    if (n <= 0) {
        return;
    }

    for (i = 0; i < n; i++) {
        if (buf[i] == '\0') {
            buf[i] = ' ';
        }
    }

    buf[n] = '\0';
}


/*
 * nginx retitles a worker that got QUIT (a reload or a quit) "worker process
 * is shutting down".  Such a worker belongs to an older generation even when
 * its instance directory is ours: nginx may give a later cycle the address
 * of a freed earlier one, while that cycle's workers are still finishing.
 */

static int
ngx_ipc_shutting_down(pid_t pid)
{
    char  buf[256];

    ngx_ipc_cmdline(pid, buf, sizeof(buf));

    return strstr(buf, "is shutting down") != NULL;
}


static pid_t
ngx_ipc_parent(pid_t pid)
{
    int      fd, ppid;
    char     path[64], buf[1024], *p;
    ssize_t  n;

    (void) snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);

    fd = open(path, O_RDONLY|O_CLOEXEC);
    if (fd == -1) {
        return 0;
    }

    n = read(fd, buf, sizeof(buf) - 1);
    (void) close(fd);

    if (n <= 0) {
        return 0;
    }

    buf[n] = '\0';

    /* "pid (comm) state ppid ...": comm ends at the last ')' */

    p = strrchr(buf, ')');
    if (p == NULL || sscanf(p + 1, " %*c %d", &ppid) != 1) {
        return 0;
    }

    return (pid_t) ppid;
}


/*
 * A worker nginx has forked that has not finished its init_worker yet: a
 * child of our master that still carries the master's title (nginx sets
 * "worker process" only after init_worker).  Another generation's workers,
 * and the cache processes, are retitled before they could join.
 */

int
ngx_ipc_dir_starting(int32_t pid)
{
    char  buf[64];

    if (ngx_ipc_d.master == 0 || ngx_ipc_d.count == 0
        || ngx_ipc_parent(pid) != ngx_ipc_d.master)
    {
        return 0;
    }

    ngx_ipc_cmdline(pid, buf, sizeof(buf));

    return strncmp(buf, "nginx: master process", 21) == 0;
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



/* clean-up of names whose process is gone */

#define NGX_IPC_OLD_MAX  256

typedef struct {
    uint64_t  ino[NGX_IPC_OLD_MAX];
    size_t    n;
} ngx_ipc_old_t;


/*
 * The worker ids' pipes that are pipes of workers shutting down: an older
 * generation's, in a directory a later generation shares.  Removed, so that
 * no sender of ours writes into them and no worker of ours takes them over.
 */

static void
ngx_ipc_sweep_old_ids(int dfd, const ngx_ipc_old_t *old)
{
    DIR            *dir;
    size_t          i;
    int32_t         id;
    struct stat     st;
    struct dirent  *de;

    dir = ngx_ipc_opendir(dfd);
    if (dir == NULL) {
        return;
    }

    while ((de = readdir(dir)) != NULL) {
        if (ngx_ipc_parse_name(de->d_name, &id) != 'w'
            || fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
        {
            continue;
        }

        for (i = 0; i < old->n; i++) {
            if (old->ino[i] == (uint64_t) st.st_ino) {
                (void) unlinkat(dfd, de->d_name, 0);
                break;
            }
        }
    }

    (void) closedir(dir);
}


/*
 * Removes the names of dead pids (and of "self": a previous holder of our
 * pid); with "old" given, also those of workers shutting down, whose pipes
 * (inodes) it collects: their w<id> names are not ours to take over.
 */

static void
ngx_ipc_sweep_pipes(int dfd, int32_t self, ngx_ipc_old_t *old)
{
    int             kind;
    DIR            *dir;
    int32_t         pid;
    struct stat     st;
    struct dirent  *de;

    dir = ngx_ipc_opendir(dfd);
    if (dir == NULL) {
        return;
    }

    while ((de = readdir(dir)) != NULL) {
        kind = ngx_ipc_parse_name(de->d_name, &pid);

        if (kind != 'p' && kind != 'n') {
            continue;
        }

        if (pid == self || !ngx_ipc_dir_alive(pid)) {
            (void) unlinkat(dfd, de->d_name, 0);
            continue;
        }

        if (old && ngx_ipc_shutting_down(pid)) {
            if (old->n < NGX_IPC_OLD_MAX
                && fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
            {
                old->ino[old->n++] = (uint64_t) st.st_ino;
            }

            (void) unlinkat(dfd, de->d_name, 0);
        }
    }

    (void) closedir(dir);

    if (old && old->n) {
        ngx_ipc_sweep_old_ids(dfd, old);
    }
}


/* in a directory of a gone instance: the w<id> names, once no pid's remain */

static void
ngx_ipc_sweep_mailboxes(int dfd)
{
    int             kind, pass;
    DIR            *dir;
    int32_t         n;
    struct dirent  *de;

    for (pass = 0; pass < 2; pass++) {
        dir = ngx_ipc_opendir(dfd);
        if (dir == NULL) {
            return;
        }

        while ((de = readdir(dir)) != NULL) {
            kind = ngx_ipc_parse_name(de->d_name, &n);

            if (pass == 0 && (kind == 'p' || kind == 'n')) {
                (void) closedir(dir);
                return;                     /* a live worker's name */
            }

            if (pass == 1 && kind == 'w') {
                (void) unlinkat(dfd, de->d_name, 0);
            }
        }

        (void) closedir(dir);
    }
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

    dir = ngx_ipc_opendir(ngx_ipc_d.root_fd);
    if (dir == NULL) {
        return;
    }

    while ((de = readdir(dir)) != NULL) {

        if (strcmp(de->d_name, ngx_ipc_d.inst) == 0) {
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
            && ngx_ipc_dir_alive(mpid)
            && !(ngx_ipc_start_time(mpid, &now) == 0 && now != estart))
        {
            continue;                       /* another live instance */
        }

        fd = openat(ngx_ipc_d.root_fd, de->d_name,
                    O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC);
        if (fd == -1) {
            continue;
        }

        ngx_ipc_sweep_pipes(fd, 0, 0);
        ngx_ipc_sweep_mailboxes(fd);
        (void) close(fd);

        /* fails (ENOTEMPTY) while live pipes remain */
        (void) unlinkat(ngx_ipc_d.root_fd, de->d_name, AT_REMOVEDIR);
    }

    (void) closedir(dir);
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
                    ngx_ipc_d.inst_fd);

    if (inotify_add_watch(fd, path, IN_CREATE|IN_DELETE|IN_MOVED_FROM
                                    |IN_MOVED_TO|IN_ONLYDIR)
        == -1)
    {
        (void) close(fd);
        return;
    }

    ngx_ipc_d.ino_fd = fd;
}

static void
ngx_ipc_close(int *fd)
{
    if (*fd != -1) {
        (void) close(*fd);
        *fd = -1;
    }
}

static int
ngx_ipc_watch_drain(void)
{
    char     buf[4096]
             __attribute__((aligned(__alignof__(struct inotify_event))));
    int      changed;
    ssize_t  n;

    changed = 0;

    for ( ;; ) {
        n = read(ngx_ipc_d.ino_fd, buf, sizeof(buf));

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
/* this process's FIFO */

/* opens the read end and the own write end (so it never sees EOF) of "name" */

static int
ngx_ipc_open_own(const char *name)
{
    int          rfd, wfd;
    struct stat  st;

    rfd = openat(ngx_ipc_d.inst_fd, name,
                 O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_NOFOLLOW);
    if (rfd == -1) {
        return -1;
    }

    if (fstat(rfd, &st) == -1) {
        goto failed;
    }

    if (!S_ISFIFO(st.st_mode) || st.st_uid != geteuid()) {
        errno = EINVAL;
        goto failed;
    }

    wfd = openat(ngx_ipc_d.inst_fd, name, NGX_IPC_OPEN_WRITE);
    if (wfd == -1) {
        goto failed;
    }

    /* best effort: the unprivileged maximum is usually 1 MiB */
    (void) fcntl(wfd, F_SETPIPE_SZ, NGX_IPC_PIPE_SIZE);

    ngx_ipc_d.rfd = rfd;
    ngx_ipc_d.wfd = wfd;
    ngx_ipc_d.ino = (uint64_t) st.st_ino;

    return 0;

failed:

    (void) close(rfd);
    return -1;
}


static void
ngx_ipc_close_own(void)
{
    ngx_ipc_close(&ngx_ipc_d.rfd);
    ngx_ipc_close(&ngx_ipc_d.wfd);
}


/* without a worker id: created as <pid>.new, opened, renamed to <pid> */

static int
ngx_ipc_make_fifo(void)
{
    int    err;
    char   tmp[NGX_IPC_NAME_SIZE], name[NGX_IPC_NAME_SIZE];

    ngx_ipc_pid_name(tmp, ngx_ipc_d.pid, ".new");
    ngx_ipc_pid_name(name, ngx_ipc_d.pid, "");

    if (mkfifoat(ngx_ipc_d.inst_fd, tmp, 0600) == -1) {
        err = errno;
        ngx_ipc_set_error("ngx.ipc: cannot create pipe %s/%s: %s",
                          ngx_ipc_d.path, tmp, strerror(err));
        errno = err;
        return -1;
    }

    if (ngx_ipc_open_own(tmp) != 0
        || renameat(ngx_ipc_d.inst_fd, tmp, ngx_ipc_d.inst_fd, name) == -1)
    {
        err = errno;
        ngx_ipc_set_error("ngx.ipc: cannot set up pipe %s/%s: %s",
                          ngx_ipc_d.path, tmp, strerror(err));
        ngx_ipc_close_own();
        (void) unlinkat(ngx_ipc_d.inst_fd, tmp, 0);
        errno = err;
        return -1;
    }

    return 0;
}


/*
 * With a worker id: the FIFO w<id> is taken over as it is (what senders
 * left in it is this worker's: held while it started, or on its way to the
 * worker it replaces), or created; then linked as <pid>, so a pipe under a
 * pid's name always has a reader.  (A w<id> of a worker shutting down, an
 * older generation's in a directory we share, was removed by the sweep.)
 */

static int
ngx_ipc_join_mailbox(void)
{
    int   err;
    char  name[NGX_IPC_NAME_SIZE], link[NGX_IPC_NAME_SIZE];

    ngx_ipc_mailbox_name(name, ngx_ipc_d.id);
    ngx_ipc_pid_name(link, ngx_ipc_d.pid, "");

    if (mkfifoat(ngx_ipc_d.inst_fd, name, 0600) == -1 && errno != EEXIST) {
        err = errno;
        ngx_ipc_set_error("ngx.ipc: cannot create pipe %s/%s: %s",
                          ngx_ipc_d.path, name, strerror(err));
        errno = err;
        return -1;
    }

    if (ngx_ipc_open_own(name) != 0) {
        err = errno;
        ngx_ipc_set_error("ngx.ipc: cannot open pipe %s/%s: %s",
                          ngx_ipc_d.path, name,
                          err == EINVAL ? "not a FIFO of this user"
                          : err == ELOOP ? "it is a symbolic link"
                          : strerror(err));
        errno = err;
        return -1;
    }

    (void) unlinkat(ngx_ipc_d.inst_fd, link, 0);       /* a leftover */

    if (linkat(ngx_ipc_d.inst_fd, name, ngx_ipc_d.inst_fd, link, 0) == -1) {
        err = errno;
        ngx_ipc_set_error("ngx.ipc: cannot link pipe %s/%s as %s: %s",
                          ngx_ipc_d.path, name, link, strerror(err));
        ngx_ipc_close_own();
        errno = err;
        return -1;
    }

    return 0;
}


static int
ngx_ipc_join(void)
{
    ngx_ipc_old_t  old;

    old.n = 0;
    ngx_ipc_sweep_pipes(ngx_ipc_d.inst_fd, ngx_ipc_d.pid, &old);

    if (ngx_ipc_d.id < 0) {
        return ngx_ipc_make_fifo();
    }

    return ngx_ipc_join_mailbox();
}


static void
ngx_ipc_pipe_exit(void)
{
    char         name[NGX_IPC_NAME_SIZE];
    struct stat  st;

    /* a forked child exiting must not take its parent's pipe along */

    if (ngx_ipc_d.rfd == -1 || getpid() != ngx_ipc_d.os_pid) {
        return;
    }

    /* what this turn packed and no turn's end will write now */
    ngx_ipc_pipe_flush_dirty();

    ngx_ipc_pid_name(name, ngx_ipc_d.pid, "");
    (void) unlinkat(ngx_ipc_d.inst_fd, name, 0);

    /* an exit (quit, reload) ends the worker id's pipe with it; kill -9
     * does not come here, and leaves it to the replacement */

    if (ngx_ipc_d.id >= 0) {
        ngx_ipc_mailbox_name(name, ngx_ipc_d.id);

        if (fstatat(ngx_ipc_d.inst_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0
            && (uint64_t) st.st_ino == ngx_ipc_d.ino)
        {
            (void) unlinkat(ngx_ipc_d.inst_fd, name, 0);
        }
    }

    /* the last one out removes the instance; ENOTEMPTY otherwise */

    if (ngx_ipc_d.root_fd != -1) {
        (void) unlinkat(ngx_ipc_d.root_fd, ngx_ipc_d.inst, AT_REMOVEDIR);

    } else {
        (void) rmdir(ngx_ipc_d.path);
    }
}


void
ngx_ipc_pipe_stop(void)
{
    ngx_ipc_pipe_exit();

    ngx_ipc_close_own();
    ngx_ipc_close(&ngx_ipc_d.ino_fd);
    ngx_ipc_close(&ngx_ipc_d.inst_fd);
    ngx_ipc_close(&ngx_ipc_d.root_fd);

    ngx_ipc_d.path[0] = '\0';
}


/*
 * dir != NULL: standalone, dir is the instance directory.
 * dir == NULL: nginx, the instance is derived from master and cycle.
 * id: the worker id, or -1; count: the generation's workers, or 0.
 */

int
ngx_ipc_pipe_start(const char *dir, int32_t pid, int32_t id, int32_t count,
    pid_t master, uintptr_t cycle)
{
    int             attempt;
    char            root[64];
    uint64_t        ns, start;
    ngx_ipc_dir_t  *dp;

    dp = &ngx_ipc_d;
    dp->pid = pid;
    dp->id = (id >= 0 && id < count) ? id : -1;
    dp->count = count > 0 ? count : 0;
    dp->master = master;
    dp->os_pid = getpid();
    ngx_ipc_self = pid;
    ns = 0;
    start = 0;

    if (dir) {
        if (strlen(dir) >= sizeof(dp->path)) {
            ngx_ipc_set_error("ngx.ipc: directory name too long");
            return -1;
        }

        (void) strcpy(dp->path, dir);
        dp->inst[0] = '\0';

        dp->inst_fd = ngx_ipc_open_dir(AT_FDCWD, dir, dir);
        if (dp->inst_fd == -1 || ngx_ipc_join() != 0) {
            goto failed;
        }

    } else {
        (void) snprintf(root, sizeof(root), "/tmp/ngx_ipc.%u",
                        (unsigned) geteuid());

        dp->root_fd = ngx_ipc_open_dir(AT_FDCWD, root, root);
        if (dp->root_fd == -1) {
            goto failed;
        }

        ns = ngx_ipc_pidns();

        if (ngx_ipc_start_time(master, &start) != 0) {
            ngx_ipc_set_error("ngx.ipc: cannot read the start time of "
                              "process %d: %s", (int) master,
                              strerror(errno));
            goto failed;
        }

        (void) snprintf(dp->inst, sizeof(dp->inst),
                        "%" PRIu64 "-%d-%" PRIu64 "-%" PRIxPTR,
                        ns, (int) master, start, cycle);
        if (snprintf(dp->path, sizeof(dp->path), "%s/%s", root, dp->inst)
            >= (int) sizeof(dp->path))
        {
            ngx_ipc_set_error("ngx.ipc: instance path too long");
            goto failed;
        }

        /* a departing last worker may remove the instance under us */

        for (attempt = 0; /* void */; attempt++) {
            dp->inst_fd = ngx_ipc_open_dir(dp->root_fd, dp->inst, dp->path);
            if (dp->inst_fd == -1) {
                goto failed;
            }

            if (ngx_ipc_join() == 0) {
                break;
            }

            if (errno != ENOENT || attempt == 2) {
                goto failed;
            }

            ngx_ipc_close(&dp->inst_fd);
        }

        ngx_ipc_sweep_instances(ns, master, start);
    }

    ngx_ipc_watch();
    dp->scanned = 0;
    dp->watched = 0;

    if (!dp->atexit_set) {
        if (atexit(ngx_ipc_pipe_exit) != 0) {
            ngx_ipc_set_error("ngx.ipc: atexit() failed");
            goto failed;
        }

        dp->atexit_set = 1;
    }

    return 0;

failed:

    ngx_ipc_pipe_stop();
    return -1;
}


int
ngx_ipc_pipe_read_fd(void)
{
    return ngx_ipc_d.rfd;
}


int
ngx_ipc_pipe_started_as(const char *dir, int32_t pid)
{
    return dir != NULL && pid == ngx_ipc_d.pid
           && strcmp(dir, ngx_ipc_d.path) == 0;
}


const char *
ngx_ipc_dir(void)
{
    return ngx_ipc_d.path;
}


int32_t
ngx_ipc_dir_pid(void)
{
    return ngx_ipc_d.pid;
}


int32_t
ngx_ipc_dir_id(void)
{
    return ngx_ipc_d.id;
}


int32_t
ngx_ipc_dir_count(void)
{
    return ngx_ipc_d.count;
}


/*
 * Destinations.  key > 0: the worker whose pid it is, through its pid's
 * name, write-only (its death shows as EPIPE).  key < 0: worker id
 * -1 - key, through w<id>, created if need be and held open both ways, so
 * that what is written waits there for whichever worker holds that id.
 * On failure: -1, the error set, *gone telling "no such worker" apart.
 */

int
ngx_ipc_dir_open(int32_t key, int event, int *gone)
{
    int          fd, err, flags;
    char         name[NGX_IPC_NAME_SIZE];
    struct stat  st;

    *gone = 0;

    if (key < 0) {
        ngx_ipc_mailbox_name(name, -1 - key);

        if (mkfifoat(ngx_ipc_d.inst_fd, name, 0600) == -1
            && errno != EEXIST)
        {
            ngx_ipc_set_error("cannot create the pipe of worker id %" PRId32
                              ": %s", -1 - key, strerror(errno));
            return -1;
        }

        flags = event ? NGX_IPC_OPEN_WRITE : NGX_IPC_OPEN_HOLD;

    } else {
        ngx_ipc_pid_name(name, key, "");
        flags = NGX_IPC_OPEN_WRITE;
    }

    fd = openat(ngx_ipc_d.inst_fd, name, flags);

    if (fd == -1) {
        err = errno;

        if (err == ENOENT) {
            *gone = 1;
            ngx_ipc_set_error("no such worker: %" PRId32, key);

        } else if (err == ENXIO) {
            /* a FIFO without reader: its worker is gone (a worker id's
             * pipe stays: it waits for the replacement) */
            *gone = 1;
            if (key > 0) {
                (void) unlinkat(ngx_ipc_d.inst_fd, name, 0);
            }
            ngx_ipc_set_error("no such worker: %" PRId32 " (exited)", key);

        } else {
            ngx_ipc_set_error("cannot open the pipe %s: %s", name,
                              strerror(err));
        }

        return -1;
    }

    if (fstat(fd, &st) == -1 || !S_ISFIFO(st.st_mode)) {
        (void) close(fd);
        *gone = key > 0;
        ngx_ipc_set_error("no such worker: %s (not a pipe)", name);
        return -1;
    }

    if (key < 0 && !event) {
        (void) fcntl(fd, F_SETPIPE_SZ, NGX_IPC_PIPE_SIZE);
    }

    return fd;
}


/* the instance's names, listed by readdir, cached until inotify reports a
 * change */

static int
ngx_ipc_list_changed(void)
{
    if (!ngx_ipc_d.scanned || ngx_ipc_d.ino_fd == -1) {
        return 1;
    }

    if (ngx_ipc_d.watched) {
        return 0;
    }

    return ngx_ipc_watch_drain();
}


static int
ngx_ipc_found_add(ngx_ipc_found_t **found, size_t *n, size_t *cap,
    const ngx_ipc_found_t *f)
{
    size_t            c;
    ngx_ipc_found_t  *p;

    if (*n == *cap) {
        c = *cap ? *cap * 2 : 64;

        p = realloc(*found, c * sizeof(ngx_ipc_found_t));
        if (p == NULL) {
            return -1;
        }

        *found = p;
        *cap = c;
    }

    (*found)[(*n)++] = *f;

    return 0;
}


/*
 * The live workers' pid names, each with the worker id whose w<id> is the
 * same pipe (-1: none), and the worker ids whose w<id> no live pid shares
 * (pid 0): workers not joined yet, or killed and not replaced yet.
 */

static int
ngx_ipc_scan(void)
{
    int                kind;
    DIR               *dir;
    size_t             i, j, n, cap, k;
    int32_t            num;
    struct stat        st;
    struct dirent     *de;
    ngx_ipc_name_t    *names;
    ngx_ipc_found_t    f, *found;

    dir = ngx_ipc_opendir(ngx_ipc_d.inst_fd);
    if (dir == NULL) {
        return -1;
    }

    found = NULL;
    n = 0;
    cap = 0;

    while ((de = readdir(dir)) != NULL) {
        kind = ngx_ipc_parse_name(de->d_name, &num);

        if (kind != 'p' && kind != 'w') {
            continue;
        }

        if (fstatat(ngx_ipc_d.inst_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW)
            == -1 || !S_ISFIFO(st.st_mode))
        {
            continue;
        }

        f.pid = (kind == 'p') ? num : 0;
        f.id = (kind == 'w') ? num : -1;
        f.ino = (uint64_t) st.st_ino;

        if (ngx_ipc_found_add(&found, &n, &cap, &f) != 0) {
            break;
        }
    }

    (void) closedir(dir);

    names = realloc(ngx_ipc_d.names, (n ? n : 1) * sizeof(ngx_ipc_name_t));
    if (names == NULL) {
        free(found);
        return -1;
    }

    ngx_ipc_d.names = names;
    k = 0;

    for (i = 0; i < n; i++) {
        if (found[i].pid == 0) {
            continue;
        }

        names[k].pid = found[i].pid;
        names[k].id = -1;

        for (j = 0; j < n; j++) {
            if (found[j].pid == 0 && found[j].ino == found[i].ino) {
                names[k].id = found[j].id;
                break;
            }
        }

        /*
         * A killed worker's name stays linked to its id's pipe until its
         * replacement joins: it holds that id no more.  A pid without an
         * id is checked where it is written to (ENXIO, EPIPE), as tests
         * and tools use made-up pids for pipes they read themselves.
         */

        if (names[k].id >= 0) {
            if (!ngx_ipc_dir_alive(names[k].pid)) {
                continue;
            }

            found[j].ino = 0;                /* held by a live pid */
        }

        k++;
    }

    for (j = 0; j < n; j++) {
        if (found[j].pid == 0 && found[j].ino != 0) {
            names[k].pid = 0;
            names[k].id = found[j].id;
            k++;
        }
    }

    free(found);

    ngx_ipc_d.nnames = k;
    ngx_ipc_d.scanned = 1;
    ngx_ipc_d.generation++;

    return 0;
}


/* the names as of the last change (rescanned first when there was one) */

const ngx_ipc_name_t *
ngx_ipc_dir_names(size_t *n)
{
    if (ngx_ipc_list_changed()) {
        (void) ngx_ipc_scan();      /* on failure: the last list */
    }

    *n = ngx_ipc_d.nnames;
    return ngx_ipc_d.names;
}


/* changes whenever a scan brought a new list */

uint32_t
ngx_ipc_dir_generation(void)
{
    if (ngx_ipc_list_changed()) {
        (void) ngx_ipc_scan();
    }

    return ngx_ipc_d.generation;
}


/*
 * nginx mode: the watch is registered for its read event, whose handler
 * marks the list stale, so a send makes no system call to learn that
 * nothing changed.  A pipe that appears during a turn is seen from the next.
 */

int
ngx_ipc_pipe_watch_fd(void)
{
    return ngx_ipc_d.ino_fd;
}


void
ngx_ipc_pipe_watched(void)
{
    ngx_ipc_d.watched = 1;
}


void
ngx_ipc_pipe_watch_event(void)
{
    if (ngx_ipc_d.ino_fd != -1 && ngx_ipc_watch_drain()) {
        ngx_ipc_d.scanned = 0;
    }
}
