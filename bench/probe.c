/*
 * bench/probe.c: what a bare pipe can do on this machine, the limits that
 * `make bench` compares ngx.ipc with (docs/performance.md).
 *
 *   probe stream MSG_SIZE SECONDS PIPE_SIZE [unpinned|pinned|split] [epoll]
 *       a writer process does one write() of MSG_SIZE bytes at a time for
 *       SECONDS; a reader process reads 64 KiB at a time until EOF.
 *       PIPE_SIZE 0 keeps the default capacity, otherwise F_SETPIPE_SZ.
 *       L1 = stream 26 ... (messages/s), L2 = stream 4096 ... (bytes/s);
 *       placement as for pingpong (default unpinned).  With "epoll" the
 *       reader waits in epoll_wait and reads a non-blocking pipe, as an
 *       event loop does; a pipe someone polls costs its writer a wake-up
 *       call on every write, not only on writes into an empty pipe.
 *
 *   probe pingpong MSG_SIZE ROUNDS pinned|unpinned|split [epoll]
 *       two processes bounce MSG_SIZE bytes over two pipes ROUNDS times
 *       (after ROUNDS/10 rounds of warm-up); "pinned" puts both on the
 *       first CPU of the current affinity mask, "split" each on its own
 *       (the first two), "unpinned" lets the scheduler choose.
 *       L3 = pingpong 26 ...  With "epoll" each side waits in epoll_wait
 *       (1 s timeout, as nginx with a timer pending) and then reads a
 *       non-blocking pipe, as an event loop does: what a hop costs any
 *       epoll-driven receiver, before its own work.
 *
 *   probe ring MSG_SIZE SECONDS RING_SIZE [unpinned|pinned|split]
 *       the same stream through a ring of RING_SIZE bytes in memory both
 *       processes share, instead of a pipe: the writer copies each message
 *       in and publishes it by moving the head; the reader copies it out
 *       (one copy each side, as write() and read() make).  Each side
 *       sleeps in epoll_wait on an eventfd only when the ring is empty
 *       (reader) or full (writer), and the other side rings that doorbell
 *       only when it finds the sleeper's flag set, which it clears: one
 *       doorbell per sleep.  The pipe's work without its one lock for both
 *       ends and without a wake-up call per write.  Counts the reader's
 *       doorbells and sleeps per message.
 *
 *   probe fanout MSG_SIZE ROUNDS RECEIVERS
 *       one process writes MSG_SIZE bytes to each of RECEIVERS processes
 *       (a pipe each, each waiting in epoll_wait) every 2 ms, ROUNDS times;
 *       each receiver takes the time from just before the first write to
 *       its read: p50/p99 over all of them.  What a broadcast to idle
 *       workers costs before any work of theirs (E1 publishes this way).
 *
 * Prints one line of JSON.  Exits non-zero when a byte went missing or a
 * system call failed.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


#define READ_SIZE  (64 * 1024)


static double
now(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


static void
die(const char *what)
{
    fprintf(stderr, "probe: %s: %s\n", what, strerror(errno));
    exit(2);
}


static void
write_all(int fd, const char *buf, size_t n)
{
    ssize_t  w;

    while (n) {
        w = write(fd, buf, n);
        if (w == -1) {
            if (errno == EINTR) {
                continue;
            }
            die("write");
        }
        buf += w;
        n -= (size_t) w;
    }
}


/*
 * Reads n bytes.  With an epoll fd (ep != -1) it reads as an event loop
 * does: wait for readiness, then read what the non-blocking pipe has.
 */

static int
read_all(int ep, int fd, char *buf, size_t n)
{
    ssize_t             r;
    struct epoll_event  e;

    while (n) {
        if (ep != -1 && epoll_wait(ep, &e, 1, 1000) == -1) {
            if (errno == EINTR) {
                continue;
            }
            die("epoll_wait");
        }

        r = read(fd, buf, n);
        if (r == -1) {
            if (errno == EINTR || (ep != -1 && errno == EAGAIN)) {
                continue;
            }
            die("read");
        }
        if (r == 0) {
            return -1;
        }
        buf += r;
        n -= (size_t) r;
    }

    return 0;
}


