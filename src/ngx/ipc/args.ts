// Argument checks shared by the public functions (ipc.ts, ./cluster): errors read
// like Lua's own and point at the caller of the public function.

// bad_argument is called only from a check_* function, which the public function
// calls directly (never as a tail call), hence level 4.
export function bad_argument(fn: string, n: number, expected: string, got: unknown): never {
    error(`bad argument #${n} to '${fn}' (${expected} expected, got ${type(got)})`, 4);
}

/** A string, or a number turned into one (as Lua's string functions do). */
export function check_string(fn: string, n: number, value: unknown): string {
    const t = type(value);
    if (t === "string") {
        return value as string;
    }
    if (t === "number") {
        return tostring(value);
    }
    bad_argument(fn, n, "string", value);
}
