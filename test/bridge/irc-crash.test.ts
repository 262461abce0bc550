import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import knexFactory from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { freePort, pgTarget, startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import type { TestUser } from '../helpers/users.js';
import { api, enc, eventually, matrixUser, sendMessage } from './helpers/bridgeFixture.js';
import { connectIrcUser, type IrcUser } from './helpers/ircUser.js';
import { startNgircd, type IrcTestServer } from './helpers/ngircd.js';

const run = promisify(execFile);
const TSX = join(process.cwd(), 'node_modules', '.bin', 'tsx');

// The bridge process killed outright (power cut, OOM killer) while lines wait for the flood pace: none is lost.
describe.each(testDialects())('IRC bridge killed with SIGKILL (bridge database: %s)', (dialect) => {
  const dir = mkdtempSync(join(tmpdir(), 'skjol-bridge-crash-'));
  let irc: IrcTestServer;
  let hs: TestServer;
  let bob: IrcUser;
  let alice: TestUser;
  let roomId: string;
  let child: ChildProcess | undefined;
  let log = '';
  let pgSchema: string | undefined;
  const configPath = join(dir, 'bridge.yaml');

  const startBridge = () => {
    child = spawn(TSX, ['src/main.ts', 'bridge', 'irc', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d) => (log += d));
    child.stderr!.on('data', (d) => (log += d));
  };
  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };

  beforeAll(async () => {
    irc = await startNgircd();
    let database: Record<string, unknown> = { engine: 'sqlite', filename: 'bridge.db' };
    if (dialect === 'postgres') {
      const pg = pgTarget();
      pgSchema = `skjol_crash_${randomBytes(5).toString('hex')}`;
      const admin = knexFactory({ client: 'pg', connection: pg });
      await admin.raw('CREATE SCHEMA ??', [pgSchema]);
      await admin.destroy();
      database = { engine: 'postgres', connection_string: `postgres://${pg.user}@${pg.host}:${pg.port}/${pg.database}?options=${encodeURIComponent(`-c search_path=${pgSchema}`)}` };
    }
    const config = {
      homeserver: { url: 'http://127.0.0.1:1', domain: 'localhost' },
      appservice: { port: await freePort(), registration: 'reg.yaml' },
      database,
      encryption: { enabled: false },
      // One line at a time, slowly: most of a burst is still waiting when the process dies.
      networks: { test: { host: irc.host, port: irc.port, flood: { burst: 1, interval_ms: 300 } } },
      log_level: 'warn',
    };
    writeFileSync(configPath, stringify(config));
    await run(TSX, ['src/main.ts', 'bridge', 'irc', '--config', configPath, '--generate-registration']);
    hs = await startHomeserver({ config: { app_service_config_files: [join(dir, 'reg.yaml')], enable_registration: true, encryption_enabled_by_default_for_room_type: 'off' } });
    writeFileSync(configPath, stringify({ ...config, homeserver: { url: hs.baseUrl, domain: 'localhost' } }));
    startBridge();
    bob = await connectIrcUser(irc, 'bob');
    await bob.join('#crash');
    alice = await matrixUser(hs, 'alice', 'Alice');
    roomId = await eventually(() => api(hs, alice, 'POST', `/_matrix/client/v3/join/${enc('#irc_test_crash:localhost')}`, {}).then((r) => r.room_id as string), `the portal (bridge log: ${log})`, 60_000);
    await bob.waitFor((e) => e.kind === 'join' && e.nick === 'Alice[m]', 'Alice[m] on IRC', 30_000);
  });

  afterAll(async () => {
    await kill();
    await bob?.disconnect().catch(() => undefined);
    await hs?.close();
    await irc?.close();
    if (pgSchema) {
      const admin = knexFactory({ client: 'pg', connection: pgTarget() });
      await admin.raw('DROP SCHEMA IF EXISTS ?? CASCADE', [pgSchema]).catch(() => undefined);
      await admin.destroy();
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('every line queued when the process was killed reaches IRC after the restart, in order', async () => {
    const lines = Array.from({ length: 8 }, (_, i) => `queued line ${i + 1} of 8`);
    const mark = bob.mark();
    for (const body of lines) await sendMessage(hs, alice, roomId, { msgtype: 'm.text', body });
    // Killed while the rest are paced out behind the first.
    await bob.waitFor((e) => e.kind === 'message' && e.text === lines[0], 'the first line', 30_000, mark);
    await kill();
    const beforeRestart = bob.events.slice(mark).filter((e) => e.kind === 'message' && e.from === 'Alice[m]').length;
    expect(beforeRestart).toBeLessThan(lines.length);
    startBridge();
    await bob.waitFor((e) => e.kind === 'message' && e.text === lines[lines.length - 1], `the last line (bridge log: ${log})`, 60_000, mark);
    await eventually(async () => lines.every((l) => bob.events.slice(mark).some((e) => e.kind === 'message' && e.text === l)), 'every line on IRC', 30_000);
    const firsts = lines.map((l) => bob.events.slice(mark).findIndex((e) => e.kind === 'message' && e.text === l));
    expect([...firsts].sort((a, b) => a - b)).toEqual(firsts);
  });
});
