// The local side of a relayed entry: the reserved local alert that carries it to
// every worker of the instance, its envelope, and every worker's handler of it, which
// decodes the envelope and hands the alert to the user's handler (dispatch.invoke)
// once per worker slot (./slots): it passes over resent entries this slot handled
// already, and asks for a resend when one is missing before an entry.
import * as dispatch from "../dispatch";
import * as slots from "./slots";
import * as state from "./state";

const counters = state.counters;

/** The local alert that carries a stream entry to every worker of the instance. */
export const LOCAL_NAME = `${dispatch.RESERVED}cluster`;
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
 * Header "instance_len pid worker_id name_len prev_id id seq\n", then instance, name
 * and data: the entry's id and sequence number, and the id of the entry relayed
 * before it (so a worker sees that it missed one).
 */
export function encode(inst: string, pid: string, wid: string, name: string, prev: string, id: string, seq: number,
    data: string): string {
    return `${inst.length} ${pid} ${wid} ${name.length} ${prev} ${id} ${seq}\n${inst}${name}${data}`;
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

function on_local(_from: number, env: string): void {
    const [nl] = string.find(env, "\n", 1, true);
    if (nl === undefined) {
        counters.malformed += 1;
        return;
    }
    const [ilen, pid, wid, nlen, pms, pn, ms, n, seq] = string.match(string.sub(env, 1, nl - 1),
        "^(%d+) (%d+) (%-?%d+) (%d+) (%d+)%-(%d+) (%d+)%-(%d+) (%d+)$");
    if (seq === undefined) {
        counters.malformed += 1;
        return;
    }
    const i = tonumber(ilen)!;
    const k = tonumber(nlen)!;
    const inst = string.sub(env, nl + 1, nl + i);
    const name = string.sub(env, nl + i + 1, nl + i + k);
    const ready = slots.ready();
    if (ready) {
        // Once it shuts down (reload, quit) a worker begins no handler: its slot passes to
        // the next generation's worker with its id, which goes on after its last entry.
        if (ngx.worker.exiting() || !hold()) {
            counters.skipped += 1;
            return;
        }
        const e_ms = tonumber(ms)!;
        const e_n = tonumber(n)!;
        const e_seq = tonumber(seq)!;
        const [verdict, trimmed] = slots.verdict(tonumber(pms)!, tonumber(pn)!, e_ms, e_n, e_seq);
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
    const id = tonumber(wid)!;
    counters.received += 1;
    dispatch.invoke(name, string.sub(env, nl + i + k + 1), tonumber(pid)!, id < 0 ? undefined : id, inst,
        inst !== state.instance);
    if (ready) {
        slots.finish();
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
