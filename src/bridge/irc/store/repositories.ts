import type { Knex } from 'knex';
import type { CryptoStateStore } from '../../crypto/index.js';

export interface Portal {
  roomId: string;
  network: string;
  channel: string;
  channelKey: string;
  encrypted: boolean;
}

export interface PuppetRow {
  userId: string;
  network: string;
  nick: string | null;
  saslAccount: string | null;
  saslPassword: string | null;
  channels: string[];
  connected: boolean;
}

export interface DmRoom {
  roomId: string;
  network: string;
  userId: string;
  nickKey: string;
  ghostId: string;
}

export interface OutboxItem {
  id: number;
  eventId: string;
  userId: string;
  network: string;
  command: 'PRIVMSG' | 'NOTICE' | 'ACTION' | 'TOPIC' | 'KICK' | 'INVITE';
  target: string;
  text: string;
}

const toPortal = (r: Record<string, unknown>): Portal => ({
  roomId: String(r.room_id),
  network: String(r.network),
  channel: String(r.channel),
  channelKey: String(r.channel_key),
  encrypted: Boolean(r.encrypted),
});

export class PortalRepository {
  constructor(private readonly db: Knex) {}

  async byChannel(network: string, channelKey: string): Promise<Portal | undefined> {
    const r = await this.db('portals').where({ network, channel_key: channelKey }).first();
    return r ? toPortal(r) : undefined;
  }

  async byRoom(roomId: string): Promise<Portal | undefined> {
    const r = await this.db('portals').where({ room_id: roomId }).first();
    return r ? toPortal(r) : undefined;
  }

  async all(network?: string): Promise<Portal[]> {
    const rows = await (network ? this.db('portals').where({ network }) : this.db('portals'));
    return rows.map(toPortal);
  }

  async insert(p: Portal): Promise<void> {
    await this.db('portals')
      .insert({ room_id: p.roomId, network: p.network, channel: p.channel, channel_key: p.channelKey, encrypted: p.encrypted })
      .onConflict('room_id')
      .merge();
  }

  async setEncrypted(roomId: string, encrypted: boolean): Promise<void> {
    await this.db('portals').where({ room_id: roomId }).update({ encrypted });
  }
}

export class GhostRepository {
  constructor(private readonly db: Knex) {}

  async nickOf(userId: string): Promise<string | undefined> {
    const r = await this.db('ghosts').where({ user_id: userId }).first('nick');
    return r ? String(r.nick) : undefined;
  }

  async save(userId: string, network: string, nick: string): Promise<void> {
    await this.db('ghosts').insert({ user_id: userId, network, nick }).onConflict('user_id').merge();
  }
}

const toPuppet = (r: Record<string, unknown>): PuppetRow => ({
  userId: String(r.user_id),
  network: String(r.network),
  nick: r.nick == null ? null : String(r.nick),
  saslAccount: r.sasl_account == null ? null : String(r.sasl_account),
  saslPassword: r.sasl_password == null ? null : String(r.sasl_password),
  channels: JSON.parse(String(r.channels ?? '[]')) as string[],
  connected: Boolean(r.connected),
});

export class PuppetRepository {
  constructor(private readonly db: Knex) {}

  async get(userId: string, network: string): Promise<PuppetRow | undefined> {
    const r = await this.db('puppets').where({ user_id: userId, network }).first();
    return r ? toPuppet(r) : undefined;
  }

  async connected(): Promise<PuppetRow[]> {
    return (await this.db('puppets').where({ connected: true })).map(toPuppet);
  }

