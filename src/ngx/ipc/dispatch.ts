// STUB of the core's dispatch.ts (being written on main): the same three exports,
// just enough for the cluster to run. Delete this file when main's lands (git merge
// main), keeping main's.

/** Names that start with a NUL byte are reserved for the module. */
export const RESERVED = "\0";

export type Reserved = (this: void, from: number, data: string) => void;
export type Runner = (this: void, name: string, data: string, pid: number, id: number | undefined,
    instance: string | undefined, remote: boolean) => void;

const reserved = new LuaTable<string, Reserved>();
let runner: Runner | undefined;

/** Registers the module's own handler for a reserved name. */
export function reserve(name: string, fn: Reserved): void {
    reserved.set(name, fn);
}

/** The module's handler for a reserved name (stub only: ipc.ts's dispatch asks). */
export function reserved_handler(name: string): Reserved | undefined {
    return reserved.get(name);
}

/** Stub only: ipc.ts hands over the function that runs a user handler with the sender fields set. */
export function bind(fn: Runner): void {
    runner = fn;
}

/** Runs the user's handler for `name` as if the alert came from `pid`. */
export function deliver(name: string, data: string, pid: number, id: number | undefined,
    instance: string | undefined, remote: boolean): void {
    runner!(name, data, pid, id, instance, remote);
}
