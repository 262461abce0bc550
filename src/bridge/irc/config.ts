import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError, describeIssues, readYamlFile } from '../../config/load.js';
import { parseSize } from '../../config/schema.js';
import { isBindRange } from './bindAddress.js';
import { DEFAULT_GHOST_PREFIX } from './ids.js';
import { DEFAULT_RECONNECT } from './reconnectPolicy.js';

const channelMapping = z
  .object({
    channel: z.string().regex(/^[#&][^\s,\x07]{1,49}$/, 'an IRC channel name such as #skjol'),
    /** An existing Matrix room to link instead of creating a portal; the bridge bot must be invited. */
    room_id: z.string().regex(/^!.+:.+$/).optional(),
    encrypted: z.boolean().optional(),
    /** The channel key (+k) the bridge and its users join with. */
    key: z.string().regex(/^[^\s,]{1,64}$/, 'a channel key without spaces or commas').optional(),
  })
  .strict();

const network = z
  .object({
    name: z.string().optional(),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(6667),
    tls: z.boolean().default(false),
    /** Accept self-signed or otherwise untrusted IRC server certificates. */
    tls_insecure: z.boolean().default(false),
    /** PEM file of the CA (or self-signed certificate) to trust for this network instead of the system roots. */
    tls_ca_file: z.string().optional(),
    /** Server password (PASS), if the network needs one. */
    password: z.string().optional(),
    /** The bridge's own listening connection. */
    bot_nick: z.string().default('SkjolBridge'),
    /** Nick of a Matrix user's IRC connection: $DISPLAY (display name) and $LOCALPART are substituted. */
    nick_pattern: z.string().default('$DISPLAY[m]'),
    max_nick_length: z.number().int().min(4).max(64).default(30),
    /** SASL PLAIN for the bot connection; Matrix users set theirs with !sasl. */
    sasl: z.object({ account: z.string().min(1), password: z.string().min(1) }).strict().optional(),
    /** Local address, or a range (IPv6 /64, say) to give each Matrix user's connection its own address from. */
    bind_address: z.string().refine(isBindRange, 'an IP address or a CIDR range such as 2001:db8:42::/64').optional(),
    /** Backoff after refusals and lost connections; Matrix users' connections stop after `give_up_after` refusals in a row. */
    reconnect: z
      .object({
        base_ms: z.number().int().min(1).default(DEFAULT_RECONNECT.base_ms),
        max_ms: z.number().int().min(1).default(DEFAULT_RECONNECT.max_ms),
        give_up_after: z.number().int().min(1).default(DEFAULT_RECONNECT.give_up_after),
        throttle_ms: z.number().int().min(0).default(DEFAULT_RECONNECT.throttle_ms),
      })
      .strict()
      .default(DEFAULT_RECONNECT),
    /** Flood limits: `burst` lines at once, then one line every `interval_ms`. */
    flood: z.object({ burst: z.number().int().min(1).default(4), interval_ms: z.number().int().min(0).default(1000) }).strict().default({ burst: 4, interval_ms: 1000 }),
    /** Lines of one Matrix message sent to IRC before the rest is replaced by a link. */
    max_lines: z.number().int().min(1).default(5),
    /** Portals created on demand by joining #<alias_prefix><network>_<channel>. */
    dynamic_channels: z.boolean().default(true),
    /** Portals created by the bridge (alias or config) are end-to-end encrypted. */
    encrypt_portals: z.boolean().default(false),
    // `channels:` left empty (every entry removed or commented out) is YAML null: no configured portals.
    channels: z.array(channelMapping).nullish().transform((c) => c ?? []),
  })
  .strict();

const WEEK_SECONDS = 7 * 24 * 3600;
/** The homeserver's own default upload limit. */
const MAX_MEDIA_BYTES = 50 * 1024 * 1024;

export const bridgeConfigSchema = z
  .object({
    homeserver: z
      .object({
        url: z.string().url(),
        /** The homeserver's server_name (the part after ':' in user ids). */
        domain: z.string().min(1),
        /** Public base URL of the homeserver, for media links when media_proxy is off; defaults to url. */
        public_url: z.string().url().optional(),
      })
      .strict(),
    appservice: z
      .object({
        id: z.string().default('skjol-irc'),
        bind_address: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(9898),
        /** How the homeserver reaches the bridge. */
        url: z.string().url().optional(),
        /** The registration file: `--generate-registration` writes it, the bridge reads its tokens. */
        registration: z.string().default('irc-registration.yaml'),
        bot_localpart: z.string().regex(/^[a-z0-9._=\-/]+$/).default('ircbot'),
        user_prefix: z.string().regex(/^[a-z0-9._=\-/]+$/).default(DEFAULT_GHOST_PREFIX),
        alias_prefix: z.string().regex(/^[a-z0-9._=\-/]+$/).default(DEFAULT_GHOST_PREFIX),
      })
      .strict()
      .default({} as never),
    database: z
      .discriminatedUnion('engine', [
        z.object({ engine: z.literal('sqlite'), filename: z.string().default('irc-bridge.db') }).strict(),
        z.object({ engine: z.literal('postgres'), connection_string: z.string().min(1) }).strict(),
      ])
      .default({ engine: 'sqlite', filename: 'irc-bridge.db' }),
    encryption: z
      .object({
        enabled: z.boolean().default(true),
        /** Encrypts the bridge's crypto store at rest; generated into `<registration>.key` when absent. */
        passphrase: z.string().min(16).optional(),
      })
      .strict()
      .default({ enabled: true }),
    networks: z.record(z.string().regex(/^[a-z0-9]+$/, 'network ids are lower-case letters and digits'), network).refine((n) => Object.keys(n).length > 0, 'name at least one IRC network'),
    /**
     * Media links for IRC users point at the bridge, which fetches the file on the authenticated media API
     * with its as_token (homeservers with authenticated media, Skjól's default, refuse the legacy path).
     */
    media_proxy: z
      .object({
        enabled: z.boolean().default(true),
        /** Where IRC users reach the bridge's listener (appservice.port); defaults to the appservice URL. */
        public_url: z.string().url().optional(),
        /** Links stop working after this long; 0 keeps them working. */
        ttl_seconds: z.number().int().min(0).default(WEEK_SECONDS),
        /** Files larger than this are not linked (and not served): bytes, or '50M'. */
        max_size: z.union([z.number().int().min(1), z.string().regex(/^\d+[KMG]?$/, "bytes, or a size such as '50M'")]).transform(parseSize).default(MAX_MEDIA_BYTES),
      })
      .strict()
      .default({ enabled: true, ttl_seconds: WEEK_SECONDS, max_size: MAX_MEDIA_BYTES }),
    /** Where IRC users reach the media proxy (the same as media_proxy.public_url, which it overrides). */
    media_url: z.string().url().optional(),
    log_level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  })
  .strict();

export type BridgeConfig = z.infer<typeof bridgeConfigSchema>;
export type NetworkConfig = z.infer<typeof network>;

/** What differs between the bridge's own connection and a Matrix user's: who it is. */
export interface IrcIdentity {
  nick: string;
  userName: string;
  realName: string;
  sasl?: { account: string; password: string };
}

export function parseBridgeConfig(raw: unknown, source = 'bridge configuration', baseDir = process.cwd()): BridgeConfig {
  const result = bridgeConfigSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(describeIssues(result.error, source));
  const config = result.data;
  // Relative paths are relative to the config file, so the bridge can be started from anywhere.
  config.appservice.registration = resolve(baseDir, config.appservice.registration);
  if (config.database.engine === 'sqlite') config.database.filename = resolve(baseDir, config.database.filename);
  for (const net of Object.values(config.networks)) if (net.tls_ca_file) net.tls_ca_file = resolve(baseDir, net.tls_ca_file);
  return config;
}

export function loadBridgeConfig(path: string): BridgeConfig {
  return parseBridgeConfig(readYamlFile(path, 'Bridge configuration'), path, dirname(resolve(path)));
}

/** The base URL of media links for IRC users: media_url, else media_proxy.public_url, else the appservice URL. */
export function mediaBaseUrl(config: BridgeConfig): string {
  return config.media_url ?? config.media_proxy.public_url ?? appserviceUrl(config);
}

/** Where the homeserver reaches the bridge. */
export function appserviceUrl(config: BridgeConfig): string {
  return config.appservice.url ?? `http://${config.appservice.bind_address}:${config.appservice.port}`;
}
