// Turns one server's sliding-sync answers into a form two servers can share: room ids become the scenario's
// names, the server name becomes HS, event ids/tokens/timestamps become placeholders, and lists whose order
// carries no meaning are sorted. What is left is what a client would notice.

export interface Names {
  serverName: string;
  /** room id → the scenario's name for it */
  rooms: Map<string, string>;
}

const eventId = /^\$[A-Za-z0-9+/_=-]{10,}$/;
/** Opaque tokens a client only hands back: their presence and type matter, not their value. */
const tokenKeys = new Set(['pos', 'prev_batch', 'next_batch', 'since']);
/** Numbers that differ from run to run. */
const numberKeys = new Set(['origin_server_ts', 'ts', 'bump_stamp', 'age']);
/** Arrays whose order the MSC leaves open: compared as sets. */
const unorderedKeys = new Set(['required_state', 'invite_state', 'changed', 'left', 'global', 'user_ids', 'device_unused_fallback_key_types']);

function text(s: string, names: Names): string {
  if (eventId.test(s)) return '$EVENT';
  if (names.rooms.has(s)) return `!${names.rooms.get(s)}`;
  let out = s;
  for (const [id, name] of names.rooms) out = out.split(id).join(`!${name}`);
  return out.split(`:${names.serverName}`).join(':HS').replace(new RegExp(`^${names.serverName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`), 'HS');
}

function sortKey(v: unknown): string {
  return JSON.stringify(v);
}

/**
 * bump_stamp values are stream positions, different on every server; their order is what a client sorts by.
 * Each room's bump_stamp becomes its rank among the rooms of the same answer (1 = most recent).
 */
export function rankBumpStamps(body: unknown): unknown {
  const rooms = (body as { rooms?: Record<string, { bump_stamp?: unknown }> } | undefined)?.rooms;
  if (!rooms || typeof rooms !== 'object') return body;
  const stamps = [...new Set(Object.values(rooms).map((r) => r?.bump_stamp).filter((v): v is number => typeof v === 'number'))].sort((a, b) => b - a);
  const out = structuredClone(rooms);
  for (const room of Object.values(out)) if (typeof room?.bump_stamp === 'number') room.bump_stamp = `rank ${stamps.indexOf(room.bump_stamp) + 1}`;
  return { ...(body as object), rooms: out };
}

/** A deep copy with ids, tokens and timestamps replaced (see above). */
export function normalise(value: unknown, names: Names, key = ''): unknown {
  if (typeof value === 'string') {
    if (tokenKeys.has(key)) return 'TOKEN';
    return text(value, names);
  }
  if (typeof value === 'number') return numberKeys.has(key) ? 'NUMBER' : value;
  if (Array.isArray(value)) {
    const items = value.map((v) => normalise(v, names));
    return unorderedKeys.has(key) ? items.sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : sortKey(a) > sortKey(b) ? 1 : 0)) : items;
  }
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    // An error's text is for humans and differs between servers; its errcode is what clients act on.
    if ('errcode' in value && 'error' in value) return { errcode: normalise((value as { errcode: unknown }).errcode, names), error: 'TEXT' };
    for (const k of Object.keys(value).sort()) out[text(k, names)] = normalise((value as Record<string, unknown>)[k], names, k);
    return out;
  }
  return value;
}

/** Paths where two normalised values differ, with both sides, for a readable failure and the report. */
export function differences(a: unknown, b: unknown, path = ''): string[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  const bothObjects = a && b && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b);
  if (!bothObjects) return [`${path || '(root)'}: ${JSON.stringify(a)} ≠ ${JSON.stringify(b)}`];
  if (Array.isArray(a) && Array.isArray(b) && a.length !== b.length) return [`${path}: ${JSON.stringify(a)} ≠ ${JSON.stringify(b)}`];
  const keys = new Set([...Object.keys(a as object), ...Object.keys(b as object)]);
  const out: string[] = [];
  for (const k of keys) {
    const x = (a as Record<string, unknown>)[k];
    const y = (b as Record<string, unknown>)[k];
    const sub = `${path}${Array.isArray(a) ? `[${k}]` : `.${k}`}`;
    if (x === undefined) out.push(`${sub}: (absent) ≠ ${JSON.stringify(y)}`);
    else if (y === undefined) out.push(`${sub}: ${JSON.stringify(x)} ≠ (absent)`);
    else out.push(...differences(x, y, sub));
  }
  return out;
}
