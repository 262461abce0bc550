import { request, type HttpResult } from '../../helpers/http.js';
import type { TestServer } from '../../helpers/homeserver.js';
import { loginDevice, registerUser, type TestUser } from '../../helpers/users.js';

/** A server admin made as `skjol register-user --admin` makes one, logged in. */
export async function makeAdmin(server: TestServer, localpart = 'root'): Promise<TestUser> {
  const password = `${localpart}-admin-pw`;
  const userId = await server.hs.services.users.createAccountFromCli(localpart, password, true);
  return loginDevice(server.baseUrl, { userId, accessToken: '', deviceId: '', password });
}

export { registerUser };

/** Calls the Synapse admin API (not in the Matrix spec: no schema check). */
export function admin(server: TestServer, method: string, path: string, token: string | undefined, body?: unknown): Promise<HttpResult> {
  return request(server.baseUrl, method, `/_synapse/admin${path}`, { ...(token ? { token } : {}), ...(body !== undefined ? { body } : {}), skipSpecCheck: true });
}

export const enc = encodeURIComponent;

/** Every admin route refuses a caller without a token (401) and a non-admin (403 M_FORBIDDEN). */
export async function expectAdminOnly(server: TestServer, user: TestUser, method: string, path: string, body?: unknown): Promise<void> {
  const anon = await admin(server, method, path, undefined, body);
  if (anon.status !== 401) throw new Error(`${method} ${path} without a token: ${anon.status} ${JSON.stringify(anon.body)}`);
  const res = await admin(server, method, path, user.accessToken, body);
  if (res.status !== 403 || res.body?.errcode !== 'M_FORBIDDEN') throw new Error(`${method} ${path} as non-admin: ${res.status} ${JSON.stringify(res.body)}`);
}
