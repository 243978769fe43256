// The reader: worker 0 of each instance, while it holds the instance's lease in
// Redis, reads the stream with a blocking XREAD from the instance's saved position
// and hands each entry to every worker with the local broadcast (./envelope), as fast
// as the workers' backlogs let it (FLOW); it saves the instance's position (the
// least position of the worker slots, ./slots) and renews the lease as it goes,
// resends from a slot's position when its worker asks (a replacement of a worker
// killed with -9), counts the entries trimmed before it read them (gaps), and
// reconnects with backoff when Redis goes away.
import * as resp from "../resp";
import * as shim from "../shim";
import { encode, LOCAL_NAME, packed } from "./envelope";
import * as link from "./link";
import { ACQUIRE, args_of, COMMIT, load, RAISE, run, script_args } from "./scripts";
import * as slots from "./slots";
import * as state from "./state";

const counters = state.counters;

/**
 * The smallest send_backlog and receive_backlog the shim accepts. The reader hands
 * an entry over only while what waits for any destination, itself included, plus the
 * entry fits in it (or nothing waits), so the local broadcast is never refused for a
 * full backlog, which would leave the entry with some workers and not others.
 */
const FLOW = 65536;
/**
 * The entries of one XREAD reply share a local broadcast up to this many envelope
 * bytes (an entry larger than that goes alone): one write per worker and one wake-up
 * of its receive loop for many entries, and well within FLOW.
 */
const ENVELOPE = 16384;
/** How long a reader's lease lasts without renewal; it renews at least every BLOCK_MS. */
const LEASE_MS = 5000;
/** XREAD's BLOCK: also how long a quitting reader may wait before it notices. */
const BLOCK_MS = 1000;
/** The reader saves its position (and renews the lease) at most this often, in seconds. */
const SAVE_EVERY = 0.1;
/** How often a worker 0 that does not hold the lease asks for it again. */
const LEASE_POLL = 0.2;
/** Reconnect backoff: from BACKOFF_MIN doubling to BACKOFF_MAX seconds. */
const BACKOFF_MIN = 0.05;
const BACKOFF_MAX = 2;


let sock: NgxTcpSocket | undefined;
let holding = false;
let token = "";
/**
 * Where XREAD goes on from: "" until the lease is first taken, then the instance's
 * position ("0-0" for an empty stream), then the last entry read.
 */
let last_id = "";
/** The last entry handed over (or the start) and its sequence number: each envelope names it. */
let tail_id = "";
let tail_seq = 0;
/** The highest sequence number handed over: a resend counts no gap below it. */
let high = 0;
/** Per worker slot, the request to resend (slots.want_of) already served. */
const served = new LuaTable<number, string>();
let failures = 0;
/** When the position was last saved (ngx.now()). */
let saved_at = 0;
let down_since: number | undefined;
/** Upper bounds of what waits for one destination, and in this worker, since the last look (FLOW). */
let queued = 0;
let held = 0;

function id_text(pos: slots.Position): string {
    return string.format("%.0f-%.0f", pos.ms, pos.n);
}

/** The instance's position: the least of its worker slots', else the last entry handed over. */
function position(): string {
    const low = slots.ready() ? slots.least(ngx.worker.count()) : undefined;
    if (low !== undefined) {
        return `${id_text(low)} ${string.format("%.0f", low.seq)}`;
    }
    return `${tail_id} ${tail_seq}`;
}

/** A stream id's parts ("ms-n"), read byte by byte (no string per entry); 0, 0 if it is not one. */
function id_of(id: string): LuaMultiReturn<[number, number]> {
    let ms = 0;
    let i = 1;
    let c = string.byte(id, 1) - 48;
    while (c >= 0 && c <= 9) {
        ms = ms * 10 + c;
        i += 1;
        c = (string.byte(id, i) ?? 0) - 48;
    }
    if (i === 1 || string.byte(id, i) !== 45) { // -
        return $multi(0, 0);
    }
    let n = 0;
    for (let k = i + 1; k <= id.length; k++) {
        const d = string.byte(id, k) - 48;
        if (d < 0 || d > 9) {
            return $multi(0, 0);
        }
        n = n * 10 + d;
    }
    return $multi(ms, n);
}