  async update(userId: string, network: string, fields: Partial<Omit<PuppetRow, 'userId' | 'network'>>): Promise<void> {
    const row: Record<string, unknown> = {};
    if (fields.nick !== undefined) row.nick = fields.nick;
    if (fields.saslAccount !== undefined) row.sasl_account = fields.saslAccount;
    if (fields.saslPassword !== undefined) row.sasl_password = fields.saslPassword;
    if (fields.channels !== undefined) row.channels = JSON.stringify(fields.channels);
    if (fields.connected !== undefined) row.connected = fields.connected;
    await this.db('puppets')
      .insert({ user_id: userId, network, channels: '[]', connected: false, ...row })
      .onConflict(['user_id', 'network'])
      .merge(Object.keys(row).length ? row : ['network']);
  }
}

export class AdminRoomRepository {
  constructor(private readonly db: Knex) {}

  async userOf(roomId: string): Promise<string | undefined> {
    const r = await this.db('admin_rooms').where({ room_id: roomId }).first('user_id');
    return r ? String(r.user_id) : undefined;
  }

  async roomOf(userId: string): Promise<string | undefined> {
    const r = await this.db('admin_rooms').where({ user_id: userId }).first('room_id');
    return r ? String(r.room_id) : undefined;
  }

  async set(userId: string, roomId: string): Promise<void> {
    await this.db('admin_rooms').where({ user_id: userId }).delete();
    await this.db('admin_rooms').insert({ room_id: roomId, user_id: userId }).onConflict('room_id').merge();
  }

  async removeRoom(roomId: string): Promise<void> {
    await this.db('admin_rooms').where({ room_id: roomId }).delete();
  }
}

const toDm = (r: Record<string, unknown>): DmRoom => ({
  roomId: String(r.room_id),
  network: String(r.network),
  userId: String(r.user_id),
  nickKey: String(r.nick_key),
  ghostId: String(r.ghost_id),
});

export class DmRoomRepository {
  constructor(private readonly db: Knex) {}

  async byRoom(roomId: string): Promise<DmRoom | undefined> {
    const r = await this.db('dm_rooms').where({ room_id: roomId }).first();
    return r ? toDm(r) : undefined;
  }

  async find(network: string, userId: string, nickKey: string): Promise<DmRoom | undefined> {
    const r = await this.db('dm_rooms').where({ network, user_id: userId, nick_key: nickKey }).first();
    return r ? toDm(r) : undefined;
  }

  async set(dm: DmRoom): Promise<void> {
    await this.db('dm_rooms').where({ network: dm.network, user_id: dm.userId, nick_key: dm.nickKey }).delete();
    await this.db('dm_rooms')
      .insert({ room_id: dm.roomId, network: dm.network, user_id: dm.userId, nick_key: dm.nickKey, ghost_id: dm.ghostId })
      .onConflict('room_id')
      .merge();
  }

  async remove(roomId: string): Promise<void> {
    await this.db('dm_rooms').where({ room_id: roomId }).delete();
  }
}

export class TransactionRepository {
  constructor(private readonly db: Knex) {}

  async seen(txnId: string): Promise<boolean> {
    return Boolean(await this.db('transactions').where({ txn_id: txnId }).first('txn_id'));
  }

  async record(txnId: string): Promise<void> {
    await this.db('transactions').insert({ txn_id: txnId, ts: Date.now() }).onConflict('txn_id').ignore();
  }

  /** A week of ids is plenty: the homeserver retries one transaction until it is answered. */
  async prune(): Promise<void> {
    await this.db('transactions').where('ts', '<', Date.now() - 7 * 86_400_000).delete();
  }
}

const toOutbox = (r: Record<string, unknown>): OutboxItem => ({
  id: Number(r.id),
  eventId: String(r.event_id),
  userId: String(r.user_id),
  network: String(r.network),
  command: String(r.command) as OutboxItem['command'],
  target: String(r.target),
  text: String(r.text),
});

/** Lines on their way to IRC: written before the transaction is answered, marked once sent (so a replay is not resent). */
export class OutboxRepository {
  constructor(private readonly db: Knex) {}

