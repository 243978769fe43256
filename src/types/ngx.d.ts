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
    }

    /** @noSelf */
    namespace timer {
        function at(
            delay: number,
            callback: (this: void, premature: boolean) => void,
        ): LuaMultiReturn<[number, undefined] | [undefined, string]>;
    }
}
