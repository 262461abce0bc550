// Login limits (rc_login.address / account / failed_attempts) and X-Forwarded-For per listener.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser } from '../helpers/users.js';

const LOGIN = '/_matrix/client/v3/login';
const slow = { per_second: 0.001, burst_count: 3 };

describe('login limits', () => {
  let server: TestServer;
  /** A second listener of the same homeserver, behind a (pretend) reverse proxy. */
  let proxied: string;

  beforeAll(async () => {
    server = await startHomeserver({
      config: {
        listeners: [{ port: 0, x_forwarded: true }, { port: 0 }],
        rc_enabled: true,
        rc_registration: { per_second: 100, burst_count: 100 },
        rc_login: { address: slow, account: slow, failed_attempts: slow },
      },
    });
    proxied = `http://127.0.0.1:${await server.hs.listen(0, '127.0.0.1', undefined, { x_forwarded: true })}`;
    for (const name of ['regular', 'victim', 'bystander']) await registerUser(server.baseUrl, name, `${name}-pw`);
  });
  afterAll(async () => {
    await server?.close();
  });

  const login = (baseUrl: string, user: string, password: string, from?: string) =>
    request(baseUrl, 'POST', LOGIN, {
      body: { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password },
      headers: from === undefined ? {} : { 'x-forwarded-for': from },
    });

  it('limits successful logins to one account however many addresses the proxy reports', async () => {
    const froms = ['10.0.1.1', '10.0.1.2', '10.0.1.3, 192.168.0.1'];
    for (const from of froms) expect((await login(proxied, 'regular', 'regular-pw', from)).status).toBe(200);
    const fourth = await login(proxied, 'regular', 'regular-pw', '10.0.1.4');
    expect(fourth.status).toBe(429);
    expect(fourth.body.errcode).toBe('M_LIMIT_EXCEEDED');
    expect(fourth.body.retry_after_ms).toBeGreaterThan(0);
  });

  it('stops password guessing against one account from rotating addresses and spellings', async () => {
    const guesses: Array<[string, string]> = [
      ['victim', '10.0.2.1'],
      ['@victim:localhost', '10.0.2.2'],
      ['VICTIM', '10.0.2.3'],
    ];
    for (const [user, from] of guesses) {
      const res = await login(proxied, user, 'wrong guess', from);
      expect(res.status).toBe(403);
      expect(res.body.errcode).toBe('M_FORBIDDEN');
    }
    // The next try waits, even with the right password and a fresh address.
    const next = await login(proxied, '@Victim:localhost', 'victim-pw', '10.0.2.4');
    expect(next.status).toBe(429);
    expect(next.body.errcode).toBe('M_LIMIT_EXCEEDED');
    expect(next.body.retry_after_ms).toBeGreaterThan(0);
    // Another account is not affected by the failures against this one.
    const other = await login(proxied, 'bystander', 'bystander-pw', '10.0.2.5');
    expect(other.status).toBe(200);
    expect(other.body.user_id).toBe('@bystander:localhost');
  });

  it('ignores X-Forwarded-For on a listener without x_forwarded, and honours it on one with it', async () => {
    // Unknown accounts, so only the per-address limit applies: all three count against 127.0.0.1.
    for (let i = 0; i < 3; i++) {
      expect((await login(server.baseUrl, `nobody${i}`, 'pw', `10.0.3.${i}`)).status).toBe(403);
    }
    const spoofed = await login(server.baseUrl, 'nobody9', 'pw', '10.0.3.9');
    expect(spoofed.status).toBe(429);
    expect(spoofed.body.errcode).toBe('M_LIMIT_EXCEEDED');

    // The proxied listener still takes the address from the header, and the socket's without one.
    expect((await login(proxied, 'nobody10', 'pw', '10.0.3.10')).status).toBe(403);
    expect((await login(proxied, 'nobody11', 'pw')).status).toBe(429);
  });
});

describe('password re-checks (user-interactive auth) are limited too', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startHomeserver({
      config: { rc_enabled: true, rc_registration: { per_second: 100, burst_count: 100 }, rc_login: { failed_attempts: slow } },
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('stops a stolen access token from guessing the password through UIA', async () => {
    const owner = await registerUser(server.baseUrl, 'owner', 'owner-pw');
    const deleteDevice = (password: string) =>
      request(server.baseUrl, 'DELETE', `/_matrix/client/v3/devices/${owner.deviceId}`, {
        token: owner.accessToken,
        body: { auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'owner' }, password } },
      });
    for (let i = 0; i < 3; i++) {
      const res = await deleteDevice(`guess ${i}`);
      expect(res.status).toBe(401);
      expect(res.body.errcode).toBe('M_FORBIDDEN');
    }
    const right = await deleteDevice('owner-pw');
    expect(right.status).toBe(429);
    expect(right.body.errcode).toBe('M_LIMIT_EXCEEDED');
    // The device is still there.
    const devices = await request(server.baseUrl, 'GET', '/_matrix/client/v3/devices', { token: owner.accessToken });
    expect(devices.body.devices.map((d: { device_id: string }) => d.device_id)).toContain(owner.deviceId);
  });
});
