import type { Knex } from 'knex';
import { MatrixError, notFound } from '../errors.js';
import type { Db } from '../storage/database.js';
import type { Pdu } from '../types/pdu.js';
import { authTypesForEvent, checkAuth, withImpliedCreate } from './authRules.js';
import { authEventIds } from './eventFormat.js';
import type { EventStore } from './eventStore.js';
import type { RoomWriteContext } from './roomWriter.js';
import type { StateStore } from './stateStore.js';
import { stateMapKey } from '../types/pdu.js';

/**
 * An unsigned event another server fills in and signs (make_join / make_leave / make_knock): built on the
 * room's current state and forward extremities, checked against the auth rules as far as it can be.
 */
export function buildMembershipTemplate(
  ctx: RoomWriteContext,
  serverName: string,
  userId: string,
  membership: 'join' | 'leave' | 'knock',
  content: Record<string, unknown>,
  now: number,
): Record<string, unknown> {
  const full = { ...content, membership };
  const authIds: string[] = [];
  const authState = new Map<string, Pdu>();
  for (const [type, stateKey] of authTypesForEvent('m.room.member', userId, full, userId, ctx.version)) {
    const ev = ctx.state.get(stateMapKey(type, stateKey));
    if (ev) {
      authIds.push(ctx.idOf(ev));
      authState.set(stateMapKey(type, stateKey), ev);
    }
  }
  const prev = ctx.forwardExtremities.slice(0, 10);
  const depth = prev.reduce((m, e) => Math.max(m, e.depth), 0) + 1;
  const template: Record<string, unknown> = {
    room_id: ctx.roomId,
    sender: userId,
    type: 'm.room.member',
    state_key: userId,
    content: full,
    prev_events: prev.map((e) => e.eventId),
    auth_events: authIds,
    depth,
    origin: serverName,
    origin_server_ts: now,
  };
  if (ctx.version.eventFormat === 'v1') {
    // Version 1 and 2 rooms reference events as [id, hashes] pairs.
    const hashesOf = (id: string) => {
      for (const p of ctx.state.values()) if (ctx.idOf(p) === id) return p.hashes;
      return undefined;
    };
    template.prev_events = prev.map((e) => [e.eventId, hashesOf(e.eventId) ?? {}]);
    template.auth_events = authIds.map((id) => [id, hashesOf(id) ?? {}]);
  }
  // v12: auth_events omits the create event (the room id implies it); the rules still need it.
  const fullAuthState = withImpliedCreate(authState, ctx.state.get(stateMapKey('m.room.create', '')), ctx.version);
  const verdict = checkAuth({ ...(template as object), hashes: { sha256: '' }, signatures: {} } as unknown as Pdu, fullAuthState, ctx.version);
  if (!verdict.allowed) throw new MatrixError('M_FORBIDDEN', verdict.reason);
  return template;
}

/** The state before an event and the full auth chain of that state and the event (send_join, /state). */
export async function stateAndAuthChain(
  db: Db | Knex.Transaction,
  events: EventStore,
  state: StateStore,
  roomId: string,
  eventId: string,
): Promise<{ state: Pdu[]; authChain: Pdu[] }> {
  const ev = await events.get(db, eventId);
  // Outliers and rejected events have no state of their own to give (spec: 404 for events we cannot use).
  if (!ev || ev.pdu.room_id !== roomId || ev.stateBefore === null || ev.outlier || ev.rejected) throw notFound('Event not found');
  const ids = await state.stateIds(db, ev.stateBefore);
  const stateEvents = await events.getMany(db, [...ids.values()]);
  const chain = new Map<string, Pdu>();
  let frontier = [...new Set([...stateEvents.values(), ev].flatMap((e) => authEventIds(e.pdu)))];
  while (frontier.length) {
    const loaded = await events.getMany(db, frontier.filter((id) => !chain.has(id)));
    const next: string[] = [];
    for (const [id, e] of loaded) {
      if (chain.has(id)) continue;
      chain.set(id, e.pdu);
      for (const a of authEventIds(e.pdu)) if (!chain.has(a)) next.push(a);
    }
    frontier = [...new Set(next)];
  }
  return { state: [...stateEvents.values()].map((e) => e.pdu), authChain: [...chain.values()] };
}
