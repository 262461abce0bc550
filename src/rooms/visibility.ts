// Spec: Client-Server API, "History visibility" — pure decisions, fed with state looked up elsewhere.
export type HistoryVisibility = 'world_readable' | 'shared' | 'invited' | 'joined';

export function parseHistoryVisibility(value: unknown): HistoryVisibility {
  return value === 'world_readable' || value === 'invited' || value === 'joined' || value === 'shared' ? value : 'shared';
}

export interface VisibilityInput {
  /** m.room.history_visibility in the state at the event. */
  visibility: HistoryVisibility;
  /** The user's membership in the state at the event. */
  membershipAtEvent: string | undefined;
  /** The user's current membership in the room. */
  currentMembership: string | undefined;
  /** The event is the user's own membership event. */
  isOwnMembership: boolean;
}

export function canSeeEvent(input: VisibilityInput): boolean {
  if (input.isOwnMembership) return true;
  if (input.visibility === 'world_readable') return true;
  if (input.membershipAtEvent === 'join') return true;
  if (input.visibility === 'shared' && input.currentMembership === 'join') return true;
  if (input.visibility === 'invited' && input.membershipAtEvent === 'invite') return true;
  return false;
}

/** Most permissive first, as Synapse orders them. */
const PERMISSIVENESS: readonly HistoryVisibility[] = ['world_readable', 'shared', 'invited', 'joined'];

/**
 * The visibility that applies to an event: the state before it, except that a history_visibility change
 * is judged by the more permissive of its old and new value, so both sides of the boundary see it (Synapse).
 */
export function visibilityForEvent(before: HistoryVisibility, event: { type: string; state_key?: string | undefined; content: Record<string, unknown> }): HistoryVisibility {
  if (event.type !== 'm.room.history_visibility' || event.state_key !== '') return before;
  const after = parseHistoryVisibility(event.content.history_visibility);
  return PERMISSIVENESS.indexOf(after) < PERMISSIVENESS.indexOf(before) ? after : before;
}
