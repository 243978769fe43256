// Publishing: ipc.cluster.broadcast adds the alert to the stream with one script
// call, over a connection from the publishers' pool (keepalive).
import { check_string } from "../args";
import * as dispatch from "../dispatch";
import * as resp from "../resp";
import type { Settings } from "./config";
import { args_of, FLOOR, PUBLISH, run } from "./scripts";
import * as state from "./state";

const counters = state.counters;

type Result = LuaMultiReturn<[true] | [undefined, string]>;

/** Alert names travel in one byte locally (ipc.ts's MAX_NAME). */
const MAX_NAME = 254;

/** Publishers in this worker have made sure the instance's position exists (see FLOOR). */
let floor_done = false;

/** Phases without cosockets. */
const NO_SOCKETS = new LuaTable<string, boolean>();
for (const p of ["init", "init_worker", "set", "header_filter", "body_filter", "log", "balancer", "exit_worker", "ssl_session_store"]) {
    NO_SOCKETS.set(p, true);
}

function publish(s: Settings, name: string, data: string): Result {
    ngx.update_time();
    const t0 = ngx.now();
    const [sock, err] = resp.connect(s.endpoint, s.timeout_ms, s.timeout_ms);
    if (sock === undefined) {
        return $multi(undefined, `ngx.ipc: cluster: cannot reach redis at ${resp.label(s.endpoint)}: ${err}`);
    }
    // connect and the script together take at most `timeout`
    ngx.update_time();
    const left = s.timeout_ms - math.floor((ngx.now() - t0) * 1000);
    if (left < 1) {
        sock.close();
        return $multi(undefined, `ngx.ipc: cluster: redis at ${resp.label(s.endpoint)}: timeout`);
    }
    sock.settimeouts(left, left, left);
    if (!floor_done) {
        const [fargs, fcount] = args_of("3", s.stream, s.seq_key, state.pos_key);
        const [pos, ferr] = run(sock, FLOOR, fargs, fcount);
        if (pos === undefined) {
            sock.close();
            return $multi(undefined, `ngx.ipc: cluster: redis at ${resp.label(s.endpoint)}: ${ferr}`);
        }
        floor_done = true;
    }
    const [args, count] = args_of("2", s.stream, s.seq_key, s.maxlen, state.instance, tostring(ngx.worker.pid()),
        tostring(ngx.worker.id() ?? -1), name, data);
    const [id, perr, usable] = run(sock, PUBLISH, args, count);
    if (id === undefined) {
        if (usable) {
            sock.setkeepalive(s.keepalive_ms, s.endpoint.pool_size);
        } else {
            sock.close();
        }
        return $multi(undefined, `ngx.ipc: cluster: redis at ${resp.label(s.endpoint)}: ${perr}`);
    }
    sock.setkeepalive(s.keepalive_ms, s.endpoint.pool_size);
    return $multi(true);
}

/**
 * Sends an alert to every worker of every instance that shares the stream, this one
 * included. `true` once Redis has it; nil, err when Redis cannot be reached within
 * `timeout` or refuses it, or the alert is over the caps.
 */
export function broadcast(name: unknown, data: unknown): Result {
    const n = check_string("broadcast", 1, name);
    const d = check_string("broadcast", 2, data);
    const s = state.settings;
    if (s === undefined) {
        error("ngx.ipc: ipc.cluster.broadcast: call ipc.cluster.configure first", 2);
    }
    const phase = ngx.get_phase();
    if (NO_SOCKETS.get(phase)) {
        error(`ngx.ipc: ipc.cluster.broadcast cannot be used in ${phase} (no cosockets there); use ngx.timer.at(0, ...)`, 2);
    }
    state.join!("cluster.broadcast");
    if (dispatch.is_reserved(n)) {
        return $multi(undefined, "alert names starting with a NUL byte are reserved for ngx.ipc");
    }
    if (n.length > MAX_NAME) {
        return $multi(undefined, `alert name is longer than ${MAX_NAME} bytes`);
    }
    if (d.length > s.max_data) {
        counters.publish_errors += 1;
        return $multi(undefined, `alert data is ${d.length} bytes, more than max_data (${s.max_data} bytes) for cluster broadcasts`);
    }
    const [ok, err] = publish(s, n, d);
    if (ok === undefined) {
        counters.publish_errors += 1;
        return $multi(undefined, err);
    }
    counters.published += 1;
    return $multi(true);
}
