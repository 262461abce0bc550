import { describe, expect, it } from 'vitest';
import { decodeBase64 } from '../../src/crypto/base64.js';
import { signingKeyFromSeed } from '../../src/crypto/signing.js';
import {
  authEventIds,
  buildPdu,
  checkContentHash,
  checkPduFormat,
  computeContentHash,
  computeEventId,
  computeReferenceHash,
  eventIdOf,
  hashAndSignPdu,
  prevEventIds,
  redactPdu,
  redactsOf,
  requiredSignatureServers,
  signPdu,
  verifyPduSignature,
} from '../../src/rooms/eventFormat.js';
import { DEFAULT_ROOM_VERSION, getRoomVersion, ROOM_VERSIONS, type RoomVersion } from '../../src/rooms/roomVersions.js';
import type { Pdu } from '../../src/types/pdu.js';

const KEY = signingKeyFromSeed('1', decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1'));
const rv = (id: string): RoomVersion => getRoomVersion(id)!;

describe('room versions', () => {
  it('knows 1..12 with the default 10', () => {
    expect([...ROOM_VERSIONS.keys()]).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12']);
    expect(getRoomVersion(DEFAULT_ROOM_VERSION)?.id).toBe('10');
    expect(getRoomVersion('13')).toBeUndefined();
  });

  it.each<[keyof RoomVersion, string[]]>([
    ['specialCaseAliasesAuth', ['1', '2', '3', '4', '5']],
    ['redactionAuthRule', ['1', '2']],
    ['enforceKeyValidity', ['5', '6', '7', '8', '9', '10', '11', '12']],
    ['strictCanonicalJson', ['6', '7', '8', '9', '10', '11', '12']],
    ['limitNotificationsPowerLevels', ['6', '7', '8', '9', '10', '11', '12']],
    ['knockJoinRule', ['7', '8', '9', '10', '11', '12']],
    ['restrictedJoinRule', ['8', '9', '10', '11', '12']],
    ['restrictedJoinRuleFix', ['9', '10', '11', '12']],
    ['integerPowerLevels', ['10', '11', '12']],
    ['knockRestrictedJoinRule', ['10', '11', '12']],
    ['updatedRedactionRules', ['11', '12']],
    ['implicitRoomCreator', ['11', '12']],
    ['strictKeyByteLimits', ['11', '12']],
    ['roomIdFromCreateEvent', ['12']],
    ['infiniteCreatorPower', ['12']],
  ])('%s is on exactly in %j', (flag, on) => {
    for (const v of ROOM_VERSIONS.values()) expect([v.id, v[flag]]).toEqual([v.id, on.includes(v.id)]);
  });

  it('event formats and state resolution', () => {
    expect([...ROOM_VERSIONS.values()].map((v) => v.eventFormat).join()).toBe('v1,v1,v3,v4,v4,v4,v4,v4,v4,v4,v4,v4');
    expect([...ROOM_VERSIONS.values()].map((v) => v.stateResolution).join()).toBe('v1,v2,v2,v2,v2,v2,v2,v2,v2,v2,v2,v2.1');
  });
});

describe('event signing (spec appendix known-answer vectors)', () => {
  it('minimal event: content hash and signature', () => {
    const input = {
      room_id: '!x:domain',
      sender: '@a:domain',
      origin: 'domain',
      origin_server_ts: 1000000,
      signatures: {},
      hashes: {},
      type: 'X',
      content: {},
      prev_events: [],
      auth_events: [],
      depth: 3,
      unsigned: { age_ts: 1000000 },
    } as unknown as Pdu;
    const expected = {
      auth_events: [],
      content: {},
      depth: 3,
      hashes: { sha256: '5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos' },
      origin: 'domain',
      origin_server_ts: 1000000,
      prev_events: [],
      room_id: '!x:domain',
      sender: '@a:domain',
      signatures: {
        domain: {
          'ed25519:1': 'KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg',
        },
      },
      type: 'X',
      unsigned: { age_ts: 1000000 },
    };
    // The vector predates v11's redaction changes (it keeps `origin`), so any of v1–v10 reproduces it.
    for (const id of ['1', '3', '10']) {
      const signed = hashAndSignPdu(input, 'domain', KEY, rv(id));
      expect(signed).toEqual(expected);
      expect(checkContentHash(signed)).toBe(true);
      expect(verifyPduSignature(signed, 'domain', 'ed25519:1', KEY.publicKey, rv(id))).toBe(true);
    }
    // v11 no longer protects `origin`: a different signature, still self-consistent.
    const v11 = hashAndSignPdu(input, 'domain', KEY, rv('11'));
    expect(v11.hashes.sha256).toBe(expected.hashes.sha256);
    expect(v11.signatures.domain!['ed25519:1']).not.toBe(expected.signatures.domain['ed25519:1']);
    expect(verifyPduSignature(v11, 'domain', 'ed25519:1', KEY.publicKey, rv('11'))).toBe(true);
    expect(verifyPduSignature(v11, 'domain', 'ed25519:1', KEY.publicKey, rv('10'))).toBe(false);
  });

  it('event with redactable content: signature covers only the redacted form', () => {
    const input = {
      content: { body: 'Here is the message content' },
      event_id: '$0:domain',
      origin: 'domain',
      origin_server_ts: 1000000,
      type: 'm.room.message',
      room_id: '!r:domain',
      sender: '@u:domain',
      signatures: {},
      unsigned: { age_ts: 1000000 },
    } as unknown as Pdu;
    const signed = hashAndSignPdu(input, 'domain', KEY, rv('1'));
    expect(signed.hashes).toEqual({ sha256: 'onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g' });
    expect(signed.signatures).toEqual({
      domain: {
        'ed25519:1': 'Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA',
      },
    });
    expect(signed.content).toEqual(input.content);
    expect(signed.unsigned).toEqual({ age_ts: 1000000 });
    expect(input.signatures).toEqual({}); // input untouched

    // A redacted copy still verifies, but its content hash no longer matches.
    const redacted = redactPdu(signed, rv('1'));
    expect(verifyPduSignature(redacted, 'domain', 'ed25519:1', KEY.publicKey, rv('1'))).toBe(true);
    expect(checkContentHash(redacted)).toBe(false);
    // Tampering with protected fields breaks the signature; with content breaks the hash only.
    expect(verifyPduSignature({ ...signed, sender: '@v:domain' }, 'domain', 'ed25519:1', KEY.publicKey, rv('1'))).toBe(false);
    const tampered = { ...signed, content: { body: 'other' } };
    expect(verifyPduSignature(tampered, 'domain', 'ed25519:1', KEY.publicKey, rv('1'))).toBe(true);
    expect(checkContentHash(tampered)).toBe(false);
  });

  it('signPdu merges with existing signatures', () => {
    const other = signingKeyFromSeed('2', Buffer.alloc(32, 9));
    const base = hashAndSignPdu(
      { room_id: '!x:domain', sender: '@a:domain', origin_server_ts: 1, signatures: {}, hashes: { sha256: '' }, type: 'X', content: {}, prev_events: [], auth_events: [], depth: 1 },
      'domain',
      KEY,
      rv('10'),
    );
    const twice = signPdu(signPdu(base, 'domain', other, rv('10')), 'resident.example', other, rv('10'));
    expect(Object.keys(twice.signatures).sort()).toEqual(['domain', 'resident.example']);
    expect(Object.keys(twice.signatures.domain!).sort()).toEqual(['ed25519:1', 'ed25519:2']);
    expect(verifyPduSignature(twice, 'domain', 'ed25519:1', KEY.publicKey, rv('10'))).toBe(true);
    expect(verifyPduSignature(twice, 'resident.example', 'ed25519:2', other.publicKey, rv('10'))).toBe(true);
  });
});

// A real room-v5 create event (Synapse, jki.re); its id is known for v3 and v4 formats.
const REAL_CREATE = {
  auth_events: [],
  prev_events: [],
  type: 'm.room.create',
  room_id: '!uXDCzlYgCTHtiWCkEx:jki.re',
  sender: '@erikj:jki.re',
  content: {
    room_version: '5',
    predecessor: { room_id: '!gdRMqOrTFdOCYHNwOo:half-shot.uk', event_id: '$LP7ROBc4b+cMc1UE9haIz8q5AK2AIW4eJ90FfKLvyZI' },
    creator: '@erikj:jki.re',
  },
  depth: 1,
  prev_state: [],
  state_key: '',
  origin: 'jki.re',
  origin_server_ts: 1560284621137,
  hashes: { sha256: 'IX6zuNiJpJPNf70BLleL3HSCpjKeq9Uhu7uUpyDjBmc' },
  signatures: {
    'jki.re': {
      'ed25519:auto': 'O4IyFfF2PPtGp5uaDm8t57dZbdh8vc8Q64LgCwvzYRVItAMI0uisfiAFaxkVT7MRpzh6N2QNN5NMRXZKmgPYDA',
    },
  },
  unsigned: { age: 1321650 },
} as Pdu;

describe('reference hashes and event ids', () => {
  it('matches the known id of a real event', () => {
    expect(checkContentHash(REAL_CREATE)).toBe(true);
    expect(computeContentHash(REAL_CREATE)).toBe('IX6zuNiJpJPNf70BLleL3HSCpjKeq9Uhu7uUpyDjBmc');
    expect(computeEventId(REAL_CREATE, rv('3'))).toBe('$RrGxF28UrHLmoASHndYb9Jb/1SFww2ptmtur9INS438');
    expect(computeReferenceHash(REAL_CREATE, rv('3'))).toBe('RrGxF28UrHLmoASHndYb9Jb/1SFww2ptmtur9INS438');
    for (const id of ['4', '5', '10']) {
      expect(computeEventId(REAL_CREATE, rv(id))).toBe('$RrGxF28UrHLmoASHndYb9Jb_1SFww2ptmtur9INS438');
      expect(eventIdOf(REAL_CREATE, rv(id))).toBe('$RrGxF28UrHLmoASHndYb9Jb_1SFww2ptmtur9INS438');
    }
    // v11 no longer protects origin/prev_state, so the same JSON hashes differently.
    expect(computeEventId(REAL_CREATE, rv('11'))).not.toBe('$RrGxF28UrHLmoASHndYb9Jb_1SFww2ptmtur9INS438');
  });

  it('is unaffected by unsigned, signatures and redactable content', () => {
    const v = rv('10');
    const id = computeEventId(REAL_CREATE, v);
    expect(computeEventId({ ...REAL_CREATE, unsigned: { age: 1 }, signatures: {} }, v)).toBe(id);
    const msg = { ...REAL_CREATE, type: 'm.room.message', state_key: undefined, content: { body: 'a' } } as Pdu;
    expect(computeEventId({ ...msg, content: { body: 'b' } }, v)).toBe(computeEventId(msg, v));
    expect(computeEventId({ ...msg, depth: 2 }, v)).not.toBe(computeEventId(msg, v));
  });

  it('v1 ids come from event_id or a generator', () => {
    expect(computeEventId(REAL_CREATE, rv('1'), 'example.org', () => 'abc')).toBe('$abc:example.org');
    expect(() => computeEventId(REAL_CREATE, rv('1'))).toThrow();
    expect(eventIdOf({ ...REAL_CREATE, event_id: '$x:y' }, rv('2'))).toBe('$x:y');
    expect(() => eventIdOf(REAL_CREATE, rv('1'))).toThrow();
  });

  it('reads prev/auth events in both formats', () => {
    const v1 = { ...REAL_CREATE, prev_events: [['$a:x', { sha256: 'h' }]], auth_events: [['$b:x', {}], ['$c:x', {}]] } as Pdu;
    expect(prevEventIds(v1)).toEqual(['$a:x']);
    expect(authEventIds(v1)).toEqual(['$b:x', '$c:x']);
    const v3 = { ...REAL_CREATE, prev_events: ['$a'], auth_events: ['$b', '$c'] } as Pdu;
    expect(prevEventIds(v3)).toEqual(['$a']);
    expect(authEventIds(v3)).toEqual(['$b', '$c']);
  });
});

describe('redaction algorithm', () => {
  const base = {
    event_id: '$e:x',
    room_id: '!r:x',
    sender: '@u:x',
    origin: 'x',
    membership: 'join',
    prev_state: [],
    origin_server_ts: 1,
    depth: 5,
    prev_events: ['$p'],
    auth_events: ['$a'],
    hashes: { sha256: 'h' },
    signatures: { x: { 'ed25519:1': 's' } },
    unsigned: { age: 3 },
    redacts: '$t:x',
    extra: 'gone',
  };
  const ev = (type: string, content: Record<string, unknown>, stateKey: string | null): Pdu =>
    ({ ...base, type, content, ...(stateKey === null ? {} : { state_key: stateKey }) }) as Pdu;

  it('top-level keys before and from v11', () => {
    const e = ev('m.room.message', { body: 'x' }, null);
    const r10 = redactPdu(e, rv('10'));
    expect(Object.keys(r10).sort()).toEqual(
      ['auth_events', 'content', 'depth', 'event_id', 'hashes', 'membership', 'origin', 'origin_server_ts', 'prev_events', 'prev_state', 'room_id', 'sender', 'signatures', 'type'],
    );
    expect(r10.content).toEqual({});
    const r11 = redactPdu(e, rv('11'));
    expect(Object.keys(r11).sort()).toEqual(
      ['auth_events', 'content', 'depth', 'event_id', 'hashes', 'origin_server_ts', 'prev_events', 'room_id', 'sender', 'signatures', 'type'],
    );
    expect(redactPdu(ev('m.room.topic', { topic: 't' }, ''), rv('11')).state_key).toBe('');
  });

  const member = {
    membership: 'join',
    displayname: 'D',
    join_authorised_via_users_server: '@a:x',
    third_party_invite: { display_name: 'n', signed: { mxid: '@u:x', token: 't', signatures: {} } },
  };
  const pl = { ban: 50, events: { a: 1 }, events_default: 0, kick: 50, redact: 50, state_default: 50, users: { '@u:x': 100 }, users_default: 0, invite: 0, notifications: { room: 50 }, historical: 100 };
  const plKept = { ban: 50, events: { a: 1 }, events_default: 0, kick: 50, redact: 50, state_default: 50, users: { '@u:x': 100 }, users_default: 0 };
  const create = { creator: '@u:x', room_version: '5', 'm.federate': false, predecessor: { room_id: '!o:x', event_id: '$o' } };
  const joinRules = { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: '!s:x' }], other: 1 };

  it.each<[string, string, Record<string, unknown>, Record<string, unknown>]>([
    ['1', 'm.room.member', member, { membership: 'join' }],
    ['8', 'm.room.member', member, { membership: 'join' }],
    ['9', 'm.room.member', member, { membership: 'join', join_authorised_via_users_server: '@a:x' }],
    ['11', 'm.room.member', member, { membership: 'join', join_authorised_via_users_server: '@a:x', third_party_invite: { signed: member.third_party_invite.signed } }],
    ['11', 'm.room.member', { membership: 'invite', third_party_invite: { display_name: 'n' } }, { membership: 'invite' }],
    ['10', 'm.room.create', create, { creator: '@u:x' }],
    ['11', 'm.room.create', create, create],
    ['7', 'm.room.join_rules', joinRules, { join_rule: 'restricted' }],
    ['8', 'm.room.join_rules', joinRules, { join_rule: 'restricted', allow: joinRules.allow }],
    ['10', 'm.room.power_levels', pl, plKept],
    ['11', 'm.room.power_levels', pl, { ...plKept, invite: 0 }],
    ['5', 'm.room.aliases', { aliases: ['#a:x'], x: 1 }, { aliases: ['#a:x'] }],
    ['6', 'm.room.aliases', { aliases: ['#a:x'] }, {}],
    ['3', 'm.room.history_visibility', { history_visibility: 'shared', x: 1 }, { history_visibility: 'shared' }],
    ['10', 'm.room.redaction', { redacts: '$t:x', reason: 'r' }, {}],
    ['11', 'm.room.redaction', { redacts: '$t:x', reason: 'r' }, { redacts: '$t:x' }],
    ['11', 'm.room.name', { name: 'n' }, {}],
  ])('v%s %s', (version, type, content, expected) => {
    const r = redactPdu(ev(type, content, type === 'm.room.member' ? '@u:x' : ''), rv(version));
    expect(r.content).toEqual(expected);
  });

  it('does not share structure with the input', () => {
    const e = ev('m.room.power_levels', { users: { '@u:x': 100 } }, '');
    const r = redactPdu(e, rv('10'));
    (r.content.users as Record<string, number>)['@u:x'] = 1;
    expect((e.content.users as Record<string, number>)['@u:x']).toBe(100);
  });
});

