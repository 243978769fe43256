// The receive loop: one ngx.timer.at coroutine per worker that sleeps on a semaphore,
// which the shim's read event posts, and hands every complete alert to `dispatch`
// one at a time. Handlers run in this coroutine, so a handler that yields holds the
// alerts behind it back and order is kept.
import * as semaphore from "ngx.semaphore";
import * as shim from "./shim";

export type Dispatch = (this: void, sender: number, name: string, data: string) => void;

/**
 * How long one wait lasts. The wait's timer cannot be cancelled, so this bounds how
 * long a quitting or reloading worker waits for the loop to notice and return.
 */
const WAIT_SECONDS = 1;

// Kept here for the worker's lifetime: the shim posts into this semaphore from C, and
// a collected semaphore would be freed memory.
let sema: NgxSemaphore | undefined;
let dispatch: Dispatch | undefined;
let running = false;
let dropped = 0;
/** This VM's consumer number (shim.start), -1 before; only the first reports drops. */
let consumer = -1;

/**
 * After a handler of an alert this large, a full garbage collection: otherwise
 * LuaJIT keeps the strings of several large alerts alive between its steps,
 * and a burst of them holds several times the memory one of them needs.
 */
const COLLECT_MIN = 16777216;

/** Hands one alert to its handler; its size, or nothing when none waits. */
function drain_one(handle: Dispatch): number | undefined {
    const [sender, name, data] = shim.recv();
    if (sender === undefined) {
        return undefined;
    }
    handle(sender, name, data);
    return data.length;
}

function drain(handle: Dispatch): void {
    while (true) {
        const size = drain_one(handle);
        if (size === undefined) {
            return;
        }
        // The alert's string is out of reach only once drain_one has returned.
        if (size >= COLLECT_MIN) {
            collectgarbage("collect");
        }
    }
}

/** What the shim had to drop goes to the log, once per wake-up that saw more of it. */
function report_drops(): void {
    const total = shim.dropped();
    if (total === dropped) {
        return;
    }
    dropped = total;
    const c = shim.counters();
    ngx.log(ngx.ERR, "ngx.ipc: dropped so far: ", c.packets_discarded, " corrupt packets (",
        c.bytes_discarded, " bytes), ", c.alerts_truncated, " truncated alerts, ",
        c.dropped_memory, " alerts this worker had no memory to assemble, ", c.lost_exited,
        " alerts for workers that exited (queued, or let go by a replacement)");
}

function run(premature: boolean): void {
    const sem = sema!;
    const handle = dispatch!;
    if (!premature) {
        while (!ngx.worker.exiting()) {
            sem.wait(WAIT_SECONDS);
            drain(handle);
            if (consumer === 0) {
                report_drops();
            }
        }
    }
    // What arrived before the exit still belongs to this worker's handlers.
    drain(handle);
    running = false;
}

/**
 * Starts the loop once per worker (per Lua VM of it: http, stream): creates the
 * semaphore, joins the shim, arms the timer. This VM's consumer number.
 */
export function start(handle: Dispatch): LuaMultiReturn<[number] | [undefined, string]> {
    if (running) {
        return $multi(consumer);
    }
    if (sema === undefined) {
        const [sem, err] = semaphore.new(0);
        if (sem === undefined) {
            return $multi(undefined, `ngx.ipc: cannot create a semaphore: ${err}`);
        }
        sema = sem;
    }
    if (consumer < 0) {
        const [c, err] = shim.start(sema.sem, ngx.config.subsystem ?? "http", ngx.worker.id() ?? -1,
            ngx.worker.count());
        if (c === undefined) {
            return $multi(undefined, err);
        }
        consumer = c;
    }
    dispatch = handle;
    const [timer, terr] = ngx.timer.at(0, run);
    if (timer === undefined) {
        return $multi(undefined, `ngx.ipc: cannot start the receive loop: ${terr}`);
    }
    running = true;
    return $multi(consumer);
}
