// Where each worker of the instance stands in the stream. One record per worker id
// and Lua VM (a slot: 2 × id, + 1 for the stream VM of OpenResty's stream Lua, which
// gets the relayed entries too) in a small file of the shim's root directory, one file per master and
// stream, mapped shared by every worker of that master, of every generation: it
// outlives a worker killed with -9 and a reload, and costs no system call per entry.
//
// A worker handles a relayed entry only while it holds its slot, and only when the
// entry follows the last one it handled (the envelope names the entry relayed before
// it); an entry at or before that one is let pass (a resend), one after a gap is let
// pass too and the worker asks its reader to resend from its position (want). A
// slot changes hands only when its holder is dead, or has begun to shut down
// (nginx retitles it first, so no handler of it begins afterwards) and runs no
// handler: the replacement, or the next generation's worker with the same id, goes
// on exactly after the last entry its predecessor handled. The reader starts, and
// saves the instance's position, at the least position of the slots.
//
// Other processes read a slot's position under its sequence counter (a seqlock): odd
// while its holder writes it. A holder killed inside that write leaves it odd, with
// the entry it was finishing in `begun`, which its successor completes.
import * as ffi from "ffi";
import * as shim from "../shim";
import { read_text } from "./state";

// Once per Lua VM (a module required again, as the unit specs do, must not declare twice).
const [declared] = pcall(ffi.typeof, "ngx_ipc_cl_dirent_t");
if (!declared) {
    ffi.cdef(`
int ngx_ipc_cl_open(const char *path, int flags, int mode) __asm__("open");
int ngx_ipc_cl_close(int fd) __asm__("close");
int ngx_ipc_cl_ftruncate(int fd, int64_t length) __asm__("ftruncate");
int64_t ngx_ipc_cl_lseek(int fd, int64_t offset, int whence) __asm__("lseek");
void *ngx_ipc_cl_mmap(void *addr, size_t length, int prot, int flags, int fd,
    int64_t offset) __asm__("mmap");
typedef struct {
    uint64_t        d_ino;
    int64_t         d_off;
    unsigned short  d_reclen;
    unsigned char   d_type;
    char            d_name[256];
} ngx_ipc_cl_dirent_t;
void *ngx_ipc_cl_opendir(const char *path) __asm__("opendir");
ngx_ipc_cl_dirent_t *ngx_ipc_cl_readdir(void *dir) __asm__("readdir64");
int ngx_ipc_cl_closedir(void *dir) __asm__("closedir");
int ngx_ipc_cl_unlink(const char *path) __asm__("unlink");
char *ngx_ipc_cl_strerror(int errnum) __asm__("strerror");
`);
}

const C = ffi.C as SlotsLibc;

// Linux (x86-64 and arm64 alike)
const O_RDWR = 2;
const O_CREAT = 64;
const O_CLOEXEC = 524288;
const SEEK_END = 2;
const PROT_RW = 3;
const MAP_SHARED = 1;

/** Doubles: the header, then SLOT per worker id. */
const HEADER = 8;
const SLOT = 16;
// header: the reader's start position (0: its seqlock; 1, 2, 3: ms, n, seq), and
// the generation of the reader that set it
const H_MS = 1;
const H_SET = 4;
const H_GEN = 5;
// slot
const S_VER = 0;
const S_PID = 1;
const S_START = 2;
const S_MS = 3;
const S_N = 4;
const S_SEQ = 5;
/** 1 while a handler of the holder runs (from `begun` on). */
const S_BUSY = 6;
/** Bumped by the holder to ask the reader to resend after its position. */
const S_WANT = 7;
const S_BMS = 8;
const S_BN = 9;
const S_BSEQ = 10;
/** The holder's generation (its cycle's address): its own reader relays to it. */
const S_GEN = 11;

/** How often a seqlock read is tried before the record counts as unreadable now. */
const TRIES = 1000;

/** Name prefix of the files; the version of the layout is part of it. */
const PREFIX = "cluster1_";

let p: DoubleArray | undefined;
/** Slots the mapping holds. */
let mapped = 0;
/** This worker's slot: 2 × its id, + 1 in a stream Lua VM. */
let my_slot = -1;
let my_pid = 0;
let my_start = 0;
let my_gen = 0;
/** This worker holds its slot. */
let holding = false;
/** The position the last want asked to be resent after: asked once per position. */
let wanted_at = "";
/** The mapped file. */
let path = "";

/** A position in the stream: the entry's id and its sequence number. */
export interface Position {
    ms: number;
    n: number;
    seq: number;
}

/** The slots of `count` workers: one per worker id and Lua VM kind (http, stream). */
export function span(count: number): number {
    return 2 * count;
}

