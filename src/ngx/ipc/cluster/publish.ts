// Publishing: ipc.cluster.broadcast queues the alert for this worker's publisher and
// waits for its own reply. The publisher, one timer per worker that owns one
// connection to the primary, sends everything queued in one turn of the event loop
// as one write (one script call for all of them, then WAIT when configured) and
// hands each caller its reply: a burst of publishes costs one round trip, not one each.
import * as semaphore from "ngx.semaphore";
import { check_string } from "../args";
import * as dispatch from "../dispatch";
import * as resp from "../resp";
import type { Settings } from "./config";
import * as link from "./link";
import { args_of, FLOOR, load, PUBLISH, run, script_args } from "./scripts";
import * as state from "./state";

const counters = state.counters;

type Result = LuaMultiReturn<[true] | [undefined, string]>;

/** Alert names travel in one byte locally (ipc.ts's MAX_NAME). */
const MAX_NAME = 254;
/** At most this many alerts, or about this many bytes, go in one pipelined write. */
const BATCH = 256;
const BATCH_BYTES = 4194304;
/** A broadcast whose reply was NOSCRIPT or READONLY (not run) is sent again at most this often. */
const RETRIES = 3;

/** Queued, sent (its reply awaited), or answered; abandoned once its caller stopped waiting. */
const QUEUED = 0;
const SENT = 1;
const DONE = 2;

interface Item {
    name: string;
    data: string;
    sema: NgxSemaphore;
    status: number;
    abandoned: boolean;
    tries: number;
    err: string | undefined;
}

/** Phases without cosockets. */
const NO_SOCKETS = new LuaTable<string, boolean>();
for (const p of ["init", "init_worker", "set", "header_filter", "body_filter", "log", "balancer", "exit_worker", "ssl_session_store"]) {
    NO_SOCKETS.set(p, true);
}

/** The queue: items at head .. tail - 1. */
const queue = new LuaTable<number, Item>();
let head = 1;
let tail = 1;
/** Items whose callers are done with them (their semaphores at count 0). */
const spare: Item[] = [];

let wake: NgxSemaphore | undefined;
/** The publisher timer runs, and whether it waits on `wake` now. */
let started = false;
let idle = false;
let sock: NgxTcpSocket | undefined;
/** When sock last carried a batch (ngx.now()), to close it after `keepalive` idle. */
let used_at = 0;
/** Publishers in this worker have made sure the instance's position exists (see FLOOR). */
let floor_done = false;
/** The highest sequence number Redis gave this worker's publishes (PUBLISH's floor). */
let max_seq = 0;

function where(s: Settings): string {
    return `redis at ${link.label(s, s.endpoint)}`;
}

/** Answers the items of the batch at i .. last: err, or undefined for true. */
function answer_all(batch: LuaTable<number, Item>, i: number, last: number, err: string | undefined): void {
    for (let k = i; k <= last; k++) {
        answer(batch.get(k), err);
    }
}

function answer(it: Item, err: string | undefined): void {
    it.status = DONE;
    it.err = err;
    if (!it.abandoned) {
        it.sema.post(1);
    }
}

function drop(): void {
    if (sock !== undefined) {
        sock.close();
        sock = undefined;
    }
}

/** A connection to the primary with the script loaded, and the instance's position made. */
function open(s: Settings): string | undefined {
    const io = s.timeout_ms + s.wait_ms;
    const [c, err] = link.connect(s, s.endpoint, s.timeout_ms, io);
    if (c === undefined) {
        return `ngx.ipc: cluster: cannot reach ${where(s)}: ${err}`;
    }
    const [sha, lerr] = load(c, PUBLISH);
    if (sha === undefined) {
        c.close();
        return `ngx.ipc: cluster: ${where(s)}: ${lerr}`;
    }
    if (!floor_done) {
        const [fargs, fcount] = args_of("3", s.stream, s.seq_key, state.pos_key);
        const [pos, ferr] = run(c, FLOOR, fargs, fcount);
        if (pos === undefined) {
            c.close();
            return `ngx.ipc: cluster: ${where(s)}: ${ferr}`;
        }
        floor_done = true;
    }
    sock = c;
    return undefined;
}

/** Takes the next batch off the queue (skipping items whose callers gave up). */
function take(batch: LuaTable<number, Item>): number {
    let n = 0;
    let bytes = 0;
    while (head < tail && n < BATCH && bytes < BATCH_BYTES) {
        const it = queue.get(head);
        queue.delete(head);
        head += 1;
        if (!it.abandoned) {
            n += 1;
            batch.set(n, it);
            bytes += it.data.length;
        }
    }
    return n;
}

