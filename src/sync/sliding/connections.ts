import { MatrixError } from '../../errors.js';
import type { Database } from '../../storage/database.js';
import * as repo from '../../storage/repositories/slidingSync.js';
import { parseSyncToken, type SyncPositions } from '../token.js';

// MSC4186 connections: what each (user, device, conn_id) was sent, per answer (position), in the database so
// a restart or another process resumes them. A `pos` is "<position>/<sync token>"; position 0 is a
// connection that asked for no rooms (extensions only) and keeps nothing.

export interface SentRoom {
  /** live: the connection has everything up to its position; previously: it has the room up to `since`. */
  status: 'live' | 'previously';
  since?: number;
  timelineLimit: number;
  /** serializeRequiredState() of the configuration last sent with. */
  requiredState: string;
}

export interface ConnectionState {
  /** Undefined for a connection that keeps nothing (no lists or subscriptions so far). */
  connectionKey: number | undefined;
  /** When the connection was last marked used (it expires a week after). */
  lastUsed?: number;
  position: number;
  since: SyncPositions | undefined;
  rooms: Map<string, SentRoom>;
}

/** Connections unused this long are forgotten (Synapse: a week); their `pos` is then M_UNKNOWN_POS. */
export const CONNECTION_EXPIRY_MS = 7 * 24 * 3600_000;

/** How stale `last_used_ts` may get before an unchanged answer writes it (far below the expiry). */
const TOUCH_INTERVAL_MS = 3600_000;

export function unknownPos(): MatrixError {
  return new MatrixError('M_UNKNOWN_POS', 'Unknown position', 400);
}

export function encodePos(position: number, token: string): string {
  return `${position}/${token}`;
}

export class ConnectionStore {
  constructor(private readonly deps: { db: Database; now: () => number }) {}

  /** The state a `pos` names; anything unknown, foreign or expired is M_UNKNOWN_POS. */
  async open(key: repo.ConnectionKey, pos: string | undefined): Promise<ConnectionState> {
    if (pos === undefined || pos === '') return { connectionKey: undefined, position: 0, since: undefined, rooms: new Map() };
    const m = /^(\d{1,15})\/(s\d+(?:_\d+)+)$/.exec(pos);
    if (!m) throw unknownPos();
    let since: SyncPositions;
    try {
      since = parseSyncToken(m[2]!);
    } catch {
      throw unknownPos();
    }
    const position = Number(m[1]);
    // Positions are 32-bit serials; a larger number was never handed out (and PostgreSQL would refuse it).
    if (position > 2_147_483_647) throw unknownPos();
    if (position === 0) return { connectionKey: undefined, position: 0, since, rooms: new Map() };
    const db = this.deps.db.knex;
    const row = await repo.findPosition(db, key, position);
    if (!row) throw unknownPos();
    return { connectionKey: row.connectionKey, lastUsed: row.lastUsed, position, since, rooms: decodeRooms(row.rooms) };
  }

  /**
   * Records what this answer sent and returns its position (the old one when nothing changed). A new
   * connection replaces any earlier one of the same conn_id.
   */
  async save(key: repo.ConnectionKey, previous: ConnectionState, rooms: Map<string, SentRoom>): Promise<number> {
    const db = this.deps.db.knex;
    const now = this.deps.now();
    const encoded = encodeRooms(rooms);
    if (previous.connectionKey !== undefined && encoded === encodeRooms(previous.rooms)) {
      // Nothing new to record: no write on the hot path, but for marking the connection used now and then.
      if (now - (previous.lastUsed ?? 0) > TOUCH_INTERVAL_MS) await repo.touchConnection(db, previous.connectionKey, now);
      return previous.position;
    }
    return db.transaction(async (trx) => {
      if (previous.connectionKey !== undefined) {
        // The client answered from this position: the others were superseded or never reached it.
        await repo.deleteOtherPositions(trx, previous.connectionKey, previous.position);
      }
      const connectionKey = previous.connectionKey ?? (await repo.resetConnection(trx, key, now));
      return repo.insertPosition(trx, connectionKey, encoded, now);
    });
  }

  /** Forgets a user's idle connections (at the start of a new one, so the table does not grow). */
  async expire(): Promise<void> {
    await repo.deleteIdleConnections(this.deps.db.knex, this.deps.now() - CONNECTION_EXPIRY_MS);
  }
}

type EncodedRoom = [roomId: string, status: 'l' | 'p', since: number, timelineLimit: number, requiredState: string];

function encodeRooms(rooms: ReadonlyMap<string, SentRoom>): string {
  const rows: EncodedRoom[] = [];
  for (const [id, r] of rooms) rows.push([id, r.status === 'live' ? 'l' : 'p', r.since ?? 0, r.timelineLimit, r.requiredState]);
  rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return JSON.stringify(rows);
}

function decodeRooms(text: string): Map<string, SentRoom> {
  const out = new Map<string, SentRoom>();
  let rows: unknown;
  try {
    rows = JSON.parse(text);
  } catch {
    return out;
  }
  if (!Array.isArray(rows)) return out;
  for (const r of rows) {
    if (!Array.isArray(r) || typeof r[0] !== 'string' || typeof r[3] !== 'number' || typeof r[4] !== 'string') continue;
    out.set(r[0], r[1] === 'p' ? { status: 'previously', since: Number(r[2]), timelineLimit: r[3], requiredState: r[4] } : { status: 'live', timelineLimit: r[3], requiredState: r[4] });
  }
  return out;
}
