import type { Knex } from 'knex';
import { ConfigError } from '../config/load.js';

/**
 * Binds the database to `serverName` at first start and refuses any other name later: user, room and
 * event IDs carry the server name, so a changed one would lock every user out of their account.
 */
export async function claimServerName(knex: Knex, serverName: string, where: string): Promise<void> {
  const stored = await storedServerName(knex);
  const owner = stored ?? (await serverNameOfExistingUsers(knex)) ?? serverName;
  if (owner !== serverName) {
    throw new ConfigError(
      `server_name is "${serverName}" but the database (${where}) belongs to "${owner}". ` +
        `The server name cannot change: every user, room and event ID contains it. ` +
        `Set server_name back to "${owner}", or use a new database for "${serverName}".`,
    );
  }
  if (stored === undefined) {
    await knex('server_identity').insert({ key: 'server_name', value: serverName }).onConflict('key').ignore();
    // Two processes may start at once on PostgreSQL: the row that won decides.
    const winner = await storedServerName(knex);
    if (winner !== serverName) return claimServerName(knex, serverName, where);
  }
}

async function storedServerName(knex: Knex): Promise<string | undefined> {
  const row = (await knex('server_identity').where({ key: 'server_name' }).first('value')) as { value: string } | undefined;
  return row?.value;
}

// A database from before the name was stored: its local accounts tell whose it is.
async function serverNameOfExistingUsers(knex: Knex): Promise<string | undefined> {
  const row = (await knex('users').first('user_id')) as { user_id: string } | undefined;
  if (!row) return undefined;
  return row.user_id.slice(row.user_id.indexOf(':') + 1);
}
