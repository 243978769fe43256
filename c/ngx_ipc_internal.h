/*
 * ngx_ipc_internal.h: what the files of the shim share,
 *
 * one section per file, lowest layer first (ngx_ipc_core.c says
 * what each file does); a file uses only the sections above its own.
 *
 * Nothing here is exported: the library is built with -fvisibility=hidden
 * and only the block in ngx_ipc.h is visible.  See docs/internals.md.
 */

#ifndef NGX_IPC_INTERNAL_H
#define NGX_IPC_INTERNAL_H

#include <dirent.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include "ngx_ipc.h"


/* wire format (docs/internals.md, "Packets") */

/*
 * The wire format's version, part of the root directory's name: processes
 * that speak different formats (a reload onto another release of ngx.ipc)
 * never share a pipe directory, so none reads packets it could misread.
 * Raise it with any change to the packets or to the directory's layout.
 */
#ifndef NGX_IPC_WIRE
#define NGX_IPC_WIRE             1
#endif

#define NGX_IPC_MAGIC            0x1A1E
#define NGX_IPC_FLAG_FIRST       0x01
#define NGX_IPC_FLAG_UNICAST     0x02     /* FIRST: a dest pid leads the payload */
#define NGX_IPC_FLAG_CANDIDATE   0x04     /* UNICAST: one of several copies */
#define NGX_IPC_DEST_SIZE        4
#define NGX_IPC_HDR_SIZE         16
#define NGX_IPC_WRITE_MAX        4096             /* PIPE_BUF */
#define NGX_IPC_PAYLOAD_MAX      (NGX_IPC_WRITE_MAX - NGX_IPC_HDR_SIZE)
#define NGX_IPC_NAME_MAX         254
/*
 * The longest data: LuaJIT's longest string (LJ_MAX_STR - 1, the same in
 * Debian's luajit2 and OpenResty's), since the receiver hands data to Lua
 * as one string.  Checked at the sender and on every FIRST header.
 */
#define NGX_IPC_DATA_MAX         2147483391u
#define NGX_IPC_PACK_MIN         512      /* smallest data chunk worth a
                                             packet of its own */

/* the 16-byte packet header, host byte order */

typedef struct {
    uint16_t       magic;
    uint8_t        flags;
    uint8_t        name_len;
    int32_t        sender;
    uint32_t       len;         /* payload length in this packet */
    uint32_t       arg;         /* FIRST: data total; otherwise: offset */
} ngx_ipc_hdr_t;

typedef char ngx_ipc_hdr_size_check[
    sizeof(ngx_ipc_hdr_t) == NGX_IPC_HDR_SIZE ? 1 : -1];


/* limits */

#define NGX_IPC_PIPE_SIZE        (1024 * 1024)    /* F_SETPIPE_SZ, best effort */
#define NGX_IPC_READ_MAX         (1024 * 1024)    /* per read event */
#define NGX_IPC_STREAM_SIZE      (64 * 1024)      /* stream buffer */
#define NGX_IPC_SEND_BACKLOG     ((uint64_t) 64 * 1024 * 1024)   /* default */
#define NGX_IPC_RECEIVE_BACKLOG  ((uint64_t) 128 * 1024 * 1024)  /* default */
#define NGX_IPC_BACKLOG_MIN      ((uint64_t) 64 * 1024)


/*
 * Settable with ngx_ipc_configure().  send_backlog bounds the bytes queued
 * for one destination; receive_backlog bounds what this process holds of
 * incoming alerts, complete or partial: reading pauses while complete
 * alerts fill half of it, and an alert that would take the total past it is
 * dropped when its first packet arrives.
 */

typedef struct {
    uint64_t       send_backlog;
    uint64_t       receive_backlog;
} ngx_ipc_limits_t;


/* why a delivery failed (ngx_ipc_last_error() has the words) */

#define NGX_IPC_FAILED           -1
#define NGX_IPC_FULL             -2       /* send or receive backlog reached */
#define NGX_IPC_GONE             -3       /* no such worker, or exited */


/* modes */

#define NGX_IPC_MODE_NONE        0
#define NGX_IPC_MODE_NGINX       1
#define NGX_IPC_MODE_STANDALONE  2


/* one alert on its way out: what is still to be packed */

