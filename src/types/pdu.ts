/**
 * The room-event PDU as it travels over federation (all room versions 1–11).
 * Plain JSON: what is stored and hashed is exactly this object.
 */

/** `{ sha256: "<unpadded base64>" }` */
export interface EventHashes {
  sha256: string;
  [algorithm: string]: string;
}

/** v1/v2 reference to another event: `[event_id, { sha256 }]`. */
export type EventReferenceV1 = [string, Partial<EventHashes>];

/** Either format of `prev_events` / `auth_events` entries. */
export type EventReference = string | EventReferenceV1;

export interface Pdu {
  /** Event ids (v3+) or `[id, hashes]` pairs (v1, v2). */
  auth_events: EventReference[];
  prev_events: EventReference[];
  content: Record<string, unknown>;
  depth: number;
  hashes: EventHashes;
  origin_server_ts: number;
  room_id: string;
  sender: string;
  /** Present (possibly `""`) exactly on state events. */
  state_key?: string;
  type: string;
  unsigned?: Record<string, unknown>;
  signatures: Record<string, Record<string, string>>;
  /** Redaction target, top-level in room versions 1–10 (moved into content in v11). */
  redacts?: string;
  /** Only in v1/v2 PDUs. */
  event_id?: string;
  /** Legacy top-level properties; protected from redaction before v11. */
  origin?: string;
  membership?: string;
  prev_state?: unknown;
  [key: string]: unknown;
}

/** Key of a state entry in a `StateMap`. */
export function stateMapKey(type: string, stateKey: string): string {
  // A NUL can't occur in an event type, so the split is unambiguous.
  return `${type}\u0000${stateKey}`;
}

/** Inverse of `stateMapKey`. */
export function parseStateMapKey(key: string): [type: string, stateKey: string] {
  const i = key.indexOf('\u0000');
  return [key.slice(0, i), key.slice(i + 1)];
}

/** State keyed by `stateMapKey(type, state_key)`. */
export type StateMap = Map<string, Pdu>;

/** State that is only read (auth checks, power levels). */
export type ReadonlyStateMap = ReadonlyMap<string, Pdu>;

export function isStateEvent(pdu: Pdu): boolean {
  return typeof pdu.state_key === 'string';
}
