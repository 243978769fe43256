// A module of an OpenResty application written with TypeScriptToLua: its
// init_worker_by_lua* calls init(); the rest is what its requests (here: the
// spec's commands) call. Every worker answers "upper" calls and records the
// "news" broadcasts and "note" alerts it hears.
import * as ipc from "ngx.ipc";

/** "<sender id>:<data>" of each "news" broadcast this worker handled, in order. */
const news: string[] = [];
/** "<sender id>/<sender pid>:<data>" of each "note" this worker handled. */
const notes: string[] = [];

export function init(): void {
    ipc.receive("upper", (data) => {
        if (data === "") {
            return $multi(undefined, "nothing to upper-case");
        }
        return `${data.toUpperCase()} from ${ngx.worker.id()} to ${ipc.sender_id}`;
    });
    ipc.receive({
        news: (data) => {
            news.push(`${ipc.sender_id}:${data}`);
        },
        note: (data) => {
            notes.push(`${ipc.sender_id}/${ipc.sender}:${data}`);
        },
    });
    const [ok, err] = ipc.broadcast("news", `worker ${ngx.worker.id()} is up`);
    if (!ok) {
        error(`broadcast: ${err}`);
    }
}

/** Asks worker `id` to upper-case `text`; yields until it answers. */
export function ask(id: number, text: string): LuaMultiReturn<[string] | [undefined, string]> {
    return ipc.call_worker(id, "upper", text, 5);
}

/** Sends `text` to every other joined worker by id; how many it sent to. */
export function tell_others(text: string): number {
    const me = ngx.worker.id();
    let sent = 0;
    for (const w of ipc.workers()) {
        if (w.id !== undefined && w.id !== me) {
            const [ok, err] = ipc.send_worker(w.id, "note", text);
            if (!ok) {
                error(`send_worker ${w.id}: ${err}`);
            }
            sent += 1;
        }
    }
    return sent;
}

/** What this worker heard: the "news", then the "notes", each joined by ",". */
export function heard(): LuaMultiReturn<[string, string]> {
    return $multi(table.concat(news, ","), table.concat(notes, ","));
}

/** The ids and pids of the joined workers, "0=1234,1=1235". */
export function workers(): string {
    const parts: string[] = [];
    for (const w of ipc.workers()) {
        if (w.id !== undefined) {
            parts.push(`${w.id}=${w.pid}`);
        }
    }
    return table.concat(parts, ",");
}