/** Puts items back at the head of the queue, in their order. */
function requeue(list: LuaTable<number, Item>, n: number): void {
    for (let k = n; k >= 1; k--) {
        const it = list.get(k);
        it.status = QUEUED;
        head -= 1;
        queue.set(head, it);
    }
}

/** Whether an error reply says the script did not run (so sending it again is safe). */
function not_run(err: string): boolean {
    return string.sub(err, 1, 8) === "NOSCRIPT" || string.sub(err, 1, 8) === "READONLY";
}

/** Sends one batch (one script call, then WAIT when configured) and hands out the replies. */
function flush(s: Settings, batch: LuaTable<number, Item>, n: number): void {
    const args = new LuaTable<number, string>();
    const head_args = ["", "", "2", s.stream, s.seq_key, s.maxlen, state.instance, tostring(ngx.worker.pid()),
        tostring(ngx.worker.id() ?? -1), tostring(max_seq)];
    let count = head_args.length;
    for (let i = 0; i < count; i++) {
        args.set(i + 1, head_args[i]);
    }
    for (let i = 1; i <= n; i++) {
        const it = batch.get(i);
        it.status = SENT;
        args.set(count + 1, it.name);
        args.set(count + 2, it.data);
        count += 2;
    }
    script_args(PUBLISH, args, true);
    const out = new LuaTable<number, string>();
    const o = resp.encode(out, 1, args, count);
    if (s.wait_replicas > 0) {
        const [w, wn] = resp.args("WAIT", tostring(s.wait_replicas), tostring(s.wait_ms));
        resp.encode(out, o, w, wn);
    }
    const [sent, serr] = sock!.send(out);
    if (sent === undefined) {
        drop();
        answer_all(batch, 1, n, `ngx.ipc: cluster: ${where(s)}: ${serr}`);
        return;
    }
    const [v, err, usable] = resp.read(sock!);
    if (v === undefined && !usable) {
        drop();
        answer_all(batch, 1, n, `ngx.ipc: cluster: ${where(s)}: ${err}`);
        return;
    }
    let failed: string | undefined = undefined;
    if (v === undefined) {
        failed = `ngx.ipc: cluster: ${where(s)}: ${err}`;
    } else {
        const last = tonumber(v) ?? 0;
        if (last > max_seq) {
            max_seq = last;
        }
    }
    if (s.wait_replicas > 0) {
        const [acked, werr, wusable] = resp.read(sock!);
        if (failed === undefined && acked === undefined) {
            failed = `ngx.ipc: cluster: ${where(s)}: added to the stream, but WAIT failed: ${werr}`;
        } else if (failed === undefined && (acked as number) < s.wait_replicas) {
            failed = `ngx.ipc: cluster: ${where(s)}: added to the stream, but only ${tostring(acked)} of ${s.wait_replicas} replica(s) had it within ${s.wait_ms} ms: a failover now may lose it; sending it again may deliver it twice`;
        }
        if (failed !== undefined && v !== undefined) {
            counters.unreplicated += n;
        }
        if (acked === undefined && !wusable) {
            drop();
        }
    }
    if (v === undefined && not_run(err!)) {
        // NOSCRIPT (SCRIPT FLUSH) or READONLY (the primary became a replica): nothing
        // was added; a new connection loads the script again and finds the primary again
        drop();
        const again = new LuaTable<number, Item>();
        let retry = 0;
        for (let i = 1; i <= n; i++) {
            const it = batch.get(i);
            if (it.tries < RETRIES && !it.abandoned) {
                it.tries += 1;
                retry += 1;
                again.set(retry, it);
            } else {
                answer(it, failed);
            }
        }
        requeue(again, retry);
        return;
    }
    answer_all(batch, 1, n, failed);
}

/** Answers everything still queued with err. */
function fail_queue(batch: LuaTable<number, Item>, err: string): void {
    while (head < tail) {
        const n = take(batch);
        answer_all(batch, 1, n, err);
        forget(batch, n);
    }
}

/** Lets go of the batch's items (and their data) once answered. */
function forget(batch: LuaTable<number, Item>, n: number): void {
    for (let i = 1; i <= n; i++) {
        batch.delete(i);
    }
}

function serve(s: Settings, batch: LuaTable<number, Item>): void {
    while (true) {
        if (head === tail) {
            if (ngx.worker.exiting()) {
                return;
            }
            if (sock !== undefined && ngx.now() - used_at >= s.keepalive_ms / 1000) {
                drop();
            }
            idle = true;
            wake!.wait(1);
            idle = false;
        } else {
            if (sock === undefined) {
                const err = open(s);
                if (err !== undefined) {
                    // everything queued would wait for the same Redis
                    fail_queue(batch, err);
                    continue;
                }
            }
            const n = take(batch);
            if (n > 0) {
                flush(s, batch, n);
                forget(batch, n);
                ngx.update_time();
                used_at = ngx.now();
            }
        }
    }
}

