/**
 * Requests to identity servers (spec: Identity Service API v2) made for clients: hashed lookups, storing
 * invites, binding and unbinding, key validity. The identity server is named by the client, so every
 * connection goes through the outbound address policy (ip_range_blacklist); its answers are parsed with zod
 * and its failures become clean 4xx/502 errors, never a 500.
 */
import { createHash } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { SigningKey } from '../crypto/signing.js';
import { MatrixError, type ErrCode } from '../errors.js';
import { signRequest } from '../federation/xmatrix.js';
import { sendOutbound, type OutboundAgents } from '../net/outboundHttp.js';
import type { OutboundPolicy } from '../net/outboundPolicy.js';

/** host[:port] as Synapse's valid_id_server_location allows (no scheme, no path: we always use https). */
export const idServerName = z
  .string()
  .max(255)
  .regex(/^(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})*)(:\d{1,5})?$/, 'must be a host name with an optional port');

const REQUEST_TIMEOUT_MS = 15_000;
const MAX_RESPONSE_BYTES = 64 * 1024;
const REMOTE_ERRCODE = /^[A-Z0-9_.]{1,64}$/;
// Errcodes that would make a client drop its session: never relayed from a third party.
const SESSION_ERRCODES = new Set(['M_UNKNOWN_TOKEN', 'M_MISSING_TOKEN', 'M_USER_DEACTIVATED', 'M_USER_LOCKED', 'M_USER_SUSPENDED']);

const hashDetails = z.looseObject({ algorithms: z.array(z.string().max(64)).max(32), lookup_pepper: z.string().min(1).max(1024) });
const lookupAnswer = z.looseObject({ mappings: z.record(z.string(), z.unknown()).optional() });
const publicKeyObject = z.looseObject({ public_key: z.string().min(1).max(256), key_validity_url: z.string().max(2048) });
const storeInviteAnswer = z.looseObject({
  token: z.string().min(1).max(255),
  public_key: z.string().min(1).max(256).optional(),
  public_keys: z.array(publicKeyObject).max(16).optional(),
  display_name: z.string().max(1024),
});
const bindAnswer = z.looseObject({ medium: z.string().min(1).max(64), address: z.string().min(1).max(512) });
const validityAnswer = z.looseObject({ valid: z.boolean() });

export interface PublicKeyObject {
  public_key: string;
  key_validity_url: string;
}

export interface StoredInvite {
  token: string;
  publicKeys: PublicKeyObject[];
  fallback: PublicKeyObject;
  displayName: string;
}

export interface IdentityClientDeps {
  serverName: string;
  signingKey: SigningKey;
  outbound: OutboundPolicy;
  /** use_insecure_ssl_client_just_for_testing_do_not_use */
  insecureTls: boolean;
  logger: Logger;
}

/** A request that got no usable answer: network failure, refused address, timeout, unparsable body. */
class Unreachable extends Error {}

/** An HTTP answer outside 2xx, with the identity server's (sanitised) errcode. */
class Refused extends Error {
  constructor(readonly status: number, readonly errcode: string | undefined, readonly text: string | undefined) {
    super(`HTTP ${status}`);
  }
}

export class IdentityClient {
  private readonly agents: OutboundAgents;

  constructor(private readonly deps: IdentityClientDeps) {
    const http: HttpAgent = deps.outbound.httpAgent({ keepAlive: false });
    const https: HttpsAgent = deps.outbound.httpsAgent({ keepAlive: false, rejectUnauthorized: !deps.insecureTls });
    this.agents = { http, https, destroy: () => (http.destroy(), https.destroy()) };
  }

  close(): void {
    this.agents.destroy();
  }

  /** Spec: "POST /_matrix/identity/v2/lookup" (sha256 when offered, else none); undefined when not bound. */
  async lookup(idServer: string, accessToken: string, medium: string, address: string): Promise<string | undefined> {
    const auth = { authorization: `Bearer ${accessToken}` };
    const details = hashDetails.safeParse(await this.call('GET', `https://${idServer}/_matrix/identity/v2/hash_details`, auth));
    if (!details.success) throw malformed(idServer, 'hash_details');
    const { algorithms, lookup_pepper: pepper } = details.data;
    let algorithm: string;
    let value: string;
    if (algorithms.includes('sha256')) {
      algorithm = 'sha256';
      value = createHash('sha256').update(`${address} ${medium} ${pepper}`, 'utf8').digest('base64url');
    } else if (algorithms.includes('none')) {
      algorithm = 'none';
      value = `${address} ${medium}`;
    } else {
      throw new MatrixError('M_UNKNOWN', 'The identity server offers no lookup algorithm this server supports', 400);
    }
    const res = lookupAnswer.safeParse(await this.call('POST', `https://${idServer}/_matrix/identity/v2/lookup`, auth, { addresses: [value], algorithm, pepper }));
    if (!res.success) throw malformed(idServer, 'lookup');
    const mappings = res.data.mappings;
    const mxid = mappings && Object.hasOwn(mappings, value) ? mappings[value] : undefined;
    return typeof mxid === 'string' && /^@[^:]+:.+$/.test(mxid) && mxid.length <= 255 ? mxid : undefined;
  }

