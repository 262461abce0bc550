import { describe, expect, it } from 'vitest';
import { specValidator } from '../helpers/specSchema.js';

// The integration tests trust this checker to catch responses that break the specification's shapes.
// A user's clone has no ../shared/matrix-spec: the checker (and these tests of it) then stand aside.
const validator = specValidator();
describe.skipIf(validator === null)('the spec schema checker used by the integration tests (needs ../shared/matrix-spec)', () => {

  it('accepts a spec-shaped body and flags a missing required field', () => {
    expect(validator!.check('GET', 'http://h/_matrix/client/versions', 200, { versions: ['v1.1'] })).toEqual([]);
    expect(validator!.check('GET', 'http://h/_matrix/client/versions', 200, { version: ['v1.1'] }).join()).toMatch(/versions/);
  });

  it('checks nested event shapes inside /sync and the legacy r0 prefix', () => {
    const body = { next_batch: 's', rooms: { join: { '!a:b': { timeline: { events: [{ type: 'm.room.message', content: {} }], limited: false } } } } };
    expect(validator!.check('GET', 'http://h/_matrix/client/r0/sync', 200, body).join()).toMatch(/event_id/);
  });

  it('checks error bodies', () => {
    expect(validator!.check('GET', 'http://h/_matrix/client/v3/rooms/!a:b/event/$e', 404, { errcode: 'M_NOT_FOUND', error: 'x' })).toEqual([]);
    expect(validator!.check('GET', 'http://h/_matrix/client/v3/rooms/!a:b/event/$e', 404, { error: 'x' }).join()).toMatch(/errcode/);
  });
});