static int
poller(int fd)
{
    int                 ep;
    struct epoll_event  e;

    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1) {
        die("fcntl");
    }

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1) {
        die("epoll_create1");
    }

    memset(&e, 0, sizeof(e));
    e.events = EPOLLIN;
    e.data.fd = fd;

    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) == -1) {
        die("epoll_ctl");
    }

    return ep;
}


static int
set_pipe_size(int fd, long size)
{
    if (size > 0 && fcntl(fd, F_SETPIPE_SZ, (int) size) == -1) {
        die("F_SETPIPE_SZ");
    }

    return fcntl(fd, F_GETPIPE_SZ);
}


/* the n-th CPU (0-based) of this process's affinity mask, -1 if none */

static int
nth_cpu(int n)
{
    int        cpu;
    cpu_set_t  set;

    if (sched_getaffinity(0, sizeof(set), &set) == -1) {
        die("sched_getaffinity");
    }

    for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &set) && n-- == 0) {
            return cpu;
        }
    }

    return -1;
}


static void
pin(int cpu)
{
    cpu_set_t  set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);

    if (sched_setaffinity(0, sizeof(set), &set) == -1) {
        die("sched_setaffinity");
    }
}


/* placement: 0 unpinned, 1 pinned (both on one CPU), 2 split (one CPU each);
 * sets up the parent, returns the CPU the child must take (-1: none) */

static int
place(int mode, int *cpu, int *cpu2)
{
    *cpu = -1;
    *cpu2 = -1;

    if (mode == 1) {
        *cpu = nth_cpu(0);
        *cpu2 = *cpu;
        pin(*cpu);

    } else if (mode == 2) {
        *cpu = nth_cpu(0);
        *cpu2 = nth_cpu(1);
        if (*cpu2 == -1) {
            fprintf(stderr, "probe: split needs two CPUs\n");
            exit(2);
        }
    }

    return mode == 2 ? *cpu2 : -1;
}


/* fork(); the child takes child_cpu (-1: where the scheduler puts it) */

static pid_t
fork_placed(int child_cpu)
{
    pid_t  pid;

    pid = fork();
    if (pid == -1) {
        die("fork");
    }

    if (pid == 0 && child_cpu != -1) {
        pin(child_cpu);
    }

    return pid;
}


static const char *
mode_name(int mode)
{
    return mode == 1 ? "pinned" : mode == 2 ? "split" : "unpinned";
}


/* stream: writer child, reader parent */

typedef struct {
    double    t_start;
    uint64_t  writes;
} shared_t;


