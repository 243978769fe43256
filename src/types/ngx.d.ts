/** The parts of lua-nginx-module's `ngx` API that ngx.ipc uses, typed as narrowly as it needs. */

/** @noSelf */
declare namespace ngx {
    const ERR: number;
    const WARN: number;
    const NOTICE: number;
    const ALERT: number;
    const INFO: number;
    const DEBUG: number;

    /** Seconds since the epoch, as of the event loop's last time update (ms precision). */
    function now(): number;
    function update_time(): void;
    /** The SHA-1 digest of `s`, 20 bytes. */
    function sha1_bin(s: string): string;
    /** CRC-32 of `s` (the same number in every process). */
    function crc32_short(s: string): number;
    /** Yields the current coroutine (request or timer) for `seconds`. */
    function sleep(seconds: number): void;

    function log(level: number, ...parts: unknown[]): void;

    /** "init", "init_worker", "timer", "content", ... */
    function get_phase(): string;

    namespace config {
        /** "http" or "stream": the subsystem of the Lua VM that runs the code. */
        const subsystem: string | undefined;
    }

    /** @noSelf */
    namespace worker {
        function pid(): number;
        function exiting(): boolean;
        /** 0 ... count() - 1; nil in a process that is no worker (the privileged agent). */
        function id(): number | undefined;
        function count(): number;
    }

    /** @noSelf */
    namespace socket {
        /** A cosocket; where cosockets are unavailable (init_worker, log, ...) creating one raises. */
        function tcp(): NgxTcpSocket;
    }

    /** @noSelf */
    namespace timer {
        function at(
            delay: number,
            callback: (this: void, premature: boolean) => void,
        ): LuaMultiReturn<[number, undefined] | [undefined, string]>;
    }
}

/** The options of tcpsock:connect that ngx.ipc uses (pool naming and size, lua-nginx-module >= 0.10.14). */
declare interface NgxConnectOptions {
    pool?: string;
    pool_size?: number;
}

/** lua-nginx-module's cosocket, as far as ngx.ipc uses it (timeouts in milliseconds). */
declare interface NgxTcpSocket {
    connect(this: NgxTcpSocket, host: string, port: number, options?: NgxConnectOptions): LuaMultiReturn<[1] | [undefined, string]>;
    /** "unix:/path/to/socket" */
    connect(this: NgxTcpSocket, path: string, options?: NgxConnectOptions): LuaMultiReturn<[1] | [undefined, string]>;
    settimeouts(this: NgxTcpSocket, connect_ms: number, send_ms: number, read_ms: number): void;
    /** A table of strings is written as their concatenation, without making it. */
    send(this: NgxTcpSocket, data: string | LuaTable<number, string>): LuaMultiReturn<[number] | [undefined, string]>;
    /** "*l": a line without its CR LF; a number: exactly that many bytes. */
    receive(this: NgxTcpSocket, pattern: "*l" | number): LuaMultiReturn<[string] | [undefined, string, string]>;
    setkeepalive(this: NgxTcpSocket, idle_ms: number, pool_size: number): LuaMultiReturn<[1] | [undefined, string]>;
    /** How often this connection came out of the pool (0: a new connection). */
    getreusedtimes(this: NgxTcpSocket): LuaMultiReturn<[number] | [undefined, string]>;
    close(this: NgxTcpSocket): LuaMultiReturn<[1] | [undefined, string]>;
}
