// Push rule evaluation (spec: Client-Server API, "Push Notifications" → "Push Rules", "Conditions",
// "Predefined Rules"). Pure: no I/O. The caller supplies what the conditions need to know about the room.
import { dict } from '../util/dict.js';

export const RULE_KINDS = ['override', 'content', 'room', 'sender', 'underride'] as const;
export type RuleKind = (typeof RULE_KINDS)[number];

export function isRuleKind(s: string): s is RuleKind {
  return (RULE_KINDS as readonly string[]).includes(s);
}

/** `"notify"`, the obsolete `"dont_notify"`/`"coalesce"`, or `{ set_tweak, value? }`. Unknown actions are kept. */
export type PushAction = string | { set_tweak: string; value?: unknown; [key: string]: unknown };

export interface PushCondition {
  kind: string;
  key?: string;
  pattern?: string;
  value?: unknown;
  is?: string;
  [key: string]: unknown;
}

export interface PushRule {
  rule_id: string;
  default: boolean;
  enabled: boolean;
  actions: PushAction[];
  /** override / underride only. */
  conditions?: PushCondition[];
  /** content only. */
  pattern?: string;
}

export type Ruleset = Record<RuleKind, PushRule[]>;

/** What the conditions need to know about the room and the user the event is evaluated for. */
export interface EvaluationContext {
  userId: string;
  /** The user's display name in the room (their member event), for `contains_display_name`. */
  displayName?: string | undefined;
  /** Joined members of the room, for `room_member_count`. */
  memberCount: number;
  /** The sender's power level, for `sender_notification_permission`. */
  senderPowerLevel: number;
  /** `notifications.<key>` of the power levels (default 50). */
  notificationPowerLevel(key: string): number;
}

/** The event as it is matched: the client-visible top level (type, content, sender, room_id, state_key …). */
export type PushEvent = Record<string, unknown>;

