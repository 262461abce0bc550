import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

const enc = encodeURIComponent;
const V3 = '/_matrix/client/v3';
const KEY = 'org.matrix.self_destruct_after';

async function until<T>(probe: () => Promise<T | undefined>, what: string, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// MSC2228 (Synapse's enable_ephemeral_messages): a message is pruned to its redacted form at the time its sender set.
describe.each(testDialects())('self-destructing messages on %s', (dialect) => {
  let server: TestServer;
  let ann: TestUser;
  let ben: TestUser;
  let roomId: string;

  const send = async (content: Record<string, unknown>): Promise<string> => {
    const res = await request(server.baseUrl, 'PUT', `${V3}/rooms/${enc(roomId)}/send/m.room.message/${randomBytes(6).toString('hex')}`, { token: ann.accessToken, body: content });
    expect(res.status).toBe(200);
    return res.body.event_id;
  };
  const contentSeenBy = async (user: TestUser, eventId: string): Promise<Record<string, unknown>> => {
    const res = await request(server.baseUrl, 'GET', `${V3}/rooms/${enc(roomId)}/event/${enc(eventId)}`, { token: user.accessToken });
    expect(res.status).toBe(200);
    return res.body.content;
  };
  const storedJson = async (eventId: string): Promise<string> => (await server.hs.services.db.knex('events').where({ event_id: eventId }).first()).json;

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    ann = await registerUser(server.baseUrl, 'ann');
    ben = await registerUser(server.baseUrl, 'ben');
    const created = await request(server.baseUrl, 'POST', `${V3}/createRoom`, { token: ann.accessToken, body: { preset: 'public_chat' } });
    roomId = created.body.room_id;
    expect((await request(server.baseUrl, 'POST', `${V3}/join/${enc(roomId)}`, { token: ben.accessToken, body: {} })).status).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await server?.close();
  });

  it('shows the message until its time, then to nobody; the stored text and search entry go too', async () => {
    const marker = `vanish${randomBytes(4).toString('hex')}`;
    const doomed = await send({ msgtype: 'm.text', body: `${marker} soon gone`, [KEY]: Date.now() + 1500 });
    const kept = await send({ msgtype: 'm.text', body: `${marker} stays` });
    expect((await contentSeenBy(ben, doomed)).body).toBe(`${marker} soon gone`);

    await until(async () => (Object.keys(await contentSeenBy(ben, doomed)).length === 0 ? true : undefined), 'the message to be pruned');
    expect(await contentSeenBy(ann, doomed)).toEqual({});
    const page = await request(server.baseUrl, 'GET', `${V3}/rooms/${enc(roomId)}/messages?dir=b&limit=20`, { token: ben.accessToken });
    const inPage = page.body.chunk.find((e: { event_id: string }) => e.event_id === doomed);
    expect(inPage.content).toEqual({});
    expect(page.body.chunk.find((e: { event_id: string }) => e.event_id === kept).content.body).toBe(`${marker} stays`);
    expect(await storedJson(doomed)).not.toContain(marker);
    const found = await request(server.baseUrl, 'POST', `${V3}/search`, { token: ben.accessToken, body: { search_categories: { room_events: { search_term: marker } } } });
    expect(found.body.search_categories.room_events.results.map((r: { result: { event_id: string } }) => r.result.event_id)).toEqual([kept]);
  });

  it('prunes a message whose time passed while the server was stopped', async () => {
    const marker = `offline${randomBytes(4).toString('hex')}`;
    const doomed = await send({ msgtype: 'm.text', body: marker, [KEY]: Date.now() + 800 });
    server = await server.restart();
    await until(async () => (!(await storedJson(doomed)).includes(marker) ? true : undefined), 'the pruning after a restart');
    expect(await contentSeenBy(ben, doomed)).toEqual({});
  });

  it('keeps messages whose time is not a whole number of milliseconds, and answers no error for them', async () => {
    for (const bad of ['soon', -1, { at: 1 }, null]) {
      const id = await send({ msgtype: 'm.text', body: `odd ${JSON.stringify(bad)}`, [KEY]: bad });
      expect(await server.hs.services.db.knex('event_expiry').where({ event_id: id })).toEqual([]);
    }
    // Canonical JSON has no floats and no integers beyond 2^53: such events are refused whatever the key.
    for (const bad of [1.5, 1e300]) {
      const res = await request(server.baseUrl, 'PUT', `${V3}/rooms/${enc(roomId)}/send/m.room.message/${randomBytes(6).toString('hex')}`, {
        token: ann.accessToken,
        body: { msgtype: 'm.text', body: 'float', [KEY]: bad },
      });
      expect(res).toMatchObject({ status: 400, body: { errcode: 'M_BAD_JSON' } });
    }
  });
});
