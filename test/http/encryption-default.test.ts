import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

type Json = any;

// encryption_enabled_by_default_for_room_type (Synapse's key; Skjól's default `invite`).
describe.each(testDialects())('encryption by default on %s', (dialect) => {
  const servers: TestServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close();
  });

  async function setup(config?: Record<string, unknown>): Promise<{ server: TestServer; alice: TestUser; bob: TestUser }> {
    const server = await startHomeserver({ dialect, ...(config ? { config } : {}) });
    servers.push(server);
    return { server, alice: await registerUser(server.baseUrl, 'alice'), bob: await registerUser(server.baseUrl, 'bob') };
  }
  const encryptionOf = async (server: TestServer, user: TestUser, body: Record<string, unknown>): Promise<Json> => {
    const created = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: user.accessToken, body });
    expect(created.status).toBe(200);
    const state = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(created.body.room_id)}/state`, { token: user.accessToken });
    return (state.body as Json[]).find((e) => e.type === 'm.room.encryption' && e.state_key === '')?.content;
  };

  describe('default (invite)', () => {
    let ctx: Awaited<ReturnType<typeof setup>>;
    beforeAll(async () => {
      ctx = await setup();
    });

    it('encrypts private, trusted-private and direct rooms with megolm', async () => {
      const { server, alice, bob } = ctx;
      const megolm = { algorithm: 'm.megolm.v1.aes-sha2' };
      expect(await encryptionOf(server, alice, {})).toEqual(megolm);
      expect(await encryptionOf(server, alice, { preset: 'private_chat' })).toEqual(megolm);
      expect(await encryptionOf(server, alice, { preset: 'trusted_private_chat', invite: [bob.userId] })).toEqual(megolm);
      expect(await encryptionOf(server, alice, { is_direct: true, invite: [bob.userId], preset: 'trusted_private_chat' })).toEqual(megolm);
      expect(await encryptionOf(server, alice, { is_direct: true, invite: [bob.userId] })).toEqual(megolm);
    });

    it('leaves public rooms unencrypted', async () => {
      const { server, alice } = ctx;
      expect(await encryptionOf(server, alice, { preset: 'public_chat' })).toBeUndefined();
      expect(await encryptionOf(server, alice, { visibility: 'public' })).toBeUndefined();
    });

    it("keeps the creator's own m.room.encryption from initial_state", async () => {
      const { server, alice } = ctx;
      const own = { algorithm: 'm.megolm.v1.aes-sha2', rotation_period_ms: 3_600_000 };
      expect(await encryptionOf(server, alice, { initial_state: [{ type: 'm.room.encryption', state_key: '', content: own }] })).toEqual(own);
    });

    it('a new encrypted room still takes plain messages and reads them back in order', async () => {
      const { server, alice } = ctx;
      const roomId = (await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: {} })).body.room_id;
      const sent = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.encrypted/t1`, {
        token: alice.accessToken,
        body: { algorithm: 'm.megolm.v1.aes-sha2', ciphertext: 'AwgA', sender_key: 'k', session_id: 's', device_id: 'D' },
      });
      expect(sent.status).toBe(200);
      const msgs = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=3`, { token: alice.accessToken });
      expect(msgs.body.chunk.map((e: Json) => e.type)).toEqual(['m.room.encrypted', 'm.room.encryption', 'm.room.guest_access']);
    });
  });

  it('`all` also encrypts public rooms', async () => {
    const { server, alice } = await setup({ encryption_enabled_by_default_for_room_type: 'all' });
    expect(await encryptionOf(server, alice, { preset: 'public_chat' })).toEqual({ algorithm: 'm.megolm.v1.aes-sha2' });
  });

  it('`off` (or YAML 1.1 false) encrypts nothing', async () => {
    for (const value of ['off', false]) {
      const { server, alice, bob } = await setup({ encryption_enabled_by_default_for_room_type: value });
      expect(await encryptionOf(server, alice, {})).toBeUndefined();
      expect(await encryptionOf(server, alice, { preset: 'trusted_private_chat', invite: [bob.userId], is_direct: true })).toBeUndefined();
    }
  });
});