export interface Evaluation {
  ruleId: string;
  kind: RuleKind;
  actions: PushAction[];
  notify: boolean;
  highlight: boolean;
  /** Every `set_tweak` of the actions, `highlight` resolved to a boolean. */
  tweaks: Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------
// Predefined rules

const SOUND_DEFAULT = { set_tweak: 'sound', value: 'default' } as const;
const HIGHLIGHT = { set_tweak: 'highlight' } as const;

/** Rules removed from the spec in v1.17 (MSC4210) that older clients may still expect. */
export const LEGACY_MENTION_RULES = new Set(['.m.rule.contains_display_name', '.m.rule.roomnotif', '.m.rule.contains_user_name']);

function rule(rule_id: string, conditions: PushCondition[], actions: PushAction[], enabled = true): PushRule {
  return { rule_id, default: true, enabled, conditions, actions };
}

function localpartOf(userId: string): string {
  const colon = userId.indexOf(':');
  return userId.slice(1, colon === -1 ? undefined : colon);
}

export interface DefaultRulesOptions {
  /**
   * Also serve `.m.rule.contains_display_name`, `.m.rule.roomnotif` and `.m.rule.contains_user_name`, which
   * the spec carried (deprecated since v1.7, applied only to events without `m.mentions`) until v1.17.
   */
  legacyMentions?: boolean;
}

/**
 * The server-default ruleset for a user, in priority order, as of spec v1.19 ("Predefined Rules").
 * A fresh copy on every call: callers may change `enabled`/`actions`.
 */
export function defaultRuleset(userId: string, options: DefaultRulesOptions = {}): Ruleset {
  const legacy = options.legacyMentions === true;
  const override: PushRule[] = [
    rule('.m.rule.master', [], [], false),
    rule('.m.rule.suppress_notices', [{ kind: 'event_match', key: 'content.msgtype', pattern: 'm.notice' }], []),
    rule(
      '.m.rule.invite_for_me',
      [
        { kind: 'event_match', key: 'type', pattern: 'm.room.member' },
        { kind: 'event_match', key: 'content.membership', pattern: 'invite' },
        { kind: 'event_match', key: 'state_key', pattern: userId },
      ],
      ['notify', { ...SOUND_DEFAULT }],
    ),
    rule('.m.rule.member_event', [{ kind: 'event_match', key: 'type', pattern: 'm.room.member' }], []),
    rule(
      '.m.rule.is_user_mention',
      [{ kind: 'event_property_contains', key: 'content.m\\.mentions.user_ids', value: userId }],
      ['notify', { ...SOUND_DEFAULT }, { ...HIGHLIGHT }],
    ),
    ...(legacy ? [rule('.m.rule.contains_display_name', [{ kind: 'contains_display_name' }], ['notify', { ...SOUND_DEFAULT }, { ...HIGHLIGHT }])] : []),
    rule(
      '.m.rule.is_room_mention',
      [
        { kind: 'event_property_is', key: 'content.m\\.mentions.room', value: true },
        { kind: 'sender_notification_permission', key: 'room' },
      ],
      ['notify', { ...HIGHLIGHT }],
    ),
    ...(legacy
      ? [
          rule(
            '.m.rule.roomnotif',
            [
              { kind: 'event_match', key: 'content.body', pattern: '@room' },
              { kind: 'sender_notification_permission', key: 'room' },
            ],
            ['notify', { ...HIGHLIGHT }],
          ),
        ]
      : []),
    rule(
      '.m.rule.tombstone',
      [
        { kind: 'event_match', key: 'type', pattern: 'm.room.tombstone' },
        { kind: 'event_match', key: 'state_key', pattern: '' },
      ],
      ['notify', { ...HIGHLIGHT }],
    ),
    rule('.m.rule.reaction', [{ kind: 'event_match', key: 'type', pattern: 'm.reaction' }], []),
    rule(
      '.m.rule.room.server_acl',
      [
        { kind: 'event_match', key: 'type', pattern: 'm.room.server_acl' },
        { kind: 'event_match', key: 'state_key', pattern: '' },
      ],
      [],
    ),
    rule('.m.rule.suppress_edits', [{ kind: 'event_property_is', key: 'content.m\\.relates_to.rel_type', value: 'm.replace' }], []),
  ];
  const content: PushRule[] = legacy
    ? [
        {
          rule_id: '.m.rule.contains_user_name',
          default: true,
          enabled: true,
          pattern: localpartOf(userId),
          actions: ['notify', { ...SOUND_DEFAULT }, { ...HIGHLIGHT }],
        },
      ]
    : [];
  const underride: PushRule[] = [
    rule('.m.rule.call', [{ kind: 'event_match', key: 'type', pattern: 'm.call.invite' }], ['notify', { set_tweak: 'sound', value: 'ring' }]),
    rule(
      '.m.rule.encrypted_room_one_to_one',
      [
        { kind: 'room_member_count', is: '2' },
        { kind: 'event_match', key: 'type', pattern: 'm.room.encrypted' },
      ],
      ['notify', { ...SOUND_DEFAULT }],
    ),
    rule(
      '.m.rule.room_one_to_one',
      [
        { kind: 'room_member_count', is: '2' },
        { kind: 'event_match', key: 'type', pattern: 'm.room.message' },
      ],
      ['notify', { ...SOUND_DEFAULT }],
    ),
    rule('.m.rule.message', [{ kind: 'event_match', key: 'type', pattern: 'm.room.message' }], ['notify']),
    rule('.m.rule.encrypted', [{ kind: 'event_match', key: 'type', pattern: 'm.room.encrypted' }], ['notify']),
  ];
  return { override, content, room: [], sender: [], underride };
}

/**
 * The user's ruleset: server-default rules (with the user's `enabled`/`actions` changes applied) and
 * user-defined rules. `.m.rule.master` comes first; user-defined rules of a kind come before the other
 * server-default rules of that kind (spec: "Push Rules").
 */
export function mergeRulesets(defaults: Ruleset, user: Ruleset): Ruleset {
  const out = {} as Ruleset;
  for (const kind of RULE_KINDS) {
    const d = defaults[kind];
    const u = user[kind];
    if (kind === 'override') {
      const master = d.filter((r) => r.rule_id === '.m.rule.master');
      // prototype-safe: kind is one of RULE_KINDS
      out[kind] = [...master, ...u, ...d.filter((r) => r.rule_id !== '.m.rule.master')];
    } else {
      out[kind] = [...u, ...d]; // prototype-safe: kind is one of RULE_KINDS
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Dotted paths

/**
 * Splits a condition key into property names: `.` separates, `\.` is a literal dot, `\\` a literal
 * backslash, and any other backslash is itself (spec: "Conditions", dotted keys).
 */
export function splitKey(key: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < key.length; i++) {
    const c = key[i]!;
    if (c === '\\') {
      const next = key[i + 1];
      if (next === '.' || next === '\\') {
        current += next;
        i++;
      } else {
        current += c;
      }
    } else if (c === '.') {
      parts.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  parts.push(current);
  return parts;
}

/** The value at a dotted key, or undefined when a step is missing or not an object. */
export function valueAtKey(event: PushEvent, key: string): unknown {
  let cursor: unknown = event;
  for (const part of splitKey(key)) {
    if (cursor === null || typeof cursor !== 'object' || Array.isArray(cursor)) return undefined;
    if (!Object.hasOwn(cursor, part)) return undefined;
    cursor = (cursor as Record<string, unknown>)[part];
  }
  return cursor;
}

// ---------------------------------------------------------------------------------------------
// Globs

const WORD_CHAR = 'A-Za-z0-9_';
const globCache = new Map<string, RegExp>();

function globToRegexSource(glob: string): string {
  let out = '';
  for (const c of glob) {
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else out += c.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
  }
  return out;
}

function compiled(glob: string, wordBoundary: boolean, literal = false): RegExp {
  const cacheKey = `${wordBoundary ? 'w' : 'x'}${literal ? 'l' : 'g'}${glob}`;
  let re = globCache.get(cacheKey);
  if (!re) {
    const body = literal ? glob.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&') : globToRegexSource(glob);
    re = wordBoundary ? new RegExp(`(?:^|[^${WORD_CHAR}])${body}(?:[^${WORD_CHAR}]|$)`, 'is') : new RegExp(`^${body}$`, 'is');
    if (globCache.size > 5000) globCache.clear();
    globCache.set(cacheKey, re);
  }
  return re;
}

/**
 * `event_match` semantics: case-insensitive glob (`*`, `?`) matching the whole value, except for
 * `content.body`, where the pattern may match any run of the body that starts and ends at word boundaries
 * (a boundary is the start or end of the value, or any character other than A-Z, a-z, 0-9 and _).
 */
export function globMatches(pattern: string, value: string, wordBoundary: boolean): boolean {
  return compiled(pattern, wordBoundary).test(value);
}

// ---------------------------------------------------------------------------------------------
// Conditions

function roomMemberCountMatches(is: unknown, count: number): boolean {
  if (typeof is !== 'string') return false;
  const m = /^(==|<=|>=|<|>)?([0-9]+)$/.exec(is);
  if (!m) return false;
  const n = Number(m[2]);
  switch (m[1] ?? '==') {
    case '==':
      return count === n;
    case '<':
      return count < n;
    case '>':
      return count > n;
    case '<=':
      return count <= n;
    case '>=':
      return count >= n;
    default:
      return false;
  }
}

function isScalar(v: unknown): v is string | number | boolean | null {
  return v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isInteger(v));
}

/** One condition against an event; unknown kinds never match (spec: "Conditions"). */
export function conditionMatches(condition: PushCondition, event: PushEvent, ctx: EvaluationContext): boolean {
  switch (condition.kind) {
    case 'event_match': {
      if (typeof condition.key !== 'string' || typeof condition.pattern !== 'string') return false;
      const value = valueAtKey(event, condition.key);
      if (typeof value !== 'string') return false;
      return globMatches(condition.pattern, value, condition.key === 'content.body');
    }
    case 'event_property_is': {
      if (typeof condition.key !== 'string' || !isScalar(condition.value)) return false;
      const value = valueAtKey(event, condition.key);
      return isScalar(value) && value === condition.value;
    }
    case 'event_property_contains': {
      if (typeof condition.key !== 'string' || !isScalar(condition.value)) return false;
      const value = valueAtKey(event, condition.key);
      return Array.isArray(value) && value.some((v) => isScalar(v) && v === condition.value);
    }
    case 'contains_display_name': {
      const name = ctx.displayName;
      if (!name) return false;
      const body = valueAtKey(event, 'content.body');
      if (typeof body !== 'string') return false;
      return compiled(name, true, true).test(body);
    }
    case 'room_member_count':
      return roomMemberCountMatches(condition.is, ctx.memberCount);
    case 'sender_notification_permission': {
      if (typeof condition.key !== 'string') return false;
      return ctx.senderPowerLevel >= ctx.notificationPowerLevel(condition.key);
    }
    default:
      return false;
  }
}

/** The conditions a rule of `kind` stands for: room and sender rules match on their id, content rules on body. */
export function effectiveConditions(kind: RuleKind, r: PushRule): PushCondition[] | undefined {
  switch (kind) {
    case 'override':
    case 'underride':
      return r.conditions ?? [];
    case 'content':
      return typeof r.pattern === 'string' ? [{ kind: 'event_match', key: 'content.body', pattern: r.pattern }] : undefined;
    case 'room':
      return [{ kind: 'event_match', key: 'room_id', pattern: r.rule_id }];
    case 'sender':
      return [{ kind: 'event_match', key: 'sender', pattern: r.rule_id }];
  }
}

export function ruleMatches(kind: RuleKind, r: PushRule, event: PushEvent, ctx: EvaluationContext): boolean {
  // Since v1.7 the legacy mention rules apply only to events without `m.mentions` (MSC3952).
  if (r.default && LEGACY_MENTION_RULES.has(r.rule_id)) {
    const content = event.content;
    if (content && typeof content === 'object' && Object.hasOwn(content, 'm.mentions')) return false;
  }
  const conditions = effectiveConditions(kind, r);
  if (!conditions) return false;
  return conditions.every((c) => conditionMatches(c, event, ctx));
}

/** Tweaks of the actions; `highlight` without a value means true. */
export function tweaksOf(actions: readonly PushAction[]): Record<string, unknown> {
  const tweaks = dict<unknown>();
  for (const a of actions) {
    if (typeof a === 'object' && a !== null && typeof a.set_tweak === 'string') {
      tweaks[a.set_tweak] = a.set_tweak === 'highlight' ? (Object.hasOwn(a, 'value') ? a.value === true : true) : a.value;
    }
  }
  return tweaks;
}

/**
 * The first enabled matching rule in priority order (override, content, room, sender, underride), and
 * what its actions mean. Undefined when no rule matches (no notification). `dont_notify` and `coalesce`
 * are obsolete no-ops (spec v1.7+): only `notify` notifies.
 */
export function evaluate(ruleset: Ruleset, event: PushEvent, ctx: EvaluationContext): Evaluation | undefined {
  for (const kind of RULE_KINDS) {
    for (const r of ruleset[kind]) {
      if (!r.enabled) continue;
      if (!ruleMatches(kind, r, event, ctx)) continue;
      const notify = r.actions.includes('notify');
      const tweaks = tweaksOf(r.actions);
      return { ruleId: r.rule_id, kind, actions: r.actions, notify, highlight: notify && tweaks.highlight === true, tweaks };
    }
  }
  return undefined;
}
