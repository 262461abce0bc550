import knexFactory from 'knex';
import { pgTarget } from './pgTarget.js';

export type PgMode = 'auto' | 'off' | 'required';

/** SKJOL_TEST_PG: `off` skips PostgreSQL, `required` fails the run without it, anything else probes. */
export function pgMode(value: string | undefined): PgMode {
  if (value === 'off' || value === 'required') return value;
  return 'auto';
}

/** Why the test PostgreSQL cannot be used, or undefined when a query succeeds. */
export async function probePostgres(timeoutMs = 3_000): Promise<string | undefined> {
  const target = pgTarget();
  const where = `${target.user}@${target.host}:${target.port}/${target.database}`;
  const knex = knexFactory({ client: 'pg', connection: { ...target, connectionTimeoutMillis: timeoutMs }, pool: { min: 0, max: 1 }, acquireConnectionTimeout: timeoutMs });
  try {
    await knex.raw('SELECT 1');
    return undefined;
  } catch (err) {
    return `${where} is unreachable (${(err as Error).message || (err as { code?: string }).code || 'no answer'})`;
  } finally {
    await knex.destroy().catch(() => undefined);
  }
}
