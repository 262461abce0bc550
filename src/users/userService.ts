import { unknownToken } from '../errors.js';
import type { Requester } from '../http/route.js';
import type { ServiceDeps } from '../serviceDeps.js';

// PLACEHOLDER: replaced by the accounts work.
export class UserService {
  constructor(private readonly deps: ServiceDeps) {}

  async authenticate(_token: string, _ctx: { ip: string; userAgent: string | undefined; query: Record<string, unknown> }): Promise<Requester> {
    void this.deps;
    throw unknownToken();
  }
}
