import { describe, expect, it } from 'vitest';
import { generateSigningKey, signJson } from '../../src/crypto/signing.js';
import { inviteKeys, keyThatSigned } from '../../src/identity/inviteSignature.js';
import { isThirdPartyInvite, requiredSignatureServers } from '../../src/rooms/eventFormat.js';
import { getRoomVersion } from '../../src/rooms/roomVersions.js';
import type { Pdu } from '../../src/types/pdu.js';

const v10 = getRoomVersion('10')!;
const memberEvent = (content: Record<string, unknown>) =>
  ({ type: 'm.room.member', sender: '@alice:a.example', state_key: '@bob:b.example', room_id: '!r:a.example', content }) as unknown as Pdu;

describe('third-party invites (pure parts)', () => {
  const main = generateSigningKey('0');
  const ephemeral = generateSigningKey('0');
  const content = {
    public_key: main.publicKey,
    key_validity_url: 'https://is.example/_matrix/identity/v2/pubkey/isvalid',
    public_keys: [{ public_key: ephemeral.publicKey, key_validity_url: 'https://is.example/eph' }, { nope: 1 }, 'junk'],
  };

  it('lists public_key first, then the well-formed entries of public_keys', () => {
    expect(inviteKeys(content)).toEqual([
      { publicKey: main.publicKey, keyValidityUrl: content.key_validity_url },
      { publicKey: ephemeral.publicKey, keyValidityUrl: 'https://is.example/eph' },
    ]);
  });

  it('finds the key that signed the block, whatever key id and entity the signature names', () => {
    const signed = signJson({ mxid: '@bob:b.example', token: 't' }, 'is.example', ephemeral);
    expect(keyThatSigned(signed, content)?.publicKey).toBe(ephemeral.publicKey);
    expect(keyThatSigned({ ...signed, token: 'other' }, content)).toBeUndefined();
    expect(keyThatSigned(signJson({ mxid: '@bob:b.example', token: 't' }, 'is.example', generateSigningKey('0')), content)).toBeUndefined();
    expect(keyThatSigned({ mxid: '@bob:b.example', token: 't', signatures: 'x' }, content)).toBeUndefined();
  });

  it("requires the invitee's server's signature on a third-party invite instead of the inviter's", () => {
    const tpi = memberEvent({ membership: 'invite', third_party_invite: { signed: {} } });
    expect(isThirdPartyInvite(tpi)).toBe(true);
    expect(requiredSignatureServers(tpi, v10)).toEqual(['b.example']);
    const plain = memberEvent({ membership: 'invite' });
    expect(isThirdPartyInvite(plain)).toBe(false);
    expect(requiredSignatureServers(plain, v10)).toEqual(['a.example']);
  });
});
