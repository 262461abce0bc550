import { canonicalJson } from '../crypto/canonicalJson.js';
import { verifyJsonSignature } from '../crypto/signing.js';
import { MatrixError } from '../errors.js';
import type { Requester } from '../http/route.js';
import type { ServiceDeps } from '../serviceDeps.js';
import * as repo from '../storage/repositories/e2ee.js';
import type { UserService } from '../users/userService.js';
import type { DeviceListService } from './deviceLists.js';
import { publicKeyOf } from './deviceKeysService.js';
import { dict } from '../util/dict.js';

type KeyObject = Record<string, unknown>;

export interface DeviceSigningUpload {
  master_key?: KeyObject | undefined;
  self_signing_key?: KeyObject | undefined;
  user_signing_key?: KeyObject | undefined;
  auth?: unknown;
}

function checkCrossSigningKey(key: KeyObject, userId: string, usage: string): string {
  if (key.user_id !== userId) throw new MatrixError('M_INVALID_PARAM', `${usage} key must belong to ${userId}`);
  if (!Array.isArray(key.usage) || !key.usage.includes(usage)) throw new MatrixError('M_INVALID_PARAM', `${usage} key must have usage ${usage}`);
  const keys = key.keys as Record<string, unknown> | undefined;
  const entries = keys ? Object.entries(keys) : [];
  if (entries.length !== 1 || typeof entries[0]![1] !== 'string' || !entries[0]![0].startsWith('ed25519:')) {
    throw new MatrixError('M_INVALID_PARAM', `${usage} key must have exactly one ed25519 key`);
  }
  return entries[0]![1] as string;
}

function signedBy(key: KeyObject, userId: string, signerPublicKey: string): boolean {
  return verifyJsonSignature(key, userId, `ed25519:${signerPublicKey}`, signerPublicKey);
}

/** Spec: Client-Server API, "Cross-signing" — key upload and signature upload, with validation. */
export class CrossSigningService {
  constructor(
    private readonly deps: ServiceDeps,
    private readonly users: UserService,
    private readonly deviceLists: DeviceListService,
  ) {}

  async uploadDeviceSigningKeys(requester: Requester, body: DeviceSigningUpload): Promise<void> {
    const { userId } = requester;
    const db = this.deps.db.knex;
    const existing = await repo.getCrossSigningKeys(db, userId);
    const replacing = (['master', 'self_signing', 'user_signing'] as const).some((type) => {
      const fresh = body[`${type}_key`];
      return fresh !== undefined && existing[type] !== undefined && canonicalJson(existing[type]) !== canonicalJson(fresh);
    });
    // First upload needs no re-authentication (spec v1.11, MSC3967); replacing keys does.
    const passed = replacing ? await this.users.requireReauth(requester, body.auth, 'POST /keys/device_signing/upload') : undefined;

    const master = body.master_key ?? existing.master;
    if (body.master_key) checkCrossSigningKey(body.master_key, userId, 'master');
    if (!master) throw new MatrixError('M_MISSING_PARAM', 'A master key is required');
    const masterPublic = publicKeyOf(master);
    for (const usage of ['self_signing', 'user_signing'] as const) {
      const key = body[`${usage}_key`];
      if (!key) continue;
      checkCrossSigningKey(key, userId, usage);
      if (!signedBy(key, userId, masterPublic)) throw new MatrixError('M_INVALID_SIGNATURE', `${usage} key is not signed by the master key`);
    }
    // Master and self-signing keys are public: everyone sharing a room re-fetches. The user-signing key is
    // only ever shown to its owner, so only the owner's devices are told (as Synapse).
    const publicChange = body.master_key !== undefined || body.self_signing_key !== undefined;
    await this.deps.db.write(async (trx) => {
      if (body.master_key) await repo.setCrossSigningKey(trx, userId, 'master', body.master_key);
      if (body.self_signing_key) await repo.setCrossSigningKey(trx, userId, 'self_signing', body.self_signing_key);
      if (body.user_signing_key) await repo.setCrossSigningKey(trx, userId, 'user_signing', body.user_signing_key);
      if (publicChange) await this.deviceLists.recordChange(trx, userId);
      else if (body.user_signing_key) await this.deviceLists.recordChangeFor(trx, userId, userId);
    });
    await this.users.finishReauth(passed);
    if (publicChange) await this.deviceLists.notifyChange(userId);
    else if (body.user_signing_key) this.deviceLists.notifyViewer(userId);
  }

