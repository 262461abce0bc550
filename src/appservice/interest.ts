/**
 * Which application services an event concerns (spec: Application Service API, "Registration" —
 * namespaces). Pure: the caller supplies the room's aliases and its members at the event.
 */
import type { AppserviceRegistration, NamespaceEntry } from './registration.js';

export interface EventFacts {
  type: string;
  sender: string;
  roomId: string;
  stateKey?: string | undefined;
}

export interface RoomFacts {
  /** Local aliases pointing at the room. */
  aliases: readonly string[];
  /** Users joined to the room at the event. */
  members: readonly string[];
}

const matches = (entries: readonly NamespaceEntry[], value: string): boolean => entries.some((e) => e.regex.test(value));

/** The service's own sender user (`@sender_localpart:server`). */
export function appserviceSender(reg: Pick<AppserviceRegistration, 'senderLocalpart'>, serverName: string): string {
  return `@${reg.senderLocalpart}:${serverName}`;
}

/** A user in the service's user namespace, or its sender user. */
export function userInNamespace(reg: Pick<AppserviceRegistration, 'namespaces' | 'senderLocalpart'>, userId: string, serverName: string): boolean {
  return userId === appserviceSender(reg, serverName) || matches(reg.namespaces.users, userId);
}

export function aliasInNamespace(reg: Pick<AppserviceRegistration, 'namespaces'>, alias: string): boolean {
  return matches(reg.namespaces.aliases, alias);
}

export function roomInNamespace(reg: Pick<AppserviceRegistration, 'namespaces'>, roomId: string): boolean {
  return matches(reg.namespaces.rooms, roomId);
}

/** A room the service cares about: by id, by alias or by one of its members. */
export function roomInterests(reg: Pick<AppserviceRegistration, 'namespaces' | 'senderLocalpart'>, roomId: string, room: RoomFacts, serverName: string): boolean {
  return (
    roomInNamespace(reg, roomId) ||
    room.aliases.some((a) => aliasInNamespace(reg, a)) ||
    room.members.some((m) => userInNamespace(reg, m, serverName))
  );
}

/**
 * An event interests a service when its sender (or, for a membership event, its state_key) is in the user
 * namespace, or the room interests it (room id, alias or a member at the event in the namespaces).
 */
export function eventInterests(reg: Pick<AppserviceRegistration, 'namespaces' | 'senderLocalpart'>, ev: EventFacts, room: RoomFacts, serverName: string): boolean {
  if (userInNamespace(reg, ev.sender, serverName)) return true;
  if (ev.type === 'm.room.member' && typeof ev.stateKey === 'string' && userInNamespace(reg, ev.stateKey, serverName)) return true;
  return roomInterests(reg, ev.roomId, room, serverName);
}
