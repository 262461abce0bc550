import { describe, expect, it } from 'vitest';
import { visibilityForEvent, type HistoryVisibility } from '../../src/rooms/visibility.js';

// Spec: "History visibility"; a history_visibility change is seen from both sides of the boundary (as Synapse).
describe('visibilityForEvent', () => {
  const hv = (v: string) => ({ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: v } });
  const cases: Array<[HistoryVisibility, { type: string; state_key?: string; content: Record<string, unknown> }, HistoryVisibility]> = [
    ['shared', hv('joined'), 'shared'],
    ['joined', hv('invited'), 'invited'],
    ['invited', hv('shared'), 'shared'],
    ['shared', hv('world_readable'), 'world_readable'],
    ['world_readable', hv('joined'), 'world_readable'],
    ['joined', hv('nonsense'), 'shared'],
    ['joined', { type: 'm.room.message', content: { history_visibility: 'world_readable' } }, 'joined'],
    ['joined', { type: 'm.room.history_visibility', state_key: 'x', content: { history_visibility: 'world_readable' } }, 'joined'],
  ];
  it.each(cases)('before %s, event %j → %s', (before, event, expected) => {
    expect(visibilityForEvent(before, event)).toBe(expected);
  });
});
