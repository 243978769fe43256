/*
 * ngx_ipc_internal.h: what the three files of the shim share.
 *
 *   ngx_ipc_nginx.c   the nginx ABI (dlsym, checked at start), start-up,
 *                     read and write event handlers, semaphore post, errors
 *   ngx_ipc_dest.c    destinations, send queues, send and broadcast
 *   ngx_ipc_dir.c     pipe directory, FIFOs, names of workers, clean-up
 *   ngx_ipc_packet.c  packet encoding, stream parsing, reassembly per
 *                     sender, ready queue, counters
 *
 * Nothing here is exported: the library is built with -fvisibility=hidden
 * and only the block in ngx_ipc.h is visible.  See docs/internals.md.
 */

#ifndef NGX_IPC_INTERNAL_H
#define NGX_IPC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ngx_ipc.h"


/* wire format (docs/internals.md, "Packets") */

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


/* ngx_ipc_nginx.c */

extern int       ngx_ipc_mode;

void ngx_ipc_set_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
int  ngx_ipc_nginx_add_write_event(int fd);
void ngx_ipc_nginx_resume(void);
void ngx_ipc_nginx_drained(void);
void ngx_ipc_nginx_notify(void);
void ngx_ipc_nginx_arm_turn(void);
int  ngx_ipc_nginx_exiting(void);

/* ngx_ipc_dir.c */

/* a live worker's pid name and the worker id whose pipe it is (-1: none),
 * or (pid 0) a worker id's pipe that no live pid holds */

typedef struct {
    int32_t        pid;
    int32_t        id;
} ngx_ipc_name_t;

int  ngx_ipc_pipe_start(const char *dir, int32_t pid, int32_t id,
    int32_t count, pid_t master, uintptr_t cycle);
void ngx_ipc_pipe_stop(void);
int  ngx_ipc_pipe_read_fd(void);
int  ngx_ipc_pipe_started_as(const char *dir, int32_t pid);
int  ngx_ipc_pipe_watch_fd(void);
void ngx_ipc_pipe_watched(void);
void ngx_ipc_pipe_watch_event(void);
int32_t ngx_ipc_dir_pid(void);
int32_t ngx_ipc_dir_id(void);
int32_t ngx_ipc_dir_count(void);
int  ngx_ipc_dir_alive(int32_t pid);
int  ngx_ipc_dir_running(int32_t pid);
int  ngx_ipc_dir_starting(int32_t pid);
int  ngx_ipc_dir_open(int32_t key, int event, int *gone);
const ngx_ipc_name_t *ngx_ipc_dir_names(size_t *n);
uint32_t ngx_ipc_dir_generation(void);

/* ngx_ipc_dest.c */

void ngx_ipc_pipe_flush_all(void);
void ngx_ipc_pipe_flush_dirty(void);
void ngx_ipc_pipe_write_event(int fd);

/* ngx_ipc_packet.c */

extern ngx_ipc_counters_t  ngx_ipc_counters_data;   /* gauges included */
extern int32_t             ngx_ipc_self;   /* unicasts to other pids are
                                              not this process's */
extern ngx_ipc_limits_t    ngx_ipc_limits;
extern int                 ngx_ipc_paused;

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

int    ngx_ipc_local(int32_t sender, const ngx_ipc_out_t *out);
ssize_t ngx_ipc_stream_read(int fd, size_t max);
int    ngx_ipc_ready_empty(void);
int    ngx_ipc_ready_full(void);
int    ngx_ipc_take_notice(void);
void   ngx_ipc_pending_sweep(void);

#endif /* NGX_IPC_INTERNAL_H */
