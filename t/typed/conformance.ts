// The implementation (src/ngx/ipc.ts) must have the types the published
// declaration (types/ngx.ipc.d.ts) promises: a type error here means the two
// disagree. typed_spec runs tsc on this file; nothing is emitted.
import impl from "../../src/ngx/ipc";
import type * as api from "ngx.ipc";

/** Served by the module's metatable, so absent from the table's type. */
type Fields = "sender" | "sender_id" | "sender_instance";

type Published = Omit<typeof api, Fields>;

export const published: Published = impl;
