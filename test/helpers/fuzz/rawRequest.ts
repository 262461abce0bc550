import { Agent, request } from 'node:http';

/** One request exactly as the fuzzer built it: the path is sent byte for byte, not normalised. */
export interface RawRequest {
  method: string;
  /** Path and query string, already encoded (may hold invalid %-sequences on purpose). */
  target: string;
  headers: Record<string, string>;
  body: Buffer | undefined;
}

export interface RawResponse {
  status: number;
  contentType: string;
  text: string;
  /** Parsed JSON body, or undefined when the body is not JSON. */
  json: unknown;
  ms: number;
}

export interface RawClient {
  send(baseUrl: string, req: RawRequest, timeoutMs: number): Promise<RawResponse>;
  close(): void;
}

/**
 * node:http, one connection per request: each case then stands alone, whatever the answer to the one
 * before did to its connection.
 */
export function rawClient(): RawClient {
  const agent = new Agent({ keepAlive: false });
  return { send: (baseUrl, req, timeoutMs) => sendRaw(agent, baseUrl, req, timeoutMs), close: () => agent.destroy() };
}

/** Sends `req` to `baseUrl` (http://host:port) as built: node:http does not rewrite `..` or `%` in paths. */
function sendRaw(agent: Agent, baseUrl: string, req: RawRequest, timeoutMs: number): Promise<RawResponse> {
  const url = new URL(baseUrl);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...req.headers };
    if (req.body !== undefined) headers['content-length'] = String(req.body.length);
    const r = request({ host: url.hostname, port: url.port, method: req.method, path: req.target, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text.length > 0 ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), text, json, ms: performance.now() - started });
      });
    });
    r.setTimeout(timeoutMs, () => r.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    r.on('error', reject);
    r.end(req.body);
  });
}
