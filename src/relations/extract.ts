import type { StoredEvent } from '../storage/repositories/events.js';
import type { RelationRow } from '../storage/repositories/relations.js';
import type { SearchEntry } from '../storage/repositories/search.js';
import type { Pdu } from '../types/pdu.js';
import { own } from '../util/dict.js';

// Pure: what the indexes derive from one stored event.

/** `content["m.relates_to"]` as {rel_type, event_id}, when both are strings (spec: "Relationships"). */
export function relationOf(pdu: Pdu): { relType: string; eventId: string } | undefined {
  const rel = pdu.content?.['m.relates_to'];
  if (rel === null || typeof rel !== 'object' || Array.isArray(rel)) return undefined;
  const { rel_type: relType, event_id: eventId } = rel as Record<string, unknown>;
  if (typeof relType !== 'string' || typeof eventId !== 'string' || !eventId.startsWith('$')) return undefined;
  return { relType, eventId };
}

export function relationRow(ev: StoredEvent): RelationRow | undefined {
  if (ev.rejected || ev.outlier || ev.redactedBy) return undefined;
  const rel = relationOf(ev.pdu);
  if (!rel || rel.eventId === ev.eventId) return undefined;
  // PostgreSQL text cannot hold U+0000: such a relation would fail the index batch of everyone's events.
  if (rel.relType.includes('\u0000') || rel.eventId.includes('\u0000')) return undefined;
  return {
    eventId: ev.eventId,
    relatesToId: rel.eventId,
    relType: rel.relType,
    roomId: ev.pdu.room_id,
    type: ev.pdu.type,
    sender: ev.pdu.sender,
    isState: ev.pdu.state_key !== undefined,
    streamOrdering: ev.streamOrdering,
    originServerTs: ev.pdu.origin_server_ts,
  };
}

/** The searchable key of each event type (as Synapse indexes them); encrypted events have none. */
const SEARCH_KEYS: Record<string, { key: string; field: string; state: boolean }> = {
  'm.room.message': { key: 'content.body', field: 'body', state: false },
  'm.room.name': { key: 'content.name', field: 'name', state: true },
  'm.room.topic': { key: 'content.topic', field: 'topic', state: true },
};

export const SEARCHABLE_KEYS = ['content.body', 'content.name', 'content.topic'] as const;

export function searchEntry(ev: StoredEvent): SearchEntry | undefined {
  if (ev.rejected || ev.outlier || ev.redactedBy) return undefined;
  const spec = own(SEARCH_KEYS, ev.pdu.type);
  if (!spec || (ev.pdu.state_key !== undefined) !== spec.state) return undefined;
  const value = ev.pdu.content?.[spec.field];
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  return {
    eventId: ev.eventId,
    roomId: ev.pdu.room_id,
    sender: ev.pdu.sender,
    type: ev.pdu.type,
    key: spec.key,
    // U+0000 is valid in a body but PostgreSQL text cannot hold it (and it separates no words).
    value: value.replaceAll('\u0000', ' '),
    streamOrdering: ev.streamOrdering,
    originServerTs: ev.pdu.origin_server_ts,
  };
}