static int
stream(size_t msg, double seconds, long pipe_size, int mode, int polled)
{
    int        p[2], status, cap, cpu, cpu2, child_cpu, ep;
    char      *buf;
    pid_t      pid;
    double     t_end, dt, deadline;
    ssize_t    r;
    uint64_t   i, bytes, reads;
    shared_t  *sh;
    struct epoll_event  e;

    if (msg == 0 || msg > 65536) {
        fprintf(stderr, "probe: message size must be 1..65536\n");
        return 2;
    }

    sh = mmap(NULL, sizeof(shared_t), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        die("mmap");
    }

    if (pipe(p) == -1) {
        die("pipe");
    }

    cap = set_pipe_size(p[1], pipe_size);

    child_cpu = place(mode, &cpu, &cpu2);

    buf = malloc(READ_SIZE > msg ? READ_SIZE : msg);
    if (buf == NULL) {
        die("malloc");
    }

    pid = fork_placed(child_cpu);

    if (pid == 0) {
        (void) close(p[0]);
        memset(buf, 'x', msg);

        sh->t_start = now();
        deadline = sh->t_start + seconds;

        for (i = 1; ; i++) {
            write_all(p[1], buf, msg);

            if ((i & 1023) == 0 && now() >= deadline) {
                break;
            }
        }

        sh->writes = i;
        (void) close(p[1]);
        _exit(0);
    }

    if (mode == 2) {
        pin(cpu);
    }

    (void) close(p[1]);

    ep = polled ? poller(p[0]) : -1;

    bytes = 0;
    reads = 0;
    t_end = 0;

    for ( ;; ) {
        if (ep != -1 && epoll_wait(ep, &e, 1, 1000) == -1) {
            if (errno == EINTR) {
                continue;
            }
            die("epoll_wait");
        }

        r = read(p[0], buf, READ_SIZE);
        if (r == -1) {
            if (errno == EINTR || (ep != -1 && errno == EAGAIN)) {
                continue;
            }
            die("read");
        }
        if (r == 0) {
            break;
        }
        t_end = now();
        bytes += (uint64_t) r;
        reads++;
    }

    if (waitpid(pid, &status, 0) == -1) {
        die("waitpid");
    }

    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "probe: writer failed\n");
        return 2;
    }

    dt = t_end - sh->t_start;

    printf("{\"test\":\"stream\",\"mode\":\"%s\",\"epoll\":%s,\"msg_size\":%zu,"
           "\"pipe_size\":%d,"
           "\"messages\":%llu,\"bytes\":%llu,\"reads\":%llu,"
           "\"seconds\":%.6f,\"messages_per_s\":%.1f,\"bytes_per_s\":%.1f,"
           "\"complete\":%s}\n",
           mode_name(mode), polled ? "true" : "false", msg, cap,
           (unsigned long long) sh->writes,
           (unsigned long long) bytes, (unsigned long long) reads, dt,
           (double) sh->writes / dt, (double) bytes / dt,
           bytes == sh->writes * msg ? "true" : "false");

    return bytes == sh->writes * msg ? 0 : 1;
}


/* ring: writer child, reader parent, in shared memory */

typedef struct {
    _Alignas(64) _Atomic uint64_t  head;      /* bytes written, published */
    _Atomic int                    reader_sleeps;
    _Alignas(64) _Atomic uint64_t  tail;      /* bytes read, freed */
    _Atomic int                    writer_sleeps;
    _Alignas(64) _Atomic int       done;
    double                         t_start;
    uint64_t                       writes;
    uint64_t                       doorbells;
    uint64_t                       writer_waits;
    _Alignas(64) unsigned char     data[];
} ring_t;


static void
ring_bell(int fd)
{
    uint64_t  one = 1;

    if (write(fd, &one, sizeof(one)) != (ssize_t) sizeof(one)) {
        die("write eventfd");
    }
}


static void
ring_sleep(int ep, int fd)
{
    uint64_t            v;
    struct epoll_event  e;

    if (epoll_wait(ep, &e, 1, 1000) == -1 && errno != EINTR) {
        die("epoll_wait");
    }

    if (read(fd, &v, sizeof(v)) == -1 && errno != EAGAIN) {
        die("read eventfd");
    }
}


/* copies n bytes at position pos of the ring (size cap) to or from buf */

static void
ring_copy(unsigned char *ring, size_t cap, uint64_t pos, unsigned char *buf,
    size_t n, int in)
{
    size_t  off, first;

    off = (size_t) (pos % cap);
    first = cap - off < n ? cap - off : n;

    if (in) {
        memcpy(ring + off, buf, first);
        memcpy(ring, buf + first, n - first);

    } else {
        memcpy(buf, ring + off, first);
        memcpy(buf + first, ring, n - first);
    }
}


