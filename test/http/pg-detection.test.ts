import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../helpers/homeserver.js';

const VITEST = join(process.cwd(), 'node_modules', '.bin', 'vitest');
// A whole vitest starts per test: allow for a loaded machine.
const SLOW = 180_000;

interface Run {
  code: number;
  output: string;
}

/** Runs one test file in a fresh vitest, as `npm test` would, with PostgreSQL settings from `env`. */
function runVitest(env: Record<string, string>): Promise<Run> {
  // The outer run's own variables (VITEST_*, the pool's) must not leak into the nested one.
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VITEST') && k !== 'SKJOL_TEST_PG' && k !== 'NODE_ENV' && k !== 'TEST'));
  return new Promise((resolve) => {
    execFile(
      VITEST,
      ['run', 'test/unit/test-dialects.test.ts', '--reporter', 'default', '--no-color'],
      { env: { ...clean, ...env }, timeout: SLOW - 10_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output: stdout + stderr }),
    );
  });
}

describe('npm test on a machine without PostgreSQL', () => {
  it('runs the SQLite half and says plainly that the PostgreSQL half was skipped', async () => {
    const closed = await freePort();
    const run = await runVitest({ SKJOL_TEST_PG_PORT: String(closed) });
    expect(run.output).toMatch(new RegExp(`PostgreSQL half SKIPPED: postgres@127\\.0\\.0\\.1:${closed}/test is unreachable`));
    expect(run.output).toMatch(/Tests\s+2 passed \(2\)/);
    expect(run.code).toBe(0);
  }, SLOW);

  it('fails the run when SKJOL_TEST_PG=required (CI) and PostgreSQL is unreachable', async () => {
    const closed = await freePort();
    const run = await runVitest({ SKJOL_TEST_PG_PORT: String(closed), SKJOL_TEST_PG: 'required' });
    expect(run.output).toMatch(/SKJOL_TEST_PG=required but PostgreSQL is not usable/);
    expect(run.code).not.toBe(0);
  }, SLOW);

  it('says nothing about skipping with SKJOL_TEST_PG=off, which asks for SQLite only', async () => {
    const run = await runVitest({ SKJOL_TEST_PG: 'off', SKJOL_TEST_PG_PORT: String(await freePort()) });
    expect(run.output).not.toMatch(/SKIPPED/);
    expect(run.code).toBe(0);
  }, SLOW);
});
