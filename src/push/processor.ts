import type { Logger } from 'pino';
import { notificationPowerLevel, userPowerLevel } from '../rooms/authRules.js';
import { serverNameOf } from '../rooms/eventFormat.js';
import type { RoomService, StoredEvent, WriteResult } from '../rooms/roomService.js';
import type { Clock } from '../serviceDeps.js';
import type { Database } from '../storage/database.js';
import { insertNotifications, type NewNotification } from '../storage/repositories/notifications.js';
import { parseStateMapKey, stateMapKey, type StateMap } from '../types/pdu.js';
import { evaluate, type Evaluation, type PushEvent } from './evaluator.js';
import type { PushRulesService } from './rulesService.js';

/** An event that notified a user, with what a push gateway is told about it. */
export interface NotifiedEvent {
  userId: string;
  event: StoredEvent;
  evaluation: Evaluation;
  threadId: string | null;
  senderDisplayName?: string | undefined;
  roomName?: string | undefined;
  roomAlias?: string | undefined;
}

export interface ProcessorDeps {
  db: Database;
  logger: Logger;
  clock: Clock;
  serverName: string;
  rooms: RoomService;
  rules: PushRulesService;
  /** Called with what notified, after the rows are stored (push delivery). */
  onNotified(notified: NotifiedEvent[]): Promise<void>;
}

/** Committed writes waiting for evaluation; past this the oldest are dropped (logged). */
const MAX_PENDING = 1_000;

const MEMBER_PREFIX = `m.room.member\u0000`;

function stringProp(obj: unknown, key: string): string | undefined {
  if (obj === null || typeof obj !== 'object') return undefined;
  const v = (obj as Record<string, unknown>)[key];
  return typeof v === 'string' ? v : undefined;
}

/** The thread root of an event in a thread (`m.relates_to` with rel_type `m.thread`). */
export function threadIdOf(content: Record<string, unknown>): string | null {
  const rel = content['m.relates_to'];
  if (stringProp(rel, 'rel_type') !== 'm.thread') return null;
  return stringProp(rel, 'event_id') ?? null;
}

/**
 * Evaluates every committed event for the room's joined local members (and a local invitee), in commit
 * order, one write at a time, after the commit — the write path never waits for push rules.
 */
export class NotificationProcessor {
  private readonly pending: Array<{ events: readonly StoredEvent[]; outOfBand: boolean }> = [];
  private running = false;
  private closed = false;
  private readonly idleWaiters: Array<() => void> = [];

  constructor(private readonly deps: ProcessorDeps) {}

  enqueue(result: WriteResult): void {
    if (result.events.length > 0) this.push({ events: result.events, outOfBand: false });
  }

  /** A membership of a room not known here (an invite over federation): only its invitee can be notified. */
  enqueueOutOfBand(event: StoredEvent): void {
    this.push({ events: [event], outOfBand: true });
  }

  private push(item: { events: readonly StoredEvent[]; outOfBand: boolean }): void {
    if (this.closed) return;
    this.pending.push(item);
    if (this.pending.length > MAX_PENDING) {
      this.pending.shift();
      this.deps.logger.warn('push: evaluation queue full, oldest committed write dropped');
    }
    if (!this.running) void this.run();
  }

