/** Identity-server features, built once per homeserver: the outbound client, bindings, third-party invites. */
import type { FederationClient } from '../federation/client.js';
import { outboundPolicyOf } from '../net/outboundPolicy.js';
import type { RoomService } from '../rooms/roomService.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { ThreepidBindings } from './bindings.js';
import { IdentityClient } from './identityClient.js';
import { ThirdPartyInvites } from './thirdPartyInvites.js';

export interface IdentityServices {
  client: IdentityClient;
  bindings: ThreepidBindings;
  invites: ThirdPartyInvites;
  close(): void;
}

export function createIdentity(base: ServiceDeps, others: { rooms: RoomService; federation: Pick<FederationClient, 'request'> }): IdentityServices {
  const { config, serverName, signingKey, logger, db } = base;
  const client = new IdentityClient({
    serverName,
    signingKey,
    outbound: outboundPolicyOf(config),
    insecureTls: config.use_insecure_ssl_client_just_for_testing_do_not_use,
    logger,
  });
  const bindings = new ThreepidBindings({ db, identity: client, logger });
  const invites = new ThirdPartyInvites({ db, rooms: others.rooms, identity: client, federation: others.federation, serverName, logger });
  return { client, bindings, invites, close: () => client.close() };
}