/** Whether stream id a comes after b ("ms-seq"). */
function after(a: string, b: string): boolean {
    const [am, as] = string.match(a, "^(%d+)%-(%d+)$");
    const [bm, bs] = string.match(b, "^(%d+)%-(%d+)$");
    const ma = tonumber(am) ?? 0;
    const mb = tonumber(bm) ?? 0;
    return ma > mb || (ma === mb && (tonumber(as) ?? 0) > (tonumber(bs) ?? 0));
}

/** Sleeps `seconds` in steps, returning early (false) once the worker is exiting. */
function pause(seconds: number): boolean {
    ngx.update_time();
    const deadline = ngx.now() + seconds;
    while (!ngx.worker.exiting()) {
        const left = deadline - ngx.now();
        if (left <= 0) {
            return true;
        }
        // never below 1 ms: ngx.sleep(0) logs a warning on every call on stock nginx
        ngx.sleep(math.max(0.001, math.min(left, 0.25)));
        ngx.update_time();
    }
    return false;
}

function drop_connection(err: string): void {
    if (sock !== undefined) {
        sock.close();
        sock = undefined;
    }
    failures += 1;
    ngx.update_time();
    if (down_since === undefined) {
        down_since = ngx.now();
        ngx.log(ngx.ERR, "ngx.ipc: cluster reader: redis at ", link.label(state.settings!, state.settings!.reader_endpoint), ": ", err,
            "; reconnecting with backoff, resuming after ", last_id === "" ? "the instance's position" : last_id);
    }
    const delay = math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** math.min(failures - 1, 10));
    pause(delay * (0.5 + math.random() * 0.5));
}

function open(): boolean {
    const s = state.settings!;
    const [c, err] = link.connect(s, s.reader_endpoint, s.timeout_ms, BLOCK_MS + s.timeout_ms);
    if (c === undefined) {
        drop_connection(err);
        return false;
    }
    // step() pipelines COMMIT with XREAD
    const [sha, lerr] = load(c, COMMIT);
    if (sha === undefined) {
        c.close();
        drop_connection(lerr);
        return false;
    }
    if (high > 0) {
        // A failover may have lost the newest entries and increments: numbering goes
        // on above what this reader saw, so readers that had not read them see a gap.
        const [rargs, rcount] = args_of("1", s.seq_key, tostring(high));
        const [raised, rerr] = run(c, RAISE, rargs, rcount);
        if (raised === undefined) {
            c.close();
            drop_connection(rerr);
            return false;
        }
    }
    sock = c;
    if (down_since !== undefined) {
        counters.reconnects += 1;
        ngx.update_time();
        ngx.log(ngx.NOTICE, "ngx.ipc: cluster reader: redis at ", link.label(s, s.reader_endpoint), " is back after ",
            string.format("%.1f", ngx.now() - down_since), " s");
        down_since = undefined;
    }
    return true;
}

/** A holder on this host that is no longer a worker of this master has died: its lease can go. */
function holder_dead(holder: string): boolean {
    const [pid] = string.match(holder, "^(%d+):");
    if (pid === undefined) {
        return false;
    }
    return !state.our_worker(pid);
}

