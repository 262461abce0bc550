import type { RoomService } from '../rooms/roomService.js';
import type { ServiceDeps } from '../serviceDeps.js';
import type { AccountDataService } from '../sync/accountDataService.js';
import { PresenceService } from './presence.js';
import { ReceiptService } from './receipts.js';
import { TypingService } from './typing.js';

// Ephemeral data units: receipts and presence are stored, typing lives in memory.
export interface EduServices {
  receipts: ReceiptService;
  typing: TypingService;
  presence: PresenceService;
  close(): void;
}

export function createEdus(deps: ServiceDeps & { rooms: RoomService; accountData: AccountDataService }): EduServices {
  const typing = new TypingService(deps);
  deps.rooms.onCommitted((result) => {
    for (const e of result.events) {
      if (e.pdu.type === 'm.room.member' && typeof e.pdu.state_key === 'string' && e.pdu.content.membership !== 'join') {
        typing.userLeft(e.pdu.room_id, e.pdu.state_key);
      }
    }
  });
  return {
    receipts: new ReceiptService(deps),
    typing,
    presence: new PresenceService(deps),
    close: () => typing.close(),
  };
}
