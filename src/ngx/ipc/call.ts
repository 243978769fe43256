// Request / response. A call is an alert on a reserved name carrying a call id; the
// handler at the other end runs like any other, and what it returns travels back as
// an alert on another reserved name. The caller waits on a semaphore of its own,
// which the answer posts from the receive loop, so waiting never blocks the worker
// and a thousand calls may be in flight at once.
// A worker may run two Lua VMs (http and stream): the request names the calling
// VM's consumer number, and the answer goes back under that VM's own reserved
// name; of the VMs at the other end, the first with a handler for the name runs it.
import * as semaphore from "ngx.semaphore";
import * as dispatch from "./dispatch";
import * as shim from "./shim";

const REQUEST = "\0call";
const ANSWER = "\0answer";
const ANSWER_OK = "1";
const ANSWER_ERR = "0";

interface Pending {
    sema: NgxSemaphore;
    value?: string;
    err?: string;
}

const pending = new LuaTable<number, Pending>();
/** This VM's consumer number, and the name its answers come back under. */
let consumer = 0;
let answer_name = ANSWER;
// Semaphores of finished calls, reused: a call creates none in the steady state.
const spare: NgxSemaphore[] = [];
let last_id = 0;

export const counters = { sent: 0, answered: 0, timeouts: 0, late: 0 };

type Answer = LuaMultiReturn<[string] | [undefined, string]>;
type Send = (this: void, to: number, name: string, data: string) => LuaMultiReturn<[true] | [undefined, string]>;

function take_sema(): LuaMultiReturn<[NgxSemaphore] | [undefined, string]> {
    const sema = spare.pop();
    if (sema !== undefined) {
        return $multi(sema);
    }
    return semaphore.new(0);
}

/**
 * Sends `name`/`data` as a call with `send` (to a pid or a worker id) and waits up
 * to `timeout` seconds for the answer.
 */
export function call(send: Send, to: number, name: string, data: string, timeout: number): Answer {
    const [sema, serr] = take_sema();
    if (sema === undefined) {
        return $multi(undefined, `ngx.ipc: cannot create a semaphore: ${serr}`);
    }
    last_id = last_id + 1;
    const id = last_id;
    const [ok, err] = send(to, REQUEST, `${id} ${consumer} ${name.length} ${name}${data}`);
    if (ok === undefined) {
        spare.push(sema);
        return $multi(undefined, err);
    }
    counters.sent++;
    const p: Pending = { sema };
    pending.set(id, p);
    // Nothing runs between the wait's end and the delete: no answer can post
    // this semaphore later, so it is reused whatever happened.
    const [woke] = sema.wait(timeout);
    pending.delete(id);
    spare.push(sema);
    if (woke !== true) {
        counters.timeouts++;
        return $multi(undefined, "timeout");
    }
    counters.answered++;
    if (p.value !== undefined) {
        return $multi(p.value);
    }
    return $multi(undefined, p.err!);
}

/** What a handler's results answer: a string, or nil and a message. */
function answer_of(name: string, status: string, a: unknown, b: unknown): LuaMultiReturn<[string, string]> {
    if (status === "none") {
        return $multi(ANSWER_ERR, `no handler for alert "${name}" in worker ${ngx.worker.pid()}`);
    }
    if (status === "error") {
        return $multi(ANSWER_ERR, tostring(a));
    }
    const t = type(a);
    if (t === "string" || t === "number") {
        return $multi(ANSWER_OK, tostring(a));
    }
    if (a === undefined) {
        return $multi(ANSWER_ERR, b === undefined ? `the handler for alert "${name}" returned no answer` : tostring(b));
    }
    ngx.log(ngx.ERR, `ngx.ipc: the handler for alert "${name}" answered a call with a ${t} (string expected)`);
    return $multi(ANSWER_ERR, `the handler for alert "${name}" answered with a ${t} (string expected)`);
}

/**
 * Whether this VM answers a call to `name`: with several VMs in the process,
 * the first with a handler for it, or, when none has one, the first that takes
 * calls (it answers that there is no handler).
 */
function answers(name: string): boolean {
    if (shim.consumers() < 2) {
        return true;
    }
    const first = shim.wanted_by(name);
    return first === consumer || (first < 0 && shim.wanted_by(REQUEST) === consumer);
}

function on_request(from: number, envelope: string): void {
    // A position capture gives a number, which lua-types cannot express.
    const [id, caller, len, at] = string.match(envelope, "^(%d+) (%d+) (%d+) ()");
    if (id === undefined) {
        return;
    }
    const start = tonumber(at)!;
    const stop = start + tonumber(len)!;
    const name = string.sub(envelope, start, stop - 1);
    if (!answers(name)) {
        return;
    }
    const [status, a, b] = dispatch.invoke(name, string.sub(envelope, stop), from, undefined, undefined, false);
    const [kind, text] = answer_of(name, status, a, b);
    const back = caller === "0" ? ANSWER : ANSWER + caller;
    const [ok, err] = shim.send(from, back, `${id} ${kind}${text}`);
    if (ok === undefined) {
        ngx.log(ngx.ERR, `ngx.ipc: cannot answer the call "${name}" of worker ${from}: ${err}`);
    }
}

function on_answer(_from: number, envelope: string): void {
    const [id, kind, at] = string.match(envelope, "^(%d+) ([01])()");
    const p = id === undefined ? undefined : pending.get(tonumber(id)!);
    if (p === undefined) {
        counters.late++;
        return;
    }
    const text = string.sub(envelope, tonumber(at)!);
    if (kind === ANSWER_OK) {
        p.value = text;
    } else {
        p.err = text;
    }
    p.sema.post(1);
}

dispatch.reserve(REQUEST, on_request);
dispatch.reserve(ANSWER, on_answer);

/** This VM joined as consumer `c`: answers to its calls come under a name of its own. */
export function joined(c: number): void {
    if (c === consumer) {
        return;
    }
    dispatch.reserve(answer_name, undefined);
    consumer = c;
    answer_name = c === 0 ? ANSWER : ANSWER + tostring(c);
    dispatch.reserve(answer_name, on_answer);
}
