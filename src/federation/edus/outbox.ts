/**
 * Outbound EDUs (spec: Server-Server API, "EDUs"): queued in the durable federation outbox as kind 'edu',
 * one row per destination, in the order they were produced. EDUs wait for the PDUs committed before them
 * to be queued first, so a receipt never overtakes the event it points at.
 */
import type { Logger } from 'pino';
import type { Database } from '../../storage/database.js';
import { enqueueOutbox } from '../../storage/repositories/outbox.js';
import { roomMembers, usersSharingRooms } from '../../storage/repositories/state.js';
import type { Db } from '../../storage/database.js';
import { serverNameOf } from '../serverName.js';

export interface Edu {
  edu_type: string;
  content: Record<string, unknown>;
}

export interface EduOutboxDeps {
  db: Database;
  serverName: string;
  clock: { now(): number };
  logger: Logger;
  /** Resolves when the PDUs committed so far are queued. */
  pdusQueued(): Promise<void>;
  wake(destination: string): void;
}

export class EduOutbox {
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly deps: EduOutboxDeps) {}

  /** Other servers with a member joined to the room. */
  async roomServers(db: Db, roomId: string): Promise<Set<string>> {
    return this.remoteServersOf(await roomMembers(db, roomId, ['join']));
  }

  /** Other servers with a user sharing a joined room with `userId`. */
  async serversSharingRoomsWith(db: Db, userId: string): Promise<Set<string>> {
    return this.remoteServersOf(await usersSharingRooms(db, userId));
  }

  private remoteServersOf(userIds: readonly string[]): Set<string> {
    const out = new Set<string>();
    for (const u of userIds) {
      const s = serverNameOf(u);
      if (s && s !== this.deps.serverName) out.add(s);
    }
    return out;
  }

  /**
   * Queues `edu` (or EDUs worked out later, by `produce`) for destinations, in call order. Never throws:
   * an EDU that cannot be queued is logged and dropped (EDUs are best effort; device lists resync).
   */
  send(produce: () => Promise<Array<{ destination: string; edu: Edu }>>): Promise<void> {
    this.chain = this.chain
      .then(() => this.deps.pdusQueued())
      .then(produce)
      .then((items) => this.enqueue(this.deps.db.knex, items).then(() => this.wake(items)))
      .catch((err) => this.deps.logger.error({ err }, 'federation: queueing EDUs failed'));
    return this.chain;
  }

  /** Queues inside the caller's transaction; call `wake` after it committed. */
  async enqueue(db: Db, items: ReadonlyArray<{ destination: string; edu: Edu }>): Promise<void> {
    const now = this.deps.clock.now();
    const rows = items
      .filter((i) => i.destination !== this.deps.serverName)
      .map((i) => ({ destination: i.destination, kind: 'edu' as const, payload: i.edu, queuedTs: now }));
    if (rows.length) await enqueueOutbox(db, rows);
  }

  wake(items: ReadonlyArray<{ destination: string }>): void {
    for (const d of new Set(items.map((i) => i.destination))) if (d !== this.deps.serverName) this.deps.wake(d);
  }

  /** Resolves when everything handed to `send` so far is queued. */
  idle(): Promise<void> {
    return this.chain;
  }
}
