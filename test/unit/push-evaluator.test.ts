import { describe, expect, it } from 'vitest';
import {
  conditionMatches,
  defaultRuleset,
  evaluate,
  globMatches,
  mergeRulesets,
  splitKey,
  tweaksOf,
  valueAtKey,
  type EvaluationContext,
  type PushCondition,
  type PushEvent,
  type Ruleset,
} from '../../src/push/evaluator.js';

const ME = '@alice:example.org';
const ROOM = '!room:example.org';

function ctx(over: Partial<EvaluationContext> = {}): EvaluationContext {
  return {
    userId: ME,
    displayName: 'Alice Liddell',
    memberCount: 5,
    senderPowerLevel: 0,
    notificationPowerLevel: () => 50,
    ...over,
  };
}

function msg(content: Record<string, unknown>, over: Record<string, unknown> = {}): PushEvent {
  return { type: 'm.room.message', room_id: ROOM, sender: '@bob:example.org', content: { msgtype: 'm.text', ...content }, ...over };
}

const empty = (): Ruleset => ({ override: [], content: [], room: [], sender: [], underride: [] });

describe('default ruleset (spec v1.19 "Predefined Rules")', () => {
  it('has the spec rules in order, master disabled', () => {
    const rules = defaultRuleset(ME);
    expect(rules.override.map((r) => r.rule_id)).toEqual([
      '.m.rule.master',
      '.m.rule.suppress_notices',
      '.m.rule.invite_for_me',
      '.m.rule.member_event',
      '.m.rule.is_user_mention',
      '.m.rule.is_room_mention',
      '.m.rule.tombstone',
      '.m.rule.reaction',
      '.m.rule.room.server_acl',
      '.m.rule.suppress_edits',
    ]);
    expect(rules.content).toEqual([]);
    expect(rules.underride.map((r) => r.rule_id)).toEqual([
      '.m.rule.call',
      '.m.rule.encrypted_room_one_to_one',
      '.m.rule.room_one_to_one',
      '.m.rule.message',
      '.m.rule.encrypted',
    ]);
    expect(rules.override[0]!.enabled).toBe(false);
    expect([...rules.override, ...rules.underride].every((r) => r.default)).toBe(true);
  });

  it('optionally carries the legacy mention rules at their pre-v1.17 places', () => {
    const rules = defaultRuleset(ME, { legacyMentions: true });
    expect(rules.override.map((r) => r.rule_id).slice(4, 8)).toEqual([
      '.m.rule.is_user_mention',
      '.m.rule.contains_display_name',
      '.m.rule.is_room_mention',
      '.m.rule.roomnotif',
    ]);
    expect(rules.content).toEqual([
      expect.objectContaining({ rule_id: '.m.rule.contains_user_name', pattern: 'alice', default: true, enabled: true }),
    ]);
  });
});

