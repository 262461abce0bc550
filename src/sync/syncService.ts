import type { ServiceDeps } from '../serviceDeps.js';
import type { RoomService } from '../rooms/roomService.js';

// PLACEHOLDER
export class SyncService {
  constructor(private readonly deps: ServiceDeps & { rooms: RoomService }) {
    void this.deps;
  }
}
