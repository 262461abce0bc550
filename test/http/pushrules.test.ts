import type { MatrixClient } from 'matrix-js-sdk';
import { PushRuleKind } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

type Json = any;
const enc = encodeURIComponent;

describe.each(testDialects())('push rules on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let client: MatrixClient;
  const api = (user: TestUser, method: string, path: string, body?: unknown, prefix = '/_matrix/client/v3') =>
    request(server.baseUrl, method, `${prefix}${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });
  const ruleset = async (user: TestUser): Promise<Json> => {
    const res = await api(user, 'GET', '/pushrules/');
    expect(res.status).toBe(200);
    return res.body.global;
  };
  const ids = (rules: Json[]) => rules.map((r: Json) => r.rule_id);

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    client = sdkClient(server.baseUrl, alice);
  });
  afterAll(async () => {
    client?.stopClient();
    await server?.close();
  });

  it('serves the server-default ruleset (spec v1.19, plus the legacy mention rules as Synapse) to matrix-js-sdk and raw clients', async () => {
    const rules = await client.getPushRules();
    const master = rules.global.override!.find((r) => r.rule_id === '.m.rule.master');
    expect(master).toMatchObject({ default: true, enabled: false, actions: [] });
    expect(rules.global.override!.find((r) => r.rule_id === '.m.rule.is_user_mention')).toMatchObject({
      default: true,
      enabled: true,
      conditions: [{ kind: 'event_property_contains', key: 'content.m\\.mentions.user_ids', value: alice.userId }],
    });

    const raw = await ruleset(alice);
    expect(ids(raw.override)).toEqual([
      '.m.rule.master',
      '.m.rule.suppress_notices',
      '.m.rule.invite_for_me',
      '.m.rule.member_event',
      '.m.rule.is_user_mention',
      '.m.rule.contains_display_name',
      '.m.rule.is_room_mention',
      '.m.rule.roomnotif',
      '.m.rule.tombstone',
      '.m.rule.reaction',
      '.m.rule.room.server_acl',
      '.m.rule.suppress_edits',
    ]);
    expect(ids(raw.underride)).toEqual(['.m.rule.call', '.m.rule.encrypted_room_one_to_one', '.m.rule.room_one_to_one', '.m.rule.message', '.m.rule.encrypted']);
    expect(raw.content).toEqual([
      { rule_id: '.m.rule.contains_user_name', default: true, enabled: true, pattern: 'alice', actions: ['notify', { set_tweak: 'sound', value: 'default' }, { set_tweak: 'highlight' }] },
    ]);
    expect(raw.room).toEqual([]);
    expect(raw.sender).toEqual([]);
    expect(raw.underride[0]).toEqual({
      rule_id: '.m.rule.call',
      default: true,
      enabled: true,
      conditions: [{ kind: 'event_match', key: 'type', pattern: 'm.call.invite' }],
      actions: ['notify', { set_tweak: 'sound', value: 'ring' }],
    });
    // GET /pushrules/global/ and the legacy r0 prefix answer the same.
    expect((await api(alice, 'GET', '/pushrules/global/')).body).toEqual(raw);
    expect((await api(alice, 'GET', '/pushrules/', undefined, '/_matrix/client/r0')).body.global).toEqual(raw);
  });

  it('adds, reads, changes and deletes user rules through matrix-js-sdk', async () => {
    await client.addPushRule('global', PushRuleKind.ContentSpecific, 'cake', { pattern: 'cake*lie', actions: ['notify' as never] });
    await client.addPushRule('global', PushRuleKind.Override, 'mute-bots', {
      conditions: [{ kind: 'event_match', key: 'sender', pattern: '@*bot:*' } as never],
      actions: [],
    });
    const roomId = '!some:localhost';
    await client.addPushRule('global', PushRuleKind.RoomSpecific, roomId, { actions: [] });

    let rules = await client.getPushRules();
    expect(rules.global.content!.find((r) => r.rule_id === 'cake')).toMatchObject({ pattern: 'cake*lie', enabled: true, default: false, actions: ['notify'] });
    expect(rules.global.room!.find((r) => r.rule_id === roomId)).toMatchObject({ enabled: true, default: false, actions: [] });
    const raw = await ruleset(alice);
    // User override rules come right after .m.rule.master.
    expect(ids(raw.override).slice(0, 3)).toEqual(['.m.rule.master', 'mute-bots', '.m.rule.suppress_notices']);

    const one = await api(alice, 'GET', '/pushrules/global/content/cake');
    expect(one.body).toEqual({ rule_id: 'cake', default: false, enabled: true, pattern: 'cake*lie', actions: ['notify'] });

    await client.setPushRuleEnabled('global', PushRuleKind.ContentSpecific, 'cake', false);
    await client.setPushRuleActions('global', PushRuleKind.ContentSpecific, 'cake', ['notify' as never, { set_tweak: 'highlight' } as never]);
    expect((await api(alice, 'GET', '/pushrules/global/content/cake/enabled')).body).toEqual({ enabled: false });
    expect((await api(alice, 'GET', '/pushrules/global/content/cake/actions')).body).toEqual({ actions: ['notify', { set_tweak: 'highlight' }] });

    // Replacing a rule keeps its enabled flag and position, changes the rest.
    expect((await api(alice, 'PUT', '/pushrules/global/content/cake', { pattern: 'pie', actions: [] })).status).toBe(200);
    expect((await api(alice, 'GET', '/pushrules/global/content/cake')).body).toEqual({ rule_id: 'cake', default: false, enabled: false, pattern: 'pie', actions: [] });

    await client.deletePushRule('global', PushRuleKind.ContentSpecific, 'cake');
    await client.deletePushRule('global', PushRuleKind.RoomSpecific, roomId);
    expect((await api(alice, 'GET', '/pushrules/global/content/cake')).status).toBe(404);
    rules = await client.getPushRules();
    expect(rules.global.content!.find((r) => r.rule_id === 'cake')).toBeUndefined();
    expect(rules.global.room ?? []).toEqual([]);

    // Bob's ruleset never sees Alice's rules.
    expect(ids((await ruleset(bob)).override)).not.toContain('mute-bots');
  });

  it('changes enabled/actions of server-default rules, which stay default and undeletable', async () => {
    await client.setPushRuleEnabled('global', PushRuleKind.Override, '.m.rule.master', true);
    await client.setPushRuleActions('global', PushRuleKind.Underride, '.m.rule.message', ['notify' as never, { set_tweak: 'sound', value: 'default' } as never]);
    const raw = await ruleset(alice);
    expect(raw.override[0]).toMatchObject({ rule_id: '.m.rule.master', default: true, enabled: true });
    expect(raw.underride.find((r: Json) => r.rule_id === '.m.rule.message')).toMatchObject({
      default: true,
      enabled: true,
      actions: ['notify', { set_tweak: 'sound', value: 'default' }],
      conditions: [{ kind: 'event_match', key: 'type', pattern: 'm.room.message' }],
    });
    expect((await api(alice, 'GET', `/pushrules/global/override/${enc('.m.rule.master')}/enabled`)).body).toEqual({ enabled: true });

    const del = await api(alice, 'DELETE', '/pushrules/global/override/.m.rule.master');
    expect(del.status).toBe(400);
    expect(del.body.errcode).toBe('M_INVALID_PARAM');
    const put = await api(alice, 'PUT', '/pushrules/global/override/.m.rule.master', { actions: [] });
    expect(put.status).toBe(400);
    expect(put.body.errcode).toBe('M_INVALID_PARAM');
    await client.setPushRuleEnabled('global', PushRuleKind.Override, '.m.rule.master', false);
    expect((await ruleset(alice)).override[0].enabled).toBe(false);
  });

  it('places rules with before and after', async () => {
    const put = (id: string, qs = '') => api(alice, 'PUT', `/pushrules/global/underride/${id}${qs}`, { actions: ['notify'], conditions: [] });
    expect((await put('a')).status).toBe(200);
    expect((await put('b')).status).toBe(200); // new rules go on top
    expect((await put('c', '?after=b')).status).toBe(200);
    expect((await put('d', '?before=a')).status).toBe(200);
    const userRules = () => ruleset(alice).then((r) => ids(r.underride).filter((id: string) => !id.startsWith('.')));
    expect(await userRules()).toEqual(['b', 'c', 'd', 'a']);
    // Moving an existing rule.
    expect((await put('b', '?after=a')).status).toBe(200);
    expect(await userRules()).toEqual(['c', 'd', 'a', 'b']);
    // User underrides come before the server-default ones.
    expect(ids((await ruleset(alice)).underride).slice(4)).toEqual(['.m.rule.call', '.m.rule.encrypted_room_one_to_one', '.m.rule.room_one_to_one', '.m.rule.message', '.m.rule.encrypted']);

    const missing = await put('e', '?before=nope');
    expect(missing.status).toBe(400);
    expect(missing.body.errcode).toBe('M_UNKNOWN');
    const relativeToDefault = await put('e', `?after=${enc('.m.rule.message')}`);
    expect(relativeToDefault.status).toBe(400);
    expect(relativeToDefault.body.errcode).toBe('M_INVALID_PARAM');
    for (const id of ['a', 'b', 'c', 'd']) expect((await api(alice, 'DELETE', `/pushrules/global/underride/${id}`)).status).toBe(200);
  });

  it('publishes m.push_rules account data on every change', async () => {
    const first = await api(alice, 'GET', '/sync?timeout=0');
    expect(first.status).toBe(200);
    await client.addPushRule('global', PushRuleKind.SenderSpecific, '@boss:localhost', { actions: ['notify' as never] });
    const next = await api(alice, 'GET', `/sync?timeout=0&since=${enc(first.body.next_batch)}`);
    const event = next.body.account_data.events.find((e: Json) => e.type === 'm.push_rules');
    expect(event.content.global.sender).toEqual([{ rule_id: '@boss:localhost', default: false, enabled: true, actions: ['notify'] }]);
    expect(event.content.global).toEqual(await ruleset(alice));
    const stored = await api(alice, 'GET', `/user/${enc(alice.userId)}/account_data/m.push_rules`);
    expect(stored.body).toEqual({ global: await ruleset(alice) });
    await client.deletePushRule('global', PushRuleKind.SenderSpecific, '@boss:localhost');
    const after = await api(alice, 'GET', `/sync?timeout=0&since=${enc(next.body.next_batch)}`);
    expect(after.body.account_data.events.find((e: Json) => e.type === 'm.push_rules').content.global.sender).toEqual([]);
  });

  it('answers paths it cannot parse as Synapse does, and lists the rules of one kind', async () => {
    const raw = (method: string, path: string, body?: unknown) =>
      request(server.baseUrl, method, `/_matrix/client/v3/pushrules${path}`, { token: alice.accessToken, skipSpecCheck: true, ...(body !== undefined ? { body } : {}) });
    const put400 = ['/', `/not_a_scope/room/${enc('#spam:example.com')}`, '/global', '/global/room', '/global/room/', '/global/override/.m.rule.master/not_an_attr'];
    for (const path of put400) {
      const res = await raw('PUT', path, { actions: ['notify'], enabled: true });
      expect({ path, status: res.status, errcode: res.body?.errcode }).toEqual({ path, status: 400, errcode: 'M_UNRECOGNIZED' });
    }
    const get400 = ['/global', '/global/room', '/not_a_scope/', '/global/not_a_template/', '/global/override/.m.rule.master/not_an_attr'];
    for (const path of get400) {
      const res = await raw('GET', path);
      expect({ path, status: res.status, errcode: res.body?.errcode }).toEqual({ path, status: 400, errcode: 'M_UNRECOGNIZED' });
    }
    expect((await raw('GET', '')).status).toBe(404);
    const bad = await raw('PUT', `/global/room/${enc('!r:example.com')}`, { actions: ['not_an_action'] });
    expect({ status: bad.status, errcode: bad.body.errcode }).toEqual({ status: 400, errcode: 'M_INVALID_PARAM' });

    expect((await raw('PUT', `/global/room/${enc('!r:example.com')}`, { actions: ['notify'] })).status).toBe(200);
    // Synapse stores any room rule id (SyTest uses aliases); one that is no room id never matches.
    expect((await raw('PUT', `/global/room/${enc('#a:example.com')}`, { actions: ['notify'] })).status).toBe(200);
    expect((await raw('DELETE', `/global/room/${enc('#a:example.com')}`)).status).toBe(200);
    const list = await raw('GET', '/global/room/');
    expect(list.status).toBe(200);
    expect(list.body).toEqual([{ rule_id: '!r:example.com', default: false, enabled: true, actions: ['notify'] }]);
    expect((await raw('DELETE', `/global/room/${enc('!r:example.com')}`)).status).toBe(200);
  });

  it('answers bad requests with the spec errors', async () => {
    const cases: Array<[string, string, unknown, number, string]> = [
      ['PUT', '/pushrules/global/content/.mine', { pattern: 'x', actions: [] }, 400, 'M_INVALID_PARAM'],
      ['PUT', `/pushrules/global/override/${enc('a/b')}`, { actions: [] }, 400, 'M_INVALID_PARAM'],
      ['PUT', `/pushrules/global/override/${enc('a\\b')}`, { actions: [] }, 400, 'M_INVALID_PARAM'],
      ['PUT', '/pushrules/global/weird/x', { actions: [] }, 400, 'M_INVALID_PARAM'],
      ['PUT', '/pushrules/global/override/x', {}, 400, 'M_MISSING_PARAM'],
      ['PUT', '/pushrules/global/override/x', { actions: 'notify' }, 400, 'M_BAD_JSON'],
      ['PUT', '/pushrules/global/override/x', { actions: [42] }, 400, 'M_BAD_JSON'],
      ['PUT', '/pushrules/global/override/x', { actions: [{ set_tweak: 'highlight', value: 'yes' }] }, 400, 'M_INVALID_PARAM'],
      ['PUT', '/pushrules/global/override/x', { actions: [], conditions: [{ kind: 'event_match', key: 'type' }] }, 400, 'M_INVALID_PARAM'],
      ['PUT', '/pushrules/global/override/x', { actions: [], conditions: [{ kind: 'room_member_count', is: 'two' }] }, 400, 'M_INVALID_PARAM'],
      ['PUT', '/pushrules/global/content/x', { actions: [] }, 400, 'M_MISSING_PARAM'],
      ['PUT', '/pushrules/global/sender/not-a-user', { actions: [] }, 400, 'M_INVALID_PARAM'],
      ['GET', '/pushrules/global/override/nope', undefined, 404, 'M_NOT_FOUND'],
      ['GET', '/pushrules/global/content/.m.rule.master', undefined, 404, 'M_NOT_FOUND'],
      ['DELETE', '/pushrules/global/override/nope', undefined, 404, 'M_NOT_FOUND'],
      ['GET', '/pushrules/global/override/nope/enabled', undefined, 404, 'M_NOT_FOUND'],
      ['PUT', '/pushrules/global/override/nope/enabled', { enabled: true }, 404, 'M_NOT_FOUND'],
      ['PUT', '/pushrules/global/override/nope/actions', { actions: [] }, 404, 'M_NOT_FOUND'],
      ['PUT', '/pushrules/global/override/.m.rule.master/enabled', { enabled: 'yes' }, 400, 'M_BAD_JSON'],
      ['PUT', '/pushrules/global/override/.m.rule.master/actions', {}, 400, 'M_MISSING_PARAM'],
    ];
    for (const [method, path, body, status, errcode] of cases) {
      const res = await api(alice, method, path, body);
      expect({ method, path, status: res.status, errcode: res.body?.errcode }).toEqual({ method, path, status, errcode });
    }
    // Unknown condition kinds are accepted (they never match).
    expect((await api(alice, 'PUT', '/pushrules/global/override/future', { actions: ['notify'], conditions: [{ kind: 'org.example.new' }] })).status).toBe(200);
    expect((await api(alice, 'DELETE', '/pushrules/global/override/future')).status).toBe(200);

    const anonymous = await request(server.baseUrl, 'GET', '/_matrix/client/v3/pushrules/');
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.errcode).toBe('M_MISSING_TOKEN');
  });
});

describe.each(testDialects())('push rules with legacy_mention_rules off on %s', (dialect) => {
  let server: TestServer;
  afterAll(async () => {
    await server?.close();
  });

  it('serves exactly the spec v1.19 ruleset', async () => {
    server = await startHomeserver({ dialect, config: { push: { legacy_mention_rules: false } } });
    const alice = await registerUser(server.baseUrl, 'alice');
    const res = await request(server.baseUrl, 'GET', '/_matrix/client/v3/pushrules/', { token: alice.accessToken });
    expect(res.status).toBe(200);
    expect(res.body.global.override.map((r: Json) => r.rule_id)).toEqual([
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
    expect(res.body.global.content).toEqual([]);
  });
});