static int
ring(size_t msg, double seconds, size_t cap, int mode)
{
    int             rbell, wbell, rep, wep, status, cpu, cpu2, child_cpu;
    pid_t           pid;
    ring_t         *r;
    uint64_t        h, t, i, reads, sleeps, bytes;
    double          t_end, dt, deadline;
    unsigned char  *buf;

    if (msg == 0 || msg > 65536 || cap < 2 * msg || cap > (64u << 20)) {
        fprintf(stderr, "probe: message size 1..65536, ring 2 x that..64 MiB\n");
        return 2;
    }

    r = mmap(NULL, sizeof(ring_t) + cap, PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) {
        die("mmap");
    }

    rbell = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    wbell = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (rbell == -1 || wbell == -1) {
        die("eventfd");
    }

    buf = malloc(msg);
    if (buf == NULL) {
        die("malloc");
    }

    child_cpu = place(mode, &cpu, &cpu2);

    pid = fork_placed(child_cpu);

    if (pid == 0) {
        wep = poller(wbell);
        memset(buf, 'x', msg);

        r->t_start = now();
        deadline = r->t_start + seconds;
        h = 0;

        for (i = 1; ; i++) {
            while (h + msg - atomic_load(&r->tail) > cap) {
                /* full: say so, look again, then sleep until the reader rings */
                atomic_store(&r->writer_sleeps, 1);
                if (h + msg - atomic_load(&r->tail) > cap) {
                    r->writer_waits++;
                    ring_sleep(wep, wbell);
                }
                atomic_store(&r->writer_sleeps, 0);
            }

            ring_copy(r->data, cap, h, buf, msg, 1);
            h += msg;
            atomic_store(&r->head, h);

            /* one doorbell per sleep: whoever clears the flag rings */
            if (atomic_load(&r->reader_sleeps)
                && atomic_exchange(&r->reader_sleeps, 0))
            {
                r->doorbells++;
                ring_bell(rbell);
            }

            if ((i & 1023) == 0 && now() >= deadline) {
                break;
            }
        }

        r->writes = i;
        atomic_store(&r->done, 1);
        ring_bell(rbell);
        _exit(0);
    }

    if (mode == 2) {
        pin(cpu);
    }

    rep = poller(rbell);

    t = 0;
    reads = 0;
    sleeps = 0;
    t_end = 0;

    for ( ;; ) {
        h = atomic_load(&r->head);

        if (h == t) {
            if (atomic_load(&r->done) && atomic_load(&r->head) == t) {
                break;
            }

            /* empty: say so, look again (the writer may have published
             * before it saw the flag), then sleep until it rings */
            atomic_store(&r->reader_sleeps, 1);
            if (atomic_load(&r->head) == t && !atomic_load(&r->done)) {
                sleeps++;
                ring_sleep(rep, rbell);
            }
            atomic_store(&r->reader_sleeps, 0);
            continue;
        }

        while (t < h) {
            ring_copy(r->data, cap, t, buf, msg, 0);
            t += msg;
            reads++;
        }

        t_end = now();
        atomic_store(&r->tail, t);

        if (atomic_load(&r->writer_sleeps)
            && atomic_exchange(&r->writer_sleeps, 0))
        {
            ring_bell(wbell);
        }
    }

    if (waitpid(pid, &status, 0) == -1) {
        die("waitpid");
    }

    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "probe: writer failed\n");
        return 2;
    }

    bytes = t;
    dt = t_end - r->t_start;

    printf("{\"test\":\"ring\",\"mode\":\"%s\",\"msg_size\":%zu,"
           "\"ring_size\":%zu,\"messages\":%llu,\"bytes\":%llu,"
           "\"seconds\":%.6f,\"messages_per_s\":%.1f,\"bytes_per_s\":%.1f,"
           "\"doorbells_per_message\":%.4f,\"reader_sleeps_per_message\":%.4f,"
           "\"writer_waits_per_message\":%.4f,\"complete\":%s}\n",
           mode_name(mode), msg, cap, (unsigned long long) r->writes,
           (unsigned long long) bytes, dt,
           (double) r->writes / dt, (double) bytes / dt,
           (double) r->doorbells / (double) r->writes,
           (double) sleeps / (double) r->writes,
           (double) r->writer_waits / (double) r->writes,
           reads == r->writes && bytes == r->writes * msg ? "true" : "false");

    return reads == r->writes && bytes == r->writes * msg ? 0 : 1;
}


/* ping-pong: echo child, timing parent */

static int
cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


static double
pct(const double *sorted, size_t n, double q)
{
    return sorted[(size_t) (q * (double) (n - 1))];
}


/* mode: 0 unpinned, 1 pinned (one CPU), 2 split (one CPU each) */