/** Takes the lease when it is free (or its holder died); false when someone else holds it. */
function acquire(expect: string): boolean | undefined {
    const [args, count] = args_of("4", state.lease_key, state.pos_key, state.settings!.stream, state.settings!.seq_key,
        token, tostring(LEASE_MS), expect);
    const [r, err] = run(sock!, ACQUIRE, args, count);
    if (r === undefined || type(r) !== "table") {
        drop_connection(err ?? "bad reply to the lease script");
        return undefined;
    }
    const reply = r as LuaTable<number, resp.Reply>;
    if (reply.get(1) !== 1) {
        const holder = tostring(reply.get(2));
        if (expect === "" && holder_dead(holder)) {
            return acquire(holder);
        }
        return false;
    }
    const [id, seq] = string.match(tostring(reply.get(2)), "^(%S+) (%d+)$");
    const workers = ngx.worker.count();
    const low = slots.ready() ? slots.least(workers) : undefined;
    if (low !== undefined) {
        // where the slot that is furthest behind stands: the workers pass over what they had
        last_id = id_text(low);
        tail_seq = low.seq;
    } else if (last_id === "" || (reply.get(3) !== 1 && after(id, last_id))) {
        // This worker's own position wins over one made fresh (the key had expired or
        // was lost) and over an older one (the last save did not reach Redis).
        last_id = id ?? "0-0";
        tail_seq = tonumber(seq) ?? 0;
    }
    tail_id = last_id;
    high = math.max(high, tail_seq);
    if (slots.ready()) {
        const [ms, n] = string.match(last_id, "^(%d+)%-(%d+)$");
        slots.set_base({ ms: tonumber(ms) ?? 0, n: tonumber(n) ?? 0, seq: tail_seq });
        for (let i = 0; i < slots.span(workers); i++) {
            served.set(i, slots.want_of(i));
        }
        slots.sweep_stale();
    }
    holding = true;
    ngx.log(ngx.NOTICE, "ngx.ipc: cluster reader: worker ", ngx.worker.pid(), " reads ", state.settings!.stream,
        " for ", state.instance, " after ", last_id);
    return true;
}

/** COMMIT's arguments: save the position, and renew the lease ("0") or release it ("1"). */
function commit_args(release: string): LuaMultiReturn<[LuaTable<number, string>, number]> {
    return args_of("2", state.lease_key, state.pos_key, token, tostring(LEASE_MS), position(), release);
}

/** Saves the position and renews the lease (or releases it): false when it was lost. */
function commit(release: boolean): boolean | undefined {
    const [args, count] = commit_args(release ? "1" : "0");
    const [r, err] = run(sock!, COMMIT, args, count);
    if (r === undefined) {
        drop_connection(err);
        return undefined;
    }
    if (r !== 1) {
        lost_lease();
        return false;
    }
    return true;
}

function lost_lease(): void {
    holding = false;
    ngx.log(ngx.WARN, "ngx.ipc: cluster reader: worker ", ngx.worker.pid(), " lost the lease of ", state.instance,
        " (it was not renewed in time); stops reading after ", last_id);
}

function fits(size: number): boolean {
    return (queued === 0 || queued + size <= FLOW) && (held === 0 || held + size <= FLOW);
}

/**
 * Waits until an entry of `size` bytes can be handed over without a backlog refusing
 * it (FLOW), renewing the lease meanwhile. false: the worker is exiting, or the lease
 * or the connection was lost.
 */
function room(size: number): boolean {
    let renewed = ngx.now();
    while (!fits(size)) {
        const c = shim.counters();
        queued = c.send_queued;
        held = c.receive_ready + c.receive_partial;
        if (fits(size)) {
            break;
        }
        // the receive loop of this worker, and the pipes, drain meanwhile
        if (!pause(0.001)) {
            return false;
        }
        if (ngx.now() - renewed >= BLOCK_MS / 1000) {
            if (commit(false) !== true) {
                return false;
            }
            renewed = ngx.now();
        }
    }
    queued += size;
    held += size;
    return true;
}

/**
 * The entries of the last XREAD reply, by position (reused: no table per entry);
 * undefined where the entry lacks the field or it is not a number where one is due.
 */
const e_id = new LuaTable<number, string>();
const e_seq = new LuaTable<number, number | undefined>();
const e_inst = new LuaTable<number, string | undefined>();
const e_pid = new LuaTable<number, number | undefined>();
const e_wid = new LuaTable<number, number | undefined>();
const e_name = new LuaTable<number, string | undefined>();
const e_data = new LuaTable<number, string | undefined>();

/** Field names of an ngx.ipc entry, by their byte. */
const F_S = 115;
const F_I = 105;
const F_P = 112;
const F_W = 119;
const F_N = 110;
const F_D = 100;

type Read = LuaMultiReturn<[number, undefined] | [undefined, string]>;

const BULK = 36;
const ARRAY = 42;

/**
 * The next element's header, which must be of `kind` with a number of at least
 * `least`: that number; undefined, err otherwise (the connection is then dropped:
 * what follows in it cannot be framed).
 */
