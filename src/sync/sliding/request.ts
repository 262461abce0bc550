import { z } from 'zod';

// The MSC4186 request body (Synapse's SlidingSyncBody is the reference for what is required and its limits).
// Keys that come from the client (list names, room ids) end up in Maps, never as plain-object keys.

const stateKeyPair = z.tuple([z.string().max(255), z.string().max(255)]);

const roomParameters = {
  required_state: z.array(stateKeyPair).max(1_000),
  timeline_limit: z.number().int().min(0).max(1_000),
};

const nullableStrings = z.array(z.string().max(255).nullable()).max(100);

const listFilters = z.looseObject({
  is_dm: z.boolean().optional(),
  spaces: z.array(z.string().max(255)).max(100).optional(),
  is_encrypted: z.boolean().optional(),
  is_invite: z.boolean().optional(),
  room_types: nullableStrings.optional(),
  not_room_types: nullableStrings.optional(),
  room_name_like: z.string().max(255).optional(),
  tags: z.array(z.string().max(255)).max(100).optional(),
  not_tags: z.array(z.string().max(255)).max(100).optional(),
});

const rangeBound = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

const list = z.looseObject({
  ...roomParameters,
  ranges: z.array(z.tuple([rangeBound, rangeBound])).max(100).optional(),
  slow_get_all_rooms: z.boolean().optional(),
  filters: listFilters.nullable().optional(),
});

const scopedExtension = z.looseObject({
  enabled: z.boolean().nullable().optional(),
  lists: z.array(z.string().max(255)).max(1_000).nullable().optional(),
  rooms: z.array(z.string().max(255)).max(1_000).nullable().optional(),
});

const extensions = z.looseObject({
  to_device: z
    .looseObject({
      enabled: z.boolean().nullable().optional(),
      limit: z.number().int().min(0).max(1_000).optional(),
      since: z.string().regex(/^\d{1,15}$/, 'must be the next_batch of an earlier answer').nullable().optional(),
    })
    .nullable()
    .optional(),
  e2ee: z.looseObject({ enabled: z.boolean().nullable().optional() }).nullable().optional(),
  account_data: scopedExtension.nullable().optional(),
  receipts: scopedExtension.nullable().optional(),
  typing: scopedExtension.nullable().optional(),
});

export const slidingSyncBody = z.looseObject({
  conn_id: z.string().max(255).nullable().optional(),
  lists: z
    .record(z.string().max(64), list)
    .nullable()
    .optional()
    .refine((v) => !v || Object.keys(v).length <= 100, 'at most 100 lists'),
  room_subscriptions: z
    .record(z.string().max(255), z.looseObject(roomParameters))
    .nullable()
    .optional()
    .refine((v) => !v || Object.keys(v).length <= 1_000, 'at most 1000 room subscriptions'),
  extensions: extensions.nullable().optional(),
});

export type SlidingSyncBody = z.infer<typeof slidingSyncBody>;

export const slidingSyncQuery = z.looseObject({
  pos: z.string().max(512).optional(),
  timeout: z
    .string()
    .regex(/^\d{1,10}$/, 'must be a non-negative integer')
    .transform(Number)
    .optional(),
});

/** What a room's entry is built with: the larger of every list and subscription that includes it. */
export interface RoomConfig {
  timelineLimit: number;
  /** Event type → state keys ("*", "$LAZY", "$ME" or literal). */
  requiredState: Map<string, Set<string>>;
}

export type ListFilters = z.infer<typeof listFilters>;

export interface ListRequest {
  name: string;
  /** Inclusive index pairs; undefined: every room (slow_get_all_rooms). Without either the window is empty, as Synapse. */
  ranges: Array<[number, number]> | undefined;
  filters: ListFilters | undefined;
  config: RoomConfig;
}

export interface ScopedExtension {
  /** Undefined: every list (or every room of the answer). */
  lists: ReadonlySet<string> | undefined;
  rooms: ReadonlySet<string> | undefined;
}

export interface ExtensionsRequest {
  toDevice?: { limit: number; since: number | undefined };
  e2ee?: true;
  accountData?: ScopedExtension;
  receipts?: ScopedExtension;
  typing?: ScopedExtension;
}

export interface SlidingSyncRequest {
  connId: string;
  lists: ListRequest[];
  subscriptions: Map<string, RoomConfig>;
  extensions: ExtensionsRequest;
}

export function roomConfig(p: { timeline_limit: number; required_state: Array<[string, string]> }): RoomConfig {
  const requiredState = new Map<string, Set<string>>();
  for (const [type, stateKey] of p.required_state) {
    let keys = requiredState.get(type);
    if (!keys) requiredState.set(type, (keys = new Set()));
    keys.add(stateKey);
  }
  return { timelineLimit: p.timeline_limit, requiredState };
}

function scoped(e: z.infer<typeof scopedExtension> | null | undefined): ScopedExtension | undefined {
  if (!e?.enabled) return undefined;
  const set = (v: string[] | null | undefined) => (!v || v.includes('*') ? undefined : new Set(v));
  return { lists: set(e.lists), rooms: set(e.rooms) };
}

/** The parsed body as the service uses it. */
export function toRequest(body: SlidingSyncBody): SlidingSyncRequest {
  const lists: ListRequest[] = [];
  for (const [name, l] of Object.entries(body.lists ?? {})) {
    lists.push({
      name,
      ranges: l.slow_get_all_rooms ? undefined : (l.ranges ?? []),
      filters: l.filters ?? undefined,
      config: roomConfig(l),
    });
  }
  const subscriptions = new Map<string, RoomConfig>();
  for (const [roomId, s] of Object.entries(body.room_subscriptions ?? {})) subscriptions.set(roomId, roomConfig(s));
  const ext = body.extensions ?? {};
  const extensions: ExtensionsRequest = {};
  if (ext.to_device?.enabled) {
    extensions.toDevice = { limit: ext.to_device.limit ?? 100, since: ext.to_device.since ? Number(ext.to_device.since) : undefined };
  }
  if (ext.e2ee?.enabled) extensions.e2ee = true;
  const accountData = scoped(ext.account_data);
  if (accountData) extensions.accountData = accountData;
  const receipts = scoped(ext.receipts);
  if (receipts) extensions.receipts = receipts;
  const typing = scoped(ext.typing);
  if (typing) extensions.typing = typing;
  return { connId: body.conn_id ?? '', lists, subscriptions, extensions };
}
