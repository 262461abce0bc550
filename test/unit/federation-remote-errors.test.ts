import { describe, expect, it } from 'vitest';
import { FederationRequestError, MEMBERSHIP_FAILOVER_ERRCODES, finalRemoteRefusal, remoteErrorText } from '../../src/federation/client.js';

const http = (status: number, errcode?: string, error?: string) => new FederationRequestError('remote.example', 'http', `HTTP ${status}`, status, errcode, error);

// What a client sees of another server's error (Synapse: HttpResponseException.to_synapse_error for 4xx).
describe('remote errors for clients', () => {
  it.each([
    ['a 400 keeps status and errcode', http(400, 'M_INCOMPATIBLE_ROOM_VERSION', 'old'), 400, 'M_INCOMPATIBLE_ROOM_VERSION', 'old'],
    ['a 403 keeps status and errcode', http(403, 'M_FORBIDDEN', 'banned'), 403, 'M_FORBIDDEN', 'banned'],
    ['a namespaced errcode is kept', http(400, 'ORG.EXAMPLE_CODE'), 400, 'ORG.EXAMPLE_CODE', 'remote.example refused the request (HTTP 400)'],
    ['an errcode with odd characters is M_UNKNOWN', http(400, 'M_<x>'), 400, 'M_UNKNOWN', 'remote.example refused the request (HTTP 400)'],
    ['an errcode longer than 64 characters is M_UNKNOWN', http(400, 'M_' + 'X'.repeat(70)), 400, 'M_UNKNOWN', 'remote.example refused the request (HTTP 400)'],
    ['a token errcode never logs the client out', http(403, 'M_UNKNOWN_TOKEN'), 403, 'M_UNKNOWN', 'remote.example refused the request (HTTP 403)'],
    ['a 401 (our signature refused) is 502', http(401, 'M_UNAUTHORIZED'), 502, 'M_UNKNOWN', 'Failed to talk to remote.example'],
    ['a 5xx is 502', http(500, 'M_FORBIDDEN'), 502, 'M_UNKNOWN', 'Failed to talk to remote.example'],
    ['a network failure is 502', new FederationRequestError('remote.example', 'unreachable', 'ECONNREFUSED'), 502, 'M_UNKNOWN', 'Failed to talk to remote.example'],
    ['a malformed answer is 502', new FederationRequestError('remote.example', 'bad_response', 'not JSON', 200), 502, 'M_UNKNOWN', 'Failed to talk to remote.example'],
  ])('%s', (_name, err, status, errcode, message) => {
    const out = err.forClient();
    expect([out.status, out.errcode, out.message]).toEqual([status, errcode, message]);
  });

  it('membership requests try the next server on M_NOT_FOUND and the restricted-join codes', () => {
    expect(finalRemoteRefusal(http(404, 'M_NOT_FOUND'), MEMBERSHIP_FAILOVER_ERRCODES)).toBeUndefined();
    expect(finalRemoteRefusal(http(400, 'M_UNABLE_TO_AUTHORISE_JOIN'), MEMBERSHIP_FAILOVER_ERRCODES)).toBeUndefined();
    expect(finalRemoteRefusal(http(500), MEMBERSHIP_FAILOVER_ERRCODES)).toBeUndefined();
    expect(finalRemoteRefusal(new Error('local'), MEMBERSHIP_FAILOVER_ERRCODES)).toBeUndefined();
    expect(finalRemoteRefusal(http(403, 'M_FORBIDDEN', 'banned'), MEMBERSHIP_FAILOVER_ERRCODES)?.toJSON()).toEqual({ errcode: 'M_FORBIDDEN', error: 'banned' });
  });

  it('remote error text: strings only, control characters removed, at most 300 characters', () => {
    expect(remoteErrorText(42)).toBeUndefined();
    expect(remoteErrorText('\u0000\u001b')).toBeUndefined();
    expect(remoteErrorText('a\nb\u200ec')).toBe('a b c');
    expect([...remoteErrorText('😀'.repeat(400))!].length).toBe(300);
  });
});
