import type { Db } from '../storage/database.js';
import { createStateGroup, getStateGroup, getStateGroupEntries, type StateIds } from '../storage/repositories/state.js';
import type { StateMap } from '../types/pdu.js';
import { LruCache } from '../util/lru.js';
import type { EventStore } from './eventStore.js';

// After this many deltas in a chain a group stores a full snapshot, bounding the cost of a lookup.
const SNAPSHOT_INTERVAL = 64;

/** State groups: the state at each event, stored as deltas (docs/architecture.md, "Rooms"). */
export class StateStore {
  private readonly resolved = new LruCache<number, StateIds>(2_000);

  constructor(private readonly events: EventStore) {}

  async stateIds(db: Db, groupId: number): Promise<StateIds> {
    const cached = this.resolved.get(groupId);
    if (cached) return cached;
    const chain: Array<Map<string, string | null>> = [];
    let cursor: number | null = groupId;
    while (cursor !== null) {
      const hit = this.resolved.get(cursor);
      if (hit) {
        chain.push(new Map(hit));
        break;
      }
      const group = await getStateGroup(db, cursor);
      if (!group) break;
      chain.push(await getStateGroupEntries(db, cursor));
      cursor = group.prevGroup;
    }
    const state: StateIds = new Map();
    for (let i = chain.length - 1; i >= 0; i--) {
      for (const [key, eventId] of chain[i]!) {
        if (eventId === null) state.delete(key);
        else state.set(key, eventId);
      }
    }
    this.resolved.set(groupId, state);
    return state;
  }

  async stateEvents(db: Db, groupId: number, filter?: (key: string) => boolean): Promise<StateMap> {
    const ids = await this.stateIds(db, groupId);
    const wanted = [...ids].filter(([key]) => !filter || filter(key));
    const events = await this.events.getMany(db, wanted.map(([, id]) => id));
    const out: StateMap = new Map();
    for (const [key, id] of wanted) {
      const ev = events.get(id);
      if (ev) out.set(key, ev.pdu);
    }
    return out;
  }

  /** A new group holding `prev` plus `delta`; a full snapshot every SNAPSHOT_INTERVAL deltas. */
  async createGroup(db: Db, roomId: string, prevGroup: number | null, delta: ReadonlyMap<string, string>): Promise<number> {
    if (prevGroup === null) {
      const id = await createStateGroup(db, roomId, null, 0, delta);
      this.resolved.set(id, new Map(delta));
      return id;
    }
    const prev = await getStateGroup(db, prevGroup);
    const prevState = await this.stateIds(db, prevGroup);
    const full = new Map(prevState);
    for (const [k, v] of delta) full.set(k, v);
    const depth = (prev?.deltaDepth ?? 0) + 1;
    const id =
      depth >= SNAPSHOT_INTERVAL
        ? await createStateGroup(db, roomId, null, 0, full)
        : await createStateGroup(db, roomId, prevGroup, depth, delta);
    this.resolved.set(id, full);
    return id;
  }

  /** Forget groups written by a transaction that rolled back. */
  forget(groupIds: Iterable<number>): void {
    for (const id of groupIds) this.resolved.delete(id);
  }
}
