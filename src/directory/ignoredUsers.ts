import type { Db } from '../storage/database.js';
import { getAccountData } from '../storage/repositories/accountData.js';

// Spec: Client-Server API, "Ignoring Users": the `m.ignored_user_list` global account data entry.
export const IGNORED_USER_LIST = 'm.ignored_user_list';

/** The users `userId` ignores (the keys of `ignored_users`); anything malformed counts as no one. */
export async function ignoredUsersOf(db: Db, userId: string): Promise<ReadonlySet<string>> {
  const content = await getAccountData(db, userId, '', IGNORED_USER_LIST);
  const list = content?.ignored_users;
  if (!list || typeof list !== 'object' || Array.isArray(list)) return EMPTY;
  const ids = Object.keys(list).filter((id) => id.startsWith('@') && id !== userId);
  return ids.length ? new Set(ids) : EMPTY;
}

const EMPTY: ReadonlySet<string> = new Set();

/**
 * Whether an event from an ignored sender is hidden: every event except state events, which clients still
 * need to know the room (spec: "Servers must still send state events sent by ignored users to clients").
 */
export function hiddenByIgnore(ignored: ReadonlySet<string>, pdu: { sender: string; state_key?: string | undefined }): boolean {
  return ignored.size > 0 && pdu.state_key === undefined && ignored.has(pdu.sender);
}
