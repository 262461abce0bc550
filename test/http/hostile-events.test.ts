import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forbidden } from '../../src/errors.js';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

const enc = encodeURIComponent;

describe.each(testDialects())('hostile events on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
  });
  afterAll(async () => {
    await server?.close();
  });

  async function createRoom(user: TestUser, body: Record<string, unknown> = {}): Promise<string> {
    const res = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: user.accessToken, body });
    expect(res.status).toBe(200);
    return res.body.room_id;
  }

  async function timeline(user: TestUser, roomId: string): Promise<Array<{ type: string; content: Record<string, unknown>; state_key?: string }>> {
    const res = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=f&limit=1000`, { token: user.accessToken });
    expect(res.status).toBe(200);
    return res.body.chunk;
  }

  async function send(user: TestUser, roomId: string, txnId: string, content: unknown, rawBody?: string) {
    return request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${txnId}`, {
      token: user.accessToken,
      ...(rawBody !== undefined ? { rawBody, headers: { 'content-type': 'application/json' } } : { body: content }),
    });
  }

  it('a write that fails, after writing or not, leaves no trace, and the rest of its batch commits', async () => {
    const attackRoom = await createRoom(alice);
    const victimRoom = await createRoom(bob);
    const rooms = server.hs.services.rooms;
    // A job that holds the current batch open, so everything below is committed together in the next one.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const holder = rooms.write(victimRoom, () => gate);
    const victimSend = (i: number) =>
      rooms.sendEvent({ userId: bob.userId }, victimRoom, { type: 'm.room.message', content: { msgtype: 'm.text', body: `victim ${i}` } });
    const victims = [victimSend(0), victimSend(1)];
    const failures = [
      // An unexpected error after a state event was written.
      rooms.write(attackRoom, async (ctx) => {
        await ctx.append({ type: 'org.example.crash', stateKey: '', content: { n: 1 }, sender: alice.userId });
        throw new Error('unexpected failure after a write');
      }),
      // A refusal after a state event was written.
      rooms.write(attackRoom, async (ctx) => {
        await ctx.append({ type: 'org.example.refused', stateKey: '', content: { n: 1 }, sender: alice.userId });
        throw forbidden('refused after a write');
      }),
      // A refusal after a message was appended (held back until the batch ends).
      rooms.write(attackRoom, async (ctx) => {
        await ctx.append({ type: 'm.room.message', content: { msgtype: 'm.text', body: 'never stored' }, sender: alice.userId });
        throw forbidden('refused after an append');
      }),
    ];
    victims.push(victimSend(2), victimSend(3));
    const attackRoomOk = rooms.sendEvent({ userId: alice.userId }, attackRoom, { type: 'm.room.message', content: { msgtype: 'm.text', body: 'fine' } });
    victims.push(victimSend(4));
    release();
    await holder;
    const settled = await Promise.allSettled(failures);
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect((await Promise.allSettled(victims)).map((s) => s.status)).toEqual(Array(5).fill('fulfilled'));
    await attackRoomOk;

    for (const type of ['org.example.crash', 'org.example.refused']) {
      const state = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(attackRoom)}/state/${type}/`, { token: alice.accessToken });
      expect(state.status).toBe(404);
    }
    const attackTimeline = await timeline(alice, attackRoom);
    expect(attackTimeline.filter((e) => e.type.startsWith('org.example.') || e.content.body === 'never stored')).toEqual([]);
    expect(attackTimeline.filter((e) => e.content.body === 'fine')).toHaveLength(1);
    // Both rooms keep working on a consistent head.
    expect((await send(alice, attackRoom, 'after', { msgtype: 'm.text', body: 'after' })).status).toBe(200);
    expect((await send(bob, victimRoom, 'after', { msgtype: 'm.text', body: 'after' })).status).toBe(200);
    const victimBodies = (await timeline(bob, victimRoom)).filter((e) => e.type === 'm.room.message').map((e) => e.content.body);
    expect(victimBodies).toEqual(['victim 0', 'victim 1', 'victim 2', 'victim 3', 'victim 4', 'after']);
  });
});
