import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { loadBridgeConfig } from '../../src/bridge/irc/config.js';
import { freePort, startHomeserver, type TestServer } from '../helpers/homeserver.js';
import { api, enc, eventually, matrixUser } from './helpers/bridgeFixture.js';
import { connectIrcUser } from './helpers/ircUser.js';
import { startNgircd } from './helpers/ngircd.js';

const run = promisify(execFile);
const TSX = join(process.cwd(), 'node_modules', '.bin', 'tsx');

// The bridge as people run it: a separate `skjol bridge irc` process next to the homeserver.
describe('skjol bridge irc (command line)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skjol-bridge-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('bridge.example.yaml is a valid bridge configuration', () => {
    const config = loadBridgeConfig(join(process.cwd(), 'bridge.example.yaml'));
    expect(Object.keys(config.networks)).toEqual(['libera']);
  });

  it('names a wrong key in the configuration and exits with code 2', async () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, stringify({ homeserver: { url: 'http://localhost:8008', domain: 'localhost' }, networks: { x: { host: 'irc', prot: 6667 } } }));
    const err = (await run(TSX, ['src/main.ts', 'bridge', 'irc', '--config', path]).catch((e: unknown) => e)) as { code: number; stderr: string };
    expect(err.code).toBe(2);
    expect(err.stderr).toMatch(/networks\.x\.prot/);
  });

  it('writes a registration, then runs as its own process that a homeserver and IRC users talk to', async () => {
    const irc = await startNgircd();
    const asPort = await freePort();
    const configPath = join(dir, 'bridge.yaml');
    const config = {
      homeserver: { url: 'http://127.0.0.1:1', domain: 'localhost' },
      appservice: { port: asPort, registration: 'reg.yaml' },
      database: { engine: 'sqlite', filename: 'state/bridge.db' },
      encryption: { enabled: false },
      networks: { cli: { host: irc.host, port: irc.port } },
      log_level: 'warn',
    };
    writeFileSync(configPath, stringify(config));
    const { stdout } = await run(TSX, ['src/main.ts', 'bridge', 'irc', '--config', configPath, '--generate-registration']);
    expect(stdout).toMatch(/reg\.yaml/);
    const registration = parse(readFileSync(join(dir, 'reg.yaml'), 'utf8'));
    expect(registration).toMatchObject({ sender_localpart: 'ircbot', url: `http://127.0.0.1:${asPort}`, 'org.matrix.msc3202': true, 'io.element.msc4190': true, 'de.sorunome.msc2409.push_ephemeral': true });
    expect(registration.namespaces.users[0]).toEqual({ exclusive: true, regex: '@irc_.*:localhost' });

    const hs = await startHomeserver({ config: { app_service_config_files: [join(dir, 'reg.yaml')], enable_registration: true } });
    writeFileSync(configPath, stringify({ ...config, homeserver: { url: hs.baseUrl, domain: 'localhost' } }));
    const child = spawn(TSX, ['src/main.ts', 'bridge', 'irc', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    try {
      const bob = await connectIrcUser(irc, 'bob');
      await bob.join('#cli');
      const alice = await matrixUser(hs, 'alice', 'Alice');
      // The bridge process may still be starting: the alias resolves once it answers.
      let roomId: string | undefined;
      for (let i = 0; i < 100 && !roomId; i++) {
        roomId = await api(hs, alice, 'POST', `/_matrix/client/v3/join/${enc('#irc_cli_cli:localhost')}`, {}).then((r) => r.room_id as string, () => undefined);
        if (!roomId) await new Promise((r) => setTimeout(r, 200));
      }
      expect(roomId, output).toBeDefined();
      await api(hs, alice, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId!)}/send/m.room.message/cli-1`, { msgtype: 'm.text', body: 'from a separate process' });
      await bob.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && e.text === 'from a separate process', 'the message via the bridge process');
      await bob.disconnect();
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      // No secret reaches the log.
      expect(output).not.toContain(registration.as_token);
      expect(output).not.toContain(registration.hs_token);
    } finally {
      child.kill('SIGKILL');
      await hs.close();
      await irc.close();
    }
  });

  it('run from another directory, the homeserver and the bridge find the files their configs name relative to themselves; no channels is fine', async () => {
    const irc = await startNgircd();
    const etc = join(dir, 'etc');
    const elsewhere = join(dir, 'elsewhere');
    mkdirSync(etc, { recursive: true });
    mkdirSync(elsewhere, { recursive: true });
    const [asPort, hsPort] = [await freePort(), await freePort()];
    const bridgePath = join(etc, 'bridge.yaml');
    // As an operator leaves it after removing the example's channel: `channels:` with nothing under it.
    writeFileSync(
      bridgePath,
      `homeserver: { url: "http://127.0.0.1:${hsPort}", domain: localhost }\nappservice: { port: ${asPort}, registration: reg.yaml }\n` +
        `database: { engine: sqlite, filename: state/bridge.db }\nencryption: { enabled: false }\nnetworks:\n  ops:\n    host: ${irc.host}\n    port: ${irc.port}\n    channels:\n    # - channel: "#skjol"\nlog_level: warn\n`,
    );
    await run(TSX, [join(process.cwd(), 'src/main.ts'), 'bridge', 'irc', '--config', bridgePath, '--generate-registration'], { cwd: elsewhere });
    const hsPath = join(etc, 'homeserver.yaml');
    writeFileSync(
      hsPath,
      stringify({
        server_name: 'localhost',
        listeners: [{ port: hsPort, bind_addresses: ['127.0.0.1'], type: 'http', resources: [{ names: ['client'] }] }],
        database: { name: 'sqlite3', args: { database: join(dir, 'hs.db') } },
        signing_key_path: join(dir, 'signing.key'),
        media_store_path: join(dir, 'media'),
        enable_registration: true,
        rc_enabled: false,
        ip_range_whitelist: ['127.0.0.0/8'],
        app_service_config_files: ['reg.yaml'],
        log_level: 'info',
      }),
    );
    const children = [spawn(TSX, [join(process.cwd(), 'src/main.ts'), 'serve', '--config', hsPath], { cwd: elsewhere, stdio: ['ignore', 'pipe', 'pipe'] })];
    let hsLog = '';
    let bridgeLog = '';
    children[0]!.stdout!.on('data', (d) => (hsLog += d));
    children[0]!.stderr!.on('data', (d) => (hsLog += d));
    try {
      const hs = { baseUrl: `http://127.0.0.1:${hsPort}` } as TestServer;
      await eventually(async () => hsLog.includes('Skjól is serving') || hsLog.includes('"level":60'), 'the homeserver starting', 60_000);
      const loaded = hsLog.split('\n').filter((l) => l.includes('application service loaded')).map((l) => JSON.parse(l));
      expect(loaded, hsLog).toHaveLength(1);
      expect(loaded[0]).toMatchObject({ id: 'skjol-irc', url: `http://127.0.0.1:${asPort}`, namespaces: { users: 1, aliases: 1, rooms: 0 } });
      const bridge = spawn(TSX, [join(process.cwd(), 'src/main.ts'), 'bridge', 'irc', '--config', bridgePath], { cwd: elsewhere, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(bridge);
      bridge.stdout.on('data', (d) => (bridgeLog += d));
      bridge.stderr.on('data', (d) => (bridgeLog += d));
      const bob = await connectIrcUser(irc, 'bob');
      await bob.join('#ops');
      const alice = await matrixUser(hs, 'alice', 'Alice');
      const roomId = await eventually(() => api(hs, alice, 'POST', `/_matrix/client/v3/join/${enc('#irc_ops_ops:localhost')}`, {}).then((r) => r.room_id as string), `the portal (bridge log: ${bridgeLog})`, 60_000);
      await api(hs, alice, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/rel-1`, { msgtype: 'm.text', body: 'found my files' });
      await bob.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && e.text === 'found my files', 'the message via the bridge');
      await bob.disconnect();
      // The bridge's own files sit next to bridge.yaml, not in the directory it was started from.
      expect(existsSync(join(etc, 'state', 'bridge.db'))).toBe(true);
      expect(existsSync(join(elsewhere, 'state'))).toBe(false);
    } finally {
      for (const child of children) child.kill('SIGKILL');
      await irc.close();
    }
  });
});