/** Whether the slots are in use in this worker (the file could be mapped). */
export function ready(): boolean {
    return p !== undefined;
}

function errstr(): string {
    return ffi.string(C.ngx_ipc_cl_strerror(ffi.errno()));
}

/** A process's start time (clock ticks since boot), or undefined when it is gone or a zombie. */
function start_of(pid: number): number | undefined {
    const stat = read_text(`/proc/${pid}/stat`);
    if (stat === undefined) {
        return undefined;
    }
    // the fields after the command's closing parenthesis: state is the first, start the 20th
    const [rest] = string.match(stat, "%) (.*)$");
    if (rest === undefined) {
        return undefined;
    }
    const fields: string[] = [];
    for (const [f] of string.gmatch(rest, "%S+")) {
        fields.push(f);
        if (fields.length >= 20) {
            break;
        }
    }
    if (fields[0] === "Z" || fields[0] === "X") {
        return undefined;
    }
    return tonumber(fields[19]);
}

/** Removes the files of masters that are gone (their pid is dead or now another process's). */
function sweep(root: string, ns: string): void {
    const dir = C.ngx_ipc_cl_opendir(root);
    if (dir === undefined) {
        return;
    }
    const stale: string[] = [];
    while (true) {
        const de = C.ngx_ipc_cl_readdir(dir);
        if (de === undefined) {
            break;
        }
        const name = ffi.string(de.d_name);
        const [ens, mpid, mstart] = string.match(name, `^${PREFIX}(%d+)%-(%d+)%-(%d+)%-%x+$`);
        if (ens === ns && start_of(tonumber(mpid)!) !== tonumber(mstart)) {
            stale.push(name);
        }
    }
    C.ngx_ipc_cl_closedir(dir);
    for (const name of stale) {
        C.ngx_ipc_cl_unlink(`${root}/${name}`);
    }
}

/**
 * Maps the slots' file of this master and `key` (the stream, its Redis, the instance), creating
 * it, or growing it to `count` slots. nil, err when it cannot: the caller then
 * handles every entry it gets, without these guarantees.
 */
export function open(key: string, count: number): LuaMultiReturn<[true] | [undefined, string]> {
    const id = ngx.worker.id();
    if (id === undefined) {
        return $multi(undefined, "not a worker");
    }
    const [root, ns, master, mstart, cycle] = string.match(shim.dir(), "^(.*)/(%d+)%-(%d+)%-(%d+)%-(%x+)/?$");
    if (cycle === undefined) {
        return $multi(undefined, `unexpected instance directory ${shim.dir()}`);
    }
    const digest = string.gsub(string.sub(ngx.sha1_bin(key), 1, 8), ".",
        (c: string) => string.format("%02x", string.byte(c)))[0];
    path = `${root}/${PREFIX}${ns}-${master}-${mstart}-${digest}`;
    const fd = C.ngx_ipc_cl_open(path, O_RDWR + O_CREAT + O_CLOEXEC, 384);
    if (fd < 0) {
        return $multi(undefined, `cannot open ${path}: ${errstr()}`);
    }
    const want = span(math.max(count, id + 1));
    const bytes = (HEADER + SLOT * want) * 8;
    const size = tonumber(C.ngx_ipc_cl_lseek(fd, 0, SEEK_END)) ?? -1;
    if (size < 0 || (size < bytes && C.ngx_ipc_cl_ftruncate(fd, bytes) !== 0)) {
        const err = errstr();
        C.ngx_ipc_cl_close(fd);
        return $multi(undefined, `cannot size ${path}: ${err}`);
    }
    const len = math.max(size, bytes);
    const addr = C.ngx_ipc_cl_mmap(undefined, len, PROT_RW, MAP_SHARED, fd, 0);
    const err = errstr();
    C.ngx_ipc_cl_close(fd);
    if (ffi.cast("intptr_t", addr) === ffi.cast("intptr_t", -1)) {
        return $multi(undefined, `cannot map ${path}: ${err}`);
    }
    p = ffi.cast("volatile double *", addr) as DoubleArray;
    mapped = math.floor((len / 8 - HEADER) / SLOT);
    my_slot = 2 * id + (ngx.config.subsystem === "stream" ? 1 : 0);
    my_pid = ngx.worker.pid();
    my_start = start_of(my_pid) ?? 0;
    my_gen = tonumber(cycle, 16) ?? 0;
    return $multi(true);
}

/** Removes the slot files of masters that are gone (the reader does, when it takes the lease). */
export function sweep_stale(): void {
    const [root, ns] = string.match(path, `^(.*)/${PREFIX}(%d+)%-`);
    if (ns !== undefined) {
        sweep(root, ns);
    }
}

