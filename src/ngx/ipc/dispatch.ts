// Dispatch: the handler tables, and who sent the alert a handler is handling.
// Every complete alert the receive loop takes comes through `run`. Names that start
// with a NUL byte belong to the module itself (call requests and answers, alerts
// relayed from other hosts); the others go to the users' handlers. The sender of the
// alert being handled is visible only to the receive loop's own coroutine, so a
// request served while a handler yields reads nil, as does any other coroutine.
// Once this Lua VM has joined, the shim is told every name it has a handler for:
// a worker running Lua in http {} and stream {} has a VM for each, and an alert
// goes to each VM that handles its name (c/ngx_ipc_consumer.c).
import * as shim from "./shim";

/** A user's handler; what it returns answers ipc.call (ignored for plain alerts). */
export type Handler = (this: void, data: string) => unknown;
/** The module's own handler for a reserved name. */
export type Internal = (this: void, from: number, data: string) => void;

/** Alert names that start with this byte are reserved for the module. */
export const RESERVED = "\0";
const RESERVED_BYTE = 0;

const handlers = new LuaTable<string, Handler>();
const internal = new LuaTable<string, Internal>();
let joined = false;

// The alert being handled, valid only while `owner` is the running coroutine.
let owner: LuaThread | undefined;
let from_pid: number | undefined;
let from_id: number | undefined;
let id_known = false;
let from_instance: string | undefined;
let from_remote = false;

export function is_reserved(name: string): boolean {
    return string.byte(name, 1) === RESERVED_BYTE;
}

export function set(name: string, handler: Handler | undefined): void {
    handlers.set(name, handler!);
    if (joined) {
        shim.want(name, handler !== undefined);
    }
}

/** The module's own handler for a reserved name; undefined deletes it. */
export function reserve(name: string, fn: Internal | undefined): void {
    internal.set(name, fn!);
    if (joined) {
        shim.want(name, fn !== undefined);
    }
}

/** This VM has joined: the shim learns every name it handles, then each change. */
export function join(): void {
    if (joined) {
        return;
    }
    joined = true;
    for (const [name] of handlers) {
        shim.want(name, true);
    }
    for (const [name] of internal) {
        shim.want(name, true);
    }
}

function mine(): boolean {
    return owner !== undefined && coroutine.running() === owner;
}

/** The sending worker's pid, inside the handler's own coroutine. */
export function sender(): number | undefined {
    return mine() ? from_pid : undefined;
}

/** The sending worker's id (looked up when first asked for: most handlers never ask). */
export function sender_id(): number | undefined {
    if (!mine()) {
        return undefined;
    }
    if (!id_known) {
        from_id = from_pid === undefined ? undefined : shim.worker_id(from_pid);
        id_known = true;
    }
    return from_id;
}

/** The sending nginx instance of an alert relayed from Redis; nil for local alerts. */
export function sender_instance(): string | undefined {
    return mine() ? from_instance : undefined;
}

/** Whether the alert being handled came from a worker of another nginx instance. */
export function sender_remote(): boolean {
    return mine() && from_remote;
}

/** What a handler's run came to: "none" (no handler), "ok" or "error", then its results. */
export type Outcome = LuaMultiReturn<[string, unknown?, unknown?]>;

/**
 * Runs the handler for `name` as if the alert came from `pid` (worker `id`, nginx
 * instance `instance`; `remote` when that pid is on another host), with the sender
 * fields set for it alone. An error it raises is logged.
 */
export function invoke(
    name: string, data: string, pid: number, id: number | undefined,
    instance: string | undefined, remote: boolean,
): Outcome {
    const handler = handlers.get(name);
    if (handler === undefined) {
        return $multi("none");
    }
    // Saved and restored: a reserved handler may run a user's one within its own run.
    const [o, p, i, k, s, r] = [owner, from_pid, from_id, id_known, from_instance, from_remote];
    owner = coroutine.running();
    from_pid = pid;
    from_id = id;
    id_known = id !== undefined;
    from_instance = instance;
    from_remote = remote;
    const [ok, a, b] = xpcall(handler, debug.traceback, data);
    [owner, from_pid, from_id, id_known, from_instance, from_remote] = [o, p, i, k, s, r];
    if (!ok) {
        ngx.log(ngx.ERR, `ngx.ipc: handler for alert "${name}" from worker ${pid} failed: `,
            tostring(a));
        return $multi("error", a);
    }
    return $multi("ok", a, b);
}

/** Runs what handles a local alert; the receive loop calls this for every alert. */
export function run(from: number, name: string, data: string): void {
    if (string.byte(name, 1) === RESERVED_BYTE) {
        const fn = internal.get(name);
        if (fn !== undefined) {
            fn(from, data);
        }
        return;
    }
    invoke(name, data, from, undefined, undefined, false);
}
