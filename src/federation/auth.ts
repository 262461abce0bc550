/**
 * Inbound request authentication (spec: Server-Server API, "Request Authentication"): the X-Matrix header
 * must name us as destination (when present), come from a server federation_domain_whitelist allows,
 * and carry the origin's signature over {method, uri, origin, destination, content}.
 */
import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
import { MAX_BODY_NESTING, jsonNestingExceeds } from '../util/jsonNesting.js';
import type { ServerRequester } from '../http/route.js';
import type { KeyStore } from './keyStore.js';
import { isValidServerName } from './serverName.js';
import { parseXMatrixHeader, verifyRequestSignature, type XMatrixAuth } from './xmatrix.js';

export interface InboundRequest {
  method: string;
  /** The request target exactly as received: path and query string. */
  uri: string;
  headers: Record<string, string | string[] | undefined>;
  rawBody: Buffer;
}

export interface FederationAuthDeps {
  serverName: string;
  keyStore: Pick<KeyStore, 'verifyKeyFor'>;
  isAllowed(serverName: string): boolean;
  clock: { now(): number };
  logger?: Logger;
}

const unauthorized = (msg: string) => new MatrixError('M_UNAUTHORIZED', msg, 401);
/** A header that cannot be parsed (or names no valid server, e.g. a non-numeric port) is a bad request, as on Synapse. */
const malformed = (msg: string) => new MatrixError('M_UNAUTHORIZED', msg, 400);
const utf8 = new TextDecoder('utf-8', { fatal: true });

export class FederationAuthenticator {
  constructor(private readonly deps: FederationAuthDeps) {}

  /** The verified origin of a request, or a 401 M_UNAUTHORIZED / 403 M_FORBIDDEN MatrixError (logged at info). */
  async authenticate(req: InboundRequest): Promise<ServerRequester> {
    try {
      return await this.verify(req);
    } catch (err) {
      // The path only (a query may carry anything), the origin as claimed (unverified) and the reason; never the signature.
      const header = req.headers.authorization;
      const origin = /origin="?([^",\s]{1,255})/i.exec(Array.isArray(header) ? (header[0] ?? '') : (header ?? ''))?.[1];
      this.deps.logger?.info(
        { claimedOrigin: origin, method: req.method, path: req.uri.split('?')[0], errcode: (err as MatrixError).errcode, reason: (err as Error).message },
        'inbound federation request refused at authentication',
      );
      throw err;
    }
  }

  private async verify(req: InboundRequest): Promise<ServerRequester> {
    const header = req.headers.authorization;
    const value = Array.isArray(header) ? header[0] : header;
    if (!value) throw unauthorized('Missing Authorization header');
    let auth: XMatrixAuth | undefined;
    try {
      auth = parseXMatrixHeader(value);
    } catch (err) {
      throw malformed(`Malformed X-Matrix Authorization header: ${(err as Error).message}`);
    }
    if (!auth) throw unauthorized('Authorization header is not of the X-Matrix scheme');
    if (!isValidServerName(auth.origin)) throw malformed('Invalid origin in Authorization header');
    if (auth.destination !== undefined && auth.destination !== this.deps.serverName) {
      throw unauthorized('Request is not addressed to this server');
    }
    if (!this.deps.isAllowed(auth.origin)) throw new MatrixError('M_FORBIDDEN', `Federation denied with ${auth.origin}`, 403);

    let content: unknown;
    if (req.rawBody.length > 0) {
      let text: string;
      try {
        text = utf8.decode(req.rawBody);
        content = JSON.parse(text);
      } catch {
        throw new MatrixError('M_NOT_JSON', 'Content not JSON.');
      }
      // Verifying the signature walks the body recursively (canonical JSON): bound its depth first.
      if (jsonNestingExceeds(text, MAX_BODY_NESTING)) throw new MatrixError('M_BAD_JSON', `Content nested deeper than ${MAX_BODY_NESTING} levels.`);
    }
    const publicKey = await this.deps.keyStore.verifyKeyFor(auth.origin, auth.key, this.deps.clock.now());
    if (publicKey === undefined) throw unauthorized(`Failed to find a valid key ${auth.key} for ${auth.origin}`);
    const ok = verifyRequestSignature(
      // The signed JSON names us as destination even when an older sender leaves it out of the header.
      { method: req.method, uri: req.uri, origin: auth.origin, destination: this.deps.serverName, content },
      auth,
      publicKey,
    );
    if (!ok) throw unauthorized(`Invalid signature from ${auth.origin}`);
    return { origin: auth.origin };
  }
}
