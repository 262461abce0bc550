import { createHash, randomBytes } from 'node:crypto';
import type { ReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { finished } from 'node:stream';

// The filesystem backend of the content repository, laid out like Synapse's media store:
//   local_content/ab/cd/efgh…                    the bytes of mxc://server/abcdefgh…
//   local_thumbnails/ab/cd/efgh…/96-96-crop       its generated thumbnails
//   remote_content/ab/cd/efgh…                   cached media of other servers, by a local filesystem id
//   remote_thumbnails/ab/cd/efgh…/96-96-crop      their generated thumbnails
//   tmp/…                                         files being written (same filesystem, so rename is atomic)
// Files are addressed by media id, not by hash: deleting one mxc:// URI never needs reference counts.

/** The media ids we hand out, and the only ones we will turn into paths. */
export const MEDIA_ID_RE = /^[A-Za-z0-9_-]{1,255}$/;

export interface StoredFile {
  tempPath: string;
  size: number;
  sha256: string;
}

export interface OpenedFile {
  size: number;
  /** Small files are read whole; larger ones are streamed. */
  body: Buffer | ReadStream;
}

/** Files at or below this size are answered from memory rather than streamed. */
const STREAM_THRESHOLD = 4 * 1024 * 1024;

function splitId(mediaId: string): string[] {
  if (!MEDIA_ID_RE.test(mediaId) || mediaId.length < 5) throw new Error(`unsafe media id: ${mediaId}`);
  return [mediaId.slice(0, 2), mediaId.slice(2, 4), mediaId.slice(4)];
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}

export class MediaStore {
  constructor(private readonly root: string) {}

  contentPath(mediaId: string): string {
    return join(this.root, 'local_content', ...splitId(mediaId));
  }

  /** Cached media of another server, by our own filesystem id (remote ids never become paths). */
  remoteContentPath(filesystemId: string): string {
    return join(this.root, 'remote_content', ...splitId(filesystemId));
  }

  remoteThumbnailPath(filesystemId: string, width: number, height: number, method: string, animated: boolean): string {
    return join(this.root, 'remote_thumbnails', ...splitId(filesystemId), `${width}-${height}-${method}${animated ? '-animated' : ''}`);
  }

  /** Removes a cached remote item's bytes and all its thumbnails. */
  async removeRemote(filesystemId: string): Promise<void> {
    await rm(this.remoteContentPath(filesystemId), { force: true });
    await rm(join(this.root, 'remote_thumbnails', ...splitId(filesystemId)), { recursive: true, force: true });
  }

  thumbnailDir(mediaId: string): string {
    return join(this.root, 'local_thumbnails', ...splitId(mediaId));
  }

  thumbnailPath(mediaId: string, width: number, height: number, method: string, animated: boolean): string {
    return join(this.thumbnailDir(mediaId), `${width}-${height}-${method}${animated ? '-animated' : ''}`);
  }

  /** Writes bytes to a temporary file (flushed to disk) and hashes them; `commit` moves it into place. */
  async writeTemp(bytes: Buffer): Promise<StoredFile> {
    return this.writeStream([bytes]);
  }

  /** As writeTemp, chunk by chunk as they arrive (uploads); the file is removed if the source fails. */
  async writeStream(source: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<StoredFile> {
    const dir = join(this.root, 'tmp');
    await mkdir(dir, { recursive: true });
    const tempPath = join(dir, `${Date.now()}-${randomBytes(8).toString('hex')}`);
    const handle = await open(tempPath, 'wx', 0o600);
    const hash = createHash('sha256');
    let size = 0;
    try {
      for await (const chunk of source) {
        hash.update(chunk);
        size += chunk.length;
        await handle.write(chunk);
      }
      await handle.datasync();
    } catch (err) {
      await handle.close();
      await rm(tempPath, { force: true });
      throw err;
    }
    await handle.close();
    return { tempPath, size, sha256: hash.digest('hex') };
  }

  /** Atomically puts a temporary file at its final path (replacing nothing a reader could half-see). */
  async commit(tempPath: string, finalPath: string): Promise<void> {
    await mkdir(dirname(finalPath), { recursive: true });
    await rename(tempPath, finalPath);
  }

  async discard(tempPath: string): Promise<void> {
    await rm(tempPath, { force: true });
  }

  /** The file's bytes or a stream of them; undefined when it is not on disk. */
  async open(path: string): Promise<OpenedFile | undefined> {
    let size: number;
    try {
      size = (await stat(path)).size;
      if (size <= STREAM_THRESHOLD) {
        const body = await readFile(path);
        return { size: body.length, body };
      }
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    const handle = await open(path, 'r').catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    if (!handle) return undefined;
    const stream = handle.createReadStream();
    // The HTTP layer pipe()s the stream, and pipe() leaves the source open when the client goes away:
    // the descriptor would leak. Destroy it once the destination is done either way (a no-op after a
    // complete read). stream.pipeline() in src/http/mount.ts would make this unnecessary.
    const pipe = stream.pipe.bind(stream);
    stream.pipe = <T extends NodeJS.WritableStream>(dest: T, options?: { end?: boolean }): T => {
      finished(dest, () => stream.destroy());
      return pipe(dest, options);
    };
    return { size, body: stream };
  }

  async read(path: string): Promise<Buffer | undefined> {
    try {
      return await readFile(path);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Removes a media item's bytes and all its thumbnails. */
  async remove(mediaId: string): Promise<void> {
    await rm(this.contentPath(mediaId), { force: true });
    await rm(this.thumbnailDir(mediaId), { recursive: true, force: true });
  }
}
