import { connect as netConnect, isIP, isIPv6, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export interface SocketOptions {
  host: string;
  port: number;
  tls: boolean;
  tlsInsecure: boolean;
  tlsCa?: string;
  /** PEM client certificate and key (CertFP, SASL EXTERNAL). */
  clientCert?: { cert: string; key: string };
  localAddress?: string;
  timeoutMs: number;
}

/**
 * Before we say anything, a server that refuses us (per-host limits, K-lines, throttling) writes its ERROR and
 * closes. Writing our registration into that socket makes its kernel answer with a reset that can destroy
 * those words, so the first bytes are held back this long.
 */
const LISTEN_FIRST_MS = 150;

/** A connected (TLS-verified) socket, handed to the IRC client once the server had the first word. */
export function openIrcSocket(o: SocketOptions): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const family = o.localAddress ? (isIPv6(o.localAddress) ? 6 : 4) : undefined;
    const common = { host: o.host, port: o.port, ...(o.localAddress ? { localAddress: o.localAddress, family } : {}) };
    const socket: Socket = o.tls
      ? tlsConnect({
          ...common,
          servername: isIP(o.host) ? undefined : o.host,
          rejectUnauthorized: !o.tlsInsecure,
          ...(o.tlsCa ? { ca: o.tlsCa } : {}),
          ...(o.clientCert ? { cert: o.clientCert.cert, key: o.clientCert.key } : {}),
        })
      : netConnect(common);
    const timer = setTimeout(() => socket.destroy(new Error(`connecting to ${o.host}:${o.port} timed out`)), o.timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      reject(err);
    };
    socket.once('error', fail);
    socket.once(o.tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      // Unread data stays buffered in the (paused) socket for the client to read.
      setTimeout(() => {
        socket.off('error', fail);
        resolve(socket);
      }, LISTEN_FIRST_MS);
    });
  });
}
