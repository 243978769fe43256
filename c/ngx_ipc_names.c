/*
 * ngx_ipc_names.c: the instance's workers as the pipe directory names them:
 * each live pid with the worker id whose pipe it is, and the worker ids no
 * live pid holds.  Read with readdir, cached until an inotify watch on the
 * directory reports a change.  Also opens the pipe a destination writes to.
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


/* what a scan found: a FIFO name and the pipe (inode) behind it */

typedef struct {
    int32_t          pid;           /* > 0: "<pid>"; 0: "w<id>" */
    int32_t          id;
    uint64_t         ino;
} ngx_ipc_found_t;

typedef struct {
    int              ino_fd;        /* inotify on the instance, or -1 */
    int              scanned;
    int              watched;       /* ino_fd has a read event in nginx */
    uint32_t         generation;    /* of the scan */
    ngx_ipc_name_t  *names;         /* the scan's result */
    size_t           nnames;
} ngx_ipc_names_t;


static ngx_ipc_names_t  ngx_ipc_n = { .ino_fd = -1 };


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
                    ngx_ipc_dir_fd());

    if (inotify_add_watch(fd, path, IN_CREATE|IN_DELETE|IN_MOVED_FROM
                                    |IN_MOVED_TO|IN_ONLYDIR)
        == -1)
    {
        (void) close(fd);
        return;
    }

    ngx_ipc_n.ino_fd = fd;
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
        n = read(ngx_ipc_n.ino_fd, buf, sizeof(buf));

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
 * Destinations.  key > 0: the worker whose pid it is, through its pid's
 * name, write-only (its death shows as EPIPE).  key < 0: worker id
 * -1 - key, through w<id>, created if need be and held open both ways, so
 * that what is written waits there for whichever worker holds that id.
 * On failure: -1, the error set, *gone telling "no such worker" apart.
 */

int
ngx_ipc_names_open(int32_t key, int event, int *gone)
{
    int          fd, err, flags;
    char         name[NGX_IPC_NAME_SIZE];
    struct stat  st;

    *gone = 0;

    if (key < 0) {
        ngx_ipc_name_id(name, -1 - key);

        if (ngx_ipc_dir_mkfifo(name) == -1 && errno != EEXIST)
        {
            ngx_ipc_set_error("cannot create the pipe of worker id %" PRId32
                              ": %s", -1 - key, strerror(errno));
            return -1;
        }

        flags = event ? NGX_IPC_OPEN_WRITE : NGX_IPC_OPEN_HOLD;

    } else {
        ngx_ipc_name_pid(name, key, "");
        flags = NGX_IPC_OPEN_WRITE;
    }

    fd = openat(ngx_ipc_dir_fd(), name, flags);

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
                (void) unlinkat(ngx_ipc_dir_fd(), name, 0);
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
    if (!ngx_ipc_n.scanned || ngx_ipc_n.ino_fd == -1) {
        return 1;
    }

    if (ngx_ipc_n.watched) {
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

    dir = ngx_ipc_opendir(ngx_ipc_dir_fd());
    if (dir == NULL) {
        return -1;
    }

    found = NULL;
    n = 0;
    cap = 0;

    while ((de = readdir(dir)) != NULL) {
        kind = ngx_ipc_name_parse(de->d_name, &num);

        if (kind != 'p' && kind != 'w') {
            continue;
        }

        if (fstatat(ngx_ipc_dir_fd(), de->d_name, &st, AT_SYMLINK_NOFOLLOW)
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

    names = realloc(ngx_ipc_n.names, (n ? n : 1) * sizeof(ngx_ipc_name_t));
    if (names == NULL) {
        free(found);
        return -1;
    }

    ngx_ipc_n.names = names;
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
            if (!ngx_ipc_proc_alive(names[k].pid)) {
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

    ngx_ipc_n.nnames = k;
    ngx_ipc_n.scanned = 1;
    ngx_ipc_n.generation++;

    return 0;
}


/* the names as of the last change (rescanned first when there was one) */

const ngx_ipc_name_t *
ngx_ipc_dir_names(size_t *n)
{
    if (ngx_ipc_list_changed()) {
        (void) ngx_ipc_scan();      /* on failure: the last list */
    }

    *n = ngx_ipc_n.nnames;
    return ngx_ipc_n.names;
}


/* changes whenever a scan brought a new list */

uint32_t
ngx_ipc_dir_generation(void)
{
    if (ngx_ipc_list_changed()) {
        (void) ngx_ipc_scan();
    }

    return ngx_ipc_n.generation;
}


/*
 * nginx mode: the watch is registered for its read event, whose handler
 * marks the list stale, so a send makes no system call to learn that
 * nothing changed.  A pipe that appears during a turn is seen from the next.
 */

int
ngx_ipc_pipe_watch_fd(void)
{
    return ngx_ipc_n.ino_fd;
}


void
ngx_ipc_pipe_watched(void)
{
    ngx_ipc_n.watched = 1;
}


void
ngx_ipc_pipe_watch_event(void)
{
    if (ngx_ipc_n.ino_fd != -1 && ngx_ipc_watch_drain()) {
        ngx_ipc_n.scanned = 0;
    }
}


void
ngx_ipc_names_start(void)
{
    ngx_ipc_watch();
    ngx_ipc_n.scanned = 0;
    ngx_ipc_n.watched = 0;
}


void
ngx_ipc_names_stop(void)
{
    ngx_ipc_close(&ngx_ipc_n.ino_fd);
}


/* the pid that holds worker id "id" now, or 0 */

int32_t
ngx_ipc_names_holder(int32_t id)
{
    size_t                 i, n;
    const ngx_ipc_name_t  *names;

    names = ngx_ipc_dir_names(&n);

    for (i = 0; i < n; i++) {
        if (names[i].pid > 0 && names[i].id == id) {
            return names[i].pid;
        }
    }

    return 0;
}
