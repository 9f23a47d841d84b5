/** The KeyStore interface: one opaque, already-serialised record per (server origin, user id), plus the memory store. */

/**
 * Where a client keeps each account's record: its keys (unwrapped), refresh token, pins and replay
 * cache. Implementations keep it confidential at rest (the file and IndexedDB stores encrypt it);
 * a record is written whole, atomically, and read back byte for byte.
 */
export interface KeyStore {
  /** The user ids with a record for `server` (an origin such as `https://mail.example.com`). */
  list(server: string): Promise<string[]>;
  /** The record of `userId` on `server`, or undefined. */
  load(server: string, userId: string): Promise<Uint8Array | undefined>;
  /** Replaces the record (whole, atomically). */
  save(server: string, userId: string, record: Uint8Array): Promise<void>;
  /** Forgets the record and everything stored for it. */
  delete(server: string, userId: string): Promise<void>;
}

/** A KeyStore in this process's memory only: gone when the process ends. */
export function memoryStore(): KeyStore {
  const records = new Map<string, Map<string, Uint8Array>>();
  const of = (server: string) => {
    let m = records.get(server);
    if (m === undefined) records.set(server, (m = new Map()));
    return m;
  };
  return {
    async list(server) {
      return [...of(server).keys()];
    },
    async load(server, userId) {
      return of(server).get(userId)?.slice();
    },
    async save(server, userId, record) {
      of(server).get(userId)?.fill(0);
      of(server).set(userId, record.slice());
    },
    async delete(server, userId) {
      of(server).get(userId)?.fill(0);
      of(server).delete(userId);
    },
  };
}