describe('evaluation with the default rules', () => {
  const defaults = defaultRuleset(ME);
  const legacy = defaultRuleset(ME, { legacyMentions: true });
  const cases: Array<{
    name: string;
    event: PushEvent;
    ctx?: Partial<EvaluationContext>;
    rules?: Ruleset;
    rule: string | undefined;
    notify: boolean;
    highlight: boolean;
    sound?: string;
  }> = [
    { name: 'plain message in a group', event: msg({ body: 'hello' }), rule: '.m.rule.message', notify: true, highlight: false },
    {
      name: 'message in a one-to-one room',
      event: msg({ body: 'hello' }),
      ctx: { memberCount: 2 },
      rule: '.m.rule.room_one_to_one',
      notify: true,
      highlight: false,
      sound: 'default',
    },
    {
      name: 'encrypted in a one-to-one room',
      event: { type: 'm.room.encrypted', room_id: ROOM, sender: '@bob:example.org', content: { algorithm: 'm.megolm.v1.aes-sha2', ciphertext: 'x' } },
      ctx: { memberCount: 2 },
      rule: '.m.rule.encrypted_room_one_to_one',
      notify: true,
      highlight: false,
      sound: 'default',
    },
    {
      name: 'encrypted in a group',
      event: { type: 'm.room.encrypted', room_id: ROOM, sender: '@bob:example.org', content: { ciphertext: 'x' } },
      rule: '.m.rule.encrypted',
      notify: true,
      highlight: false,
    },
    {
      name: 'intentional user mention highlights',
      event: msg({ body: 'hey', 'm.mentions': { user_ids: [ME] } }),
      rule: '.m.rule.is_user_mention',
      notify: true,
      highlight: true,
      sound: 'default',
    },
    {
      name: 'mention of somebody else is a plain message',
      event: msg({ body: 'hey', 'm.mentions': { user_ids: ['@carol:example.org'] } }),
      rule: '.m.rule.message',
      notify: true,
      highlight: false,
    },
    {
      name: '@room mention from someone with the room notification level',
      event: msg({ body: '@room hi', 'm.mentions': { room: true } }),
      ctx: { senderPowerLevel: 50 },
      rule: '.m.rule.is_room_mention',
      notify: true,
      highlight: true,
    },
    {
      name: '@room mention without the power level is a plain message',
      event: msg({ body: '@room hi', 'm.mentions': { room: true } }),
      ctx: { senderPowerLevel: 10 },
      rule: '.m.rule.message',
      notify: true,
      highlight: false,
    },
    { name: 'notices are suppressed', event: msg({ msgtype: 'm.notice', body: 'bot says' }), rule: '.m.rule.suppress_notices', notify: false, highlight: false },
    {
      name: 'edits are suppressed',
      event: msg({ body: '* fixed', 'm.new_content': { body: 'fixed' }, 'm.relates_to': { rel_type: 'm.replace', event_id: '$x' } }),
      rule: '.m.rule.suppress_edits',
      notify: false,
      highlight: false,
    },
    {
      name: 'an edit that mentions me: the user mention rule comes before suppress_edits',
      event: msg({ body: '* hi', 'm.mentions': { user_ids: [ME] }, 'm.relates_to': { rel_type: 'm.replace', event_id: '$x' } }),
      rule: '.m.rule.is_user_mention',
      notify: true,
      highlight: true,
      sound: 'default',
    },
    {
      name: 'reactions do not notify',
      event: { type: 'm.reaction', room_id: ROOM, sender: '@bob:example.org', content: { 'm.relates_to': { rel_type: 'm.annotation', key: '👍', event_id: '$x' } } },
      rule: '.m.rule.reaction',
      notify: false,
      highlight: false,
    },
    {
      name: 'invite for me',
      event: { type: 'm.room.member', state_key: ME, room_id: ROOM, sender: '@bob:example.org', content: { membership: 'invite' } },
      rule: '.m.rule.invite_for_me',
      notify: true,
      highlight: false,
      sound: 'default',
    },
    {
      name: 'other member events do not notify',
      event: { type: 'm.room.member', state_key: '@carol:example.org', room_id: ROOM, sender: '@carol:example.org', content: { membership: 'join' } },
      rule: '.m.rule.member_event',
      notify: false,
      highlight: false,
    },
    {
      name: 'tombstone highlights',
      event: { type: 'm.room.tombstone', state_key: '', room_id: ROOM, sender: '@bob:example.org', content: { replacement_room: '!new:x' } },
      rule: '.m.rule.tombstone',
      notify: true,
      highlight: true,
    },
    {
      name: 'server ACL does not notify',
      event: { type: 'm.room.server_acl', state_key: '', room_id: ROOM, sender: '@bob:example.org', content: { allow: ['*'] } },
      rule: '.m.rule.room.server_acl',
      notify: false,
      highlight: false,
    },
    {
      name: 'call invite rings',
      event: { type: 'm.call.invite', room_id: ROOM, sender: '@bob:example.org', content: {} },
      rule: '.m.rule.call',
      notify: true,
      highlight: false,
      sound: 'ring',
    },
    { name: 'unknown event types match nothing', event: { type: 'org.example.x', room_id: ROOM, sender: '@bob:example.org', content: {} }, rule: undefined, notify: false, highlight: false },
    {
      name: 'display name in the body does not highlight under the v1.19 rules',
      event: msg({ body: 'ask Alice Liddell' }),
      rule: '.m.rule.message',
      notify: true,
      highlight: false,
    },
    {
      name: 'legacy: display name in the body highlights',
      rules: legacy,
      event: msg({ body: 'ask alice liddell, please' }),
      rule: '.m.rule.contains_display_name',
      notify: true,
      highlight: true,
      sound: 'default',
    },
    {
      name: 'legacy: display name rule skipped when m.mentions is present',
      rules: legacy,
      event: msg({ body: 'ask Alice Liddell', 'm.mentions': {} }),
      rule: '.m.rule.message',
      notify: true,
      highlight: false,
    },
    {
      name: 'legacy: display name must sit at word boundaries',
      rules: legacy,
      event: msg({ body: 'xAlice Liddellx' }),
      rule: '.m.rule.message',
      notify: true,
      highlight: false,
    },
    {
      name: 'legacy: user name in the body highlights (content rule)',
      rules: legacy,
      event: msg({ body: 'ping alice!' }),
      ctx: { displayName: undefined },
      rule: '.m.rule.contains_user_name',
      notify: true,
      highlight: true,
      sound: 'default',
    },
    {
      name: 'legacy: @room in the body with permission',
      rules: legacy,
      event: msg({ body: 'hi @room' }),
      ctx: { senderPowerLevel: 100, displayName: undefined },
      rule: '.m.rule.roomnotif',
      notify: true,
      highlight: true,
    },
  ];

  it.each(cases)('$name', (c) => {
    const result = evaluate(c.rules ?? defaults, c.event, ctx(c.ctx));
    expect(result?.ruleId).toBe(c.rule);
    expect(result?.notify ?? false).toBe(c.notify);
    expect(result?.highlight ?? false).toBe(c.highlight);
    expect(result?.tweaks.sound).toBe(c.sound);
  });

  it('the master rule, once enabled, silences everything below it', () => {
    const rules = defaultRuleset(ME);
    rules.override[0]!.enabled = true;
    const r = evaluate(rules, msg({ body: 'x', 'm.mentions': { user_ids: [ME] } }), ctx());
    expect(r).toMatchObject({ ruleId: '.m.rule.master', notify: false });
  });
});

