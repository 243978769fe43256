// Misuses the declaration must refuse (t/integration/typed_spec.lua type-checks
// this file alone): each line that ends in "// TSnnnn" must fail with that code,
// and nothing else may fail.
import * as ipc from "ngx.ipc";

ipc.send(1, {}, "x"); // TS2345
ipc.send(1, "name"); // TS2554
ipc.receive("n", (data: string) => data.length); // TS2345
ipc.sender = 1; // TS2540
const [answer] = ipc.call_worker(0, "n", "d");
const n: number = answer; // TS2322
export const size = answer.length; // TS18048
ipc.configure({ send_backlog: 65536, size: 1 }); // TS2353
export const w: number = ipc.workers()[0].name; // TS2339
export { n };
