/// <reference types="@typescript-to-lua/language-extensions" />
// the drop-ins (docs/dropins-*.md), each its own module
/// <reference path="ngx.ipc.events.d.ts" />
/// <reference path="ngx.ipc.events.compat.d.ts" />
/// <reference path="ngx.ipc.worker_events.d.ts" />
/// <reference path="ngx.ipc.worker_events.v2.d.ts" />
/// <reference path="ngx.ipc.mlcache.d.ts" />
/**
 * Types of the `ngx.ipc` Lua module for TypeScriptToLua projects:
 * `import * as ipc from "ngx.ipc"` compiles to `local ipc = require("ngx.ipc")`
 * when the project lists "ngx.ipc" in its tstl `noResolvePaths`. Lua users
 * have the same API in meta/ngx/ipc.lua (lua-language-server).
 *
 * @noSelfInFile
 */

/** @noSelf */
declare module "ngx.ipc" {
    /** `true`, or `nil` and a message: what every sending function returns. */
    export type SendResult = LuaMultiReturn<[true] | [undefined, string]>;

    /**
     * What a handler returns: a string answers an `ipc.call` with that string;
     * `$multi(undefined, "msg")` (or an error raised) answers `nil, "msg"`.
     * Ignored for alerts sent with `send`, `broadcast` and the like.
     */
    export type Answer = void | string | undefined | LuaMultiReturn<[string] | [undefined, string]>;

    /**
     * Runs in this worker's receive loop, one alert at a time, with the alert's
     * data; it may yield (cosockets, `ngx.sleep`), later alerts then wait.
     */
    export type Handler = (this: void, data: string) => Answer;

    /** A worker of the current configuration generation that has joined. */
    export interface Worker {
        /** Its `ngx.worker.id()`, 0 … `ngx.worker.count()` − 1. */
        readonly id: number;
        /** Its `ngx.worker.pid()`. */
        readonly pid: number;
        readonly agent?: undefined;
    }

    /** OpenResty's privileged agent, once it has joined: it has no worker id. */
    export interface Agent {
        readonly id?: undefined;
        /** Its `ngx.worker.pid()`. */
        readonly pid: number;
        readonly agent: true;
    }

    /** The caps `configure` sets; each at least 65536 bytes. */
    export interface Options {
        /** Bytes that may wait in this worker for one destination (default 64 MiB). */
        send_backlog?: number;
        /** Bounds the complete alerts held for this worker's handlers (default 128 MiB). */
        receive_backlog?: number;
    }

    /** This worker's counters, from `stats()`; all zero before it joins. */
    export interface Stats {
        alerts_sent: number;
        bytes_sent: number;
        /** write() calls that put packets into pipes (several small alerts share one). */
        writes: number;
        alerts_received: number;
        bytes_received: number;
        /** Bytes waiting in send queues, all destinations. */
        send_queued: number;
        /** Bytes of complete alerts waiting for handlers, and of alerts still arriving. */
        receive_ready: number;
        receive_partial: number;
        /** Bytes queued per destination pid. */
        backlog: LuaTable<number, number>;
        /** Sends refused with nil, err, by reason. */
        refused: { send_backlog: number; no_worker: number };
        /** Alerts or bytes lost, by reason; each is also logged. */
        dropped: {
            corrupt_packets: number;
            corrupt_bytes: number;
            truncated: number;
            exited: number;
            out_of_memory: number;
        };
        /** `call`: calls sent, answered, timed out, and answers that came too late. */
        calls: { sent: number; answered: number; timeouts: number; late: number };
        /** `cluster`: this worker's part of it. */
        cluster: ClusterStats;
    }

