/** The parts of lua-nginx-module's `ngx` API that the ngx.ipc.events drop-in adds to ngx.d.ts's. */

/** @noSelf */
declare namespace ngx {
    const DEBUG: number;

    /** The CRC-32 of `s` (lua-nginx-module's variant for short strings). */
    function crc32_short(s: string): number;
    /** The MD5 digest of `s`, in hexadecimal. */
    function md5(s: string): string;
}
