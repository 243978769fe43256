/** lua-resty-core's `ngx.semaphore`, as far as ngx.ipc uses it. */

declare interface NgxSemaphore {
    /** The C semaphore (`ngx_http_lua_sema_t *`); the shim posts it from the read event. */
    readonly sem: CData;
    /** A wait that yielded ends in `false, "timeout"`, one that did not in `nil, "timeout"`. */
    wait(this: NgxSemaphore, seconds: number): LuaMultiReturn<[true] | [false | undefined, string]>;
    post(this: NgxSemaphore, n?: number): void;
}

/** @noSelfInFile */
declare module "ngx.semaphore" {
    function new_(n?: number): LuaMultiReturn<[NgxSemaphore] | [undefined, string]>;
    export { new_ as new };
}
