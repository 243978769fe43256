/*
 * ngx_ipc_dir.c: the pipe directory: its private root and instance
 * directories, this process's FIFO (joining), the names of pipes, and
 * clean-up of what gone processes and instances left.
 *
 *   /tmp/ngx_ipc.w<wire>.<euid>/               root, 0700, checked
 *       <pidns>-<master>-<start>-<cycle>/      instance, 0700, checked
 *           w<id>                              the FIFO of worker id <id>
 *           <pid>                              the same FIFO (a hard link)
 *                                              once that worker has joined
 *
 * A FIFO named after a worker id exists from the first alert anyone sends
 * to that id: senders create it and hold it open both ways, so what they
 * write waits in it until the worker joins, and a worker killed with
 * kill -9 leaves it (and what was on its way) to its replacement.  A process
 * without an id (standalone mode) has a FIFO named after its pid only.
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
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ngx_ipc_internal.h"






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
    int              atexit_set;
    char             inst[128];
    char             path[PATH_MAX];
} ngx_ipc_dir_t;


static ngx_ipc_dir_t  ngx_ipc_d = {
    .id = -1, .root_fd = -1, .inst_fd = -1, .rfd = -1, .wfd = -1
};


/*
 * Whose the directories and pipes are: this process's euid, except in the
 * privileged agent, which keeps root while the workers run as nginx's
 * "user": it joins their directory, and what it creates there it creates
 * as them (setfsuid: owner and permission checks as theirs, for that call
 * only), so a worker takes over a pipe the agent made and writes to the
 * agent's own.  A directory or pipe owned by anyone else is refused.
 */

static int    ngx_ipc_owner_set;
static uid_t  ngx_ipc_owner_uid;
static gid_t  ngx_ipc_owner_gid;


void
ngx_ipc_dir_owner(uid_t uid, gid_t gid)
{
    ngx_ipc_owner_set = uid != geteuid();
    ngx_ipc_owner_uid = uid;
    ngx_ipc_owner_gid = gid;
}


static uid_t
ngx_ipc_owner(void)
{
    return ngx_ipc_owner_set ? ngx_ipc_owner_uid : geteuid();
}


static void
ngx_ipc_as_owner(int on)
{
    if (!ngx_ipc_owner_set) {
        return;
    }

    if (on) {
        (void) setfsgid(ngx_ipc_owner_gid);
        (void) setfsuid(ngx_ipc_owner_uid);

    } else {
        (void) setfsuid(geteuid());
        (void) setfsgid(getegid());
    }
}


static int
ngx_ipc_mkdir(int at, const char *name)
{
    int  rc, err;

    ngx_ipc_as_owner(1);
    rc = mkdirat(at, name, 0700);
    err = errno;
    ngx_ipc_as_owner(0);

    errno = err;
    return rc;
}


/* a FIFO in the instance directory, 0600, the owner's */

int
ngx_ipc_dir_mkfifo(const char *name)
{
    int  rc, err;

    ngx_ipc_as_owner(1);
    rc = mkfifoat(ngx_ipc_d.inst_fd, name, 0600);
    err = errno;
    ngx_ipc_as_owner(0);

    errno = err;
    return rc;
}


/* names */

void
ngx_ipc_name_pid(char *buf, int32_t pid, const char *suffix)
{
    (void) snprintf(buf, NGX_IPC_NAME_SIZE, "%" PRId32 "%s", pid, suffix);
}


void
ngx_ipc_name_id(char *buf, int32_t id)
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

int
ngx_ipc_name_parse(const char *name, int32_t *n)
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



/* directories */