  /** POST /keys/signatures/upload: stores only signatures that verify; the rest are reported in failures. */
  async uploadSignatures(requester: Requester, body: Record<string, Record<string, KeyObject>>): Promise<{ failures: Record<string, Record<string, unknown>> }> {
    const signer = requester.userId;
    const db = this.deps.db.knex;
    const failures = dict<Record<string, unknown>>();
    const fail = (user: string, keyId: string, errcode: string, error: string) => {
      failures[user] ??= dict();
      failures[user]![keyId] = { errcode, error };
    };
    const own = await repo.getCrossSigningKeys(db, signer);
    const accepted: repo.StoredSignature[] = [];
    const changedUsers = new Set<string>();

    for (const [targetUser, keys] of Object.entries(body)) {
      for (const [targetKeyId, signedObject] of Object.entries(keys)) {
        const sigs = (signedObject.signatures as Record<string, Record<string, string>> | undefined)?.[signer] ?? {};
        const target = await this.resolveTarget(targetUser, targetKeyId);
        if (!target) {
          fail(targetUser, targetKeyId, 'M_NOT_FOUND', 'Unknown key');
          continue;
        }
        // The signed object must be the key we hold (apart from signatures and unsigned).
        const strip = (o: KeyObject) => {
          const { signatures: _s, unsigned: _u, ...rest } = o;
          return canonicalJson(rest);
        };
        if (strip(target.key) !== strip(signedObject)) {
          fail(targetUser, targetKeyId, 'M_INVALID_SIGNATURE', 'Signed object does not match the stored key');
          continue;
        }
        let stored = 0;
        for (const [signerKeyId, signature] of Object.entries(sigs)) {
          if (target.key.signatures && (target.key.signatures as Record<string, Record<string, string>>)[signer]?.[signerKeyId] === signature) continue;
          const signerPublic = await this.signerPublicKey(signer, signerKeyId, targetUser, target.kind, own);
          if (!signerPublic) {
            fail(targetUser, targetKeyId, 'M_INVALID_SIGNATURE', `Signing key ${signerKeyId} may not sign this key`);
            continue;
          }
          if (!verifyJsonSignature({ ...signedObject, signatures: { [signer]: { [signerKeyId]: signature } } }, signer, signerKeyId, signerPublic)) {
            fail(targetUser, targetKeyId, 'M_INVALID_SIGNATURE', 'Invalid signature');
            continue;
          }
          accepted.push({ targetUserId: targetUser, targetKeyId, signerUserId: signer, signerKeyId, signature });
          stored++;
        }
        if (stored) changedUsers.add(targetUser);
      }
    }
    if (accepted.length) {
      // Signatures on one's own keys change them for everyone; a signature on someone else's master key
      // (user-signing key) only changes what the signer's own devices see.
      await this.deps.db.write(async (trx) => {
        for (const s of accepted) await repo.addSignature(trx, s);
        for (const u of changedUsers) {
          if (u === signer) await this.deviceLists.recordChange(trx, u);
          else await this.deviceLists.recordChangeFor(trx, signer, u);
        }
      });
      if (changedUsers.has(signer)) await this.deviceLists.notifyChange(signer);
      if ([...changedUsers].some((u) => u !== signer)) this.deviceLists.notifyViewer(signer);
    }
    return { failures };
  }

  private async resolveTarget(userId: string, keyId: string): Promise<{ key: KeyObject; kind: 'device' | 'master' | 'other' } | undefined> {
    const db = this.deps.db.knex;
    const device = (await repo.getDeviceKeys(db, userId, [keyId])).get(keyId);
    if (device) return { key: device, kind: 'device' };
    const cross = await repo.getCrossSigningKeys(db, userId);
    for (const [type, key] of Object.entries(cross)) {
      if (key && publicKeyOf(key) === keyId) return { key, kind: type === 'master' ? 'master' : 'other' };
    }
    return undefined;
  }

  /**
   * Which key may make a signature: own devices are signed by the self-signing key, own master key by own
   * devices, other users' master keys by the user-signing key.
   */
  private async signerPublicKey(
    signer: string,
    signerKeyId: string,
    targetUser: string,
    targetKind: 'device' | 'master' | 'other',
    own: Partial<Record<repo.CrossSigningKeyType, KeyObject>>,
  ): Promise<string | undefined> {
    const keyPart = signerKeyId.startsWith('ed25519:') ? signerKeyId.slice(8) : undefined;
    if (!keyPart) return undefined;
    if (targetUser === signer) {
      if (targetKind === 'device' && own.self_signing && publicKeyOf(own.self_signing) === keyPart) return keyPart;
      if (targetKind === 'master') {
        const device = (await repo.getDeviceKeys(this.deps.db.knex, signer, [keyPart])).get(keyPart);
        const ed = (device?.keys as Record<string, string> | undefined)?.[`ed25519:${keyPart}`];
        if (ed) return ed;
        if (own.master && publicKeyOf(own.master) === keyPart) return keyPart;
      }
      return undefined;
    }
    if (targetKind === 'master' && own.user_signing && publicKeyOf(own.user_signing) === keyPart) return keyPart;
    return undefined;
  }
}