static int
pingpong(size_t msg, long rounds, int mode, int polled)
{
    int        a[2], b[2], status, cpu, cpu2, ep;
    char      *buf;
    long       i, warm;
    pid_t      pid;
    double     t, sum, *rtt;

    if (msg == 0 || msg > 4096 || rounds < 1) {
        fprintf(stderr, "probe: message size 1..4096, rounds >= 1\n");
        return 2;
    }

    (void) place(mode, &cpu, &cpu2);

    if (pipe(a) == -1 || pipe(b) == -1) {
        die("pipe");
    }

    buf = malloc(msg);
    rtt = malloc(sizeof(double) * (size_t) rounds);
    if (buf == NULL || rtt == NULL) {
        die("malloc");
    }
    memset(buf, 'p', msg);

    warm = rounds / 10;

    pid = fork();
    if (pid == -1) {
        die("fork");
    }

    if (pid == 0) {
        if (mode == 2) {
            pin(cpu2);
        }

        (void) close(a[1]);
        (void) close(b[0]);

        ep = polled ? poller(a[0]) : -1;

        while (read_all(ep, a[0], buf, msg) == 0) {
            write_all(b[1], buf, msg);
        }

        _exit(0);
    }

    if (mode == 2) {
        pin(cpu);
    }

    (void) close(a[0]);
    (void) close(b[1]);

    ep = polled ? poller(b[0]) : -1;

    for (i = -warm; i < rounds; i++) {
        t = now();
        write_all(a[1], buf, msg);
        if (read_all(ep, b[0], buf, msg) != 0) {
            fprintf(stderr, "probe: echo process went away\n");
            return 2;
        }
        if (i >= 0) {
            rtt[i] = (now() - t) * 1e6;
        }
    }

    (void) close(a[1]);

    if (waitpid(pid, &status, 0) == -1) {
        die("waitpid");
    }

    sum = 0;
    for (i = 0; i < rounds; i++) {
        sum += rtt[i];
    }

    qsort(rtt, (size_t) rounds, sizeof(double), cmp_double);

    printf("{\"test\":\"pingpong\",\"msg_size\":%zu,\"rounds\":%ld,"
           "\"mode\":\"%s\",\"epoll\":%s,\"cpu\":%d,\"cpu2\":%d,\"p50_us\":%.2f,"
           "\"p99_us\":%.2f,\"min_us\":%.2f,\"mean_us\":%.2f,"
           "\"complete\":true}\n",
           msg, rounds, mode_name(mode), polled ? "true" : "false", cpu, cpu2,
           pct(rtt, (size_t) rounds, 0.50), pct(rtt, (size_t) rounds, 0.99),
           rtt[0], sum / (double) rounds);

    return 0;
}


/* fan-out: one writer, `receivers` reader children, every 2 ms */

#define FANOUT_MAX  64