describe('buildPdu', () => {
  const skeleton = {
    room_id: '!r:example.org',
    sender: '@alice:example.org',
    type: 'm.room.create',
    state_key: '',
    content: { room_version: 'X' },
    prev_events: [],
    auth_events: [],
    depth: 1,
    origin_server_ts: 1700000000000,
  };

  it.each(['1', '3', '4', '10', '11'])('v%s: hashed, signed, id consistent', (id) => {
    const v = rv(id);
    const { pdu, eventId } = buildPdu({ ...skeleton, content: { room_version: id } }, v, {
      serverName: 'example.org',
      key: KEY,
      randomLocalId: () => 'LOCAL',
    });
    expect(checkContentHash(pdu)).toBe(true);
    expect(verifyPduSignature(pdu, 'example.org', 'ed25519:1', KEY.publicKey, v)).toBe(true);
    expect(eventIdOf(pdu, v)).toBe(eventId);
    expect(checkPduFormat(pdu, v)).toBeNull();
    expect(pdu.origin).toBeUndefined();
    if (v.eventFormat === 'v1') {
      expect(eventId).toBe('$LOCAL:example.org');
      expect(pdu.event_id).toBe(eventId);
    } else {
      expect(pdu.event_id).toBeUndefined();
      expect(eventId).toMatch(v.eventFormat === 'v3' ? /^\$[A-Za-z0-9+/]{43}$/ : /^\$[A-Za-z0-9_-]{43}$/);
    }
    expect(pdu.content.creator).toBe(v.implicitRoomCreator ? undefined : '@alice:example.org');
  });

  it('v1 references carry the looked-up hashes; v3+ plain ids', () => {
    const opts = { serverName: 'example.org', key: KEY, hashLookup: (id: string) => ({ sha256: `H${id}` }) };
    const msg = { ...skeleton, type: 'm.room.message', state_key: undefined, content: { body: 'hi' }, prev_events: ['$p:x'], auth_events: ['$a:x', '$b:x'], depth: 4 };
    const { pdu: p1 } = buildPdu(msg, rv('2'), opts);
    expect(p1.prev_events).toEqual([['$p:x', { sha256: 'H$p:x' }]]);
    expect(p1.auth_events).toEqual([['$a:x', { sha256: 'H$a:x' }], ['$b:x', { sha256: 'H$b:x' }]]);
    expect(p1.state_key).toBeUndefined();
    const { pdu: p4 } = buildPdu(msg, rv('4'), opts);
    expect(p4.prev_events).toEqual(['$p:x']);
    expect(prevEventIds(p1)).toEqual(prevEventIds(p4));
    expect(checkPduFormat(p1, rv('4'))).not.toBeNull();
    expect(checkPduFormat(p4, rv('1'))).not.toBeNull();
  });

  it('places redacts top-level before v11 and in content from v11', () => {
    const red = { ...skeleton, type: 'm.room.redaction', state_key: undefined, content: { reason: 'spam' }, redacts: '$t', prev_events: ['$p'], auth_events: ['$a'], depth: 9 };
    const opts = { serverName: 'example.org', key: KEY };
    const { pdu: p10 } = buildPdu(red, rv('10'), opts);
    expect(p10.redacts).toBe('$t');
    expect(p10.content).toEqual({ reason: 'spam' });
    expect(redactsOf(p10, rv('10'))).toBe('$t');
    const { pdu: p11 } = buildPdu(red, rv('11'), opts);
    expect(p11.redacts).toBeUndefined();
    expect(p11.content).toEqual({ reason: 'spam', redacts: '$t' });
    expect(redactsOf(p11, rv('11'))).toBe('$t');
  });

  it('required signature servers', () => {
    const join = { ...skeleton, type: 'm.room.member', state_key: '@bob:remote.org', sender: '@bob:remote.org', content: { membership: 'join', join_authorised_via_users_server: '@alice:example.org' } } as unknown as Pdu;
    expect(requiredSignatureServers(join, rv('9')).sort()).toEqual(['example.org', 'remote.org']);
    expect(requiredSignatureServers(join, rv('7'))).toEqual(['remote.org']);
    expect(requiredSignatureServers({ ...join, event_id: '$x:third.org' } as Pdu, rv('1')).sort()).toEqual(['remote.org', 'third.org']);
  });

  it('strict canonical JSON from v6', () => {
    const big = { ...skeleton, type: 'm.room.message', state_key: undefined, content: { n: 2 ** 60 } };
    expect(() => buildPdu(big, rv('6'), { serverName: 'example.org', key: KEY })).toThrow();
    expect(() => buildPdu(big, rv('5'), { serverName: 'example.org', key: KEY })).not.toThrow();
  });
});
