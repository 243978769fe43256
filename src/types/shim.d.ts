/** The C shim (c/ngx_ipc.h) as LuaJIT's FFI presents it to Lua. */

declare interface IpcAlert extends CData {
    sender: number;
    name_len: number;
    data_len: number;
    lent: number;
    name: CData;
    data: CData;
}

/** uint64_t fields arrive as boxed 64-bit cdata; tonumber() turns them into numbers. */
declare interface IpcCounters extends CData {
    [field: string]: CData;
}

/** A C array (`T[?]`), indexed from 0 like in C. */
declare interface CArray extends CData {
    [index: number]: CData;
}

/** @noSelf */
declare interface IpcShimLib {
    ngx_ipc_configure(send_backlog: number, receive_backlog: number): number;
    ngx_ipc_start(sema: CData, subsystem: string, id: number, count: number): number;
    ngx_ipc_start_standalone(dir: string, pid: number): number;
    ngx_ipc_send(pid: number, name: string, nameLen: number, data: string, dataLen: number): number;
    ngx_ipc_broadcast(name: string, nameLen: number, data: string, dataLen: number): number;
    ngx_ipc_send_worker(id: number, name: string, nameLen: number, data: string, dataLen: number): number;
    ngx_ipc_send_any(name: string, nameLen: number, data: string, dataLen: number): number;
    ngx_ipc_worker_id(pid: number): number;
    ngx_ipc_workers(ids: CArray, pids: CArray, n: number): number;
    ngx_ipc_lend(ref: number): void;
    ngx_ipc_recv(consumer: number, alert: IpcAlert): number;
    ngx_ipc_poll(): number;
    ngx_ipc_feed(buf: string, len: number): number;
    ngx_ipc_counters(out: IpcCounters): void;
    ngx_ipc_dropped(): number;
    ngx_ipc_release(consumer: number): void;
    ngx_ipc_want(consumer: number, name: string, nameLen: number, on: number): number;
    ngx_ipc_wanted_by(name: string, nameLen: number): number;
    ngx_ipc_consumers(): number;
    ngx_ipc_backlog(pids: CArray, bytes: CArray, n: number): number;
    ngx_ipc_last_error(): CData;
    ngx_ipc_dir(): CData;
}
