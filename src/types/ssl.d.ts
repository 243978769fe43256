/** lua-resty-core's `ngx.ssl`, as far as ngx.ipc uses it: parsing a client certificate and key. */

/** @noSelfInFile */
declare module "ngx.ssl" {
    /** A PEM certificate chain, parsed for tcpsock:setclientcert. */
    function parse_pem_cert(pem: string): LuaMultiReturn<[CData] | [undefined, string]>;
    /** A PEM private key (not encrypted), parsed for tcpsock:setclientcert. */
    function parse_pem_priv_key(pem: string): LuaMultiReturn<[CData] | [undefined, string]>;
}
