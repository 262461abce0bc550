import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Knex } from 'knex';
import pino, { type Logger } from 'pino';
import { BridgeCrypto } from '../crypto/index.js';
import { createAppserviceApp, listen } from '../matrix/appserviceServer.js';
import { HomeserverApi } from '../matrix/homeserverApi.js';
import { MatrixSide, type Json } from '../matrix/matrixSide.js';
import { splitChannelEntry } from './channelKeys.js';
import { AdminCommands } from './commands.js';
import { mediaBaseUrl, type BridgeConfig } from './config.js';
import { BridgeContext } from './context.js';
import { DirectChats } from './directChats.js';
import { Ghosts } from './ghosts.js';
import { isValidNick } from './ids.js';
import { IrcInvites } from './ircInvites.js';
import { IrcRelay } from './ircRelay.js';
import { MatrixRelay } from './matrixRelay.js';
import { Outbox } from './outbox.js';
import { Portals } from './portals.js';
import { Puppets } from './puppets.js';
import { connectionTroubleText } from './refusalText.js';
import { MatrixTyping } from './typing.js';
import { cryptoPassphrase, mediaProxyKey, readRegistration } from './registration.js';
import { legacyMediaLink } from './matrixContent.js';
import { MEDIA_PROXY_PATH, MediaLinks, mediaProxyHandler } from './mediaProxy.js';
import { openBridgeDatabase } from './store/database.js';
import { createBridgeStore } from './store/repositories.js';

export interface IrcBridge {
  /** The port the application service listens on. */
  port: number;
  ctx: BridgeContext;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function bridgeLogger(level: string): Logger {
  return pino({ level, base: undefined, redact: { paths: ['password', 'sasl_password', 'as_token', 'hs_token', 'access_token', '*.password'], censor: '[redacted]' } });
}

async function waitForHomeserver(api: HomeserverApi, logger: Logger): Promise<void> {
  for (let delay = 500; ; delay = Math.min(delay * 2, 10_000)) {
    try {
      await api.request('GET', '/_matrix/client/versions');
      return;
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'homeserver not reachable yet');
      await sleep(delay);
    }
  }
}

