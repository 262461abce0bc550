import { randomUUID } from 'node:crypto';
import type { Json, MatrixSide } from '../matrix/matrixSide.js';
import { MatrixApiError } from '../matrix/homeserverApi.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Sends with one transaction id across retries, so a homeserver hiccup never duplicates a message. */
export async function sendWithRetry(matrix: MatrixSide, userId: string, roomId: string, type: string, content: Json, attempts = 6): Promise<string> {
  const txnId = randomUUID();
  for (let i = 1; ; i++) {
    try {
      return await matrix.send(userId, roomId, type, content, txnId);
    } catch (err) {
      const transient = err instanceof MatrixApiError && (err.status === 0 || err.status === 429 || err.status >= 500);
      if (!transient || i >= attempts) throw err;
      await sleep(err.retryAfterMs ?? Math.min(500 * 2 ** i, 10_000));
    }
  }
}
