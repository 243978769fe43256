/** LuaJIT's `ffi` library, as far as ngx.ipc uses it. */

/** An opaque C value (pointer, struct, number box) owned by LuaJIT. */
declare interface CData {
    readonly __cdataBrand: never;
}

/** @noSelfInFile */
declare module "ffi" {
    export function cdef(declarations: string): void;
    export function load(path: string, global?: boolean): unknown;
    export function string(ptr: CData, len?: number): string;
    /** The C library namespace: functions declared with cdef resolve in the process. */
    export const C: unknown;
    export function cast(ctype: string, value: unknown): unknown;
    /** errno as the last C call through ffi left it. */
    export function errno(): number;
    function new_(ctype: string, size?: number): unknown;
    export { new_ as new };
    /** The ctype of a declaration; raises when it is not declared. */
    function typeof_(ctype: string): unknown;
    export { typeof_ as typeof };
}

/**
 * Lua's `package` library (its name is reserved in TypeScript's strict mode).
 * @customName package
 */
declare const lua_package: {
    readonly cpath: string;
    /** @noSelf */
    searchpath(name: string, path: string): LuaMultiReturn<[string] | [undefined, string]>;
};
