// What the parts of the cluster share in a worker, kept here and nowhere else: the
// settings, ipc.ts's join function, whether this worker's part has started, who this
// instance is (and so its Redis keys), and the counters of ipc.stats().cluster.
// The other files read it through this module and change it only through its functions
// (the counters, a table, they add to directly).
import * as shim from "../shim";
import type { Settings } from "./config";

/** Joins this worker to its instance (ipc.ts's start); `fn` names the caller in errors. */
export type Join = (this: void, fn: string) => void;

export let settings: Settings | undefined;
export let join: Join | undefined;
/** This worker has joined and set up its part (handler, and reader for worker 0). */
export let running = false;
export let instance = "";
export let lease_key = "";
export let pos_key = "";
/** The master's pid: a lease holder that is not its child is gone. */
export let master_pid = 0;

export const counters = {
    published: 0,
    publish_errors: 0,
    received: 0,
    relayed: 0,
    gaps: 0,
    lost: 0,
    reconnects: 0,
    malformed: 0,
    failovers: 0,
    failover_lost: 0,
    unreplicated: 0,
    skipped: 0,
    redelivered: 0,
    rewinds: 0,
};

/** ipc.ts hands over its join function once, at load. */
export function attach(fn: Join): void {
    join = fn;
}

export function set_settings(s: Settings): void {
    settings = s;
}

/** A whole file's text (from /proc), or undefined when it cannot be read. */
export function read_text(path: string): string | undefined {
    const [f] = io.open(path, "r");
    if (f === undefined) {
        return undefined;
    }
    const s = f.read("*a");
    f.close();
    return s;
}

/**
 * "host/master pid/master start" (the start as Unix time to 1/100 s), from the shim's
 * instance directory (<pidns>-<master pid>-<start in clock ticks>-<cycle>).
 */
function find_instance(): string {
    const host = string.match(read_text("/proc/sys/kernel/hostname") ?? "", "^%s*(.-)%s*$")[0];
    const [master, start] = string.match(shim.dir(), "%d+%-(%d+)%-(%d+)%-%x+/?$");
    const [btime] = string.match(read_text("/proc/stat") ?? "", "\nbtime (%d+)");
    master_pid = tonumber(master) ?? 0;
    // clock ticks are 1/100 s on Linux (USER_HZ)
    const started = (tonumber(btime) ?? 0) + (tonumber(start) ?? 0) / 100;
    return `${host === "" ? "localhost" : host}/${master ?? "?"}/${string.format("%.2f", started)}`;
}

/** Whether process `pid` is alive and a child of this instance's master. */
export function our_worker(pid: string): boolean {
    const stat = read_text(`/proc/${pid}/stat`);
    if (stat === undefined) {
        return false;
    }
    const [st, ppid] = string.match(stat, "%) (%a) (%d+)");
    return !(st === "Z" || st === "X" || tonumber(ppid) !== master_pid);
}

/** Marks this worker's part started, and finds the instance it belongs to and its keys. */
export function start(s: Settings): void {
    running = true;
    instance = find_instance();
    lease_key = `${s.stream}:reader:${instance}`;
    pos_key = `${s.stream}:pos:${instance}`;
}
