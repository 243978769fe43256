// FFI binding to the C shim (c/ngx_ipc.h): declares it, finds and loads it, and turns
// its C results into Lua values. Loading is lazy: requiring ngx.ipc in the master
// (init_by_lua*) must not load the library there; the first worker call does.
import * as ffi from "ffi";
import type { Agent, Worker } from "ngx.ipc";

/** The FFI block of c/ngx_ipc.h, verbatim; t/unit/cdef_spec.lua keeps the two equal. */
export const cdef = `
typedef struct {
    int32_t      sender;
    uint32_t     name_len;
    uint32_t     data_len;
    uint32_t     lent;
    const char  *name;
    const char  *data;
} ngx_ipc_alert_t;

typedef struct {
    uint64_t     alerts_sent;
    uint64_t     bytes_sent;
    uint64_t     writes;
    uint64_t     alerts_received;
    uint64_t     bytes_received;
    uint64_t     packets_discarded;
    uint64_t     bytes_discarded;
    uint64_t     alerts_truncated;
    uint64_t     refused_backlog;
    uint64_t     refused_no_worker;
    uint64_t     lost_exited;
    uint64_t     dropped_memory;
    uint64_t     send_queued;
    uint64_t     receive_ready;
    uint64_t     receive_partial;
} ngx_ipc_counters_t;

int ngx_ipc_configure(uint64_t send_backlog, uint64_t receive_backlog);
int ngx_ipc_start(void *sema, const char *subsystem, int32_t id,
    int32_t count);
int ngx_ipc_start_standalone(const char *dir, int32_t pid);
int ngx_ipc_send(int32_t pid, const char *name, size_t name_len,
    const char *data, size_t data_len);
int ngx_ipc_broadcast(const char *name, size_t name_len,
    const char *data, size_t data_len);
int ngx_ipc_send_worker(int32_t id, const char *name, size_t name_len,
    const char *data, size_t data_len);
int32_t ngx_ipc_send_any(const char *name, size_t name_len,
    const char *data, size_t data_len);
int32_t ngx_ipc_worker_id(int32_t pid);
int ngx_ipc_workers(int32_t *ids, int32_t *pids, int n);
void ngx_ipc_lend(uint32_t ref);
int ngx_ipc_recv(int32_t consumer, ngx_ipc_alert_t *alert);
int ngx_ipc_poll(void);
int ngx_ipc_feed(const char *buf, size_t len);
void ngx_ipc_counters(ngx_ipc_counters_t *out);
double ngx_ipc_dropped(void);
int ngx_ipc_backlog(int32_t *pids, uint64_t *bytes, int n);
void ngx_ipc_release(int32_t consumer);
int ngx_ipc_want(int32_t consumer, const char *name, size_t name_len, int on);
int32_t ngx_ipc_wanted_by(const char *name, size_t name_len);
int ngx_ipc_consumers(void);
const char *ngx_ipc_last_error(void);
const char *ngx_ipc_dir(void);
`;

ffi.cdef(cdef);

/** File name of the shim, searched for in package.cpath like a C module. */
const LIBRARY = "ngx_ipc_shim";

const ffi_string = ffi.string;
const ffi_new = ffi.new;

let lib: IpcShimLib | undefined;
let alert: IpcAlert;
let counters_out: IpcCounters;
/**
 * Two C arrays a shim function fills in side by side (ids and pids, pids and
 * bytes), grown when it says it has more than they hold.
 */
interface ArrayPair {
    size: number;
    a: CArray;
    b: CArray;
    readonly a_type: string;
    readonly b_type: string;
}

type Fill = (this: void, a: CArray, b: CArray, n: number) => number;

function pair_of(a_type: string, b_type: string): ArrayPair {
    const size = 64;
    return {
        size, a_type, b_type,
        a: ffi_new(a_type, size) as CArray,
        b: ffi_new(b_type, size) as CArray,
    };
}

/** Calls `fill` on the pair, growing it once if need be; how many entries it holds. */
function fill_pair(p: ArrayPair, fill: Fill): number {
    const n = fill(p.a, p.b, p.size);
    if (n <= p.size) {
        return n;
    }
    p.size = n * 2;
    p.a = ffi_new(p.a_type, p.size) as CArray;
    p.b = ffi_new(p.b_type, p.size) as CArray;
    return fill(p.a, p.b, p.size);
}

let backlog_pair: ArrayPair;
let workers_pair: ArrayPair;
// Cached C functions: the per-alert paths make one FFI call each.
let c_send: IpcShimLib["ngx_ipc_send"];
let c_broadcast: IpcShimLib["ngx_ipc_broadcast"];
let c_send_worker: IpcShimLib["ngx_ipc_send_worker"];
let c_send_any: IpcShimLib["ngx_ipc_send_any"];
let c_lend: IpcShimLib["ngx_ipc_lend"];
let c_recv: IpcShimLib["ngx_ipc_recv"];
let c_release: IpcShimLib["ngx_ipc_release"];