  /** Resolves once every write enqueued so far has been evaluated and stored. */
  idle(): Promise<void> {
    if (!this.running && this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  close(): void {
    this.closed = true;
    this.pending.length = 0;
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (!this.closed && this.pending.length > 0) {
        const item = this.pending.shift()!;
        try {
          await this.process(item.events, item.outOfBand);
        } catch (err) {
          if (this.closed) break;
          this.deps.logger.error({ err }, 'push: evaluating committed events failed');
        }
      }
    } finally {
      this.running = false;
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Evaluates events and stores the notifications; returns what notified. */
  async process(events: readonly StoredEvent[], outOfBand = false): Promise<NotifiedEvent[]> {
    const notified: NotifiedEvent[] = [];
    for (const ev of events) {
      if (outOfBand) {
        if (!ev.rejected) notified.push(...(await this.evaluateOutOfBandInvite(ev)));
        continue;
      }
      if (ev.rejected || ev.outlier || ev.stateBefore === null) continue;
      notified.push(...(await this.evaluateEvent(ev)));
    }
    if (notified.length === 0) return notified;
    const now = this.deps.clock.now();
    const rows: NewNotification[] = notified.map((n) => ({
      userId: n.userId,
      roomId: n.event.pdu.room_id,
      eventId: n.event.eventId,
      streamOrdering: n.event.streamOrdering,
      actions: n.evaluation.actions,
      highlight: n.evaluation.highlight,
      threadId: n.threadId,
      ts: now,
    }));
    await insertNotifications(this.deps.db.knex, rows);
    try {
      await this.deps.onNotified(notified);
    } catch (err) {
      this.deps.logger.error({ err }, 'push: queueing deliveries failed');
    }
    return notified;
  }

  /**
   * An invite to a room this server is not in: there is no room state, only the stripped state the inviting
   * server sent (`invite_room_state`), which names the room and the sender; no power levels, so defaults.
   */
  private async evaluateOutOfBandInvite(ev: StoredEvent): Promise<NotifiedEvent[]> {
    const pdu = ev.pdu;
    const invitee = pdu.state_key;
    if (pdu.type !== 'm.room.member' || pdu.content.membership !== 'invite' || typeof invitee !== 'string') return [];
    if (invitee === pdu.sender || serverNameOf(invitee) !== this.deps.serverName) return [];
    const stripped = new Map<string, Record<string, unknown>>();
    const declared = (pdu.unsigned as { invite_room_state?: unknown } | undefined)?.invite_room_state;
    for (const e of Array.isArray(declared) ? declared : []) {
      const type = stringProp(e, 'type');
      const stateKey = stringProp(e, 'state_key');
      const content = (e as { content?: unknown }).content;
      if (type === undefined || stateKey === undefined || content === null || typeof content !== 'object') continue;
      stripped.set(stateMapKey(type, stateKey), content as Record<string, unknown>);
    }
    const evaluation = evaluate(await this.deps.rules.ruleset(invitee), { ...pdu, event_id: ev.eventId }, {
      userId: invitee,
      displayName: stringProp(pdu.content, 'displayname'),
      memberCount: 0,
      senderPowerLevel: 0,
      notificationPowerLevel: () => 50,
    });
    if (!evaluation?.notify) return [];
    return [
      {
        userId: invitee,
        event: ev,
        evaluation,
        threadId: null,
        senderDisplayName: stringProp(stripped.get(stateMapKey('m.room.member', pdu.sender)), 'displayname'),
        roomName: stringProp(stripped.get(stateMapKey('m.room.name', '')), 'name'),
        roomAlias: stringProp(stripped.get(stateMapKey('m.room.canonical_alias', '')), 'alias'),
      },
    ];
  }

  private async evaluateEvent(ev: StoredEvent): Promise<NotifiedEvent[]> {
    const { db, rooms, serverName } = this.deps;
    const pdu = ev.pdu;
    const state: StateMap = await rooms.state.stateEvents(db.knex, ev.stateBefore!);
    const version = await rooms.roomVersion(db.knex, pdu.room_id);

    const joined: string[] = [];
    for (const [key, member] of state) {
      if (!key.startsWith(MEMBER_PREFIX)) continue;
      if (member.content.membership === 'join') joined.push(parseStateMapKey(key)[1]);
    }
    const candidates = new Set(joined.filter((u) => u !== pdu.sender && serverNameOf(u) === serverName));
    // An invite notifies the invitee, who is not joined yet (.m.rule.invite_for_me).
    if (pdu.type === 'm.room.member' && pdu.content.membership === 'invite' && typeof pdu.state_key === 'string') {
      if (pdu.state_key !== pdu.sender && serverNameOf(pdu.state_key) === serverName) candidates.add(pdu.state_key);
    }
    if (candidates.size === 0) return [];

    const senderPowerLevel = userPowerLevel(state, pdu.sender, version);
    const pushEvent: PushEvent = { ...pdu, event_id: ev.eventId };
    const threadId = threadIdOf(pdu.content);
    const out: NotifiedEvent[] = [];
    for (const userId of candidates) {
      const ruleset = await this.deps.rules.ruleset(userId);
      const displayName = stringProp(state.get(stateMapKey('m.room.member', userId))?.content, 'displayname');
      const evaluation = evaluate(ruleset, pushEvent, {
        userId,
        displayName,
        memberCount: joined.length,
        senderPowerLevel,
        notificationPowerLevel: (key) => notificationPowerLevel(state, key, version),
      });
      if (!evaluation?.notify) continue;
      out.push({
        userId,
        event: ev,
        evaluation,
        threadId,
        senderDisplayName: stringProp(state.get(stateMapKey('m.room.member', pdu.sender))?.content, 'displayname'),
        roomName: stringProp(state.get(stateMapKey('m.room.name', ''))?.content, 'name'),
        roomAlias: stringProp(state.get(stateMapKey('m.room.canonical_alias', ''))?.content, 'alias'),
      });
    }
    return out;
  }
}
