/**
 * Exports every IndexedDB database whose name starts with a prefix (schema and records) to one byte array,
 * and restores such a snapshot. Generic: it knows nothing about what the databases hold. Values and keys
 * are written with `node:v8` serialize, which keeps what structured clone keeps (Uint8Array, ArrayBuffer,
 * Map, Date, …).
 *
 * Only the small part of the IndexedDB API this module uses is typed below (the project compiles without
 * the DOM library); any implementation of it works, by default the global `indexedDB`.
 */
import { deserialize, serialize } from 'node:v8';

interface IdbRequest<T> {
  readonly result: T;
  readonly error: unknown;
  onsuccess: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

interface IdbOpenRequest extends IdbRequest<IdbDatabase> {
  onupgradeneeded: ((ev: unknown) => void) | null;
}

interface IdbStringList {
  readonly length: number;
  item(index: number): string | null;
}

type KeyPath = string | string[] | null;

interface IdbIndex {
  readonly keyPath: string | string[];
  readonly unique: boolean;
  readonly multiEntry: boolean;
}

interface IdbObjectStore {
  readonly keyPath: KeyPath;
  readonly autoIncrement: boolean;
  readonly indexNames: IdbStringList;
  index(name: string): IdbIndex;
  getAll(): IdbRequest<unknown[]>;
  getAllKeys(): IdbRequest<unknown[]>;
  put(value: unknown, key?: unknown): IdbRequest<unknown>;
  createIndex(name: string, keyPath: string | string[], options: { unique: boolean; multiEntry: boolean }): IdbIndex;
}

interface IdbTransaction {
  objectStore(name: string): IdbObjectStore;
  readonly error: unknown;
  oncomplete: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onabort: ((ev: unknown) => void) | null;
}

interface IdbDatabase {
  readonly version: number;
  readonly objectStoreNames: IdbStringList;
  transaction(stores: string[], mode: 'readonly' | 'readwrite'): IdbTransaction;
  createObjectStore(name: string, options: { keyPath: KeyPath; autoIncrement: boolean }): IdbObjectStore;
  close(): void;
}

export interface IdbFactoryLike {
  open(name: string, version?: number): IdbOpenRequest;
  deleteDatabase(name: string): IdbRequest<unknown>;
  databases(): Promise<Array<{ name?: string; version?: number }>>;
}

interface IndexSnapshot {
  name: string;
  keyPath: string | string[];
  unique: boolean;
  multiEntry: boolean;
}

interface StoreSnapshot {
  name: string;
  keyPath: KeyPath;
  autoIncrement: boolean;
  indexes: IndexSnapshot[];
  /** Primary keys and values, in key order, pairwise. */
  keys: unknown[];
  values: unknown[];
}

interface DatabaseSnapshot {
  name: string;
  version: number;
  stores: StoreSnapshot[];
}

interface Snapshot {
  format: typeof FORMAT;
  databases: DatabaseSnapshot[];
}

const FORMAT = 'skjol-idb-snapshot/1';

function globalFactory(): IdbFactoryLike {
  const factory = (globalThis as { indexedDB?: IdbFactoryLike }).indexedDB;
  if (!factory) throw new Error('no IndexedDB implementation is installed');
  return factory;
}

function names(list: IdbStringList): string[] {
  const out: string[] = [];
  for (let i = 0; i < list.length; i++) {
    const name = list.item(i);
    if (name !== null) out.push(name);
  }
  return out;
}

function done<T>(req: IdbRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
  });
}

function completed(tx: IdbTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'));
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
  });
}

/** The names of the databases that start with `prefix`, sorted. */
export async function databaseNames(prefix: string, factory: IdbFactoryLike = globalFactory()): Promise<string[]> {
  const all = await factory.databases();
  return all
    .map((d) => d.name)
    .filter((n): n is string => typeof n === 'string' && n.startsWith(prefix))
    .sort();
}

