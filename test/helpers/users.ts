import { createClient, type MatrixClient } from 'matrix-js-sdk';
import { request } from './http.js';
import { assertSpecShaped } from './specSchema.js';

export interface TestUser {
  userId: string;
  accessToken: string;
  deviceId: string;
  password: string;
}

/** Registers through the real /register flow (user-interactive auth with m.login.dummy). */
export async function registerUser(baseUrl: string, username: string, password = `pw-${username}-secret`): Promise<TestUser> {
  const first = await request(baseUrl, 'POST', '/_matrix/client/v3/register', { body: { username, password } });
  let res = first;
  if (first.status === 401) {
    res = await request(baseUrl, 'POST', '/_matrix/client/v3/register', {
      body: { username, password, auth: { type: 'm.login.dummy', session: first.body.session } },
    });
  }
  if (res.status !== 200) throw new Error(`register ${username} failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { userId: res.body.user_id, accessToken: res.body.access_token, deviceId: res.body.device_id, password };
}

/**
 * A fetch that checks every JSON response the SDK receives against the spec's schema for its operation.
 * A mismatch fails the request, so the test that made it fails.
 */
export const specCheckedFetch: typeof fetch = async (input, init) => {
  const res = await fetch(input, init);
  const type = res.headers.get('content-type') ?? '';
  if (!type.includes('application/json')) return res;
  const text = await res.clone().text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return res;
  }
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  assertSpecShaped(init?.method ?? 'GET', url, res.status, body);
  return res;
};

/** A matrix-js-sdk client for a registered user (not started); its responses are checked against the spec. */
export function sdkClient(baseUrl: string, user: TestUser): MatrixClient {
  return createClient({ baseUrl, userId: user.userId, accessToken: user.accessToken, deviceId: user.deviceId, fetchFn: specCheckedFetch });
}

/** Logs in again with the password: a new device of the same user. */
export async function loginDevice(baseUrl: string, user: TestUser, deviceId?: string): Promise<TestUser> {
  const res = await request(baseUrl, 'POST', '/_matrix/client/v3/login', {
    body: {
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user: user.userId },
      password: user.password,
      ...(deviceId ? { device_id: deviceId } : {}),
    },
  });
  if (res.status !== 200) throw new Error(`login failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { ...user, accessToken: res.body.access_token, deviceId: res.body.device_id };
}
