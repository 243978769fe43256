/** lua-resty-core's `ngx.process`, as far as ngx.ipc uses it. */

/** @noSelfInFile */
declare module "ngx.process" {
    /** "single" (master_process off), "worker", "master", "privileged agent", ... */
    function type(): string;
}
