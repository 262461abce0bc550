import type { Pdu } from '../types/pdu.js';
import { redactPdu, redactsOf, roomIdOfEvent } from './eventFormat.js';
import type { RoomVersion } from './roomVersions.js';

/** The client-server shape of a room event (spec: "ClientEvent"). */
export interface ClientEvent {
  content: Record<string, unknown>;
  event_id: string;
  origin_server_ts: number;
  room_id?: string;
  sender: string;
  state_key?: string;
  type: string;
  redacts?: string;
  unsigned?: Record<string, unknown>;
}

export interface ClientEventExtras {
  eventId: string;
  now: number;
  /** Only for the device (or token) that sent it. */
  transactionId?: string | undefined;
  /** Present when the event was redacted: its redaction, already formatted. */
  redactedBecause?: ClientEvent | undefined;
  /** The state event this one replaced. */
  prevState?: { content: Record<string, unknown>; sender: string; eventId: string } | undefined;
  includeRoomId: boolean;
}

/** Pure: a PDU formatted for clients, redacted if it was, with its unsigned data. */
export function toClientEvent(pdu: Pdu, version: RoomVersion, extras: ClientEventExtras): ClientEvent {
  const source = extras.redactedBecause ? redactPdu(pdu, version) : pdu;
  const event: ClientEvent = {
    content: source.content,
    event_id: extras.eventId,
    origin_server_ts: source.origin_server_ts,
    sender: source.sender,
    type: source.type,
  };
  // v12 create events carry no room_id; clients still get it (`!` + the event id without `$`).
  if (extras.includeRoomId) event.room_id = roomIdOfEvent(pdu, extras.eventId)!;
  if (source.state_key !== undefined) event.state_key = source.state_key;
  const redacts = pdu.type === 'm.room.redaction' ? redactsOf(pdu, version) : undefined;
  // Clients of every room version look for `redacts` at the top level; v11 also has it in content.
  if (redacts !== undefined) event.redacts = redacts;
  const unsigned: Record<string, unknown> = { age: Math.max(0, extras.now - pdu.origin_server_ts) };
  if (extras.transactionId !== undefined) unsigned.transaction_id = extras.transactionId;
  if (extras.redactedBecause) {
    unsigned.redacted_because = extras.redactedBecause;
    // Synapse and Dendrite also name the redaction by id; SyTest and some clients read it.
    unsigned.redacted_by = extras.redactedBecause.event_id;
  }
  if (extras.prevState) {
    unsigned.prev_content = extras.prevState.content;
    unsigned.prev_sender = extras.prevState.sender;
    unsigned.replaces_state = extras.prevState.eventId;
  }
  event.unsigned = unsigned;
  return event;
}

/** Stripped state for invites and knocks (spec: "Stripped state"). */
export function toStrippedState(pdu: Pdu): { content: Record<string, unknown>; sender: string; state_key: string; type: string } {
  return { content: pdu.content, sender: pdu.sender, state_key: pdu.state_key ?? '', type: pdu.type };
}

/** The unsigned keys Synapse's legacy ("v1") client format repeats at the top level. */
const LEGACY_COPIED_KEYS = ['age', 'redacted_because', 'replaces_state', 'prev_content', 'invite_room_state', 'knock_room_state'];

/**
 * Pure: the legacy client format of the deprecated endpoints (/events, /initialSync), as Synapse serves it:
 * `user_id` beside `sender`, and some unsigned keys repeated at the top level.
 */
export function toLegacyClientEvent(event: ClientEvent): ClientEvent & Record<string, unknown> {
  const out: ClientEvent & Record<string, unknown> = { ...event, user_id: event.sender };
  for (const key of LEGACY_COPIED_KEYS) if (event.unsigned && Object.hasOwn(event.unsigned, key)) out[key] = event.unsigned[key]; // prototype-safe: fixed keys
  return out;
}