typedef struct {
    const u_char  *name;
    const u_char  *data;        /* the data not yet packed (data[off]) */
    uint32_t       name_len;
    uint32_t       total;       /* data length of the whole alert */
    uint32_t       off;         /* data bytes already packed */
    uint32_t       first;       /* the FIRST packet is still to be packed */
    int32_t        dest;        /* unicast: the worker's pid; 0: broadcast */
    uint32_t       candidate;   /* a copy to a worker that may be dest */
    uint32_t       lent;        /* the caller keeps the data under this ref */
} ngx_ipc_out_t;


/* one packet of an alert: its header, name and data where the sender has them */

typedef struct {
    ngx_ipc_hdr_t  h;
    int32_t        dest;        /* FIRST of a unicast: leads the payload */
    const u_char  *name;        /* h.name_len bytes */
    const u_char  *data;
    size_t         data_len;
    int            last;        /* the alert's last packet */
} ngx_ipc_packet_t;


/* ngx_ipc_core.c */

/*
 * How the lower layers reach the nginx glue (ngx_ipc_nginx.c sets these at
 * start; until then, and for the fuzzer, they do nothing).
 */

typedef struct {
    int   (*add_write_event)(int fd);   /* tell when a pipe has room */
    void  (*arm_turn)(void);            /* flush at this turn's end */
    void  (*notify)(void);              /* wake the receive loop */
    int   (*exiting)(void);             /* this worker got QUIT */
    void  (*drained)(void);             /* Lua took every ready alert */
    void  (*resume)(void);              /* below the mark: read again */
    void  (*flush)(void);               /* write what waits for the turn */
    int   (*unread)(void);              /* bytes wait in this process's pipe */
} ngx_ipc_hooks_t;

extern int              ngx_ipc_mode;
extern ngx_ipc_hooks_t  ngx_ipc_hooks;

int64_t ngx_ipc_now(void);
void ngx_ipc_set_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
void ngx_ipc_close(int *fd);

/* ngx_ipc_cache.c */

#define NGX_IPC_CACHE_CLASSES  32           /* size classes: 2^k bytes */

typedef struct ngx_ipc_spare_s  ngx_ipc_spare_t;

typedef struct {
    size_t            floor;        /* spares always worth keeping */
    size_t            ceiling;      /* spares never kept beyond */
    size_t            largest;      /* a larger buffer is never kept */
    size_t            used;         /* bytes handed out */
    size_t            kept;         /* bytes of spares */
    size_t            peak;         /* the most used this second */
    size_t            peak_before;  /* ... and in the second before */
    time_t            second;
    ngx_ipc_spare_t  *free[NGX_IPC_CACHE_CLASSES];
} ngx_ipc_cache_t;

u_char *ngx_ipc_cache_get(ngx_ipc_cache_t *c, size_t need, size_t *cap);
void    ngx_ipc_cache_put(ngx_ipc_cache_t *c, u_char *buf, size_t cap);
u_char *ngx_ipc_cache_resize(ngx_ipc_cache_t *c, u_char *buf, size_t cap,
    size_t new_cap);

/* ngx_ipc_consumer.c */

#define NGX_IPC_CONSUMERS_MAX  4            /* Lua VMs in one process */

typedef int (*ngx_ipc_post_pt)(void *sema, int n);

int  ngx_ipc_consumer_add(void *sema, ngx_ipc_post_pt post);
int  ngx_ipc_consumer_n(void);
int  ngx_ipc_consumer_wants(int n, const u_char *name, size_t len);
void ngx_ipc_consumer_post(int n);
void ngx_ipc_consumer_drained(int n);

/* ngx_ipc_assemble.c */

extern ngx_ipc_counters_t  ngx_ipc_counters_data;   /* gauges included */
extern int32_t             ngx_ipc_self;   /* unicasts to other pids are
                                              not this process's */
extern ngx_ipc_limits_t    ngx_ipc_limits;
extern int                 ngx_ipc_paused;
extern int                 ngx_ipc_notice;  /* something for the log */