    /** The `cluster` counters of `stats()`. */
    export interface ClusterStats {
        /** `cluster.configure` was called and this worker's part has started. */
        running: boolean;
        /** This worker reads the stream for its instance now. */
        reader: boolean;
        /** The id of the last entry this worker's reader relayed (undefined: it never read). */
        position: string | undefined;
        /** Alerts this worker put into the stream, and broadcasts that returned nil, err. */
        published: number;
        publish_errors: number;
        /** Cluster alerts handed to this worker's handlers. */
        received: number;
        /** Entries this worker's reader handed to its instance. */
        relayed: number;
        /** Times the reader found entries trimmed before it read them. */
        gaps: number;
        /** Alerts this worker never got: trimmed from the stream before its instance read them. */
        lost: number;
        /** Times the reader got its connection back after losing it. */
        reconnects: number;
        /** Entries of the stream, or local alerts, that were not ngx.ipc's: skipped. */
        malformed: number;
        /** Times this worker found that the sentinels name another primary. */
        failovers: number;
        /**
         * Alerts this worker's reader had handed over that a failover took out of the
         * stream (other instances may have missed them).
         */
        failover_lost: number;
        /** Publishes Redis added but that `wait` could not see on enough replicas (nil, err). */
        unreplicated: number;
        /**
         * Relayed alerts this worker let pass: handled already (sent again after a
         * reader's restart or a resend), or after one it had not got yet (then resent).
         */
        skipped: number;
        /**
         * Alerts this worker handled although its predecessor (killed with -9) had begun
         * their handler: the one case handled at least once rather than exactly once.
         */
        redelivered: number;
        /** Times this worker's reader went back to hand alerts over again to a worker that missed them. */
        rewinds: number;
    }

    /**
     * Sends an alert to the worker whose pid is `pid` (a number or a numeric
     * string such as `ngx.var.dst_pid`), this one included; it is handled from
     * that worker's receive loop, never inside `send`.
     * Context: init_worker_by_lua* and later, receive handlers included.
     * @returns `true`; `nil, err` past a limit, for a pid that is no live worker
     * of this instance, or when that worker's send backlog is full.
     */
    export function send(pid: number | string, name: string, data: string): SendResult;

    /**
     * Like `send`, addressed by `ngx.worker.id()` (0 … `ngx.worker.count()` − 1)
     * of the current generation.
     * @returns `true`; `nil, err` as `send`.
     */
    export function send_worker(id: number, name: string, data: string): SendResult;

    /**
     * Sends an alert to every worker of this instance, the sender included.
     * Context: as `send`.
     * @returns `true`; `nil, err` past a limit, or naming the workers whose send
     * backlog was full (the others got the alert).
     */
    export function broadcast(name: string, data: string): SendResult;

    /**
     * Sends an alert to exactly one joined worker, chosen round-robin (the
     * sender only when it is alone); another worker handles it if that one exits first.
     * @returns `true` and the chosen pid; `nil, err` when no worker can take it.
     */
    export function send_any(name: string, data: string): LuaMultiReturn<[true, number] | [undefined, string]>;

    /**
     * Sends an alert to the worker `pid` and waits, yielding, for its handler's
     * answer. Context: wherever `ngx.sleep` works (content, access, rewrite,
     * timers, receive handlers); elsewhere it raises. A call to oneself from a
     * handler, or a cycle of calls between handlers, ends in `nil, "timeout"`.
     * @param timeout seconds, default 5.
     * @returns the handler's answer; `nil, err` when it answered `nil, err` or
     * raised, on `"timeout"`, or for any reason `send` refuses.
     */
    export function call(
        pid: number | string,
        name: string,
        data: string,
        timeout?: number,
    ): LuaMultiReturn<[string] | [undefined, string]>;

    /**
     * `call` addressed by `ngx.worker.id()`.
     * @param timeout seconds, default 5.
     * @returns as `call`.
     */
    export function call_worker(
        id: number,
        name: string,
        data: string,
        timeout?: number,
    ): LuaMultiReturn<[string] | [undefined, string]>;

    /**
     * Registers `handler` for alerts named `name` in this worker, replacing an
     * earlier one; `undefined` deletes it. Alerts with no handler are discarded.
     * Context: init_worker_by_lua* and later; it raises in init_by_lua*.
     * @returns `true`.
     */
    export function receive(name: string, handler: Handler | undefined): true;
    /**
     * Registers several handlers at once, `{ name: handler, ... }`; the whole
     * table is checked before anything changes.
     * @returns `true`.
     */
    export function receive(handlers: Readonly<Record<string, Handler>> | LuaTable<string, Handler>): true;

    /**
     * Inside a receive handler: sends an alert back to the worker that sent the
     * one being handled. Raises anywhere else.
     * @returns what `send` returns.
     */
    export function reply(name: string, data: string): SendResult;

