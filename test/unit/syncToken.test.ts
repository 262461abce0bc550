import { describe, expect, it } from 'vitest';
import { MatrixError } from '../../src/errors.js';
import { streamPositionOfSyncToken } from '../../src/rooms/roomReader.js';
import { matchesEventFilter, roomAllowed, timelineLimit } from '../../src/sync/filter.js';
import { parseFilter } from '../../src/sync/filterService.js';
import { SYNC_TOPICS, encodeSyncToken, maxPositions, parseSyncToken, zeroPositions } from '../../src/sync/token.js';

describe('sync tokens', () => {
  it('round-trips every topic position behind the version prefix', () => {
    const p = { timeline: 42, accountData: 7, toDevice: 3, deviceLists: 9, receipts: 11, typing: 2, presence: 5, peeks: 4 };
    const token = encodeSyncToken(p);
    expect(token).toBe('s1_42_7_3_9_11_2_5_4');
    expect(parseSyncToken(token)).toEqual(p);
    expect(SYNC_TOPICS[0]).toBe('timeline');
    // /messages reads the timeline position out of a sync token.
    expect(streamPositionOfSyncToken(token)).toBe(42);
  });

  it('parses tolerantly: missing positions are 0, extra ones are ignored', () => {
    expect(parseSyncToken('s1_5')).toEqual({ ...zeroPositions(), timeline: 5 });
    expect(parseSyncToken('s1_5_6_0_0_0_0_0_0_99_100')).toEqual({ ...zeroPositions(), timeline: 5, accountData: 6 });
  });

  it.each(['', 'garbage', 's1_', 's1_x', 's2_1_2', 't5_3', 's1_1__2', 's1_-1', 's1_99999999999999999999'])('rejects %j with M_INVALID_PARAM', (token) => {
    expect(() => parseSyncToken(token)).toThrow(MatrixError);
    try {
      parseSyncToken(token);
    } catch (err) {
      expect((err as MatrixError).errcode).toBe('M_INVALID_PARAM');
      expect((err as MatrixError).status).toBe(400);
    }
  });

  it('never moves a position backwards', () => {
    const a = { ...zeroPositions(), timeline: 10, accountData: 1 };
    const b = { ...zeroPositions(), timeline: 5, accountData: 3 };
    expect(maxPositions(a, b)).toEqual({ ...zeroPositions(), timeline: 10, accountData: 3 });
  });
});

describe('sync filters', () => {
  it('validates the shape', () => {
    expect(parseFilter({ room: { timeline: { limit: 5, types: ['m.*'] } } }, 'M_BAD_JSON').room?.timeline?.limit).toBe(5);
    expect(() => parseFilter({ room: { timeline: { limit: -1 } } }, 'M_BAD_JSON')).toThrow(/limit/);
    expect(() => parseFilter({ presence: { senders: 'x' } }, 'M_BAD_JSON')).toThrow(MatrixError);
    expect(() => parseFilter([], 'M_BAD_JSON')).toThrow(MatrixError);
  });

  it('matches event types with wildcards and senders', () => {
    expect(matchesEventFilter({ type: 'm.tag' }, { types: ['m.*'] })).toBe(true);
    expect(matchesEventFilter({ type: 'org.x' }, { types: ['m.*'] })).toBe(false);
    expect(matchesEventFilter({ type: 'm.tag' }, { not_types: ['m.tag'] })).toBe(false);
    expect(matchesEventFilter({ type: 'm.presence', sender: '@a:x' }, { not_senders: ['@a:x'] })).toBe(false);
    expect(matchesEventFilter({ type: 'm.presence', sender: '@a:x' }, undefined)).toBe(true);
  });

  it('applies room lists and the timeline limit', () => {
    expect(roomAllowed({ room: { rooms: ['!a:x'] } }, '!a:x')).toBe(true);
    expect(roomAllowed({ room: { rooms: ['!a:x'] } }, '!b:x')).toBe(false);
    expect(roomAllowed({ room: { not_rooms: ['!a:x'] } }, '!a:x')).toBe(false);
    expect(timelineLimit({})).toBe(10);
    expect(timelineLimit({ room: { timeline: { limit: 3 } } })).toBe(3);
    expect(timelineLimit({ room: { timeline: { limit: 1_000_000 } } })).toBe(1000);
  });
});