function publisher(premature: boolean): void {
    const batch = new LuaTable<number, Item>();
    let ok = true;
    let err: unknown = undefined;
    if (!premature) {
        [ok, err] = pcall(serve, state.settings!, batch);
    }
    idle = false;
    started = false;
    drop();
    if (!ok) {
        // a bug, not Redis: answer the callers rather than leave them to their timeouts;
        // the next broadcast starts a publisher again
        ngx.log(ngx.ERR, "ngx.ipc: cluster publisher failed: ", err);
        for (const [, it] of pairs(batch)) {
            if (it.status === SENT) {
                answer(it, `ngx.ipc: cluster publisher failed: ${tostring(err)}`);
            }
        }
        fail_queue(batch, `ngx.ipc: cluster publisher failed: ${tostring(err)}`);
    }
}

/** Starts the publisher timer; nil, err when nginx refuses a timer or a semaphore. */
function start(): string | undefined {
    if (wake === undefined) {
        const [sema, err] = semaphore.new(0);
        if (sema === undefined) {
            return `ngx.ipc: cluster: cannot create a semaphore: ${err}`;
        }
        wake = sema;
    }
    const [ok, err] = ngx.timer.at(0, publisher);
    if (ok === undefined) {
        return `ngx.ipc: cluster: cannot start the publisher: ${err}`;
    }
    started = true;
    return undefined;
}

function take_item(name: string, data: string): LuaMultiReturn<[Item] | [undefined, string]> {
    let it = spare.pop();
    if (it === undefined) {
        const [sema, err] = semaphore.new(0);
        if (sema === undefined) {
            return $multi(undefined, `ngx.ipc: cluster: cannot create a semaphore: ${err}`);
        }
        it = { name, data, sema, status: QUEUED, abandoned: false, tries: 0, err: undefined };
    } else {
        it.name = name;
        it.data = data;
        it.status = QUEUED;
        it.abandoned = false;
        it.tries = 0;
        it.err = undefined;
    }
    return $multi(it);
}

function publish(s: Settings, name: string, data: string): Result {
    if (!started) {
        const err = start();
        if (err !== undefined) {
            return $multi(undefined, err);
        }
    }
    const [it, ierr] = take_item(name, data);
    if (it === undefined) {
        return $multi(undefined, ierr);
    }
    queue.set(tail, it);
    tail += 1;
    if (idle) {
        idle = false;
        wake!.post(1);
    }
    const [woke] = it.sema.wait((s.timeout_ms + s.wait_ms) / 1000);
    if (woke !== true) {
        // the publisher never posts an abandoned item: its semaphore stays at 0, but the
        // item may still sit in the queue, so it is not reused
        it.abandoned = true;
        const unknown = it.status === SENT ? " (it was sent: Redis may have added it)" : "";
        return $multi(undefined, `ngx.ipc: cluster: ${where(s)}: timeout${unknown}`);
    }
    const err = it.err;
    it.data = "";
    spare.push(it);
    if (err !== undefined) {
        return $multi(undefined, err);
    }
    return $multi(true);
}

/**
 * Sends an alert to every worker of every instance that shares the stream, this one
 * included. `true` once Redis has it (and, with `wait`, as many replicas); nil, err
 * when Redis cannot be reached within `timeout` or refuses it, or the alert is over
 * the caps.
 */
export function broadcast(name: unknown, data: unknown): Result {
    const n = check_string("broadcast", 1, name);
    const d = check_string("broadcast", 2, data);
    const s = state.settings;
    if (s === undefined) {
        error("ngx.ipc: ipc.cluster.broadcast: call ipc.cluster.configure first", 2);
    }
    const phase = ngx.get_phase();
    if (NO_SOCKETS.get(phase)) {
        error(`ngx.ipc: ipc.cluster.broadcast cannot be used in ${phase} (no cosockets there); use ngx.timer.at(0, ...)`, 2);
    }
    state.join!("cluster.broadcast");
    if (dispatch.is_reserved(n)) {
        return $multi(undefined, "alert names starting with a NUL byte are reserved for ngx.ipc");
    }
    if (n.length > MAX_NAME) {
        return $multi(undefined, `alert name is longer than ${MAX_NAME} bytes`);
    }
    if (d.length > s.max_data) {
        counters.publish_errors += 1;
        return $multi(undefined, `alert data is ${d.length} bytes, more than max_data (${s.max_data} bytes) for cluster broadcasts`);
    }
    const [ok, err] = publish(s, n, d);
    if (ok === undefined) {
        counters.publish_errors += 1;
        return $multi(undefined, err);
    }
    counters.published += 1;
    return $multi(true);
}
