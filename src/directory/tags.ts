import type { ServiceDeps } from '../serviceDeps.js';
import { getAccountData, putAccountData } from '../storage/repositories/accountData.js';
import { dict } from '../util/dict.js';

// Spec: Client-Server API, "Room tagging": tags live in the room account data entry `m.tag`
// ({ tags: { name: { order? } } }), so they reach every device through /sync like any account data.

export const TAG_EVENT = 'm.tag';

export type TagMap = Record<string, Record<string, unknown>>;

export class TagService {
  /** Read-modify-write per (user, room) runs one at a time in this process. */
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: ServiceDeps) {}

  async get(userId: string, roomId: string): Promise<TagMap> {
    return tagsOf(await getAccountData(this.deps.db.knex, userId, roomId, TAG_EVENT));
  }

  set(userId: string, roomId: string, tag: string, content: Record<string, unknown>): Promise<void> {
    return this.update(userId, roomId, (tags) => {
      tags[tag] = content;
      return true;
    });
  }

  remove(userId: string, roomId: string, tag: string): Promise<void> {
    return this.update(userId, roomId, (tags) => {
      if (!Object.hasOwn(tags, tag)) return false;
      delete tags[tag];
      return true;
    });
  }

  private update(userId: string, roomId: string, change: (tags: TagMap) => boolean): Promise<void> {
    const key = `${userId}\u0000${roomId}`;
    const run = (this.chains.get(key) ?? Promise.resolve()).catch(() => undefined).then(async () => {
      const changed = await this.deps.db.write(async (trx) => {
        const existing = await getAccountData(trx, userId, roomId, TAG_EVENT);
        const tags = tagsOf(existing);
        if (!change(tags)) return false;
        await putAccountData(trx, userId, roomId, TAG_EVENT, { ...(existing ?? {}), tags });
        return true;
      });
      if (changed) this.deps.notifier.notifyUsers([userId]);
    });
    this.chains.set(key, run);
    void run.finally(() => {
      if (this.chains.get(key) === run) this.chains.delete(key);
    }).catch(() => undefined);
    return run;
  }
}

function tagsOf(content: Record<string, unknown> | undefined): TagMap {
  const tags = content?.tags;
  if (!tags || typeof tags !== 'object' || Array.isArray(tags)) return dict();
  const out: TagMap = dict();
  for (const [name, value] of Object.entries(tags as Record<string, unknown>)) {
    out[name] = value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  }
  return out;
}
