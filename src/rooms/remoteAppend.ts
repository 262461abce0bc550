// How an event built by another server joins the room: the decisions, free of storage.
import type { Pdu, ReadonlyStateMap } from '../types/pdu.js';
import { stateMapKey } from '../types/pdu.js';
import { authTypesForEvent, buildAuthState, checkAuth, withImpliedCreate } from './authRules.js';
import type { RoomVersion } from './roomVersions.js';

export type RemoteOutcome = 'accepted' | 'rejected' | 'soft_failed' | 'duplicate';

/** Auth check against the event's own auth events (spec: "Checks performed on receipt of a PDU", step 4). */
export function checkAgainstAuthEvents(pdu: Pdu, authEvents: readonly Pdu[], version: RoomVersion): string | undefined {
  const built = buildAuthState(authEvents);
  if (!built.ok) return built.reason;
  const verdict = checkAuth(pdu, built.state, version);
  return verdict.allowed ? undefined : verdict.reason;
}

/** Auth check against a room state (the state before the event, step 5; or current state, step 6). */
export function checkAgainstState(pdu: Pdu, state: ReadonlyStateMap, version: RoomVersion): string | undefined {
  const authState = new Map<string, Pdu>();
  for (const [type, stateKey] of authTypesForEvent(pdu.type, pdu.state_key, pdu.content, pdu.sender, version)) {
    const ev = state.get(stateMapKey(type, stateKey));
    if (ev) authState.set(stateMapKey(type, stateKey), ev);
  }
  // v12: the create event is not selected as an auth event, but the rules need it (the room id implies it).
  const verdict = checkAuth(pdu, withImpliedCreate(authState, state.get(stateMapKey('m.room.create', '')), version), version);
  return verdict.allowed ? undefined : verdict.reason;
}

/** Orders events so every event comes after the events it references in the same batch (by depth, then id). */
export function topologicalByDepth<T extends { pdu: Pdu; eventId: string }>(events: readonly T[]): T[] {
  return [...events].sort((a, b) => a.pdu.depth - b.pdu.depth || (a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0));
}
