// ngx.ipc across hosts: alerts that reach every worker of every nginx instance that
// shares a Redis stream. Publishers add entries to the stream (one script call each:
// a sequence number and XADD with a length bound; pipelined per worker); one reader per instance (worker 0
// while it holds a lease in Redis) reads the stream with a blocking XREAD and hands
// each entry to its own instance with the local broadcast, under a reserved name that
// every worker decodes and hands to the user's handler (dispatch.invoke).
//
// Keys, for stream S and instance I (host/master pid/master start time):
//   S                 the stream; fields s (sequence), i, p, w (origin instance, pid,
//                     worker id), n (name), d (data)
//   S:seq             the last sequence number given out; a jump between two entries
//                     the reader gets is the count of entries trimmed before it read them
//   S:reader:I        the lease: the reading worker's token, with a TTL it renews
//   S:pos:I           "id seq" of the last entry the instance's reader handed over; the
//                     next reader (after a reload or a crash) starts after it
//
// This file is the cluster's face to ipc.ts; the parts, each used only from above:
//   cluster/publish.ts   broadcast: the alert into the stream, pipelined per worker
//   cluster/link.ts      where to connect: the primary, or the one the sentinels name
//   cluster/reader.ts    worker 0: lease, position, XREAD, hand-over, gaps, backoff
//   cluster/envelope.ts  the reserved local alert: envelope and every worker's handler
//   cluster/scripts.ts   the Lua scripts run in Redis, EVALSHA/EVAL
//   cluster/state.ts     what they share: settings, join, the instance, counters
//   cluster/config.ts    configure's options: checks and defaults
import type { ClusterStats } from "ngx.ipc";
import { check_options } from "./cluster/config";
import * as envelope from "./cluster/envelope";
import * as reader from "./cluster/reader";
import * as state from "./cluster/state";

export { broadcast } from "./cluster/publish";
export { attach } from "./cluster/state";

const counters = state.counters;

/**
 * Sets where the cluster's Redis is and starts this worker's part (its handler, and
 * the reader in worker 0) when the worker has joined or joins now; in init_by_lua*
 * the workers inherit the settings and start their part when they join.
 */
export function configure(options: unknown): true {
    const s = check_options(options);
    if (state.running) {
        error("ngx.ipc: ipc.cluster.configure: this worker's cluster part has started already; configure once, in init_by_lua* or init_worker_by_lua*", 2);
    }
    state.set_settings(s);
    if (ngx.get_phase() !== "init") {
        state.join!("cluster.configure");
        // joining calls joined() when the worker was not in yet; when it was, start here
        joined();
    }
    return true;
}

/**
 * Called by ipc.ts once this worker has joined (and by configure): registers the
 * handler of the local alert and, in worker 0, starts the reader.
 */
export function joined(): void {
    const s = state.settings;
    if (state.running || s === undefined) {
        return;
    }
    state.start(s);
    // the instance (its master's start as wall-clock time) tells a master from one with
    // the same pid and start in clock ticks after a reboot
    envelope.listen(`${s.stream}\n${s.endpoint.pool}\n${state.instance}`);
    if (ngx.worker.id() === 0) {
        reader.start();
    }
}

export function stats(): ClusterStats {
    return {
        running: state.running,
        reader: reader.reading(),
        position: reader.last_relayed(),
        published: counters.published,
        publish_errors: counters.publish_errors,
        received: counters.received,
        relayed: counters.relayed,
        gaps: counters.gaps,
        lost: counters.lost,
        reconnects: counters.reconnects,
        malformed: counters.malformed,
        failovers: counters.failovers,
        failover_lost: counters.failover_lost,
        unreplicated: counters.unreplicated,
        skipped: counters.skipped,
        redelivered: counters.redelivered,
        rewinds: counters.rewinds,
    };
}
