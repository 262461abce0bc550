/** The PostgreSQL the integration tests use: 127.0.0.1:5432, user postgres, database test (trust auth). */
export interface PgTarget {
  host: string;
  port: number;
  user: string;
  database: string;
}

export function pgTarget(): PgTarget {
  return {
    host: process.env.SKJOL_TEST_PG_HOST ?? '127.0.0.1',
    port: Number(process.env.SKJOL_TEST_PG_PORT ?? 5432),
    user: process.env.SKJOL_TEST_PG_USER ?? 'postgres',
    database: process.env.SKJOL_TEST_PG_DATABASE ?? 'test',
  };
}
