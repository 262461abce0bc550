import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parse as parseYaml, stringify } from 'yaml';
import { ConfigError } from '../../config/load.js';
import { appserviceUrl, type BridgeConfig } from './config.js';

export interface RegistrationTokens {
  asToken: string;
  hsToken: string;
  senderLocalpart: string;
}

const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The registration document the homeserver loads (Application Service API: Registration). */
export function buildRegistration(config: BridgeConfig): Record<string, unknown> {
  const domain = escapeRegex(config.homeserver.domain);
  return {
    id: config.appservice.id,
    url: appserviceUrl(config),
    as_token: randomBytes(32).toString('base64url'),
    hs_token: randomBytes(32).toString('base64url'),
    sender_localpart: config.appservice.bot_localpart,
    namespaces: {
      users: [{ exclusive: true, regex: `@${escapeRegex(config.appservice.user_prefix)}.*:${domain}` }],
      aliases: [{ exclusive: true, regex: `#${escapeRegex(config.appservice.alias_prefix)}.*:${domain}` }],
      rooms: [],
    },
    rate_limited: false,
    protocols: ['irc'],
    // Ephemeral events and to-device messages in transactions (MSC2409), device lists and one-time key
    // counts plus device masquerading (MSC3202), AS-created devices (MSC4190): what the bridge's E2EE needs.
    receive_ephemeral: true,
    'de.sorunome.msc2409.push_ephemeral': true,
    'org.matrix.msc3202': true,
    'io.element.msc4190': true,
  };
}

export function writeRegistration(config: BridgeConfig, path = config.appservice.registration): Record<string, unknown> {
  const registration = buildRegistration(config);
  writeFileSync(path, stringify(registration), { mode: 0o600 });
  return registration;
}

export function readRegistration(path: string): RegistrationTokens {
  if (!existsSync(path)) throw new ConfigError(`No registration file at ${path}: run \`skjol bridge irc --config <file> --generate-registration\` first`);
  const raw = parseYaml(readFileSync(path, 'utf8')) as Record<string, unknown> | null;
  const asToken = raw?.as_token;
  const hsToken = raw?.hs_token;
  const sender = raw?.sender_localpart;
  if (typeof asToken !== 'string' || typeof hsToken !== 'string' || typeof sender !== 'string') {
    throw new ConfigError(`Registration file ${path} lacks as_token, hs_token or sender_localpart`);
  }
  return { asToken, hsToken, senderLocalpart: sender };
}

/** The key that signs media proxy links: a key file next to the registration (created once). */
export function mediaProxyKey(config: BridgeConfig): string {
  const path = `${config.appservice.registration}.media-key`;
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const key = randomBytes(32).toString('base64url');
  writeFileSync(path, `${key}\n`, { mode: 0o600 });
  return key;
}

/** The crypto store passphrase: from the config, else a key file next to the registration (created once). */
export function cryptoPassphrase(config: BridgeConfig): string {
  if (config.encryption.passphrase) return config.encryption.passphrase;
  const path = `${config.appservice.registration}.key`;
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const key = randomBytes(32).toString('base64url');
  writeFileSync(path, `${key}\n`, { mode: 0o600 });
  return key;
}
