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
#include <sys/epoll.h>
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

    pid = fork();
    if (pid == -1) {
        die("fork");
    }

    if (pid == 0) {
        if (child_cpu != -1) {
            pin(child_cpu);
        }

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


static void
usage(void)
{
    fprintf(stderr,
            "usage: probe stream MSG_SIZE SECONDS PIPE_SIZE "
            "[unpinned|pinned|split] [epoll]\n"
            "       probe pingpong MSG_SIZE ROUNDS pinned|unpinned|split "
            "[epoll]\n");
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

    usage();

    return 2;
}
