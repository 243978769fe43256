/*
 * ngx_ipc_proc.c: facts about processes, from kill(pid, 0) and /proc: is a
 * pid alive, running (not a zombie), a worker shutting down, a worker still
 * starting; when did a process start; which pid namespace is ours.
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


int
ngx_ipc_proc_alive(int32_t pid)
{
    return kill(pid, 0) == 0 || errno != ESRCH;
}


/*
 * /proc/<pid>/stat from its third field on ("state ppid ..."), in buf;
 * NULL when it cannot be read (errno set: ENOENT, the process is gone).
 * The second field, the command name in parentheses, may hold spaces and
 * parentheses itself, so it ends at the last ')'.
 */

static const char *
ngx_ipc_proc_stat(pid_t pid, char *buf, size_t size)
{
    int      fd;
    char     path[64], *p;
    ssize_t  n;

    (void) snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);

    fd = open(path, O_RDONLY|O_CLOEXEC);
    if (fd == -1) {
        return NULL;
    }

    n = read(fd, buf, size - 1);
    (void) close(fd);

    if (n <= 0) {
        errno = EIO;
        return NULL;
    }

    buf[n] = '\0';

    p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ') {
        errno = EIO;
        return NULL;
    }

    return p + 2;
}


/*
 * Alive and not a zombie: a worker killed with kill -9 stays a zombie until
 * the master reaps it, and kill(pid, 0) still succeeds meanwhile.
 */

int
ngx_ipc_proc_running(int32_t pid)
{
    char         buf[512];
    const char  *p;

    if (kill(pid, 0) == -1 && errno == ESRCH) {
        return 0;
    }

    p = ngx_ipc_proc_stat(pid, buf, sizeof(buf));
    if (p == NULL) {
        return errno != ENOENT;
    }

    return p[0] != 'Z' && p[0] != 'X';
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

int
ngx_ipc_proc_shutting_down(pid_t pid)
{
    char  buf[256];

    ngx_ipc_cmdline(pid, buf, sizeof(buf));

    return strstr(buf, "is shutting down") != NULL;
}


static pid_t
ngx_ipc_parent(pid_t pid)
{
    int          ppid;
    char         buf[1024];
    const char  *p;

    p = ngx_ipc_proc_stat(pid, buf, sizeof(buf));
    if (p == NULL || sscanf(p, "%*c %d", &ppid) != 1) {
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
ngx_ipc_proc_starting(int32_t pid, pid_t master)
{
    char  buf[64];

    if (master == 0 || ngx_ipc_parent(pid) != master) {
        return 0;
    }

    ngx_ipc_cmdline(pid, buf, sizeof(buf));

    return strncmp(buf, "nginx: master process", 21) == 0;
}


int
ngx_ipc_proc_start_time(pid_t pid, uint64_t *start)
{
    int          field;
    char         buf[1024], *end;
    const char  *p;

    p = ngx_ipc_proc_stat(pid, buf, sizeof(buf));
    if (p == NULL) {
        return -1;
    }

    /* p is at field 3; starttime is field 22 */

    for (field = 3; *p && field < 22; p++) {
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


uint64_t
ngx_ipc_proc_pidns(void)
{
    struct stat  st;

    if (stat("/proc/self/ns/pid", &st) == -1) {
        return 0;
    }

    return (uint64_t) st.st_ino;
}


/*
 * From /proc/<pid>/status: the effective uid and gid, and whether the
 * process has unblocked its signals (SigBlk 0).  nginx forks its children
 * with the master's signals blocked, and a worker unblocks them in its
 * init after it has taken its user (or, as root with user root, kept it).
 */

static int
ngx_ipc_proc_status(pid_t pid, uid_t *uid, gid_t *gid, int *settled)
{
    int                 fd, found;
    char                path[64], buf[4096], *line;
    ssize_t             n;
    unsigned long       u, g;
    unsigned long long  blk;

    (void) snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);

    fd = open(path, O_RDONLY|O_CLOEXEC);
    if (fd == -1) {
        return -1;
    }

    n = read(fd, buf, sizeof(buf) - 1);
    (void) close(fd);

    if (n <= 0) {
        return -1;
    }

    buf[n] = '\0';
    found = 0;

    for (line = buf; line && *line; line = strchr(line, '\n')) {
        if (*line == '\n') {
            line++;
        }

        if (sscanf(line, "Uid: %*u %lu", &u) == 1) {
            *uid = (uid_t) u;
            found |= 1;

        } else if (sscanf(line, "Gid: %*u %lu", &g) == 1) {
            *gid = (gid_t) g;
            found |= 2;

        } else if (sscanf(line, "SigBlk: %llx", &blk) == 1) {
            *settled = blk == 0;
            found |= 4;
        }
    }

    return found == 7 ? 0 : -1;
}


/*
 * The user nginx's workers (and cache processes) run as, for the privileged
 * agent, which keeps the master's: the effective uid of a child of master
 * that is not an agent and has left root, or root once a child settled
 * without leaving it (user root).  -1 while no child shows either yet.
 */

int
ngx_ipc_proc_workers_user(pid_t master, uid_t *uid, gid_t *gid)
{
    int             settled, root;
    DIR            *dir;
    pid_t           pid;
    uid_t           u;
    gid_t           g;
    char            buf[64];
    struct dirent  *de;

    dir = opendir("/proc");
    if (dir == NULL) {
        return -1;
    }

    root = 0;

    while ((de = readdir(dir)) != NULL) {
        pid = (pid_t) atoi(de->d_name);

        if (pid <= 0 || pid == getpid() || ngx_ipc_parent(pid) != master) {
            continue;
        }

        ngx_ipc_cmdline(pid, buf, sizeof(buf));

        if (strstr(buf, "privileged agent") != NULL
            || ngx_ipc_proc_status(pid, &u, &g, &settled) != 0)
        {
            continue;
        }

        if (u != 0) {
            (void) closedir(dir);
            *uid = u;
            *gid = g;
            return 0;
        }

        root |= settled;
    }

    (void) closedir(dir);

    if (root) {
        *uid = 0;
        *gid = 0;
        return 0;
    }

    return -1;
}
