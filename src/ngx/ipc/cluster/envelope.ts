// The local side of relayed entries: the reserved local alert that carries them to
// every worker of the instance, its envelope, and every worker's handler of it, which
// decodes the envelope and hands each alert to the user's handler (dispatch.invoke)
// once per worker slot (./slots): it passes over resent entries this slot handled
// already, and asks for a resend when one is missing before an entry.
import * as ffi from "ffi";
import * as dispatch from "../dispatch";
import * as slots from "./slots";
import * as state from "./state";

const counters = state.counters;

/** The local alert that carries stream entries to every worker of the instance. */
export const LOCAL_NAME = `${dispatch.RESERVED}cluster`;
/** The doubles of an entry's header, and its bytes. */
const HEAD = 10;
const HEAD_BYTES = HEAD * 8;
const head = ffi.new("double[?]", HEAD) as DoubleArray;
/** What pads an entry whose strings end `i` bytes past a multiple of 8. */
const PAD = ["", "\0\0\0\0\0\0\0", "\0\0\0\0\0\0", "\0\0\0\0\0", "\0\0\0\0", "\0\0\0", "\0\0", "\0"];

/** Bytes a local broadcast adds per packet, and per alert, beyond name and data (an upper bound). */
const PACKET_OVERHEAD = 64;
const PACKET_PAYLOAD = 4000;

/** How often a worker that waits for its slot tries again, and after how long it says so (seconds). */
const RETAKE_EVERY = 0.005;
const RETAKE_LOG = 1;

/** A timer tries to take this worker's slot over (retake). */
let retaking = false;
let retake_since = 0;

/**
 * One entry: a header of HEAD doubles (the id of the entry relayed before it, so a
 * worker sees that it missed one; the entry's id and sequence number; the origin's
 * pid and worker id; the lengths of instance, name and data), then instance, name and
 * data, padded to a multiple of 8 bytes. A local alert carries one or more entries,
 * one after the other, in the order they were read. Binary: a worker reads the
 * numbers in place, without a pattern or a string for each (the reader and the
 * workers share the host, so its byte order).
 */
export function encode(inst: string, pid: number, wid: number, name: string, prev_ms: number, prev_n: number,
    ms: number, n: number, seq: number, data: string): string {
    head[0] = prev_ms;
    head[1] = prev_n;
    head[2] = ms;
    head[3] = n;
    head[4] = seq;
    head[5] = pid;
    head[6] = wid;
    head[7] = inst.length;
    head[8] = name.length;
    head[9] = data.length;
    return ffi.string(head, HEAD_BYTES) + inst + name + data + PAD[(inst.length + name.length + data.length) % 8];
}

/** Upper bound of the bytes a local broadcast of `size` envelope bytes puts in a queue. */
export function packed(size: number): number {
    return LOCAL_NAME.length + size + PACKET_OVERHEAD * (2 + math.floor(size / PACKET_PAYLOAD));
}

function retake(premature: boolean): void {
    if (premature || ngx.worker.exiting()) {
        retaking = false;
        return;
    }
    const [ok, again] = slots.take();
    if (ok) {
        retaking = false;
        counters.redelivered += again;
        return;
    }
    ngx.update_time();
    if (retake_since >= 0 && ngx.now() - retake_since >= RETAKE_LOG) {
        retake_since = -1;
        ngx.log(ngx.NOTICE, "ngx.ipc: cluster: worker ", ngx.worker.pid(), " (id ", ngx.worker.id(),
            ") waits for its predecessor to finish a handler before it handles cluster alerts");
    }
    const [t, err] = ngx.timer.at(RETAKE_EVERY, retake);
    if (t === undefined) {
        retaking = false;
        ngx.log(ngx.ERR, "ngx.ipc: cluster: cannot wait for this worker's slot: ", err);
    }
}

