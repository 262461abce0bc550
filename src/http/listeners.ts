import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import type { ResourceName } from '../config/schema.js';
import { clientAddress } from './clientAddress.js';

/** What one listener serves and whether it sits behind a proxy (its `listeners` entry). */
export interface ListenerProfile {
  xForwarded: boolean;
  resources: ReadonlySet<ResourceName>;
}

/** What a listener serves when its configuration does not say (Skjól's default http listener). */
export const DEFAULT_RESOURCES: readonly ResourceName[] = ['client', 'federation'];

// Requests handed to the app without a listener (tests driving `app` directly) see the default listener.
const DEFAULT_PROFILE: ListenerProfile = { xForwarded: false, resources: new Set(DEFAULT_RESOURCES) };

export const METRICS_PATHS = ['/_synapse/metrics', '/metrics'] as const;

/**
 * The resources that serve a path, as Synapse's resource tree mounts them (app/homeserver.py): media is
 * served with client and federation too, server keys with federation, openid userinfo with federation.
 * `undefined`: no resource claims the path (it is a 404 everywhere), `'all'`: every listener (/health).
 */
export function resourcesOfPath(path: string): readonly ResourceName[] | 'all' | undefined {
  if (path === '/health') return 'all';
  if ((METRICS_PATHS as readonly string[]).includes(path)) return ['metrics'];
  if (/^\/_matrix\/client\/[^/]+\/media\//.test(path)) return ['client', 'media'];
  if (path.startsWith('/_matrix/client/') || path.startsWith('/_synapse/admin/') || path.startsWith('/_synapse/client/') || path.startsWith('/.well-known/')) {
    return ['client'];
  }
  if (path.startsWith('/_matrix/federation/v1/openid/')) return ['federation', 'openid'];
  if (path.startsWith('/_matrix/federation/v1/media/')) return ['federation', 'media'];
  if (path.startsWith('/_matrix/federation/')) return ['federation'];
  if (path.startsWith('/_matrix/media/')) return ['media', 'client', 'federation'];
  if (path.startsWith('/_matrix/key/')) return ['keys', 'federation'];
  return undefined;
}

/** Remembers which listener each request arrived on; one set per homeserver. */
export class ListenerProfiles {
  private readonly byRequest = new WeakMap<IncomingMessage, ListenerProfile>();

  mark(req: IncomingMessage, profile: ListenerProfile): void {
    this.byRequest.set(req, profile);
  }

  profileOf(req: IncomingMessage): ListenerProfile {
    return this.byRequest.get(req) ?? DEFAULT_PROFILE;
  }

  /** The client's address, per the listener's x_forwarded. */
  addressOf(req: IncomingMessage): string {
    return clientAddress(req, this.profileOf(req).xForwarded);
  }

  /** Whether the request's listener serves its path (a path no resource claims falls through to the 404). */
  serves(req: IncomingMessage, path: string): boolean {
    const wanted = resourcesOfPath(path);
    if (wanted === undefined || wanted === 'all') return true;
    const { resources } = this.profileOf(req);
    return wanted.some((r) => resources.has(r));
  }
}

/**
 * Refuses, as an unknown path (404 M_UNRECOGNIZED), any request for a resource its listener does not serve,
 * so a federation-only listener exposes no client API and the reverse.
 */
export function resourceGate(profiles: ListenerProfiles, refuse: (res: Response) => void) {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (profiles.serves(req, req.path)) next();
    else refuse(res);
  };
}
