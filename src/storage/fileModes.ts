import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';

// Modes are set with chmod after creation: the `mode` argument of open/mkdir is reduced by the umask only.
const PRIVATE_FILE = 0o600;
const PRIVATE_DIR = 0o700;

/** Creates `path` (and missing parents) readable by the owner only; an existing directory is left as it is. */
export function ensurePrivateDir(path: string): void {
  if (existsSync(path)) return;
  mkdirSync(path, { recursive: true, mode: PRIVATE_DIR });
  chmodSync(path, PRIVATE_DIR);
}

/** Makes an existing directory owner-only (one the server owns outright, like the media store). */
export function tightenDir(path: string): void {
  if (existsSync(path) && (statSync(path).mode & 0o077) !== 0) chmodSync(path, PRIVATE_DIR);
}

/** Creates an empty owner-only file if it does not exist yet. */
export function ensurePrivateFile(path: string): void {
  try {
    closeSync(openSync(path, 'wx', PRIVATE_FILE));
    chmodSync(path, PRIVATE_FILE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/** Takes group and world access away from a file that exists (one written by an older version). */
export function tightenFile(path: string): void {
  if (existsSync(path) && (statSync(path).mode & 0o077) !== 0) chmodSync(path, PRIVATE_FILE);
}
