// Any Lua value as alert data, for the drop-in modules (events, worker_events):
// the core API carries strings only (the seed contract), the libraries they stand
// in for carry tables, numbers, booleans and nil. LuaJIT's string.buffer is the
// codec: it is in every LuaJIT that OpenResty and Debian ship, and it is fast.
import * as buffer from "string.buffer";

/** The encoding of `value`, or nil and why it cannot be encoded. */
export function encode(value: unknown): LuaMultiReturn<[string] | [undefined, string]> {
    const [ok, s] = pcall(buffer.encode, value);
    if (!ok) {
        return $multi(undefined, `cannot encode the data: ${tostring(s)}`);
    }
    return $multi(s as string);
}

/** The value that `encode` made of `s`, or nil and why `s` is no encoding. */
export function decode(s: string): LuaMultiReturn<[true, unknown] | [false, string]> {
    const [ok, v] = pcall(buffer.decode, s);
    if (!ok) {
        return $multi(false as const, `cannot decode the data: ${tostring(v)}`);
    }
    return $multi(true as const, v);
}
