import { afterAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { loginDevice, registerUser, type TestUser } from '../helpers/users.js';

type Json = any;

// user_ips_max_age (Synapse's key): devices' last-seen address, user agent and time.
describe.each(testDialects())('client address retention on %s', (dialect) => {
  const servers: TestServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close();
  });

  async function start(config?: Record<string, unknown>): Promise<TestServer> {
    const server = await startHomeserver({ dialect, ...(config ? { config } : {}) });
    servers.push(server);
    return server;
  }
  const devices = async (server: TestServer, user: TestUser): Promise<Json[]> =>
    (await request(server.baseUrl, 'GET', '/_matrix/client/v3/devices', { token: user.accessToken, headers: { 'user-agent': 'MarkerAgent/1.0' } })).body.devices;
  const whois = async (server: TestServer, user: TestUser): Promise<Json> =>
    (await request(server.baseUrl, 'GET', `/_matrix/client/v3/admin/whois/${encodeURIComponent(user.userId)}`, { token: user.accessToken })).body;
  const storedRows = (server: TestServer, userId: string) =>
    server.hs.services.db.knex('devices').where({ user_id: userId }).select('last_seen_ip', 'last_seen_user_agent', 'last_seen_ts');

  it('by default (28 days) keeps the last-seen address and user agent of a device', async () => {
    const server = await start();
    const alice = await registerUser(server.baseUrl, 'alice');
    const [device] = await devices(server, alice);
    expect(device.last_seen_ip).toBe('127.0.0.1');
    expect(typeof device.last_seen_ts).toBe('number');
    const connections = (await whois(server, alice)).devices[alice.deviceId].sessions[0].connections;
    expect(connections).toEqual([expect.objectContaining({ ip: '127.0.0.1', user_agent: 'MarkerAgent/1.0' })]);
  });

  it('with user_ips_max_age: 0 stores no address, user agent or last-seen time at all', async () => {
    const server = await start({ user_ips_max_age: 0 });
    const alice = await registerUser(server.baseUrl, 'alice');
    const second = await loginDevice(server.baseUrl, alice);
    for (const user of [alice, second]) {
      for (const d of await devices(server, user)) {
        expect(d).not.toHaveProperty('last_seen_ip');
        expect(d).not.toHaveProperty('last_seen_ts');
      }
    }
    expect((await whois(server, alice)).devices[alice.deviceId].sessions[0].connections).toEqual([]);
    const rows = await storedRows(server, alice.userId);
    expect(rows).toHaveLength(2);
    for (const row of rows) expect(row).toEqual({ last_seen_ip: null, last_seen_user_agent: null, last_seen_ts: null });
  });

  it('clears them once older than user_ips_max_age, on its schedule', async () => {
    const server = await start({ user_ips_max_age: '2s' });
    const alice = await registerUser(server.baseUrl, 'alice');
    const watcher = await loginDevice(server.baseUrl, alice);
    // The first device is used once, then only looked at from the second one.
    expect((await devices(server, alice)).find((d) => d.device_id === alice.deviceId).last_seen_ip).toBe('127.0.0.1');
    for (;;) {
      const seen = (await devices(server, watcher)).find((d) => d.device_id === alice.deviceId);
      if (!('last_seen_ip' in seen)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const row = (await storedRows(server, alice.userId)).find((r: Json) => r.last_seen_ip === null && r.last_seen_ts === null);
    expect(row).toEqual({ last_seen_ip: null, last_seen_user_agent: null, last_seen_ts: null });
  });

  it('refuses a malformed user_ips_max_age at start-up', async () => {
    await expect(start({ user_ips_max_age: 'soon' })).rejects.toThrow(/user_ips_max_age/);
  });
});
