import { invalidParam, notFound } from '../errors.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { localMediaBefore, setLocalQuarantine, setRemoteQuarantine, userMediaPage, type UserMediaOrder } from '../storage/repositories/adminMedia.js';
import { getMedia, type MediaRow } from '../storage/repositories/media.js';
import type { MediaService } from './mediaService.js';
import { MEDIA_ID_RE } from './store.js';

// Synapse admin API, "Media Admin API" and "Users media": list, quarantine and delete media.

export interface AdminMediaDeps extends ServiceDeps {
  media: MediaService;
}

const DELETE_BATCH = 500;

/** One item of `GET /_synapse/admin/v1/users/{userId}/media`. */
export function mediaEntry(m: MediaRow): Record<string, unknown> {
  return {
    media_id: m.mediaId,
    media_type: m.contentType ?? null,
    media_length: m.size ?? null,
    upload_name: m.filename ?? null,
    created_ts: m.createdTs,
    last_access_ts: m.lastAccessTs ?? null,
    quarantined_by: m.quarantinedBy ?? null,
    safe_from_quarantine: false,
  };
}

export class AdminMedia {
  constructor(private readonly deps: AdminMediaDeps) {}

  userMedia(userId: string, q: { from: number; limit: number; orderBy: UserMediaOrder; dir: 'f' | 'b' }) {
    return userMediaPage(this.deps.db.knex, userId, q);
  }

  /** Deletes the given page of a user's media; returns the ids deleted. */
  async deleteUserMedia(userId: string, q: { from: number; limit: number; orderBy: UserMediaOrder; dir: 'f' | 'b' }): Promise<string[]> {
    const ids = (await this.userMedia(userId, q)).media.map((m) => m.mediaId);
    if (ids.length) await this.deps.media.deleteLocal(ids);
    return ids;
  }

  private checkIds(serverName: string, mediaId: string): void {
    if (!MEDIA_ID_RE.test(mediaId) || serverName.length > 255 || !/^[A-Za-z0-9.:[\]-]+$/.test(serverName)) throw invalidParam('Invalid server name or media id');
  }

  /** Synapse "Delete a specific local media": only this server's media. */
  async deleteOne(serverName: string, mediaId: string): Promise<void> {
    this.checkIds(serverName, mediaId);
    if (serverName !== this.deps.serverName) throw invalidParam('Can only delete local media');
    if (!(await getMedia(this.deps.db.knex, mediaId))) throw notFound('Unknown media');
    await this.deps.media.deleteLocal([mediaId]);
  }

  /** Synapse "Delete local media by date or size". */
  async deleteBefore(serverName: string, q: { beforeTs: number; sizeGt: number; keepProfiles: boolean }): Promise<string[]> {
    if (serverName !== this.deps.serverName) throw invalidParam('Can only delete local media');
    const deleted: string[] = [];
    for (;;) {
      const ids = await localMediaBefore(this.deps.db.knex, { ...q, serverName, limit: DELETE_BATCH });
      if (!ids.length) return deleted;
      await this.deps.media.deleteLocal(ids);
      deleted.push(...ids);
      if (ids.length < DELETE_BATCH) return deleted;
    }
  }

  /** Synapse "Quarantining media by ID" (`by` null: unquarantine). 404 for media this server does not hold. */
  async setQuarantine(serverName: string, mediaId: string, by: string | null): Promise<void> {
    this.checkIds(serverName, mediaId);
    const done =
      serverName === this.deps.serverName
        ? await setLocalQuarantine(this.deps.db.knex, mediaId, by)
        : await setRemoteQuarantine(this.deps.db.knex, serverName, mediaId, by);
    if (!done) throw notFound('Unknown media');
  }

  /** Synapse "Purge Remote Media API": cached remote media last used before `beforeTs`. */
  purgeCache(beforeTs: number): Promise<number> {
    return this.deps.media.purgeRemoteBefore(beforeTs);
  }
}