/**
 * Takes this worker's slot over when it can. While its predecessor still runs a
 * handler (a reload), the entries that come are let pass and a timer tries again:
 * taking the slot asks the reader to send them again (slots.take), so the receive
 * loop never waits on the old generation.
 */
function hold(): boolean {
    const [ok, again] = slots.take();
    if (ok) {
        counters.redelivered += again;
        return true;
    }
    if (!retaking) {
        ngx.update_time();
        retake_since = ngx.now();
        const [t] = ngx.timer.at(RETAKE_EVERY, retake);
        retaking = t !== undefined;
    }
    return false;
}

/** Handles one entry of an envelope, or lets it pass (this slot had it, or misses one before it). */
function entry(ready: boolean, h: DoubleArray, b: number, inst: string, name: string, data: string): void {
    if (ready) {
        // Once it shuts down (reload, quit) a worker begins no handler: its slot passes to
        // the next generation's worker with its id, which goes on after its last entry.
        if (ngx.worker.exiting() || !hold()) {
            counters.skipped += 1;
            return;
        }
        const e_ms = h[b + 2];
        const e_n = h[b + 3];
        const e_seq = h[b + 4];
        const [verdict, trimmed] = slots.verdict(h[b], h[b + 1], e_ms, e_n, e_seq);
        if (verdict !== slots.HANDLE) {
            counters.skipped += 1;
            if (verdict === slots.GAP) {
                slots.want();
            }
            return;
        }
        counters.lost += trimmed;
        slots.begin(e_ms, e_n, e_seq);
    }
    const wid = h[b + 6];
    // not inline in the call: TypeScriptToLua would build and unpack a table per entry for it
    const id = wid < 0 ? undefined : wid;
    counters.received += 1;
    dispatch.invoke(name, data, h[b + 5], id, inst, inst !== state.instance);
    if (ready) {
        slots.finish();
    }
}

/**
 * The entries of one envelope, in order. A malformed one ends it: the entries after it
 * cannot be told apart, and the next envelope's first entry names one this slot has
 * not handled, so the worker asks for them again.
 */
function on_local(_from: number, env: string): void {
    const size = env.length;
    // the doubles are read in place: env stays referenced (string.sub) while h is used
    const h = ffi.cast("const double *", env) as DoubleArray;
    let at = size % 8 === 0 ? 0 : size;
    if (at > 0) {
        counters.malformed += 1;
    }
    while (at < size) {
        const b = at / 8;
        if (at + HEAD_BYTES > size) {
            counters.malformed += 1;
            return;
        }
        const i = h[b + 7];
        const k = h[b + 8];
        const d = h[b + 9];
        const start = at + HEAD_BYTES + 1;
        const stop = start + i + k + d;
        // NaN and fractions fail too
        if (!(i >= 0 && k >= 0 && d >= 0 && stop <= size + 1 && stop % 1 === 0)) {
            counters.malformed += 1;
            return;
        }
        entry(slots.ready(), h, b, string.sub(env, start, start + i - 1), string.sub(env, start + i, start + i + k - 1),
            string.sub(env, start + i + k, stop - 1));
        at = stop - 1 + (8 - (stop - 1) % 8) % 8;
    }
}

/**
 * Registers this worker's handler of the local alert, and maps the slots (`key`
 * names the stream, its Redis and the instance). A replacement of a worker killed with -9 takes
 * its slot over at once, asking for what its predecessor may not have handled.
 */
export function listen(key: string): void {
    dispatch.reserve(LOCAL_NAME, on_local);
    if (ngx.worker.id() === undefined) {
        // not a worker (the privileged agent): no slot, it handles what it gets
        return;
    }
    const [ok, err] = slots.open(key, ngx.worker.count());
    if (ok === undefined) {
        ngx.log(ngx.ERR, "ngx.ipc: cluster: ", err, "; this worker handles every relayed alert it gets, ",
            "which can repeat alerts after a reader's restart");
        return;
    }
    if (!ngx.worker.exiting()) {
        hold();
    }
}