static int
ngx_ipc_open_dir(int at, const char *name, const char *path)
{
    int          fd, err;
    struct stat  st;

    if (ngx_ipc_mkdir(at, name) == -1 && errno != EEXIST) {
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

    if (st.st_uid != ngx_ipc_owner()) {
        ngx_ipc_set_error("ngx.ipc: %s is owned by uid %u, not by uid %u",
                          path, (unsigned) st.st_uid,
                          (unsigned) ngx_ipc_owner());
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


DIR *
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
        if (ngx_ipc_name_parse(de->d_name, &id) != 'w'
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
 * pid); with "old" given, also those of workers shutting down, after the
 * worker ids' pipes that are theirs.  In that order: a worker joining at
 * the same time either still sees such a worker's pid name (and finds its
 * pipe by it) or no longer sees the pipe under a worker id's name.
 */

static void
ngx_ipc_sweep_pipes(int dfd, int32_t self, ngx_ipc_old_t *old)
{
    int             kind, pass;
    DIR            *dir;
    int32_t         pid;
    struct stat     st;
    struct dirent  *de;

    for (pass = 0; pass < 2; pass++) {
        dir = ngx_ipc_opendir(dfd);
        if (dir == NULL) {
            return;
        }

        while ((de = readdir(dir)) != NULL) {
            kind = ngx_ipc_name_parse(de->d_name, &pid);

            if (kind != 'p' && kind != 'n') {
                continue;
            }

            if (pid == self || !ngx_ipc_proc_alive(pid)) {
                (void) unlinkat(dfd, de->d_name, 0);
                continue;
            }

            if (old == NULL || !ngx_ipc_proc_shutting_down(pid)) {
                continue;
            }

            if (pass == 0) {
                if (old->n < NGX_IPC_OLD_MAX
                    && fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW)
                       == 0)
                {
                    old->ino[old->n++] = (uint64_t) st.st_ino;
                }

            } else {
                (void) unlinkat(dfd, de->d_name, 0);
            }
        }

        (void) closedir(dir);

        if (old == NULL) {
            return;
        }

        if (pass == 0 && old->n) {
            ngx_ipc_sweep_old_ids(dfd, old);
        }
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
            kind = ngx_ipc_name_parse(de->d_name, &n);

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
            && ngx_ipc_proc_alive(mpid)
            && !(ngx_ipc_proc_start_time(mpid, &now) == 0 && now != estart))
        {
            continue;                       /* another live instance */
        }

        fd = openat(ngx_ipc_d.root_fd, de->d_name,
                    O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC);
        if (fd == -1) {
            continue;
        }

        ngx_ipc_sweep_pipes(fd, 0, 0);

        /*
         * Worker ids' pipes only where the master is gone: another
         * generation of ours may be a newer one whose first worker is
         * joining (its w<id> there, its pid's name not yet), and its last
         * worker to exit removes its directory itself.
         */

        if (mpid != master || estart != start) {
            ngx_ipc_sweep_mailboxes(fd);
        }

        (void) close(fd);

        /* fails (ENOTEMPTY) while live pipes remain */
        (void) unlinkat(ngx_ipc_d.root_fd, de->d_name, AT_REMOVEDIR);
    }

    (void) closedir(dir);
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

    if (!S_ISFIFO(st.st_mode) || st.st_uid != ngx_ipc_owner()) {
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

    ngx_ipc_name_pid(tmp, ngx_ipc_d.pid, ".new");
    ngx_ipc_name_pid(name, ngx_ipc_d.pid, "");

    if (ngx_ipc_dir_mkfifo(tmp) == -1) {
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

    ngx_ipc_name_id(name, ngx_ipc_d.id);
    ngx_ipc_name_pid(link, ngx_ipc_d.pid, "");

    if (ngx_ipc_dir_mkfifo(name) == -1 && errno != EEXIST) {
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
    ngx_ipc_hooks.flush();

    ngx_ipc_name_pid(name, ngx_ipc_d.pid, "");
    (void) unlinkat(ngx_ipc_d.inst_fd, name, 0);

    /* an exit (quit, reload) ends the worker id's pipe with it; kill -9
     * does not come here, and leaves it to the replacement */

    if (ngx_ipc_d.id >= 0) {
        ngx_ipc_name_id(name, ngx_ipc_d.id);

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
        (void) snprintf(root, sizeof(root), "/tmp/ngx_ipc.w%d.%u",
                        NGX_IPC_WIRE, (unsigned) ngx_ipc_owner());

        dp->root_fd = ngx_ipc_open_dir(AT_FDCWD, root, root);
        if (dp->root_fd == -1) {
            goto failed;
        }

        ns = ngx_ipc_proc_pidns();

        if (ngx_ipc_proc_start_time(master, &start) != 0) {
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


int
ngx_ipc_dir_fd(void)
{
    return ngx_ipc_d.inst_fd;
}


pid_t
ngx_ipc_dir_master(void)
{
    return ngx_ipc_d.master;
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
