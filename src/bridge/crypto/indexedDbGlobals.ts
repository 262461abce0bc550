import * as fake from 'fake-indexeddb';

/**
 * The wasm crypto store persists into the global `indexedDB`, which Node does not have. Installs
 * fake-indexeddb's factory and classes on globalThis where missing (an existing implementation is kept).
 * Returns true when it installed them.
 */
export function installIndexedDb(): boolean {
  const g = globalThis as Record<string, unknown>;
  if (g.indexedDB !== undefined) return false;
  const globals: Record<string, unknown> = {
    indexedDB: fake.indexedDB,
    IDBCursor: fake.IDBCursor,
    IDBCursorWithValue: fake.IDBCursorWithValue,
    IDBDatabase: fake.IDBDatabase,
    IDBFactory: fake.IDBFactory,
    IDBIndex: fake.IDBIndex,
    IDBKeyRange: fake.IDBKeyRange,
    IDBObjectStore: fake.IDBObjectStore,
    IDBOpenDBRequest: fake.IDBOpenDBRequest,
    IDBRequest: fake.IDBRequest,
    IDBTransaction: fake.IDBTransaction,
    IDBVersionChangeEvent: fake.IDBVersionChangeEvent,
  };
  for (const [name, value] of Object.entries(globals)) {
    if (g[name] === undefined) Object.defineProperty(g, name, { value, configurable: true, writable: true, enumerable: false });
  }
  return true;
}