function expect(c: resp.Cursor, kind: number, least: number, what: string): Read {
    const [k, v] = resp.head(sock!, c);
    if (k === undefined) {
        return $multi(undefined, v as string);
    }
    if (k !== kind || (v as number) < least) {
        return $multi(undefined, `bad reply from redis to XREAD: ${what}`);
    }
    return $multi(v as number, undefined);
}

/** One field's value into the entry tables at k, after its name's byte. */
function read_value(c: resp.Cursor, k: number, f: number): string | undefined {
    const [size, err] = expect(c, BULK, 0, "a field's value is not a string");
    if (size === undefined) {
        return err;
    }
    if (f === F_S || f === F_P || f === F_W) {
        const [v, nerr] = resp.body_number(sock!, c, size);
        if (nerr !== undefined) {
            return nerr;
        }
        (f === F_S ? e_seq : f === F_P ? e_pid : e_wid).set(k, v);
        return undefined;
    }
    const [v, berr] = resp.body(sock!, c, size);
    if (v === undefined) {
        return berr;
    }
    if (f === F_I || f === F_N || f === F_D) {
        (f === F_I ? e_inst : f === F_N ? e_name : e_data).set(k, v);
    }
    return undefined;
}

/** Entry k: "*2", its id, its field list. */
function read_entry(c: resp.Cursor, k: number): string | undefined {
    e_seq.set(k, undefined);
    e_inst.set(k, undefined);
    e_pid.set(k, undefined);
    e_wid.set(k, undefined);
    e_name.set(k, undefined);
    e_data.set(k, undefined);
    const [two, err] = expect(c, ARRAY, 2, "not a stream entry");
    if (two === undefined) {
        return err;
    }
    const [isize, ierr] = expect(c, BULK, 0, "an entry's id is not a string");
    if (isize === undefined) {
        return ierr;
    }
    const [id, berr] = resp.body(sock!, c, isize);
    if (id === undefined) {
        return berr;
    }
    e_id.set(k, id);
    const [fields, ferr] = expect(c, ARRAY, 0, "an entry's fields are not a list");
    if (fields === undefined) {
        return ferr;
    }
    for (let i = 1; i <= fields; i += 2) {
        const [nsize, nerr] = expect(c, BULK, 0, "a field's name is not a string");
        if (nsize === undefined) {
            return nerr;
        }
        const [f, bberr] = resp.body_byte(sock!, c, nsize);
        if (f === undefined) {
            return bberr;
        }
        const verr = read_value(c, k, f);
        if (verr !== undefined) {
            return verr;
        }
    }
    return undefined;
}

/**
 * XREAD's reply (one stream) into the entry tables, without a table per entry or a
 * string per field name and number: how many entries, 0 for none (it timed out).
 */
function read_entries(): Read {
    const c = resp.cursor(sock!);
    const [streams, err] = expect(c, ARRAY, -1, "not a list of streams");
    if (streams === undefined) {
        return $multi(undefined, err!);
    }
    if (streams < 1) {
        // *-1: BLOCK ran out
        return $multi(0, undefined);
    }
    const [two, serr] = expect(c, ARRAY, 2, "not a stream");
    if (two === undefined) {
        return $multi(undefined, serr!);
    }
    const [nsize, nerr] = expect(c, BULK, 0, "a stream's name is not a string");
    if (nsize === undefined) {
        return $multi(undefined, nerr!);
    }
    const [stream, berr] = resp.body(sock!, c, nsize);
    if (stream === undefined) {
        return $multi(undefined, berr);
    }
    const [count, cerr] = expect(c, ARRAY, 0, "a stream's entries are not a list");
    if (count === undefined) {
        return $multi(undefined, cerr!);
    }
    for (let k = 1; k <= count; k++) {
        const rerr = read_entry(c, k);
        if (rerr !== undefined) {
            return $multi(undefined, rerr);
        }
    }
    return $multi(count, undefined);
}

/**
 * Counts and logs entries trimmed before this reader read them (each worker counts
 * its own loss), and numbers given out again (a failover, or Redis restarted without
 * persistence, lost entries this instance had handed over). Only at the frontier:
 * below it, a resend goes over numbers already handed over on purpose.
 */
