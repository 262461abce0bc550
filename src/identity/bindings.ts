/**
 * Binding a user's third-party identifiers on identity servers through this homeserver (spec: Client-Server
 * API, "POST /account/3pid/bind", "/account/3pid/unbind", "/account/3pid/delete", deactivation's
 * id_server_unbind_result). Which identity server holds each binding is remembered so unbinding without an
 * `id_server` knows where to go, as Synapse.
 */
import type { Logger } from 'pino';
import type { Database } from '../storage/database.js';
import { addBinding, bindingsOf, idServersFor, removeBinding } from '../storage/repositories/threepidBindings.js';
import type { IdentityClient } from './identityClient.js';

export type UnbindResult = 'success' | 'no-support';

export interface ThreepidBindingDeps {
  db: Database;
  identity: IdentityClient;
  logger: Logger;
}

export class ThreepidBindings {
  constructor(private readonly deps: ThreepidBindingDeps) {}

  async bind(userId: string, req: { id_server: string; id_access_token: string; sid: string; client_secret: string }): Promise<void> {
    const bound = await this.deps.identity.bind(req.id_server, req.id_access_token, { sid: req.sid, client_secret: req.client_secret, mxid: userId });
    await addBinding(this.deps.db.knex, userId, { ...bound, idServer: req.id_server });
  }

  /** Unbinds at `idServer`, or at every identity server it was bound on through us. */
  async unbind(userId: string, medium: string, address: string, idServer?: string): Promise<UnbindResult> {
    const servers = idServer !== undefined ? [idServer] : await idServersFor(this.deps.db.knex, userId, medium, address);
    if (!servers.length) return 'no-support';
    let changed = true;
    for (const server of servers) {
      changed = (await this.deps.identity.unbind(server, userId, medium, address)) && changed;
      await removeBinding(this.deps.db.knex, userId, { medium, address, idServer: server });
    }
    return changed ? 'success' : 'no-support';
  }

  /** Deactivation: every binding made through us goes (one failing identity server does not stop the others). */
  async unbindAll(userId: string, idServer?: string): Promise<UnbindResult> {
    const seen = new Set<string>();
    let result: UnbindResult = 'success';
    for (const b of await bindingsOf(this.deps.db.knex, userId)) {
      const key = JSON.stringify([b.medium, b.address]);
      if (seen.has(key)) continue;
      seen.add(key);
      try {
        if ((await this.unbind(userId, b.medium, b.address, idServer)) !== 'success') result = 'no-support';
      } catch (err) {
        this.deps.logger.info({ reason: (err as Error).message }, 'unbinding a 3PID at deactivation failed');
        result = 'no-support';
      }
    }
    return result;
  }
}
