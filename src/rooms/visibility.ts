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
