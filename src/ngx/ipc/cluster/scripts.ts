// The Lua scripts the cluster runs in Redis, and running them: EVALSHA, and EVAL
// (which loads the script) when Redis does not know it yet.
import * as resp from "../resp";

/** Position keys outlive their instance by this long (seconds), renewed by the reader. */
const POS_TTL = 604800;

export interface Script {
    body: string;
    sha: string;
}

/** The instance's start position, made once: after the last entry of the stream. */
const FLOOR_BODY = `
local function floor(stream, seq_key, pos_key)
  local pos = redis.call('GET', pos_key)
  if pos then return pos, 0 end
  local seq = tonumber(redis.call('GET', seq_key) or '0')
  local id = '0-0'
  local e = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
  if e then
    id = e[1]
    for i = 1, #e[2], 2 do
      if e[2][i] == 's' then seq = tonumber(e[2][i + 1]) end
    end
  end
  pos = id .. ' ' .. seq
  redis.call('SET', pos_key, pos, 'EX', ${POS_TTL})
  return pos, 1
end
`;

function script(body: string): Script {
    return { body, sha: "" };
}

/** KEYS: stream, seq, pos. Returns the position. */
export const FLOOR = script(`${FLOOR_BODY}
return (floor(KEYS[1], KEYS[2], KEYS[3]))`);

/**
 * KEYS: stream, seq. ARGV: maxlen, instance, pid, worker id, floor, then name and data
 * of each alert (a publisher's batch). Returns the last sequence number given out.
 * floor is the highest number the caller has seen given out: after a failover that
 * lost the last entries (and the counter's last increments), numbering goes on above
 * it, so readers see the loss as a gap.
 */
export const PUBLISH = script(`
local n = (#ARGV - 5) / 2
local last = redis.call('INCRBY', KEYS[2], n)
local floor = tonumber(ARGV[5])
if last - n < floor then
  last = floor + n
  redis.call('SET', KEYS[2], last)
end
for k = 1, n do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 's', last - n + k,
    'i', ARGV[2], 'p', ARGV[3], 'w', ARGV[4], 'n', ARGV[4 + 2 * k], 'd', ARGV[5 + 2 * k])
end
return last`);

/** KEYS: seq. ARGV: floor. Raises the counter to floor (a reader's last number, after a reconnect). */
export const RAISE = script(`
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1`);

/**
 * KEYS: lease, pos, stream, seq. ARGV: token, lease ms, the token of a holder known
 * to be dead (or ""). Returns {1, position, 1 if the position was made now} or {0, holder}.
 */
export const ACQUIRE = script(`${FLOOR_BODY}
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] and cur ~= ARGV[3] then return {0, cur} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local pos, fresh = floor(KEYS[3], KEYS[4], KEYS[2])
return {1, pos, fresh}`);

/**
 * KEYS: lease, pos. ARGV: token, lease ms, position, 1 to release. Saves the position
 * and renews (or releases) the lease, only while the token holds it: 1, else 0.
 */
export const COMMIT = script(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[3], 'EX', ${POS_TTL})
if ARGV[4] == '1' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1`);

function sha_of(sc: Script): string {
    if (sc.sha === "") {
        sc.sha = string.gsub(ngx.sha1_bin(sc.body), ".",
            (c: string) => string.format("%02x", string.byte(c)))[0];
    }
    return sc.sha;
}

/** args[1] and args[2] are left for EVALSHA sha / EVAL body. */
export function script_args(sc: Script, args: LuaTable<number, string>, evalsha: boolean): void {
    args.set(1, evalsha ? "EVALSHA" : "EVAL");
    args.set(2, evalsha ? sha_of(sc) : sc.body);
}

/** SCRIPT LOAD: for a script pipelined with EVALSHA, where NOSCRIPT could not fall back to EVAL. */
export function load(sock: NgxTcpSocket, sc: Script): resp.ReadResult {
    const [a, n] = resp.args("SCRIPT", "LOAD", sc.body);
    return resp.call(sock, a, n);
}

/** Runs a script; falls back to EVAL (which loads it) when Redis answers NOSCRIPT. */
export function run(sock: NgxTcpSocket, sc: Script, args: LuaTable<number, string>, count: number): resp.ReadResult {
    script_args(sc, args, true);
    const [v, err, usable] = resp.call(sock, args, count);
    if (v !== undefined) {
        return $multi(v);
    }
    if (usable && string.sub(err, 1, 8) === "NOSCRIPT") {
        script_args(sc, args, false);
        return resp.call(sock, args, count);
    }
    return $multi(undefined, err, usable);
}

/** A script's arguments (numkeys, keys, argv) from index 3, and their count. */
export function args_of(...list: string[]): LuaMultiReturn<[LuaTable<number, string>, number]> {
    const t = new LuaTable<number, string>();
    t.set(1, "");
    t.set(2, "");
    let n = 2;
    for (const a of list) {
        n += 1;
        t.set(n, a);
    }
    return $multi(t, n);
}