  /** Spec: "POST /_matrix/identity/v2/store-invite". */
  async storeInvite(idServer: string, accessToken: string, body: Record<string, unknown>): Promise<StoredInvite> {
    const res = storeInviteAnswer.safeParse(
      await this.call('POST', `https://${idServer}/_matrix/identity/v2/store-invite`, { authorization: `Bearer ${accessToken}` }, body),
    );
    if (!res.success) throw malformed(idServer, 'store-invite');
    const publicKeys = [...(res.data.public_keys ?? [])];
    const keyValidityUrl = `https://${idServer}/_matrix/identity/v2/pubkey/isvalid`;
    // As Synapse: the top-level key (with the server's isvalid URL) is the fallback, else the first listed.
    const fallback = res.data.public_key !== undefined ? { public_key: res.data.public_key, key_validity_url: keyValidityUrl } : publicKeys[0];
    if (!fallback) throw malformed(idServer, 'store-invite');
    if (!publicKeys.length) publicKeys.push(fallback);
    return { token: res.data.token, publicKeys, fallback, displayName: res.data.display_name };
  }

  /** Spec: "POST /_matrix/identity/v2/3pid/bind"; answers the bound medium and address. */
  async bind(idServer: string, accessToken: string, body: { sid: string; client_secret: string; mxid: string }): Promise<{ medium: string; address: string }> {
    const res = bindAnswer.safeParse(await this.call('POST', `https://${idServer}/_matrix/identity/v2/3pid/bind`, { authorization: `Bearer ${accessToken}` }, body));
    if (!res.success) throw malformed(idServer, 'bind');
    return { medium: res.data.medium, address: res.data.address };
  }

  /**
   * Spec: "POST /_matrix/identity/v2/3pid/unbind", signed as this homeserver (X-Matrix). False when the
   * identity server does not support unbinding or does not hold the binding (400, 404, 501), as Synapse.
   */
  async unbind(idServer: string, mxid: string, medium: string, address: string): Promise<boolean> {
    const path = '/_matrix/identity/v2/3pid/unbind';
    const content = { mxid, threepid: { medium, address } };
    const authorization = signRequest({ method: 'POST', uri: path, origin: this.deps.serverName, destination: idServer, content }, this.deps.signingKey);
    try {
      await this.call('POST', `https://${idServer}${path}`, { authorization }, content);
      return true;
    } catch (err) {
      if (err instanceof MatrixError && [400, 404, 501].includes(err.status)) return false;
      throw err;
    }
  }

  /** Spec: "GET /_matrix/identity/v2/pubkey/isvalid" at the URL the invite named. */
  async isKeyValid(url: string, publicKey: string): Promise<boolean> {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return false;
    }
    if (target.protocol !== 'https:' && target.protocol !== 'http:') return false;
    target.searchParams.set('public_key', publicKey);
    const res = validityAnswer.safeParse(await this.call('GET', target.toString(), {}));
    return res.success && res.data.valid;
  }

  /** One JSON request; failures become MatrixErrors a client may see (4xx passed on, else 502). */
  private async call(method: 'GET' | 'POST', url: string, headers: Record<string, string>, body?: unknown): Promise<unknown> {
    try {
      return await this.request(method, url, headers, body);
    } catch (err) {
      const host = hostOf(url);
      if (err instanceof Refused) {
        this.deps.logger.info({ idServer: host, status: err.status, errcode: err.errcode }, 'identity server refused a request');
        if (err.status >= 400 && err.status < 500 && err.status !== 401) {
          return Promise.reject(new MatrixError((err.errcode ?? 'M_UNKNOWN') as ErrCode, err.text || `The identity server refused the request (HTTP ${err.status})`, err.status));
        }
      } else {
        this.deps.logger.info({ idServer: host, reason: (err as Error).message }, 'identity server unreachable');
      }
      throw new MatrixError('M_UNKNOWN', `Could not talk to the identity server ${host}`, 502);
    }
  }

  private async request(method: 'GET' | 'POST', url: string, headers: Record<string, string>, body?: unknown): Promise<unknown> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    try {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
      const res = await sendOutbound(this.agents, url, {
        method,
        headers: { accept: 'application/json', ...(payload ? { 'content-type': 'application/json' } : {}), ...headers },
        ...(payload ? { body: payload } : {}),
        signal: controller.signal,
        maxBytes: MAX_RESPONSE_BYTES,
      });
      let parsed: unknown;
      try {
        parsed = JSON.parse(res.body.toString('utf8'));
      } catch {
        parsed = undefined;
      }
      if (res.status < 200 || res.status >= 300) {
        const e = parsed && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
        const code = typeof e.errcode === 'string' && REMOTE_ERRCODE.test(e.errcode) && !SESSION_ERRCODES.has(e.errcode) ? e.errcode : undefined;
        const text = typeof e.error === 'string' ? e.error.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 300) : undefined;
        throw new Refused(res.status, code, text);
      }
      if (parsed === undefined || parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Unreachable('answer is not a JSON object');
      return parsed;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The identity server answered 2xx with something that is not the spec's answer. */
function malformed(idServer: string, endpoint: string): MatrixError {
  return new MatrixError('M_UNKNOWN', `The identity server ${idServer} gave a malformed ${endpoint} answer`, 502);
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'unknown';
  }
}