describe('user-defined rules', () => {
  const user: Ruleset = {
    ...empty(),
    override: [{ rule_id: 'mute-bots', default: false, enabled: true, actions: [], conditions: [{ kind: 'event_match', key: 'sender', pattern: '@*bot:example.org' }] }],
    content: [
      { rule_id: 'cake', default: false, enabled: true, pattern: 'cake*lie', actions: ['notify', { set_tweak: 'highlight' }] },
      { rule_id: 'off', default: false, enabled: false, pattern: 'hello', actions: ['notify', { set_tweak: 'highlight' }] },
    ],
    room: [{ rule_id: '!quiet:example.org', default: false, enabled: true, actions: [] }],
    sender: [{ rule_id: '@boss:example.org', default: false, enabled: true, actions: ['notify', { set_tweak: 'sound', value: 'boss' }] }],
    underride: [{ rule_id: 'catch-all', default: false, enabled: true, actions: ['notify'], conditions: [] }],
  };
  const rules = mergeRulesets(defaultRuleset(ME), user);

  it('places user rules before the server-default rules of their kind, master first', () => {
    expect(rules.override.map((r) => r.rule_id).slice(0, 3)).toEqual(['.m.rule.master', 'mute-bots', '.m.rule.suppress_notices']);
    expect(rules.underride[0]!.rule_id).toBe('catch-all');
  });

  const cases: Array<{ name: string; event: PushEvent; rule: string | undefined; notify: boolean; highlight?: boolean }> = [
    { name: 'content rule glob across words', event: msg({ body: 'the cake is a lie' }), rule: 'cake', notify: true, highlight: true },
    { name: 'content rule is case-insensitive', event: msg({ body: 'THE CAKE IS A LIE!' }), rule: 'cake', notify: true, highlight: true },
    { name: 'content rule needs word boundaries', event: msg({ body: 'pancake is a lie' }), rule: 'catch-all', notify: true, highlight: false },
    { name: 'disabled content rule is skipped', event: msg({ body: 'hello' }), rule: 'catch-all', notify: true, highlight: false },
    { name: 'override on sender glob', event: msg({ body: 'cake is a lie' }, { sender: '@newsbot:example.org' }), rule: 'mute-bots', notify: false },
    { name: 'room rule', event: msg({ body: 'hi' }, { room_id: '!quiet:example.org' }), rule: '!quiet:example.org', notify: false },
    { name: 'sender rule', event: msg({ body: 'hi' }, { sender: '@boss:example.org' }), rule: '@boss:example.org', notify: true, highlight: false },
    { name: 'content beats room', event: msg({ body: 'cake lie' }, { room_id: '!quiet:example.org' }), rule: 'cake', notify: true, highlight: true },
    { name: 'user underride catches unknown types', event: { type: 'org.example.x', room_id: ROOM, sender: '@x:y', content: {} }, rule: 'catch-all', notify: true },
  ];
  it.each(cases)('$name', (c) => {
    const r = evaluate(rules, c.event, ctx());
    expect(r?.ruleId).toBe(c.rule);
    expect(r?.notify ?? false).toBe(c.notify);
    if (c.highlight !== undefined) expect(r?.highlight).toBe(c.highlight);
  });

  it('treats dont_notify and coalesce as no-ops', () => {
    const set: Ruleset = { ...empty(), underride: [{ rule_id: 'x', default: false, enabled: true, actions: ['dont_notify', 'coalesce'], conditions: [] }] };
    expect(evaluate(set, msg({ body: 'x' }), ctx())).toMatchObject({ ruleId: 'x', notify: false, highlight: false });
  });
});

