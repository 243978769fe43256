/** The one part of lua-nginx-module's `ngx` this sample uses. */

/** @noSelf */
declare namespace ngx.worker {
    function id(): number;
}