async function exportDatabase(factory: IdbFactoryLike, name: string): Promise<DatabaseSnapshot> {
  const db = await done(factory.open(name));
  try {
    const storeNames = names(db.objectStoreNames);
    const stores: StoreSnapshot[] = [];
    if (storeNames.length) {
      // One read-only transaction over all stores: a consistent view even while others write.
      const tx = db.transaction(storeNames, 'readonly');
      const finished = completed(tx);
      const reads = storeNames.map(async (storeName) => {
        const store = tx.objectStore(storeName);
        const indexes = names(store.indexNames).map((indexName) => {
          const index = store.index(indexName);
          return { name: indexName, keyPath: index.keyPath, unique: index.unique, multiEntry: index.multiEntry };
        });
        const [keys, values] = await Promise.all([done(store.getAllKeys()), done(store.getAll())]);
        return { name: storeName, keyPath: store.keyPath, autoIncrement: store.autoIncrement, indexes, keys, values };
      });
      stores.push(...(await Promise.all(reads)));
      await finished;
    }
    return { name, version: db.version, stores };
  } finally {
    db.close();
  }
}

/** Serializes every database whose name starts with `prefix`; an empty snapshot when there is none. */
export async function exportDatabases(prefix: string, factory: IdbFactoryLike = globalFactory()): Promise<Uint8Array> {
  const databases: DatabaseSnapshot[] = [];
  for (const name of await databaseNames(prefix, factory)) databases.push(await exportDatabase(factory, name));
  const snapshot: Snapshot = { format: FORMAT, databases };
  const buf = serialize(snapshot);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Deletes every database whose name starts with `prefix`. Waits for open connections to close. */
export async function deleteDatabases(prefix: string, factory: IdbFactoryLike = globalFactory()): Promise<void> {
  for (const name of await databaseNames(prefix, factory)) await done(factory.deleteDatabase(name));
}

async function restoreDatabase(factory: IdbFactoryLike, snap: DatabaseSnapshot): Promise<void> {
  await done(factory.deleteDatabase(snap.name));
  const req = factory.open(snap.name, snap.version);
  req.onupgradeneeded = () => {
    const db = req.result;
    for (const s of snap.stores) {
      const store = db.createObjectStore(s.name, { keyPath: s.keyPath, autoIncrement: s.autoIncrement });
      for (const i of s.indexes) store.createIndex(i.name, i.keyPath, { unique: i.unique, multiEntry: i.multiEntry });
    }
  };
  const db = await done(req);
  try {
    if (!snap.stores.length) return;
    const tx = db.transaction(
      snap.stores.map((s) => s.name),
      'readwrite',
    );
    const finished = completed(tx);
    for (const s of snap.stores) {
      const store = tx.objectStore(s.name);
      // In-line keys (a keyPath) come from the value itself; out-of-line keys are given explicitly.
      for (let i = 0; i < s.values.length; i++) {
        if (s.keyPath === null) store.put(s.values[i], s.keys[i]);
        else store.put(s.values[i]);
      }
    }
    await finished;
  } finally {
    db.close();
  }
}

function parseSnapshot(data: Uint8Array): Snapshot {
  const snap = deserialize(data) as Partial<Snapshot> | null;
  if (!snap || snap.format !== FORMAT || !Array.isArray(snap.databases)) throw new Error('not an IndexedDB snapshot of a known format');
  return snap as Snapshot;
}

/** The database names a snapshot holds. */
export function snapshotDatabaseNames(data: Uint8Array): string[] {
  return parseSnapshot(data).databases.map((d) => d.name);
}

/**
 * Restores a snapshot made by exportDatabases: each database in it is deleted, recreated at the same
 * version with the same object stores and indexes, and filled with the same records. Databases not in the
 * snapshot are left alone. Nothing may hold those databases open.
 */
export async function restoreDatabases(data: Uint8Array, factory: IdbFactoryLike = globalFactory()): Promise<void> {
  for (const db of parseSnapshot(data).databases) await restoreDatabase(factory, db);
}
