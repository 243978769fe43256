/** LuaJIT's `string.buffer` (2.1), as far as the drop-in modules use it. */

/** @noSelfInFile */
declare module "string.buffer" {
    /** Serializes a Lua value; raises on what it cannot encode (functions, userdata, cycles, ...). */
    function encode(value: unknown): string;
    /** The value `encode` made; raises on a string that is no encoding. */
    function decode(s: string): unknown;
}
