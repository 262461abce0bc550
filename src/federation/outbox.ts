/**
 * Fills the durable federation outbox: every event sent by a local user, once committed, is queued for every
 * other server with a joined member in the room at that event (and, for membership changes, the servers that
 * were in the room just before, so a kicked or leaving server learns of it). Enqueueing runs in commit order
 * on one chain, so each destination's queue keeps the room's order.
 */
import type { Logger } from 'pino';
import type { RoomService, StoredEvent, WriteResult } from '../rooms/roomService.js';
import type { Database } from '../storage/database.js';
import { enqueueOutbox } from '../storage/repositories/outbox.js';
import type { Pdu } from '../types/pdu.js';
import { LruCache } from '../util/lru.js';
import { isThirdPartyInvite } from '../rooms/eventFormat.js';
import { serverNameOf } from './serverName.js';

export interface OutboxDeps {
  db: Database;
  rooms: Pick<RoomService, 'state' | 'events' | 'onCommitted'>;
  serverName: string;
  clock: { now(): number };
  logger: Logger;
  /** Called for each destination that got new items. */
  wake(destination: string): void;
}

const MEMBER_PREFIX = 'm.room.member\u0000';

/** The PDU as sent over federation: exactly what was stored, minus the local `unsigned` bookkeeping. */
export function federationPdu(pdu: Pdu): Pdu {
  const { unsigned: _u, ...rest } = pdu;
  return rest as Pdu;
}

export class OutboxProducer {
  private chain: Promise<void> = Promise.resolve();
  /** Servers per state group with a joined member; groups never change once written. */
  private readonly serversByGroup = new LruCache<number, ReadonlySet<string>>(2_000);
  /** Event id → destinations that already have the event (the resident server of a send_join). */
  private readonly alreadyDelivered = new LruCache<string, Set<string>>(1_000);

  constructor(private readonly deps: OutboxDeps) {}

  attach(): void {
    this.deps.rooms.onCommitted((result) => this.onCommitted(result));
  }

  /** `destination` got `eventId` another way (send_join): do not queue it there. */
  markDelivered(eventId: string, destination: string): void {
    const set = this.alreadyDelivered.get(eventId) ?? new Set<string>();
    set.add(destination);
    this.alreadyDelivered.set(eventId, set);
  }

  /** Resolves once everything committed so far is in the outbox. */
  idle(): Promise<void> {
    return this.chain;
  }

  onCommitted(result: WriteResult): void {
    const local = result.events.filter((e) => !e.outlier && !e.rejected && this.madeHere(e.pdu));
    if (!local.length) return;
    this.chain = this.chain
      .then(() => this.enqueue(local))
      .catch((err) => this.deps.logger.error({ err }, 'federation outbox: enqueueing failed'));
  }

  /**
   * Events of local users, and third-party invites this server made for one of its users on a remote
   * inviter's behalf (the inviter's server never signed those, so it cannot have sent them).
   */
  private madeHere(pdu: Pdu): boolean {
    const own = this.deps.serverName;
    if (serverNameOf(pdu.sender) === own) return true;
    const sender = serverNameOf(pdu.sender);
    return isThirdPartyInvite(pdu) && serverNameOf(String(pdu.state_key)) === own && !!pdu.signatures?.[own] && (sender === undefined || !pdu.signatures?.[sender]);
  }

  private async enqueue(events: StoredEvent[]): Promise<void> {
    const now = this.deps.clock.now();
    const items: Array<{ destination: string; kind: 'pdu'; payload: unknown; queuedTs: number }> = [];
    for (const ev of events) {
      const destinations = await this.destinationsFor(ev);
      const skip = this.alreadyDelivered.get(ev.eventId);
      for (const destination of destinations) {
        if (destination === this.deps.serverName || skip?.has(destination)) continue;
        items.push({ destination, kind: 'pdu', payload: federationPdu(ev.pdu), queuedTs: now });
      }
    }
    if (!items.length) return;
    await enqueueOutbox(this.deps.db.knex, items);
    for (const destination of new Set(items.map((i) => i.destination))) this.deps.wake(destination);
  }

  private async destinationsFor(ev: StoredEvent): Promise<Set<string>> {
    const out = new Set<string>();
    const groups = new Set<number>();
    if (ev.stateAfter !== null) groups.add(ev.stateAfter);
    if (ev.pdu.type === 'm.room.member' && ev.stateBefore !== null) groups.add(ev.stateBefore);
    if (ev.stateAfter === null && ev.stateBefore !== null) groups.add(ev.stateBefore);
    for (const g of groups) for (const s of await this.joinedServers(g)) out.add(s);
    return out;
  }

  private async joinedServers(group: number): Promise<ReadonlySet<string>> {
    const cached = this.serversByGroup.get(group);
    if (cached) return cached;
    const db = this.deps.db.knex;
    const ids = await this.deps.rooms.state.stateIds(db, group);
    const memberIds: string[] = [];
    for (const [key, id] of ids) if (key.startsWith(MEMBER_PREFIX)) memberIds.push(id);
    const events = await this.deps.rooms.events.getMany(db, memberIds);
    const servers = new Set<string>();
    for (const ev of events.values()) {
      if (ev.pdu.content.membership !== 'join' || typeof ev.pdu.state_key !== 'string') continue;
      const server = serverNameOf(ev.pdu.state_key);
      if (server) servers.add(server);
    }
    this.serversByGroup.set(group, servers);
    return servers;
  }
}
