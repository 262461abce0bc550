import type { ServiceDeps } from '../serviceDeps.js';

// PLACEHOLDER
export class RoomService {
  constructor(private readonly deps: ServiceDeps) {
    void this.deps;
  }
}