static int
fanout(size_t msg, long rounds, int receivers)
{
    int        p[FANOUT_MAX][2], k, status, ep, failed;
    char      *buf;
    long       i, warm, n;
    pid_t      pid[FANOUT_MAX];
    double    *lat;
    struct timespec     gap;
    volatile double    *t0;
    volatile long      *round;

    if (msg == 0 || msg > 4096 || rounds < 1 || rounds > 1000000
        || receivers < 1 || receivers > FANOUT_MAX)
    {
        fprintf(stderr, "probe: message size 1..4096, rounds 1..1000000, "
                "receivers 1..%d\n", FANOUT_MAX);
        return 2;
    }

    warm = rounds / 10;
    n = rounds * receivers;

    /* the time of the round's first write, its number, then every latency */
    t0 = mmap(NULL, sizeof(double) * (size_t) (n + 2), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (t0 == MAP_FAILED) {
        die("mmap");
    }
    round = (volatile long *) &t0[1];
    lat = (double *) &t0[2];

    buf = malloc(msg);
    if (buf == NULL) {
        die("malloc");
    }
    memset(buf, 'f', msg);

    for (k = 0; k < receivers; k++) {
        if (pipe(p[k]) == -1) {
            die("pipe");
        }

        pid[k] = fork();
        if (pid[k] == -1) {
            die("fork");
        }

        if (pid[k] == 0) {
            /* the writer's ends, this pipe's and the earlier ones': the
             * writer's close must be this receiver's end of file */
            for (i = 0; i <= k; i++) {
                (void) close(p[i][1]);
            }

            ep = poller(p[k][0]);

            while (read_all(ep, p[k][0], buf, msg) == 0) {
                i = *round;
                if (i >= 0) {
                    lat[i * receivers + k] = (now() - *t0) * 1e6;
                }
            }

            _exit(0);
        }

        (void) close(p[k][0]);
    }

    gap.tv_sec = 0;
    gap.tv_nsec = 2000000;

    for (i = -warm; i < rounds; i++) {
        while (nanosleep(&gap, &gap) == -1 && errno == EINTR) { /* void */ }
        gap.tv_nsec = 2000000;

        *round = i;
        *t0 = now();
        for (k = 0; k < receivers; k++) {
            write_all(p[k][1], buf, msg);
        }
    }

    failed = 0;
    for (k = 0; k < receivers; k++) {
        (void) close(p[k][1]);
        if (waitpid(pid[k], &status, 0) == -1) {
            die("waitpid");
        }
        failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }

    if (failed) {
        fprintf(stderr, "probe: a receiver failed\n");
        return 2;
    }

    qsort(lat, (size_t) n, sizeof(double), cmp_double);

    printf("{\"test\":\"fanout\",\"msg_size\":%zu,\"rounds\":%ld,"
           "\"receivers\":%d,\"p50_us\":%.2f,\"p99_us\":%.2f,"
           "\"complete\":true}\n",
           msg, rounds, receivers,
           pct(lat, (size_t) n, 0.50), pct(lat, (size_t) n, 0.99));

    return 0;
}


static void
usage(void)
{
    fprintf(stderr,
            "usage: probe stream MSG_SIZE SECONDS PIPE_SIZE "
            "[unpinned|pinned|split] [epoll]\n"
            "       probe pingpong MSG_SIZE ROUNDS pinned|unpinned|split "
            "[epoll]\n"
            "       probe ring MSG_SIZE SECONDS RING_SIZE "
            "[unpinned|pinned|split]\n"
            "       probe fanout MSG_SIZE ROUNDS RECEIVERS\n");
    exit(2);
}


static int
parse_mode(const char *s)
{
    if (strcmp(s, "unpinned") == 0) {
        return 0;
    }

    if (strcmp(s, "pinned") == 0) {
        return 1;
    }

    if (strcmp(s, "split") == 0) {
        return 2;
    }

    usage();

    return -1;
}


int
main(int argc, char **argv)
{
    if ((argc == 5 || argc == 6 || (argc == 7 && strcmp(argv[6], "epoll") == 0))
        && strcmp(argv[1], "stream") == 0)
    {
        return stream((size_t) strtoul(argv[2], NULL, 10),
                      strtod(argv[3], NULL), strtol(argv[4], NULL, 10),
                      argc >= 6 ? parse_mode(argv[5]) : 0, argc == 7);
    }

    if ((argc == 5 || (argc == 6 && strcmp(argv[5], "epoll") == 0))
        && strcmp(argv[1], "pingpong") == 0)
    {
        return pingpong((size_t) strtoul(argv[2], NULL, 10),
                        strtol(argv[3], NULL, 10), parse_mode(argv[4]),
                        argc == 6);
    }

    if ((argc == 5 || argc == 6) && strcmp(argv[1], "ring") == 0) {
        return ring((size_t) strtoul(argv[2], NULL, 10),
                    strtod(argv[3], NULL), (size_t) strtoul(argv[4], NULL, 10),
                    argc == 6 ? parse_mode(argv[5]) : 0);
    }

    if (argc == 5 && strcmp(argv[1], "fanout") == 0) {
        return fanout((size_t) strtoul(argv[2], NULL, 10),
                      strtol(argv[3], NULL, 10), atoi(argv[4]));
    }

    usage();

    return 2;
}
