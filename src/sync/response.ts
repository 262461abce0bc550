import type { ClientEvent } from '../rooms/clientEvent.js';

// The /sync response shape (spec: GET /_matrix/client/v3/sync) and a builder the topic providers fill.

export interface StrippedStateEvent {
  content: Record<string, unknown>;
  sender: string;
  state_key: string;
  type: string;
}

export interface BasicEvent {
  type: string;
  content: Record<string, unknown>;
  [key: string]: unknown;
}

export interface RoomSummary {
  'm.heroes'?: string[];
  'm.joined_member_count'?: number;
  'm.invited_member_count'?: number;
}

export interface Timeline {
  events: ClientEvent[];
  limited: boolean;
  prev_batch?: string;
}

export interface JoinedRoom {
  summary: RoomSummary;
  state: { events: ClientEvent[] };
  timeline: Timeline;
  ephemeral: { events: BasicEvent[] };
  account_data: { events: BasicEvent[] };
  unread_notifications: { notification_count: number; highlight_count: number };
  [extension: string]: unknown;
}

/** MSC2753: a room the device peeks into, shaped as a joined room without unread counts. */
export type PeekedRoom = Omit<JoinedRoom, 'unread_notifications'>;

export interface LeftRoom {
  state: { events: ClientEvent[] };
  timeline: Timeline;
  account_data: { events: BasicEvent[] };
}

export interface InvitedRoom {
  invite_state: { events: StrippedStateEvent[] };
}

export interface KnockedRoom {
  knock_state: { events: StrippedStateEvent[] };
}

export interface SyncResponse {
  next_batch: string;
  rooms: {
    join: Record<string, JoinedRoom>;
    invite: Record<string, InvitedRoom>;
    leave: Record<string, LeftRoom>;
    knock: Record<string, KnockedRoom>;
    /** MSC2753 peeks of this device; present only when there is one to send. */
    peek?: Record<string, PeekedRoom>;
  };
  account_data: { events: BasicEvent[] };
  presence: { events: BasicEvent[] };
  to_device: { events: BasicEvent[] };
  /** As Synapse, an empty list is left out (so a client waiting for a change sees none, not an empty one). */
  device_lists: { changed?: string[]; left?: string[] };
  device_one_time_keys_count: Record<string, number>;
  device_unused_fallback_key_types: string[];
  [extension: string]: unknown;
}

function emptyJoinedRoom(): JoinedRoom {
  return {
    summary: {},
    state: { events: [] },
    timeline: { events: [], limited: false },
    ephemeral: { events: [] },
    account_data: { events: [] },
    unread_notifications: { notification_count: 0, highlight_count: 0 },
  };
}

/** Collects what every provider contributes to one response. */
export class SyncResponseBuilder {
  readonly join = new Map<string, JoinedRoom>();
  readonly invite = new Map<string, InvitedRoom>();
  readonly leave = new Map<string, LeftRoom>();
  readonly knock = new Map<string, KnockedRoom>();
  readonly peek = new Map<string, PeekedRoom>();
  readonly accountData: BasicEvent[] = [];
  readonly presence: BasicEvent[] = [];
  readonly toDevice: BasicEvent[] = [];
  readonly deviceLists = { changed: new Set<string>(), left: new Set<string>() };
  oneTimeKeysCount: Record<string, number> = {};
  unusedFallbackKeyTypes: string[] = [];
  /** Top-level fields added by later providers. */
  readonly extensions: Record<string, unknown> = {};

  /** The joined-room entry, created empty on first use (providers add ephemeral/account data to it). */
  joinedRoom(roomId: string): JoinedRoom {
    let room = this.join.get(roomId);
    if (!room) this.join.set(roomId, (room = emptyJoinedRoom()));
    return room;
  }

  peekedRoom(roomId: string): PeekedRoom {
    let room = this.peek.get(roomId);
    if (!room) {
      const { unread_notifications: _, ...empty } = emptyJoinedRoom();
      this.peek.set(roomId, (room = empty));
    }
    return room;
  }

  leftRoom(roomId: string): LeftRoom {
    let room = this.leave.get(roomId);
    if (!room) this.leave.set(roomId, (room = { state: { events: [] }, timeline: { events: [], limited: false }, account_data: { events: [] } }));
    return room;
  }

  build(nextBatch: string): SyncResponse {
    return {
      ...this.extensions,
      next_batch: nextBatch,
      rooms: {
        join: Object.fromEntries(this.join),
        invite: Object.fromEntries(this.invite),
        leave: Object.fromEntries(this.leave),
        knock: Object.fromEntries(this.knock),
        ...(this.peek.size ? { peek: Object.fromEntries(this.peek) } : {}),
      },
      account_data: { events: this.accountData },
      presence: { events: this.presence },
      to_device: { events: this.toDevice },
      device_lists: {
        ...(this.deviceLists.changed.size ? { changed: [...this.deviceLists.changed] } : {}),
        ...(this.deviceLists.left.size ? { left: [...this.deviceLists.left] } : {}),
      },
      device_one_time_keys_count: this.oneTimeKeysCount,
      device_unused_fallback_key_types: this.unusedFallbackKeyTypes,
    };
  }
}