void   ngx_ipc_first(const ngx_ipc_hdr_t *h, const u_char *p);
void   ngx_ipc_next(const ngx_ipc_hdr_t *h, const u_char *p);
void   ngx_ipc_discard(size_t bytes);
int    ngx_ipc_local(int32_t sender, const ngx_ipc_out_t *out);
#define NGX_IPC_LENT             1        /* ngx_ipc_local: took the loan */
int    ngx_ipc_ready_empty(void);
int    ngx_ipc_ready_has(int consumer);
void   ngx_ipc_ready_join(int consumer);
int    ngx_ipc_ready_full(void);
int    ngx_ipc_take_notice(void);
void   ngx_ipc_pending_sweep(void);
void   ngx_ipc_stream_emptied(void);

/* ngx_ipc_wire.c */

void   ngx_ipc_out_init(ngx_ipc_out_t *out, const char *name,
    size_t name_len, const char *data, size_t data_len);
size_t ngx_ipc_packet_next(ngx_ipc_packet_t *p, size_t room, int32_t sender,
    const ngx_ipc_out_t *out);
void   ngx_ipc_packet_take(ngx_ipc_out_t *out, const ngx_ipc_packet_t *p);
void   ngx_ipc_packet_copy(u_char *dst, const ngx_ipc_packet_t *p);
size_t ngx_ipc_pack(u_char *dst, size_t room, int32_t sender,
    ngx_ipc_out_t *out);
int    ngx_ipc_out_done(const ngx_ipc_out_t *out);
uint64_t ngx_ipc_out_left(const ngx_ipc_out_t *out);
uint64_t ngx_ipc_out_packed(const ngx_ipc_out_t *out);
u_char *ngx_ipc_stream_room(size_t *room);
void   ngx_ipc_stream_added(size_t n);

/* ngx_ipc_proc.c */

int      ngx_ipc_proc_alive(int32_t pid);
int      ngx_ipc_proc_running(int32_t pid);
int      ngx_ipc_proc_shutting_down(pid_t pid);
int      ngx_ipc_proc_starting(int32_t pid, pid_t master);
int      ngx_ipc_proc_start_time(pid_t pid, uint64_t *start);
int      ngx_ipc_proc_workers_user(pid_t master, uid_t *uid, gid_t *gid);
uint64_t ngx_ipc_proc_pidns(void);

/* ngx_ipc_dir.c */

#define NGX_IPC_NAME_SIZE    32             /* "<pid>.new", "w<id>" */
#define NGX_IPC_OPEN_WRITE   (O_WRONLY|O_NONBLOCK|O_CLOEXEC|O_NOFOLLOW)
#define NGX_IPC_OPEN_HOLD    (O_RDWR|O_NONBLOCK|O_CLOEXEC|O_NOFOLLOW)

void ngx_ipc_dir_owner(uid_t uid, gid_t gid);
int  ngx_ipc_dir_mkfifo(const char *name);
void ngx_ipc_name_pid(char *buf, int32_t pid, const char *suffix);
void ngx_ipc_name_id(char *buf, int32_t id);
int  ngx_ipc_name_parse(const char *name, int32_t *n);
DIR *ngx_ipc_opendir(int dfd);
int  ngx_ipc_pipe_start(const char *dir, int32_t pid, int32_t id,
    int32_t count, pid_t master, uintptr_t cycle);
void ngx_ipc_pipe_stop(void);
int  ngx_ipc_pipe_read_fd(void);
int  ngx_ipc_pipe_started_as(const char *dir, int32_t pid);
int     ngx_ipc_dir_fd(void);
pid_t   ngx_ipc_dir_master(void);
int32_t ngx_ipc_dir_pid(void);
int32_t ngx_ipc_dir_id(void);
int32_t ngx_ipc_dir_count(void);

/* ngx_ipc_names.c */

/* a live worker's pid name and the worker id whose pipe it is (-1: none),
 * or (pid 0) a worker id's pipe that no live pid holds */

typedef struct {
    int32_t        pid;
    int32_t        id;
} ngx_ipc_name_t;

void ngx_ipc_names_start(void);
void ngx_ipc_names_stop(void);
int  ngx_ipc_names_open(int32_t key, int event, int *gone);
int32_t ngx_ipc_names_holder(int32_t id);
const ngx_ipc_name_t *ngx_ipc_dir_names(size_t *n);
uint32_t ngx_ipc_dir_generation(void);
int  ngx_ipc_pipe_watch_fd(void);
void ngx_ipc_pipe_watched(void);
void ngx_ipc_pipe_watch_event(void);

