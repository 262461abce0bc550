import { isIP } from 'node:net';
import { z } from 'zod';
import { parseCidr } from '../net/outboundPolicy.js';

// Synapse's key names where the concept is the same, so admins feel at home.
const rateLimit = z.strictObject({
  per_second: z.number().positive(),
  burst_count: z.number().int().positive(),
});

const size = z.union([z.number().int().positive(), z.string().regex(/^\d+[KMG]?$/)]);
// Milliseconds as a number, or a number with a unit: '30s', '24h', '90d', '1y'.
const duration = z.union([z.number().int().nonnegative(), z.string().regex(/^\d+(ms|s|m|h|d|w|y)?$/)]);

// An IP range in CIDR notation, or a single address; checked here so a typo fails at start-up.
const ipRange = z.string().superRefine((value, ctx) => {
  try {
    parseCidr(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

// Synapse's resource names (docs: "listeners"); `health` is accepted and always served.
export const RESOURCE_NAMES = ['client', 'federation', 'media', 'keys', 'openid', 'metrics', 'health'] as const;
export type ResourceName = (typeof RESOURCE_NAMES)[number];

const listener = z
  .strictObject({
    port: z.number().int().min(0).max(65535),
    bind_addresses: z.array(z.string()).default(['127.0.0.1']),
    // `metrics`: its own port serving /_synapse/metrics (and /health) only, as Synapse's metrics listener.
    type: z.enum(['http', 'metrics']).default('http'),
    tls: z.boolean().default(false),
    tls_certificate_path: z.string().optional(),
    tls_private_key_path: z.string().optional(),
    x_forwarded: z.boolean().default(false),
    resources: z
      .array(
        z.strictObject({
          names: z.array(z.enum(RESOURCE_NAMES)).min(1),
          // Synapse's gzip switch; Skjól leaves compression to the reverse proxy, so only `false` is accepted.
          compress: z.literal(false, { error: 'compress: true is not supported (let the reverse proxy compress)' }).optional(),
        }),
      )
      .optional(),
  })
  .superRefine((l, ctx) => {
    if (l.type === 'metrics' && l.resources) {
      ctx.addIssue({ code: 'custom', path: ['resources'], message: 'a metrics listener serves only /_synapse/metrics and /health: remove resources' });
    }
    if (!l.tls && (l.tls_certificate_path || l.tls_private_key_path)) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: 'tls_certificate_path / tls_private_key_path are set but tls is false' });
    }
  })
  .transform((l) => ({
    ...l,
    resources: l.resources ?? (l.type === 'metrics' ? [{ names: ['metrics' as ResourceName] }] : [{ names: ['client', 'federation'] as ResourceName[] }]),
  }));

const sqliteDatabase = z.strictObject({
  name: z.literal('sqlite3'),
  args: z.strictObject({ database: z.string() }),
});

const postgresDatabase = z.strictObject({
  name: z.enum(['postgres', 'psycopg2']),
  args: z.strictObject({
    user: z.string().optional(),
    password: z.string().optional(),
    database: z.string().optional(),
    dbname: z.string().optional(),
    host: z.string().optional(),
    port: z.number().int().optional(),
    cp_min: z.number().int().optional(),
    cp_max: z.number().int().optional(),
    schema: z.string().optional(),
  }),
});

const lifetimesInOrder = (min: number | string | null | undefined, max: number | string | null | undefined) =>
  min === undefined || min === null || max === undefined || max === null || parseDuration(min) <= parseDuration(max);

// Synapse's `retention` section (docs: "Message retention policies"); checked as Synapse's config/retention.py.
const retention = z
  .strictObject({
    enabled: z.boolean().default(false),
    default_policy: z
      .strictObject({ min_lifetime: duration.nullable().optional(), max_lifetime: duration.nullable().optional() })
      .refine((p) => lifetimesInOrder(p.min_lifetime, p.max_lifetime), "The default retention policy's 'min_lifetime' can not be greater than its 'max_lifetime'")
      .optional(),
    allowed_lifetime_min: duration.nullable().optional(),
    allowed_lifetime_max: duration.nullable().optional(),
    purge_jobs: z
      .array(
        z
          .strictObject({
            interval: duration.refine((d) => parseDuration(d) > 0, 'must be more than 0'),
            shortest_max_lifetime: duration.nullable().optional(),
            longest_max_lifetime: duration.nullable().optional(),
          })
          .refine((j) => lifetimesInOrder(j.shortest_max_lifetime, j.longest_max_lifetime), "'shortest_max_lifetime' can not be greater than 'longest_max_lifetime'"),
      )
      .default([]),
  })
  .refine((r) => lifetimesInOrder(r.allowed_lifetime_min, r.allowed_lifetime_max), "'allowed_lifetime_min' can not be greater than 'allowed_lifetime_max'");

export const configSchema = z.strictObject({
  server_name: z
    .string()
    .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/, 'must be a valid Matrix server name'),
  public_baseurl: z.url().optional(),
  listeners: z.array(listener).min(1).prefault([{ port: 8008 }]),
  // Synapse's top-level certificate, used by `tls: true` listeners that do not name their own.
  tls_certificate_path: z.string().optional(),
  tls_private_key_path: z.string().optional(),
  // Synapse's key: collect metrics for a `type: metrics` listener (or a `metrics` resource) to serve.
  enable_metrics: z.boolean().default(false),
  // One info line per request (method, path without secrets, status, duration, requester); false: at debug.
  log_requests: z.boolean().default(true),
  database: z.discriminatedUnion('name', [sqliteDatabase, postgresDatabase]).default({ name: 'sqlite3', args: { database: './data/homeserver.db' } }),
  signing_key_path: z.string().default('./data/signing.key'),
  enable_registration: z.boolean().default(true),
  allow_guest_access: z.boolean().default(false),
  enable_registration_without_verification: z.boolean().optional(),
  registration_shared_secret: z.string().optional(),
  registration_requires_token: z.boolean().default(false),
  registration_tokens: z.array(z.string()).default([]),
  app_service_config_files: z.array(z.string()).default([]),
  media_store_path: z.string().default('./data/media_store'),
  max_upload_size: z.union([z.number().int().positive(), z.string().regex(/^\d+[KMG]?$/)]).default('50M'),
  max_request_body_size: z.number().int().positive().default(1024 * 1024),
  // How long a client may take to send a request (Node's headersTimeout, requestTimeout, keepAliveTimeout);
  // no Synapse equivalent. request_ms covers receiving the request only: long-poll answers are not cut.
  http_timeouts: z
    .strictObject({
      headers_ms: z.number().int().positive().default(30_000),
      request_ms: z.number().int().nonnegative().default(600_000),
      keep_alive_ms: z.number().int().positive().default(65_000),
    })
    .refine((t) => t.request_ms === 0 || t.headers_ms <= t.request_ms, 'headers_ms must not exceed request_ms')
    .default({ headers_ms: 30_000, request_ms: 600_000, keep_alive_ms: 65_000 }),
  // SIGTERM/SIGINT: in-flight requests get half of this to finish, then remaining connections are cut and
  // background work is stopped; the process exits by this deadline whatever is still running. No Synapse equivalent.
  shutdown_timeout: duration.refine((d) => parseDuration(d) > 0, 'must be more than 0').default('10s'),
  // Open connections per client address (an IPv6 /64) over all listeners without x_forwarded, and in total; 0 = no cap.
  max_connections_per_address: z.number().int().nonnegative().default(50),
  // Addresses the per-address cap does not apply to: by default loopback (a local reverse proxy, admin tools).
  max_connections_per_address_exempt: z
    .array(z.string().refine((r) => isIP(r.split('/')[0]!) !== 0 && /^[^/]+(\/\d{1,3})?$/.test(r), 'must be an IP address or CIDR range'))
    .default(['127.0.0.0/8', '::1/128']),
  max_connections: z.number().int().nonnegative().default(2000),
  // Content repository (src/media), Synapse's names and defaults.
  max_image_pixels: size.default('32M'),
  dynamic_thumbnails: z.boolean().default(false),
  thumbnail_sizes: z
    .array(z.strictObject({ width: z.number().int().positive(), height: z.number().int().positive(), method: z.enum(['crop', 'scale']) }))
    .min(1)
    .default([
      { width: 32, height: 32, method: 'crop' },
      { width: 96, height: 96, method: 'crop' },
      { width: 320, height: 240, method: 'scale' },
      { width: 640, height: 480, method: 'scale' },
      { width: 800, height: 600, method: 'scale' },
    ]),
  media_retention: z
    .strictObject({ local_media_lifetime: duration.nullable().optional(), remote_media_lifetime: duration.nullable().optional() })
    .default({}),
  retention: retention.default({ enabled: false, purge_jobs: [] }),
  max_pending_media_uploads: z.number().int().positive().default(5),
  // Synapse's key (MSC3916): media stored while on is served only on the authenticated client and federation
  // paths; the legacy unauthenticated /_matrix/media/{v3,r0} downloads answer 404 for it.
  enable_authenticated_media: z.boolean().default(true),
  unused_expiration_time: duration.default('24h'),
  // Synapse's key: devices' last-seen address, user agent and time are cleared once older than this;
  // null keeps them forever, 0 stores none at all.
  user_ips_max_age: duration.nullable().default('28d'),
  rc_message: rateLimit.default({ per_second: 10, burst_count: 50 }),
  rc_registration: rateLimit.default({ per_second: 0.17, burst_count: 3 }),
  // Synapse's defaults: address per client address, account per successful login to one account,
  // failed_attempts per wrong password for one account (whatever the address).
  rc_login: z
    .strictObject({
      address: rateLimit.default({ per_second: 0.003, burst_count: 5 }),
      account: rateLimit.default({ per_second: 0.003, burst_count: 5 }),
      failed_attempts: rateLimit.default({ per_second: 0.17, burst_count: 3 }),
    })
    .prefault({}),
  rc_enabled: z.boolean().default(true),
  default_room_version: z.string().default('10'),
  // Synapse's key; Skjól's default is `invite` (Synapse: off): private and trusted-private rooms (and so DMs)
  // start encrypted. `false` is what YAML 1.1 parsers make of an unquoted `off`.
  encryption_enabled_by_default_for_room_type: z.union([z.enum(['all', 'invite', 'off']), z.literal(false)]).default('invite'),
  access_token_lifetime_ms: z.number().int().positive().optional(),
  refresh_token_lifetime_ms: z.number().int().positive().optional(),
  password_config: z
    .strictObject({ enabled: z.boolean().default(true), minimum_length: z.number().int().min(0).default(0) })
    .default({ enabled: true, minimum_length: 0 }),
  allow_public_rooms_without_auth: z.boolean().default(false),
  log_level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  presence: z.strictObject({ enabled: z.boolean().default(true) }).default({ enabled: true }),
  // The pre-v1.17 mention rules (display name, user name, @room in the body) for events without m.mentions:
  // on by default as in Synapse, since clients and bridges that predate m.mentions still rely on them.
  push: z.strictObject({ legacy_mention_rules: z.boolean().default(true) }).default({ legacy_mention_rules: true }),
  // Erasure (deactivation with `erase`): the server also sends an m.room.redaction for each of the user's
  // messages and profile events in rooms they are still in, so clients and other servers drop the content.
  redact_events_on_erasure: z.boolean().default(true),
  /** MSC2228 self-destructing messages (Synapse's key; Synapse's default is false). */
  enable_ephemeral_messages: z.boolean().default(true),
  // Directory, VoIP and login-token settings (src/directory), Synapse's names and defaults.
  user_directory: z
    .strictObject({ enabled: z.boolean().default(true), search_all_users: z.boolean().default(false) })
    .default({ enabled: true, search_all_users: false }),
  turn_uris: z.array(z.string().regex(/^turns?:/, 'must be a turn: or turns: URI')).default([]),
  turn_shared_secret: z.string().optional(),
  turn_username: z.string().optional(),
  turn_password: z.string().optional(),
  turn_user_lifetime: duration.default('1h'),
  turn_allow_guests: z.boolean().default(true),
  login_via_existing_session: z
    .strictObject({ enabled: z.boolean().default(false), require_ui_auth: z.boolean().default(true), token_timeout: duration.default('5m') })
    .default({ enabled: false, require_ui_auth: true, token_timeout: '5m' }),
  // Federation (src/federation), Synapse's names. trusted_key_servers defaults to none (Synapse: matrix.org).
  federation_verify_certificates: z.boolean().default(true),
  federation_custom_ca_list: z.array(z.string()).optional(),
  federation_client_minimum_tls_version: z.union([z.enum(['1', '1.0', '1.1', '1.2', '1.3']), z.number()]).default('1.2'),
  federation_domain_whitelist: z.array(z.string()).nullable().optional(),
  // Outbound connections (federation, key fetches, push gateways) never reach these ranges (default: Synapse's list).
  ip_range_blacklist: z.array(ipRange).optional(),
  // Exceptions to ip_range_blacklist (0.0.0.0 and :: stay blocked).
  ip_range_whitelist: z.array(ipRange).default([]),
  // Identity servers (src/identity): Synapse's key; true skips TLS certificate checks on requests to them (tests only).
  use_insecure_ssl_client_just_for_testing_do_not_use: z.boolean().default(false),
  key_refresh_interval: duration.default('1d'),
  old_signing_keys: z
    .record(z.string().regex(/^ed25519:[A-Za-z0-9_]+$/, 'must be an ed25519 key ID'), z.strictObject({ key: z.string(), expired_ts: z.number().int() }))
    .default({}),
  trusted_key_servers: z
    .array(
      z.strictObject({
        server_name: z.string(),
        verify_keys: z.record(z.string(), z.string()).optional(),
        accept_keys_insecurely: z.boolean().optional(),
      }),
    )
    .default([]),
})
  .superRefine((c, ctx) => {
    c.listeners.forEach((l, i) => {
      const cert = l.tls_certificate_path ?? c.tls_certificate_path;
      const key = l.tls_private_key_path ?? c.tls_private_key_path;
      if (l.tls && (!cert || !key)) {
        ctx.addIssue({ code: 'custom', path: ['listeners', i, 'tls'], message: 'tls: true needs tls_certificate_path and tls_private_key_path (on the listener or at the top level)' });
      }
      // (resources may be unset here when the listener itself failed to parse)
      const servesMetrics = l.type === 'metrics' || (l.resources ?? []).some((r) => r.names.includes('metrics'));
      if (servesMetrics && !c.enable_metrics) {
        ctx.addIssue({ code: 'custom', path: ['listeners', i], message: 'serves metrics but enable_metrics is not true' });
      }
    });
    if ((c.tls_certificate_path || c.tls_private_key_path) && !c.listeners.some((l) => l.tls)) {
      ctx.addIssue({ code: 'custom', path: ['tls_certificate_path'], message: 'is set but no listener has tls: true' });
    }
    // As Synapse: without certificate checks, a notary without verify_keys could be anyone.
    c.trusted_key_servers.forEach((server, i) => {
      if (!c.federation_verify_certificates && !server.verify_keys && !server.accept_keys_insecurely) {
        ctx.addIssue({
          code: 'custom',
          path: ['trusted_key_servers', i],
          message: 'has no verify_keys and federation_verify_certificates is false: add verify_keys, or accept_keys_insecurely: true if you are sure',
        });
      }
    });
  })
  // Each TLS listener carries its certificate paths, its own or the top-level ones.
  .transform((c) => ({
    ...c,
    listeners: c.listeners.map((l) =>
      l.tls ? { ...l, tls_certificate_path: l.tls_certificate_path ?? c.tls_certificate_path, tls_private_key_path: l.tls_private_key_path ?? c.tls_private_key_path } : l,
    ),
  }));

export type RawConfig = z.input<typeof configSchema>;
export type HomeserverConfig = z.output<typeof configSchema>;

export function parseSize(value: number | string): number {
  if (typeof value === 'number') return value;
  const unit = value.slice(-1);
  const n = Number.parseInt(value, 10);
  const mult = unit === 'K' ? 1024 : unit === 'M' ? 1024 ** 2 : unit === 'G' ? 1024 ** 3 : 1;
  return n * mult;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, y: 31_536_000_000 };

/** A config duration in milliseconds ('24h', '90d', or a plain number of milliseconds). */
export function parseDuration(value: number | string): number {
  if (typeof value === 'number') return value;
  const match = /^(\d+)(ms|s|m|h|d|w|y)?$/.exec(value);
  if (!match) throw new Error(`invalid duration: ${value}`);
  return Number(match[1]) * DURATION_UNITS[match[2] ?? 'ms']!;
}
