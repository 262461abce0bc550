import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import type { TestUser } from '../helpers/users.js';
import { api, enc, eventually, membershipOf, startPair, type Fleet } from './helpers.js';

// A room upgraded on another server (Client-Server API, "Room Upgrades", server behaviour): when this server
// joins the replacement room, its own aliases of the old room point at the new one, and the new room takes
// the old one's place in its public room directory (as Synapse's transfer_room_state_on_room_upgrade).
//   A localhost:<port>  — alice, who owns and upgrades the room
//   B 127.0.0.1:<port>  — bob, whose server holds an alias and a directory entry for it
describe.each(testDialects())('joining the replacement of an upgraded room of another server, on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;

  beforeAll(async () => {
    ({ fleet, A, B, alice, bob } = await startPair(dialect));
  }, 60_000);

  afterAll(async () => {
    await fleet?.close();
  });

  it("moves B's alias and public directory entry to the new room once bob joins it", async () => {
    const roomId = (await api(A, alice, 'POST', '/createRoom', { preset: 'public_chat', visibility: 'public' })).body.room_id as string;
    expect((await api(B, bob, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    const levels = (await api(A, alice, 'GET', `/rooms/${enc(roomId)}/state/m.room.power_levels/`)).body;
    const raised = await api(A, alice, 'PUT', `/rooms/${enc(roomId)}/state/m.room.power_levels/`, { ...levels, users: { ...levels.users, [bob.userId]: 100 } });
    await eventually(async () => (await api(B, bob, 'GET', `/rooms/${enc(roomId)}/event/${enc(raised.body.event_id)}`)).status === 200, 'the power levels on B');
    const alias = `#bobs-alias:${B.serverName}`;
    expect((await api(B, bob, 'PUT', `/directory/room/${enc(alias)}`, { room_id: roomId })).status).toBe(200);
    expect((await api(B, bob, 'PUT', `/directory/list/room/${enc(roomId)}`, { visibility: 'public' })).status).toBe(200);
    const listed = async () => ((await api(B, bob, 'GET', '/publicRooms')).body.chunk as Array<{ room_id: string }>).map((r) => r.room_id);
    expect(await listed()).toContain(roomId);

    const upgraded = await api(A, alice, 'POST', `/rooms/${enc(roomId)}/upgrade`, { new_version: '10' });
    expect(upgraded.status).toBe(200);
    const newRoomId = upgraded.body.replacement_room as string;
    expect((await api(B, bob, 'POST', `/join/${enc(newRoomId)}?server_name=${enc(A.serverName)}`, {})).status).toBe(200);
    expect(await membershipOf(B, bob, newRoomId, bob.userId)).toBe('join');

    expect((await api(B, bob, 'GET', `/directory/room/${enc(alias)}`)).body.room_id).toBe(newRoomId);
    const after = await listed();
    expect(after).toContain(newRoomId);
    expect(after).not.toContain(roomId);
  });
});
