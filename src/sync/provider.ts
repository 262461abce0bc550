import type { SyncFilter } from './filter.js';
import type { SyncResponseBuilder } from './response.js';
import type { SyncPositions, SyncTopic } from './token.js';
import type { MembershipRow } from '../storage/repositories/sync.js';

/** What one /sync request knows, shared by every provider. Positions in `to` were read at the start. */
export interface SyncContext {
  userId: string;
  deviceId: string | undefined;
  filter: SyncFilter;
  /** `full_state=true`: every room's full state, even in an incremental sync. */
  fullState: boolean;
  /** Undefined for an initial sync. */
  since: SyncPositions | undefined;
  to: SyncPositions;
  response: SyncResponseBuilder;
  /** The user's membership per room as of `to.timeline` (loaded once per request, memoised). */
  memberships(): Promise<Map<string, MembershipRow>>;
  /** Rooms the user is joined to as of `to.timeline`, after the filter's rooms/not_rooms (or the peeked rooms, see below). */
  joinedRoomIds(): Promise<string[]>;
  /** Users whose presence the user sees: those sharing a joined room (or the members of the peeked rooms). */
  presencePeers(): Promise<string[]>;
  /** Rooms that the rooms provider sent with full state because the user newly joined them. */
  readonly newlyJoined: Set<string>;
  /**
   * A topic that delivered only part of what is pending (to-device messages are capped per response) sets
   * the position the next token carries, so the rest follows in the next sync.
   */
  readonly nextPositions: Partial<SyncPositions>;
}

/**
 * One provider per sync topic (docs/architecture.md, "Sync"). Providers run in registration order for every
 * request; the rooms provider runs first so room entries exist before others (account data, receipts,
 * typing) decorate them.
 */
export interface SyncProvider {
  readonly topic: SyncTopic;
  /** The newest position of this topic (read at the start of a request and stored in next_batch). */
  latest(): Promise<number>;
  /** Everything the user should see (initial sync). */
  complete(ctx: SyncContext, to: number): Promise<void>;
  /** What changed in (from, to]; returns true when something was added to the response. */
  incremental(ctx: SyncContext, from: number, to: number): Promise<boolean>;
}

/** Unread counts for joined rooms, as the push rules see them (spec: "Receiving notifications"). */
export type NotificationCounter = (
  userId: string,
  roomIds: readonly string[],
  options: { upTo: number; threaded: boolean },
) => Promise<Map<string, { notification_count: number; highlight_count: number; threads?: Record<string, { notification_count: number; highlight_count: number }> }>>;