/* ngx_ipc_queue.c */

typedef struct ngx_ipc_item_s  ngx_ipc_item_t;

typedef struct {
    ngx_ipc_item_t  *head;
    ngx_ipc_item_t  *tail;
    uint64_t         queued;        /* bytes of packets queued */
    uint64_t         added;         /* bytes ever queued */
} ngx_ipc_queue_t;

int  ngx_ipc_queue_add(ngx_ipc_queue_t *q, ngx_ipc_out_t *out, int counted);
int  ngx_ipc_queue_push_front(ngx_ipc_queue_t *q, const u_char *buf,
    size_t len, uint32_t alerts);
int  ngx_ipc_queue_iov(const ngx_ipc_queue_t *q, struct iovec *iov, int max,
    size_t *size);
void ngx_ipc_queue_written(ngx_ipc_queue_t *q, size_t n);
void ngx_ipc_queue_pop(ngx_ipc_queue_t *q);
uint64_t ngx_ipc_queue_clear(ngx_ipc_queue_t *q);

/* ngx_ipc_dest.c */

typedef struct ngx_ipc_dest_s  ngx_ipc_dest_t;

/*
 * Small alerts sent in one event-loop turn share writes: packets collect in
 * "obuf" until it is full or the turn ends (ngx_ipc_pipe_flush_dirty).  obuf
 * holds bytes only while the queue is empty, so order is kept.
 */

struct ngx_ipc_dest_s {
    ngx_ipc_dest_t  *next;          /* hash chain */
    ngx_ipc_dest_t  *dirty_next;    /* obuf to write at the end of the turn */
    ngx_ipc_queue_t  queue;         /* what waits for room in the pipe */
    int32_t          key;           /* > 0: a pid; < 0: worker id -1 - key */
    int              fd;            /* cached write fd, -1: not open */
    int              wfd;           /* write event fd, -1: not armed */
    int              dirty;         /* on the dirty list */
    int              kept;          /* a worker id's pipe held open both
                                       ways: no worker holds the id */
    uint32_t         generation;    /* of the names when kept was checked */
    uint32_t         oalerts;       /* alerts that started in obuf */
    uint64_t         retry_at;      /* queue.added that makes a send try
                                       to write the queue */
    int              gathering;     /* the queue holds a burst's alerts
                                       by choice, not for want of room */
    uint32_t         retry_step;    /* bytes queued between two tries;
                                       grows while they find no room */
    size_t           olen;
    u_char           obuf[NGX_IPC_WRITE_MAX];
};

#define NGX_IPC_PAGES_MAX  64    /* whole pages in one write: 256 KiB */

ngx_ipc_dest_t *ngx_ipc_dest_ready(int32_t key, int *rc);
const char *ngx_ipc_dest_label(const ngx_ipc_dest_t *d);
void     ngx_ipc_dest_release(ngx_ipc_dest_t *d);
void     ngx_ipc_dest_forget(ngx_ipc_dest_t *d);
int      ngx_ipc_dest_keep(ngx_ipc_dest_t *d);
int      ngx_ipc_pages_max(void);
ssize_t  ngx_ipc_dest_write_some(ngx_ipc_dest_t *d, const struct iovec *iov,
    int n);
int      ngx_ipc_dest_writev(ngx_ipc_dest_t *d, const struct iovec *iov,
    int n, size_t size);
int      ngx_ipc_dest_flush(ngx_ipc_dest_t *d);
void     ngx_ipc_dest_arm(ngx_ipc_dest_t *d);
void     ngx_ipc_dest_flush_all(void);
uint32_t ngx_ipc_dest_epoch(void);
int      ngx_ipc_dest_queued(int32_t *keys, uint64_t *bytes, int n);
void     ngx_ipc_pipe_write_event(int fd);

/* ngx_ipc_deliver.c */

int      ngx_ipc_dest_deliver(int32_t key, const ngx_ipc_out_t *alert);
void     ngx_ipc_fanout_begin(void);
void     ngx_ipc_fanout_end(void);
void     ngx_ipc_pipe_flush_all(void);
void     ngx_ipc_pipe_flush_dirty(void);

#endif /* NGX_IPC_INTERNAL_H */