  async add(items: Array<Omit<OutboxItem, 'id'>>): Promise<void> {
    if (!items.length) return;
    const rows = items.map((i, part) => ({ event_id: i.eventId, part, user_id: i.userId, network: i.network, command: i.command, target: i.target, text: i.text, sent: false, ts: Date.now() }));
    await this.db('outbox').insert(rows).onConflict(['event_id', 'part']).ignore();
  }

  async pending(userId: string, network: string): Promise<OutboxItem[]> {
    return (await this.db('outbox').where({ user_id: userId, network, sent: false }).orderBy('id')).map(toOutbox);
  }

  async senders(): Promise<Array<{ userId: string; network: string }>> {
    const rows = await this.db('outbox').where({ sent: false }).distinct('user_id', 'network');
    return rows.map((r: Record<string, unknown>) => ({ userId: String(r.user_id), network: String(r.network) }));
  }

  async done(id: number): Promise<void> {
    await this.db('outbox').where({ id }).update({ sent: true });
  }

  /** Sent lines are kept a day: long enough for any replay of their transaction. */
  async prune(): Promise<void> {
    await this.db('outbox').where({ sent: true }).andWhere('ts', '<', Date.now() - 86_400_000).delete();
  }
}

/** The crypto layer's persistence, in the bridge's own database. */
export class CryptoRepository implements CryptoStateStore {
  constructor(private readonly db: Knex) {}

  async loadSnapshot(storeName: string): Promise<Uint8Array | undefined> {
    const r = await this.db('crypto_snapshots').where({ store_name: storeName }).first('data');
    return r ? new Uint8Array(r.data as Buffer) : undefined;
  }

  async saveSnapshot(storeName: string, data: Uint8Array): Promise<void> {
    await this.db('crypto_snapshots').insert({ store_name: storeName, data: Buffer.from(data) }).onConflict('store_name').merge();
  }

  async deviceOf(userId: string): Promise<string | undefined> {
    const r = await this.db('crypto_devices').where({ user_id: userId }).first('device_id');
    return r ? String(r.device_id) : undefined;
  }

  async saveDevice(userId: string, deviceId: string): Promise<void> {
    await this.db('crypto_devices').insert({ user_id: userId, device_id: deviceId }).onConflict('user_id').merge();
  }
}

/** Encrypted events the bridge could not read yet, retried as keys arrive. */
export class UndecryptedRepository {
  constructor(private readonly db: Knex) {}

  async add(eventId: string, event: Record<string, unknown>): Promise<void> {
    await this.db('undecrypted').insert({ event_id: eventId, event: JSON.stringify(event), ts: Date.now() }).onConflict('event_id').ignore();
  }

  async all(): Promise<Array<{ eventId: string; event: Record<string, unknown>; ts: number }>> {
    const rows = await this.db('undecrypted').orderBy('ts');
    return rows.map((r: Record<string, unknown>) => ({ eventId: String(r.event_id), event: JSON.parse(String(r.event)) as Record<string, unknown>, ts: Number(r.ts) }));
  }

  async remove(eventId: string): Promise<void> {
    await this.db('undecrypted').where({ event_id: eventId }).delete();
  }
}

export interface BridgeStore {
  portals: PortalRepository;
  ghosts: GhostRepository;
  puppets: PuppetRepository;
  adminRooms: AdminRoomRepository;
  dms: DmRoomRepository;
  transactions: TransactionRepository;
  outbox: OutboxRepository;
  crypto: CryptoRepository;
  undecrypted: UndecryptedRepository;
}

export function createBridgeStore(db: Knex): BridgeStore {
  return {
    portals: new PortalRepository(db),
    ghosts: new GhostRepository(db),
    puppets: new PuppetRepository(db),
    adminRooms: new AdminRoomRepository(db),
    dms: new DmRoomRepository(db),
    transactions: new TransactionRepository(db),
    outbox: new OutboxRepository(db),
    crypto: new CryptoRepository(db),
    undecrypted: new UndecryptedRepository(db),
  };
}
