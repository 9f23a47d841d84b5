/**
 * The browser KeyStore: one IndexedDB database per (server origin, user id), holding one record
 * sealed with AES-256-GCM under a non-extractable WebCrypto key that lives in the same database.
 * A script of the page can use the key while the page runs, but cannot read it out.
 */
import type { KeyStore } from "./store.js";
import { utf8 } from "./protocol/encoding.js";

const PREFIX = "sealpost:";
const bytes = (b: Uint8Array) => b as unknown as BufferSource;
const OBJECTS = "kv";

/** Options of `indexedDBStore`: the factory and WebCrypto to use (defaults: the page's). */
export interface IndexedDBStoreOptions {
  indexedDB?: IDBFactory;
  crypto?: Crypto;
}

function promised<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = tx.onerror = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
}

/** The IndexedDB KeyStore (see the module comment). */
export function indexedDBStore(options: IndexedDBStoreOptions = {}): KeyStore {
  const idb = options.indexedDB ?? globalThis.indexedDB;
  const subtle = (options.crypto ?? globalThis.crypto).subtle;
  const nameOf = (server: string, userId: string) => `${PREFIX}${server}#${userId}`;

  async function openDb(name: string): Promise<IDBDatabase> {
    const request = idb.open(name, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(OBJECTS);
    return promised(request);
  }

  async function withDb<T>(name: string, fn: (db: IDBDatabase) => Promise<T>): Promise<T> {
    const db = await openDb(name);
    try {
      return await fn(db);
    } finally {
      db.close();
    }
  }

  return {
    async list(server) {
      const all = await idb.databases();
      const prefix = `${PREFIX}${server}#`;
      return all.flatMap((d) => (d.name?.startsWith(prefix) ? [d.name.slice(prefix.length)] : []));
    },
    async load(server, userId) {
      const name = nameOf(server, userId);
      const known = (await idb.databases()).some((d) => d.name === name);
      if (!known) return undefined;
      return withDb(name, async (db) => {
        const tx = db.transaction(OBJECTS, "readonly");
        const objects = tx.objectStore(OBJECTS);
        const [key, sealed] = await Promise.all([
          promised(objects.get("key")) as Promise<CryptoKey | undefined>,
          promised(objects.get("sealed")) as Promise<
            { iv: Uint8Array; data: ArrayBuffer } | undefined
          >,
        ]);
        await done(tx);
        if (key === undefined || sealed === undefined) return undefined;
        const plain = await subtle.decrypt(
          { name: "AES-GCM", iv: bytes(sealed.iv), additionalData: bytes(utf8(name)) },
          key,
          sealed.data,
        );
        return new Uint8Array(plain);
      });
    },
    async save(server, userId, record) {
      const name = nameOf(server, userId);
      await withDb(name, async (db) => {
        const read = db.transaction(OBJECTS, "readonly");
        let key = (await promised(read.objectStore(OBJECTS).get("key"))) as CryptoKey | undefined;
        await done(read);
        key ??= await subtle.generateKey({ name: "AES-GCM", length: 256 }, false, [
          "encrypt",
          "decrypt",
        ]);
        const iv = (options.crypto ?? globalThis.crypto).getRandomValues(new Uint8Array(12));
        const data = await subtle.encrypt(
          { name: "AES-GCM", iv, additionalData: bytes(utf8(name)) },
          key,
          bytes(record),
        );
        const tx = db.transaction(OBJECTS, "readwrite");
        tx.objectStore(OBJECTS).put(key, "key");
        tx.objectStore(OBJECTS).put({ iv, data }, "sealed");
        await done(tx);
      });
    },
    async delete(server, userId) {
      const request = idb.deleteDatabase(nameOf(server, userId));
      await new Promise<void>((resolve, reject) => {
        request.onsuccess = () => resolve();
        request.onerror = () => reject(request.error);
        request.onblocked = () => resolve();
      });
    },
  };
}
