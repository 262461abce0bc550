import type { TestProject } from 'vitest/node';
import { pgMode, probePostgres } from './helpers/pgProbe.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Whether the integration tests' PostgreSQL half runs (test/helpers/homeserver.ts testDialects). */
    skjolTestPg: 'on' | 'off' | 'unreachable';
  }
}

// Probes PostgreSQL once for the whole run, so a machine without it runs the SQLite half and says so,
// instead of every PostgreSQL test failing on its own. SKJOL_TEST_PG=required (CI) makes it an error.
export default async function setup(project: TestProject): Promise<(() => void) | undefined> {
  const mode = pgMode(process.env.SKJOL_TEST_PG);
  if (mode === 'off') {
    project.provide('skjolTestPg', 'off');
    return undefined;
  }
  const problem = await probePostgres();
  if (problem === undefined) {
    project.provide('skjolTestPg', 'on');
    return undefined;
  }
  if (mode === 'required') {
    throw new Error(`SKJOL_TEST_PG=required but PostgreSQL is not usable: ${problem}`);
  }
  project.provide('skjolTestPg', 'unreachable');
  const banner = () =>
    process.stdout.write(
      `\n*** PostgreSQL half SKIPPED: ${problem}.\n` +
        '*** Only SQLite was tested. Start PostgreSQL (see README, "Tests") or set SKJOL_TEST_PG=required to make this an error.\n\n',
    );
  banner();
  return banner;
}
