/**
 * Fills the durable application service queue (docs/architecture.md, "Application services") and
 * runs its sender (./transactions.ts):
 * - every committed, non-outlier event, in client format with room_id, for each service it interests
 *   (./interest.ts: sender / state_key in the user namespace, room id or alias in the namespaces, or a member
 *   at the event in the user namespace);
 * - with `receive_ephemeral` (MSC2409): m.typing, m.receipt and m.presence;
 * - with `org.matrix.msc3202`: to-device messages for namespaced users' devices (MSC2409 to-device; they
 *   then skip the normal to-device queue), device list changes of users sharing a room with namespaced users.
 * Enqueueing runs in commit order on one chain, so each service's queue keeps the room's order.
 */
import type { Logger } from 'pino';
import type { E2eeServices } from '../e2ee/index.js';
import type { EduServices } from '../edus/index.js';
import type { RoomService, StoredEvent, WriteResult } from '../rooms/roomService.js';
import type { Database } from '../storage/database.js';
import { enqueueAppservice, type AppserviceItemKind } from '../storage/repositories/appserviceQueue.js';
import { listDevices } from '../storage/repositories/devices.js';
import { aliasesForRoom } from '../storage/repositories/rooms.js';
import { roomMembers, usersSharingRooms } from '../storage/repositories/state.js';
import { LruCache } from '../util/lru.js';
import { eventInterests, roomInterests, userInNamespace } from './interest.js';
import type { AppserviceRegistration } from './registration.js';
import { AppserviceTransactionSender, type AppserviceSenderOptions, type RegistrationSource } from './transactions.js';
import { dict } from '../util/dict.js';

export interface AppservicePusherDeps {
  db: Database;
  rooms: Pick<RoomService, 'onCommitted' | 'reader' | 'state' | 'events'>;
  registrations: RegistrationSource;
  serverName: string;
  clock: { now(): number };
  logger: Logger;
  edus?: Pick<EduServices, 'typing' | 'receipts' | 'presence'>;
  e2ee?: Pick<E2eeServices, 'toDevice' | 'deviceLists' | 'deviceKeys'>;
  fetch?: typeof fetch;
}

type Item = { serviceId: string; kind: AppserviceItemKind; payload: unknown; queuedTs: number };

const MEMBER_PREFIX = 'm.room.member\u0000';

export class AppservicePusher {
  readonly sender: AppserviceTransactionSender;
  private chain: Promise<void> = Promise.resolve();
  /** Joined members per state group; groups never change once written. */
  private readonly membersByGroup = new LruCache<number, readonly string[]>(2_000);
  private attached = false;

  constructor(
    private readonly deps: AppservicePusherDeps,
    options: Partial<AppserviceSenderOptions> = {},
  ) {
    this.sender = new AppserviceTransactionSender(
      {
        db: deps.db,
        registrations: deps.registrations,
        serverName: deps.serverName,
        clock: deps.clock,
        logger: deps.logger,
        ...(deps.e2ee ? { deviceKeys: deps.e2ee.deviceKeys } : {}),
        ...(deps.fetch ? { fetch: deps.fetch } : {}),
      },
      options,
    );
  }

  private get pushing(): AppserviceRegistration[] {
    return this.deps.registrations.all().filter((r) => r.url !== null);
  }

  /** Subscribes to commits, EDUs and E2EE changes. Does nothing when no service receives pushes. */
  attach(): void {
    if (this.attached || !this.pushing.length) return;
    this.attached = true;
    const { rooms, edus, e2ee } = this.deps;
    rooms.onCommitted((result) => this.run('events', () => this.onEvents(result)));
    if (edus && this.pushing.some((r) => r.receiveEphemeral)) {
      edus.typing.onLocalChange.push((roomId) => this.run('typing', () => this.onTyping(roomId)));
      edus.receipts.onLocalReceipt.push((r) =>
        this.run('receipt', () =>
          this.forRoom(r.roomId, (reg) => reg.receiveEphemeral, {
            type: 'm.receipt',
            room_id: r.roomId,
            content: { [r.eventId]: { [r.receiptType]: { [r.userId]: { ts: r.ts, ...(r.threadId ? { thread_id: r.threadId } : {}) } } } },
          }),
        ),
      );
      edus.presence.onLocalChange.push((userId, content) => this.run('presence', () => this.onPresence(userId, content)));
    }
    if (e2ee && this.pushing.some((r) => r.msc3202)) {
      e2ee.deviceLists.onChanged.push((userId) => this.run('device lists', () => this.onDeviceListChange(userId, 'changed')));
      this.interceptToDevice(e2ee.toDevice);
    }
  }