function base_of(i: number): number {
    return HEADER + SLOT * i;
}

/** Reads three doubles at b+o under the seqlock at b; undefined when a writer holds it. */
function read3(b: number, o: number): LuaMultiReturn<[number, number, number] | [undefined, undefined, undefined]> {
    const a = p!;
    for (let t = 0; t < TRIES; t++) {
        const v = a[b];
        if (v % 2 === 0) {
            const x = a[b + o];
            const y = a[b + o + 1];
            const z = a[b + o + 2];
            if (a[b] === v) {
                return $multi(x, y, z);
            }
        }
    }
    return $multi(undefined, undefined, undefined);
}

function write3(b: number, o: number, x: number, y: number, z: number): void {
    const a = p!;
    const v = a[b];
    a[b] = v + 1;
    a[b + o] = x;
    a[b + o + 1] = y;
    a[b + o + 2] = z;
    a[b] = v + 2;
}

/** The reader's start position; undefined before a reader set it. */
function base(): Position | undefined {
    const [ms, n, seq] = read3(0, H_MS);
    if (ms === undefined || p![H_SET] !== 1) {
        return undefined;
    }
    return { ms, n: n!, seq: seq! };
}

/**
 * The reader sets where it starts, and its generation, before it relays anything:
 * the generation first, so that whoever sees the old one knows that this reader has
 * relayed nothing yet.
 */
export function set_base(pos: Position): void {
    p![H_GEN] = my_gen;
    write3(0, H_MS, pos.ms, pos.n, pos.seq);
    p![H_SET] = 1;
}

/** The reader's start, when a reader of this worker's generation set it (it may have relayed to us since). */
function our_base(): Position | undefined {
    return p![H_GEN] === my_gen ? base() : undefined;
}

/** Whether a is before b. */
function before(ams: number, an: number, bms: number, bn: number): boolean {
    return ams < bms || (ams === bms && an < bn);
}

/**
 * Where slot i stands: the last entry its holders handled; for a holder that handled
 * nothing yet, the reader's start if that reader is of its generation; otherwise
 * undefined (never held, or nothing was relayed to it: the first entry that comes
 * is its start).
 */
function position_of(i: number): Position | undefined {
    if (i >= mapped) {
        return undefined;
    }
    const a = p!;
    const b = base_of(i);
    let [ms, n, seq] = read3(b, S_MS);
    if (ms === undefined) {
        // Its holder is inside (or died inside) the write of the entry it handled,
        // which is in `begun` and is not written meanwhile.
        [ms, n, seq] = [a[b + S_BMS], a[b + S_BN], a[b + S_BSEQ]];
    }
    if (a[b + S_PID] === 0) {
        // never held: no worker (or VM) of this id takes cluster alerts
        return undefined;
    }
    if (ms < 0) {
        // handled nothing yet: a reader of its generation may have relayed to it since its start
        return a[b + S_GEN] === a[H_GEN] ? base() : undefined;
    }
    return { ms, n: n!, seq: seq! };
}

/** Where slot i wants entries after: its position, else the reader's start. */
export function done_of(i: number): Position | undefined {
    return position_of(i) ?? base();
}

/**
 * The least position of the slots of workers 0 .. count - 1, the instance's position;
 * the reader's start while none has one. A slot without one (a worker that handled
 * nothing yet) takes the first entry that reaches it, which is still in its pipe.
 */
export function least(count: number): Position | undefined {
    let low: Position | undefined;
    for (let i = 0; i < span(count); i++) {
        const d = position_of(i);
        if (d !== undefined && (low === undefined || before(d.ms, d.n, low.ms, low.n))) {
            low = d;
        }
    }
    return low ?? base();
}

/** What identifies slot i's current request to resend: holder and want count ("" when none). */
export function want_of(i: number): string {
    if (i >= mapped) {
        return "";
    }
    const b = base_of(i);
    const w = p![b + S_WANT];
    if (w === 0) {
        return "";
    }
    return `${p![b + S_PID]}:${p![b + S_START]}:${w}`;
}

/** Whether the holder recorded in slot b is alive: the same process, not a zombie. */
function holder_alive(b: number): boolean {
    const pid = p![b + S_PID];
    return pid !== 0 && start_of(pid) === p![b + S_START];
}

function shutting_down(pid: number): boolean {
    const cmd = read_text(`/proc/${pid}/cmdline`);
    return cmd !== undefined && string.find(cmd, "shutting down", 1, true)[0] !== undefined;
}