/** Starts the IRC bridge: its database, the application service endpoint, the IRC connections. */
export async function startIrcBridge(config: BridgeConfig, logger: Logger = bridgeLogger(config.log_level)): Promise<IrcBridge> {
  const tokens = readRegistration(config.appservice.registration);
  const db: Knex = await openBridgeDatabase(config.database);
  const store = createBridgeStore(db);
  const api = new HomeserverApi({ url: config.homeserver.url, asToken: tokens.asToken });
  const crypto = config.encryption.enabled
    ? new BridgeCrypto({ api, store: store.crypto, passphrase: cryptoPassphrase(config), logger: logger.child({ part: 'crypto' }), deviceDisplayName: 'Skjól IRC bridge' })
    : undefined;
  await crypto?.start();
  const botUserId = `@${tokens.senderLocalpart}:${config.homeserver.domain}`;
  const matrix = new MatrixSide(api, botUserId, config.homeserver.domain, crypto);
  const proxy = config.media_proxy;
  const links = proxy.enabled ? new MediaLinks(mediaProxyKey(config), mediaBaseUrl(config), proxy.ttl_seconds) : undefined;
  const homeserverBase = config.homeserver.public_url ?? config.homeserver.url;
  const mediaLink = (mxc: string, name: string) => (links ? links.link(mxc, name) : legacyMediaLink(homeserverBase, mxc, name));
  const ctx = new BridgeContext(config, matrix, store, logger, mediaLink);

  const ghosts = new Ghosts(ctx);
  let matrixRelay: MatrixRelay | undefined;
  const notify = (userId: string, text: string) => matrixRelay?.notify(userId, text);
  let portals: Portals | undefined;
  // Said in the portal, mentioning the user, so what IRC refused never disappears without a word there.
  const tellInPortal = (network: string, channel: string, userId: string, text: string) => {
    void (async () => {
      const portal = await portals?.byChannel(network, channel);
      if (!portal) return notify(userId, `${channel} on ${network}: ${text}`);
      const name = (await matrix.displayName(userId)) ?? userId;
      await matrix.send(botUserId, portal.roomId, 'm.room.message', { msgtype: 'm.notice', body: `${name}: ${text}`, 'm.mentions': { user_ids: [userId] } });
    })().catch((err: Error) => logger.warn({ err: err.message }, 'could not report to a portal'));
  };
  const dms = new DirectChats(ctx, ghosts);
  const puppets = new Puppets(ctx, {
    privateMessage: (network, userId, kind, from, text) => {
      if (puppets.userForNick(network, from)) return; // between two Matrix users: they have Matrix for that
      dms.fromIrc(network, userId, kind, from, text).catch((err: Error) => logger.warn({ network, err: err.message }, 'private message not bridged'));
    },
    notify,
    channelError: (network, userId, channel, reason) => tellInPortal(network, channel, userId, `IRC refused this (${reason}).`),
    connectionTrouble: (network, userId, reason, wasRegistered, retryInMs) => notify(userId, connectionTroubleText(network, reason, wasRegistered, retryInMs)),
    noSuchNick: (network, userId, nick) => {
      dms
        .noSuchNick(network, userId, nick)
        .then((done) => done || notify(userId, `${nick} is not on ${network} right now.`))
        .catch((err: Error) => logger.warn({ err: err.message }, 'could not report a missing nick'));
    },
    invited: (network, userId, channel, from) => {
      invites.fromIrc(network, userId, channel, from).catch((err: Error) => logger.warn({ network, err: err.message }, 'IRC invite not bridged'));
    },
  });
  const invites = new IrcInvites(ctx, () => portals!, puppets, notify);
  const relay = new IrcRelay(ctx, ghosts, puppets, () => portals!);
  portals = new Portals(ctx, (network, channel) => relay.listen(network, channel));
  const outbox = new Outbox(ctx, puppets, notify, tellInPortal);
  const commands = new AdminCommands(ctx, puppets, portals, relay);
  matrixRelay = new MatrixRelay(
    ctx,
    ghosts,
    portals,
    puppets,
    dms,
    outbox,
    commands,
    async (body: Json) => {
      await crypto?.receiveTransaction(body);
    },
    new MatrixTyping(ctx, portals, puppets),
  );

  const app = createAppserviceApp(
    tokens.hsToken,
    {
      onTransaction: (txnId, body) => matrixRelay!.onTransaction(txnId, body),
      onUserQuery: async (userId) => {
        const parsed = ctx.parseGhost(userId);
        if (!parsed || !isValidNick(parsed.nickLower, ctx.network(parsed.network)!.max_nick_length)) return false;
        await ghosts.ensure(parsed.network, parsed.nickLower);
        // Asked about before an invite: with a device from the start, the inviter's first encrypted message
        // is shared with it too (a device that appears later cannot read what was sent before).
        await matrix.ensureDevice(userId);
        return true;
      },
      onAliasQuery: (alias) => portals!.onAliasQuery(alias),
      publicRoutes: links ? [{ path: `${MEDIA_PROXY_PATH}/:expires/:sig/:server/:mediaId{/:name}`, handler: mediaProxyHandler(api, links, proxy.max_size, logger) }] : [],
      protocol: (name) =>
        name === 'irc'
          ? {
              user_fields: ['network', 'nickname'],
              location_fields: ['network', 'channel'],
              icon: '',
              field_types: { network: { regexp: '[a-z0-9]+', placeholder: 'libera' }, nickname: { regexp: '[^\\s#]+', placeholder: 'nick' }, channel: { regexp: '[#&][^\\s,]+', placeholder: '#channel' } },
              instances: ctx.networkIds.map((id) => ({ network_id: id, desc: ctx.network(id)!.name ?? id, fields: { network: id }, icon: '' })),
            }
          : undefined,
    },
    logger,
  );
  const server: Server = await listen(app, config.appservice.port, config.appservice.bind_address);
  const port = (server.address() as AddressInfo).port;
  logger.info({ port }, 'application service listening');

  await waitForHomeserver(api, logger);
  await matrix.setDisplayName(botUserId, 'IRC bridge').catch((err: Error) => logger.warn({ err: err.message }, 'could not set the bot display name'));
  if (crypto) await matrix.ensureDevice(botUserId);

  // Keys users joined +k channels with, so the bridge's own connection gets in at once too.
  for (const row of await store.puppets.connected()) {
    for (const entry of row.channels) {
      const { channel, key } = splitChannelEntry(entry);
      if (key && !ctx.channelKeys.get(row.network, channel)) ctx.channelKeys.set(row.network, channel, key);
    }
  }
  for (const network of ctx.networkIds) await relay.start(network);
  for (const network of ctx.networkIds) {
    for (const mapping of ctx.network(network)!.channels) {
      const setup = mapping.room_id ? portals.link(network, mapping.channel, mapping.room_id) : portals.ensure(network, mapping.channel, mapping.encrypted);
      await setup.catch((err: Error) => logger.error({ network, channel: mapping.channel, err: err.message }, 'could not set up the configured channel'));
    }
  }
  await puppets.restore();
  await outbox.resumeAll();
  await store.transactions.prune();
  // Keys can arrive without a transaction after them; undecrypted events are looked at regularly too.
  const undecryptedTimer = setInterval(() => void matrixRelay!.retryUndecrypted().catch(() => undefined), 10_000);
  undecryptedTimer.unref();
  logger.info({ networks: ctx.networkIds }, 'IRC bridge running');

  return {
    port,
    ctx,
    async close() {
      clearInterval(undecryptedTimer);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await outbox.close();
      await relay.stop();
      await puppets.closeAll('Bridge shutting down');
      await crypto?.close();
      await db.destroy();
    },
  };
}
