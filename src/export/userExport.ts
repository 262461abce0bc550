import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { MEDIA_ID_RE, type MediaStore } from '../media/store.js';
import type { PushRulesService } from '../push/rulesService.js';
import { isValidUserId } from '../rooms/authRules.js';
import { serverNameOf } from '../rooms/eventFormat.js';
import type { RoomService } from '../rooms/roomService.js';
import type { Clock } from '../serviceDeps.js';
import type { Database } from '../storage/database.js';
import { allAccountData } from '../storage/repositories/accountData.js';
import { listDevices } from '../storage/repositories/devices.js';
import { getCrossSigningKeys, getDeviceKeys } from '../storage/repositories/e2ee.js';
import { listPushers } from '../storage/repositories/pushers.js';
import { getPresence } from '../storage/repositories/presence.js';
import { getUser } from '../storage/repositories/users.js';
import * as exportRepo from '../storage/repositories/userExport.js';
import { dict } from '../util/dict.js';
import { ExportDirectory, ExportError, safeSegment } from './exportDirectory.js';
import { exportRooms } from './roomHistory.js';

export interface UserExportDeps {
  db: Database;
  serverName: string;
  clock: Clock;
  rooms: RoomService;
  pushRules: PushRulesService;
  mediaStore: MediaStore;
}

export interface UserExportResult {
  directory: string;
  rooms: number;
  events: number;
  media: number;
}

// Bumped when a file changes shape, so scripts reading exports can tell.
const FORMAT_VERSION = 1;
const MEDIA_PAGE = 100;
// Pusher data keys that are settings, not credentials (spec: "PusherData"); anything else may be a secret.
const PUSHER_DATA_KEYS = ['url', 'format'];

/**
 * `skjol export-data`: writes what the server holds about a local user into an empty directory, in the
 * layout of Synapse's `export-data` admin command (rooms/<room>/…, user_data/…, media_ids/…) plus the media
 * bytes. Secrets are left out: no password hash, tokens, pusher keys or encrypted key material.
 */
