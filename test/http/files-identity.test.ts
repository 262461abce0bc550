// What the server leaves on disk (owner-only files) and the database's binding to its server_name.
import { chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHomeserver } from '../../src/homeserver.js';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { registerUser } from '../helpers/users.js';

const mode = (path: string) => statSync(path).mode & 0o777;

describe('files on disk', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startHomeserver();
    await registerUser(server.baseUrl, 'filer');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('keeps the database, its WAL and shared memory, the signing key and the media store owner-only', () => {
    const db = join(server.dir, 'homeserver.db');
    for (const path of [db, `${db}-wal`, `${db}-shm`, join(server.dir, 'signing.key')]) {
      expect({ path, mode: mode(path).toString(8) }).toEqual({ path, mode: '600' });
    }
    expect(mode(join(server.dir, 'media')).toString(8)).toBe('700');
  });

  it('tightens files an older version left readable, at the next start', async () => {
    const db = join(server.dir, 'homeserver.db');
    await server.stop();
    chmodSync(db, 0o644);
    chmodSync(join(server.dir, 'signing.key'), 0o644);
    server = await server.restart();
    expect(mode(db).toString(8)).toBe('600');
    expect(mode(join(server.dir, 'signing.key')).toString(8)).toBe('600');
  });
});

describe.each(testDialects())('server_name bound to the database on %s', (dialect) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    await registerUser(server.baseUrl, 'owner');
    await server.stop();
  });
  afterAll(async () => {
    await server?.close();
  });

  const startAs = (serverName: string) =>
    createHomeserver({ ...server.hs.services.config, server_name: serverName }, { logger: pino({ level: 'silent' }) });

  it('refuses to start with another server_name, naming both', async () => {
    await expect(startAs('other.example')).rejects.toThrow(/"other\.example".*"localhost"/s);
    // The rightful name still starts, and its users can still log in.
    server = await server.restart();
    const login = await fetch(`${server.baseUrl}/_matrix/client/v3/login`, {
      method: 'POST',
      body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'owner' }, password: 'pw-owner-secret' }),
    });
    expect(login.status).toBe(200);
    await server.stop();
  });

  it('recognises a database from before the name was stored by its accounts', async () => {
    server = await server.restart();
    await server.hs.services.db.knex('server_identity').delete();
    await server.stop();
    await expect(startAs('other.example')).rejects.toThrow(/"other\.example".*"localhost"/s);
  });
});