    /**
     * The workers of this generation that have joined, sorted by id, then
     * OpenResty's privileged agent once it has joined (it has no id).
     * @returns `[{ id: 0, pid: 1234 }, ..., { pid: 1240, agent: true }]` (a Lua sequence).
     */
    export function workers(): (Worker | Agent)[];

    /**
     * Sets this worker's caps; either may be left out; a wrong option raises.
     * Context: any, init_by_lua* included (every worker then inherits it).
     * @returns `true`.
     */
    export function configure(options: Options): true;

    /**
     * This worker's counters. Context: any.
     * @returns a fresh table.
     */
    export function stats(): Stats;

    /**
     * Inside a receive handler's own coroutine: the sending worker's pid
     * (`ngx.worker.pid()`); `undefined` at all other times.
     */
    export const sender: number | undefined;

    /** The release of the module, "1.0.0": the same as the npm package's and the rock's. */
    export const _VERSION: string;

    /** Inside a receive handler's own coroutine: the sender's `ngx.worker.id()`. */
    export const sender_id: number | undefined;

    /**
     * Inside a receive handler's own coroutine, for an alert of
     * `cluster.broadcast`: the name of the sending nginx instance.
     */
    export const sender_instance: string | undefined;

    /** Alerts across hosts, over Redis Streams (see the README for every option). */
    export namespace cluster {
        /** The connection and stream, see the README for every option. */
        interface Options {
            /**
             * `"host:port"`, `"[::1]:port"` or `"unix:/path"` of the Redis server;
             * required unless `sentinels` name the primary.
             */
            redis?: string;
            /** A Redis 6 ACL user (with `password`); without it, `AUTH password`. */
            username?: string;
            password?: string;
            /** `SELECT`ed on each new connection (default 0). */
            db?: number;
            /** The stream's name: instances sharing it reach each other. */
            stream?: string;
            /** The stream's length bound (XADD MAXLEN). */
            maxlen?: number;
            /** The longest alert data, in bytes. */
            max_data?: number;
            /** Seconds a `broadcast` may take, connect to reply (default 1). */
            timeout?: number;
            /** Accepted, no longer used: each worker publishes over one pipelined connection. */
            pool_size?: number;
            /** Seconds the publishing connection is kept idle (default 60). */
            keepalive?: number;
            /** TLS to Redis and the sentinels (default false). */
            ssl?: boolean;
            /** Verify the server's certificate against `lua_ssl_trusted_certificate` (default true). */
            ssl_verify?: boolean;
            /** SNI, and the name the certificate must carry (default: `redis`'s host when a name). */
            server_name?: string;
            /** Path of a PEM client certificate (chain), presented when Redis asks; with `ssl_key`. */
            ssl_cert?: string;
            /** Path of its unencrypted PEM private key. */
            ssl_key?: string;
            /** Sentinels (`"host:port"`) that name the primary, instead of `redis`. */
            sentinels?: string[];
            /** The primary's name at the sentinels (required with `sentinels`). */
            master_name?: string;
            /** The sentinels' own login, when they have one. */
            sentinel_username?: string;
            sentinel_password?: string;
            /**
             * WAIT after each pipelined batch: `broadcast` returns true only once
             * `replicas` replicas have the alert (`timeout` in ms, default 100).
             */
            wait?: { replicas: number; timeout?: number };
        }

        /**
         * Joins this instance to the cluster. Context: init_by_lua* or
         * init_worker_by_lua*.
         * @returns `true`; a wrong option raises.
         */
        function configure(options: Options): true;

        /**
         * Sends an alert to every worker of every nginx instance configured with
         * the same Redis and stream, this one included, each exactly once.
         * Context: where cosockets work (rewrite, access, content, timers,
         * receive handlers); elsewhere it raises.
         * It yields until the reply; what a worker broadcasts in one turn of its
         * event loop goes to Redis in one write.
         * @returns `true` once Redis has it (with `wait`: and that many replicas);
         * `nil, err` when Redis cannot take it within `timeout`, the TLS handshake
         * fails, or the alert is over `max_data` (nothing blocks).
         */
        function broadcast(name: string, data: string): SendResult;
    }
}