type Result = LuaMultiReturn<[true] | [undefined, string]>;

// Lending (below): the strings lent, by ref; this worker as a destination.
let lent = new LuaTable<number, string>();
let last_ref = 0;
let self_pid = -1;
let self_id = -1;
/**
 * This Lua VM's number among those of the process that take alerts (an http
 * and a stream VM in one worker: ngx_ipc_start in c/ngx_ipc.h).
 */
let consumer = 0;

function load(): IpcShimLib {
    if (lib !== undefined) {
        return lib;
    }
    const [path, searched] = lua_package.searchpath(LIBRARY, lua_package.cpath);
    if (path === undefined) {
        error(`ngx.ipc: cannot find the shim ${LIBRARY}.so in package.cpath:${searched}`, 0);
    }
    const loaded = ffi.load(path) as IpcShimLib;
    alert = ffi_new("ngx_ipc_alert_t") as IpcAlert;
    counters_out = ffi_new("ngx_ipc_counters_t") as IpcCounters;
    backlog_pair = pair_of("int32_t[?]", "uint64_t[?]");
    workers_pair = pair_of("int32_t[?]", "int32_t[?]");
    c_send = loaded.ngx_ipc_send;
    c_broadcast = loaded.ngx_ipc_broadcast;
    c_send_worker = loaded.ngx_ipc_send_worker;
    c_send_any = loaded.ngx_ipc_send_any;
    c_lend = loaded.ngx_ipc_lend;
    c_recv = loaded.ngx_ipc_recv;
    c_release = loaded.ngx_ipc_release;
    lib = loaded;
    return loaded;
}

function last_error(): string {
    return ffi_string(load().ngx_ipc_last_error());
}

function failure(): Result {
    return $multi(undefined, last_error());
}

function result(rc: number): Result {
    if (rc !== 0) {
        return failure();
    }
    return $multi(true);
}

/**
 * Joins this nginx worker: its pipe, its read event, wake-ups posted to `sema`
 * by the `subsystem`'s ("http", "stream") semaphore module. `id` is its
 * ngx.worker.id() (-1 for a process without one, such as the privileged
 * agent), `count` ngx.worker.count(). In a process whose other Lua VM joined
 * already, this VM shares its pipe. This VM's consumer number.
 */
export function start(sema: CData, subsystem: string, id: number, count: number): LuaMultiReturn<[number] | [undefined, string]> {
    const rc = load().ngx_ipc_start(sema, subsystem, id, count);
    if (rc < 0) {
        return $multi(undefined, last_error());
    }
    self_pid = ngx.worker.pid();
    self_id = id;
    consumer = rc;
    return $multi(rc);
}

/** Tells the shim whether this VM has a handler for `name`. */
export function want(name: string, on: boolean): void {
    load().ngx_ipc_want(consumer, name, name.length, on ? 1 : 0);
}

/** The lowest-numbered VM of this process with a handler for `name`, or -1. */
export function wanted_by(name: string): number {
    return load().ngx_ipc_wanted_by(name, name.length);
}

/** How many Lua VMs of this process take alerts. */
export function consumers(): number {
    return load().ngx_ipc_consumers();
}

/** Without nginx (tests, tools): `dir` is the instance directory; poll() pumps. */
export function start_standalone(dir: string, pid: number): Result {
    const rc = load().ngx_ipc_start_standalone(dir, pid);
    if (rc === 0) {
        self_pid = pid;
    }
    return result(rc);
}

/*
 * Lending (ngx_ipc_lend in c/ngx_ipc.h): an alert of LEND_MIN bytes or more that
 * this worker sends itself is not copied into C and back into a new Lua string:
 * the C copy refers to the sender's own string, kept here under a ref until recv
 * hands it to the handler. Lent only where this worker is a destination, so the
 * table holds no string that is not on its way here.
 */
const LEND_MIN = 4096;

function lend(data: string): number {
    last_ref = last_ref >= 0x7fffffff ? 1 : last_ref + 1;
    lent.set(last_ref, data);
    c_lend(last_ref);
    return last_ref;
}

/**
 * The result of a send that may have taken a loan: 1 it did, 0 it did not. A
 * refused broadcast may still have taken it (the other copies went out): its
 * string stays until the receive loop finds nothing waiting (recv).
 */
function settle(ref: number, rc: number, partial: boolean): Result {
    if (rc !== 1 && !(rc < 0 && partial)) {
        lent.delete(ref);
    }
    if (rc < 0) {
        return failure();
    }
    return $multi(true);
}

type SendTo = (this: void, to: number, name: string, nameLen: number, data: string,
    dataLen: number) => number;

