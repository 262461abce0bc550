import { describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../src/crypto/signing.js';
import { applyContentHash, checkFormat, checkReceivedPdu, checkSignatures, topologicalOrder, PduCheckError } from '../../src/federation/pipeline.js';
import { backoffMs } from '../../src/federation/sender.js';
import { buildPdu } from '../../src/rooms/eventFormat.js';
import { getRoomVersion } from '../../src/rooms/roomVersions.js';
import type { Pdu } from '../../src/types/pdu.js';

// The inbound pipeline's steps on their own, with events built and signed by a key of a made-up server.
const v10 = getRoomVersion('10')!;
const v4 = getRoomVersion('4')!;
const key = generateSigningKey('k1');
const other = generateSigningKey('k1');
const server = 'remote.example';
const keys = async (s: string, keyId: string) => (s === server && keyId === key.keyId ? key.publicKey : undefined);

function event(version = v10, over: Partial<{ type: string; content: Record<string, unknown>; prev: string[]; auth: string[]; depth: number; sender: string }> = {}) {
  return buildPdu(
    {
      room_id: '!room:remote.example',
      sender: over.sender ?? `@u:${server}`,
      type: over.type ?? 'm.room.message',
      content: over.content ?? { body: 'hi' },
      prev_events: over.prev ?? [],
      auth_events: over.auth ?? [],
      depth: over.depth ?? 3,
      origin_server_ts: 1_700_000_000_000,
    },
    version,
    { serverName: server, key },
  );
}

describe('inbound PDU steps', () => {
  it('format: structure for the version and canonical JSON', () => {
    const { pdu } = event();
    expect(checkFormat(pdu, v10)).toBeNull();
    expect(checkFormat({ ...pdu, depth: -1 }, v10)).toMatch(/depth/);
    expect(checkFormat({ ...pdu, content: { n: 1.5 } }, v10)).toMatch(/canonical JSON/);
    expect(checkFormat({ ...pdu, content: { n: 2 ** 60 } }, v10)).toMatch(/canonical JSON/);
    expect(checkFormat({ ...pdu, prev_events: [['$x', {}]] }, v10)).toMatch(/prev_events/);
  });

  it("signatures: the sender's server must have signed with a key it published", async () => {
    const { pdu } = event();
    expect(await checkSignatures(pdu, v10, keys)).toBeNull();
    expect(await checkSignatures({ ...pdu, signatures: {} }, v10, keys)).toMatch(/not signed by remote.example/);
    const forged = buildPdu({ room_id: pdu.room_id, sender: pdu.sender, type: pdu.type, content: pdu.content, prev_events: [], auth_events: [], depth: 3, origin_server_ts: pdu.origin_server_ts }, v10, { serverName: server, key: other }).pdu;
    expect(await checkSignatures(forged, v10, keys)).toMatch(/no valid signature/);
    // Signatures cover the redacted form: a changed body does not break them (the content hash catches it).
    expect(await checkSignatures({ ...pdu, content: { body: 'changed' } }, v10, keys)).toBeNull();
  });

  it('signatures: keys are looked up at origin_server_ts from v5, at any time before', async () => {
    const seen: number[] = [];
    const spy = async (s: string, k: string, at?: number) => {
      seen.push(at ?? -1);
      return keys(s, k);
    };
    await checkSignatures(event(v10).pdu, v10, spy);
    await checkSignatures(event(v4).pdu, v4, spy);
    expect(seen).toEqual([1_700_000_000_000, 0]);
  });

  it('content hash: a mismatch redacts the event instead of rejecting it', async () => {
    const { pdu, eventId } = event();
    expect(applyContentHash(pdu, v10)).toEqual({ pdu, redacted: false });
    const tampered = { ...pdu, content: { body: 'changed' } } as Pdu;
    const out = applyContentHash(tampered, v10);
    expect(out.redacted).toBe(true);
    expect(out.pdu.content).toEqual({});
    // Through the whole check the id stays the same (it is a hash of the redacted form) and unsigned is dropped.
    const checked = await checkReceivedPdu({ ...tampered, unsigned: { age: 1 } }, v10, keys, { eventId });
    expect(checked).toMatchObject({ eventId, redacted: true });
    expect(checked.pdu.unsigned).toBeUndefined();
    await expect(checkReceivedPdu(pdu, v10, keys, { eventId: '$other' })).rejects.toBeInstanceOf(PduCheckError);
    await expect(checkReceivedPdu(pdu, v10, keys, { roomId: '!elsewhere:x' })).rejects.toMatchObject({ step: 'room' });
  });

  it('orders fetched events after their auth and prev events', () => {
    const create = event(v10, { type: 'm.room.create', depth: 1, content: {} });
    const member = event(v10, { type: 'm.room.member', depth: 1, auth: [create.eventId], prev: [create.eventId], content: { membership: 'join' } });
    const msg = event(v10, { depth: 1, auth: [create.eventId, member.eventId], prev: [member.eventId] });
    const ordered = topologicalOrder([msg, member, create], v10).map((e) => e.eventId);
    expect(ordered).toEqual([create.eventId, member.eventId, msg.eventId]);
  });
});

describe('transaction sender backoff', () => {
  it('doubles from the base delay and stops at the cap', () => {
    const o = { retryBaseMs: 1000, maxBackoffMs: 60_000 };
    expect([1, 2, 3, 4, 7, 8, 50].map((n) => backoffMs(n, o))).toEqual([1000, 2000, 4000, 8000, 60_000, 60_000, 60_000]);
  });
});
