/**
 * One HTTP(S) request to a URL taken from users' data (push gateways): through the policy's agents, no
 * redirects followed (a 3xx is just a failed status), the response read up to a byte cap, abortable.
 */
import { request as httpRequest, type Agent as HttpAgent } from 'node:http';
import { request as httpsRequest, type Agent as HttpsAgent } from 'node:https';
import type { OutboundPolicy } from './outboundPolicy.js';

export interface OutboundAgents {
  http: HttpAgent;
  https: HttpsAgent;
  destroy(): void;
}

/** Keep-alive agents for one client, both guarded by `policy`. */
export function outboundAgents(policy: OutboundPolicy): OutboundAgents {
  const options = { keepAlive: true, maxSockets: 8, maxFreeSockets: 4, timeout: 60_000 };
  const http = policy.httpAgent(options);
  const https = policy.httpsAgent(options);
  return {
    http,
    https,
    destroy() {
      http.destroy();
      https.destroy();
    },
  };
}

export interface OutboundRequest {
  method: 'GET' | 'POST' | 'PUT';
  headers: Record<string, string>;
  body?: Buffer;
  signal: AbortSignal;
  /** Responses longer than this fail with code ETOOLARGE, and the connection is dropped. */
  maxBytes: number;
}

export interface OutboundResponse {
  status: number;
  body: Buffer;
}

export function sendOutbound(agents: OutboundAgents, target: string, init: OutboundRequest): Promise<OutboundResponse> {
  return new Promise((resolve, reject) => {
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      return reject(new Error('invalid URL'));
    }
    const secure = url.protocol === 'https:';
    if (!secure && url.protocol !== 'http:') return reject(new Error(`unsupported scheme ${url.protocol}`));
    const headers: Record<string, string | number> = { ...init.headers };
    if (init.body) headers['content-length'] = init.body.length;
    const options = {
      method: init.method,
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port || (secure ? 443 : 80),
      path: url.pathname + url.search,
      headers,
      signal: init.signal,
    };
    const req = secure ? httpsRequest({ ...options, agent: agents.https }) : httpRequest({ ...options, agent: agents.http });
    let settled = false;
    const fail = (err: Error) => {
      if (!settled) {
        settled = true;
        reject(err);
      }
      req.destroy();
    };
    req.on('error', fail);
    req.on('response', (res) => {
      const declared = Number(res.headers['content-length']);
      const tooLarge = () => fail(Object.assign(new Error('response too large'), { code: 'ETOOLARGE' }));
      if (Number.isFinite(declared) && declared > init.maxBytes) return tooLarge();
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > init.maxBytes) return tooLarge();
        chunks.push(chunk);
      });
      res.on('end', () => {
        if (settled) return;
        settled = true;
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) });
      });
      res.on('error', fail);
      res.on('aborted', () => fail(new Error('response aborted')));
    });
    req.end(init.body);
  });
}