/** A send to `to` (a pid or a worker id), lending `data` when `to` is this worker (`own`). */
function send_to(c: SendTo, to: number, own: number, name: string, data: string): Result {
    if (to === own && data.length >= LEND_MIN) {
        return settle(lend(data), c(to, name, name.length, data, data.length), false);
    }
    return result(c(to, name, name.length, data, data.length));
}

export function send(pid: number, name: string, data: string): Result {
    return send_to(c_send, pid, self_pid, name, data);
}

export function broadcast(name: string, data: string): Result {
    if (data.length >= LEND_MIN && self_pid > 0) {
        return settle(lend(data), c_broadcast(name, name.length, data, data.length), true);
    }
    return result(c_broadcast(name, name.length, data, data.length));
}

/** To whichever worker holds worker id `id`, now or once it joins. */
export function send_worker(id: number, name: string, data: string): Result {
    return send_to(c_send_worker, id, self_id, name, data);
}

/** To one joined worker, taking turns; the pid it went to. */
export function send_any(name: string, data: string): LuaMultiReturn<[true, number] | [undefined, string]> {
    const pid = c_send_any(name, name.length, data, data.length);
    if (pid < 0) {
        return $multi(undefined, last_error());
    }
    return $multi(true, pid);
}

/** A joined worker's id, or nothing. */
export function worker_id(pid: number): number | undefined {
    const id = load().ngx_ipc_worker_id(pid);
    return id < 0 ? undefined : id;
}

/** The joined workers of this generation, sorted by id, then the agent. */
export function workers(): (Worker | Agent)[] {
    const n = fill_pair(workers_pair, load().ngx_ipc_workers);
    const list: (Worker | Agent)[] = [];
    for (let i = 0; i < n; i++) {
        const id = tonumber(workers_pair.a[i])!;
        const pid = tonumber(workers_pair.b[i])!;
        list[i] = id < 0 ? { pid, agent: true } : { id, pid };
    }
    return list;
}

/**
 * From this size on, the C copy of an alert is freed as soon as Lua has its own,
 * so a large alert is held once, not twice, while its handler runs.
 */
const RELEASE_MIN = 1048576;

/** The next complete alert, or nothing when none waits. */
export function recv(): LuaMultiReturn<[number, string, string] | []> {
    if (c_recv(consumer, alert) === 0) {
        // Every alert that took a loan waits in the queue just emptied: what is
        // left are loans of refused broadcasts that no copy took.
        if (next(lent)[0] !== undefined) {
            lent = new LuaTable<number, string>();
        }
        return $multi();
    }
    const sender = alert.sender;
    const name = ffi_string(alert.name, alert.name_len);
    const ref = alert.lent;
    if (ref !== 0) {
        const data = lent.get(ref) as string;
        lent.delete(ref);
        return $multi(sender, name, data);
    }
    const size = alert.data_len;
    const data = ffi_string(alert.data, size);
    if (size >= RELEASE_MIN) {
        c_release(consumer);
    }
    return $multi(sender, name, data);
}

export function poll(): Result {
    return result(load().ngx_ipc_poll());
}

export function feed(bytes: string): Result {
    return result(load().ngx_ipc_feed(bytes, bytes.length));
}

/** The fields of ngx_ipc_counters_t, in the header's order. */
export const COUNTERS = [
    "alerts_sent", "bytes_sent", "writes", "alerts_received", "bytes_received",
    "packets_discarded", "bytes_discarded", "alerts_truncated",
    "refused_backlog", "refused_no_worker", "lost_exited", "dropped_memory",
    "send_queued", "receive_ready", "receive_partial",
] as const;

export type Counters = Record<(typeof COUNTERS)[number], number>;

/** A fresh table of every counter, as Lua numbers. */
export function counters(): Counters {
    load().ngx_ipc_counters(counters_out);
    const out = new LuaTable<string, number>();
    for (const name of COUNTERS) {
        out.set(name, tonumber(counters_out[name])!);
    }
    return out as unknown as Counters;
}

/**
 * What was dropped so far, all reasons summed, as a double: the loop asks at every
 * wake-up, and this copies no struct and boxes no uint64_t where the loop runs
 * interpreted.
 */
export function dropped(): number {
    return load().ngx_ipc_dropped();
}

/** Bytes queued per destination pid. */
export function backlog(): LuaTable<number, number> {
    const n = fill_pair(backlog_pair, load().ngx_ipc_backlog);
    const out = new LuaTable<number, number>();
    for (let i = 0; i < n; i++) {
        out.set(tonumber(backlog_pair.a[i])!, tonumber(backlog_pair.b[i])!);
    }
    return out;
}

export function configure(send_backlog: number, receive_backlog: number): Result {
    return result(load().ngx_ipc_configure(send_backlog, receive_backlog));
}

/** The instance directory holding this instance's pipes ("" before start). */
export function dir(): string {
    return ffi_string(load().ngx_ipc_dir());
}
