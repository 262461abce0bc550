import type { Logger } from 'pino';
import { serverNameOf } from '../serverName.js';

/** Whether `userId` is a user of `origin`; logs a refusal otherwise (a server speaks only for its users). */
export function fromOrigin(origin: string, userId: string, eduType: string, logger: Logger): boolean {
  if (userId.startsWith('@') && serverNameOf(userId) === origin) return true;
  logger.info({ origin, userId, eduType }, 'inbound EDU for a user of another server dropped');
  return false;
}