describe('conditions', () => {
  const ev: PushEvent = {
    type: 'm.room.message',
    sender: '@bob:example.org',
    room_id: ROOM,
    content: {
      body: 'Hello world',
      'm.mentions': { user_ids: [ME, 7], room: false },
      'dotted.key': 'dot',
      'back\\slash': 'bs',
      flag: true,
      n: 3,
      nothing: null,
      list: ['a', 1, true],
    },
  };
  const cases: Array<[string, PushCondition, boolean, Partial<EvaluationContext>?]> = [
    ['event_match exact', { kind: 'event_match', key: 'type', pattern: 'm.room.message' }, true],
    ['event_match glob *', { kind: 'event_match', key: 'type', pattern: 'm.room.*' }, true],
    ['event_match glob ?', { kind: 'event_match', key: 'sender', pattern: '@bo?:example.org' }, true],
    ['event_match is case-insensitive', { kind: 'event_match', key: 'type', pattern: 'M.ROOM.MESSAGE' }, true],
    ['event_match whole value outside body', { kind: 'event_match', key: 'type', pattern: 'm.room' }, false],
    ['event_match body word', { kind: 'event_match', key: 'content.body', pattern: 'world' }, true],
    ['event_match body partial word', { kind: 'event_match', key: 'content.body', pattern: 'worl' }, false],
    ['event_match only matches strings', { kind: 'event_match', key: 'content.n', pattern: '3' }, false],
    ['event_match missing key', { kind: 'event_match', key: 'content.nope', pattern: '*' }, false],
    ['event_match regex metacharacters are literal', { kind: 'event_match', key: 'sender', pattern: '@bob:example(org)' }, false],
    ['escaped dot in key', { kind: 'event_match', key: 'content.dotted\\.key', pattern: 'dot' }, true],
    ['escaped backslash in key', { kind: 'event_match', key: 'content.back\\\\slash', pattern: 'bs' }, true],
    ['event_property_is boolean', { kind: 'event_property_is', key: 'content.flag', value: true }, true],
    ['event_property_is integer', { kind: 'event_property_is', key: 'content.n', value: 3 }, true],
    ['event_property_is null', { kind: 'event_property_is', key: 'content.nothing', value: null }, true],
    ['event_property_is is exact (no glob, case)', { kind: 'event_property_is', key: 'content.body', value: 'hello world' }, false],
    ['event_property_is type mismatch', { kind: 'event_property_is', key: 'content.n', value: '3' }, false],
    ['event_property_is missing is not null', { kind: 'event_property_is', key: 'content.absent', value: null }, false],
    ['event_property_contains string', { kind: 'event_property_contains', key: 'content.m\\.mentions.user_ids', value: ME }, true],
    ['event_property_contains integer', { kind: 'event_property_contains', key: 'content.m\\.mentions.user_ids', value: 7 }, true],
    ['event_property_contains absent value', { kind: 'event_property_contains', key: 'content.list', value: 'b' }, false],
    ['event_property_contains on non-array', { kind: 'event_property_contains', key: 'content.body', value: 'Hello world' }, false],
    ['contains_display_name', { kind: 'contains_display_name' }, true, { displayName: 'world' }],
    ['contains_display_name without a name', { kind: 'contains_display_name' }, false, { displayName: undefined }],
    ['contains_display_name special characters literal', { kind: 'contains_display_name' }, false, { displayName: 'w.rld' }],
    ['room_member_count ==', { kind: 'room_member_count', is: '5' }, true],
    ['room_member_count explicit ==', { kind: 'room_member_count', is: '==5' }, true],
    ['room_member_count <', { kind: 'room_member_count', is: '<5' }, false],
    ['room_member_count <=', { kind: 'room_member_count', is: '<=5' }, true],
    ['room_member_count >', { kind: 'room_member_count', is: '>4' }, true],
    ['room_member_count >=', { kind: 'room_member_count', is: '>=6' }, false],
    ['room_member_count malformed', { kind: 'room_member_count', is: '~5' }, false],
    ['sender_notification_permission enough', { kind: 'sender_notification_permission', key: 'room' }, true, { senderPowerLevel: 50 }],
    ['sender_notification_permission too low', { kind: 'sender_notification_permission', key: 'room' }, false, { senderPowerLevel: 49 }],
    ['unknown condition kinds never match', { kind: 'org.example.future' }, false],
  ];
  it.each(cases)('%s', (_name, condition, expected, over) => {
    expect(conditionMatches(condition, ev, ctx(over))).toBe(expected);
  });
});