  /** Resumes delivery of whatever is queued. */
  async start(): Promise<void> {
    this.attach();
    await this.sender.start();
  }

  async stop(): Promise<void> {
    await this.chain;
    await this.sender.stop();
  }

  /** Resolves once everything so far is queued and nothing is in flight (tests). */
  async idle(): Promise<void> {
    await this.chain;
    await this.sender.idle();
  }

  private run(what: string, job: () => Promise<void>): void {
    this.chain = this.chain.then(job).catch((err) => this.deps.logger.error({ err }, `appservice queue: enqueueing ${what} failed`));
  }

  private async enqueue(items: Item[]): Promise<void> {
    if (!items.length) return;
    await enqueueAppservice(this.deps.db.knex, items);
    this.wakeAll(items);
  }

  private wakeAll(items: readonly Item[]): void {
    for (const id of new Set(items.map((i) => i.serviceId))) this.sender.wake(id);
  }

  private async onEvents(result: WriteResult): Promise<void> {
    const services = this.pushing;
    const events = result.events.filter((e) => !e.outlier && !e.rejected);
    if (!events.length) return;
    const db = this.deps.db.knex;
    const formatted = await this.deps.rooms.reader.format(events, undefined, { includeRoomId: true, bundleAggregations: false });
    const aliases = new Map<string, string[]>();
    const now = this.deps.clock.now();
    const items: Item[] = [];
    for (let i = 0; i < events.length; i++) {
      const ev = events[i]!;
      const roomId = ev.pdu.room_id;
      if (!aliases.has(roomId)) aliases.set(roomId, await aliasesForRoom(db, roomId));
      const room = { aliases: aliases.get(roomId)!, members: await this.membersAt(ev) };
      const facts = { type: ev.pdu.type, sender: ev.pdu.sender, roomId, stateKey: ev.pdu.state_key };
      for (const reg of services) {
        if (eventInterests(reg, facts, room, this.deps.serverName)) items.push({ serviceId: reg.id, kind: 'event', payload: formatted[i], queuedTs: now });
      }
    }
    await this.enqueue(items);
    // MSC3202: a user joining a room with namespaced users is news to the service's device lists.
    for (const ev of events) {
      if (ev.pdu.type !== 'm.room.member' || typeof ev.pdu.state_key !== 'string') continue;
      const membership = ev.pdu.content.membership;
      if (membership === 'join') await this.onDeviceListChange(ev.pdu.state_key, 'changed');
      else if ((membership === 'leave' || membership === 'ban') && ev.stateBefore !== null) {
        const before = await this.membersOfGroup(ev.stateBefore);
        if (before.includes(ev.pdu.state_key)) await this.onDeviceListChange(ev.pdu.state_key, 'left', before);
      }
    }
  }

  /** Users joined to the room at the event (the state after it, or before it for a non-state event). */
  private async membersAt(ev: StoredEvent): Promise<readonly string[]> {
    const group = ev.stateAfter ?? ev.stateBefore;
    if (group === null) return roomMembers(this.deps.db.knex, ev.pdu.room_id, ['join']);
    return this.membersOfGroup(group);
  }

  private async membersOfGroup(group: number): Promise<readonly string[]> {
    const cached = this.membersByGroup.get(group);
    if (cached) return cached;
    const db = this.deps.db.knex;
    const ids = await this.deps.rooms.state.stateIds(db, group);
    const memberIds: string[] = [];
    for (const [key, id] of ids) if (key.startsWith(MEMBER_PREFIX)) memberIds.push(id);
    const members: string[] = [];
    for (const m of (await this.deps.rooms.events.getMany(db, memberIds)).values()) {
      if (m.pdu.content.membership === 'join' && typeof m.pdu.state_key === 'string') members.push(m.pdu.state_key);
    }
    this.membersByGroup.set(group, members);
    return members;
  }

