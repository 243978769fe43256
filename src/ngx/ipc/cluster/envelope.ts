// The local side of a relayed entry: the reserved local alert that carries it to
// every worker of the instance, its envelope, and every worker's handler of it, which
// decodes the envelope and hands the alert to the user's handler (dispatch.invoke).
import * as dispatch from "../dispatch";
import * as state from "./state";

const counters = state.counters;

/** The local alert that carries a stream entry to every worker of the instance. */
export const LOCAL_NAME = `${dispatch.RESERVED}cluster`;
/** Bytes a local broadcast adds per packet, and per alert, beyond name and data (an upper bound). */
const PACKET_OVERHEAD = 64;
const PACKET_PAYLOAD = 4000;

/** Header "instance_len pid worker_id name_len\n", then instance, name and data. */
export function encode(inst: string, pid: string, wid: string, name: string, data: string): string {
    return `${inst.length} ${pid} ${wid} ${name.length}\n${inst}${name}${data}`;
}

/** Upper bound of the bytes a local broadcast of `size` envelope bytes puts in a queue. */
export function packed(size: number): number {
    return LOCAL_NAME.length + size + PACKET_OVERHEAD * (2 + math.floor(size / PACKET_PAYLOAD));
}

function on_local(_from: number, env: string): void {
    const [nl] = string.find(env, "\n", 1, true);
    if (nl === undefined) {
        counters.malformed += 1;
        return;
    }
    const [ilen, pid, wid, nlen] = string.match(string.sub(env, 1, nl - 1), "^(%d+) (%d+) (%-?%d+) (%d+)$");
    if (nlen === undefined) {
        counters.malformed += 1;
        return;
    }
    const i = tonumber(ilen)!;
    const n = tonumber(nlen)!;
    const inst = string.sub(env, nl + 1, nl + i);
    const name = string.sub(env, nl + i + 1, nl + i + n);
    const id = tonumber(wid)!;
    counters.received += 1;
    dispatch.invoke(name, string.sub(env, nl + i + n + 1), tonumber(pid)!, id < 0 ? undefined : id,
        inst, inst !== state.instance);
}

/** Registers this worker's handler of the local alert. */
export function listen(): void {
    dispatch.reserve(LOCAL_NAME, on_local);
}