describe('helpers', () => {
  it.each([
    ['content.body', ['content', 'body']],
    ['content.m\\.mentions.room', ['content', 'm.mentions', 'room']],
    ['a\\\\.b', ['a\\', 'b']],
    ['a\\b', ['a\\b']],
    ['a\\\\\\.b', ['a\\.b']],
  ])('splitKey(%s)', (key, parts) => {
    expect(splitKey(key)).toEqual(parts);
  });

  it('valueAtKey walks objects only', () => {
    expect(valueAtKey({ a: { b: [1] } }, 'a.b')).toEqual([1]);
    expect(valueAtKey({ a: [{ b: 1 }] }, 'a.0.b')).toBeUndefined();
  });

  it.each([
    ['*', '', false, true],
    ['lie', 'the cake is a lie', true, true],
    ['lie', 'believe', true, false],
    ['lie', 'lie.', true, true],
    ['a_b', 'x a_b y', true, true],
    ['ab', 'x_ab', true, false],
  ])('globMatches(%s, %s, %s)', (pattern, value, boundary, expected) => {
    expect(globMatches(pattern, value, boundary)).toBe(expected);
  });

  it('tweaksOf resolves highlight', () => {
    expect(tweaksOf(['notify', { set_tweak: 'highlight' }, { set_tweak: 'sound', value: 'x' }])).toEqual({ highlight: true, sound: 'x' });
    expect(tweaksOf([{ set_tweak: 'highlight', value: false }])).toEqual({ highlight: false });
  });
});
