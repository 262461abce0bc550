import { describe, expect, inject, it } from 'vitest';
import { testDialects } from '../helpers/homeserver.js';

// Also the file test/http/pg-detection.test.ts runs in a nested vitest with PostgreSQL pointed elsewhere.
describe('the dialects integration tests run on', () => {
  it('include PostgreSQL exactly when the global setup reached it', () => {
    const pgRuns = process.env.SKJOL_TEST_PG !== 'off' && inject('skjolTestPg') === 'on';
    expect(testDialects()).toEqual(pgRuns ? ['sqlite', 'postgres'] : ['sqlite']);
  });

  describe.each(testDialects())('%s', (dialect) => {
    it('is a dialect a server can start on', () => {
      expect(['sqlite', 'postgres']).toContain(dialect);
    });
  });
});
