// Where the cluster connects: to the primary named by `redis`, or to the one the
// sentinels name (SENTINEL get-master-addr-by-name, then ROLE on the server itself,
// since a sentinel may not have seen a failover yet). Publishers and the reader both
// come through here, each time they need a new connection.
import * as resp from "../resp";
import type { Settings } from "./config";
import * as state from "./state";

/** "host:port" of the primary this worker last connected to through the sentinels. */
let primary = "";

/** The primary's address according to one sentinel. */
function ask(sentinel: resp.Endpoint, name: string, connect_ms: number, io_ms: number): LuaMultiReturn<[string, number] | [undefined, string]> {
    const [sock, err] = resp.connect(sentinel, connect_ms, io_ms);
    if (sock === undefined) {
        return $multi(undefined, `sentinel ${resp.label(sentinel)}: ${err}`);
    }
    const [a, n] = resp.args("SENTINEL", "get-master-addr-by-name", name);
    const [r, rerr] = resp.call(sock, a, n);
    sock.close();
    if (r === undefined) {
        return $multi(undefined, `sentinel ${resp.label(sentinel)}: ${rerr}`);
    }
    if (type(r) !== "table") {
        return $multi(undefined, `sentinel ${resp.label(sentinel)} knows no primary named "${name}"`);
    }
    const t = r as LuaTable<number, resp.Reply>;
    const port = tonumber(t.get(2));
    if (type(t.get(1)) !== "string" || port === undefined) {
        return $multi(undefined, `sentinel ${resp.label(sentinel)}: bad reply to get-master-addr-by-name`);
    }
    return $multi(t.get(1) as string, port);
}

/** nil, err unless the server behind sock says it is a primary (ROLE). */
function check_role(sock: NgxTcpSocket, where: string): LuaMultiReturn<[true] | [undefined, string]> {
    const [a, n] = resp.args("ROLE");
    const [r, err] = resp.call(sock, a, n);
    if (r === undefined) {
        return $multi(undefined, `${where}: ${err}`);
    }
    const role = type(r) === "table" ? (r as LuaTable<number, resp.Reply>).get(1) : r;
    if (role !== "master") {
        return $multi(undefined, `${where} is a ${tostring(role)}, not the primary (a failover is under way)`);
    }
    return $multi(true);
}

function at(base: resp.Endpoint, host: string, port: number): resp.Endpoint {
    return {
        host, port, username: base.username, password: base.password, db: base.db,
        pool: `${base.pool}:${host}:${port}`, pool_size: base.pool_size, tls: base.tls,
    };
}

/**
 * A connection to the current primary; `base` gives the login, TLS and db (and, without
 * sentinels, the address). With sentinels, each is asked in turn until one names a
 * server that answers ROLE as the primary.
 */
export function connect(s: Settings, base: resp.Endpoint, connect_ms: number, io_ms: number): resp.Result<NgxTcpSocket> {
    if (s.sentinels === undefined) {
        return resp.connect(base, connect_ms, io_ms);
    }
    let last = "no sentinel answered";
    for (const sentinel of s.sentinels) {
        const [host, port] = ask(sentinel, s.master_name, connect_ms, io_ms);
        if (host === undefined) {
            last = port as string;
        } else {
            const ep = at(base, host, port as number);
            const where = `${host}:${port}`;
            const [sock, err] = resp.connect(ep, connect_ms, io_ms);
            if (sock === undefined) {
                last = `${where}: ${err}`;
            } else {
                const [ok, rerr] = check_role(sock, where);
                if (ok !== undefined) {
                    if (primary !== where) {
                        if (primary !== "") {
                            state.counters.failovers += 1;
                            ngx.log(ngx.NOTICE, "ngx.ipc: cluster: the primary of ", s.master_name, " moved from ",
                                primary, " to ", where);
                        }
                        primary = where;
                    }
                    return $multi(sock);
                }
                sock.close();
                last = rerr;
            }
        }
    }
    return $multi(undefined, `no primary for "${s.master_name}" from the sentinels: ${last}`);
}

/** Where connect() would go, for messages: "host:port", or the master name with sentinels. */
export function label(s: Settings, base: resp.Endpoint): string {
    if (s.sentinels === undefined) {
        return resp.label(base);
    }
    return primary === "" ? `"${s.master_name}"` : `"${s.master_name}" (${primary})`;
}
