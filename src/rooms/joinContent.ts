import { dict } from '../util/dict.js';

/**
 * Keys a join body may not set in the member event: the server decides them (membership, profile) or they
 * carry authority the client does not have (a restricted-join authoriser, a third-party invite's signature).
 */
const RESERVED = new Set(['membership', 'reason', 'displayname', 'avatar_url', 'join_authorised_via_users_server', 'third_party_invite', 'third_party_signed']);

/** The extra keys of a /join body that go into the member event, as Synapse copies them, minus the reserved ones. */
export function clientJoinExtras(body: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out = dict<unknown>();
  for (const [key, value] of Object.entries(body)) if (!RESERVED.has(key)) out[key] = value;
  return out;
}
