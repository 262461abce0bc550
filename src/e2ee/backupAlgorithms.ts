import { badJson } from '../errors.js';

// Spec: Client-Server API, "Server-side key backups", "Backup algorithm: m.megolm_backup.v1.curve25519-aes-sha2".
// The server never decrypts a backup. For the algorithm the spec defines, auth_data and session_data are
// objects and we refuse anything else; for any other algorithm both are opaque JSON values, stored and
// returned as sent (Synapse stores any JSON value there; SyTest uses strings).

export const MEGOLM_BACKUP_V1 = 'm.megolm_backup.v1.curve25519-aes-sha2';

const isObject = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Throws M_BAD_JSON if the spec defines `algorithm` and `authData` is not the object it requires. */
export function checkBackupAuthData(algorithm: string, authData: unknown): void {
  if (algorithm === MEGOLM_BACKUP_V1 && !isObject(authData)) throw badJson(`auth_data must be an object for ${MEGOLM_BACKUP_V1}`);
}

/** Throws M_BAD_JSON if the spec defines `algorithm` and `sessionData` is not the object it requires. */
export function checkBackupSessionData(algorithm: string, sessionData: unknown): void {
  if (algorithm === MEGOLM_BACKUP_V1 && !isObject(sessionData)) throw badJson(`session_data must be an object for ${MEGOLM_BACKUP_V1}`);
}
