export { BridgeCrypto, cryptoStoreName, type BridgeCryptoOptions } from './bridgeCrypto.js';
export type { CryptoLogger, CryptoStateStore, DecryptedEvent, RoomEncryptionSettings } from './types.js';
export { installIndexedDb } from './indexedDbGlobals.js';
export { deleteDatabases, exportDatabases, restoreDatabases, snapshotDatabaseNames } from './idbSnapshot.js';