/** What taking the slot over found: 1 when the predecessor died inside a handler (run again). */
export type Taken = LuaMultiReturn<[boolean, number]>;

/**
 * Takes this worker's slot when it is free: never held, held by a process that is
 * gone, or by one that shuts down and runs no handler. false: wait and try again.
 */
export function take(): Taken {
    if (holding) {
        return $multi(true, 0);
    }
    const a = p!;
    const b = base_of(my_slot);
    let again = 0;
    const pid = a[b + S_PID];
    if (pid !== 0 && !(pid === my_pid && a[b + S_START] === my_start)) {
        if (holder_alive(b)) {
            // retitled first, then its ngx.worker.exiting() is true: it begins nothing more
            if (!shutting_down(pid) || a[b + S_BUSY] !== 0) {
                return $multi(false, 0);
            }
        } else if (a[b + S_VER] % 2 === 1) {
            // killed while writing the position of the entry it had handled
            a[b + S_MS] = a[b + S_BMS];
            a[b + S_N] = a[b + S_BN];
            a[b + S_SEQ] = a[b + S_BSEQ];
            a[b + S_VER] = a[b + S_VER] + 1;
        } else if (a[b + S_BUSY] !== 0) {
            // killed inside a handler: whether it had done its work is unknown; run it again
            again = 1;
        }
    }
    const [ms, n, seq] = read3(b, S_MS);
    let dms = ms ?? -1;
    let dn = n ?? 0;
    let dseq = seq ?? 0;
    const ours = our_base();
    const from = base();
    if (pid === 0 || dms < 0) {
        // Never held, or the predecessor handled nothing: the reader of this generation
        // relayed to this id only after its start; with none yet, the first entry that
        // comes is where this worker starts.
        dms = ours === undefined ? -1 : ours.ms;
        dn = ours === undefined ? 0 : ours.n;
        dseq = ours === undefined ? 0 : ours.seq;
    } else if (from !== undefined && before(dms, dn, from.ms, from.n)) {
        // left behind by an earlier generation with more workers than the last reader's
        dms = from.ms;
        dn = from.n;
        dseq = from.seq;
    }
    const v = a[b + S_VER];
    a[b + S_VER] = v + 1;
    a[b + S_PID] = my_pid;
    a[b + S_START] = my_start;
    a[b + S_MS] = dms;
    a[b + S_N] = dn;
    a[b + S_SEQ] = dseq;
    a[b + S_GEN] = my_gen;
    a[b + S_VER] = v + 2;
    a[b + S_BUSY] = 0;
    holding = true;
    // A predecessor killed with -9 may have taken entries from the pipe it never handled.
    if (pid !== 0) {
        want();
    }
    return $multi(true, again);
}

/** Asks the reader to resend after this slot's position (once per position). */
export function want(): void {
    const b = base_of(my_slot);
    const at = `${p![b + S_MS]}-${p![b + S_N]}`;
    if (at === wanted_at) {
        return;
    }
    wanted_at = at;
    p![b + S_WANT] = p![b + S_WANT] + 1;
}

/** What to do with an entry: HANDLE, PASS (handled already), or GAP (an earlier one is missing). */
export const HANDLE = 0;
export const PASS = 1;
export const GAP = 2;

/**
 * Decides about entry (ms, n) relayed after (pms, pn); with HANDLE, also how many
 * entries were trimmed between this slot's position and it (sequence numbers).
 */
export function verdict(pms: number, pn: number, ms: number, n: number, seq: number): LuaMultiReturn<[number, number]> {
    const a = p!;
    const b = base_of(my_slot);
    const dms = a[b + S_MS];
    const dn = a[b + S_N];
    if (dms < 0) {
        return $multi(HANDLE, 0);
    }
    if (!before(dms, dn, ms, n)) {
        return $multi(PASS, 0);
    }
    if (before(dms, dn, pms, pn)) {
        return $multi(GAP, 0);
    }
    const dseq = a[b + S_SEQ];
    return $multi(HANDLE, dseq > 0 && seq > dseq + 1 ? seq - dseq - 1 : 0);
}

/** Before this worker's handler of entry (ms, n, seq) runs. */
export function begin(ms: number, n: number, seq: number): void {
    const a = p!;
    const b = base_of(my_slot);
    a[b + S_BMS] = ms;
    a[b + S_BN] = n;
    a[b + S_BSEQ] = seq;
    a[b + S_BUSY] = 1;
}

/** After it: the entry is this slot's position. */
export function finish(): void {
    const a = p!;
    const b = base_of(my_slot);
    write3(b, S_MS, a[b + S_BMS], a[b + S_BN], a[b + S_BSEQ]);
    a[b + S_BUSY] = 0;
}