function count_gap(seq: number, id: string, prev: string, prev_seq: number): void {
    const frontier = prev_seq >= high;
    if (frontier && high > 0 && seq <= high) {
        // the numbering goes on from here; other instances may have missed what was lost
        counters.failover_lost += high - seq + 1;
        ngx.log(ngx.ERR, "ngx.ipc: cluster reader: ", state.settings!.stream, " went back from number ", high,
            " to ", seq, " at ", id, ": a failover or a restart of Redis lost alerts this instance had handled; ",
            "other instances may have missed them");
        high = seq;
        return;
    }
    if (frontier && high > 0 && seq > high + 1) {
        counters.gaps += 1;
        ngx.log(ngx.ERR, "ngx.ipc: cluster reader: ", seq - high - 1, " alert(s) between ", prev, " and ", id,
            " were trimmed from ", state.settings!.stream, " (maxlen ", state.settings!.maxlen,
            ") or lost in a failover before this instance read them; they are lost for it");
    }
    high = math.max(high, seq);
}

/**
 * Goes back to the least position among the slots whose worker asked for a resend
 * (a replacement of a worker killed with -9, or a worker that found an entry
 * missing): what follows it is handed over again, and the workers that had it pass
 * over it.
 */
function rewind(): void {
    let to: slots.Position | undefined;
    for (let i = 0; i < slots.span(ngx.worker.count()); i++) {
        const w = slots.want_of(i);
        if (w !== "" && w !== served.get(i)) {
            served.set(i, w);
            const d = slots.done_of(i);
            if (d !== undefined && (to === undefined || d.ms < to.ms || (d.ms === to.ms && d.n < to.n))) {
                to = d;
            }
        }
    }
    if (to === undefined) {
        return;
    }
    const id = id_text(to);
    if (!after(last_id, id)) {
        return;
    }
    counters.rewinds += 1;
    ngx.log(ngx.INFO, "ngx.ipc: cluster reader: a worker asked for the alerts after ", id, "; handing them over again");
    last_id = id;
    tail_id = id;
    tail_seq = to.seq;
}

/**
 * Hands the first `count` encoded entries of `parts` to every worker of the instance
 * in one local broadcast, the last of them `last` (number `seq`); false when it must
 * stop first.
 */
function hand_over(parts: string[], count: number, last: string, seq: number): boolean {
    const env = table.concat(parts, "", 1, count);
    let delay = 0.01;
    while (true) {
        if (ngx.worker.exiting() || !room(packed(env.length))) {
            return false;
        }
        const [ok, err] = shim.broadcast(LOCAL_NAME, env);
        if (ok !== undefined) {
            break;
        }
        // Not expected (room() keeps the backlogs from refusing): retry after a pause.
        ngx.log(ngx.ERR, "ngx.ipc: cluster reader: handing ", count, " alert(s) up to ", last, " to the workers failed: ",
            err, "; retrying");
        queued = FLOW;
        if (!pause(delay)) {
            return false;
        }
        delay = math.min(delay * 2, 0.5);
    }
    last_id = last;
    tail_id = last;
    tail_seq = seq;
    counters.relayed += count;
    // room() may have renewed the lease on a connection that then failed, or lost it
    return holding && sock !== undefined;
}

/**
 * Hands the entries of one XREAD reply over in as few local broadcasts as ENVELOPE
 * allows, each entry naming the one before it; false when it must stop first.
 */
