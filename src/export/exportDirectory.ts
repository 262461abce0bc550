import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// The export holds a person's private data: owner-only, whatever the umask says.
const PRIVATE_FILE = 0o600;
const PRIVATE_DIR = 0o700;
// Room and media ids are used as file names as they are (Synapse's layout) when nothing in them can
// climb out of the directory or trip a filesystem; anything else is percent-encoded.
const SAFE_SEGMENT = /^[A-Za-z0-9!:@_=+~-][A-Za-z0-9!:@._=+~-]*$/;
const MAX_SEGMENT = 200;

export class ExportError extends Error {}

/** One path segment from an id someone else chose (a room id, a media id). */
export function safeSegment(id: string): string {
  // A lone '%' is no percent-encoding of anything: the empty id cannot collide or name the parent.
  if (id === '') return '%';
  const encoded = SAFE_SEGMENT.test(id) ? id : encodeURIComponent(id).replace(/[.*'()]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  if (encoded.length <= MAX_SEGMENT) return encoded;
  // Too long for a file name: a prefix for the eye and a hash for uniqueness (the id is inside the file too).
  return `${encoded.slice(0, 150)}~${createHash('sha256').update(id).digest('hex').slice(0, 32)}`;
}

/** A JSON array written one element per line, so a room's history never has to fit in memory. */
export interface JsonArrayFile {
  push(value: unknown): void;
  close(): void;
}

/**
 * The directory an export is written to: must be empty or absent (as Synapse's FileExfiltrationWriter),
 * everything written owner-only. Paths are given as segments, each already made safe by the caller.
 */
export class ExportDirectory {
  private constructor(readonly root: string) {}

  static open(path: string | undefined, userId: string): ExportDirectory {
    if (path === undefined) {
      const dir = mkdtempSync(join(tmpdir(), `skjol-export-${safeSegment(userId).replace(/[^A-Za-z0-9_-]/g, '_')}-`));
      chmodSync(dir, PRIVATE_DIR);
      return new ExportDirectory(dir);
    }
    if (existsSync(path)) {
      if (!statSync(path).isDirectory()) throw new ExportError(`${path} exists and is not a directory`);
      if (readdirSync(path).length > 0) throw new ExportError(`${path} is not empty: give an empty or new directory`);
    } else {
      mkdirSync(path, { recursive: true, mode: PRIVATE_DIR });
    }
    chmodSync(path, PRIVATE_DIR);
    return new ExportDirectory(path);
  }

  private dirFor(segments: readonly string[]): string {
    let dir = this.root;
    for (const s of segments) {
      dir = join(dir, s);
      if (!existsSync(dir)) {
        mkdirSync(dir, { mode: PRIVATE_DIR });
        chmodSync(dir, PRIVATE_DIR);
      }
    }
    return dir;
  }

  private pathFor(segments: readonly string[]): string {
    const dir = this.dirFor(segments.slice(0, -1));
    return join(dir, segments[segments.length - 1]!);
  }

  writeJson(segments: readonly string[], value: unknown): void {
    const path = this.pathFor(segments);
    writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`, { mode: PRIVATE_FILE, flag: 'wx' });
    chmodSync(path, PRIVATE_FILE);
  }

  jsonArray(segments: readonly string[]): JsonArrayFile {
    const path = this.pathFor(segments);
    const fd = openSync(path, 'wx', PRIVATE_FILE);
    chmodSync(path, PRIVATE_FILE);
    let count = 0;
    writeSync(fd, '[');
    return {
      push(value) {
        writeSync(fd, `${count++ === 0 ? '\n' : ',\n'}${JSON.stringify(value)}`);
      },
      close() {
        writeSync(fd, count === 0 ? ']\n' : '\n]\n');
        closeSync(fd);
      },
    };
  }

  copyFile(source: string, segments: readonly string[]): void {
    const path = this.pathFor(segments);
    copyFileSync(source, path);
    chmodSync(path, PRIVATE_FILE);
  }
}