  /** Queues an ephemeral event for every service (passing `filter`) the room interests. */
  private async forRoom(roomId: string, filter: (reg: AppserviceRegistration) => boolean, event: Record<string, unknown>): Promise<void> {
    const services = this.pushing.filter(filter);
    if (!services.length) return;
    const db = this.deps.db.knex;
    const room = { aliases: await aliasesForRoom(db, roomId), members: await roomMembers(db, roomId, ['join']) };
    const now = this.deps.clock.now();
    await this.enqueue(
      services
        .filter((reg) => roomInterests(reg, roomId, room, this.deps.serverName))
        .map((reg) => ({ serviceId: reg.id, kind: 'ephemeral' as const, payload: event, queuedTs: now })),
    );
  }

  private async onTyping(roomId: string): Promise<void> {
    const typing = this.deps.edus!.typing;
    await this.forRoom(roomId, (reg) => reg.receiveEphemeral, { type: 'm.typing', room_id: roomId, content: { user_ids: typing.typers(roomId) } });
  }

  /** Services with a namespaced user among `userId` and the users sharing a room with it. */
  private async servicesOfPeers(userId: string, filter: (reg: AppserviceRegistration) => boolean): Promise<AppserviceRegistration[]> {
    const services = this.pushing.filter(filter);
    if (!services.length) return [];
    const peers = [userId, ...(await usersSharingRooms(this.deps.db.knex, userId))];
    return services.filter((reg) => peers.some((p) => userInNamespace(reg, p, this.deps.serverName)));
  }

  private async onPresence(userId: string, content: unknown): Promise<void> {
    const now = this.deps.clock.now();
    const services = await this.servicesOfPeers(userId, (reg) => reg.receiveEphemeral);
    await this.enqueue(services.map((reg) => ({ serviceId: reg.id, kind: 'ephemeral' as const, payload: { type: 'm.presence', sender: userId, content }, queuedTs: now })));
  }

  /**
   * MSC3202 device lists: `changed` when a user sharing a room with a namespaced user changed devices or
   * joined; `left` when a user leaving a room shared with the service's users (`roomMembers`, before the
   * leave) no longer shares any room with them.
   */
  private async onDeviceListChange(userId: string, change: 'changed' | 'left', roomMembers: readonly string[] = []): Promise<void> {
    const msc3202 = this.pushing.filter((r) => r.msc3202);
    if (!msc3202.length) return;
    const now = this.deps.clock.now();
    const sharing = await this.servicesOfPeers(userId, (reg) => reg.msc3202);
    const { serverName } = this.deps;
    const services =
      change === 'changed'
        ? sharing
        : msc3202.filter(
            (reg) => !sharing.includes(reg) && !userInNamespace(reg, userId, serverName) && roomMembers.some((m) => userInNamespace(reg, m, serverName)),
          );
    await this.enqueue(services.map((reg) => ({ serviceId: reg.id, kind: 'device_list' as const, payload: { [change]: userId }, queuedTs: now })));
  }

  /**
   * MSC2409 to-device: messages for local devices of users in an MSC3202 service's user namespace go into
   * that service's transactions instead of the normal to-device queue; the rest take the usual path.
   */
  private interceptToDevice(toDevice: E2eeServices['toDevice']): void {
    toDevice.diverters.push(async (trx, sender, type, messages) => {
      const rest = dict<Record<string, unknown>>();
      const items: Item[] = [];
      const now = this.deps.clock.now();
      for (const [userId, byDevice] of Object.entries(messages)) {
        const reg = userId.endsWith(`:${this.deps.serverName}`)
          ? this.pushing.find((r) => r.msc3202 && userInNamespace(r, userId, this.deps.serverName))
          : undefined;
        if (!reg) {
          rest[userId] = byDevice;
          continue;
        }
        const devices = (await listDevices(trx, userId, true)).map((d) => d.deviceId);
        const known = new Set(devices);
        for (const [deviceId, content] of Object.entries(byDevice)) {
          const targets = deviceId === '*' ? devices : known.has(deviceId) ? [deviceId] : [];
          for (const target of targets) {
            items.push({ serviceId: reg.id, kind: 'to_device', payload: { type, sender, content, to_user_id: userId, to_device_id: target }, queuedTs: now });
          }
        }
      }
      if (!items.length) return { rest };
      await enqueueAppservice(trx, items);
      return { rest, afterCommit: () => this.wakeAll(items) };
    });
  }
}
