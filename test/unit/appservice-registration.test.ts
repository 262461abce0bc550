import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRegistrations, parseRegistration, RegistrationError } from '../../src/appservice/registration.js';
import { AppserviceRegistry } from '../../src/appservice/registry.js';

const base = `
id: bridge
url: "http://127.0.0.1:9999/"
as_token: as-secret
hs_token: hs-secret
sender_localpart: bridgebot
namespaces:
  users:
    - exclusive: true
      regex: "@bridge_.*:example.org"
    - exclusive: false
      regex: "@shared_.*:example.org"
  aliases:
    - exclusive: true
      regex: "#bridge_.*:example.org"
  rooms: []
rate_limited: false
protocols: [irc]
de.sorunome.msc2409.push_ephemeral: true
org.matrix.msc3202: true
`;

describe('application service registration files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skjol-as-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('parses a full registration', () => {
    const reg = parseRegistration(base, 'x.yaml');
    expect(reg).toMatchObject({
      id: 'bridge',
      url: 'http://127.0.0.1:9999',
      asToken: 'as-secret',
      hsToken: 'hs-secret',
      senderLocalpart: 'bridgebot',
      rateLimited: false,
      protocols: ['irc'],
      receiveEphemeral: true,
      msc3202: true,
    });
    expect(reg.msc4190).toBeUndefined();
    expect(reg.namespaces.users).toHaveLength(2);
    expect(reg.namespaces.users[0]!.source).toBe('@bridge_.*:example.org');
  });

  it('defaults: rate limited, no ephemeral, url null allowed', () => {
    const reg = parseRegistration('id: a\nurl: null\nas_token: a\nhs_token: b\nsender_localpart: bot\nnamespaces: {}\n', 'a.yaml');
    expect(reg).toMatchObject({ url: null, rateLimited: true, receiveEphemeral: false, msc3202: false, protocols: [] });
    expect(reg.namespaces).toEqual({ users: [], aliases: [], rooms: [] });
  });

  it.each([
    ['missing as_token', base.replace('as_token: as-secret\n', ''), 'as_token'],
    ['bad url', base.replace('"http://127.0.0.1:9999/"', 'not a url'), 'url'],
    ['bad exclusive', base.replace('exclusive: true', 'exclusive: "yes"'), 'namespaces.users.0.exclusive'],
    ['bad regex', base.replace('"@bridge_.*:example.org"', '"@bridge_(:example.org"'), 'namespaces.users.0.regex'],
    ['bad sender', base.replace('sender_localpart: bridgebot', 'sender_localpart: "Bridge Bot"'), 'sender_localpart'],
  ])('refuses %s naming file and field', (_name, text, field) => {
    const path = write('bad.yaml', text);
    let caught: unknown;
    try {
      loadRegistrations([path]);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(RegistrationError);
    expect((caught as RegistrationError).field).toBe(field);
    expect((caught as Error).message).toContain(path);
    expect((caught as Error).message).toContain(`'${field}'`);
  });

  it('refuses unreadable files, non-YAML and duplicates', () => {
    expect(() => loadRegistrations([join(dir, 'missing.yaml')])).toThrow(/missing\.yaml: cannot be read/);
    expect(() => loadRegistrations([write('junk.yaml', 'id: [unclosed')])).toThrow(/junk\.yaml: not valid YAML/);
    const a = write('a.yaml', base);
    const sameId = write('b.yaml', base.replace('as-secret', 'other-as').replace('hs-secret', 'other-hs'));
    expect(() => loadRegistrations([a, sameId])).toThrow(/b\.yaml: field 'id'/);
    const sameToken = write('c.yaml', base.replace('id: bridge', 'id: other').replace('hs-secret', 'other-hs'));
    expect(() => loadRegistrations([a, sameToken])).toThrow(/c\.yaml: field 'as_token'/);
    expect(loadRegistrations([a])).toHaveLength(1);
  });

  it('answers namespace questions', () => {
    const reg = parseRegistration(base, 'x.yaml');
    const registry = new AppserviceRegistry([reg], 'example.org');
    expect(registry.byAsToken('as-secret')).toBe(reg);
    expect(registry.byAsToken('hs-secret')).toBeUndefined();
    expect(registry.byId('bridge')).toBe(reg);
    expect(registry.senderUserId(reg)).toBe('@bridgebot:example.org');
    expect(registry.isInterestedInUser(reg, '@bridge_alice:example.org')).toBe(true);
    expect(registry.isInterestedInUser(reg, '@bridgebot:example.org')).toBe(true);
    expect(registry.isInterestedInUser(reg, '@alice:example.org')).toBe(false);
    // Anchored: a prefix or suffix match is not enough.
    expect(registry.isInterestedInUser(reg, '@bridge_alice:example.org.evil')).toBe(false);
    expect(registry.exclusiveOwner('@bridge_x:example.org')).toBe(reg);
    expect(registry.exclusiveOwner('@shared_x:example.org')).toBeUndefined();
    expect(registry.isInterestedInAlias(reg, '#bridge_room:example.org')).toBe(true);
    expect(registry.exclusiveAliasOwner('#bridge_room:example.org')).toBe(reg);
    expect(registry.isInterestedInRoom(reg, '!abc:example.org')).toBe(false);
    expect(registry.isRateLimitExempt('bridge')).toBe(true);
    expect(registry.isRateLimitExempt(undefined)).toBe(false);
  });
});