function relay(entries: number): boolean {
    const parts: string[] = [];
    let count = 0;
    let bytes = 0;
    let prev = tail_id;
    let [prev_ms, prev_n] = id_of(tail_id);
    let prev_seq = tail_seq;
    for (let k = 1; k <= entries; k++) {
        const id = e_id.get(k);
        const seq = e_seq.get(k);
        const inst = e_inst.get(k);
        const pid = e_pid.get(k);
        const wid = e_wid.get(k);
        const name = e_name.get(k);
        const data = e_data.get(k);
        // let go of the data once relayed (or skipped)
        e_data.set(k, undefined);
        if (seq === undefined || inst === undefined || pid === undefined || wid === undefined
            || name === undefined || data === undefined) {
            counters.malformed += 1;
            ngx.log(ngx.WARN, "ngx.ipc: cluster reader: entry ", id, " of ", state.settings!.stream,
                " is not an ngx.ipc alert; skipped");
            // read past it only with the entries before it
            if (count > 0 && !hand_over(parts, count, prev, prev_seq)) {
                return false;
            }
            last_id = id;
            count = 0;
            bytes = 0;
            continue;
        }
        count_gap(seq, id, prev, prev_seq);
        const [ms, n] = id_of(id);
        const env = encode(inst, pid, wid, name, prev_ms, prev_n, ms, n, seq, data);
        if (count > 0 && bytes + env.length > ENVELOPE) {
            if (!hand_over(parts, count, prev, prev_seq)) {
                return false;
            }
            count = 0;
            bytes = 0;
        }
        count += 1;
        parts[count - 1] = env;
        bytes += env.length;
        prev = id;
        prev_ms = ms;
        prev_n = n;
        prev_seq = seq;
    }
    return count === 0 || hand_over(parts, count, prev, prev_seq);
}

/** One turn: save the position and renew the lease, read what follows, hand it over. */
function step(): void {
    const s = state.settings!;
    if (slots.ready()) {
        rewind();
    }
    const out = new LuaTable<number, string>();
    let n = 1;
    // Saving on every turn would double the commands per entry when alerts trickle in
    // one by one; what a reader killed between saves relayed is relayed again.
    ngx.update_time();
    const save = ngx.now() - saved_at >= SAVE_EVERY;
    if (save) {
        const [cargs, ccount] = commit_args("0");
        script_args(COMMIT, cargs, true);
        n = resp.encode(out, n, cargs, ccount);
        saved_at = ngx.now();
    }
    const xargs = new LuaTable<number, string>();
    const list = ["XREAD", "COUNT", s.batch, "BLOCK", tostring(BLOCK_MS), "STREAMS", s.stream, last_id];
    for (let i = 0; i < list.length; i++) {
        xargs.set(i + 1, list[i]);
    }
    resp.encode(out, n, xargs, list.length);
    const [sent, serr] = sock!.send(out);
    if (sent === undefined) {
        drop_connection(serr);
        return;
    }
    let c: resp.Reply | undefined = 1;
    let cerr: string | undefined = undefined;
    if (save) {
        [c, cerr] = resp.read(sock!);
    }
    const [r, rerr] = read_entries();
    if (c === undefined || r === undefined) {
        // NOSCRIPT (SCRIPT FLUSH) included: the next connection loads the script again
        drop_connection(c === undefined ? cerr! : rerr as string);
        return;
    }
    failures = 0;
    if (c !== 1) {
        lost_lease();
        return;
    }
    if (r === 0) {
        return;
    }
    const c0 = shim.counters();
    queued = c0.send_queued;
    held = c0.receive_ready + c0.receive_partial;
    relay(r);
}

function read_loop(premature: boolean): void {
    if (premature) {
        return;
    }
    // the subsystem tells an http and a stream VM of one worker apart
    token = `${ngx.worker.pid()}:${ngx.now()}:${ngx.config.subsystem ?? "http"}`;
    while (!ngx.worker.exiting()) {
        if (sock === undefined && !open()) {
            continue;
        }
        if (!holding) {
            const got = acquire("");
            if (got === false && !pause(LEASE_POLL)) {
                break;
            }
            continue;
        }
        step();
    }
    // The next reader (the next generation's worker 0) starts after what this one handed over.
    if (sock !== undefined && holding) {
        commit(true);
    }
    holding = false;
    if (sock !== undefined) {
        sock.close();
        sock = undefined;
    }
}

/** Starts the reader (worker 0): a timer that reads until the worker exits. */
export function start(): void {
    const [ok, err] = ngx.timer.at(0, read_loop);
    if (ok === undefined) {
        ngx.log(ngx.ERR, "ngx.ipc: cannot start the cluster reader: ", err);
    }
}

/** Whether this worker holds the lease and reads. */
export function reading(): boolean {
    return holding;
}

/** The last entry handed over, or undefined before the lease was first taken. */
export function last_relayed(): string | undefined {
    return last_id === "" ? undefined : last_id;
}
