import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { differences } from './slidingSyncNormalise.js';
import { dummyRegistration, runScenario, type Transcript } from './slidingSyncScenario.js';
import { startSynapse, synapsePython, type SynapseServer } from './synapseProcess.js';

// Simplified Sliding Sync (MSC4186, issue 14): the same scenario (slidingSyncScenario.ts) against Synapse 1.120.2
// and against Skjól; the normalised answers must match step by step. Synapse is the reference: Element X is
// tested against it. Runs only where SKJOL_SYNAPSE_PYTHON names the python of a Synapse virtualenv (built with
// ../shared/interop/synapse/build.sh); CI has none and skips. Synapse 1.120 serves the endpoint by default
// (experimental_features.msc3575_enabled defaults to true), so its config needs nothing extra.

const found = synapsePython();
/** SKJOL_SLIDING_SYNC_DUMP=<dir>: both transcripts are written there as JSON, for reading the differences. */
const dumpDir = process.env.SKJOL_SLIDING_SYNC_DUMP;
const dump = (name: string, t: Transcript) => dumpDir && writeFileSync(join(dumpDir, `${name}.json`), JSON.stringify(t.steps, null, 1));
const suite = 'python' in found ? describe : describe.skip;
const skipNote = 'skip' in found ? ` (skipped: ${found.skip})` : '';

suite(`Sliding sync: Skjól answers as Synapse 1.120.2 does${skipNote}`, () => {
  let dir: string;
  let synapse: SynapseServer;
  let reference: Transcript;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'skjol-ss-interop-'));
    synapse = await startSynapse({ python: (found as { python: string }).python, dir: join(dir, 'synapse') });
    reference = await runScenario(synapse.baseUrl, dummyRegistration(synapse.baseUrl));
    dump('synapse', reference);
  }, 180_000);

  afterAll(async () => {
    await synapse?.stop();
    if (dir && !dumpDir) rmSync(dir, { recursive: true, force: true });
  });

  it('the scenario holds on Synapse (the reference is what the MSC describes)', () => {
    const first = reference.raw.get('first window');
    expect(first.lists.all.count).toBeGreaterThan(0);
  });

  describe.each(testDialects())('Skjól on %s', (dialect) => {
    let skjol: TestServer;
    let transcript: Transcript;

    beforeAll(async () => {
      skjol = await startHomeserver({ dialect });
      transcript = await runScenario(skjol.baseUrl, dummyRegistration(skjol.baseUrl));
      dump(`skjol-${dialect}`, transcript);
    }, 180_000);

    afterAll(async () => {
      await skjol?.close();
    });

    it('answers every step as Synapse does', () => {
      const diffs: string[] = [];
      expect(transcript.steps.map((s) => s.name)).toEqual(reference.steps.map((s) => s.name));
      reference.steps.forEach((want, i) => {
        const got = transcript.steps[i]!;
        for (const d of differences({ status: got.status, body: got.body }, { status: want.status, body: want.body })) diffs.push(`${want.name}: ${d}`);
      });
      expect(diffs, 'Skjól ≠ Synapse').toEqual([]);
    });
  });
});
