import { MatrixError } from '../errors.js';

// A /sync token carries one stream position per topic behind a version prefix (docs/architecture.md, "Sync"):
//   s1_<timeline>_<accountData>_<toDevice>_<deviceLists>_<receipts>_<typing>_<presence>_<peeks>
// New topics are appended at the end; an older token simply lacks them and reads as 0 there. The timeline
// position comes first because RoomReader.resolveToken reads it (`/^s\d+_(\d+)/`) for /messages.
export const SYNC_TOPICS = ['timeline', 'accountData', 'toDevice', 'deviceLists', 'receipts', 'typing', 'presence', 'peeks'] as const;

export type SyncTopic = (typeof SYNC_TOPICS)[number];

export type SyncPositions = Record<SyncTopic, number>;

const TOKEN_VERSION = 1;

export function zeroPositions(): SyncPositions {
  return Object.fromEntries(SYNC_TOPICS.map((t) => [t, 0])) as SyncPositions;
}

export function encodeSyncToken(p: SyncPositions): string {
  return `s${TOKEN_VERSION}_${SYNC_TOPICS.map((t) => Math.max(0, Math.floor(p[t]))).join('_')}`;
}

/** Tolerant: missing trailing positions read as 0, extra ones are ignored. Garbage is M_INVALID_PARAM. */
export function parseSyncToken(token: string): SyncPositions {
  const m = /^s(\d+)_(\d+(?:_\d+)*)$/.exec(token);
  if (!m || Number(m[1]) !== TOKEN_VERSION) throw new MatrixError('M_INVALID_PARAM', 'Invalid since token');
  const parts = m[2]!.split('_').map(Number);
  const out = zeroPositions();
  SYNC_TOPICS.forEach((t, i) => {
    const v = parts[i];
    if (v !== undefined) {
      if (!Number.isSafeInteger(v)) throw new MatrixError('M_INVALID_PARAM', 'Invalid since token');
      out[t] = v;
    }
  });
  return out;
}

/** Per-topic maximum: a response never moves a client's position backwards. */
export function maxPositions(a: SyncPositions, b: SyncPositions): SyncPositions {
  const out = zeroPositions();
  for (const t of SYNC_TOPICS) out[t] = Math.max(a[t], b[t]);
  return out;
}
