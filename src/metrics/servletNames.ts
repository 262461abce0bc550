// Synapse's servlet class names for the busiest endpoints, so the `servlet` label matches its dashboard's
// panels (e.g. "event send time" filters on RoomSendEventRestServlet); other routes are named by path.
const SYNAPSE_SERVLETS: ReadonlyMap<string, string> = new Map([
  ['/_matrix/client/v3/rooms/:roomId/send/:eventType/:txnId', 'RoomSendEventRestServlet'],
  ['/_matrix/client/v3/rooms/:roomId/send/:eventType', 'RoomSendEventRestServlet'],
  ['/_matrix/client/v3/rooms/:roomId/state/:eventType{/:stateKey}', 'RoomStateEventRestServlet'],
  ['/_matrix/client/v3/sync', 'SyncRestServlet'],
  ['/_matrix/client/v3/rooms/:roomId/messages', 'RoomMessageListRestServlet'],
  ['/_matrix/client/v3/createRoom', 'RoomCreateRestServlet'],
  ['/_matrix/client/v3/join/:roomIdOrAlias', 'JoinRoomAliasServlet'],
  ['/_matrix/client/v3/login', 'LoginRestServlet'],
  ['/_matrix/client/v3/register', 'RegisterRestServlet'],
  ['/_matrix/client/v3/keys/upload', 'KeyUploadServlet'],
  ['/_matrix/client/v3/keys/query', 'KeyQueryServlet'],
  ['/_matrix/client/v3/keys/claim', 'OneTimeKeyServlet'],
  ['/_matrix/client/v3/sendToDevice/:eventType/:txnId', 'SendToDeviceRestServlet'],
  ['/_matrix/client/v3/rooms/:roomId/receipt/:receiptType/:eventId', 'ReceiptRestServlet'],
  ['/_matrix/client/v3/rooms/:roomId/typing/:userId', 'RoomTypingRestServlet'],
  ['/_matrix/client/v3/presence/:userId/status', 'PresenceStatusRestServlet'],
  ['/_matrix/federation/v1/send/:txnId', 'FederationSendServlet'],
]);

/** The `servlet` label of a route: Synapse's class name where there is one, else the route's path. */
export function servletName(prefix: string, path: string): string {
  const full = prefix.replace('/_matrix/client/r0', '/_matrix/client/v3') + path;
  return SYNAPSE_SERVLETS.get(full) ?? full;
}
