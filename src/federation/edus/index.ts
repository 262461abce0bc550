/**
 * EDUs over federation, composed once per homeserver (spec: Server-Server API, "EDUs"): the inbound
 * dispatcher /send hands a transaction's EDUs to, one handler per EDU type; the outbound side, which
 * listens to the typing, receipt, presence, to-device and device-list services and queues EDUs in the
 * federation outbox; the remote device-list cache and remote key queries behind /keys/query and
 * /keys/claim; and the E2EE endpoints other servers call.
 */
import type { Logger } from 'pino';
import type { E2eeServices } from '../../e2ee/index.js';
import { RemoteDeviceLists } from '../../e2ee/remoteDeviceLists.js';
import { RemoteKeyService } from '../../e2ee/remoteKeys.js';
import type { EduServices } from '../../edus/index.js';
import type { RouteDefinition } from '../../http/route.js';
import type { RoomService } from '../../rooms/roomService.js';
import type { Database } from '../../storage/database.js';
import { pruneToDeviceSeen } from '../../storage/repositories/remoteDevices.js';
import { roomMembers } from '../../storage/repositories/state.js';
import type { UserService } from '../../users/userService.js';
import type { FederationClient } from '../client.js';
import { e2eeApiRoutes } from '../e2eeApi.js';
import type { RoomFederation } from '../roomFederation.js';
import { serverNameOf } from '../serverName.js';
import { deviceListUpdateHandler } from './deviceListUpdate.js';
import { LocalDeviceLists } from './deviceListOutbound.js';
import { directToDeviceHandler, sendToDevice } from './directToDevice.js';
import { EduDispatcher } from './dispatch.js';
import { EduOutbox } from './outbox.js';
import { presenceHandler, sendPresence } from './presence.js';
import { presenceOnJoin } from './presenceOnJoin.js';
import { receiptHandler, sendReceipts } from './receipt.js';
import { signingKeyUpdateHandler } from './signingKeyUpdate.js';
import { sendTyping, typingHandler } from './typing.js';

export interface FederationEduDeps {
  db: Database;
  serverName: string;
  clock: { now(): number };
  logger: Logger;
  rooms: Pick<RoomService, 'onCommitted'>;
  users: Pick<UserService, 'hooks'>;
  e2ee: E2eeServices;
  edus: EduServices;
  client: Pick<FederationClient, 'request'>;
  roomFederation: Pick<RoomFederation, 'outbox' | 'sender' | 'receiver' | 'acl'>;
}

export interface FederationEdus {
  dispatcher: EduDispatcher;
  outbox: EduOutbox;
  remoteDeviceLists: RemoteDeviceLists;
  localDeviceLists: LocalDeviceLists;
  remoteKeys: RemoteKeyService;
  routes: RouteDefinition[];
  /** Resolves when queued work (EDUs to queue, device lists to update) is done (tests, shutdown). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

/** Message ids of received to-device EDUs are remembered this long (a sender retries for less). */
const TO_DEVICE_DEDUPE_MS = 7 * 24 * 60 * 60_000;
const PRUNE_EVERY_MS = 60 * 60_000;

export function createFederationEdus(deps: FederationEduDeps): FederationEdus {
  const { db, serverName, clock, e2ee, edus, roomFederation } = deps;
  const aclAllows = (roomId: string, server: string) => roomFederation.acl.allowed(roomId, server);
  const logger = deps.logger.child({ module: 'federation-edus' });
  const isLocal = (userId: string) => serverNameOf(userId) === serverName;

  const outbox = new EduOutbox({
    db,
    serverName,
    clock,
    logger,
    pdusQueued: () => roomFederation.outbox.idle(),
    wake: (d) => roomFederation.sender.wake(d),
  });
  const remoteDeviceLists = new RemoteDeviceLists({ db, serverName, client: deps.client, deviceLists: e2ee.deviceLists, clock, logger });
  const remoteKeys = new RemoteKeyService({ db, serverName, client: deps.client, deviceLists: remoteDeviceLists, logger });
  const localDeviceLists = new LocalDeviceLists({ db, serverName, outbox, logger });

  // Outbound.
  e2ee.deviceKeys.remoteKeys = remoteKeys;
  sendToDevice({ toDevice: e2ee.toDevice, outbox });
  sendTyping({ typing: edus.typing, outbox, db });
  sendReceipts({ receipts: edus.receipts, outbox, db });
  sendPresence({ presence: edus.presence, outbox, db });
  deps.rooms.onCommitted(presenceOnJoin({ db, serverName, presence: edus.presence, outbox, logger }));
  // Every committed change of a local user's devices or cross-signing keys is announced to other servers.
  e2ee.deviceLists.onChanged.push((userId) => {
    if (isLocal(userId)) void localDeviceLists.changed(userId);
  });
  // A renamed device changes its display name in others' lists (not a device-list change for local sync).
  deps.users.hooks.onDeviceChanged.push((userId, _deviceId, change) => {
    if (change === 'renamed') void localDeviceLists.changed(userId);
  });

  // Remote users nobody here shares a room with any more are forgotten, so they are not served stale later.
  let forgetting: Promise<void> = Promise.resolve();
  deps.rooms.onCommitted((result) => {
    const leavers: Array<{ roomId: string; userId: string }> = [];
    for (const e of result.events) {
      if (e.pdu.type !== 'm.room.member' || typeof e.pdu.state_key !== 'string' || e.outlier || e.rejected) continue;
      if (e.pdu.content.membership === 'join') continue;
      leavers.push({ roomId: e.pdu.room_id, userId: e.pdu.state_key });
    }
    if (!leavers.length) return;
    forgetting = forgetting
      .then(async () => {
        const candidates = new Set<string>();
        for (const { roomId, userId } of leavers) {
          if (!isLocal(userId)) candidates.add(userId);
          // A local user left: the remote members of that room may now share nothing with us.
          else for (const m of await roomMembers(db.knex, roomId, ['join'])) if (!isLocal(m)) candidates.add(m);
        }
        await remoteDeviceLists.forgetUntracked(candidates);
      })
      .catch((err) => logger.warn({ err }, 'forgetting remote device lists failed'));
  });

  // Inbound.
  const dispatcher = new EduDispatcher(
    [
      typingHandler({ typing: edus.typing, logger, aclAllows }),
      receiptHandler({ receipts: edus.receipts, logger, aclAllows }),
      presenceHandler({ presence: edus.presence, logger }),
      deviceListUpdateHandler({ remoteDeviceLists, logger }),
      signingKeyUpdateHandler({ remoteDeviceLists, logger }),
      directToDeviceHandler({ serverName, toDevice: e2ee.toDevice, clock, logger }),
    ],
    logger,
  );
  roomFederation.receiver.eduHandler = (origin, list) => dispatcher.dispatch(origin, list);

  const prune = setInterval(() => {
    pruneToDeviceSeen(db.knex, clock.now() - TO_DEVICE_DEDUPE_MS).catch((err) => logger.warn({ err }, 'pruning to-device ids failed'));
  }, PRUNE_EVERY_MS);
  prune.unref();

  const idle = async () => {
    await forgetting;
    await remoteDeviceLists.idle();
    await localDeviceLists.idle();
    await outbox.idle();
  };
  return {
    dispatcher,
    outbox,
    remoteDeviceLists,
    localDeviceLists,
    remoteKeys,
    routes: e2eeApiRoutes({ serverName, deviceKeys: e2ee.deviceKeys, localDeviceLists }),
    idle,
    async close() {
      clearInterval(prune);
      await idle();
    },
  };
}
