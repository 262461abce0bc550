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

/**
 * Known differences that are not about sliding sync, or where Synapse 1.120 is incomplete, taken out of both
 * transcripts before they are compared (each one is reported to the lead; the rest must match exactly):
 *  - `notification_count`/`highlight_count`: Synapse 1.120 always sends 0 (not implemented there); Skjól counts
 *    as /sync does, as MSC4186 says. Only that both are numbers is compared.
 *  - `unsigned.membership` (MSC4115, spec v1.11): Synapse adds it to every event it serves; Skjól does not, on
 *    /sync either (event serialisation, not sliding sync).
 *  - `m.push_rules` in `account_data.global`: Synapse always includes the user's push rules; Skjól publishes
 *    them as account data only once they have been changed (on /sync too).
 *  - Empty `account_data.rooms` entries: Synapse sends `[]` for every room in the window, Skjól omits them.
 *  - `m.room.power_levels` `notifications: {room: 50}`: Skjól's createRoom writes the spec default, Synapse's
 *    leaves it implicit (same meaning).
 *  - `unsigned.prev_content`/`prev_sender` on `required_state` events: Synapse serves them from its state cache
 *    without them in some cases and with them in others; Skjól always has them.
 */
function withoutKnownDifferences(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) {
    const items = value.map((v) => withoutKnownDifferences(v, key));
    if (key === 'global') return items.filter((e) => (e as { type?: string })?.type !== 'm.push_rules');
    if (key === 'required_state') {
      for (const e of items as Array<{ unsigned?: Record<string, unknown> }>) {
        delete e?.unsigned?.prev_content;
        delete e?.unsigned?.prev_sender;
      }
    }
    return items;
  }
  if (!value || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if ((k === 'notification_count' || k === 'highlight_count') && typeof v === 'number') out[k] = 'NUMBER';
    else if (k === 'membership' && key === 'unsigned') continue;
    else if (key === 'rooms' && Array.isArray(v) && v.length === 0) continue;
    else if (k === 'notifications' && JSON.stringify(v) === '{"room":50}') continue;
    else out[k] = withoutKnownDifferences(v, k);
  }
  return out;
}

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
      // Synapse's default; Skjól's is 'invite' (private rooms encrypted), which would change every room's state.
      skjol = await startHomeserver({ dialect, config: { encryption_enabled_by_default_for_room_type: 'off' } });
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
        const comparable = (step: typeof got) => withoutKnownDifferences({ status: step.status, body: step.body });
        for (const d of differences(comparable(got), comparable(want))) diffs.push(`${want.name}: ${d}`);
      });
      expect(diffs, 'Skjól ≠ Synapse').toEqual([]);
    });
  });
});
