import { assertSpecShaped } from './specSchema.js';

/** Raw HTTP against a test server, for error cases and endpoints no SDK calls. */
export interface HttpResult<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export async function request<T = any>(
  baseUrl: string,
  method: string,
  path: string,
  options: {
    token?: string;
    body?: unknown;
    rawBody?: string | Buffer;
    headers?: Record<string, string>;
    /** Every JSON response is checked against the spec's schema for its operation unless this is set. */
    skipSpecCheck?: boolean;
  } = {},
): Promise<HttpResult<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | Buffer | undefined;
  if (options.rawBody !== undefined) body = options.rawBody;
  else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(baseUrl + path, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text.length ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: tests assert on that themselves
  }
  if (!options.skipSpecCheck && typeof parsed === 'object' && parsed !== null) assertSpecShaped(method, baseUrl + path, res.status, parsed);
  return { status: res.status, body: parsed as T, headers: res.headers };
}
