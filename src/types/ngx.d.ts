/** The parts of lua-nginx-module's `ngx` API that ngx.ipc uses, typed as narrowly as it needs. */

/** @noSelf */
declare namespace ngx {
    const ERR: number;
    const WARN: number;
    const NOTICE: number;
    const ALERT: number;

    function log(level: number, ...parts: unknown[]): void;

    /** "init", "init_worker", "timer", "content", ... */
    function get_phase(): string;

    /** @noSelf */
    namespace worker {
        function pid(): number;
        function exiting(): boolean;
        /** 0 ... count() - 1; nil in a process that is no worker (the privileged agent). */
        function id(): number | undefined;
        function count(): number;
    }

    /** @noSelf */
    namespace timer {
        function at(
            delay: number,
            callback: (this: void, premature: boolean) => void,
        ): LuaMultiReturn<[number, undefined] | [undefined, string]>;
    }
}