export async function exportUserData(deps: UserExportDeps, userId: string, outputDirectory: string | undefined): Promise<UserExportResult> {
  if (!isValidUserId(userId)) throw new ExportError(`"${userId}" is not a user id (@name:server)`);
  if (serverNameOf(userId) !== deps.serverName) throw new ExportError(`${userId} is not a user of this server (${deps.serverName})`);
  const db = deps.db.knex;
  const user = await getUser(db, userId);
  if (!user) throw new ExportError(`Unknown user ${userId}`);
  const out = ExportDirectory.open(outputDirectory, userId);

  const rooms = await exportRooms(deps, userId, out);
  out.writeJson(['rooms.json'], rooms);

  // Profile, as Synapse's admin "get user" (password hash left out).
  out.writeJson(['user_data', 'profile.json'], {
    user_id: user.userId,
    displayname: user.displayname,
    avatar_url: user.avatarUrl,
    admin: user.admin,
    deactivated: user.deactivated,
    erased: user.erased,
    is_guest: user.isGuest,
    appservice_id: user.appserviceId,
    creation_ts: user.createdTs,
  });

  const devices = await listDevices(db, userId, true);
  const deviceKeys = await getDeviceKeys(db, userId);
  out.writeJson(
    ['user_data', 'devices.json'],
    devices.map((d) => ({
      device_id: d.deviceId,
      display_name: d.displayName,
      created_ts: d.createdTs,
      last_seen_ts: d.lastSeenTs,
      last_seen_ip: d.lastSeenIp,
      last_seen_user_agent: d.lastSeenUserAgent,
      hidden: d.hidden,
      // Public identity keys and their signatures only; one-time and fallback keys are not exported.
      keys: deviceKeys.get(d.deviceId) ?? null,
    })),
  );
  // Synapse's "connections": where and with what each session was last seen.
  out.writeJson(
    ['user_data', 'connections.json'],
    devices.filter((d) => d.lastSeenTs !== null).map((d) => ({ device_id: d.deviceId, ip: d.lastSeenIp, user_agent: d.lastSeenUserAgent, last_seen: d.lastSeenTs })),
  );
  out.writeJson(['user_data', 'cross_signing_keys.json'], await getCrossSigningKeys(db, userId));
  out.writeJson(['user_data', 'dehydrated_device.json'], { device_id: (await exportRepo.dehydratedDeviceOf(db, userId)) ?? null });

  const global = dict<Record<string, unknown>>();
  const byRoom = dict<Record<string, Record<string, unknown>>>();
  for (const row of await allAccountData(db, userId, Number.MAX_SAFE_INTEGER)) {
    if (row.roomId === '') global[row.type] = row.content;
    else (byRoom[row.roomId] ??= dict<Record<string, unknown>>())[row.type] = row.content;
  }
  out.writeJson(['user_data', 'account_data', 'global.json'], global);
  out.writeJson(['user_data', 'account_data', 'rooms.json'], byRoom);

  const presence = await getPresence(db, userId);
  out.writeJson(
    ['user_data', 'presence.json'],
    presence ? { presence: presence.state, status_msg: presence.statusMsg ?? null, last_active_ts: presence.lastActiveTs } : null,
  );
  out.writeJson(
    ['user_data', 'receipts.json'],
    (await exportRepo.receiptsOfUser(db, userId)).map((r) => ({ room_id: r.roomId, receipt_type: r.receiptType, thread_id: r.threadId, event_id: r.eventId, ts: r.ts })),
  );
  out.writeJson(['user_data', 'push_rules.json'], await deps.pushRules.accountDataContent(userId));
  out.writeJson(
    ['user_data', 'pushers.json'],
    (await listPushers(db, userId)).map((p) => ({
      app_id: p.appId,
      app_display_name: p.appDisplayName,
      device_display_name: p.deviceDisplayName,
      kind: p.kind,
      lang: p.lang,
      profile_tag: p.profileTag,
      device_id: p.deviceId,
      created_ts: p.createdTs,
      // The pushkey can be a credential (a UnifiedPush endpoint): a fingerprint tells pushers apart.
      pushkey_sha256: createHash('sha256').update(p.pushkey).digest('hex'),
      data: pickKeys(p.data, PUSHER_DATA_KEYS),
    })),
  );
  out.writeJson(
    ['user_data', 'filters.json'],
    (await exportRepo.filtersOfUser(db, userId)).map((f) => ({ filter_id: String(f.filterId), filter: parseJson(f.filterJson) })),
  );
  out.writeJson(['user_data', 'key_backup.json'], {
    versions: (await exportRepo.backupVersionsOfUser(db, userId)).map((v) => ({
      version: String(v.version),
      algorithm: v.algorithm,
      auth_data: v.authData,
      etag: String(v.etag),
      deleted: v.deleted,
    })),
    // Which sessions are backed up; their session_data (the client's ciphertext) is not exported.
    sessions: (await exportRepo.backedUpSessionsOfUser(db, userId)).map((s) => ({
      version: String(s.version),
      room_id: s.roomId,
      session_id: s.sessionId,
      first_message_index: s.firstMessageIndex,
      forwarded_count: s.forwardedCount,
      is_verified: s.isVerified,
    })),
  });
  out.writeJson(
    ['user_data', 'reports.json'],
    (await exportRepo.reportsByUser(db, userId)).map((r) => ({ room_id: r.roomId, event_id: r.eventId, user_id: r.targetUserId, reason: r.reason, score: r.score, received_ts: r.receivedTs })),
  );
  out.writeJson(
    ['user_data', 'room_aliases.json'],
    (await exportRepo.aliasesCreatedBy(db, userId)).map((a) => ({ room_alias: a.alias, room_id: a.roomId, created_ts: a.createdTs })),
  );

  const media = await exportMedia(deps, userId, out);

  const result: UserExportResult = { directory: out.root, rooms: rooms.length, events: rooms.reduce((n, r) => n + r.events, 0), media };
  out.writeJson(['export.json'], {
    format_version: FORMAT_VERSION,
    user_id: userId,
    server_name: deps.serverName,
    exported_ts: deps.clock.now(),
    rooms: result.rooms,
    events: result.events,
    media: result.media,
  });
  return result;
}

/** Metadata in media_ids/<id>.json (Synapse's place), the bytes in media/<id>; thumbnails are derived and left out. */
async function exportMedia(deps: UserExportDeps, userId: string, out: ExportDirectory): Promise<number> {
  let count = 0;
  let after: string | undefined;
  for (;;) {
    const page = await exportRepo.mediaOfUser(deps.db.knex, userId, after, MEDIA_PAGE);
    for (const m of page) {
      // An async upload (v1/create) that never received its bytes has no file.
      const source = MEDIA_ID_RE.test(m.mediaId) && m.uploadTs !== null ? deps.mediaStore.contentPath(m.mediaId) : undefined;
      const hasFile = source !== undefined && existsSync(source);
      const name = safeSegment(m.mediaId);
      if (hasFile) out.copyFile(source, ['media', name]);
      out.writeJson(['media_ids', `${name}.json`], {
        media_id: m.mediaId,
        mxc_uri: `mxc://${deps.serverName}/${m.mediaId}`,
        media_type: m.contentType,
        upload_name: m.filename,
        media_length: m.size,
        sha256: m.sha256,
        created_ts: m.createdTs,
        upload_ts: m.uploadTs,
        last_access_ts: m.lastAccessTs,
        user_id: userId,
        file: hasFile ? `media/${name}` : null,
      });
      count++;
    }
    if (page.length < MEDIA_PAGE) break;
    after = page[page.length - 1]!.mediaId;
  }
  return count;
}

function pickKeys(data: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const out = dict<unknown>();
  for (const k of keys) if (Object.hasOwn(data, k)) out[k] = data[k];
  return out;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
