// A small identity server (Identity Service API v2) over real HTTPS on loopback, for the third-party invite
// and binding tests: a remote network peer the homeserver talks to, as Sydent or SyTest's fake would be.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSigningKey, signJson, type SigningKey } from '../../src/crypto/signing.js';
import { createTestCa, issueCert } from '../federation/tls.js';

export const ID_ACCESS_TOKEN = 'swordfish';

interface StoredInvite {
  medium: string;
  address: string;
  room_id: string;
  sender: string;
  token: string;
}

export interface SeenRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  body: any;
}

export class TestIdentityServer {
  /** host:port, what clients pass as `id_server`. */
  name = '';
  key: SigningKey = generateSigningKey('0');
  ephemeral: SigningKey = generateSigningKey('0');
  readonly bindings = new Map<string, string>();
  readonly invites: StoredInvite[] = [];
  readonly seen: SeenRequest[] = [];
  readonly pepper = 'matrixrocks';
  private readonly sessions = new Map<string, { medium: string; address: string }>();
  private server: Server | undefined;
  private dir = '';
  private nextToken = 0;

  async start(): Promise<this> {
    this.dir = mkdtempSync(join(tmpdir(), 'skjol-is-'));
    const cert = issueCert(this.dir, 'is', createTestCa(this.dir));
    this.server = createServer({ cert: readFileSync(cert.certificatePath), key: readFileSync(cert.privateKeyPath) }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'https://x');
        let body: any;
        try {
          body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
        } catch {
          body = undefined;
        }
        this.seen.push({ method: req.method ?? '', path: url.pathname, authorization: req.headers.authorization, body });
        const [status, answer] = this.handle(req.method ?? '', url, req.headers.authorization, body);
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.name = `127.0.0.1:${(this.server.address() as { port: number }).port}`;
    return this;
  }

  async close(): Promise<void> {
    if (this.server) {
      this.server.closeAllConnections();
      await new Promise<void>((r) => this.server!.close(() => r()));
      this.server = undefined;
    }
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  /** A validation session (as if the user had clicked the email link), for /account/3pid/bind. */
  validate(medium: string, address: string): string {
    const sid = `session_${this.sessions.size}`;
    this.sessions.set(sid, { medium, address });
    return sid;
  }

  /** New keys: invites stored before now carry keys the server no longer vouches for. */
  rotateKeys(): void {
    this.key = generateSigningKey('0');
    this.ephemeral = generateSigningKey('0');
  }

  /** The signed block of a stored invite for `mxid` (what onbind carries). */
  signedFor(invite: StoredInvite, mxid: string, key = this.key): Record<string, unknown> {
    return signJson({ mxid, token: invite.token }, this.name, key);
  }

  /**
   * Binds the 3PID and tells the homeserver at `hsUrl` (POST /3pid/onbind) about the invites waiting for it.
   * `beforeNotify` runs between signing and notifying (e.g. to revoke the keys).
   */
  async bindAndNotify(hsUrl: string, medium: string, address: string, mxid: string, beforeNotify?: () => void): Promise<{ status: number; body: any }> {
    this.bindings.set(`${medium}\0${address}`, mxid);
    const invites = this.invites
      .filter((i) => i.medium === medium && i.address === address)
      .map((i) => ({ ...i, mxid, signed: this.signedFor(i, mxid) }));
    const body = signJson({ medium, address, mxid, invites }, this.name, this.key);
    beforeNotify?.();
    const res = await fetch(`${hsUrl}/_matrix/federation/v1/3pid/onbind`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: await res.json().catch(() => undefined) };
  }

  private handle(method: string, url: URL, authorization: string | undefined, body: any): [number, unknown] {
    const path = url.pathname;
    const authed = authorization === `Bearer ${ID_ACCESS_TOKEN}`;
    const unauthorised: [number, unknown] = [401, { errcode: 'M_UNAUTHORIZED', error: 'Missing access token' }];
    if (path === '/_matrix/identity/v2/pubkey/isvalid') {
      const pk = url.searchParams.get('public_key');
      return [200, { valid: pk === this.key.publicKey || pk === this.ephemeral.publicKey }];
    }
    if (path === '/_matrix/identity/v2/hash_details') return authed ? [200, { algorithms: ['none', 'sha256'], lookup_pepper: this.pepper }] : unauthorised;
    if (path === '/_matrix/identity/v2/lookup' && method === 'POST') {
      if (!authed) return unauthorised;
      if (body?.algorithm !== 'sha256' || body.pepper !== this.pepper) return [400, { errcode: 'M_INVALID_PEPPER', error: 'Wrong pepper' }];
      const mappings: Record<string, string> = {};
      for (const [k, mxid] of this.bindings) {
        const [medium, address] = k.split('\0');
        const hash = createHash('sha256').update(`${address} ${medium} ${this.pepper}`).digest('base64url');
        if ((body.addresses as string[]).includes(hash)) mappings[hash] = mxid;
      }
      return [200, { mappings }];
    }
    if (path === '/_matrix/identity/v2/store-invite' && method === 'POST') {
      if (!authed) return unauthorised;
      const token = `tok${this.nextToken++}`;
      this.invites.push({ medium: body.medium, address: body.address, room_id: body.room_id, sender: body.sender, token });
      const keyValidityUrl = `https://${this.name}/_matrix/identity/v2/pubkey/isvalid`;
      return [200, {
        token,
        display_name: 'Bob',
        public_key: this.key.publicKey,
        public_keys: [
          { public_key: this.key.publicKey, key_validity_url: keyValidityUrl },
          { public_key: this.ephemeral.publicKey, key_validity_url: keyValidityUrl },
        ],
      }];
    }
    if (path === '/_matrix/identity/v2/3pid/bind' && method === 'POST') {
      if (!authed) return unauthorised;
      const session = this.sessions.get(body?.sid);
      if (!session) return [400, { errcode: 'M_NO_VALID_SESSION', error: 'No valid session' }];
      this.bindings.set(`${session.medium}\0${session.address}`, body.mxid);
      return [200, signJson({ ...session, mxid: body.mxid, not_before: 0, not_after: 4582425849161, ts: 0 }, this.name, this.key)];
    }
    if (path === '/_matrix/identity/v2/3pid/unbind' && method === 'POST') {
      const k = `${body?.threepid?.medium}\0${body?.threepid?.address}`;
      if (this.bindings.get(k) !== body?.mxid) return [404, { errcode: 'M_NOT_FOUND', error: 'No such binding' }];
      this.bindings.delete(k);
      return [200, {}];
    }
    return [404, { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' }];
  }
}
